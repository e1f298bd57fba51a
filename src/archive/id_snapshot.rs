//! The writer's id set kept between runs: `cache/id-hashes.bin`.
//!
//! A writer must know every archived id before it commits (a re-sent event is not
//! archived twice). Reading the `id` column of every live file at each start costs time
//! in proportion to the archive: 0.6 s at 10M events, for a sync of 300. The snapshot
//! holds the sorted id hashes of a set of live files and those files' paths; a writer
//! loads it and reads only the live files it does not name (what was committed since,
//! by anyone: merges and compactions included), and writes a new snapshot when those
//! have grown (see [`worth_saving`]).
//!
//! **Invariant: the hashes are a superset of the ids of the files the snapshot names.**
//! Data files never change once written, so the ids of every live file are then known:
//! those it names from the snapshot, the others read. The set may hold more: ids of
//! files removed since (a compaction's inputs, whose ids live on in its output, or events
//! a repair removed). A writer built on a snapshot whose files are not all live any more
//! therefore treats a hit as "maybe": [`super::write::Writer`] confirms it in the event's
//! day and, if that day lacks the id, reads the exact set before it calls the event a
//! conflict. A hit on an id a compaction kept is found in its day, as before.
//!
//! The file is a cache, never the truth: it is ignored when missing, of another format,
//! not strictly sorted, or when its xxh3 checksum does not match; it is written to a
//! temporary file and renamed, and a failure to write it is only logged.
//!
//! A snapshot records whether its set was exact when written; one written from a
//! superset stays a superset, whatever files are live.
//!
//! Layout (little-endian): the magic `AQIDHS01`; `u64` 1 when exact, else 0; `u64` n,
//! then n sorted `u64` hashes;
//! `u64` m, then m bytes of file paths, one per line; the `u64` xxh3 of all before it.

use std::collections::HashSet;
use std::io::Read;

use datafusion::arrow::buffer::{Buffer, MutableBuffer};
use std::path::Path;

const MAGIC: &[u8; 8] = b"AQIDHS01";

/// The snapshot's file name in the archive's cache directory.
pub const FILE: &str = "id-hashes.bin";

/// A loaded snapshot.
#[derive(Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Sorted, distinct.
    pub hashes: Vec<u64>,
    /// The files (paths in the table) whose ids `hashes` holds.
    pub files: HashSet<String>,
    /// Whether `hashes` were exactly those files' ids when written (else a superset).
    pub exact: bool,
}

/// The snapshot at `path`, or `None` when there is none or it cannot be trusted.
pub fn load(path: &Path) -> Option<Snapshot> {
    let file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let parsed = parse(std::io::BufReader::with_capacity(1 << 16, file), len);
    if parsed.is_none() {
        tracing::warn!(target: "auditq::archive", "ignoring `{}`: damaged or of another format", path.display());
    }
    parsed
}

/// Read a snapshot of `len` bytes, hashing as it goes (the hashes are not held twice in
/// memory; no length read from it is trusted beyond `len`).
fn parse(mut input: impl Read, len: u64) -> Option<Snapshot> {
    let mut sum = xxhash_rust::xxh3::Xxh3::new();
    let mut take = |buf: &mut [u8]| -> Option<()> {
        input.read_exact(buf).ok()?;
        sum.update(buf);
        Some(())
    };
    let mut word = [0u8; 8];
    take(&mut word)?;
    if &word != MAGIC {
        return None;
    }
    let mut u64_ = |take: &mut dyn FnMut(&mut [u8]) -> Option<()>| -> Option<u64> {
        take(&mut word)?;
        Some(u64::from_le_bytes(word))
    };
    let exact = match u64_(&mut take)? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let n = u64_(&mut take)?;
    if n > len / 8 {
        return None;
    }
    let n = usize::try_from(n).ok()?;
    // Read straight into the vector's memory (80 MB at 10M ids: no second copy).
    let mut bytes = MutableBuffer::from(vec![0u64; n]);
    take(bytes.as_slice_mut())?;
    let mut hashes = Buffer::from(bytes).into_vec::<u64>().ok()?;
    for h in &mut hashes {
        *h = u64::from_le(*h);
    }
    if hashes.windows(2).any(|w| w[0] >= w[1]) {
        return None;
    }
    let m = u64_(&mut take)?;
    if m > len {
        return None;
    }
    let m = usize::try_from(m).ok()?;
    let mut names = vec![0u8; m];
    take(&mut names)?;
    let digest = sum.digest();
    let mut tail = Vec::new();
    input.read_to_end(&mut tail).ok()?;
    if tail != digest.to_le_bytes() {
        return None;
    }
    let files = String::from_utf8(names).ok()?;
    let files = files
        .split('\n')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    Some(Snapshot {
        hashes,
        files,
        exact,
    })
}

/// Write a snapshot of `hashes` (sorted, distinct; `exact` or a superset) for `files`
/// to `path`, atomically.
pub fn save<'a>(
    path: &Path,
    hashes: &[u64],
    exact: bool,
    files: impl IntoIterator<Item = &'a str>,
) -> std::io::Result<()> {
    debug_assert!(hashes.windows(2).all(|w| w[0] < w[1]));
    let mut names = String::new();
    for f in files {
        names.push_str(f);
        names.push('\n');
    }
    let mut out = Vec::with_capacity(8 * hashes.len() + names.len() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&u64::from(exact).to_le_bytes());
    out.extend_from_slice(&(hashes.len() as u64).to_le_bytes());
    for h in hashes {
        out.extend_from_slice(&h.to_le_bytes());
    }
    out.extend_from_slice(&(names.len() as u64).to_le_bytes());
    out.extend_from_slice(names.as_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    super::quarantine::write_atomic(path, &out)
}

/// Whether a writer that read `files_read` files holding `ids_read` ids beyond its
/// snapshot (of `covered` ids; none when `loaded` is false) should write a new one: when
/// there was none, or the next start would otherwise read a good deal again. Writing
/// costs about as much as reading 8 bytes an id back, so a few dozen files or an eighth
/// of the set are worth it.
pub fn worth_saving(loaded: bool, covered: usize, files_read: usize, ids_read: usize) -> bool {
    files_read > 0 && (!loaded || files_read >= 32 || ids_read >= (covered / 8).max(100_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_snapshot_loads_back_and_any_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache").join(FILE);
        let files = ["date=2026-01-01/a.parquet", "date=2026-01-02/b.parquet"];
        save(&path, &[1, 5, 9], false, files).unwrap();
        let snap = load(&path).unwrap();
        assert!(!snap.exact);
        assert_eq!(snap.hashes, vec![1, 5, 9]);
        assert_eq!(snap.files.len(), 2);
        assert!(snap.files.contains("date=2026-01-02/b.parquet"));
        let good = std::fs::read(&path).unwrap();
        // Every single flipped byte, and every truncation, is refused.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x20;
            assert_eq!(parse(&bad[..], bad.len() as u64), None, "byte {i}");
            assert_eq!(parse(&good[..i], i as u64), None, "cut at {i}");
        }
        // An unsorted set with a matching checksum is refused too.
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&1u64.to_le_bytes());
        body.extend_from_slice(&2u64.to_le_bytes());
        body.extend_from_slice(&7u64.to_le_bytes());
        body.extend_from_slice(&3u64.to_le_bytes());
        body.extend_from_slice(&0u64.to_le_bytes());
        let sum = xxhash_rust::xxh3::xxh3_64(&body);
        body.extend_from_slice(&sum.to_le_bytes());
        assert_eq!(parse(&body[..], body.len() as u64), None);
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(parse(&longer[..], longer.len() as u64), None);
        assert!(load(&dir.path().join("none")).is_none());
        save(&path, &[], true, std::iter::empty()).unwrap();
        let empty = Snapshot {
            exact: true,
            ..Snapshot::default()
        };
        assert_eq!(load(&path).unwrap(), empty);
    }

    #[test]
    fn a_new_snapshot_is_worth_writing_when_much_was_read_beyond_the_old() {
        assert!(!worth_saving(false, 0, 0, 0));
        assert!(worth_saving(false, 0, 1, 10));
        assert!(!worth_saving(true, 10_000_000, 5, 90_000));
        assert!(worth_saving(true, 10_000_000, 32, 100));
        assert!(worth_saving(true, 10_000_000, 3, 1_300_000));
        assert!(worth_saving(true, 1000, 1, 100_000));
    }
}
