//! Old file versions: how long the archive keeps them, and `vacuum`, which deletes them
//! after that.
//!
//! The *time-travel window* is Delta's own `delta.deletedFileRetentionDuration` (7 days
//! when unset): files a commit removed (compaction, repair) are kept that long, so
//! `--as-of` answers from any version that recent; Spark's and delta-rs's `VACUUM`
//! honour the same property. Checkpoints keep the tombstones of removed files for that
//! long too, which is what lets vacuum tell a file removed recently (kept) from one that
//! no version within the window reads (deleted, by its age).
//!
//! Vacuum runs by hand (`archive vacuum`) and, unless `auto_vacuum = false`, in every
//! writer whose commits pass a checkpoint (Delta writes one every
//! `delta.checkpointInterval` versions, 100 by default) — the schedule is in versions,
//! so an archive that does not change is not listed again and again. A writer's vacuum
//! keeps exactly the window; `archive vacuum --older-than` below it needs `--force`.

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::arrow::array::AsArray;
use deltalake::DeltaTable;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::table::config::TablePropertiesExt;
use serde::Serialize;

use super::commit::Marker;
use super::read::{LiveFile, live_files, read_columns};
use super::{Archive, Error, Result};
use crate::event::{self, col};

/// What `archive vacuum` did.
#[derive(Debug, Serialize, Default)]
pub struct VacuumReport {
    pub dry_run: bool,
    /// The files removed from the table longer ago than this were deleted.
    #[serde(serialize_with = "as_secs")]
    pub older_than: Duration,
    pub files_deleted: Vec<String>,
    /// Writers that may still commit (their leases): files written since the oldest
    /// began were kept.
    pub writers_in_flight: Vec<super::commit::Holder>,
    /// Leases older than [`super::commit::LEASE_LIFE`]: writers that died (removed
    /// unless a dry run).
    pub stale_leases: usize,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// The shortest window vacuum keeps without `force`: Delta's rule is that the retention
/// must outlast the longest write (and the longest query on old versions).
pub const MIN_RETENTION: Duration = Duration::from_secs(3600);

/// Files no version references are kept at least this long, whatever `--older-than`
/// and `--force` say: a writer that holds no lease (another tool, an older auditq) may
/// still commit them, and the store's clock may differ from this machine's.
pub const ORPHAN_AGE: Duration = MIN_RETENTION;

/// The Delta table property that holds the window.
const WINDOW_PROPERTY: &str = "delta.deletedFileRetentionDuration";

/// The archive's time-travel window: how long files removed from the table are kept.
pub fn window(table: &DeltaTable) -> Duration {
    match table.snapshot() {
        Ok(s) => s.table_config().deleted_file_retention_duration(),
        // No table yet: Delta's default.
        Err(_) => Duration::from_secs(7 * 86_400),
    }
}

/// Set the archive's time-travel window (one commit). Under [`MIN_RETENTION`] needs
/// `force`. Returns the version committed.
pub async fn set_window(archive: &Archive, window: Duration, force: bool) -> Result<i64> {
    if window < MIN_RETENTION && !force {
        return Err(Error::RetentionTooShort {
            what: "time-travel",
            given: window,
            min: MIN_RETENTION,
        });
    }
    let _lock = archive.lock_for_writing()?;
    let table = archive.open_table().await?;
    let table = table
        .set_tbl_properties()
        .with_properties([(WINDOW_PROPERTY.to_owned(), interval(window))].into())
        .with_commit_properties(Marker::new().on(Default::default(), []))
        .await
        .map_err(|e| Error::Delta {
            path: archive.events_dir(),
            source: Box::new(e),
        })?;
    Ok(table.version().unwrap_or(0) as i64)
}

/// A duration as Delta writes intervals, in the largest unit that holds it exactly.
fn interval(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s > 0 && s.is_multiple_of(86_400) => format!("interval {} days", s / 86_400),
        _ if s > 0 && s.is_multiple_of(3_600) => format!("interval {} hours", s / 3_600),
        _ if s > 0 && s.is_multiple_of(60) => format!("interval {} minutes", s / 60),
        _ => format!("interval {s} seconds"),
    }
}

/// Delete the data files removed from the table (by compaction, repair) more than
/// `older_than` ago (the archive's window when `None`), and files no version references
/// at all (left by a writer that died before its commit) once they are older than that
/// and [`ORPHAN_AGE`] and were written before any writer still in flight began. Live
/// data is never touched, nor a file holding the only copy of an event. `older_than`
/// under the window or [`MIN_RETENTION`] needs `force`.
pub async fn vacuum(
    archive: &Archive,
    older_than: Option<Duration>,
    dry_run: bool,
    force: bool,
) -> Result<VacuumReport> {
    let _lock = archive.lock_for_writing()?;
    let table = archive.open_table().await?;
    let keep = window(&table).max(MIN_RETENTION);
    let older_than = older_than.unwrap_or(keep);
    if older_than < keep && !force {
        return Err(Error::RetentionTooShort {
            what: "--older-than",
            given: older_than,
            min: keep,
        });
    }
    vacuum_table(archive, &table, older_than, dry_run).await
}

/// A writer's vacuum, under its lock, on the table it committed (when its commits passed
/// a checkpoint): keeps the archive's window. The number of files deleted.
pub(crate) async fn after_commits(archive: &Archive, table: &DeltaTable) -> Result<usize> {
    if !archive.auto_vacuum() {
        return Ok(0);
    }
    let r = vacuum_table(archive, table, window(table), false).await?;
    Ok(r.files_deleted.len())
}

/// [`vacuum`] of `table`, the lock held and the window checked.
async fn vacuum_table(
    archive: &Archive,
    table: &DeltaTable,
    older_than: Duration,
    dry_run: bool,
) -> Result<VacuumReport> {
    let (writers, stale) =
        super::commit::in_flight(archive, !dry_run).map_err(|source| Error::Io {
            action: "reading the writer leases of",
            path: archive.root().to_owned(),
            source,
        })?;
    let now = chrono::Utc::now().timestamp_millis();
    let since_oldest = writers
        .iter()
        .map(|w| Duration::from_millis((now - w.started_ms).max(0) as u64))
        .max()
        .map_or(Duration::ZERO, |d| d + ORPHAN_AGE);
    let orphan_age = older_than.max(ORPHAN_AGE).max(since_oldest);
    let delta = |e| Error::Delta {
        path: archive.events_dir(),
        source: Box::new(e),
    };
    // What each rule would delete, planned (Delta's dry run) and checked before anything
    // goes; then exactly that is deleted.
    let removed = planned(table, older_than, VacuumMode::Lite)
        .await
        .map_err(delta)?;
    let orphans = planned(table, orphan_age, VacuumMode::Full)
        .await
        .map_err(delta)?;
    let mut doomed: Vec<String> = removed;
    doomed.extend(orphans);
    doomed.sort_unstable();
    doomed.dedup();
    refuse_to_lose_events(archive, table, &doomed)?;
    if !dry_run
        && let Some(e) = super::delete_files(table, doomed.iter().cloned())
            .await
            .into_iter()
            .next()
    {
        return Err(delta(deltalake::DeltaTableError::ObjectStore { source: e }));
    }
    Ok(VacuumReport {
        dry_run,
        older_than,
        files_deleted: doomed,
        writers_in_flight: writers,
        stale_leases: stale,
    })
}

/// The files Delta's vacuum in `mode` would delete, keeping those removed (or, in
/// `Full` mode, unreferenced and written) less than `older_than` ago: a dry run.
async fn planned(
    table: &DeltaTable,
    older_than: Duration,
    mode: VacuumMode,
) -> deltalake::DeltaResult<Vec<String>> {
    let retention = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    let (_, metrics) = table
        .clone()
        .vacuum()
        .with_retention_period(retention)
        .with_enforce_retention_duration(false)
        .with_mode(mode)
        .with_dry_run(true)
        .await?;
    Ok(metrics.files_deleted)
}

/// Unreferenced data files are normally the leftovers of commits that never happened or
/// of files rewritten by compaction: every id they hold is in the table. A file holding
/// an id the table does not have is the only copy of an event (its commit lost or
/// damaged): it is not deleted, and vacuum deletes nothing.
///
/// An event's copy in the table is in the day of its time, so each doomed file's ids are
/// looked for in the live files of its day first; only ids not found there are looked
/// for in the whole table (an id re-sent with another time).
fn refuse_to_lose_events(archive: &Archive, table: &DeltaTable, doomed: &[String]) -> Result<()> {
    let doomed: Vec<&String> = doomed
        .iter()
        .filter(|p| p.ends_with(".parquet") && !p.contains("_delta_log"))
        .collect();
    if doomed.is_empty() {
        return Ok(());
    }
    let live = live_files(archive, table)?;
    let mut by_day: BTreeMap<&str, Vec<&LiveFile>> = BTreeMap::new();
    for f in &live {
        by_day.entry(f.date.as_str()).or_default().push(f);
    }
    let mut unmatched: Vec<(String, Vec<u64>)> = Vec::new();
    // The ids of each day's live files, read once for all the doomed files of that day.
    let mut known_by_day: BTreeMap<&str, super::ids::IdSet> = BTreeMap::new();
    for rel in doomed {
        let file = LiveFile {
            path: archive.events_dir().join(rel),
            remote: archive.remote().cloned(),
            rel: rel.clone(),
            size: 0,
            date: String::new(),
            added: 0,
        };
        // An unreadable leftover holds nothing readable to keep.
        let mut ids = hashes_in(&file).unwrap_or_default();
        let day = day_of(rel);
        if !known_by_day.contains_key(day) {
            let same_day = by_day.get(day).map(Vec::as_slice).unwrap_or_default();
            known_by_day.insert(day, id_hashes(same_day)?);
        }
        let known = &known_by_day[day];
        ids.retain(|&h| !known.contains(h));
        if !ids.is_empty() {
            unmatched.push((rel.clone(), ids));
        }
    }
    if unmatched.is_empty() {
        return Ok(());
    }
    let everywhere = id_hashes(&live.iter().collect::<Vec<_>>())?;
    let holding: Vec<(String, u64)> = unmatched
        .into_iter()
        .map(|(rel, ids)| {
            let lost = ids.iter().filter(|&&h| !everywhere.contains(h)).count() as u64;
            (rel, lost)
        })
        .filter(|(_, lost)| *lost > 0)
        .collect();
    if holding.is_empty() {
        return Ok(());
    }
    Err(Error::WouldLoseEvents { files: holding })
}

/// The day partition a data file's path names (`date=YYYY-MM-DD/…`), or "".
fn day_of(rel: &str) -> &str {
    rel.split('/')
        .find_map(|part| part.strip_prefix("date="))
        .unwrap_or("")
}

/// The id hashes of `files`.
fn id_hashes(files: &[&LiveFile]) -> Result<super::ids::IdSet> {
    let mut hashes = Vec::new();
    for file in files {
        hashes.extend(hashes_in(file)?);
    }
    Ok(super::ids::IdSet::from_hashes(hashes))
}

/// The hashes of the ids in `file`.
fn hashes_in(file: &LiveFile) -> Result<Vec<u64>> {
    let mut hashes = Vec::new();
    read_columns(file, &[col::ID], |b| {
        let ids = b.column(0).as_string::<i32>();
        hashes.extend(ids.iter().flatten().map(event::id_hash));
        Ok(())
    })?;
    Ok(hashes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_written_in_the_largest_exact_unit() {
        assert_eq!(
            interval(Duration::from_secs(400 * 86_400)),
            "interval 400 days"
        );
        assert_eq!(
            interval(Duration::from_secs(36 * 3_600)),
            "interval 36 hours"
        );
        assert_eq!(interval(Duration::from_secs(90)), "interval 90 seconds");
        assert_eq!(interval(Duration::from_secs(120)), "interval 2 minutes");
        assert_eq!(interval(Duration::ZERO), "interval 0 seconds");
    }

    #[test]
    fn the_day_comes_from_the_partition_directory() {
        assert_eq!(day_of("date=2026-05-19/part-1.parquet"), "2026-05-19");
        assert_eq!(day_of("part-1.parquet"), "");
    }
}
