//! The tiles: per 65,536 leaves, the root of each chunk of 256 leaves and a 4-byte
//! fingerprint of each leaf; the last tile, while partial, also the hashes of the leaves
//! past its last whole chunk. Enough to answer any subtree hash a proof needs, given the
//! leaves of the one chunk the proof reaches into.

use std::collections::HashMap;

use super::{Archive, CHUNK, Result, TILE, TILES, evidence_err, get, io_err, list, put};
use crate::merkle::{self, Hash, Subtrees};

/// The first `len` bytes of `rel` (fewer when it is shorter), or `None`.
fn get_prefix(a: &Archive, rel: &str, len: u64) -> std::io::Result<Option<Vec<u8>>> {
    match a.remote() {
        Some(r) => match r.head(rel)? {
            None => Ok(None),
            Some(meta) => Ok(Some(r.get_range(rel, 0..len.min(meta.size))?.to_vec())),
        },
        None => {
            use std::io::Read;
            let f = match std::fs::File::open(a.root().join(rel)) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut out = Vec::with_capacity(len as usize);
            f.take(len).read_to_end(&mut out)?;
            Ok(Some(out))
        }
    }
}

/// The tree as the tiles hold it.
#[derive(Debug, Default, Clone)]
pub struct Tiles {
    size: u64,
    /// The roots of the whole chunks.
    chunks: Vec<Hash>,
    /// The first 4 bytes of each leaf hash, from leaf `fp_base` on.
    fingerprints: Vec<[u8; 4]>,
    fp_base: u64,
    /// The leaves past the last whole chunk.
    tail: Vec<Hash>,
    /// The roots of the whole tiles, hashed on first use (a proof's path above them
    /// then takes a few hashes, not one per chunk of the tree).
    tile_roots: std::sync::OnceLock<Vec<Hash>>,
}

fn fingerprint(h: &Hash) -> [u8; 4] {
    [h[0], h[1], h[2], h[3]]
}

/// The name of tile `n` of a tree of `size` leaves.
pub fn tile_rel(n: u64, size: u64) -> String {
    let leaves = (size - n * TILE).min(TILE);
    if leaves == TILE {
        format!("{TILES}/{n:08}")
    } else {
        format!("{TILES}/{n:08}.p{leaves}")
    }
}

impl Tiles {
    pub fn chunks(&self) -> &[Hash] {
        &self.chunks
    }

    /// The roots of the whole tiles (`TILE` leaves each).
    pub fn tile_roots(&self) -> &[Hash] {
        self.tile_roots.get_or_init(|| {
            self.chunks
                .chunks_exact((TILE / CHUNK) as usize)
                .map(merkle::root)
                .collect()
        })
    }

    /// The stored fingerprint of leaf `i`.
    pub fn fingerprint(&self, i: u64) -> Option<[u8; 4]> {
        let i = i.checked_sub(self.fp_base)?;
        self.fingerprints.get(i as usize).copied()
    }

    /// The tiles of the tree of `size` leaves, with every fingerprint.
    pub fn load(a: &Archive, size: u64) -> Result<Tiles> {
        Tiles::load_with(a, size, true)
    }

    /// The tiles of the tree of `size` leaves; the fingerprints of whole tiles only when
    /// `fingerprints` (a seal and a proof need the chunk roots alone: 8 KiB a tile
    /// rather than 264 KiB).
    pub fn load_with(a: &Archive, size: u64, fingerprints: bool) -> Result<Tiles> {
        let mut t = Tiles::default();
        let mut n = 0;
        while n * TILE < size {
            let leaves = (size - n * TILE).min(TILE);
            let rel = tile_rel(n, size);
            let missing = || evidence_err(format!("tile `{rel}` is missing"));
            if leaves == TILE && !fingerprints {
                let want = TILE / CHUNK * 32;
                let bytes = get_prefix(a, &rel, want)
                    .map_err(io_err("reading evidence tile", &rel, a))?
                    .ok_or_else(missing)?;
                if bytes.len() as u64 != want {
                    return Err(evidence_err(format!("tile `{rel}` is cut short")));
                }
                t.chunks.extend(
                    bytes
                        .chunks(32)
                        .map(|c| Hash::try_from(c).expect("32 bytes")),
                );
                t.size += TILE;
                t.fp_base = t.size;
            } else {
                let bytes = get(a, &rel)
                    .map_err(io_err("reading evidence tile", &rel, a))?
                    .ok_or_else(missing)?;
                t.read_tile(&bytes, leaves)
                    .map_err(|why| evidence_err(format!("tile `{rel}` {why}")))?;
            }
            n += 1;
        }
        debug_assert_eq!(t.size, size);
        Ok(t)
    }

    fn read_tile(&mut self, bytes: &[u8], leaves: u64) -> std::result::Result<(), String> {
        let (whole, tail) = (leaves / CHUNK, leaves % CHUNK);
        let want = whole * 32 + leaves * 4 + tail * 32;
        if bytes.len() as u64 != want {
            return Err(format!("has {} bytes, not {want}", bytes.len()));
        }
        let (chunks, rest) = bytes.split_at(whole as usize * 32);
        let (fps, tail_bytes) = rest.split_at(leaves as usize * 4);
        let hash = |c: &[u8]| Hash::try_from(c).expect("32 bytes");
        self.chunks.extend(chunks.chunks(32).map(hash));
        self.fingerprints
            .extend(fps.chunks(4).map(|c| [c[0], c[1], c[2], c[3]]));
        self.tail = tail_bytes.chunks(32).map(hash).collect();
        self.size += leaves;
        Ok(())
    }

    /// Add the next leaf.
    pub fn push(&mut self, leaf: Hash) {
        self.fingerprints.push(fingerprint(&leaf));
        self.tail.push(leaf);
        self.size += 1;
        if self.tail.len() as u64 == CHUNK {
            self.chunks.push(merkle::root(&self.tail));
            self.tail.clear();
            self.tile_roots.take();
        }
    }

    /// The root of the tree.
    pub fn root(&self) -> Hash {
        match self.size {
            0 => merkle::root(&[]),
            n => self
                .with(&HashMap::new())
                .hash(0, n)
                .expect("tiles hold the whole tree"),
        }
    }

    /// The tree with the leaves of some whole chunks at hand (chunk index -> leaves).
    pub fn with<'t>(&'t self, leaves: &'t HashMap<u64, Vec<Hash>>) -> Known<'t> {
        Known {
            tiles: self,
            leaves,
        }
    }

    /// Write the tiles holding leaves `from..size` (the tiles before are whole and
    /// unchanged); returns the names of partial tiles of this tree, which stay.
    pub fn write_from(&self, a: &Archive, from: u64) -> Result<String> {
        let mut kept = String::new();
        let mut n = from / TILE;
        while n * TILE < self.size {
            let leaves = (self.size - n * TILE).min(TILE);
            let rel = tile_rel(n, self.size);
            let first_chunk = (n * TILE / CHUNK) as usize;
            let whole = (leaves / CHUNK) as usize;
            let mut bytes = Vec::with_capacity(whole * 32 + leaves as usize * 4);
            for c in &self.chunks[first_chunk..first_chunk + whole] {
                bytes.extend_from_slice(c);
            }
            let first = (n * TILE - self.fp_base) as usize;
            for f in &self.fingerprints[first..first + leaves as usize] {
                bytes.extend_from_slice(f);
            }
            if leaves < TILE {
                for h in &self.tail {
                    bytes.extend_from_slice(h);
                }
                kept = rel.clone();
            }
            put(a, &rel, bytes).map_err(io_err("writing evidence tile", &rel, a))?;
            n += 1;
        }
        Ok(kept)
    }

    /// Remove partial tiles other than `keep` (those of earlier seals, and of seals that
    /// stopped before their checkpoint).
    pub fn prune_partials(a: &Archive, keep: &str) {
        let Ok(names) = list(a, TILES) else { return };
        for name in names.iter().filter(|n| n.contains(".p")) {
            let rel = format!("{TILES}/{name}");
            if rel != keep {
                let _ = super::delete(a, &rel);
            }
        }
    }
}

/// The tiles with the leaves of some chunks: answers `MTH(D[lo:hi])` for every subtree a
/// proof about those chunks names.
pub struct Known<'t> {
    tiles: &'t Tiles,
    leaves: &'t HashMap<u64, Vec<Hash>>,
}

impl Known<'_> {
    fn leaves_of(&self, chunk: u64) -> Option<&[Hash]> {
        if chunk == self.tiles.chunks.len() as u64 {
            return Some(&self.tiles.tail);
        }
        self.leaves.get(&chunk).map(Vec::as_slice)
    }
}

impl Subtrees for Known<'_> {
    fn size(&self) -> u64 {
        self.tiles.size
    }

    fn hash(&self, lo: u64, hi: u64) -> Option<Hash> {
        let n = hi - lo;
        if lo.is_multiple_of(TILE) && n.is_multiple_of(TILE) && n.is_power_of_two() {
            let roots = self.tiles.tile_roots();
            return Some(merkle::root(
                roots.get((lo / TILE) as usize..(hi / TILE) as usize)?,
            ));
        }
        if lo.is_multiple_of(CHUNK) && n.is_multiple_of(CHUNK) && n.is_power_of_two() {
            let chunks = self
                .tiles
                .chunks
                .get((lo / CHUNK) as usize..(hi / CHUNK) as usize)?;
            return Some(merkle::root(chunks));
        }
        if lo / CHUNK == (hi - 1) / CHUNK {
            let chunk = lo / CHUNK;
            let leaves = self.leaves_of(chunk)?;
            let base = chunk * CHUNK;
            return leaves.hash(lo - base, hi - base);
        }
        let k = merkle::split(n as usize) as u64;
        Some(merkle::node_hash(
            &self.hash(lo, lo + k)?,
            &self.hash(lo + k, hi)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
            .collect()
    }

    /// Tiles written in uneven seals and read back answer every proof as the leaves do,
    /// across chunk and tile boundaries, with the chunk the proof reaches into at hand.
    #[test]
    fn tiles_written_in_pieces_answer_proofs_as_the_leaves_do() {
        let dir = tempfile::tempdir().unwrap();
        let a = Archive::at(dir.path());
        let all = leaves(TILE + 3 * CHUNK + 17);
        let mut size = 0u64;
        for step in [1, 255, 1000, TILE - 1256, 300, 3 * CHUNK + 17 - 300] {
            let mut t = Tiles::load_with(&a, size, false).unwrap();
            for h in &all[size as usize..(size + step) as usize] {
                t.push(*h);
            }
            let keep = t.write_from(&a, size).unwrap();
            Tiles::prune_partials(&a, &keep);
            size += step;
            assert_eq!(t.root(), merkle::root(&all[..size as usize]), "size {size}");
            let full = Tiles::load(&a, size).unwrap();
            assert_eq!(full.root(), t.root());
            for i in [0, size / 2, size - 1] {
                assert_eq!(full.fingerprint(i), Some(fingerprint(&all[i as usize])));
            }
        }
        let t = Tiles::load_with(&a, size, false).unwrap();
        for m in [0, 5, 255, 256, 66_000, TILE - 1, TILE, size - 1] {
            let chunk = m / CHUNK;
            let mut at_hand = HashMap::new();
            if chunk < t.chunks().len() as u64 {
                let lo = (chunk * CHUNK) as usize;
                at_hand.insert(chunk, all[lo..lo + CHUNK as usize].to_vec());
            }
            let known = t.with(&at_hand);
            assert_eq!(
                merkle::inclusion_proof_in(&known, m),
                merkle::inclusion_proof(&all, m as usize),
                "leaf {m}"
            );
            if m > 0 {
                assert_eq!(
                    merkle::consistency_proof_in(&known, m),
                    merkle::consistency_proof(&all, m as usize),
                    "from {m}"
                );
            }
        }
        // Without the chunk at hand, no proof is made up.
        assert_eq!(
            merkle::inclusion_proof_in(&t.with(&HashMap::new()), 5),
            None
        );
    }
}
