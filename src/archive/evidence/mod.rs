//! The archive's evidence: an append-only Merkle log of every archived event, signed
//! checkpoints of it, proofs, and the checks an auditor runs (issue 29).
//!
//! **The log.** Every event has a place in it, its `leaf` column: the commit that
//! archives events gives them the next places in the order it writes them (the commit's
//! rows sorted by time), and records the log's size after it in its `commitInfo`
//! ([`LEAVES_KEY`]). So leaves are in archiving order — commit version, then position —
//! and the order survives compaction and `repair`, which rewrite files but copy the
//! column. A leaf is RFC 9162's hash of `"auditq/event/v1" 0x00 id 0x00 SHA-256(raw)`
//! ([`crate::merkle::event_leaf`]), which anyone recomputes from the event.
//!
//! **Beside the table** (`evidence/`, on the local disk or under the archive's prefix on
//! object storage), what makes proofs cheap without storing a hash per event (which
//! would be 14% of the archive):
//!
//! ```text
//! evidence/
//!   tiles/00000000          leaves 0..65536: the root of each run of 256 leaves (a
//!                           "chunk"), then the first 4 bytes of each leaf's hash
//!   tiles/00000001.p1200    the last tile while partial: its 1,200 leaves' chunk roots
//!                           and fingerprints, then the hashes of the leaves past the
//!                           last whole chunk
//!   checkpoints/<size:020>  the signed checkpoint of the tree of that many leaves
//! ```
//!
//! A proof reads the chunk roots and the 256 events of the one chunk it needs (found by
//! their `leaf` values, which the Delta log's statistics place in few files). The tiles
//! are a cache of the data that a seal checks against the signed root before it extends
//! them, and that `verify` recomputes: nothing in them is trusted.

mod adopt;
mod prove;
mod seal;
mod tiles;
mod verify;

use std::collections::HashMap;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::datatypes::Int64Type;
use deltalake::DeltaTable;

pub use adopt::{Adopted, adopt};
pub use prove::{ConsistencyProof, Proof, consistency, prove};
pub use seal::{Sealed, seal, seal_table};
pub use verify::{Report, verify};

use super::read::{LiveFile, live_files};
use super::{Archive, Error, Result};
use crate::event::col;
use crate::merkle::{self, Hash};
use crate::note;

/// The `commitInfo` key holding the log's size after a commit that archived events.
pub const LEAVES_KEY: &str = "auditqLeaves";

/// Leaves per chunk: the tiles keep one hash per chunk (and a fingerprint per leaf).
pub const CHUNK: u64 = 256;
/// Leaves per tile file.
pub const TILE: u64 = 65_536;

const TILES: &str = "evidence/tiles";
const CHECKPOINTS: &str = "evidence/checkpoints";

fn evidence_err(what: impl Into<String>) -> Error {
    Error::Evidence { what: what.into() }
}

fn io_err(
    action: &'static str,
    rel: &str,
    archive: &Archive,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = archive.root().join(rel);
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// The object `rel` (relative to the archive), or `None`.
fn get(a: &Archive, rel: &str) -> std::io::Result<Option<Vec<u8>>> {
    match a.remote() {
        Some(r) => Ok(r.get(rel)?.map(|b| b.to_vec())),
        None => match std::fs::read(a.root().join(rel)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        },
    }
}

/// The local path of `rel`, its directory made.
fn local_path(a: &Archive, rel: &str) -> std::io::Result<std::path::PathBuf> {
    let path = a.root().join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    Ok(path)
}

/// Write `rel` whole (readers see the old bytes or the new).
fn put(a: &Archive, rel: &str, bytes: Vec<u8>) -> std::io::Result<()> {
    match a.remote() {
        Some(r) => r.put(rel, bytes.into()),
        None => super::quarantine::write_atomic(&local_path(a, rel)?, &bytes),
    }
}

/// Create `rel` unless it exists: `false` when it did (its bytes are left alone).
fn put_new(a: &Archive, rel: &str, bytes: Vec<u8>) -> std::io::Result<bool> {
    match a.remote() {
        Some(r) => r.put_if_absent(rel, bytes.into()),
        None => {
            let path = local_path(a, rel)?;
            // Written aside, then linked: the name appears whole, and only once.
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, &bytes)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            let linked = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

fn delete(a: &Archive, rel: &str) -> std::io::Result<()> {
    match a.remote() {
        Some(r) => r.delete(rel),
        None => match std::fs::remove_file(a.root().join(rel)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

/// The names in the directory `dir` (relative to the archive), sorted.
fn list(a: &Archive, dir: &str) -> std::io::Result<Vec<String>> {
    let mut names = match a.remote() {
        Some(r) => r.list_after(dir, "")?,
        None => match std::fs::read_dir(a.root().join(dir)) {
            Ok(entries) => entries
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<std::io::Result<Vec<_>>>()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        },
    };
    names.sort();
    Ok(names)
}

/// A signed checkpoint, parsed: the C2SP `tlog-checkpoint` body (origin, size, root,
/// extension lines) of a signed note.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// The Delta version it seals (extension line `delta-version N`).
    pub version: Option<u64>,
    /// The time of that version's commit (extension line `time RFC3339`).
    pub time: Option<String>,
    /// The whole signed note.
    pub text: String,
}

impl Checkpoint {
    /// The body of a checkpoint.
    fn body(origin: &str, size: u64, root: &Hash, version: u64, time: &str) -> String {
        use base64::Engine;
        let root = base64::engine::general_purpose::STANDARD.encode(root);
        format!("{origin}\n{size}\n{root}\ndelta-version {version}\ntime {time}\n")
    }

    /// Check `text`'s signature by `verifier` and parse its body.
    pub fn open(text: &str, verifier: &note::Verifier) -> std::result::Result<Checkpoint, String> {
        let body = verifier.verify(text).map_err(|e| e.to_string())?;
        Checkpoint::parse(body, text)
    }

    /// Parse `text` without checking its signature (for a prover, whose reader checks).
    fn unverified(text: &str) -> std::result::Result<Checkpoint, String> {
        let end = text.find("\n\n").ok_or("not a signed note")?;
        Checkpoint::parse(&text[..end + 1], text)
    }

    fn parse(body: &str, text: &str) -> std::result::Result<Checkpoint, String> {
        use base64::Engine;
        let mut lines = body.lines();
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or("no origin line")?;
        let size = lines
            .next()
            .and_then(|l| l.parse::<u64>().ok())
            .ok_or("the second line is not a tree size")?;
        let root = lines
            .next()
            .and_then(|l| base64::engine::general_purpose::STANDARD.decode(l).ok())
            .and_then(|b| Hash::try_from(b.as_slice()).ok())
            .ok_or("the third line is not a base64 SHA-256 root hash")?;
        let (mut version, mut time) = (None, None);
        for line in lines {
            if let Some(v) = line.strip_prefix("delta-version ") {
                version = v.parse().ok();
            } else if let Some(t) = line.strip_prefix("time ") {
                time = Some(t.to_owned());
            }
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            version,
            time,
            text: text.to_owned(),
        })
    }
}

/// The sizes of the stored checkpoints, ascending.
fn checkpoint_sizes(a: &Archive) -> Result<Vec<u64>> {
    let names = list(a, CHECKPOINTS).map_err(io_err("listing checkpoints", CHECKPOINTS, a))?;
    Ok(names.iter().filter_map(|n| n.parse::<u64>().ok()).collect())
}

fn checkpoint_rel(size: u64) -> String {
    format!("{CHECKPOINTS}/{size:020}")
}

/// The text of the checkpoint of `size` leaves.
fn read_checkpoint(a: &Archive, size: u64) -> Result<String> {
    let rel = checkpoint_rel(size);
    let bytes = get(a, &rel)
        .map_err(io_err("reading checkpoint", &rel, a))?
        .ok_or_else(|| evidence_err(format!("checkpoint `{rel}` is gone")))?;
    String::from_utf8(bytes).map_err(|_| evidence_err(format!("checkpoint `{rel}` is not UTF-8")))
}

/// The latest checkpoint, checked by `verifier` when one is given; `None` before the
/// first seal.
pub fn latest(a: &Archive, verifier: Option<&note::Verifier>) -> Result<Option<Checkpoint>> {
    let Some(&size) = checkpoint_sizes(a)?.last() else {
        return Ok(None);
    };
    let text = read_checkpoint(a, size)?;
    let opened = match verifier {
        Some(v) => Checkpoint::open(&text, v)
            .map_err(|why| format!("does not verify with key `{v}`: {why}")),
        None => Checkpoint::unverified(&text),
    };
    let c = opened
        .map_err(|why| evidence_err(format!("checkpoint `{}` {why}", checkpoint_rel(size))))?;
    if c.size != size {
        return Err(evidence_err(format!(
            "checkpoint `{}` says {} leaves",
            checkpoint_rel(size),
            c.size
        )));
    }
    Ok(Some(c))
}

/// The Delta version each checkpoint sealed -> its size (the checkpoints' extension
/// lines, read without checking signatures: for `archive history`).
pub fn sealed_versions(a: &Archive) -> Result<HashMap<u64, u64>> {
    let mut out = HashMap::new();
    for size in checkpoint_sizes(a)? {
        if let Ok(c) = Checkpoint::unverified(&read_checkpoint(a, size)?)
            && let Some(v) = c.version
        {
            out.insert(v, size);
        }
    }
    Ok(out)
}

/// The `commitInfo` of the log entry of `version`, if it can be read.
pub fn commit_info(a: &Archive, version: u64) -> Option<serde_json::Value> {
    let bytes = a.read_log(&format!("{version:020}.json")).ok()?;
    bytes.split(|&b| b == b'\n').find_map(|line| {
        let v: serde_json::Value = serde_json::from_slice(line).ok()?;
        v.get("commitInfo").cloned()
    })
}

/// The log's size after `version`, from the nearest commit at or before it that says
/// (reading back through the log while its entries are there).
fn leaves_in_log(a: &Archive, version: u64) -> Option<u64> {
    (0..=version).rev().find_map(|v| {
        let info = commit_info(a, v);
        if info.is_none() && !a.log_has(&format!("{v:020}.json")) {
            // The log was cleaned up before this entry: stop looking.
            return Some(None);
        }
        info.and_then(|i| i.get(LEAVES_KEY).and_then(serde_json::Value::as_u64))
            .map(Some)
    })?
}

/// Each live file's range of `leaf` values from the statistics the Delta log keeps:
/// `Some(None)` for a file whose statistics show no leaf (written before schema version
/// 2); a file without statistics is absent.
fn leaf_ranges(a: &Archive, table: &DeltaTable) -> Result<HashMap<String, Option<(u64, u64)>>> {
    let snapshot = table.snapshot().map_err(|e| Error::Delta {
        path: a.events_dir(),
        source: Box::new(e),
    })?;
    Ok(snapshot
        .log_data()
        .iter()
        .filter_map(|f| {
            let stats: serde_json::Value = serde_json::from_str(&f.stats()?).ok()?;
            let lo = stats["minValues"][col::LEAF].as_u64();
            let hi = stats["maxValues"][col::LEAF].as_u64();
            Some((f.object_store_path().to_string(), lo.zip(hi)))
        })
        .collect())
}

/// The place the next archived event takes: the log's size after the table's version,
/// as the last commit that archived events recorded it; where the log no longer says
/// (cleaned up), one past the largest `leaf` in the data; never below a seal.
pub fn next_leaf(a: &Archive, table: &DeltaTable) -> Result<u64> {
    let Some(version) = table.version() else {
        return Ok(0);
    };
    let sealed = checkpoint_sizes(a)?.last().copied().unwrap_or(0);
    if let Some(n) = leaves_in_log(a, version) {
        return Ok(n.max(sealed));
    }
    let in_data = leaf_ranges(a, table)?
        .values()
        .filter_map(|r| r.map(|(_, hi)| hi + 1))
        .max()
        .unwrap_or(0);
    Ok(in_data.max(sealed))
}

/// An event as the log sees it.
pub struct Leaf<'a> {
    pub leaf: u64,
    pub id: &'a str,
    pub raw: &'a str,
}

/// The events of `files` whose leaves are in `lo..hi`, read from the pages that hold
/// them (a file's `leaf` column first, then `id` and `raw` where it says).
fn read_events(
    files: &[LiveFile],
    lo: u64,
    hi: u64,
    mut each: impl FnMut(&LiveFile, Leaf<'_>) -> Result<()>,
) -> Result<()> {
    let wanted = |leaves: &ArrayRef| -> BooleanArray {
        let leaves = leaves.as_primitive::<Int64Type>();
        let wanted = |l: i64| u64::try_from(l).is_ok_and(|l| (lo..hi).contains(&l));
        leaves.iter().map(|l| Some(l.is_some_and(wanted))).collect()
    };
    for file in files {
        let columns = [col::ID, col::RAW, col::LEAF];
        super::read::read_rows_where(file, col::LEAF, wanted, &columns, |b| {
            // By name: a batch has the file's column order.
            let column = |name| b.column_by_name(name);
            let (Some(ids), Some(raws), Some(leaves)) =
                (column(col::ID), column(col::RAW), column(col::LEAF))
            else {
                return Ok(());
            };
            let (ids, raws) = (ids.as_string::<i32>(), raws.as_string::<i32>());
            let leaves = leaves.as_primitive::<Int64Type>();
            for row in 0..b.num_rows() {
                let leaf = u64::try_from(leaves.value(row)).expect("a kept leaf");
                each(
                    file,
                    Leaf {
                        leaf,
                        id: ids.value(row),
                        raw: raws.value(row),
                    },
                )?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// The hashes of leaves `lo..hi` read from the data: an error naming the first leaf
/// missing or held twice.
fn leaves_from_data(a: &Archive, table: &DeltaTable, lo: u64, hi: u64) -> Result<Vec<Hash>> {
    let ranges = leaf_ranges(a, table)?;
    let files: Vec<LiveFile> = live_files(a, table)?
        .into_iter()
        // A file without statistics is read; one whose statistics show no leaf is not.
        .filter(|f| match ranges.get(&f.rel) {
            None => true,
            Some(None) => false,
            Some(Some((min, max))) => *min < hi && *max >= lo,
        })
        .collect();
    let mut out: Vec<Option<Hash>> = vec![None; (hi - lo) as usize];
    read_events(&files, lo, hi, |file, e| {
        let leaf = e.leaf;
        let slot = &mut out[(leaf - lo) as usize];
        if slot.is_some() {
            return Err(evidence_err(format!(
                "leaf {leaf} is held twice (again by event `{}` in `{}`); run `auditq archive verify`",
                e.id, file.rel
            )));
        }
        *slot = Some(merkle::leaf_hash(&merkle::event_leaf(
            e.id,
            e.raw.as_bytes(),
        )));
        Ok(())
    })?;
    out.into_iter()
        .enumerate()
        .map(|(i, h)| {
            h.ok_or_else(|| {
                evidence_err(format!(
                    "leaf {} is in no live file (the table at version {} lacks an event the log counts); run `auditq archive verify`",
                    lo + i as u64,
                    table.version().unwrap_or(0)
                ))
            })
        })
        .collect()
}

fn b64(h: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(h)
}
