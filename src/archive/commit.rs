//! Knowing what a commit did, and telling `vacuum` what writers are doing.
//!
//! **Markers.** A commit is the conditional put of `_delta_log/N.json`. When the store
//! wrote it but the reply was lost, the client tries the put again and is told that the
//! entry exists — exactly what it is told when another writer took version N. So every
//! commit auditq makes carries a [`Marker`], a unique id in its `commitInfo`
//! (`auditqCommit`), and after *any* error from a commit the writer reads the versions
//! written since and looks for it ([`Marker::find`]) before it concludes anything, and
//! before it deletes a file: found, the commit happened; another writer's entry at the
//! version, it did not (a put names its version, so a late copy of it can never land
//! elsewhere); the log unreadable, nothing is deleted and the outcome is reported as
//! unknown.
//!
//! **Leases.** A writer that may still commit files it is writing holds a [`Lease`]: an
//! object `writers/<marker>.json` beside the table, written before its first data file
//! and removed after its commit (or failure). `archive vacuum` keeps every unreferenced
//! file written since the oldest live lease began ([`in_flight`]); a lease older than
//! [`LEASE_LIFE`] is taken as the mark of a writer that died, and vacuum removes it.

use std::hash::{BuildHasher, Hasher};

use deltalake::kernel::transaction::CommitProperties;
use serde::{Deserialize, Serialize};

use super::Archive;

/// The `commitInfo` key of a [`Marker`].
pub const KEY: &str = "auditqCommit";

/// How long a lease is taken to mark a live writer: longer than any one commit attempt
/// (writing one batch's files, or one compaction) takes.
pub const LEASE_LIFE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The directory of leases, relative to the archive.
const WRITERS: &str = "writers";

/// A unique id for one commit attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker(String);

impl Default for Marker {
    fn default() -> Self {
        Self::new()
    }
}

impl Marker {
    /// 128 bits from the process's random hash keys, the clock, the pid and a counter.
    pub fn new() -> Marker {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut seed = std::collections::hash_map::RandomState::new().build_hasher();
        seed.write_u128(nanos);
        seed.write_u64(n);
        let text = format!("{}:{nanos}:{n}:{}", std::process::id(), seed.finish());
        Marker(format!(
            "{:032x}",
            xxhash_rust::xxh3::xxh3_128(text.as_bytes())
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `props` with this marker in the commit's `commitInfo`, and `more` entries.
    pub fn on(
        &self,
        props: CommitProperties,
        more: impl IntoIterator<Item = (String, serde_json::Value)>,
    ) -> CommitProperties {
        let mut all = vec![(KEY.to_owned(), serde_json::Value::from(self.0.clone()))];
        all.extend(more);
        props.with_metadata(all)
    }

    /// The version after `after` (all versions when `None`) whose `commitInfo` holds
    /// this marker, reading forward until the log ends. An error when an entry cannot
    /// be read: the outcome is then unknown.
    pub fn find(&self, archive: &Archive, after: Option<u64>) -> std::io::Result<Option<u64>> {
        let mut version = after.map_or(0, |v| v + 1);
        loop {
            let bytes = match archive.read_log(&format!("{version:020}.json")) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            if holds(&bytes, &self.0) {
                return Ok(Some(version));
            }
            version += 1;
        }
    }
}

/// Whether a log entry's `commitInfo` names `marker`.
fn holds(entry: &[u8], marker: &str) -> bool {
    #[derive(Deserialize)]
    struct Line {
        #[serde(rename = "commitInfo")]
        commit_info: Option<serde_json::Map<String, serde_json::Value>>,
    }
    entry
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice::<Line>(l).ok())
        .filter_map(|l| l.commit_info)
        .any(|info| info.get(KEY).and_then(|v| v.as_str()) == Some(marker))
}

/// What a lease records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    /// When the writer began, in milliseconds since the epoch.
    pub started_ms: i64,
    pub pid: u32,
    /// What writes: `import`, `compact`, ….
    pub what: String,
}

/// A writer's lease, removed when dropped.
#[derive(Debug)]
pub struct Lease {
    archive: Archive,
    rel: String,
}

impl Lease {
    /// [`Lease::take`], its failure an archive error naming the archive.
    pub fn hold(archive: &Archive, marker: &Marker, what: &str) -> super::Result<Lease> {
        Lease::take(archive, marker, what).map_err(|source| super::Error::Io {
            action: "writing the writer lease in",
            path: archive.root().to_owned(),
            source,
        })
    }

    /// Record that `what` is about to write files it may commit.
    pub fn take(archive: &Archive, marker: &Marker, what: &str) -> std::io::Result<Lease> {
        let holder = Holder {
            started_ms: chrono::Utc::now().timestamp_millis(),
            pid: std::process::id(),
            what: what.to_owned(),
        };
        let rel = format!("{WRITERS}/{}.json", marker.as_str());
        let bytes = serde_json::to_vec(&holder).map_err(std::io::Error::other)?;
        match archive.remote() {
            Some(r) => r.put(&rel, bytes.into())?,
            None => {
                let path = archive.root().join(&rel);
                std::fs::create_dir_all(archive.root().join(WRITERS))?;
                std::fs::write(&path, bytes)?;
            }
        }
        Ok(Lease {
            archive: archive.clone(),
            rel,
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let gone = remove(&self.archive, &self.rel);
        if let Err(e) = gone {
            // Vacuum takes it as a live writer's until LEASE_LIFE has passed.
            tracing::warn!(target: "auditq::archive", "removing the writer lease `{}`: {e}", self.rel);
        }
    }
}

fn remove(archive: &Archive, rel: &str) -> std::io::Result<()> {
    match archive.remote() {
        Some(r) => r.delete(rel),
        None => match std::fs::remove_file(archive.root().join(rel)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

/// The leases of writers that may still commit (younger than [`LEASE_LIFE`]), and how
/// many older ones there were (removed when `prune`). An unreadable lease counts as
/// live, begun now.
pub fn in_flight(archive: &Archive, prune: bool) -> std::io::Result<(Vec<Holder>, usize)> {
    let now = chrono::Utc::now().timestamp_millis();
    let names: Vec<String> = match archive.remote() {
        Some(r) => r.list(WRITERS)?.into_iter().map(|(rel, _)| rel).collect(),
        None => match std::fs::read_dir(archive.root().join(WRITERS)) {
            Ok(dir) => dir
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        },
    };
    let (mut live, mut stale) = (Vec::new(), 0);
    for name in names.into_iter().filter(|n| n.ends_with(".json")) {
        let rel = format!("{WRITERS}/{name}");
        let bytes = match archive.remote() {
            Some(r) => r.get(&rel)?.map(|b| b.to_vec()),
            None => std::fs::read(archive.root().join(&rel)).ok(),
        };
        let Some(bytes) = bytes else { continue };
        let holder = serde_json::from_slice::<Holder>(&bytes).unwrap_or(Holder {
            started_ms: now,
            pid: 0,
            what: format!("an unreadable lease `{rel}`"),
        });
        if now - holder.started_ms > LEASE_LIFE.as_millis() as i64 {
            stale += 1;
            if prune {
                remove(archive, &rel)?;
            }
        } else {
            live.push(holder);
        }
    }
    Ok((live, stale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_differ_and_are_found_in_commit_info_only() {
        let (a, b) = (Marker::new(), Marker::new());
        assert_ne!(a, b);
        let entry = format!(
            "{{\"commitInfo\":{{\"operation\":\"WRITE\",\"{KEY}\":\"{}\"}}}}\n{{\"add\":{{\"path\":\"{}\"}}}}\n",
            a.as_str(),
            b.as_str()
        );
        assert!(holds(entry.as_bytes(), a.as_str()));
        assert!(
            !holds(entry.as_bytes(), b.as_str()),
            "an add's path is not a marker"
        );
    }

    #[test]
    fn a_lease_is_listed_while_held_and_a_stale_one_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::at(dir.path());
        let lease = Lease::take(&archive, &Marker::new(), "import").unwrap();
        let (live, _) = in_flight(&archive, true).unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].what, "import");
        drop(lease);
        assert!(in_flight(&archive, true).unwrap().0.is_empty());
        let stale = Holder {
            started_ms: chrono::Utc::now().timestamp_millis()
                - LEASE_LIFE.as_millis() as i64
                - 1000,
            pid: 1,
            what: "compact".into(),
        };
        let path = dir.path().join(WRITERS).join("old.json");
        std::fs::write(&path, serde_json::to_vec(&stale).unwrap()).unwrap();
        assert_eq!(in_flight(&archive, false).unwrap(), (vec![], 1));
        assert!(path.exists(), "a dry run removes nothing");
        assert_eq!(in_flight(&archive, true).unwrap(), (vec![], 1));
        assert!(!path.exists(), "a stale lease is removed");
    }
}
