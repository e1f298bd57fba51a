//! Reads of a local archive's files done where they are asked for.
//!
//! object_store's `LocalFileSystem` hands every read to tokio's blocking pool: a byte
//! range is two trips there (open, then read), each a wake-up of another thread and a
//! wait for it. A query of a year opens 365 files and reads each one's footer and
//! columns, so those hand-offs were a good part of a short query's time. The archive's
//! files are read whole-page by DataFusion and are usually in the page cache; this
//! store reads byte ranges on the calling thread (`pread`), as DuckDB and the Parquet
//! readers of other engines do, and passes everything else (listing, whole-file gets,
//! writes) to `LocalFileSystem` unchanged.

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
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
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
}
