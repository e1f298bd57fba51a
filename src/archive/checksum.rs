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

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
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

/// The recorded checksums: file → (size, xxh3). A torn last line (a crash while
/// appending) is skipped: its file was not committed.
fn recorded(archive: &Archive) -> HashMap<String, (u64, u64)> {
    let text = match archive.remote() {
        None => std::fs::read_to_string(log_path(archive)).unwrap_or_default(),
        Some(r) => recorded_remote(archive, r),
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .filter_map(|l| Some((l.file, (l.size, u64::from_str_radix(&l.xxh3, 16).ok()?))))
        .collect()
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

/// Why a file failed its check.
#[derive(Debug, thiserror::Error)]
#[error("data file `{}` is damaged: {why}; `auditq archive verify` lists every damaged file", .path.display())]
pub struct Damaged {
    pub path: PathBuf,
    pub why: String,
}

/// Checks files against their recorded checksums, remembering the ones that matched.
pub struct Checker {
    archive: Archive,
    recorded: HashMap<String, (u64, u64)>,
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
        let verified = archive
            .cache_dir()
            .and_then(|d| std::fs::read(d.join("verified.json")).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Checker {
            archive: archive.clone(),
            recorded: recorded(archive),
            verified,
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
        match self.recorded.get(rel) {
            Some(&(size, want)) if size != id.size || want != hash => {
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
    /// read-only archive is checked again next time).
    pub fn finish(mut self) {
        if !self.unrecorded.is_empty() && record(&self.archive, &self.unrecorded).is_err() {
            return;
        }
        if self.matched.is_empty() {
            return;
        }
        for (rel, id) in self.matched.drain(..) {
            self.verified.files.insert(rel, id);
        }
        let Some(dir) = self.archive.cache_dir() else {
            return;
        };
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        let Ok(bytes) = serde_json::to_vec(&self.verified) else {
            return;
        };
        super::summary::write_atomic(&dir, "verified.json", &bytes);
    }
}
