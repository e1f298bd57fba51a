//! Damage is detected, never answered around: each data file's xxh3 is recorded when it
//! is written (`ARCHIVE/checksums.jsonl`, appended and synced before the commit that adds
//! the file) and checked before a query reads the file.
//!
//! Hashing a file costs a read of all of it, so a file that matched once is remembered
//! (`cache/verified.json`) with its identity on disk: size, inode, modification and
//! change times. Any write to the file changes its change time (which no user can set
//! back), so a file overwritten in place is hashed again, and a mismatch is an error
//! naming the file. `archive verify` hashes every file whatever the cache says, which
//! also finds damage that left the times alone (a failing disk).
//!
//! On object storage the record is one object per writer's batch under
//! `ARCHIVE/checksums/` (objects cannot be appended to), each written before the commit
//! that adds its files; a file's identity there is its size, ETag and modification time.
//!
//! A file without a recorded checksum (written by compaction, or by auditq before this
//! scheme) has one recorded the first time it is read.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Archive, Error, Result};

/// The xxh3 and the length of the whole data file `rel` (relative to the table).
fn stored_hash(archive: &Archive, rel: &str) -> std::io::Result<(u64, u64)> {
    match archive.remote() {
        None => file_hash(&archive.events_dir().join(rel)),
        Some(r) => r
            .get(&format!("events/{rel}"))?
            .map(|b| (xxhash_rust::xxh3::xxh3_64(&b), b.len() as u64))
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound)),
    }
}

/// The xxh3 and the length of a whole file.
fn file_hash(path: &Path) -> std::io::Result<(u64, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((h.digest(), len));
        }
        len += n as u64;
        h.update(&buf[..n]);
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    file: String,
    size: u64,
    xxh3: String,
}

fn log_path(archive: &Archive) -> PathBuf {
    archive.root().join("checksums.jsonl")
}

/// The data files a commit's actions add (paths relative to the table).
pub fn added(actions: &[deltalake::kernel::Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            deltalake::kernel::Action::Add(add) => Some(add.path.clone()),
            _ => None,
        })
        .collect()
}

/// Hash the given data files (paths relative to the table) and append their checksums
/// to the archive's record, synced.
pub fn record(archive: &Archive, files: &[String]) -> Result<()> {
    let mut text = String::new();
    for rel in files {
        let (hash, size) = stored_hash(archive, rel).map_err(|source| Error::Io {
            action: "reading a written data file",
            path: archive.events_dir().join(rel),
            source,
        })?;
        let line = Line {
            file: rel.clone(),
            size,
            xxh3: format!("{hash:016x}"),
        };
        text.push_str(&serde_json::to_string(&line).expect("a line serializes"));
        text.push('\n');
    }
    if files.is_empty() {
        return Ok(());
    }
    if let Some(r) = archive.remote() {
        let name = format!(
            "checksums/{}-{:016x}.jsonl",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.9f"),
            xxhash_rust::xxh3::xxh3_64(format!("{text}{}", std::process::id()).as_bytes())
        );
        return r.put(&name, text.into()).map_err(|source| Error::Io {
            action: "writing",
            path: archive.root().join(&name),
            source,
        });
    }
    let path = log_path(archive);
    let io = |source| Error::Io {
        action: "writing",
        path: path.clone(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_data().map_err(io)
}

/// The recorded checksums: file → (size, xxh3), read on demand. On local disk the
/// record is read from its end, a block at a time, only as far back as the files asked
/// for: the files a query has not checked yet are the ones written lately, whose lines
/// are the last. A torn last line (a crash while appending) is skipped: its file was not
/// committed.
struct Record {
    known: HashMap<String, (u64, u64)>,
    /// The local record and how much of it, from its start, is still unread.
    file: Option<(std::fs::File, u64)>,
    /// The start of a line cut by the block read last.
    cut: Vec<u8>,
}

/// How much of the record is read at a time, from its end.
const RECORD_BLOCK: u64 = 1 << 16;

impl Record {
    fn open(archive: &Archive) -> Record {
        let mut record = Record {
            known: HashMap::new(),
            file: None,
            cut: Vec::new(),
        };
        match archive.remote() {
            None => {
                record.file = std::fs::File::open(log_path(archive)).ok().and_then(|f| {
                    let len = f.metadata().ok()?.len();
                    Some((f, len))
                });
            }
            Some(r) => record.add(recorded_remote(archive, r).as_bytes()),
        }
        record
    }

    /// Parse whole lines; a line already known from later in the record is kept.
    fn add(&mut self, text: &[u8]) {
        for line in text.split(|&b| b == b'\n') {
            let Ok(l) = serde_json::from_slice::<Line>(line) else {
                continue;
            };
            if let Ok(hash) = u64::from_str_radix(&l.xxh3, 16) {
                self.known.entry(l.file).or_insert((l.size, hash));
            }
        }
    }

    fn get(&mut self, rel: &str) -> Option<(u64, u64)> {
        loop {
            if let Some(&found) = self.known.get(rel) {
                return Some(found);
            }
            let (file, unread) = self.file.as_mut()?;
            if *unread == 0 {
                self.file = None;
                let cut = std::mem::take(&mut self.cut);
                self.add(&cut);
                continue;
            }
            let start = unread.saturating_sub(RECORD_BLOCK);
            let mut block = vec![0u8; (*unread - start) as usize];
            if file.read_exact_at(&mut block, start).is_err() {
                self.file = None;
                continue;
            }
            *unread = start;
            block.extend_from_slice(&self.cut);
            // The first line of the block may begin in the block before: keep it.
            let first = if start == 0 {
                0
            } else {
                block
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(block.len(), |i| i + 1)
            };
            self.cut = block[..first].to_vec();
            self.add(&block[first..]);
        }
    }
}

/// The checksum objects of an archive on object storage, concatenated. They never
/// change once written, so each is fetched once and kept in the local cache.
fn recorded_remote(archive: &Archive, r: &super::store::Remote) -> String {
    let Ok(objects) = r.list("checksums") else {
        return String::new();
    };
    let kept = archive.cache_dir().map(|d| d.join("checksums"));
    let mut text = String::new();
    for (name, _) in objects {
        let local = kept.as_ref().map(|d| d.join(&name));
        if let Some(t) = local.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
            text.push_str(&t);
            continue;
        }
        let Ok(Some(bytes)) = r.get(&format!("checksums/{name}")) else {
            continue;
        };
        let t = String::from_utf8_lossy(&bytes);
        text.push_str(&t);
        if let (Some(dir), Some(path)) = (&kept, &local)
            && std::fs::create_dir_all(dir).is_ok()
        {
            let _ = super::quarantine::write_atomic(path, t.as_bytes());
        }
    }
    text
}

/// What identifies a file's content without reading it: on disk, its size, inode and
/// times; on object storage, its size, ETag and modification time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    size: u64,
    ino: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
}

impl Identity {
    fn of_object(m: &datafusion::object_store::ObjectMeta) -> Identity {
        Identity {
            size: m.size,
            ino: 0,
            mtime_ns: m.last_modified.timestamp_nanos_opt().unwrap_or_default(),
            ctime_ns: 0,
            etag: m.e_tag.clone(),
        }
    }
}

fn identity(path: &Path) -> std::io::Result<Identity> {
    let m = std::fs::metadata(path)?;
    Ok(Identity {
        size: m.len(),
        ino: m.ino(),
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        etag: None,
    })
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Verified {
    files: HashMap<String, Identity>,
}

impl Verified {
    fn load(archive: &Archive) -> Verified {
        archive
            .cache_dir()
            .and_then(|d| std::fs::read(d.join("verified.json")).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Best effort: a read-only archive is checked again next time.
    fn store(&self, archive: &Archive) {
        let Some(dir) = archive.cache_dir() else {
            return;
        };
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        let Ok(bytes) = serde_json::to_vec(self) else {
            return;
        };
        super::summary::write_atomic(&dir, "verified.json", &bytes);
    }
}

/// Why a file failed its check.
#[derive(Debug, thiserror::Error)]
#[error("data file `{}` is damaged: {why}; `auditq archive verify` lists every damaged file", .path.display())]
pub struct Damaged {
    pub path: PathBuf,
    pub why: String,
}

/// Checks files against their recorded checksums, remembering the ones that matched.
/// The record (which grows with every file ever written) is read only when a file is
/// not remembered.
pub struct Checker {
    archive: Archive,
    recorded: Option<Record>,
    verified: Verified,
    /// Files hashed now, to remember or record.
    matched: Vec<(String, Identity)>,
    unrecorded: Vec<String>,
    /// On object storage: the table's objects, listed once when first needed, and
    /// whether that listing is fresh (taken by this checker).
    listed: Option<(super::store::Listing, bool)>,
}

impl Checker {
    pub fn new(archive: &Archive) -> Checker {
        Checker {
            archive: archive.clone(),
            recorded: None,
            verified: Verified::load(archive),
            matched: Vec::new(),
            unrecorded: Vec::new(),
            listed: None,
        }
    }

    /// The identity of the data file `rel` as stored now.
    fn identity(&mut self, rel: &str) -> std::io::Result<Identity> {
        let Some(r) = self.archive.remote() else {
            return identity(&self.archive.events_dir().join(rel));
        };
        let (listing, fresh) = match self.listed.take() {
            Some(kept) => kept,
            None => (r.table_listing(false)?, false),
        };
        // A file the listing lacks may be newer than the listing: look again, once.
        let (listing, fresh) = if !listing.contains_key(rel) && !fresh {
            (r.table_listing(true)?, true)
        } else {
            (listing, fresh)
        };
        let found = listing.get(rel).map(Identity::of_object);
        self.listed = Some((listing, fresh));
        found.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    /// Check one data file (`rel` to the table); `always` hashes it whatever the cache
    /// says.
    pub fn check(&mut self, rel: &str, always: bool) -> std::result::Result<(), Damaged> {
        let path = self.archive.events_dir().join(rel);
        let damaged = |why: String| Damaged {
            path: path.clone(),
            why,
        };
        let id = self
            .identity(rel)
            .map_err(|e| damaged(format!("cannot be read ({e})")))?;
        if !always && self.verified.files.get(rel) == Some(&id) {
            return Ok(());
        }
        let (hash, _) = stored_hash(&self.archive, rel)
            .map_err(|e| damaged(format!("cannot be read ({e})")))?;
        let archive = &self.archive;
        let recorded = self.recorded.get_or_insert_with(|| Record::open(archive));
        match recorded.get(rel) {
            Some((size, want)) if size != id.size || want != hash => {
                return Err(damaged(format!(
                    "its checksum is {hash:016x}, {want:016x} was recorded when it was written"
                )));
            }
            Some(_) => {}
            None => self.unrecorded.push(rel.to_owned()),
        }
        self.matched.push((rel.to_owned(), id));
        Ok(())
    }

    /// Remember what matched and record what had no checksum (best effort: a
    /// read-only archive is checked again next time). `live` holds the files of the
    /// table read: when the cache remembers more than twice as many, the others (removed
    /// by compactions) are forgotten, so the cache stays the size of the table, not of
    /// its history (and a query `--as-of` an old version does not empty it).
    pub fn finish(mut self, live: &HashSet<&str>) {
        if !self.unrecorded.is_empty() && record(&self.archive, &self.unrecorded).is_err() {
            return;
        }
        let before = self.verified.files.len();
        if before > 2 * live.len() + 1024 {
            self.verified
                .files
                .retain(|rel, _| live.contains(rel.as_str()));
        }
        if self.matched.is_empty() && self.verified.files.len() == before {
            return;
        }
        for (rel, id) in self.matched.drain(..) {
            self.verified.files.insert(rel, id);
        }
        self.verified.store(&self.archive);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record read from its end, across blocks, finds every line (the newest of a
    /// file recorded twice), skips a torn last line, and reads no further back than
    /// needed.
    #[test]
    fn the_record_is_read_from_its_end_as_far_as_needed() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::at(dir.path().to_owned());
        let line = |file: &str, size: u64, hash: u64| {
            let l = Line {
                file: file.into(),
                size,
                xxh3: format!("{hash:016x}"),
            };
            serde_json::to_string(&l).unwrap() + "\n"
        };
        let mut text = String::new();
        for i in 0..5000u64 {
            text.push_str(&line(
                &format!("date=2026-01-01/part-{i:05}.parquet"),
                i,
                i * 7,
            ));
        }
        text.push_str(&line("date=2026-01-01/part-00003.parquet", 3, 99));
        text.push_str("{\"file\":\"date=2026-01-01/torn.parquet\",\"si");
        std::fs::write(log_path(&archive), &text).unwrap();
        assert!(text.len() as u64 > 4 * RECORD_BLOCK);

        let mut record = Record::open(&archive);
        let newest = "date=2026-01-01/part-04999.parquet";
        assert_eq!(record.get(newest), Some((4999, 4999 * 7)));
        // Only the last block was read.
        assert!(record.known.len() < 1000, "{}", record.known.len());
        assert_eq!(record.get("date=2026-01-01/torn.parquet"), None);
        for i in (0..5000u64).step_by(97) {
            let want = if i == 3 { (3, 99) } else { (i, i * 7) };
            let rel = format!("date=2026-01-01/part-{i:05}.parquet");
            assert_eq!(record.get(&rel), Some(want), "{rel}");
        }
        assert_eq!(
            record.get("date=2026-01-01/part-00003.parquet"),
            Some((3, 99))
        );
        assert_eq!(
            record.get("date=2026-01-01/part-00000.parquet"),
            Some((0, 0))
        );
        assert_eq!(record.known.len(), 5000);
        assert_eq!(record.get("never.parquet"), None);
    }
}
