//! Merkle trees as RFC 9162 (Certificate Transparency 2.0, §2.1) defines them: SHA-256,
//! `0x00` before a leaf's data, `0x01` before two children; a tree's root, inclusion
//! and consistency proofs, and their checks. The ground of the archive's evidence
//! (issue 29): an auditor recomputes these with any RFC 9162 implementation.
//!
//! The hashes of a tree of n leaves are computed over leaf hashes (`D[n]` in the RFC
//! stands for the leaves; here each is already hashed, which is what every function but
//! [`leaf_hash`] takes).

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&h.finalize());
    out
}

/// The hash of a leaf: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    sha256(&[&[0u8], data])
}

/// The hash of an interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[1u8], left, right])
}

/// The data of an archived event's leaf: `"auditq/event/v1" 0x00 <id as UTF-8> 0x00
/// <SHA-256 of the event's raw JSON bytes as archived>`. Fixed, so that anyone can
/// recompute it from the event.
pub fn event_leaf(id: &str, raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + id.len() + 1 + 32);
    out.extend_from_slice(b"auditq/event/v1\0");
    out.extend_from_slice(id.as_bytes());
    out.push(0);
    out.extend_from_slice(&sha256(&[raw]));
    out
}

/// The largest power of two smaller than `n` (n > 1).
pub fn split(n: usize) -> usize {
    debug_assert!(n > 1);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// MTH: the root of the tree whose leaves hash to `leaves` (the hash of the empty string
/// for none).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => sha256(&[]),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// A tree that can answer `MTH(D[lo:hi])`, the hash of any of the subtrees the RFC's
/// proofs name: the leaves in memory, or hashes stored with some leaves read back
/// (`None` when a needed part is not at hand).
pub trait Subtrees {
    /// The number of leaves.
    fn size(&self) -> u64;
    /// `MTH(D[lo:hi])`, for `lo < hi <= size`.
    fn hash(&self, lo: u64, hi: u64) -> Option<Hash>;
}

impl Subtrees for [Hash] {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn hash(&self, lo: u64, hi: u64) -> Option<Hash> {
        Some(root(self.get(lo as usize..hi as usize)?))
    }
}

/// `PATH(m, D[n])`: the audit path of leaf `m` (RFC 9162 §2.1.3.1). `None` when `m` is not
/// a leaf of the tree.
pub fn inclusion_proof(leaves: &[Hash], m: usize) -> Option<Vec<Hash>> {
    inclusion_proof_in(leaves, m as u64)
}

/// [`inclusion_proof`] in any [`Subtrees`].
pub fn inclusion_proof_in<T: Subtrees + ?Sized>(tree: &T, m: u64) -> Option<Vec<Hash>> {
    if m >= tree.size() {
        return None;
    }
    let mut out = Vec::new();
    path(tree, m, 0, tree.size(), &mut out)?;
    Some(out)
}

/// The path of leaf `lo + m` within `D[lo:hi]`, deepest first.
fn path<T: Subtrees + ?Sized>(t: &T, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) -> Option<()> {
    let n = hi - lo;
    if n <= 1 {
        return Some(());
    }
    let k = split(n as usize) as u64;
    if m < k {
        path(t, m, lo, lo + k, out)?;
        out.push(t.hash(lo + k, hi)?);
    } else {
        path(t, m - k, lo + k, hi, out)?;
        out.push(t.hash(lo, lo + k)?);
    }
    Some(())
}

/// `PROOF(m, D[n])`: that the tree of the first `m` leaves is a prefix of the tree of all
/// of them (RFC 9162 §2.1.4.1). `None` unless 0 < m <= n.
pub fn consistency_proof(leaves: &[Hash], m: usize) -> Option<Vec<Hash>> {
    consistency_proof_in(leaves, m as u64)
}

/// [`consistency_proof`] in any [`Subtrees`].
pub fn consistency_proof_in<T: Subtrees + ?Sized>(tree: &T, m: u64) -> Option<Vec<Hash>> {
    if m == 0 || m > tree.size() {
        return None;
    }
    let mut out = Vec::new();
    subproof(tree, m, 0, tree.size(), true, &mut out)?;
    Some(out)
}

/// `SUBPROOF(m, D[lo:hi], complete)`.
fn subproof<T: Subtrees + ?Sized>(
    t: &T,
    m: u64,
    lo: u64,
    hi: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Option<()> {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push(t.hash(lo, hi)?);
        }
        return Some(());
    }
    let k = split(n as usize) as u64;
    if m <= k {
        subproof(t, m, lo, lo + k, complete, out)?;
        out.push(t.hash(lo + k, hi)?);
    } else {
        subproof(t, m - k, lo + k, hi, false, out)?;
        out.push(t.hash(lo, lo + k)?);
    }
    Some(())
}

/// Right-shift both until `fn_`'s lowest bit is set or it is 0.
fn shift_while_even(fn_: &mut u64, sn: &mut u64) {
    while *fn_ & 1 == 0 && *fn_ != 0 {
        *fn_ >>= 1;
        *sn >>= 1;
    }
}

/// Whether `path` proves that the leaf hashing to `leaf` is leaf `index` of the tree of
/// `size` leaves whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                shift_while_even(&mut fn_, &mut sn);
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// Whether `proof` proves that the tree of `first` leaves with root `first_root` is a
/// prefix of the tree of `second` leaves with root `second_root` (RFC 9162 §2.1.4.2;
/// equal sizes need an empty proof and equal roots).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> bool {
    if first == 0 || first > second {
        return false;
    }
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    if proof.is_empty() {
        return false;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                shift_while_even(&mut fn_, &mut sn);
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    fr == *first_root && sr == *second_root && sn == 0
}

/// A tree grown leaf by leaf in O(log n) memory: the roots of its perfect subtrees, the
/// largest first (a "compact range" of the whole tree). What a seal keeps to go on from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// The roots of the perfect subtrees, one per set bit of `size`, highest first.
    nodes: Vec<Hash>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Add the leaf hashing to `leaf`.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut size = self.size;
        // Each trailing set bit of the size is a perfect subtree the new one completes.
        while size & 1 == 1 {
            let left = self.nodes.pop().expect("a node per set bit");
            h = node_hash(&left, &h);
            size >>= 1;
        }
        self.nodes.push(h);
        self.size += 1;
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        match nodes.next() {
            None => sha256(&[]),
            Some(last) => nodes.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(h: &Hash) -> String {
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The test leaves of RFC 6962's reference implementation (the hashing RFC 9162
    /// keeps), and the roots of their first 1 … 8.
    fn reference() -> (Vec<Hash>, [&'static str; 8]) {
        let data: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        (data.iter().map(|d| leaf_hash(d)).collect(), roots)
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn roots_are_the_reference_ones() {
        assert_eq!(
            hex(&root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let (ls, roots) = reference();
        for (n, want) in roots.iter().enumerate() {
            assert_eq!(hex(&root(&ls[..=n])), *want, "size {}", n + 1);
        }
    }

    #[test]
    fn every_inclusion_proof_checks_and_a_changed_one_does_not() {
        for n in 1..=40 {
            let ls = leaves(n);
            let r = root(&ls);
            for m in 0..n {
                let p = inclusion_proof(&ls, m).unwrap();
                assert!(
                    verify_inclusion(&ls[m], m as u64, n as u64, &p, &r),
                    "{m} of {n}"
                );
                let other = (m + 1) % n;
                if other != m {
                    assert!(!verify_inclusion(&ls[other], m as u64, n as u64, &p, &r));
                    assert!(!verify_inclusion(&ls[m], other as u64, n as u64, &p, &r));
                }
                // A path of the tree of n leaves proves nothing of the tree of n + 1
                // (its root binds the size: a path alone can fit several sizes).
                let grown = root(&leaves(n + 1));
                assert!(!verify_inclusion(
                    &ls[m],
                    m as u64,
                    n as u64 + 1,
                    &p,
                    &grown
                ));
                for k in 0..p.len() {
                    let mut bad = p.clone();
                    bad[k][7] ^= 1;
                    assert!(!verify_inclusion(&ls[m], m as u64, n as u64, &bad, &r));
                }
                let mut longer = p.clone();
                longer.push(r);
                assert!(!verify_inclusion(&ls[m], m as u64, n as u64, &longer, &r));
            }
            assert!(inclusion_proof(&ls, n).is_none());
        }
    }

    #[test]
    fn every_consistency_proof_checks_and_a_changed_one_does_not() {
        for n in 1..=40 {
            let ls = leaves(n);
            let second = root(&ls);
            for m in 1..=n {
                let first = root(&ls[..m]);
                let p = consistency_proof(&ls, m).unwrap();
                assert!(
                    verify_consistency(m as u64, n as u64, &first, &second, &p),
                    "{m} -> {n}"
                );
                for k in 0..p.len() {
                    let mut bad = p.clone();
                    bad[k][0] ^= 0x80;
                    assert!(!verify_consistency(
                        m as u64, n as u64, &first, &second, &bad
                    ));
                }
                if m < n {
                    // Another prefix, or a tree that is not an extension of it.
                    let mut forged = ls.clone();
                    forged[m - 1] = leaf_hash(b"changed");
                    assert!(!verify_consistency(
                        m as u64,
                        n as u64,
                        &root(&forged[..m]),
                        &second,
                        &p
                    ));
                    assert!(!verify_consistency(
                        m as u64,
                        n as u64,
                        &first,
                        &root(&forged),
                        &p
                    ));
                }
            }
            assert!(consistency_proof(&ls, 0).is_none());
            assert!(consistency_proof(&ls, n + 1).is_none());
        }
    }

    #[test]
    fn a_frontier_grows_to_the_same_roots() {
        let ls = leaves(200);
        let mut f = Frontier::default();
        assert_eq!(f.root(), root(&[]));
        for (i, l) in ls.iter().enumerate() {
            f.push(*l);
            assert_eq!(f.size(), i as u64 + 1);
            assert_eq!(f.root(), root(&ls[..=i]), "size {}", i + 1);
            assert_eq!(f.nodes.len(), (i + 1).count_ones() as usize);
        }
    }

    #[test]
    fn an_events_leaf_is_its_id_and_the_hash_of_its_raw_json() {
        let leaf = event_leaf("e-1", b"{\"id\":\"e-1\"}");
        assert!(leaf.starts_with(b"auditq/event/v1\0e-1\0"));
        assert_eq!(leaf.len(), 16 + 3 + 1 + 32);
        assert_eq!(&leaf[20..], &sha256(&[b"{\"id\":\"e-1\"}"])[..]);
    }
}
