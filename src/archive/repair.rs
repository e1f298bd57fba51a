//! `archive repair`: ids archived more than once (by versions of auditq before commits
//! checked their version, or by anything that wrote the table behind its back) lose their
//! later copies, in one atomic commit; every removed copy is kept in
//! `quarantine/conflict/`.
//!
//! "Later" is the order the files were committed in (the time the log records for each,
//! then the path), and within a file the order of its rows: the copy the archive held
//! first is the one kept, as the writer keeps an archived event over a newcomer.

use std::collections::{HashMap, HashSet};

use datafusion::arrow::array::{AsArray, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use deltalake::kernel::Action;
use deltalake::protocol::DeltaOperation;
use serde::Serialize;

use super::quarantine::Kind;
use super::read::{all_rows, live_files, read_columns};
use super::{Archive, Error, Result};
use crate::event::{self, col};

/// What `archive repair` did.
#[derive(Debug, Serialize, Default)]
pub struct RepairReport {
    /// Ids that were archived more than once.
    pub ids: usize,
    /// Copies removed (and quarantined).
    pub copies_removed: u64,
    pub files_rewritten: usize,
    pub version: i64,
}

pub async fn repair(archive: &Archive) -> Result<RepairReport> {
    let _lock = archive.lock_for_writing()?;
    let table = archive.open_table().await?;
    let mut files = live_files(archive, &table)?;
    files.sort_by(|a, b| a.added.cmp(&b.added).then_with(|| a.rel.cmp(&b.rel)));
    let version = table.version().map_or(-1, |v| v as i64);

    // First pass: 64-bit hashes of every id; a hash seen twice is a candidate.
    let mut seen: HashSet<u64> = HashSet::new();
    let mut clashes: HashSet<u64> = HashSet::new();
    for file in &files {
        read_columns(file, &[col::ID], |b| {
            for id in b.column(0).as_string::<i32>().iter().flatten() {
                let h = event::id_hash(id);
                if !seen.insert(h) {
                    clashes.insert(h);
                }
            }
            Ok(())
        })?;
    }
    drop(seen);
    if clashes.is_empty() {
        return Ok(RepairReport {
            version,
            ..Default::default()
        });
    }
    // Second pass, exact ids: the first copy of each is kept (file order, row order),
    // every other row is removed. Rows are numbered within their file.
    let mut keeper: HashMap<String, usize> = HashMap::new();
    let mut remove: HashMap<usize, HashSet<usize>> = HashMap::new();
    let mut twice: HashSet<String> = HashSet::new();
    for (fi, file) in files.iter().enumerate() {
        let mut row = 0;
        read_columns(file, &[col::ID], |b| {
            for id in b.column(0).as_string::<i32>().iter() {
                if let Some(id) = id
                    && clashes.contains(&event::id_hash(id))
                {
                    if keeper.contains_key(id) {
                        remove.entry(fi).or_default().insert(row);
                        twice.insert(id.to_owned());
                    } else {
                        keeper.insert(id.to_owned(), fi);
                    }
                }
                row += 1;
            }
            Ok(())
        })?;
    }
    if remove.is_empty() {
        // Only 64-bit hash collisions between different ids.
        return Ok(RepairReport {
            version,
            ..Default::default()
        });
    }

    // Rewrite each file that holds removed copies, without them; quarantine the copies.
    // The lease keeps vacuum from the new files until the commit; the marker finds the
    // commit should its reply be lost.
    let marker = super::commit::Marker::new();
    let _lease = super::commit::Lease::hold(archive, &marker, "repair")?;
    let mut actions = Vec::new();
    // (id, raw, reason) of each removed copy, quarantined once the commit succeeded.
    let mut copies: Vec<(String, String, String)> = Vec::new();
    let mut targets: Vec<usize> = remove.keys().copied().collect();
    targets.sort_unstable();
    let now = chrono::Utc::now().timestamp_millis();
    for fi in targets {
        actions.extend(
            rewrite_without(
                archive,
                &table,
                &files,
                fi,
                &remove[&fi],
                &keeper,
                now,
                &mut copies,
            )
            .await?,
        );
    }
    let files_rewritten = remove.len();
    let operation = DeltaOperation::Delete {
        predicate: Some("ids archived more than once: later copies".into()),
    };
    let version =
        super::rewrite::commit(archive, &table, &marker, actions, operation, [], "repair").await?;
    let quarantine = archive.quarantine();
    for (id, raw, reason) in &copies {
        quarantine
            .put(
                Kind::Conflict,
                raw.as_bytes(),
                reason,
                "archive repair",
                Some(id),
            )
            .map_err(|e| Error::Io {
                action: "writing quarantine",
                path: quarantine.dir().to_owned(),
                source: e,
            })?;
    }
    Ok(RepairReport {
        ids: twice.len(),
        copies_removed: copies.len() as u64,
        files_rewritten,
        version: version as i64,
    })
}

/// The actions that rewrite file `fi` of `files` without its rows `rows` (the file's
/// remove, and the add of what is left, if anything); each removed copy joins `copies`
/// as (id, raw, reason), the copy kept named from `keeper`.
#[allow(clippy::too_many_arguments)]
async fn rewrite_without(
    archive: &Archive,
    table: &deltalake::DeltaTable,
    files: &[super::read::LiveFile],
    fi: usize,
    rows: &HashSet<usize>,
    keeper: &HashMap<String, usize>,
    now: i64,
    copies: &mut Vec<(String, String, String)>,
) -> Result<Vec<Action>> {
    let file = &files[fi];
    let mut row = 0usize;
    let reader = all_rows(file)?;
    let kept = reader.map(|batch| {
        let batch = batch?;
        let ids = batch
            .column_by_name(col::ID)
            .expect("an archive file has ids")
            .as_string::<i32>();
        let raws = batch
            .column_by_name(col::RAW)
            .expect("an archive file has raw")
            .as_string::<i32>();
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|i| Some(!rows.contains(&(row + i))))
            .collect();
        for i in (0..batch.num_rows()).filter(|i| rows.contains(&(row + i))) {
            let id = ids.value(i);
            let reason = format!(
                "id `{id}` was archived more than once; `archive repair` removed this copy from {} and kept the one in {}",
                file.rel, files[keeper[id]].rel
            );
            copies.push((id.to_owned(), raws.value(i).to_owned(), reason));
        }
        row += batch.num_rows();
        Ok(filter_record_batch(&batch, &keep)?)
    });
    super::rewrite::replace_files(archive, table, &[file], now, true, kept).await
}
