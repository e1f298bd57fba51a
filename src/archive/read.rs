//! Reading the archive: the live files of the current Delta version and direct Parquet
//! reads of a few columns. The DataFusion session over them is `session.rs`'s.

use std::path::PathBuf;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
};
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;

use super::{Archive, Error, Result};

/// A data file referenced by the table's current version.
#[derive(Debug, Clone)]
pub struct LiveFile {
    /// Path relative to the table directory, e.g. `date=2026-05-19/part-….parquet`.
    pub rel: String,
    /// Absolute local path (for a file on object storage, its URL: for messages).
    pub path: PathBuf,
    /// The object store holding it, when it is not on the local disk.
    pub remote: Option<std::sync::Arc<super::store::Remote>>,
    /// Size recorded in the Delta log.
    pub size: u64,
    /// The `date` partition value.
    pub date: String,
    /// When the log says the file was added (ms since the epoch).
    pub added: i64,
}

/// The live files of the table's loaded version, sorted by path.
pub fn live_files(archive: &Archive, table: &DeltaTable) -> Result<Vec<LiveFile>> {
    let snapshot = table.snapshot().map_err(|e| Error::Delta {
        path: archive.events_dir(),
        source: Box::new(e),
    })?;
    let dir = archive.events_dir();
    let mut files: Vec<LiveFile> = snapshot
        .log_data()
        .iter()
        .map(|f| {
            let rel = f.object_store_path().to_string();
            let date = rel
                .split('/')
                .find_map(|seg| seg.strip_prefix("date="))
                .unwrap_or_default()
                .to_owned();
            LiveFile {
                path: dir.join(&rel),
                remote: archive.remote().cloned(),
                rel,
                size: f.size().max(0) as u64,
                date,
                added: f.modification_time(),
            }
        })
        .collect();
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(files)
}

/// The live files that are not on disk as the log recorded them: missing, or of another
/// size. Answers from metadata (row counts in the log, the summary cache) are only
/// given while this is empty; otherwise the data is read, and a query that reaches a
/// damaged file fails naming it.
pub fn changed_files<'a>(archive: &Archive, files: &'a [LiveFile]) -> Vec<&'a LiveFile> {
    files
        .iter()
        .zip(stored_sizes(archive, files))
        .filter(|(f, size)| size.as_ref().ok() != Some(&f.size))
        .map(|(f, _)| f)
        .collect()
}

/// The size each file has in storage now (on object storage, from one listing).
pub fn stored_sizes(archive: &Archive, files: &[LiveFile]) -> Vec<std::io::Result<u64>> {
    let missing = || std::io::Error::from(std::io::ErrorKind::NotFound);
    match archive.remote() {
        None => files
            .iter()
            .map(|f| std::fs::metadata(&f.path).map(|m| m.len()))
            .collect(),
        Some(r) => match r.table_listing(false) {
            Ok(listing) => files
                .iter()
                .map(|f| listing.get(&f.rel).map(|m| m.size).ok_or_else(missing))
                .collect(),
            Err(e) => files
                .iter()
                .map(|_| Err(std::io::Error::new(e.kind(), e.to_string())))
                .collect(),
        },
    }
}

/// A data file's bytes: a local file, or an object read by ranges.
pub enum Source {
    Local(std::fs::File),
    Remote(super::store::RemoteFile),
}

impl datafusion::parquet::file::reader::Length for Source {
    fn len(&self) -> u64 {
        match self {
            Source::Local(f) => f.len(),
            Source::Remote(f) => f.len(),
        }
    }
}

impl datafusion::parquet::file::reader::ChunkReader for Source {
    type T = Box<dyn std::io::Read + Send>;

    fn get_read(&self, start: u64) -> datafusion::parquet::errors::Result<Self::T> {
        Ok(match self {
            Source::Local(f) => Box::new(f.get_read(start)?),
            Source::Remote(f) => Box::new(f.get_read(start)?),
        })
    }

    fn get_bytes(
        &self,
        start: u64,
        length: usize,
    ) -> datafusion::parquet::errors::Result<bytes::Bytes> {
        match self {
            Source::Local(f) => f.get_bytes(start, length),
            Source::Remote(f) => f.get_bytes(start, length),
        }
    }
}

/// An opened Parquet file: its metadata through `Deref`.
pub struct Parquet {
    builder: ParquetRecordBatchReaderBuilder<Source>,
    /// The same file when it is on object storage, to fetch column chunks ahead.
    remote: Option<super::store::RemoteFile>,
}

impl std::ops::Deref for Parquet {
    type Target = ParquetRecordBatchReaderBuilder<Source>;
    fn deref(&self) -> &Self::Target {
        &self.builder
    }
}

impl Parquet {
    /// A reader of every column (fetched ahead on object storage).
    pub fn build(
        self,
    ) -> datafusion::parquet::errors::Result<
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    > {
        self.prefetch(&ProjectionMask::all())
            .map_err(|e| datafusion::parquet::errors::ParquetError::External(e.into()))?;
        self.builder.build()
    }

    /// For a file on object storage, fetch the column chunks `mask` reads, at once.
    fn prefetch(&self, mask: &ProjectionMask) -> std::io::Result<()> {
        let Some(file) = &self.remote else {
            return Ok(());
        };
        let mut ranges = Vec::new();
        for rg in self.builder.metadata().row_groups() {
            for (i, column) in rg.columns().iter().enumerate() {
                if mask.leaf_included(i) {
                    let (start, len) = column.byte_range();
                    ranges.push(start..start + len);
                }
            }
        }
        file.prefetch(ranges)
    }
}

/// Open one Parquet file: its footer is read, nothing else yet.
pub fn open_parquet(file: &LiveFile) -> Result<Parquet> {
    open_parquet_with(file, ArrowReaderOptions::new())
}

/// Every row of one Parquet file, in file order, in the columns it stores.
pub fn all_rows(
    file: &LiveFile,
) -> Result<datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
    open_parquet(file)?.build().map_err(|e| Error::Parquet {
        path: file.path.clone(),
        source: Box::new(e),
    })
}

/// [`open_parquet`] with reader options (the page index, for reads that skip pages).
fn open_parquet_with(file: &LiveFile, options: ArrowReaderOptions) -> Result<Parquet> {
    let io = |source| Error::Io {
        action: "opening data file",
        path: file.path.clone(),
        source,
    };
    let source = match &file.remote {
        None => Source::Local(std::fs::File::open(&file.path).map_err(io)?),
        Some(r) => {
            // The size recorded in the log when it is known (a leftover file's is not).
            let size = match file.size {
                0 => {
                    r.head(&format!("events/{}", file.rel))
                        .map_err(io)?
                        .ok_or_else(|| io(std::io::Error::from(std::io::ErrorKind::NotFound)))?
                        .size
                }
                n => n,
            };
            Source::Remote(
                super::store::RemoteFile::open(r.clone(), format!("events/{}", file.rel), size)
                    .map_err(io)?,
            )
        }
    };
    let remote = match &source {
        Source::Remote(f) => Some(f.clone()),
        Source::Local(_) => None,
    };
    let builder =
        ParquetRecordBatchReaderBuilder::try_new_with_options(source, options).map_err(|e| {
            Error::Parquet {
                path: file.path.clone(),
                source: Box::new(e),
            }
        })?;
    Ok(Parquet { builder, remote })
}

/// Read the named columns of an opened Parquet file, calling `each` per record batch.
pub fn read_projected(
    parquet: Parquet,
    file: &LiveFile,
    columns: &[&str],
    each: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    read_selected(parquet, file, columns, None, each)
}

/// [`read_projected`] of the rows `selection` keeps (all when `None`).
fn read_selected(
    parquet: Parquet,
    file: &LiveFile,
    columns: &[&str],
    selection: Option<RowSelection>,
    mut each: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    let perr = |e| Error::Parquet {
        path: file.path.clone(),
        source: Box::new(e),
    };
    let mask = ProjectionMask::columns(parquet.parquet_schema(), columns.iter().copied());
    parquet.prefetch(&mask).map_err(|source| Error::Io {
        action: "reading data file",
        path: file.path.clone(),
        source,
    })?;
    let mut builder = parquet
        .builder
        .with_projection(mask)
        .with_batch_size(16 * 1024);
    if let Some(selection) = selection {
        builder = builder.with_row_selection(selection);
    }
    for batch in builder.build().map_err(perr)? {
        each(&plain_strings(batch?)?)?;
    }
    Ok(())
}

/// Read the named columns of the rows of `file` that `keep` picks by their `key`
/// column: `key` is read first, then the other columns from the pages that hold kept
/// rows only (the offset index tells where pages start). Nothing more is read when no
/// row is kept; a file without `key` keeps no row.
pub fn read_rows_where(
    file: &LiveFile,
    key: &str,
    mut keep: impl FnMut(&ArrayRef) -> BooleanArray,
    columns: &[&str],
    each: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    use datafusion::parquet::file::metadata::PageIndexPolicy;
    let parquet = open_parquet(file)?;
    if parquet.schema().field_with_name(key).is_err() {
        return Ok(());
    }
    let mut filters = Vec::new();
    read_projected(parquet, file, &[key], |b| {
        filters.push(keep(b.column(0)));
        Ok(())
    })?;
    if filters.iter().all(|f| f.true_count() == 0) {
        return Ok(());
    }
    let selection = RowSelection::from_filters(&filters);
    let options = ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional);
    read_selected(
        open_parquet_with(file, options)?,
        file,
        columns,
        Some(selection),
        each,
    )
}

/// Read the named columns of one Parquet file, calling `each` per record batch.
pub fn read_columns(
    file: &LiveFile,
    columns: &[&str],
    each: impl FnMut(&RecordBatch) -> Result<()>,
) -> Result<()> {
    read_projected(open_parquet(file)?, file, columns, each)
}

/// The same batch with `Utf8View` / `LargeUtf8` columns cast to `Utf8`, so readers can
/// rely on one string type whichever engine wrote the file.
fn plain_strings(batch: RecordBatch) -> Result<RecordBatch> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Utf8View | DataType::LargeUtf8))
    {
        return Ok(batch);
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if matches!(field.data_type(), DataType::Utf8View | DataType::LargeUtf8) {
            fields.push(field.as_ref().clone().with_data_type(DataType::Utf8));
            columns.push(cast(column, &DataType::Utf8)?);
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    Ok(RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Whether two column types hold the same data: string and list flavours (view, large,
/// field names) are the same Parquet type and count as equal.
pub fn same_kind(a: &DataType, b: &DataType) -> bool {
    use DataType::*;
    match (a, b) {
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => true,
        (List(x) | LargeList(x) | ListView(x), List(y) | LargeList(y) | ListView(y)) => {
            same_kind(x.data_type(), y.data_type())
        }
        (Struct(x), Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(f, g)| f.name() == g.name() && same_kind(f.data_type(), g.data_type()))
        }
        _ => a.equals_datatype(b),
    }
}

/// A DataFusion session that reads strings as `Utf8` (not views), for writers that
/// read the table back (compaction), so rewritten files keep the archive's types.
pub fn plain_session() -> SessionContext {
    let config = datafusion::prelude::SessionConfig::new().set_bool(
        "datafusion.execution.parquet.schema_force_view_types",
        false,
    );
    SessionContext::new_with_config(config)
}

/// Run SQL against a session and collect the result.
pub async fn sql(archive: &Archive, ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    let qerr = |e| Error::Query {
        path: archive.events_dir(),
        source: Box::new(e),
    };
    ctx.sql(sql)
        .await
        .map_err(qerr)?
        .collect()
        .await
        .map_err(qerr)
}
