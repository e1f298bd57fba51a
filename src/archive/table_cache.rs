//! The tables a process opened for reading, kept per archive and version: a REPL session
//! (or any process that runs several queries) reads the Delta log once per version, and
//! each later query only asks whether the next version exists — a `stat` on disk, a
//! `HEAD` on object storage, where opening the table again took a listing and every
//! commit since the checkpoint, read twice (22 requests, ~100 ms against a store on
//! the same machine).
//!
//! Delta numbers commits without gaps, so "no `N+1.json`" means version N is still the
//! latest. A version read `--as-of` never changes. The integrity checks of a full open
//! (`check_log`) ran when the version was first read; a damaged next commit is found by
//! the full open it leads to.

use std::path::PathBuf;
use std::sync::Mutex;

use deltalake::DeltaTable;

use super::{Archive, Result};

/// How many (archive, version) tables are kept.
const KEPT: usize = 4;

type Key = (PathBuf, Option<u64>);

static OPENED: Mutex<Vec<(Key, DeltaTable)>> = Mutex::new(Vec::new());

/// The table queries read: the version `--as-of` names, else the latest.
pub async fn table_for_reading(archive: &Archive) -> Result<DeltaTable> {
    let key: Key = (archive.root().to_owned(), archive.read_version());
    let kept = OPENED
        .lock()
        .ok()
        .and_then(|o| o.iter().find(|(k, _)| *k == key).map(|(_, t)| t.clone()));
    if let Some(table) = kept
        && (key.1.is_some() || !has_version_after(archive, &table)?)
    {
        archive.learn_table_id(&table);
        return Ok(table);
    }
    let table = archive.open_table_at(key.1).await?;
    if let Ok(mut opened) = OPENED.lock() {
        opened.retain(|(k, _)| *k != key);
        if opened.len() >= KEPT {
            opened.remove(0);
        }
        opened.push((key, table.clone()));
    }
    Ok(table)
}

/// Whether the log holds a commit after the table's version.
fn has_version_after(archive: &Archive, table: &DeltaTable) -> Result<bool> {
    let Some(version) = table.version() else {
        return Ok(true);
    };
    let rel = format!("events/_delta_log/{}", super::commit_file(version + 1));
    match archive.remote() {
        None => Ok(archive.root().join(&rel).exists()),
        Some(r) => r
            .head(&rel)
            .map(|m| m.is_some())
            .map_err(|source| super::Error::Io {
                action: "looking for the next commit of",
                path: archive.events_dir(),
                source,
            }),
    }
}
