//! The archive: a directory holding a Delta Lake table of events, a quarantine and a lock.
//!
//! ```text
//! ARCHIVE/
//!   events/            Delta Lake table, partitioned by date=YYYY-MM-DD (UTC day of `time`)
//!     _delta_log/      the transaction log: every write is one atomic commit
//!     date=2026-05-19/part-….zstd.parquet
//!   quarantine/
//!     invalid/         input that is not an archivable event: raw bytes + .meta.json
//!     conflict/        events whose id is archived with other content: newcomer's raw JSON
//!   cache/             per data file and in total: rows, time range, action counts
//!                      (a cache: rebuilt from the data files when missing or stale)
//!   writers/           a lease per commit in flight (see [`commit`]): what vacuum must not delete
//!   LOCK               held (flock) by the one writer; the kernel frees it if the holder dies
//! ```
//!
//! An archive on object storage (`s3://bucket/prefix`, see [`store`]) has the same
//! layout under its prefix, without `LOCK` (writers rely on conditional commits alone)
//! and with `cache/` on the local disk; its checksums are objects under `checksums/`.

pub mod checksum;
pub mod commit;
pub mod compact_small;
mod count_by;
pub mod evidence;
pub mod history;
mod id_snapshot;
pub mod ids;
mod local_reads;
pub mod lock;
pub mod maintain;
mod newest_first;
mod per_value;
pub mod provider;
mod prune_by;
pub mod quarantine;
pub mod read;
mod read_ahead;
pub mod repair;
mod rewrite;
pub mod session;
pub mod store;
pub mod summary;
mod table_cache;
pub mod vacuum;
pub mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltalake::DeltaTable;

pub use lock::Lock;
pub use quarantine::Quarantine;

/// Errors of the archive stage. Each carries the path or partition it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no archive at `{}` (create one with `auditq import` or `auditq sync`)", .path.display())]
    Missing { path: PathBuf },
    #[error("`{}` is not an archive directory: {reason}", .path.display())]
    NotAnArchive { path: PathBuf, reason: String },
    #[error("archive `{}` is locked by another auditq process{}; wait for it to finish", .path.display(), .holder.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Locked {
        path: PathBuf,
        holder: Option<String>,
    },
    #[error("{action} `{}`: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("delta table `{}`: {source}", .path.display())]
    Delta {
        path: PathBuf,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error("reading `{}`: {source}", .path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: Box<datafusion::parquet::errors::ParquetError>,
    },
    #[error("query over `{}`: {source}", .path.display())]
    Query {
        path: PathBuf,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
    #[error("the archive's log is damaged: `{}` {reason}; no answer is given from a table whose history is incomplete (restore the file from a backup)", .path.display())]
    DamagedLog { path: PathBuf, reason: String },
    #[error("vacuum deleted nothing: {} unreferenced files hold events the table does not have ({}); they are the only copies. Re-archive them from their `raw` column, e.g. `duckdb -noheader -list -c \"SELECT raw FROM 'FILE'\" > lost.ndjson && auditq import lost.ndjson`, then vacuum again", .files.len(), .files.iter().take(3).map(|(f, n)| format!("{f}: {n} events")).collect::<Vec<_>>().join(", "))]
    WouldLoseEvents { files: Vec<(String, u64)> },
    #[error("{what} {} is under {}, the least that removed files are kept: the archive's time-travel window (`auditq archive time-travel`) and at least 1h for the writes and queries in flight; pass --force to go below it", short_duration(*.given), short_duration(*.min))]
    RetentionTooShort {
        what: &'static str,
        given: std::time::Duration,
        min: std::time::Duration,
    },
    #[error("archive `{}` changed under {attempts} commits in a row (other writers); nothing of this batch was committed, run it again", .path.display())]
    Contended { path: PathBuf, attempts: u32 },
    #[error("archive `{}` changed while {what} ran (another writer committed first); nothing was changed, run it again", .path.display())]
    Moved { path: PathBuf, what: String },
    #[error("--as-of `{given}`: {why}")]
    AsOf { given: String, why: String },
    #[error("evidence: {what}")]
    Evidence { what: String },
    #[error("{0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `90s`, `15m`, `1h`, `7d`: the largest unit that divides the duration.
pub(crate) fn short_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// An archive: a local directory, or a prefix on object storage.
#[derive(Debug, Clone)]
pub struct Archive {
    /// The directory; for an archive on object storage, its URL (for messages).
    root: PathBuf,
    remote: Option<Arc<store::Remote>>,
    /// `HOST:PORT` of the Ballista scheduler that runs this archive's queries, if any.
    cluster: Option<String>,
    /// The key that seals each commit (see [`evidence`]), if one is configured.
    signer: Option<Arc<crate::note::Signer>>,
    /// The version queries read (`--as-of`); `None`: the latest.
    as_of: Option<u64>,
    /// Where each checkpoint is also written (`--publish`).
    publish: Option<Arc<Archive>>,
    /// Whether a writer compacts the small files of the days it touched after each
    /// commit (see [`compact_small`]).
    auto_compact: bool,
    /// Whether a writer vacuums every checkpoint interval (see [`vacuum`]).
    auto_vacuum: bool,
}

impl Archive {
    /// The archive at `root`, which need not exist yet.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Archive {
            root: root.into(),
            remote: None,
            cluster: None,
            signer: None,
            as_of: None,
            publish: None,
            auto_compact: true,
            auto_vacuum: true,
        }
    }

    /// The archive on object storage at `remote`.
    pub fn on(remote: store::Remote) -> Self {
        Archive {
            root: PathBuf::from(remote.url.as_str().trim_end_matches('/')),
            remote: Some(Arc::new(remote)),
            cluster: None,
            signer: None,
            as_of: None,
            publish: None,
            auto_compact: true,
            auto_vacuum: true,
        }
    }

    /// The same archive, its queries run on the Ballista cluster at `scheduler`
    /// (`HOST:PORT`), or locally with `None`.
    pub fn with_cluster(mut self, scheduler: Option<String>) -> Self {
        self.cluster = scheduler;
        self
    }

    /// The same archive, each commit sealed with `signer` (or none).
    pub fn with_signer(mut self, signer: Option<Arc<crate::note::Signer>>) -> Self {
        self.signer = signer;
        self
    }

    /// The same archive, its writers compacting small files after each commit or not.
    pub fn with_auto_compact(mut self, on: bool) -> Self {
        self.auto_compact = on;
        self
    }

    /// Whether writers compact small files after each commit.
    pub fn auto_compact(&self) -> bool {
        self.auto_compact
    }

    /// The same archive, its writers vacuuming old file versions on schedule or not.
    pub fn with_auto_vacuum(mut self, on: bool) -> Self {
        self.auto_vacuum = on;
        self
    }

    /// Whether writers vacuum old file versions (every checkpoint interval).
    pub fn auto_vacuum(&self) -> bool {
        self.auto_vacuum
    }

    /// The same archive, its queries answered from `version` (`None`: the latest). Only
    /// readers honour it; writers and maintenance always work on the latest version.
    pub fn as_of(mut self, version: Option<u64>) -> Self {
        self.as_of = version;
        self
    }

    /// The version queries read, when not the latest.
    pub fn read_version(&self) -> Option<u64> {
        self.as_of
    }

    /// The same archive, each checkpoint also written to `to` (a directory or a prefix
    /// on object storage).
    pub fn publishing_to(mut self, to: Option<Archive>) -> Self {
        self.publish = to.map(Arc::new);
        self
    }

    /// Where checkpoints are also written, if anywhere.
    pub fn publish_to(&self) -> Option<&Archive> {
        self.publish.as_deref()
    }

    /// The key that seals each commit, if any.
    pub fn signer(&self) -> Option<&Arc<crate::note::Signer>> {
        self.signer.as_ref()
    }

    /// The scheduler that runs this archive's queries, if not this process.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    /// The directory, or for an archive on object storage its URL.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The object store holding the archive, when it is not a local directory.
    pub fn remote(&self) -> Option<&Arc<store::Remote>> {
        self.remote.as_ref()
    }

    /// The Delta table directory.
    pub fn events_dir(&self) -> PathBuf {
        self.root.join("events")
    }

    /// Where the caches are: `cache/` in a local archive; for one on object storage, a
    /// directory on this machine named after the table (none before it is opened).
    pub fn cache_dir(&self) -> Option<PathBuf> {
        match &self.remote {
            None => Some(self.root.join("cache")),
            Some(r) => r.cache_dir(),
        }
    }

    pub fn quarantine(&self) -> Quarantine {
        match &self.remote {
            None => Quarantine::new(self.root.join("quarantine")),
            Some(r) => Quarantine::remote(r.clone(), self.root.join("quarantine")),
        }
    }

    /// Byte ranges of data files (paths relative to the table), per file; on object
    /// storage, several files at once.
    pub fn read_ranges(
        &self,
        wanted: Vec<(&str, Vec<std::ops::Range<u64>>)>,
    ) -> Vec<std::io::Result<Vec<bytes::Bytes>>> {
        match &self.remote {
            None => {
                let dir = self.events_dir();
                // A point lookup reads a bloom filter of each of hundreds of files: open,
                // read, close, mostly time in the kernel.
                on_two_threads(wanted, 16, |(rel, ranges)| {
                    let f = std::fs::File::open(dir.join(rel))?;
                    ranges
                        .iter()
                        .map(|r| {
                            let mut buf = vec![0; (r.end - r.start) as usize];
                            std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, r.start)?;
                            Ok(bytes::Bytes::from(buf))
                        })
                        .collect()
                })
            }
            Some(r) => r.get_ranges_of(
                wanted
                    .into_iter()
                    .map(|(rel, ranges)| (format!("events/{rel}"), ranges))
                    .collect(),
            ),
        }
    }

    fn io(&self, action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_owned();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    fn delta_err(&self) -> impl FnOnce(deltalake::DeltaTableError) -> Error {
        let path = self.events_dir();
        move |source| Error::Delta {
            path,
            source: Box::new(source),
        }
    }

    /// Create the archive directory if needed and take the writer lock. On object
    /// storage there is no lock: commits are conditional puts, which is what keeps two
    /// writers apart in any case (see [`mod@write`]).
    pub fn lock_for_writing(&self) -> Result<Lock> {
        if self.remote.is_some() {
            return Ok(Lock::none());
        }
        if self.root.exists() && !self.root.is_dir() {
            return Err(Error::NotAnArchive {
                path: self.root.clone(),
                reason: "not a directory".into(),
            });
        }
        std::fs::create_dir_all(&self.root)
            .map_err(self.io("creating archive directory", &self.root))?;
        Lock::acquire(&self.root.join("LOCK"))
    }

    /// The names in the Delta log, or `None` when the table has no log yet.
    pub(crate) fn log_names(&self) -> Result<Option<Vec<String>>> {
        let log = self.events_dir().join("_delta_log");
        match &self.remote {
            None => {
                if !self.root.is_dir() || !log.is_dir() {
                    return Ok(None);
                }
                match self.local_names_from_checkpoint(&log) {
                    Some(names) => Ok(Some(names)),
                    None => self.list_local_log(&log).map(Some),
                }
            }
            Some(r) => {
                // From the last checkpoint on: what `check_log` reads (the log of a
                // long-lived table holds thousands of entries).
                let io = self.io("reading the Delta log", &log);
                let after = match r.get("events/_delta_log/_last_checkpoint") {
                    Ok(hint) => hint
                        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                        .and_then(|v| v["version"].as_u64())
                        .map(|v| format!("{v:020}"))
                        .unwrap_or_default(),
                    Err(e) => return Err(io(e)),
                };
                let dir = "events/_delta_log";
                let mut names = r.list_after(dir, &after).map_err(io)?;
                if names.is_empty() && !after.is_empty() {
                    // A hint with nothing at or after it (its checkpoint gone): the
                    // whole log, for `check_log` to judge.
                    names = r
                        .list_after(dir, "")
                        .map_err(self.io("reading the Delta log", &log))?;
                }
                Ok((!names.is_empty()).then_some(names))
            }
        }
    }

    /// Every name in the Delta log (for a local archive; on object storage, as
    /// [`log_names`](Self::log_names)), or `None` when the table has no log yet.
    pub(crate) fn all_log_names(&self) -> Result<Option<Vec<String>>> {
        let log = self.events_dir().join("_delta_log");
        match &self.remote {
            None if !self.root.is_dir() || !log.is_dir() => Ok(None),
            None => self.list_local_log(&log).map(Some),
            Some(_) => self.log_names(),
        }
    }

    fn list_local_log(&self, log: &Path) -> Result<Vec<String>> {
        let entries = std::fs::read_dir(log).map_err(self.io("reading the Delta log", log))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(self.io("reading the Delta log", log))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    /// The entries a reader of the latest version replays, on local disk, without
    /// listing the log (39,000 entries after a year of 15-minute syncs): the checkpoint
    /// `_last_checkpoint` names and the commits after it, probed one by one until one is
    /// missing. `None` (list the log) without a readable hint or its checkpoint.
    fn local_names_from_checkpoint(&self, log: &Path) -> Option<Vec<String>> {
        let hint = std::fs::read(log.join("_last_checkpoint")).ok()?;
        let hint: serde_json::Value = serde_json::from_slice(&hint).ok()?;
        let version = hint["version"].as_u64()?;
        if hint.get("parts").is_some_and(|p| !p.is_null()) {
            return None;
        }
        let checkpoint = format!("{version:020}.checkpoint.parquet");
        if !log.join(&checkpoint).is_file() {
            return None;
        }
        let mut names = vec![checkpoint];
        for v in version + 1.. {
            let name = format!("{v:020}.json");
            if !log.join(&name).exists() {
                break;
            }
            names.push(name);
        }
        Some(names)
    }

    /// The bytes of the log entry `name`.
    pub(crate) fn read_log(&self, name: &str) -> std::io::Result<Vec<u8>> {
        match &self.remote {
            None => std::fs::read(self.events_dir().join("_delta_log").join(name)),
            Some(r) => r
                .get(&format!("events/_delta_log/{name}"))?
                .map(|b| b.to_vec())
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "not found")),
        }
    }

    /// Whether the log holds an entry `name`.
    pub fn log_has(&self, name: &str) -> bool {
        match &self.remote {
            None => self.events_dir().join("_delta_log").join(name).exists(),
            Some(r) => matches!(r.head(&format!("events/_delta_log/{name}")), Ok(Some(_))),
        }
    }

    /// Open the events table for reading. Fails with [`Error::Missing`] if there is none.
    pub async fn open_table(&self) -> Result<DeltaTable> {
        self.open_table_at(None).await
    }

    /// The table queries read (`--as-of`'s version, else the latest), kept between the
    /// queries of a process while its version is the one they read (see
    /// `table_cache.rs`).
    pub async fn table_for_reading(&self) -> Result<DeltaTable> {
        table_cache::table_for_reading(self).await
    }

    /// [`open_table`](Self::open_table) as of `version` (`None`: the latest).
    pub async fn open_table_at(&self, version: Option<u64>) -> Result<DeltaTable> {
        let Some(names) = self.log_names()? else {
            return Err(Error::Missing {
                path: self.root.clone(),
            });
        };
        self.check_log(&names)?;
        match &self.remote {
            None => {
                let dir = self.events_dir();
                let url = dir_url(&dir).map_err(|reason| Error::NotAnArchive {
                    path: dir.clone(),
                    reason,
                })?;
                local_reads::use_for_local_tables();
                match version {
                    None => deltalake::open_table(url).await,
                    Some(v) => deltalake::open_table_with_version(url, v).await,
                }
                .map_err(self.delta_err())
            }
            Some(r) => {
                let mut table = self.remote_table(r)?;
                match version {
                    None => table.load().await,
                    Some(v) => table.load_version(v).await,
                }
                .map_err(self.delta_err())?;
                self.learn_table_id(&table);
                Ok(table)
            }
        }
    }

    /// The (unloaded) table on object storage, read and written through the archive's
    /// client; commits are conditional puts.
    fn remote_table(&self, r: &store::Remote) -> Result<DeltaTable> {
        store::register_log_store();
        deltalake::DeltaTableBuilder::from_url(r.table_url())
            .and_then(|b| {
                b.with_storage_backend(r.store.clone(), r.table_url())
                    .build()
            })
            .map_err(self.delta_err())
    }

    fn learn_table_id(&self, table: &DeltaTable) {
        if let (Some(r), Ok(snapshot)) = (&self.remote, table.snapshot()) {
            r.set_table_id(snapshot.metadata().id());
        }
    }

    /// The commits a reader replays (those after the last checkpoint) are whole: each
    /// non-empty, each line complete JSON; the checkpoint they start from is readable.
    /// Delta writes a commit whole or not at all, so anything else is damage. Delta
    /// would read an empty commit as one that changed nothing, hiding the events it
    /// added, and name no file for a torn one.
    fn check_log(&self, names: &[String]) -> Result<()> {
        let log = self.events_dir().join("_delta_log");
        let mut commits: Vec<(u64, &str)> = Vec::new();
        let mut checkpoint: Option<(u64, &str)> = None;
        for name in names {
            let Some(version) = name.get(..20).and_then(|v| v.parse::<u64>().ok()) else {
                continue;
            };
            match &name[20..] {
                ".json" => commits.push((version, name)),
                ".checkpoint.parquet" if checkpoint.as_ref().is_none_or(|(v, _)| *v < version) => {
                    checkpoint = Some((version, name));
                }
                _ => {}
            }
        }
        let from = checkpoint.as_ref().map(|(v, _)| *v);
        if let Some((_, name)) = checkpoint {
            let damaged = |reason: String| Error::DamagedLog {
                path: log.join(name),
                reason,
            };
            let bytes = self
                .read_log(name)
                .map_err(|e| damaged(format!("cannot be opened: {e}")))?;
            datafusion::parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(bytes))
                .map_err(|e| damaged(format!("is not a readable checkpoint: {e}")))?;
        }
        for (version, name) in commits {
            if from.is_some_and(|c| version <= c) {
                continue;
            }
            let damaged = |reason: String| Error::DamagedLog {
                path: log.join(name),
                reason,
            };
            let text = self
                .read_log(name)
                .map_err(|e| damaged(format!("cannot be read: {e}")))?;
            if text.iter().all(u8::is_ascii_whitespace) {
                return Err(damaged("is empty: the commit's actions are lost".into()));
            }
            for (n, line) in text.split(|&b| b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(line) {
                    return Err(damaged(format!(
                        "line {} is not complete JSON ({e})",
                        n + 1
                    )));
                }
            }
        }
        Ok(())
    }

    /// Open the events table, or prepare an empty one that the first write creates.
    pub async fn open_or_prepare_table(&self) -> Result<DeltaTable> {
        if let Some(r) = &self.remote {
            let mut table = self.remote_table(r)?;
            if let Some(names) = self.log_names()? {
                self.check_log(&names)?;
                table.load().await.map_err(self.delta_err())?;
                self.learn_table_id(&table);
            }
            return Ok(table);
        }
        let dir = self.events_dir();
        std::fs::create_dir_all(&dir).map_err(self.io("creating table directory", &dir))?;
        let url = dir_url(&dir).map_err(|reason| Error::NotAnArchive {
            path: dir.clone(),
            reason,
        })?;
        if let Some(names) = self.log_names()? {
            self.check_log(&names)?;
        }
        local_reads::use_for_local_tables();
        DeltaTable::try_from_url(url)
            .await
            .map_err(self.delta_err())
    }
}

/// Delete files of `table` (paths relative to it); a file already gone is no error. The
/// errors of the others, one each.
pub(crate) async fn delete_files(
    table: &DeltaTable,
    paths: impl IntoIterator<Item = String>,
) -> Vec<datafusion::object_store::Error> {
    use futures_util::StreamExt;
    let paths: Vec<_> = paths
        .into_iter()
        .map(|p| Ok(deltalake::Path::from(p)))
        .collect();
    table
        .object_store()
        .delete_stream(futures_util::stream::iter(paths).boxed())
        .filter_map(|r| async move {
            match r {
                Err(datafusion::object_store::Error::NotFound { .. }) | Ok(_) => None,
                Err(e) => Some(e),
            }
        })
        .collect()
        .await
}

/// `f` of each item, in order: on the calling thread and one other when there are at
/// least `min` items (reading many files is mostly waiting on the kernel or the disk).
pub(crate) fn on_two_threads<T: Send, R: Send>(
    items: Vec<T>,
    min: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    if items.len() < min {
        return items.into_iter().map(f).collect();
    }
    let mut first = items;
    let second = first.split_off(first.len().div_ceil(2));
    std::thread::scope(|s| {
        let other = s.spawn(|| second.into_iter().map(&f).collect::<Vec<_>>());
        let mut out: Vec<R> = first.into_iter().map(&f).collect();
        out.extend(
            other
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
        );
        out
    })
}

/// The name of version `version`'s commit file in `_delta_log/`.
pub(crate) fn commit_file(version: u64) -> String {
    format!("{version:020}.json")
}

/// The one child of a single-input operator rebuilt by `with_new_children`.
pub(crate) fn one_child(
    operator: &str,
    mut children: Vec<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
) -> datafusion::error::Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
    if children.len() != 1 {
        return Err(datafusion::error::DataFusionError::Internal(format!(
            "{operator} has one input"
        )));
    }
    Ok(children.swap_remove(0))
}

/// The `file://` URL of a directory (absolute, with a trailing slash).
fn dir_url(dir: &Path) -> std::result::Result<url::Url, String> {
    let abs = std::path::absolute(dir).map_err(|e| e.to_string())?;
    url::Url::from_directory_path(&abs).map_err(|()| "not an absolute local path".to_owned())
}
