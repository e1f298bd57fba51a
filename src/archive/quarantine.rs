//! The quarantine: input that could not be archived, kept byte for byte.
//!
//! Each item is two files named after a hash of its content, so re-reading the same input
//! does not pile up copies: `<kind>/<hash>.json` (the raw bytes, exactly as received) and
//! `<kind>/<hash>.meta.json` (why, from where, when). Files are written to a temporary
//! name and renamed, so a crash never leaves half an item.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Why something is in the quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Not an archivable event: bad JSON, no `id`, unparsable `time`.
    Invalid,
    /// An event whose id is already archived with different content; the archived one is
    /// kept, this is the newcomer.
    Conflict,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Invalid => "invalid",
            Kind::Conflict => "conflict",
        }
    }
}

#[derive(Debug, Serialize)]
struct Meta<'a> {
    kind: Kind,
    reason: &'a str,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    quarantined_at: String,
    bytes: usize,
}

#[derive(Debug, Clone)]
pub struct Quarantine {
    /// The directory; for an archive on object storage, its URL (for messages).
    dir: PathBuf,
    /// The archive's object store, when the quarantine is `quarantine/` there.
    remote: Option<std::sync::Arc<super::store::Remote>>,
}

impl Quarantine {
    pub fn new(dir: PathBuf) -> Self {
        Quarantine { dir, remote: None }
    }

    /// The quarantine beside a table on object storage (`url` names it in messages).
    pub fn remote(remote: std::sync::Arc<super::store::Remote>, url: PathBuf) -> Self {
        Quarantine {
            dir: url,
            remote: Some(remote),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keep `raw` aside. Returns the path of the raw copy.
    pub fn put(
        &self,
        kind: Kind,
        raw: &[u8],
        reason: &str,
        source: &str,
        id: Option<&str>,
    ) -> std::io::Result<PathBuf> {
        let dir = self.dir.join(kind.dir());
        let name = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(raw));
        let path = dir.join(format!("{name}.json"));
        let meta = || meta_bytes(kind, reason, source, id, raw.len());
        if let Some(remote) = &self.remote {
            // Objects appear whole; the raw copy goes last, as on disk.
            let rel = format!("quarantine/{}/{name}", kind.dir());
            if remote.head(&format!("{rel}.json"))?.is_none() {
                remote.put(&format!("{rel}.meta.json"), meta()?.into())?;
                remote.put(&format!("{rel}.json"), bytes::Bytes::copy_from_slice(raw))?;
            }
            return Ok(path);
        }
        std::fs::create_dir_all(&dir)?;
        if !path.exists() {
            write_atomic(&dir.join(format!("{name}.meta.json")), &meta()?)?;
            write_atomic(&path, raw)?;
        }
        Ok(path)
    }

    /// Keep many items of one kind and source aside: `(id, raw, reason)` each. On object
    /// storage, 16 at a time (one at a time, 200,000 conflicts took 13
    /// minutes).
    pub fn put_all(
        &self,
        kind: Kind,
        source: &str,
        items: &[(String, &str, String)],
    ) -> std::io::Result<()> {
        let Some(remote) = &self.remote else {
            for (id, raw, reason) in items {
                self.put(kind, raw.as_bytes(), reason, source, Some(id))?;
            }
            return Ok(());
        };
        use datafusion::object_store::ObjectStoreExt;
        use futures_util::{StreamExt, TryStreamExt};
        let mut jobs = Vec::with_capacity(items.len());
        for (id, raw, reason) in items {
            let name = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(raw.as_bytes()));
            let rel = format!("quarantine/{}/{name}", kind.dir());
            let meta = meta_bytes(kind, reason, source, Some(id), raw.len())?;
            jobs.push((
                remote.path(&format!("{rel}.meta.json")),
                remote.path(&format!("{rel}.json")),
                bytes::Bytes::from(meta),
                bytes::Bytes::copy_from_slice(raw.as_bytes()),
            ));
        }
        let store = remote.store.clone();
        super::store::wait(async move {
            futures_util::stream::iter(jobs)
                .map(|(meta_at, raw_at, meta, raw)| {
                    let store = store.clone();
                    async move {
                        // Named by their content: writing an item again rewrites the same
                        // bytes (and its record's time), cheaper than asking first. Objects
                        // appear whole; the raw copy goes last, as on disk.
                        store.put(&meta_at, meta.into()).await?;
                        store.put(&raw_at, raw.into()).await.map(|_| ())
                    }
                })
                .buffer_unordered(QUARANTINE_WRITES)
                .try_collect::<Vec<()>>()
                .await
        })
        .map(|_| ())
        .map_err(std::io::Error::other)
    }

    /// The items of a kind: (name relative to the quarantine, raw bytes), in name order.
    pub fn items(&self, kind: Kind) -> std::io::Result<Vec<(String, Vec<u8>)>> {
        let item = |n: &str| n.ends_with(".json") && !n.ends_with(".meta.json");
        let mut out = Vec::new();
        if let Some(remote) = &self.remote {
            let dir = format!("quarantine/{}", kind.dir());
            for (rel, _) in remote.list(&dir)? {
                if item(&rel)
                    && let Some(bytes) = remote.get(&format!("{dir}/{rel}"))?
                {
                    out.push((format!("{}/{rel}", kind.dir()), bytes.to_vec()));
                }
            }
        } else {
            let dir = self.dir.join(kind.dir());
            let entries = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(e),
            };
            for e in entries {
                let name = e?.file_name().to_string_lossy().into_owned();
                if item(&name) {
                    out.push((
                        format!("{}/{name}", kind.dir()),
                        std::fs::read(dir.join(&name))?,
                    ));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Number of items of a kind.
    pub fn count(&self, kind: Kind) -> usize {
        let item = |n: &str| n.ends_with(".json") && !n.ends_with(".meta.json");
        if let Some(remote) = &self.remote {
            return remote
                .list(&format!("quarantine/{}", kind.dir()))
                .map(|found| found.iter().filter(|(rel, _)| item(rel)).count())
                .unwrap_or(0);
        }
        std::fs::read_dir(self.dir.join(kind.dir()))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| item(&e.file_name().to_string_lossy()))
                    .count()
            })
            .unwrap_or(0)
    }
}

/// Items written at once to object storage.
const QUARANTINE_WRITES: usize = 16;

/// An item's `.meta.json`.
fn meta_bytes(
    kind: Kind,
    reason: &str,
    source: &str,
    id: Option<&str>,
    bytes: usize,
) -> std::io::Result<Vec<u8>> {
    let meta = Meta {
        kind,
        reason,
        source,
        id,
        quarantined_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        bytes,
    };
    serde_json::to_vec_pretty(&meta).map_err(std::io::Error::other)
}

/// Write a file so that it either exists whole or not at all.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_are_kept_once_and_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::new(dir.path().join("quarantine"));
        let raw = b"{\"id\": 1, \"broken\"";
        let p1 = q
            .put(Kind::Invalid, raw, "not valid JSON", "stdin:3", None)
            .unwrap();
        let p2 = q
            .put(Kind::Invalid, raw, "not valid JSON", "stdin:3", None)
            .unwrap();
        assert_eq!(p1, p2);
        assert_eq!(std::fs::read(&p1).unwrap(), raw);
        assert_eq!(q.count(Kind::Invalid), 1);
        assert_eq!(q.count(Kind::Conflict), 0);
        let meta = std::fs::read_to_string(p1.with_extension("meta.json")).unwrap();
        assert!(meta.contains("\"reason\": \"not valid JSON\""), "{meta}");
    }
}
