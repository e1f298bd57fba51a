//! What the archive holds, in brief: per data file, its row count, first and last event
//! time and how often each action occurs. Warnings about a query ("no archived action
//! matches"), the REPL's action completion and `archive stats` read it instead of scanning
//! the table.
//!
//! Data files never change once written, so a file's summary is computed once — from the
//! Parquet footer and the `action` column — and kept in `ARCHIVE/cache/files.json`,
//! keyed by the file's path in the table; the total for the current set of live files is
//! kept in `ARCHIVE/cache/summary.json`. Files that are no longer live are dropped from
//! it. The cache is only ever an optimisation: if it is missing, stale or unreadable, or
//! the archive is read-only, summaries are computed again.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit as ArrowTimeUnit, TimestampMicrosecondType};
use datafusion::parquet::basic::{LogicalType, TimeUnit};
use datafusion::parquet::bloom_filter::Sbbf;
use datafusion::parquet::file::statistics::Statistics as ParquetStats;
use serde::{Deserialize, Serialize};

use super::read::{LiveFile, open_parquet, read_projected};
use super::{Archive, Result};
use crate::event::col;

/// One data file's summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileSummary {
    pub size: u64,
    pub rows: u64,
    /// Earliest and latest `time`, µs since the epoch.
    pub first: Option<i64>,
    pub last: Option<i64>,
    pub actions: BTreeMap<String, u64>,
    /// Where the `id` column's bloom filter of each row group lies in the file (offset,
    /// length), or `None` when a row group has none. Point lookups read these few bytes
    /// instead of every file's footer.
    #[serde(default)]
    pub id_blooms: Option<Vec<(u64, u64)>>,
}

/// The whole archive's summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub rows: u64,
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// Each action with its number of events.
    pub actions: BTreeMap<String, u64>,
}

/// Per-file summaries (`cache/files.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct FileCache {
    version: u32,
    files: BTreeMap<String, FileSummary>,
}

/// The summary of one set of live files (`cache/summary.json`): read first, so a query
/// on an unchanged archive parses a few kilobytes, not every file's entry.
#[derive(Debug, Default, Serialize, Deserialize)]
struct TotalCache {
    version: u32,
    /// The table version whose live files it describes.
    table_version: i64,
    fingerprint: u64,
    summary: Summary,
}

/// What helps a scan skip or order files, per file (`cache/ids.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct IdCache {
    version: u32,
    table_version: i64,
    fingerprint: u64,
    files: FileAids,
}

/// What a scan knows of one data file before opening it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileAid {
    /// Where its `id` bloom filters lie (offset, length per row group).
    pub id_blooms: Option<Vec<(u64, u64)>>,
    /// Its earliest and latest `time` (µs): files are sorted by time, so files whose
    /// ranges do not overlap can be read one after the other in time order.
    pub time: Option<(i64, i64)>,
}

/// Per data file (path in the table), its [`FileAid`].
pub type FileAids = BTreeMap<String, FileAid>;

const CACHE_VERSION: u32 = 4;

/// A cache file: its JSON, a newline, and the xxh3 of the JSON in hex. A file whose
/// checksum does not match (edited, damaged, half-written) is not used.
fn read_json<T: serde::de::DeserializeOwned>(
    dir: Option<&std::path::Path>,
    name: &str,
) -> Option<T> {
    let path = dir?.join(name);
    let bytes = std::fs::read(&path).ok()?;
    let cut = bytes.iter().rposition(|&b| b == b'\n')?;
    let (json, sum) = (&bytes[..cut], &bytes[cut + 1..]);
    if std::str::from_utf8(sum).ok()? != format!("{:016x}", xxhash_rust::xxh3::xxh3_64(json)) {
        tracing::warn!(target: "auditq::archive", "ignoring `{}`: its checksum does not match", path.display());
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// A hash of the live files' paths and sizes.
fn fingerprint(files: &[LiveFile]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for f in files {
        h.update(f.rel.as_bytes());
        h.update(&f.size.to_le_bytes());
    }
    h.digest()
}

/// The summary of the given live files (normally all of them).
/// `table_version` is the version of the table these are the live files of.
pub fn summarize(archive: &Archive, files: &[LiveFile], table_version: i64) -> Result<Summary> {
    let dir = archive.cache_dir();
    let fp = fingerprint(files);
    if let Some(total) = read_json::<TotalCache>(dir.as_deref(), "summary.json")
        && total.version == CACHE_VERSION
        && total.table_version == table_version
        && total.fingerprint == fp
    {
        return Ok(total.summary);
    }
    let mut cache: FileCache = read_json(dir.as_deref(), "files.json")
        .filter(|c: &FileCache| c.version == CACHE_VERSION)
        .unwrap_or_default();
    let missing: Vec<&LiveFile> = files
        .iter()
        .filter(|f| cache.files.get(&f.rel).is_none_or(|s| s.size != f.size))
        .collect();
    let computed = summarize_files(&missing)?;
    for (f, s) in missing.iter().zip(computed) {
        cache.files.insert(f.rel.clone(), s);
    }
    let live: std::collections::HashSet<&str> = files.iter().map(|f| f.rel.as_str()).collect();
    cache.files.retain(|rel, _| live.contains(rel.as_str()));
    cache.version = CACHE_VERSION;
    let mut out = Summary::default();
    for s in cache.files.values() {
        out.rows += s.rows;
        out.first = min_opt(out.first, s.first);
        out.last = max_opt(out.last, s.last);
        for (action, n) in &s.actions {
            *out.actions.entry(action.clone()).or_default() += n;
        }
    }
    let ids = IdCache {
        version: CACHE_VERSION,
        table_version,
        fingerprint: fp,
        files: cache
            .files
            .iter()
            .map(|(rel, s)| {
                let aid = FileAid {
                    id_blooms: s.id_blooms.clone(),
                    time: s.first.zip(s.last),
                };
                (rel.clone(), aid)
            })
            .collect(),
    };
    if let Some(dir) = &dir {
        store(dir, "files.json", &cache);
        store(dir, "ids.json", &ids);
        store(
            dir,
            "summary.json",
            &TotalCache {
                version: CACHE_VERSION,
                table_version,
                fingerprint: fp,
                summary: out.clone(),
            },
        );
    }
    Ok(out)
}

/// The `id` bloom filter locations of the given live files, if the cache holds them for
/// exactly this set of files (it does after [`summarize`], unless the archive is
/// read-only).
pub fn file_aids(archive: &Archive, files: &[LiveFile], table_version: i64) -> Option<FileAids> {
    read_json::<IdCache>(archive.cache_dir().as_deref(), "ids.json")
        .filter(|c| {
            c.version == CACHE_VERSION
                && c.table_version == table_version
                && c.fingerprint == fingerprint(files)
        })
        .map(|c| c.files)
}

/// Where a file's `id` bloom filters lie: (offset, length) per row group.
pub type BloomPlaces = [(u64, u64)];

/// Whether each file (its path in the table, where its `id` bloom filters lie) may hold
/// one of `ids`: only filters that say "no" for every id in every row group rule a file
/// out; a file without filters, or whose filters cannot be read, may. The filters of
/// all files are read together.
pub fn may_hold_any(
    archive: &Archive,
    files: &[(&str, Option<&BloomPlaces>)],
    ids: &[String],
) -> Vec<bool> {
    let with_filters: Vec<(usize, &BloomPlaces)> = files
        .iter()
        .enumerate()
        .filter_map(|(i, (_, blooms))| Some((i, (*blooms)?)))
        .collect();
    let wanted = with_filters
        .iter()
        .map(|&(i, blooms)| {
            let ranges = blooms
                .iter()
                .map(|&(offset, length)| offset..offset.saturating_add(length));
            (files[i].0, ranges.collect())
        })
        .collect();
    let mut keep = vec![true; files.len()];
    for ((i, _), filters) in with_filters.iter().zip(archive.read_ranges(wanted)) {
        if let Ok(filters) = filters {
            keep[*i] = filters.iter().any(|bytes| match Sbbf::from_bytes(bytes) {
                Ok(bloom) => ids.iter().any(|id| bloom.check(id.as_str())),
                Err(_) => true,
            });
        }
    }
    keep
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

/// Write a cache file atomically; a failure (read-only archive, full disk) is ignored.
fn store(dir: &std::path::Path, name: &str, value: &impl Serialize) {
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let Ok(mut bytes) = serde_json::to_vec(value) else {
        return;
    };
    let sum = format!("\n{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes));
    bytes.extend_from_slice(sum.as_bytes());
    write_atomic(dir, name, &bytes);
}

/// Write `dir/name` through a temporary file renamed into place; on any failure (a full
/// disk, a read-only archive) nothing is left behind, the old file stays.
pub(super) fn write_atomic(dir: &std::path::Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    if std::fs::write(&tmp, bytes).is_err() || std::fs::rename(&tmp, dir.join(name)).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Summaries of files not in the cache, read on up to two threads.
fn summarize_files(files: &[&LiveFile]) -> Result<Vec<FileSummary>> {
    super::on_two_threads(files.to_vec(), 4, summarize_file)
        .into_iter()
        .collect()
}

/// One file's summary: rows and time range from the footer, actions from the column.
fn summarize_file(file: &LiveFile) -> Result<FileSummary> {
    let builder = open_parquet(file)?;
    let meta = builder.metadata().clone();
    let mut s = FileSummary {
        size: file.size,
        rows: meta.file_metadata().num_rows().max(0) as u64,
        ..Default::default()
    };
    let id_idx = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().string() == col::ID);
    s.id_blooms = meta
        .row_groups()
        .iter()
        .map(|rg| {
            let c = rg.column(id_idx?);
            let offset = u64::try_from(c.bloom_filter_offset()?).ok()?;
            let length = u64::try_from(c.bloom_filter_length()?).ok()?;
            Some((offset, length))
        })
        .collect();
    // Footer statistics give the time range when `time` is stored as µs (as auditq
    // writes it); other encodings are read from the column.
    let time_idx = builder.parquet_schema().columns().iter().position(|c| {
        c.path().string() == col::TIME
            && matches!(
                c.logical_type_ref(),
                Some(LogicalType::Timestamp(t)) if t.unit == TimeUnit::MICROS
            )
    });
    for rg in meta.row_groups() {
        let stats = time_idx.and_then(|i| rg.column(i).statistics());
        if let Some(ParquetStats::Int64(v)) = stats {
            s.first = min_opt(s.first, v.min_opt().copied());
            s.last = max_opt(s.last, v.max_opt().copied());
        } else {
            // No usable statistics: the time range comes from the column itself below.
            s.first = None;
            s.last = None;
            break;
        }
    }
    let need_times = s.first.is_none() && s.rows > 0;
    let columns: &[&str] = if need_times {
        &[col::ACTION, col::TIME]
    } else {
        &[col::ACTION]
    };
    let (mut first, mut last) = (None, None);
    read_projected(builder, file, columns, |batch| {
        if let Some(actions) = batch.column_by_name(col::ACTION) {
            let actions = actions.as_string::<i32>();
            for a in actions.iter().flatten() {
                if let Some(n) = s.actions.get_mut(a) {
                    *n += 1;
                } else {
                    s.actions.insert(a.to_owned(), 1);
                }
            }
        }
        if let Some(times) = batch.column_by_name(col::TIME) {
            let micros = DataType::Timestamp(ArrowTimeUnit::Microsecond, Some("UTC".into()));
            let times = cast(times, &micros)?;
            let times = times.as_primitive::<TimestampMicrosecondType>();
            for i in 0..times.len() {
                if times.is_valid(i) {
                    first = min_opt(first, Some(times.value(i)));
                    last = max_opt(last, Some(times.value(i)));
                }
            }
        }
        Ok(())
    })?;
    if need_times {
        s.first = first;
        s.last = last;
    }
    Ok(s)
}
