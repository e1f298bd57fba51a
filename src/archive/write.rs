//! Writing: drop ids already archived, then append the rest in one atomic Delta commit.
//!
//! The writer holds the archive lock for its whole life. It knows every archived id (an
//! [`IdSet`] of 64-bit hashes, loaded once from the `id` column of the live files) and,
//! for the days it touched lately, each id's content fingerprint (a [`DayCache`], loaded
//! from the `raw_hash` column of that day's files when an id of that day is seen again).
//! Each batch is checked in memory before anything is written, so an id is stored at
//! most once in the whole archive, whatever day the re-sent copy claims. The writer only
//! learns a batch's ids after its commit succeeded: a failed commit cannot hide events
//! from the next try.
//!
//! A crash at any point leaves either the old table version or the new one (Delta commits
//! are atomic); data files of a commit that never happened are unreferenced and removed by
//! `archive vacuum`. Re-running the same input after a crash therefore adds exactly what
//! is missing.
//!
//! The lock is a courtesy, not the guarantee. A commit writes version N+1 only if N is
//! still the latest: the log entry is created only if absent (a hard link on a local
//! disk, a conditional put on object storage), and Delta's own retry, which would
//! rebase an append onto whatever was committed meanwhile, is off. A writer that loses
//! the race deletes the files it wrote, learns the ids of the files committed since its
//! version, decides its batch again and retries. Two writers (the lock file removed, or
//! no lock at all) therefore never archive an id twice.
//!
//! "Lost the race" is never taken on the store's word alone: a commit whose reply was
//! lost is retried by the store's client and refused as if another writer had won. Each
//! attempt carries a marker in its `commitInfo` and, after any commit error, the writer
//! looks for it in the log before deleting anything (see [`super::commit`]). While
//! files are being written, a lease keeps `archive vacuum` from deleting them.
//!
//! **The writer's table moves forward only two ways:** by a commit of its own (a batch,
//! or a merge it made), or by `catch_up`, which reads the ids of every commit in
//! between. Anything else that replaces the table (upkeep's reload, the error path of a
//! failed merge) keeps its version: a table advanced past commits whose ids the writer
//! never read would let it archive those ids again (`scripts/faults.sh` caught exactly
//! that once). A commit of its own is read into the table when the table is next needed
//! (`Writer::finish`), not at the commit: a process that exits after its commit never
//! replays the live files again, unless the commit is due a Delta checkpoint.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{
    concat_batches, filter_record_batch, sort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::{KeyValue, SortingColumn};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use delta_kernel::engine::arrow_conversion::TryIntoKernel;
use delta_kernel::expressions::Scalar;
use delta_kernel::schema::StructType;
use deltalake::DeltaTable;
use deltalake::DeltaTableError;
use deltalake::kernel::Action;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::transaction::PostCommit;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use indexmap::IndexMap;

use super::commit::{Lease, Marker};
use super::id_snapshot;
use super::ids::{DayCache, IdIndex, IdSet};
use super::quarantine::Kind;
use super::read::{LiveFile, live_files, read_columns};
use super::{Archive, Error, Lock, Result};
use crate::event::{self, col};

/// What one commit did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    /// Events appended.
    pub added: u64,
    /// Events whose id was archived already with the same content.
    pub present: u64,
    /// Events whose id was archived already with other content (kept in the quarantine).
    pub conflicts: u64,
    /// Small files merged after the commit (see [`super::compact_small`]).
    pub compacted: super::compact_small::Compacted,
}

impl std::ops::AddAssign for CommitStats {
    fn add_assign(&mut self, o: Self) {
        self.added += o.added;
        self.present += o.present;
        self.conflicts += o.conflicts;
        self.compacted += o.compacted;
    }
}

/// Columns written without a dictionary: unique per event, where a dictionary never
/// pays off and costs a hash per value.
pub(super) const NO_DICTIONARY: [&str; 6] = [
    col::ID,
    col::RAW,
    col::RAW_HASH,
    col::MESSAGE,
    col::TIME,
    col::PROCESSED_AT,
];

/// Parquet settings of every data file: ZSTD, page statistics, bloom filters on the
/// columns looked up by value, rows sorted by time, the schema version in the metadata.
pub fn writer_properties() -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid zstd level"),
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
            .set_column_bloom_filter_fpp(ColumnPath::from(c), 0.01)
            // Sized for a commit's rows of one day; parquet folds it down to fit.
            .set_column_bloom_filter_max_ndv(ColumnPath::from(c), 50_000);
    }
    for c in NO_DICTIONARY {
        b = b.set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    // Large and never filtered by range: no min/max statistics (comparing every value
    // costs more than they could ever prune).
    for c in [col::RAW, col::MESSAGE] {
        b = b.set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None);
    }
    b.build()
}

/// The batches' rows in ascending `time` (column 2). No copy when they are in order
/// already (each sorted, and each starting no earlier than the previous one ends);
/// otherwise one sorted batch.
fn sorted_by_time(batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let times = |b: &RecordBatch| {
        b.column(2)
            .as_primitive::<TimestampMicrosecondType>()
            .values()
            .clone()
    };
    let mut last = i64::MIN;
    let in_order = batches.iter().all(|b| {
        let t = times(b);
        let ok = t.first().is_none_or(|&first| first >= last) && t.windows(2).all(|w| w[0] <= w[1]);
        last = t.last().copied().unwrap_or(last);
        ok
    });
    if in_order {
        return Ok(batches);
    }
    let all = concat_batches(&event::schema(), &batches)?;
    let order = sort_to_indices(all.column(2), None, None)?;
    Ok(vec![take_record_batch(&all, &order)?])
}

/// The table's checkpoint interval: Delta writes a checkpoint after each version `v`
/// where `v + 1` is a multiple of it (`delta.checkpointInterval`, 100 by default).
fn checkpoint_interval(table: &DeltaTable) -> i64 {
    table.snapshot().map_or(i64::MAX, |s| {
        s.table_config().checkpoint_interval().get() as i64
    })
}

/// Whether a version `v` in `from + 1 ..= to` has `v + 1` a multiple of `every`.
fn checkpoint_between(from: i64, to: i64, every: i64) -> bool {
    (to + 1).div_euclid(every) > (from + 1).div_euclid(every)
}

/// The time (µs) of the newest event of `batches` (sorted by time).
fn newest_time(batches: &[RecordBatch]) -> i64 {
    batches
        .iter()
        .rev()
        .find_map(|b| {
            let t = b.column(2).as_primitive::<TimestampMicrosecondType>();
            (!t.is_empty()).then(|| t.value(t.len() - 1))
        })
        .unwrap_or(i64::MIN)
}

/// The batches with their `leaf` column numbered from `first`, in row order: the
/// places in the evidence log of the events this commit archives.
fn with_leaves(batches: Vec<RecordBatch>, first: u64) -> Result<Vec<RecordBatch>> {
    let index = event::schema()
        .index_of(col::LEAF)
        .expect("event schema has leaf");
    let mut next = first as i64;
    batches
        .into_iter()
        .map(|b| {
            let n = b.num_rows() as i64;
            let leaves = datafusion::arrow::array::Int64Array::from_iter_values(next..next + n);
            next += n;
            let mut columns = b.columns().to_vec();
            columns[index] = std::sync::Arc::new(leaves);
            Ok(RecordBatch::try_new(b.schema(), columns)?)
        })
        .collect()
}

/// Table properties every archive has:
/// - its log entries are never cleaned up (they are the archive's history, which
///   `--as-of` and `archive history` read, and a few KiB a commit);
/// - the statistics a commit records for each file are those of the columns a reader can
///   skip files by: `time` (files are sorted by it), `processed_at`, and `leaf` (the
///   evidence log's places). Every other column takes all values in a file of a day, so
///   its minimum and maximum skip nothing, yet they were 80% of each `add` action's text,
///   which every reader of the log parses for every live file (an archive of 3,000
///   uncompacted files: a 100-event commit 177 -> 101 ms). Files written
///   before keep theirs.
const PROPERTIES: [(&str, &str); 2] = [
    ("delta.enableExpiredLogCleanup", "false"),
    ("delta.dataSkippingStatsColumns", "time,processed_at,leaf"),
];

/// The table as schema version 2 has it: with the `leaf` column and [`PROPERTIES`]. A
/// table made before gains them (a commit each, once; its files hold no leaves).
pub(crate) async fn with_leaf_column(archive: &Archive, table: DeltaTable) -> Result<DeltaTable> {
    if table.version().is_none() {
        return Ok(table);
    }
    let delta = |e| Error::Delta {
        path: archive.events_dir(),
        source: Box::new(e),
    };
    let (has_leaf, has_properties) = match table.snapshot() {
        Ok(s) => (
            s.schema().field(col::LEAF).is_some(),
            PROPERTIES
                .iter()
                .all(|(k, v)| s.metadata().configuration().get(*k).map(String::as_str) == Some(*v)),
        ),
        Err(_) => (true, true),
    };
    let mut table = table;
    if !has_leaf {
        let field = delta_kernel::schema::StructField::nullable(
            col::LEAF,
            delta_kernel::schema::DataType::LONG,
        );
        table = table
            .add_columns()
            .with_fields([field])
            .with_commit_properties(Marker::new().on(CommitProperties::default(), []))
            .await
            .map_err(delta)?;
    }
    if !has_properties {
        table = table
            .set_tbl_properties()
            .with_properties(
                PROPERTIES
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
            .with_commit_properties(Marker::new().on(CommitProperties::default(), []))
            .await
            .map_err(delta)?;
    }
    Ok(table)
}

/// Encoding threads per commit: the days of a batch are split between them.
const ENCODERS: usize = 2;

/// How a commit attempt ended, when it did not fail.
enum Attempt {
    /// Committed; delta-rs's work after the commit (the table read at the new version)
    /// is left to [`Writer::finish`].
    Committed(Box<PostCommit>),
    /// Committed, but the reply was lost: the commit was found in the log by its
    /// [`Marker`]; the table has not been loaded at it.
    CommittedUnseen,
    /// Another writer committed since the table was read: nothing was committed and the
    /// files written for it are deleted.
    Overtaken,
}

/// Whether a commit error means that another writer got the next version first.
pub(crate) fn overtaken(e: &DeltaTableError) -> bool {
    use deltalake::kernel::transaction::TransactionError;
    matches!(
        e,
        DeltaTableError::VersionAlreadyExists(_)
            | DeltaTableError::Transaction {
                source: TransactionError::MaxCommitAttempts(_)
                    | TransactionError::VersionAlreadyExists(_)
            }
    )
}

/// Append a time-sorted batch as one Delta commit: one file per UTC day, encoded from
/// zero-copy slices of the batch (rows of a day are contiguous when sorted by time), the
/// days shared between [`ENCODERS`] tasks.
/// Its checksums are recorded first; another writer's commit in between makes it
/// [`Attempt::Overtaken`].
async fn write_days(
    archive: &Archive,
    table: &mut DeltaTable,
    batches: &[RecordBatch],
    writer_props: &WriterProperties,
    commit_props: CommitProperties,
    leaves: u64,
) -> std::result::Result<Attempt, DeltaTableError> {
    if table.version().is_none()
        && let Some(attempt) = create_table(archive, table).await?
    {
        return Ok(attempt);
    }
    // Vacuum keeps every file written while this lease is held.
    let marker = Marker::new();
    let _lease = Lease::take(archive, &marker, "append")
        .map_err(|e| DeltaTableError::Generic(format!("writing the writer lease: {e}")))?;
    let groups = split_days(batches, ENCODERS);
    let day_dirs: Vec<std::path::PathBuf> = groups
        .iter()
        .flatten()
        .map(|(day, _)| archive.events_dir().join(format!("{}={day}", col::DATE)))
        .collect();
    // On object storage an upload that fails never becomes an object; the files of
    // parts that succeeded are unreferenced and `archive vacuum` removes them.
    let local = archive.remote().is_none();
    let before = if local {
        files_in(&day_dirs)
    } else {
        Default::default()
    };
    let mut tasks = tokio::task::JoinSet::new();
    for days in groups {
        let mut writer =
            RecordBatchWriter::for_table(table)?.with_writer_properties(writer_props.clone());
        tasks.spawn(async move {
            for (day, slice) in days {
                let values = IndexMap::from([(col::DATE.to_owned(), Scalar::String(day))]);
                writer
                    .write_partition(slice, &values, WriteMode::Default)
                    .await?;
            }
            writer.flush().await
        });
    }
    let mut actions = Vec::new();
    let mut failed = None;
    for done in tasks.join_all().await {
        match done {
            Ok(adds) => actions.extend(adds.into_iter().map(Action::Add)),
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    if let Some(e) = failed {
        // Nothing is committed: the files this attempt began (whole or partial) go, so
        // that a full disk is not left fuller.
        let now = if local {
            files_in(&day_dirs)
        } else {
            Default::default()
        };
        for path in now.difference(&before) {
            let _ = std::fs::remove_file(path);
        }
        return Err(e);
    }
    let operation = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: Some(vec![col::DATE.to_owned()]),
        predicate: None,
    };
    let written = super::checksum::added(&actions);
    // The files' checksums are on disk before the commit that makes them live.
    super::checksum::record(archive, &written)
        .map_err(|e| DeltaTableError::Generic(e.to_string()))?;
    let leaves = (
        super::evidence::LEAVES_KEY.to_owned(),
        serde_json::Value::from(leaves),
    );
    let commit = match CommitBuilder::from(marker.on(commit_props, [leaves]).with_max_retries(0))
        .with_actions(actions)
        .build(Some(table.snapshot()?), table.log_store(), operation)
        .into_prepared_commit_future()
        .await
    {
        Ok(prepared) => prepared.await,
        Err(e) => Err(e),
    };
    let e = match commit {
        Ok(post) => {
            tracing::info!(target: "auditq::archive", "committed version {}", post.version);
            return Ok(Attempt::Committed(Box::new(post)));
        }
        Err(e) => e,
    };
    settle(archive, table, &marker, e, written).await
}

/// Create the table (version 0) with the event schema: `None` when this writer made it,
/// `Some(Overtaken)` when it is there anyway (another writer's, or a creation whose
/// reply was lost).
async fn create_table(
    archive: &Archive,
    table: &mut DeltaTable,
) -> std::result::Result<Option<Attempt>, DeltaTableError> {
    // A new archive: create the table (version 0) with the event schema.
    let schema: StructType = event::schema().as_ref().try_into_kernel()?;
    let created = table
        .clone()
        .create()
        .with_configuration(
            PROPERTIES
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string()))),
        )
        .with_columns(schema.fields().cloned())
        .with_partition_columns([col::DATE])
        .await;
    match created {
        Ok(t) => {
            *table = t;
            Ok(None)
        }
        // Another writer created it first: its commit of version 0 won, or the
        // table was there when this create looked (delta-rs's private
        // `CreateError::TableAlreadyExists`, known only by its message).
        Err(e)
            if overtaken(&e)
                || matches!(&e, DeltaTableError::Generic(m) if m.contains("already exists"))
                || matches!(&e, DeltaTableError::GenericError { source }
                    if source.to_string().contains("table already exists")) =>
        {
            Ok(Some(Attempt::Overtaken))
        }
        // Any other error may hide a creation that happened: a lost reply, retried
        // by delta-rs, meets version 0 (its own) as a conflicting commit ("protocol
        // changed"). Whoever made version 0, the table is there: read it and go on.
        // A creation writes no data file, so nothing is left behind either way.
        Err(e) => {
            if !archive.log_has(&format!("{:020}.json", 0)) {
                return Err(e);
            }
            tracing::warn!(
                target: "auditq::archive",
                "the table was created though the store answered `{e}`"
            );
            Ok(Some(Attempt::Overtaken))
        }
    }
}

/// After the commit of `marker`'s attempt failed with `e`: what happened, read from the
/// log. `written`: the attempt's files, deleted only when another writer took the version.
async fn settle(
    archive: &Archive,
    table: &DeltaTable,
    marker: &Marker,
    e: DeltaTableError,
    written: Vec<String>,
) -> std::result::Result<Attempt, DeltaTableError> {
    // Any error may hide a commit that happened (a lost reply, retried, reads as a lost
    // race): the log says whether this attempt's marker is in it.
    match marker.find(archive, table.version()) {
        Ok(Some(version)) => {
            tracing::warn!(
                target: "auditq::archive",
                "version {version} holds this commit though the store answered `{e}` (a lost reply)"
            );
            Ok(Attempt::CommittedUnseen)
        }
        Ok(None) if overtaken(&e) => {
            for e in super::delete_files(table, written).await {
                // Unreferenced: `archive vacuum` removes it.
                tracing::warn!(target: "auditq::archive", "removing a file of a lost commit: {e}");
            }
            tracing::info!(
                target: "auditq::archive",
                "version {} was taken by another writer; deciding the batch again",
                table.version().map_or(0, |v| v + 1)
            );
            Ok(Attempt::Overtaken)
        }
        // Not committed (as far as the log shows now): the files stay, unreferenced,
        // until `archive vacuum`; a copy of the put still on its way can only land at
        // the version it names, where the next attempt finds it by the marker.
        Ok(None) => Err(e),
        Err(read) => Err(DeltaTableError::Generic(format!(
            "the commit's outcome is unknown ({e}), and the log cannot be read to find out ({read}); no file was deleted: run the command again"
        ))),
    }
}

/// The files in the given directories (missing ones hold none).
fn files_in(dirs: &[std::path::PathBuf]) -> std::collections::HashSet<std::path::PathBuf> {
    dirs.iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect()
}

/// Commit attempts before giving up when other writers keep winning.
const ATTEMPTS: u32 = 50;

/// The days of time-ordered batches as (date, rows) slices, in at most `groups` groups
/// of whole days with about the same number of rows each. A day spread over several
/// batches gives several slices, one after the other in the same group.
fn split_days(batches: &[RecordBatch], groups: usize) -> Vec<Vec<(String, RecordBatch)>> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let share = rows.div_ceil(groups.max(1)).max(1);
    let mut out: Vec<Vec<(String, RecordBatch)>> = vec![Vec::new()];
    let mut in_group = 0;
    for batch in batches {
        let dates = batch
            .column_by_name(col::DATE)
            .expect("event schema has date")
            .as_string::<i32>();
        let mut start = 0;
        while start < batch.num_rows() {
            let day = dates.value(start);
            let mut end = start + 1;
            while end < batch.num_rows() && dates.value(end) == day {
                end += 1;
            }
            let group = out.last().expect("one group at least");
            let continues_day = group.last().is_some_and(|(d, _)| d == day);
            if in_group >= share && out.len() < groups && !continues_day {
                out.push(Vec::new());
                in_group = 0;
            }
            in_group += end - start;
            let group = out.last_mut().expect("one group at least");
            group.push((day.to_owned(), batch.slice(start, end - start)));
            start = end;
        }
    }
    out
}

/// The one writer of an archive.
pub struct Writer {
    archive: Archive,
    table: Option<DeltaTable>,
    ids: IdSet,
    /// Whether `ids` is exactly the archived ids; otherwise a superset (from a snapshot
    /// whose files are not all live any more: see `id_snapshot`), whose hits are
    /// confirmed before an event is called a conflict.
    ids_exact: bool,
    days: DayCache,
    props: WriterProperties,
    /// The place in the evidence log of the next event archived.
    next_leaf: u64,
    /// The days the last commit added events to (where small files may be due a merge).
    touched: Vec<String>,
    /// The time (µs) of the newest event archived before the last commit and after it:
    /// days an hour older than it are settled and merged whole.
    newest: (i64, i64),
    /// delta-rs's work after the writer's last commit, when not done yet: reading the
    /// table at the new version replays every live file (90 ms at 35,000 files), so it
    /// waits until the table is needed ([`finish`](Self::finish)) and a process that
    /// exits after its commit never pays it. `table` is the version before until then.
    behind: Option<Box<PostCommit>>,
    _lock: Lock,
}

impl Writer {
    /// Take the lock, open (or prepare) the table and load the id index.
    pub async fn open(archive: &Archive) -> Result<Writer> {
        let lock = archive.lock_for_writing()?;
        let table = with_leaf_column(archive, archive.open_or_prepare_table().await?).await?;
        let next_leaf = super::evidence::next_leaf(archive, &table)?;
        let (ids, ids_exact) = known_ids(archive, &table)?;
        let newest = super::compact_small::newest_archived(&table);
        Ok(Writer {
            archive: archive.clone(),
            table: Some(table),
            ids,
            ids_exact,
            days: DayCache::new(DAY_CACHE_IDS),
            props: writer_properties(),
            next_leaf,
            touched: Vec::new(),
            newest: (newest, newest),
            behind: None,
            _lock: lock,
        })
    }

    /// The table as of the last commit ([`finish`](Self::finish) first).
    fn table(&self) -> &DeltaTable {
        debug_assert!(self.behind.is_none(), "the table is read after `finish`");
        self.last_read()
    }

    /// The table as last read: the version before a commit still `behind`.
    fn last_read(&self) -> &DeltaTable {
        self.table
            .as_ref()
            .expect("table is present between commits")
    }

    /// Bring the table to the writer's last commit (see `behind`). The events are
    /// committed whatever happens here: when delta-rs cannot read the table at the new
    /// version, the writer reads the log again as after a lost reply.
    async fn finish(&mut self) -> Result<()> {
        let Some(post) = self.behind.take() else {
            return Ok(());
        };
        let version = post.version;
        match (*post).await {
            Ok(done) => {
                let table = self
                    .table
                    .as_mut()
                    .expect("table is present between commits");
                table.state = Some(done.snapshot());
                Ok(())
            }
            Err(e) => {
                tracing::warn!(
                    target: "auditq::archive",
                    "reading the table at version {version} after committing it: {e}; reading the log again"
                );
                let before = self.last_read().clone();
                self.catch_up(&before).await
            }
        }
    }

    /// [`finish`](Self::finish) for upkeep, which a failure only skips (logged).
    async fn finished(&mut self) -> bool {
        let done = self.finish().await;
        if let Err(e) = &done {
            tracing::warn!(target: "auditq::archive", "{}", crate::diag::chain(e));
        }
        done.is_ok()
    }

    /// Archive batches of events (in the [`event::schema`], in input order) in one atomic
    /// commit. `source` names the input, for the quarantine's records.
    pub async fn commit(&mut self, batches: &[RecordBatch], source: &str) -> Result<CommitStats> {
        let from = self.version();
        let mut stats = self
            .commit_with(batches, source, CommitProperties::default(), false)
            .await?;
        self.seal().await?;
        stats.compacted = self.upkeep(from).await;
        Ok(stats)
    }

    /// The version of the table as of the last commit (-1 before the first).
    pub fn version(&self) -> i64 {
        match &self.behind {
            Some(post) => post.version as i64,
            None => self.table().version().map_or(-1, |v| v as i64),
        }
    }

    /// After a commit from version `from`: merge small files, and vacuum when the table
    /// passed a checkpoint interval. The events are archived whatever happens here.
    async fn upkeep(&mut self, from: i64) -> super::compact_small::Compacted {
        let mut done = self.compact_touched().await;
        let every = checkpoint_interval(self.last_read());
        // A checkpoint is due: delta-rs writes it when the commit is read.
        if !checkpoint_between(from, self.version(), every) || !self.finished().await {
            return done;
        }
        // The table as delta-rs advances it after each commit holds the files of every
        // commit since it was opened in a batch of their own, and each commit goes over all
        // of them (a writer of 1,000 commits slowed from 30 to 4 a second); read at the
        // checkpoint just written, they are one batch again. At the same version: the
        // ids the writer knows are those of this version. The same log store: the log
        // was checked when the writer opened it, and each commit since is its own.
        if let Some(version) = self.table().version() {
            let mut table = self.table().clone();
            table.state = None;
            if table.load_version(version).await.is_ok() {
                self.table = Some(table);
            }
        }
        done.files_vacuumed = match super::vacuum::after_commits(&self.archive, self.table()).await
        {
            Ok(n) => n as u64,
            Err(e) => {
                tracing::warn!(
                    target: "auditq::archive",
                    "vacuuming old file versions after the commit: {}; a later commit tries again",
                    crate::diag::chain(&e)
                );
                0
            }
        };
        done
    }

    /// With automatic compaction on: merge the small files due in the days the last
    /// commit touched. The events are archived whatever happens here: a merge that fails
    /// (another writer committed first, a full disk) is logged, and the next commit tries
    /// again.
    async fn compact_touched(&mut self) -> super::compact_small::Compacted {
        let days = std::mem::take(&mut self.touched);
        if !self.archive.auto_compact() || days.is_empty() || !self.finished().await {
            return Default::default();
        }
        let table = self.table().clone();
        match super::compact_small::compact_days(&self.archive, table, &days, self.newest).await {
            Ok((table, done)) => {
                if done.merges > 0 {
                    for day in &days {
                        self.days.forget(day);
                    }
                    self.table = Some(table);
                }
                done
            }
            Err(e) => {
                tracing::warn!(
                    target: "auditq::archive",
                    "merging small files after the commit: {}; the next commit tries again",
                    crate::diag::chain(&e)
                );
                // The table stays at the writer's last commit. Opening the latest version
                // here skipped what another writer committed meanwhile without learning
                // its ids, and the next commit archived them again (`scripts/faults.sh`,
                // two writers without the lock: 1,666 events twice). Now the next commit
                // finds the version taken and catches up, learning them.
                Default::default()
            }
        }
    }

    /// With a signing key configured: seal what is archived (also what an earlier run
    /// committed but did not live to seal).
    async fn seal(&mut self) -> Result<()> {
        let Some(signer) = self.archive.signer().cloned() else {
            return Ok(());
        };
        self.finish().await?;
        super::evidence::seal_table(&self.archive, &signer, self.table())
            .await
            .map(|_| ())
            .map_err(|e| Error::Evidence {
                what: format!("the events are archived, but sealing them failed: {e}"),
            })
    }

    /// [`commit`](Self::commit), recording `checkpoint` as the version of the Delta
    /// application transaction `app_id` in the same commit — also when every event was
    /// already archived, so the checkpoint moves with the data or not at all.
    pub async fn commit_checkpoint(
        &mut self,
        batches: &[RecordBatch],
        source: &str,
        app_id: &str,
        checkpoint: i64,
    ) -> Result<CommitStats> {
        let props = CommitProperties::default()
            .with_application_transaction(deltalake::kernel::Transaction::new(app_id, checkpoint));
        let from = self.version();
        let mut stats = self.commit_with(batches, source, props, true).await?;
        self.seal().await?;
        stats.compacted = self.upkeep(from).await;
        Ok(stats)
    }

    /// The version recorded for application transaction `app_id`, if any.
    pub async fn checkpoint(&self, app_id: &str) -> Result<Option<i64>> {
        if let Some(post) = &self.behind
            && let Some(t) = post
                .data
                .app_transactions
                .iter()
                .find(|t| t.app_id == app_id)
        {
            return Ok(Some(t.version));
        }
        // Else as of the version before a commit still `behind`, which did not move it.
        let table = self.last_read();
        if table.version().is_none() {
            return Ok(None);
        }
        let state = table.snapshot().map_err(|e| Error::Delta {
            path: self.archive.events_dir(),
            source: Box::new(e),
        })?;
        state
            .transaction_version(table.log_store().as_ref(), app_id)
            .await
            .map_err(|e| Error::Delta {
                path: self.archive.events_dir(),
                source: Box::new(e),
            })
    }

    async fn commit_with(
        &mut self,
        batches: &[RecordBatch],
        source: &str,
        props: CommitProperties,
        always: bool,
    ) -> Result<CommitStats> {
        self.finish().await?;
        let mut attempts = 0;
        loop {
            let mut pending = Pending::default();
            let mut stats = CommitStats::default();
            let mut conflicts = Vec::new();
            let mut fresh = Vec::with_capacity(batches.len());
            for batch in batches {
                let (keep, s) = self.dedupe(batch, &mut pending, &mut conflicts)?;
                if s.added as usize == batch.num_rows() {
                    fresh.push(batch.clone());
                } else if s.added > 0 {
                    fresh.push(filter_record_batch(batch, &keep)?);
                }
                stats += s;
            }
            if stats.added == 0 && !always {
                self.quarantine_conflicts(&conflicts, source)?;
                return Ok(stats);
            }
            let sorted = with_leaves(sorted_by_time(fresh)?, self.next_leaf)?;
            let mut table = self.table.take().expect("table is present between commits");
            let before = table.clone();
            let before_leaves = self.next_leaf;
            let result = write_days(
                &self.archive,
                &mut table,
                &sorted,
                &self.props,
                props.clone(),
                self.next_leaf + stats.added,
            )
            .await;
            match result {
                Ok(Attempt::Committed(post)) => {
                    self.table = Some(table);
                    self.behind = Some(post);
                    self.next_leaf += stats.added;
                    self.touched = pending.days.keys().cloned().collect();
                    self.newest = (self.newest.1, self.newest.1.max(newest_time(&sorted)));
                    for (day, added) in pending.days {
                        for &(hash, _) in &added {
                            self.ids.insert(hash);
                        }
                        self.days.extend(&day, added);
                    }
                    self.quarantine_conflicts(&conflicts, source)?;
                    return Ok(stats);
                }
                Ok(Attempt::CommittedUnseen) => {
                    // Load the table and learn the ids of what the commit added.
                    self.catch_up(&before).await?;
                    self.next_leaf = self.next_leaf.max(before_leaves + stats.added);
                    self.quarantine_conflicts(&conflicts, source)?;
                    return Ok(stats);
                }
                Ok(Attempt::Overtaken) => {
                    attempts += 1;
                    self.catch_up(&before).await?;
                    if attempts >= ATTEMPTS {
                        return Err(Error::Contended {
                            path: self.archive.events_dir(),
                            attempts,
                        });
                    }
                }
                Err(e) => {
                    // Reload so that the writer stays usable after a failed commit, and
                    // learn the ids of whatever was committed meanwhile (this batch
                    // too, should a put whose reply never came land after all).
                    self.catch_up(&before).await?;
                    return Err(write_error(&self.archive, e));
                }
            }
        }
    }

    /// After losing a commit race: load the latest version and learn the ids of every
    /// file it has that `before` had not (a day's fingerprints are read again when
    /// needed).
    async fn catch_up(&mut self, before: &DeltaTable) -> Result<()> {
        let known: std::collections::HashSet<String> = if before.version().is_some() {
            live_files(&self.archive, before)?
                .into_iter()
                .map(|f| f.rel)
                .collect()
        } else {
            Default::default()
        };
        let table = self.archive.open_or_prepare_table().await?;
        if table.version().is_some() {
            for file in live_files(&self.archive, &table)? {
                if known.contains(&file.rel) {
                    continue;
                }
                let mut hashes = Vec::new();
                read_ids(&file, &mut hashes)?;
                for h in hashes {
                    self.ids.insert(h);
                }
                self.days.forget(&file.date);
            }
        }
        self.next_leaf = super::evidence::next_leaf(&self.archive, &table)?;
        self.table = Some(table);
        Ok(())
    }

    fn quarantine_conflicts(&self, conflicts: &[(String, String)], source: &str) -> Result<()> {
        if conflicts.is_empty() {
            return Ok(());
        }
        let quarantine = self.archive.quarantine();
        tracing::info!(
            target: "auditq::archive",
            "quarantining {} events whose ids are archived with other content",
            conflicts.len()
        );
        let items: Vec<(String, &str, String)> = conflicts
            .iter()
            .map(|(id, raw)| {
                let reason = format!(
                    "id `{id}` is already archived with different content; the archived event is kept"
                );
                (id.clone(), raw.as_str(), reason)
            })
            .collect();
        quarantine
            .put_all(Kind::Conflict, source, &items)
            .map_err(|e| Error::Io {
                action: "writing quarantine",
                path: quarantine.dir().to_owned(),
                source: e,
            })
    }

    /// Decide row by row: new (keep), already present, or conflict (quarantined).
    /// `pending` holds the ids of this commit seen so far (in earlier batches).
    /// Conflicts are quarantined by the caller once the decision is committed (a
    /// commit that loses a race decides again).
    fn dedupe(
        &mut self,
        batch: &RecordBatch,
        pending: &mut Pending,
        conflicts: &mut Vec<(String, String)>,
    ) -> Result<(BooleanArray, CommitStats)> {
        let ids = batch.column(0).as_string::<i32>();
        let column = |name: &str| batch.column_by_name(name).expect("event schema column");
        let hashes = column(col::RAW_HASH).as_primitive::<Int64Type>();
        let raws = column(col::RAW).as_string::<i32>();
        let dates = column(col::DATE).as_string::<i32>();
        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut stats = CommitStats::default();
        for row in 0..batch.num_rows() {
            let id = ids.value(row);
            let fingerprint = hashes.value(row);
            let key = event::id_hash(id);
            let day = dates.value(row);
            let seen = match pending.ids.get(&key) {
                Some(&h) => Some(h),
                None if !self.ids.contains(key) => None,
                // Archived: in this day with its fingerprint, or else in another day
                // (then the content differs, as the time does: a conflict).
                None => match self.day(day)?.get(&key).copied() {
                    Some(h) => Some(h),
                    None if !self.ids_exact => {
                        self.read_exact_ids()?;
                        self.ids.contains(key).then_some(!fingerprint)
                    }
                    None => Some(!fingerprint),
                },
            };
            match seen {
                None => {
                    pending.ids.insert(key, fingerprint);
                    // One allocation per day, not per event.
                    match pending.days.get_mut(day) {
                        Some(added) => added.push((key, fingerprint)),
                        None => {
                            pending
                                .days
                                .insert(day.to_owned(), vec![(key, fingerprint)]);
                        }
                    }
                    stats.added += 1;
                    keep.push(true);
                }
                Some(h) if h == fingerprint => {
                    stats.present += 1;
                    keep.push(false);
                }
                Some(_) => {
                    conflicts.push((id.to_owned(), raws.value(row).to_owned()));
                    stats.conflicts += 1;
                    keep.push(false);
                }
            }
        }
        debug_assert!(ids.null_count() == 0);
        Ok((BooleanArray::from(keep), stats))
    }

    /// Replace a superset of the archived ids by the exact set, read from every live
    /// file (and keep it as the snapshot).
    fn read_exact_ids(&mut self) -> Result<()> {
        let files = live_files(&self.archive, self.table())?;
        let mut hashes = Vec::new();
        for file in &files {
            read_ids(file, &mut hashes)?;
        }
        self.ids = IdSet::from_hashes(hashes);
        self.ids_exact = true;
        save_snapshot(&self.archive, &mut self.ids, true, &files);
        Ok(())
    }

    /// The fingerprints of the ids archived in `day`, from the cache or that day's files.
    fn day(&mut self, day: &str) -> Result<&IdIndex> {
        if self.days.get(day).is_none() {
            let mut index = IdIndex::default();
            for file in live_files(&self.archive, self.table())?
                .iter()
                .filter(|f| f.date == day)
            {
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
            self.days.put(day, index);
        }
        Ok(self.days.get(day).expect("the day was just cached"))
    }
}

/// The ids archived in `table` and whether that set is exact (else a superset): from
/// the snapshot in the cache and the live files it does not cover (see `id_snapshot`).
fn known_ids(archive: &Archive, table: &DeltaTable) -> Result<(IdSet, bool)> {
    if table.version().is_none() {
        return Ok((IdSet::default(), true));
    }
    let files = live_files(archive, table)?;
    let snapshot = snapshot_path(archive).and_then(|p| id_snapshot::load(&p));
    let loaded = snapshot.is_some();
    let snapshot = snapshot.unwrap_or_default();
    let live: std::collections::HashSet<&str> = files.iter().map(|f| f.rel.as_str()).collect();
    let exact =
        !loaded || (snapshot.exact && snapshot.files.iter().all(|f| live.contains(f.as_str())));
    let covered = snapshot.hashes.len();
    let (mut files_read, mut hashes) = (0, Vec::new());
    for file in files.iter().filter(|f| !snapshot.files.contains(&f.rel)) {
        read_ids(file, &mut hashes)?;
        files_read += 1;
    }
    let ids_read = hashes.len();
    tracing::debug!(target: "auditq::archive", "archived ids: {covered} from the snapshot{}, {ids_read} read from {files_read} files", if exact { "" } else { " (a superset)" });
    let mut ids = IdSet::from_sorted_and(snapshot.hashes, hashes);
    if id_snapshot::worth_saving(loaded, covered, files_read, ids_read) {
        save_snapshot(archive, &mut ids, exact, &files);
    }
    Ok((ids, exact))
}

fn snapshot_path(archive: &Archive) -> Option<std::path::PathBuf> {
    Some(archive.cache_dir()?.join(id_snapshot::FILE))
}

/// Keep `ids` as the snapshot of `files` (a failure is only logged: it is a cache).
fn save_snapshot(archive: &Archive, ids: &mut IdSet, exact: bool, files: &[LiveFile]) {
    let Some(path) = snapshot_path(archive) else {
        return;
    };
    let names = files.iter().map(|f| f.rel.as_str());
    if let Err(e) = id_snapshot::save(&path, ids.sorted(), exact, names) {
        tracing::debug!(target: "auditq::archive", "could not keep the id snapshot `{}`: {e}", path.display());
    }
}

/// Add the id hashes of `file` to `hashes`.
fn read_ids(file: &LiveFile, hashes: &mut Vec<u64>) -> Result<()> {
    read_columns(file, &[col::ID], |b| {
        let ids = b.column(0).as_string::<i32>();
        hashes.extend(ids.iter().flatten().map(event::id_hash));
        Ok(())
    })
}

/// The ids a commit is about to add: all of them, and by day.
#[derive(Default)]
struct Pending {
    ids: IdIndex,
    days: HashMap<String, Vec<(u64, i64)>>,
}

/// How many ids the [`DayCache`] keeps: about 30 MiB, 18 days of a 10M-event,
/// 180-day archive.
const DAY_CACHE_IDS: usize = 1 << 20;

/// A failed write as the user should read it: a full disk (or other I/O failure, which
/// delta-rs reports as "Failed to parse parquet: … LocalFileSystem error") says
/// "writing" and where.
fn write_error(archive: &Archive, e: DeltaTableError) -> Error {
    // The operating system's error, wherever it sits in the chain of causes.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    let mut os = None;
    while let Some(c) = cause {
        if let Some(code) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
        {
            os = Some(code);
            break;
        }
        cause = c.source();
    }
    match os {
        Some(code) => Error::Io {
            action: "writing data files",
            path: archive.events_dir(),
            source: std::io::Error::from_raw_os_error(code),
        },
        None => Error::Delta {
            path: archive.events_dir(),
            source: Box::new(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::BatchBuilder;

    #[test]
    fn a_checkpoint_is_passed_at_the_versions_delta_writes_one() {
        // Delta writes checkpoints after versions 99, 199, … (interval 100).
        assert!(checkpoint_between(98, 99, 100));
        assert!(checkpoint_between(-1, 99, 100));
        assert!(!checkpoint_between(-1, 98, 100));
        assert!(!checkpoint_between(99, 198, 100));
        assert!(checkpoint_between(150, 250, 100));
        assert!(checkpoint_between(0, 1, 2));
        assert!(!checkpoint_between(1, 2, 2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_table_after_a_commit_is_read_when_needed_and_its_checkpoint_is_known_before() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::at(dir.path()).with_auto_compact(false);
        let mut writer = Writer::open(&archive).await.unwrap();
        let first = events(&[("a", "2026-01-01T01:00:00Z"), ("b", "2026-01-02T01:00:00Z")]);
        writer
            .commit_checkpoint(&[first], "t", "sync", 5)
            .await
            .unwrap();
        // Version 0 creates the table; the commit is version 1, not read yet.
        assert_eq!(writer.version(), 1);
        assert!(writer.behind.is_some());
        assert_eq!(writer.checkpoint("sync").await.unwrap(), Some(5));
        assert_eq!(writer.checkpoint("other").await.unwrap(), None);
        // The next commit reads it first: what it archived is known.
        let again = events(&[("a", "2026-01-01T01:00:00Z"), ("c", "2026-01-03T01:00:00Z")]);
        let stats = writer
            .commit_checkpoint(&[again], "t", "sync", 7)
            .await
            .unwrap();
        assert_eq!((stats.added, stats.present), (1, 1));
        assert_eq!(writer.version(), 2);
        drop(writer);
        let mut writer = Writer::open(&archive).await.unwrap();
        assert_eq!(writer.version(), 2);
        assert_eq!(writer.checkpoint("sync").await.unwrap(), Some(7));
        assert_eq!(live_files(&archive, writer.table()).unwrap().len(), 3);
        // A commit at a checkpoint version is read at once: delta-rs writes the checkpoint.
        for v in 3..=99 {
            let t = format!("2026-01-01T02:{:02}:{:02}Z", v / 60, v % 60);
            let stats = writer
                .commit(&[events(&[(&format!("v{v}"), &t)])], "t")
                .await
                .unwrap();
            assert_eq!(stats.added, 1);
        }
        assert_eq!(writer.version(), 99);
        assert!(writer.behind.is_none());
        let log = archive.events_dir().join("_delta_log");
        assert!(log.join(format!("{:020}.checkpoint.parquet", 99)).exists());
        assert_eq!(live_files(&archive, writer.table()).unwrap().len(), 100);
    }

    /// Events of the given (id, time)s.
    fn events(list: &[(&str, &str)]) -> RecordBatch {
        let mut b = BatchBuilder::new();
        for (id, t) in list {
            b.push_event(&format!(r#"{{"id":"{id}","attributes":{{"time":"{t}"}}}}"#))
                .unwrap();
        }
        b.finish()
    }

    /// Events `e0`, `e1`, … at the given times.
    fn batch(times: &[&str]) -> RecordBatch {
        let ids: Vec<String> = (0..times.len()).map(|i| format!("e{i}")).collect();
        let list: Vec<(&str, &str)> = ids
            .iter()
            .map(String::as_str)
            .zip(times.iter().copied())
            .collect();
        events(&list)
    }

    fn days(groups: &[Vec<(String, RecordBatch)>]) -> Vec<Vec<(String, usize)>> {
        groups
            .iter()
            .map(|g| g.iter().map(|(d, b)| (d.clone(), b.num_rows())).collect())
            .collect()
    }

    #[test]
    fn days_are_split_into_groups_of_whole_days() {
        let a = batch(&[
            "2026-01-01T01:00:00Z",
            "2026-01-01T02:00:00Z",
            "2026-01-02T00:00:00Z",
        ]);
        let b = batch(&[
            "2026-01-02T01:00:00Z",
            "2026-01-03T00:00:00Z",
            "2026-01-03T05:00:00Z",
        ]);
        let groups = split_days(&[a.clone(), b.clone()], 2);
        assert_eq!(
            days(&groups),
            vec![
                vec![
                    ("2026-01-01".into(), 2),
                    ("2026-01-02".into(), 1),
                    ("2026-01-02".into(), 1)
                ],
                vec![("2026-01-03".into(), 2)],
            ]
        );
        // One day never goes to two groups.
        let one = batch(&["2026-01-01T01:00:00Z"; 5]);
        assert_eq!(
            days(&split_days(&[one], 2)),
            vec![vec![("2026-01-01".into(), 5)]]
        );
        assert_eq!(split_days(&[a, b], 1).len(), 1);
    }

    #[test]
    fn batches_out_of_time_order_are_sorted_into_one() {
        let a = batch(&["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]);
        let b = batch(&["2026-01-01T03:00:00Z"]);
        assert_eq!(sorted_by_time(vec![a.clone(), b.clone()]).unwrap().len(), 2);
        let sorted = sorted_by_time(vec![b, a]).unwrap();
        assert_eq!(sorted.len(), 1);
        let times = sorted[0]
            .column(2)
            .as_primitive::<TimestampMicrosecondType>();
        assert!(times.values().windows(2).all(|w| w[0] <= w[1]));
    }
}
