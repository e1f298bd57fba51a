//! Adoption: the events an auditq archived before the evidence log (schema version 1,
//! whose `leaf` is null) take the next places in it, so that every archived event is a
//! leaf that a seal covers.
//!
//! The places follow archiving order as far as the table still knows it: the files in
//! the order the log added them (then by path), each file's rows in their order. The
//! files that hold such events are rewritten with the column filled (the events already
//! placed in them keep their places) and committed as one version that records the
//! log's new size, as a writer's commit does; a writer that commits meanwhile makes the
//! adoption fail without changing anything (run it again).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use deltalake::protocol::DeltaOperation;

use super::{LEAVES_KEY, next_leaf};
use crate::archive::commit::{Lease, Marker};
use crate::archive::read::{LiveFile, all_rows, live_files, read_columns};
use crate::archive::{Archive, Result};
use crate::event::col;

/// What an adoption did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Adopted {
    /// Events given a place, and the first place (the log's size before).
    pub events: u64,
    pub first_leaf: u64,
    pub files_rewritten: usize,
    /// The version that holds them (`None`: nothing to adopt).
    pub version: Option<u64>,
}

/// Give every event without a place in the log the next places, in one commit.
pub async fn adopt(a: &Archive) -> Result<Adopted> {
    let _lock = a.lock_for_writing()?;
    let table = crate::archive::write::with_leaf_column(a, a.open_table().await?).await?;
    let mut files = live_files(a, &table)?;
    files.sort_by(|x, y| x.added.cmp(&y.added).then_with(|| x.rel.cmp(&y.rel)));
    let mut placeless = Vec::new();
    for file in &files {
        let n = placeless_rows(file)?;
        if n > 0 {
            placeless.push((file, n));
        }
    }
    let first_leaf = next_leaf(a, &table)?;
    if placeless.is_empty() {
        return Ok(Adopted {
            first_leaf,
            ..Default::default()
        });
    }
    let marker = Marker::new();
    let _lease = Lease::hold(a, &marker, "adopt")?;
    let now = chrono::Utc::now().timestamp_millis();
    let mut next = first_leaf;
    let mut actions = Vec::new();
    for &(file, _) in &placeless {
        let reader = all_rows(file)?;
        let placed = reader.map(|b| with_places(b?, &mut next));
        let one = [file];
        let rewritten = crate::archive::rewrite::replace_files(a, &table, &one, now, true, placed);
        actions.extend(rewritten.await?);
    }
    let events = next - first_leaf;
    let expected: u64 = placeless.iter().map(|&(_, n)| n).sum();
    debug_assert_eq!(events, expected);
    let operation = DeltaOperation::Update {
        predicate: Some("events archived before the evidence log: their places".into()),
    };
    let info = [(LEAVES_KEY.to_owned(), serde_json::Value::from(next))];
    let version =
        crate::archive::rewrite::commit(a, &table, &marker, actions, operation, info, "adoption")
            .await?;
    Ok(Adopted {
        events,
        first_leaf,
        files_rewritten: placeless.len(),
        version: Some(version),
    })
}

/// The rows of `file` without a place: a null `leaf`, or every row of a file written
/// without the column.
fn placeless_rows(file: &LiveFile) -> Result<u64> {
    let mut n = 0u64;
    read_columns(file, &[col::LEAF], |b| {
        n += match b.column_by_name(col::LEAF) {
            Some(leaves) => leaves.null_count() as u64,
            None => b.num_rows() as u64,
        };
        Ok(())
    })?;
    Ok(n)
}

/// `b` with each null (or absent) `leaf` set to the next place, counting from `next`.
fn with_places(b: RecordBatch, next: &mut u64) -> Result<RecordBatch> {
    let old = b
        .column_by_name(col::LEAF)
        .map(|l| l.as_primitive::<Int64Type>().clone());
    let mut place = || {
        let p = *next as i64;
        *next += 1;
        p
    };
    let leaves: Int64Array = match &old {
        Some(old) => old
            .iter()
            .map(|l| Some(l.unwrap_or_else(&mut place)))
            .collect(),
        None => (0..b.num_rows()).map(|_| Some(place())).collect(),
    };
    let leaves: ArrayRef = Arc::new(leaves);
    let mut fields: Vec<Field> = Vec::with_capacity(b.num_columns() + 1);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(b.num_columns() + 1);
    for (field, column) in b.schema().fields().iter().zip(b.columns()) {
        if field.name() != col::LEAF {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    fields.push(Field::new(col::LEAF, DataType::Int64, true));
    columns.push(leaves);
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
