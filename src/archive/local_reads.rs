//! Reads of a local archive's files done where they are asked for.
//!
//! object_store's `LocalFileSystem` hands every read to tokio's blocking pool: a byte
//! range is two trips there (open, then read), each a wake-up of another thread and a
//! wait for it. A query of a year opens 365 files and reads each one's footer and
//! columns, so those hand-offs were a good part of a short query's time. The archive's
//! files are read whole-page by DataFusion and are usually in the page cache; this
//! store reads byte ranges on the calling thread (`pread`), as DuckDB and the Parquet
//! readers of other engines do, and passes everything else (whole-file gets, writes) to
//! `LocalFileSystem` unchanged.
//!
//! It also lists a directory of plain files (the Delta log) without a `stat` of every
//! entry: `LocalFileSystem` walks the directory following links, which costs a `stat` a
//! name before the listing's offset is applied. A year of syncs leaves 40,000 entries in
//! `_delta_log/`, and delta-rs lists it from the last checkpoint on at every table open,
//! commit and snapshot update (5-6 times in a 100-event import): 40-50 ms each. Here the
//! names are read (`readdir`, which gives the file type), those at or before the offset
//! dropped, and only the rest looked at. A directory holding anything else (a
//! subdirectory, a link, a name `LocalFileSystem` would encode or hide) is listed by
//! `LocalFileSystem` as before. A log listed from a version (what delta-kernel asks) is
//! not read at all when looking for each version's files is sure to find what a reader
//! needs ([`log_by_probing`]). [`use_for_local_tables`] makes delta-rs open local tables
//! through this store, and with a log store ([`LocalLog`]) that finds the latest version
//! the same way.

use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::object_store::local::LocalFileSystem;
use datafusion::object_store::path::Path;
use datafusion::object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use deltalake::kernel::Version;
use deltalake::kernel::transaction::TransactionError;
use deltalake::logstore::{CommitOrBytes, LogStore};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

/// `LocalFileSystem` with byte-range reads on the calling thread.
#[derive(Debug)]
pub struct LocalReads {
    inner: Arc<LocalFileSystem>,
}

impl LocalReads {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(LocalFileSystem::new()),
        }
    }

    fn open(&self, location: &Path) -> Result<(File, std::path::PathBuf)> {
        let path = self.inner.path_to_filesystem(location)?;
        match File::open(&path) {
            Ok(file) => Ok((file, path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(datafusion::object_store::Error::NotFound {
                    path: path.display().to_string(),
                    source: Box::new(e),
                })
            }
            Err(e) => Err(failed(&path, "opening", e)),
        }
    }
}

impl LocalReads {
    /// The files directly in `prefix` whose location sorts after `offset`, in order, or
    /// `None` when `LocalFileSystem` must list it: no prefix, a directory that cannot be
    /// read, or one holding anything but plain files with plain names (a listing recurses
    /// into subdirectories, follows links, and hides its own staging files `name#N`).
    fn flat_listing(
        &self,
        prefix: Option<&Path>,
        offset: Option<&Path>,
    ) -> Option<Vec<Result<ObjectMeta>>> {
        let prefix = prefix.filter(|p| p.parts().next().is_some())?;
        let dir = self.inner.path_to_filesystem(prefix).ok()?;
        if let Some(log) = offset.and_then(|o| log_by_probing(&dir, prefix, o)) {
            return Some(log);
        }
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).ok()? {
            let entry = entry.ok()?;
            if !entry.file_type().ok()?.is_file() {
                return None;
            }
            let name = entry.file_name().into_string().ok()?;
            if !plain_name(&name) {
                return None;
            }
            let location = prefix.clone().join(name.as_str());
            if offset.is_none_or(|o| location > *o) {
                names.push((location, entry.path()));
            }
        }
        names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Some(
            names
                .into_iter()
                .filter_map(|(location, path)| match std::fs::metadata(&path) {
                    Ok(m) => Some(Ok(object_meta(&m, location))),
                    // Deleted since the directory was read: not listed, as LocalFileSystem.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => Some(Err(failed(&path, "listing", e))),
                })
                .collect(),
        )
    }
}

/// Versions [`log_by_probing`] looks at before it leaves the listing to `readdir` (a
/// reader with no checkpoint to start from asks for the whole log).
const PROBE_VERSIONS: u64 = 1000;

/// A Delta log listed from version `offset` on by looking for the files a reader needs
/// (`N.checkpoint.parquet`, `N.crc`, `N.json` for N = offset, offset + 1, … until a
/// commit is missing, and `_last_checkpoint`): a `stat` each, instead of reading the
/// names of every entry of a log that only grows (39,000 after a year of syncs, 20 ms).
///
/// `None` (list the directory) unless it is certain to find what a reader builds its
/// snapshot from: `prefix` is a `_delta_log`, `offset` a version in it (the kernel lists
/// from the last checkpoint's version, or from the version it has), commit `offset` is
/// there, the last checkpoint is a classic one (`_last_checkpoint` names no parts and no
/// v2 checkpoint, whose files are named otherwise), and the commits end within
/// [`PROBE_VERSIONS`]. Commits have no gaps, so every commit after `offset` is found.
/// What it may leave out is optional to a reader: checksums of other names, multi-part
/// or v2 checkpoints another engine wrote after the last one `_last_checkpoint` names (the
/// commits they summarise are all found), log compaction files.
fn log_by_probing(
    dir: &std::path::Path,
    prefix: &Path,
    offset: &Path,
) -> Option<Vec<Result<ObjectMeta>>> {
    if prefix.filename() != Some("_delta_log") || offset.prefix_match(prefix)?.count() != 1 {
        return None;
    }
    let name = offset.filename()?;
    if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let first: u64 = name.parse().ok()?;
    let hint = dir.join("_last_checkpoint");
    match std::fs::read(&hint) {
        Ok(bytes) => {
            let hint: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            if !hint["parts"].is_null() || !hint["v2Checkpoint"].is_null() {
                return None;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => return None,
    }
    let mut found = Vec::new();
    for version in first.. {
        if version - first > PROBE_VERSIONS {
            return None;
        }
        let mut commit = false;
        // In the order of the names: `.checkpoint.parquet` < `.crc` < `.json`.
        for suffix in [".checkpoint.parquet", ".crc", ".json"] {
            let file = format!("{version:020}{suffix}");
            match std::fs::metadata(dir.join(&file)) {
                Ok(m) if m.is_file() => {
                    commit |= suffix == ".json";
                    found.push(Ok(object_meta(&m, prefix.clone().join(file.as_str()))));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // Not a plain file, or unreadable: the listing says what it is.
                _ => return None,
            }
        }
        if !commit {
            if version == first {
                return None;
            }
            break;
        }
    }
    match std::fs::metadata(&hint) {
        Ok(m) if m.is_file() => {
            found.push(Ok(object_meta(&m, prefix.clone().join("_last_checkpoint"))))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        _ => return None,
    }
    Some(found)
}

/// A name object_store's paths hold as it is (no encoding), that is no staging file of
/// `LocalFileSystem`'s and no hidden file.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'='))
}

/// What `LocalFileSystem` reports for a file (its e-tag is inode, mtime and size).
fn object_meta(m: &std::fs::Metadata, location: Path) -> ObjectMeta {
    use std::os::unix::fs::MetadataExt;
    let modified = m.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
    let micros = modified
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    ObjectMeta {
        location,
        last_modified: chrono::DateTime::<chrono::Utc>::from(modified),
        size: m.len(),
        e_tag: Some(format!("{:x}-{micros:x}-{:x}", m.ino(), m.len())),
        version: None,
    }
}

/// Makes delta-rs open `file://` tables through [`LocalReads`] (the listing above) and
/// [`LocalLog`]; what it reads and writes is otherwise the same `LocalFileSystem`'s.
pub fn use_for_local_tables() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let url = url::Url::parse("file://").expect("a scheme URL parses");
        deltalake::logstore::object_store_factories().insert(url.clone(), Arc::new(LocalTables));
        deltalake::logstore::logstore_factories().insert(url, Arc::new(LocalTables));
    });
}

impl deltalake::logstore::LogStoreFactory for LocalTables {
    fn with_options(
        &self,
        prefixed_store: deltalake::logstore::ObjectStoreRef,
        root_store: deltalake::logstore::ObjectStoreRef,
        location: &url::Url,
        options: &deltalake::logstore::StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn LogStore>> {
        let inner =
            deltalake::logstore::default_logstore(prefixed_store, root_store, location, options);
        let log = location
            .to_file_path()
            .map_err(|()| deltalake::DeltaTableError::InvalidTableLocation(location.to_string()))?
            .join("_delta_log");
        Ok(Arc::new(LocalLog { inner, log }))
    }
}

/// delta-rs's log store for a local table, but for the latest version: a writer asks for
/// it before each commit, and delta-rs lists the log from the version it read (25 ms on
/// a log of 39,000 entries). Delta's commits are numbered without gaps, so the latest
/// version at or after `start` is found by looking for `start + 1`, `start + 2`, … until
/// one is missing: a `stat` each.
struct LocalLog {
    inner: Arc<dyn LogStore>,
    log: std::path::PathBuf,
}

impl LocalLog {
    fn commit(&self, version: Version) -> std::path::PathBuf {
        self.log.join(super::commit_file(version))
    }
}

#[async_trait]
impl LogStore for LocalLog {
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn refresh(&self) -> deltalake::DeltaResult<()> {
        self.inner.refresh().await
    }

    async fn read_commit_entry(&self, version: Version) -> deltalake::DeltaResult<Option<Bytes>> {
        self.inner.read_commit_entry(version).await
    }

    async fn write_commit_entry(
        &self,
        version: Version,
        commit_or_bytes: CommitOrBytes,
        operation_id: uuid::Uuid,
    ) -> std::result::Result<(), TransactionError> {
        self.inner
            .write_commit_entry(version, commit_or_bytes, operation_id)
            .await
    }

    async fn abort_commit_entry(
        &self,
        version: Version,
        commit_or_bytes: CommitOrBytes,
        operation_id: uuid::Uuid,
    ) -> std::result::Result<(), TransactionError> {
        self.inner
            .abort_commit_entry(version, commit_or_bytes, operation_id)
            .await
    }

    async fn get_latest_version(&self, start: Version) -> deltalake::DeltaResult<Version> {
        if !self.commit(start).is_file() {
            // No commit `start` (a new table, a log cleaned up): as delta-rs answers.
            return self.inner.get_latest_version(start).await;
        }
        let mut latest = start;
        while self.commit(latest + 1).is_file() {
            latest += 1;
        }
        Ok(latest)
    }

    fn object_store(&self, operation_id: Option<uuid::Uuid>) -> Arc<dyn ObjectStore> {
        self.inner.object_store(operation_id)
    }

    fn root_object_store(&self, operation_id: Option<uuid::Uuid>) -> Arc<dyn ObjectStore> {
        self.inner.root_object_store(operation_id)
    }

    fn engine(&self, operation_id: Option<uuid::Uuid>) -> Arc<dyn delta_kernel::Engine> {
        self.inner.engine(operation_id)
    }

    fn to_uri(&self, location: &Path) -> String {
        self.inner.to_uri(location)
    }

    fn root_url(&self) -> &url::Url {
        self.inner.root_url()
    }

    fn log_path(&self) -> &Path {
        self.inner.log_path()
    }

    fn transaction_url(
        &self,
        operation_id: Option<uuid::Uuid>,
    ) -> deltalake::DeltaResult<url::Url> {
        self.inner.transaction_url(operation_id)
    }

    async fn is_delta_table_location(&self) -> deltalake::DeltaResult<bool> {
        self.inner.is_delta_table_location().await
    }

    fn config(&self) -> &deltalake::logstore::LogStoreConfig {
        self.inner.config()
    }

    fn object_store_url(&self) -> datafusion::execution::object_store::ObjectStoreUrl {
        self.inner.object_store_url()
    }
}

struct LocalTables;

impl deltalake::logstore::ObjectStoreFactory for LocalTables {
    fn parse_url_opts(
        &self,
        url: &url::Url,
        _config: &deltalake::logstore::StorageConfig,
    ) -> deltalake::DeltaResult<(deltalake::logstore::ObjectStoreRef, Path)> {
        let path = Path::from_url_path(url.path())
            .map_err(|e| deltalake::DeltaTableError::InvalidTableLocation(e.to_string()))?;
        Ok((Arc::new(LocalReads::new()), path))
    }
}

/// An error that names the file.
fn failed(
    path: &std::path::Path,
    doing: &str,
    e: impl fmt::Display,
) -> datafusion::object_store::Error {
    datafusion::object_store::Error::Generic {
        store: "LocalReads",
        source: format!("{doing} {}: {e}", path.display()).into(),
    }
}

impl Default for LocalReads {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for LocalReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalReads({})", self.inner)
    }
}

/// Lets the runtime run its other tasks (and its drivers) before a read.
///
/// A read through the blocking pool was a point where the scan's task waited; a read
/// here never waits, and decoding a partition's batches would otherwise be one long
/// poll: an aborted query (Ctrl-C in the REPL) would go on to its end, and other tasks
/// on the same worker would wait for it. Yielding costs a trip through the worker's
/// queue, much less than the hand-off to another thread that it replaces.
async fn yield_point() {
    tokio::task::yield_now().await;
}

/// `range` of `file`, all of it: a short read (the file is shorter than the range
/// asks) is an error, as it is for `LocalFileSystem`.
fn read_range(file: &File, path: &std::path::Path, range: Range<u64>) -> Result<Bytes> {
    let mut buf = vec![0u8; range.end.saturating_sub(range.start) as usize];
    file.read_exact_at(&mut buf, range.start).map_err(|e| {
        failed(
            path,
            &format!("reading bytes {}..{} of", range.start, range.end),
            e,
        )
    })?;
    Ok(buf.into())
}

#[async_trait]
impl ObjectStore for LocalReads {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let plain = options.if_match.is_none()
            && options.if_none_match.is_none()
            && options.if_modified_since.is_none()
            && options.if_unmodified_since.is_none()
            && options.version.is_none()
            && !options.head;
        let Some(range) = options.range.clone().filter(|_| plain) else {
            return self.inner.get_opts(location, options).await;
        };
        yield_point().await;
        let (file, path) = self.open(location)?;
        let metadata = file.metadata().map_err(|e| failed(&path, "reading", e))?;
        let size = metadata.len();
        let range = range
            .as_range(size)
            .map_err(|e| failed(&path, "reading", e))?;
        let bytes = read_range(&file, &path, range.clone())?;
        let meta = ObjectMeta {
            location: location.clone(),
            last_modified: metadata
                .modified()
                .map(chrono::DateTime::<chrono::Utc>::from)
                .unwrap_or_default(),
            size,
            e_tag: None,
            version: None,
        };
        let stream = futures_util::stream::once(async move { Ok(bytes) });
        Ok(GetResult {
            payload: GetResultPayload::Stream(Box::pin(stream)),
            meta,
            range,
            attributes: Default::default(),
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        yield_point().await;
        let (file, path) = self.open(location)?;
        ranges
            .iter()
            .map(|r| read_range(&file, &path, r.clone()))
            .collect()
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.flat_listing(prefix, None) {
            Some(listed) => futures_util::stream::iter(listed).boxed(),
            None => self.inner.list(prefix),
        }
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.flat_listing(prefix, Some(offset)) {
            Some(listed) => futures_util::stream::iter(listed).boxed(),
            None => self.inner.list_with_offset(prefix, offset),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::object_store::{GetRange, ObjectStoreExt};

    fn store_with(bytes: &[u8]) -> (tempfile::TempDir, LocalReads, Path) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("part-0.parquet");
        std::fs::write(&file, bytes).unwrap();
        let location = Path::from_filesystem_path(&file).unwrap();
        (dir, LocalReads::new(), location)
    }

    #[tokio::test]
    async fn ranges_read_the_bytes_local_file_system_reads() {
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (_dir, store, location) = store_with(&bytes);
        let reference = LocalFileSystem::new();
        // An empty range is refused by both.
        assert!(store.get_range(&location, 5_000..5_000).await.is_err());
        assert!(reference.get_range(&location, 5_000..5_000).await.is_err());
        for range in [0..1, 17..4096, 9_990..10_000] {
            let ours = store.get_range(&location, range.clone()).await.unwrap();
            let theirs = reference.get_range(&location, range.clone()).await.unwrap();
            assert_eq!(ours, theirs, "{range:?}");
            assert_eq!(&ours[..], &bytes[range.start as usize..range.end as usize]);
        }
        let many = store
            .get_ranges(&location, &[0..8, 100..108, 9_992..10_000])
            .await
            .unwrap();
        assert_eq!(&many[2][..], &bytes[9_992..]);
        // A suffix, as the Parquet reader asks for a footer.
        let tail = store
            .get_opts(
                &location,
                GetOptions {
                    range: Some(GetRange::Suffix(8)),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(tail.meta.size, 10_000);
        assert_eq!(tail.range, 9_992..10_000);
        assert_eq!(&tail.bytes().await.unwrap()[..], &bytes[9_992..]);
        // Whole-file gets and heads go to LocalFileSystem.
        let all = store.get(&location).await.unwrap().bytes().await.unwrap();
        assert_eq!(&all[..], &bytes[..]);
        assert_eq!(store.head(&location).await.unwrap().size, 10_000);
    }

    #[tokio::test]
    async fn a_short_file_or_a_missing_one_is_an_error_naming_it() {
        let (dir, store, location) = store_with(&[1, 2, 3, 4]);
        let err = store
            .get_ranges(&location, &[0..2, 2..40])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("part-0.parquet"), "{err}");
        assert!(err.contains("2..40"), "{err}");
        let gone = Path::from_filesystem_path(dir.path())
            .unwrap()
            .join("gone.parquet");
        let err = store.get_range(&gone, 0..2).await.unwrap_err();
        assert!(
            matches!(err, datafusion::object_store::Error::NotFound { .. }),
            "{err}"
        );
    }

    /// What LocalFileSystem lists, sorted (it walks in directory order).
    async fn listed(
        store: &dyn ObjectStore,
        prefix: &Path,
        offset: Option<&Path>,
    ) -> Vec<(String, u64)> {
        use futures_util::TryStreamExt;
        let stream = match offset {
            Some(o) => store.list_with_offset(Some(prefix), o),
            None => store.list(Some(prefix)),
        };
        let mut all: Vec<(String, u64)> = stream
            .map_ok(|m| (m.location.to_string(), m.size))
            .try_collect()
            .await
            .unwrap();
        all.sort();
        all
    }

    #[tokio::test]
    async fn a_log_directory_is_listed_as_local_file_system_lists_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("_delta_log");
        std::fs::create_dir(&log).unwrap();
        for v in 0..30u64 {
            std::fs::write(log.join(format!("{v:020}.json")), vec![b'x'; v as usize]).unwrap();
        }
        std::fs::write(log.join("00000000000000000020.checkpoint.parquet"), b"pq").unwrap();
        std::fs::write(log.join("00000000000000000020.crc"), b"{}").unwrap();
        std::fs::write(log.join("_last_checkpoint"), b"{\"version\":20,\"size\":3}").unwrap();
        let prefix = Path::from_filesystem_path(&log).unwrap();
        let version = prefix.clone().join("00000000000000000020");
        // An offset that is no version: the names are read.
        let name = prefix.clone().join("00000000000000000020.checkpoint");
        let (ours, theirs) = (LocalReads::new(), LocalFileSystem::new());
        assert!(log_by_probing(&log, &prefix, &name).is_none());
        assert!(ours.flat_listing(Some(&prefix), Some(&name)).is_some());
        for o in [None, Some(&name), Some(&version)] {
            let want = listed(&theirs, &prefix, o).await;
            assert_eq!(listed(&ours, &prefix, o).await, want);
            assert!(!want.is_empty());
        }
        // From a version: found by looking for each version's files.
        assert!(log_by_probing(&log, &prefix, &version).is_some());
        let after = listed(&ours, &prefix, Some(&version)).await;
        let names: Vec<&str> = after
            .iter()
            .map(|(p, _)| p.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(names.len(), 13, "{names:?}");
        assert_eq!(
            names[..4],
            [
                "00000000000000000020.checkpoint.parquet",
                "00000000000000000020.crc",
                "00000000000000000020.json",
                "00000000000000000021.json"
            ]
        );
        assert_eq!(names[12], "_last_checkpoint");
        // The same e-tag as LocalFileSystem's for a listed file.
        let one = prefix.clone().join("00000000000000000021.json");
        for offset in [&name, &version] {
            let mut a = ours.list_with_offset(Some(&prefix), offset);
            let mut found = None;
            while let Some(m) = a.next().await {
                let m = m.unwrap();
                if m.location == one {
                    found = Some(m);
                }
            }
            assert_eq!(found.unwrap().e_tag, theirs.head(&one).await.unwrap().e_tag);
        }
        // A subdirectory, or a staging file of LocalFileSystem's: listed by it.
        std::fs::write(log.join("00000000000000000031.json#1"), b"staged").unwrap();
        assert!(ours.flat_listing(Some(&prefix), Some(&name)).is_none());
        assert_eq!(
            listed(&ours, &prefix, Some(&name)).await,
            listed(&theirs, &prefix, Some(&name)).await
        );
        std::fs::remove_file(log.join("00000000000000000031.json#1")).unwrap();
        std::fs::create_dir(log.join("_commits")).unwrap();
        std::fs::write(log.join("_commits/00000000000000000032.json"), b"{}").unwrap();
        assert!(ours.flat_listing(Some(&prefix), None).is_none());
        let with_sub = listed(&ours, &prefix, Some(&name)).await;
        assert_eq!(with_sub, listed(&theirs, &prefix, Some(&name)).await);
        assert!(
            with_sub
                .iter()
                .any(|(p, _)| p.ends_with("_commits/00000000000000000032.json"))
        );
    }

    /// When looking for each version's files could miss what a reader needs, the log is
    /// listed.
    #[test]
    fn a_log_is_listed_whenever_looking_for_its_files_could_miss_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("_delta_log");
        std::fs::create_dir(&log).unwrap();
        for v in 3..8u64 {
            std::fs::write(log.join(format!("{v:020}.json")), b"{}").unwrap();
        }
        let prefix = Path::from_filesystem_path(&log).unwrap();
        let at = |v: u64| prefix.clone().join(format!("{v:020}").as_str());
        assert_eq!(log_by_probing(&log, &prefix, &at(3)).unwrap().len(), 5);
        assert_eq!(log_by_probing(&log, &prefix, &at(7)).unwrap().len(), 1);
        // No commit at the offset (cleaned up, or not yet there).
        assert!(log_by_probing(&log, &prefix, &at(0)).is_none());
        assert!(log_by_probing(&log, &prefix, &at(8)).is_none());
        // A multi-part or v2 checkpoint last: its files are named otherwise.
        for hint in [
            r#"{"version":5,"size":9,"parts":2}"#,
            r#"{"version":5,"size":9,"v2Checkpoint":{"path":"x","sizeInBytes":1,"modificationTime":1}}"#,
            "not json",
        ] {
            std::fs::write(log.join("_last_checkpoint"), hint).unwrap();
            assert!(log_by_probing(&log, &prefix, &at(5)).is_none(), "{hint}");
        }
        std::fs::write(
            log.join("_last_checkpoint"),
            r#"{"version":5,"size":9,"parts":null}"#,
        )
        .unwrap();
        assert_eq!(log_by_probing(&log, &prefix, &at(5)).unwrap().len(), 4);
        // A directory where a version's file would be; another directory than a log.
        std::fs::create_dir(log.join("00000000000000000006.crc")).unwrap();
        assert!(log_by_probing(&log, &prefix, &at(5)).is_none());
        let other = Path::from_filesystem_path(dir.path()).unwrap();
        assert!(
            log_by_probing(
                dir.path(),
                &other,
                &other.clone().join("00000000000000000003")
            )
            .is_none()
        );
        // Past PROBE_VERSIONS commits: the listing is cheaper.
        let long = dir.path().join("long/_delta_log");
        std::fs::create_dir_all(&long).unwrap();
        for v in 0..=PROBE_VERSIONS + 1 {
            std::fs::write(long.join(format!("{v:020}.json")), b"{}").unwrap();
        }
        let prefix = Path::from_filesystem_path(&long).unwrap();
        assert!(
            log_by_probing(&long, &prefix, &prefix.clone().join("00000000000000000000")).is_none()
        );
        assert!(
            log_by_probing(&long, &prefix, &prefix.clone().join("00000000000000000002")).is_some()
        );
    }

    #[tokio::test]
    async fn the_latest_version_is_found_as_delta_rs_finds_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("_delta_log");
        std::fs::create_dir(&log).unwrap();
        for v in 0..7u64 {
            std::fs::write(log.join(format!("{v:020}.json")), b"{}\n").unwrap();
        }
        std::fs::write(log.join("00000000000000000005.checkpoint.parquet"), b"pq").unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        use_for_local_tables();
        let ours = deltalake::logstore::logstore_for(&url, Default::default()).unwrap();
        assert!(delta_kernel::AsAny::as_any(ours.clone()).is::<LocalLog>());
        let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
        let prefixed: Arc<dyn ObjectStore> =
            Arc::new(datafusion::object_store::prefix::PrefixStore::new(
                LocalFileSystem::new(),
                Path::from_filesystem_path(dir.path()).unwrap(),
            ));
        let theirs =
            deltalake::logstore::default_logstore(prefixed, store, &url, &Default::default());
        for start in [0, 3, 6] {
            let want = theirs.get_latest_version(start).await.unwrap();
            assert_eq!(want, 6);
            assert_eq!(ours.get_latest_version(start).await.unwrap(), want);
        }
        // A version that is not there is the same error.
        let (a, b) = (
            ours.get_latest_version(9).await.unwrap_err(),
            theirs.get_latest_version(9).await.unwrap_err(),
        );
        assert_eq!(a.to_string(), b.to_string());
    }
}
