//! Writing: drop ids already archived, then append the rest in one atomic Delta commit.
//!
//! The writer holds the archive lock for its whole life and keeps an in-memory index of
//! every archived id (a 64-bit hash of the id -> the event's content fingerprint), loaded
//! once from the `id` and `raw_hash` columns of the live files. With it, each batch is
//! checked in memory before anything is written, so an id is stored at most once in the
//! whole archive, whatever day the re-sent copy claims. The index only learns a batch's
//! ids after its commit succeeded: a failed commit cannot hide events from the next try.
//!
//! A crash at any point leaves either the old table version or the new one (Delta commits
//! are atomic); data files of a commit that never happened are unreferenced and removed by
//! `archive vacuum`. Re-running the same input after a crash therefore adds exactly what
//! is missing.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{filter_record_batch, sort_to_indices, take_record_batch};
use datafusion::arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::{KeyValue, SortingColumn};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use deltalake::DeltaTable;
use deltalake::kernel::transaction::CommitProperties;

use super::quarantine::Kind;
use super::read::{live_files, read_columns};
use super::{Archive, Error, Lock, Result};
use crate::event::{self, col};

/// A pass-through hasher: the keys are already xxh3 hashes.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Every archived id: id hash -> content fingerprint (`raw_hash`).
///
/// 16 bytes an event. Two different ids share a 64-bit hash with probability about
/// n²/2⁶⁵ (≈3·10⁻⁶ at 10M events); the newcomer would then be reported as a conflict and
/// kept in the quarantine, never lost (see docs/decisions.md).
pub type IdIndex = HashMap<u64, i64, BuildHasherDefault<PassThrough>>;

/// What one commit did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    /// Events appended.
    pub added: u64,
    /// Events whose id was archived already with the same content.
    pub present: u64,
    /// Events whose id was archived already with other content (kept in the quarantine).
    pub conflicts: u64,
}

impl std::ops::AddAssign for CommitStats {
    fn add_assign(&mut self, o: Self) {
        self.added += o.added;
        self.present += o.present;
        self.conflicts += o.conflicts;
    }
}

/// Parquet settings of every data file: ZSTD, page statistics, bloom filters on the
/// columns looked up by value, rows sorted by time, the schema version in the metadata.
pub fn writer_properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid zstd level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_data_page_row_count_limit(8 * 1024)
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: 2,
            descending: false,
            nulls_first: false,
        }]))
        .set_key_value_metadata(Some(vec![
            KeyValue::new(
                "auditq.schema_version".to_owned(),
                event::SCHEMA_VERSION.to_owned(),
            ),
            KeyValue::new("auditq.sorted_by".to_owned(), col::TIME.to_owned()),
        ]));
    for c in [col::ID, col::ACTOR_ID, col::IP] {
        b = b
            .set_column_bloom_filter_enabled(ColumnPath::from(c), true)
            .set_column_bloom_filter_fpp(ColumnPath::from(c), 0.01);
    }
    // Unique per event: a dictionary never pays off and costs a hash per value.
    for c in [
        col::ID,
        col::RAW,
        col::RAW_HASH,
        col::MESSAGE,
        col::TIME,
        col::PROCESSED_AT,
    ] {
        b = b.set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    // The raw JSON is large and never filtered on: no statistics, just compression.
    b = b.set_column_statistics_enabled(ColumnPath::from(col::RAW), EnabledStatistics::None);
    b.build()
}

/// The batch with rows in ascending `time` (column 2); no copy when already in order.
fn sorted_by_time(batch: RecordBatch) -> Result<RecordBatch> {
    let times = batch
        .column(2)
        .as_primitive::<TimestampMicrosecondType>()
        .values();
    if times.windows(2).all(|w| w[0] <= w[1]) {
        return Ok(batch);
    }
    let order = sort_to_indices(batch.column(2), None, None)?;
    Ok(take_record_batch(&batch, &order)?)
}

/// The one writer of an archive.
pub struct Writer {
    archive: Archive,
    table: Option<DeltaTable>,
    index: IdIndex,
    props: WriterProperties,
    _lock: Lock,
}

impl Writer {
    /// Take the lock, open (or prepare) the table and load the id index.
    pub async fn open(archive: &Archive) -> Result<Writer> {
        let lock = archive.lock_for_writing()?;
        let table = archive.open_or_prepare_table().await?;
        let mut index = IdIndex::default();
        if table.version().is_some() {
            let files = live_files(archive, &table)?;
            index.reserve(files.len() * 1024);
            for file in &files {
                read_columns(file, &[col::ID, col::RAW_HASH], |b| {
                    let ids = b.column(0).as_string::<i32>();
                    let hashes = b.column(1).as_primitive::<Int64Type>();
                    for (id, h) in ids.iter().zip(hashes.iter()) {
                        if let (Some(id), Some(h)) = (id, h) {
                            index.insert(event::id_hash(id), h);
                        }
                    }
                    Ok(())
                })?;
            }
        }
        Ok(Writer {
            archive: archive.clone(),
            table: Some(table),
            index,
            props: writer_properties(),
            _lock: lock,
        })
    }

    /// The table as of the last commit.
    pub fn table(&self) -> &DeltaTable {
        self.table
            .as_ref()
            .expect("table is present between commits")
    }

    /// Archive a batch of events (in the [`event::schema`]) in one atomic commit.
    /// `source` names the input, for the quarantine's records.
    pub async fn commit(&mut self, batch: &RecordBatch, source: &str) -> Result<CommitStats> {
        self.commit_with(batch, source, CommitProperties::default())
            .await
    }

    /// [`commit`](Self::commit) with extra commit properties, such as an application
    /// transaction that records a sync checkpoint atomically with the data.
    pub async fn commit_with(
        &mut self,
        batch: &RecordBatch,
        source: &str,
        props: CommitProperties,
    ) -> Result<CommitStats> {
        let (keep, pending, stats) = self.dedupe(batch, source)?;
        if stats.added == 0 {
            return Ok(stats);
        }
        let fresh = if stats.added as usize == batch.num_rows() {
            batch.clone()
        } else {
            filter_record_batch(batch, &keep)?
        };
        let sorted = sorted_by_time(fresh)?;
        let table = self.table.take().expect("table is present between commits");
        let result = table
            .write(vec![sorted])
            .with_partition_columns([col::DATE])
            .with_writer_properties(self.props.clone())
            .with_commit_properties(props)
            .await;
        match result {
            Ok(table) => {
                self.table = Some(table);
                self.index.extend(pending);
                Ok(stats)
            }
            Err(e) => {
                // Reload so that the writer stays usable after a failed commit.
                self.table = Some(self.archive.open_or_prepare_table().await?);
                Err(Error::Delta {
                    path: self.archive.events_dir(),
                    source: Box::new(e),
                })
            }
        }
    }

    /// Decide row by row: new (keep), already present, or conflict (quarantined).
    fn dedupe(
        &self,
        batch: &RecordBatch,
        source: &str,
    ) -> Result<(BooleanArray, IdIndex, CommitStats)> {
        let ids = batch.column(0).as_string::<i32>();
        let hashes = batch
            .column_by_name(col::RAW_HASH)
            .expect("event schema has raw_hash")
            .as_primitive::<Int64Type>();
        let raws = batch
            .column_by_name(col::RAW)
            .expect("event schema has raw")
            .as_string::<i32>();
        let mut pending = IdIndex::with_capacity_and_hasher(batch.num_rows(), Default::default());
        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut stats = CommitStats::default();
        let quarantine = self.archive.quarantine();
        for row in 0..batch.num_rows() {
            let id = ids.value(row);
            let fingerprint = hashes.value(row);
            let key = event::id_hash(id);
            let seen = self.index.get(&key).or_else(|| pending.get(&key)).copied();
            match seen {
                None => {
                    pending.insert(key, fingerprint);
                    stats.added += 1;
                    keep.push(true);
                }
                Some(h) if h == fingerprint => {
                    stats.present += 1;
                    keep.push(false);
                }
                Some(_) => {
                    let reason = format!(
                        "id `{id}` is already archived with different content; the archived event is kept"
                    );
                    quarantine
                        .put(
                            Kind::Conflict,
                            raws.value(row).as_bytes(),
                            &reason,
                            source,
                            Some(id),
                        )
                        .map_err(|e| Error::Io {
                            action: "writing quarantine",
                            path: quarantine.dir().to_owned(),
                            source: e,
                        })?;
                    stats.conflicts += 1;
                    keep.push(false);
                }
            }
        }
        debug_assert!(ids.null_count() == 0);
        Ok((BooleanArray::from(keep), pending, stats))
    }
}
