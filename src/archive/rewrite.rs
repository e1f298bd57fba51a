//! Replacing live files in one commit: what `archive repair` (a file without its later
//! copies) and the evidence log's adoption (a file with places for its events) share.
//!
//! A rewrite writes each new file beside the old, records its checksum, and commits the
//! removes and adds as one version built on the version it read, without retry: a table
//! that moved meanwhile fails the commit, and nothing is changed (the files written for
//! it are unreferenced, which `archive vacuum` removes). The caller holds a
//! [`Lease`](super::commit::Lease) while it writes, so that vacuum keeps them until the
//! commit; a commit whose reply was lost is found by its [`Marker`].

use std::collections::HashMap;

use datafusion::arrow::array::{AsArray, RecordBatch, UInt32Array, new_null_array};
use datafusion::arrow::compute::{cast, concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{Schema, SchemaRef, TimestampMicrosecondType};
use delta_kernel::expressions::Scalar;
use deltalake::DeltaTable;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Remove};
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use indexmap::IndexMap;

use super::commit::Marker;
use super::read::{LiveFile, all_rows};
use super::write::writer_properties;
use super::{Archive, Error, Result};
use crate::event::{self, col};

fn delta_err(archive: &Archive) -> impl Fn(deltalake::DeltaTableError) -> Error + '_ {
    |e| Error::Delta {
        path: archive.events_dir(),
        source: Box::new(e),
    }
}

/// The actions that replace `files`, all of one day, with the rows of `batches` (the
/// files' removes, and the add of a file of that day holding the rows, if there are
/// any). `now` is the removes' time (ms since the epoch). `data_change`: false when the
/// rows are the same events as before (compaction), which Delta readers of changes skip.
pub async fn replace_files(
    archive: &Archive,
    table: &DeltaTable,
    files: &[&LiveFile],
    now: i64,
    data_change: bool,
    batches: impl Iterator<Item = Result<RecordBatch>>,
) -> Result<Vec<Action>> {
    let Some(first) = files.first() else {
        return Ok(Vec::new());
    };
    let date = first.date.clone();
    debug_assert!(files.iter().all(|f| f.date == date));
    let delta = delta_err(archive);
    let mut writer = RecordBatchWriter::for_table(table)
        .map_err(&delta)?
        .with_writer_properties(writer_properties());
    let values = IndexMap::from([(col::DATE.to_owned(), Scalar::String(date.clone()))]);
    let mut rows = 0;
    for batch in batches {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        rows += batch.num_rows();
        writer
            .write_partition(batch, &values, WriteMode::Default)
            .await
            .map_err(&delta)?;
    }
    let mut actions = Vec::new();
    if rows > 0 {
        let added = writer.flush().await.map_err(&delta)?;
        actions.extend(added.into_iter().map(|mut add| {
            add.data_change = data_change;
            Action::Add(add)
        }));
    }
    actions.extend(files.iter().map(|file| {
        Action::Remove(Remove {
            path: file.rel.clone(),
            deletion_timestamp: Some(now),
            data_change,
            extended_file_metadata: Some(false),
            partition_values: Some(HashMap::from([(col::DATE.to_owned(), Some(date.clone()))])),
            size: Some(file.size as i64),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
        })
    }));
    Ok(actions)
}

/// How many files `actions` add.
pub fn adds(actions: &[Action]) -> u64 {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Add(_)))
        .count() as u64
}

/// Record the checksums of the files `actions` add, then commit them as one version on
/// `table`'s (no retry), with `marker` and `info` in its `commitInfo`: the version.
/// `what` names the rewrite in the warning about a lost reply.
pub async fn commit(
    archive: &Archive,
    table: &DeltaTable,
    marker: &Marker,
    actions: Vec<Action>,
    operation: DeltaOperation,
    info: impl IntoIterator<Item = (String, serde_json::Value)>,
    what: &str,
) -> Result<u64> {
    super::checksum::record(archive, &super::checksum::added(&actions))?;
    let snapshot = table.snapshot().map_err(delta_err(archive))?;
    let committed = CommitBuilder::from(marker.on(Default::default(), info))
        .with_max_retries(0)
        .with_actions(actions)
        .build(Some(snapshot), table.log_store(), operation)
        .await;
    match committed {
        Ok(commit) => Ok(commit.version()),
        Err(e) => match marker.find(archive, table.version()) {
            Ok(Some(version)) => {
                tracing::warn!(
                    target: "auditq::archive",
                    "version {version} holds this {what} though the store answered `{e}` (a lost reply)"
                );
                Ok(version)
            }
            Ok(None) if super::write::overtaken(&e) => Err(Error::Moved {
                path: archive.events_dir(),
                what: what.to_owned(),
            }),
            _ => Err(delta_err(archive)(e)),
        },
    }
}

/// Move `table` to `version`, one a rewrite just committed on it (the commits since are
/// read, not the whole log).
pub async fn advance(archive: &Archive, table: &mut DeltaTable, version: u64) -> Result<()> {
    table
        .update_incremental(Some(version))
        .await
        .map_err(delta_err(archive))
}

/// The columns data files of `table` store: the archive schema without `date`, and
/// without `leaf` in a table made before the evidence log that no writer extended yet.
pub fn stored_schema(archive: &Archive, table: &deltalake::DeltaTable) -> Result<SchemaRef> {
    let snapshot = table.snapshot().map_err(delta_err(archive))?;
    let has_leaf = snapshot.schema().field(col::LEAF).is_some();
    let fields: Vec<_> = event::schema()
        .fields()
        .iter()
        .filter(|f| f.name() != col::DATE && (has_leaf || f.name() != col::LEAF))
        .cloned()
        .collect();
    Ok(std::sync::Arc::new(Schema::new(fields)))
}

/// `batch` with the columns of `target`, by name: cast where another engine stored
/// another type (string views), nulls where the file predates a column.
pub fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    let columns = target
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => Ok(cast(c, f.data_type())?),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(target.clone(), columns)?)
}

/// The rows of one day's files (in archiving order) sorted by `time`, stably, in
/// batches of [`COMPACT_BATCH`] rows, with the columns of `target`.
pub fn day_sorted_by_time(files: &[&LiveFile], target: &SchemaRef) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for f in files {
        for b in all_rows(f)? {
            batches.push(conform(&b?, target)?);
        }
    }
    let all = concat_batches(target, &batches)?;
    drop(batches);
    let times = all
        .column_by_name(col::TIME)
        .expect("the stored schema has `time`")
        .as_primitive::<TimestampMicrosecondType>()
        .values()
        .clone();
    let mut order: Vec<u32> = (0..all.num_rows() as u32).collect();
    order.sort_by_key(|&i| times[i as usize]);
    let mut out = Vec::new();
    for chunk in order.chunks(COMPACT_BATCH) {
        let indices = UInt32Array::from(chunk.to_vec());
        out.push(take_record_batch(&all, &indices)?);
    }
    Ok(out)
}

/// Rows a batch of a compacted day's sorted rows holds.
const COMPACT_BATCH: usize = 65_536;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::read::{live_files, open_parquet};
    use crate::archive::write::Writer;
    use crate::event::BatchBuilder;

    fn events(ids: std::ops::Range<u32>) -> RecordBatch {
        let mut b = BatchBuilder::new();
        for i in ids {
            let raw = format!(
                r#"{{"id":"e{i}","attributes":{{"time":"2026-11-01T00:00:{:02}Z","action":"user_login"}}}}"#,
                i % 60
            );
            b.push_event(&raw).unwrap();
        }
        b.finish()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_rewrite_of_a_table_that_moved_changes_nothing_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let a = Archive::at(dir.path().join("archive"));
        let mut writer = Writer::open(&a).await.unwrap();
        writer.commit(&[events(0..10)], "test").await.unwrap();
        let stale = a.open_table().await.unwrap();
        writer.commit(&[events(10..20)], "test").await.unwrap();
        let file = live_files(&a, &stale).unwrap().remove(0);
        let rows = open_parquet(&file).unwrap().build().unwrap();
        let actions = replace_files(&a, &stale, &[&file], 0, true, rows.map(|b| Ok(b?)))
            .await
            .unwrap();
        let operation = DeltaOperation::Update { predicate: None };
        let marker = Marker::new();
        let err = commit(&a, &stale, &marker, actions, operation, [], "adoption")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Moved { .. }), "{err:?}");
        assert!(
            err.to_string().contains("changed while adoption ran"),
            "{err}"
        );
        // The table is as the second commit left it: the replaced file is still live.
        let now = a.open_table().await.unwrap();
        assert_eq!(now.version(), Some(stale.version().unwrap() + 1));
        let live = live_files(&a, &now).unwrap();
        assert!(live.iter().any(|f| f.rel == file.rel));
    }
}
