//! Archive maintenance: `stats`, `verify`, `compact` (`vacuum` is in [`super::vacuum`]).

use std::collections::{BTreeMap, HashSet};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Int64Type, Schema, TimestampMicrosecondType};
use serde::Serialize;

use super::commit::{Lease, Marker};
use super::ids::IdIndex;
use super::quarantine::Kind;
use super::read::{
    LiveFile, changed_files, live_files, open_parquet, read_columns, read_projected, same_kind,
    sql, stored_sizes,
};
use super::session::session;
use super::{Archive, Error, Result};
use crate::event::{self, col};

/// What `archive stats` reports.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub archive: String,
    pub version: i64,
    pub events: u64,
    pub distinct_ids: u64,
    pub days: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    pub files: usize,
    pub bytes: u64,
    pub top_actions: Vec<(String, u64)>,
    pub quarantined_invalid: usize,
    pub quarantined_conflicts: usize,
}

pub async fn stats(archive: &Archive, top: usize) -> Result<Stats> {
    let table = archive.open_table().await?;
    let files = live_files(archive, &table)?;
    let intact = changed_files(archive, &files).is_empty();
    let ctx = session(archive, &table, None, intact).await?;
    let totals = sql(
        archive,
        &ctx,
        "SELECT count(*) AS events, count(DISTINCT id) AS ids, count(DISTINCT date) AS days, \
         min(time) AS first, max(time) AS last FROM events",
    )
    .await?;
    let (mut events, mut ids, mut days, mut first, mut last) = (0, 0, 0, None, None);
    if let Some(b) = totals.first().filter(|b| b.num_rows() > 0) {
        events = b.column(0).as_primitive::<Int64Type>().value(0) as u64;
        ids = b.column(1).as_primitive::<Int64Type>().value(0) as u64;
        days = b.column(2).as_primitive::<Int64Type>().value(0) as u64;
        let ts = |i: usize| {
            let a = b.column(i).as_primitive::<TimestampMicrosecondType>();
            a.is_valid(0).then(|| event::format_time(a.value(0)))
        };
        first = ts(3);
        last = ts(4);
    }
    let q = format!(
        "SELECT coalesce(action, '(none)') AS action, count(*) AS n FROM events \
         GROUP BY 1 ORDER BY n DESC, action LIMIT {top}"
    );
    let mut top_actions = Vec::new();
    for b in sql(archive, &ctx, &q).await? {
        let names = datafusion::arrow::compute::cast(
            b.column(0),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )?;
        let names = names.as_string::<i32>();
        let counts = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            top_actions.push((names.value(i).to_owned(), counts.value(i) as u64));
        }
    }
    let quarantine = archive.quarantine();
    Ok(Stats {
        archive: archive.root().display().to_string(),
        version: table.version().map_or(-1, |v| v as i64),
        events,
        distinct_ids: ids,
        days,
        first,
        last,
        files: files.len(),
        bytes: files.iter().map(|f| f.size).sum(),
        top_actions,
        quarantined_invalid: quarantine.count(Kind::Invalid),
        quarantined_conflicts: quarantine.count(Kind::Conflict),
    })
}

/// One thing `verify` found wrong.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The data file concerned, relative to the table directory.
    pub file: Option<String>,
    pub what: String,
}

/// What `archive verify` checked and found.
#[derive(Debug, Serialize, Default)]
pub struct VerifyReport {
    pub version: i64,
    pub files: usize,
    pub rows: u64,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    fn problem(&mut self, file: Option<&LiveFile>, what: String) {
        self.problems.push(Problem {
            file: file.map(|f| f.rel.clone()),
            what,
        });
    }
}

/// Check every live file: present with the size the log records, readable to the last
/// page, the archive schema, rows in the right `date` partition, `raw_hash` matching the
/// raw JSON; and every id in the archive once. Without `rows`, the files alone (present,
/// their checksums, footers and schemas): the evidence check reads every row and makes
/// the row checks there, in one pass with its own.
pub async fn verify(archive: &Archive, rows: bool) -> Result<VerifyReport> {
    let table = archive.open_table().await?;
    let files = live_files(archive, &table)?;
    let mut report = VerifyReport {
        version: table.version().map_or(-1, |v| v as i64),
        files: files.len(),
        ..Default::default()
    };
    // Every file against its recorded checksum, whatever the cache of checked files says.
    let mut checker = super::checksum::Checker::new(archive);
    let sizes = stored_sizes(archive, &files);
    for (file, size) in files.iter().zip(&sizes) {
        // A missing or resized file is reported as such below.
        let whole = size.as_ref().is_ok_and(|&n| n == file.size);
        if whole && let Err(e) = checker.check(&file.rel, true) {
            report.problem(Some(file), e.why);
        }
    }
    checker.finish(&files.iter().map(|f| f.rel.as_str()).collect());
    let mut ids = IdsOnce::default();
    let mut readable = Vec::new();
    for (fi, (file, size)) in files.iter().zip(sizes).enumerate() {
        match size {
            Err(e) => {
                report.problem(Some(file), format!("cannot be opened: {e}"));
                continue;
            }
            Ok(n) if n != file.size => {
                report.problem(
                    Some(file),
                    format!("is {n} bytes on disk but {} in the Delta log", file.size),
                );
            }
            Ok(_) => {}
        }
        let parquet = match open_parquet(file) {
            Ok(parquet) => parquet,
            Err(e) => {
                let why = crate::diag::chain(&e);
                report.problem(Some(file), format!("is not a readable Parquet file: {why}"));
                continue;
            }
        };
        let wrong = schema_problems(parquet.schema());
        if !wrong.is_empty() {
            for what in wrong {
                report.problem(Some(file), what);
            }
            continue;
        }
        if !rows {
            continue;
        }
        // Decode every page of the columns we check (a corrupt page fails here).
        let mut rows = 0u64;
        let mut bad_hash = 0u64;
        let mut bad_day = 0u64;
        let columns = [col::ID, col::TIME, col::RAW, col::RAW_HASH];
        let seen = &mut ids;
        let outcome = read_projected(parquet, file, &columns, |b| {
            let ids_col = b.column(0).as_string::<i32>();
            let times = b.column(1).as_primitive::<TimestampMicrosecondType>();
            let raws = b.column(2).as_string::<i32>();
            let hashes = b.column(3).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                rows += 1;
                seen.add(fi, event::id_hash(ids_col.value(i)));
                if event::raw_hash(raws.value(i)) != hashes.value(i) {
                    bad_hash += 1;
                }
                if event::utc_date(times.value(i)) != file.date {
                    bad_day += 1;
                }
            }
            Ok(())
        });
        if let Err(e) = outcome {
            report.problem(
                Some(file),
                format!("cannot be read to the end: {}", crate::diag::chain(&e)),
            );
            continue;
        }
        report.rows += rows;
        if bad_hash > 0 {
            report.problem(
                Some(file),
                format!("{bad_hash} rows whose raw JSON does not match its raw_hash"),
            );
        }
        if bad_day > 0 {
            report.problem(Some(file), outside_partition(file, bad_day));
        }
        readable.push(fi);
    }
    report.problems.extend(ids.problems(&files, &readable)?);
    Ok(report)
}

/// The problem of `n` rows of `file` whose time is not in its partition.
pub(crate) fn outside_partition(file: &LiveFile, n: u64) -> String {
    format!("{n} rows whose time is not in partition date={}", file.date)
}

/// The ids of the live files read, to find an id stored more than once.
#[derive(Default)]
pub(crate) struct IdsOnce {
    /// id hash -> index of the first file holding it.
    seen: IdIndex,
    /// Hashes seen in more than one place.
    clashes: HashSet<u64>,
}

impl IdsOnce {
    /// Note an id (its [`event::id_hash`]) of live file `file` (its index).
    pub(crate) fn add(&mut self, file: usize, key: u64) {
        if self.seen.insert(key, file as i64).is_some() {
            self.clashes.insert(key);
        }
    }

    /// Each id held more than once by the `readable` files (indexes into `files`): a
    /// second pass reads exact ids where hashes clashed.
    pub(crate) fn problems(self, files: &[LiveFile], readable: &[usize]) -> Result<Vec<Problem>> {
        let mut report = VerifyReport::default();
        if !self.clashes.is_empty() {
            name_clashes(files, readable, &self.clashes, &mut report)?;
        }
        Ok(report.problems)
    }
}

/// Second pass of `verify` for exact ids: each id of `clashes` (hashes seen in more than
/// one place) held by more than one of the `readable` files is a problem.
fn name_clashes(
    files: &[LiveFile],
    readable: &[usize],
    clashes: &HashSet<u64>,
    report: &mut VerifyReport,
) -> Result<()> {
    // Second pass for exact ids: which files hold each clashing id?
    let mut holders: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &fi in readable {
        read_columns(&files[fi], &[col::ID], |b| {
            let ids = b.column(0).as_string::<i32>();
            for id in ids.iter().flatten() {
                if clashes.contains(&event::id_hash(id)) {
                    holders.entry(id.to_owned()).or_default().push(fi);
                }
            }
            Ok(())
        })?;
    }
    for (id, at) in holders.into_iter().filter(|(_, at)| at.len() > 1) {
        let names: Vec<&str> = at.iter().map(|&fi| files[fi].rel.as_str()).collect();
        report.problem(
            Some(&files[at[0]]),
            format!(
                "id `{id}` is stored {} times: in {}",
                at.len(),
                names.join(", ")
            ),
        );
    }
    Ok(())
}

/// How a data file's columns differ from the archive schema (`date` lives in the path).
fn schema_problems(found: &Schema) -> Vec<String> {
    let mut wrong = Vec::new();
    for want in event::schema()
        .fields()
        .iter()
        .filter(|f| f.name() != col::DATE)
    {
        match found.field_with_name(want.name()) {
            // Files written before schema version 2 have no `leaf`.
            Err(_) if want.name() == col::LEAF => {}
            Err(_) => wrong.push(format!("lacks column `{}`", want.name())),
            Ok(have) if !same_kind(have.data_type(), want.data_type()) => wrong.push(format!(
                "has column `{}` of type {}, expected {}",
                want.name(),
                have.data_type(),
                want.data_type()
            )),
            Ok(_) => {}
        }
    }
    wrong
}

/// Write a Delta checkpoint of the table's current version unless there is one: readers
/// then load one Parquet file instead of replaying every commit since the last
/// checkpoint (delta-rs writes one only every 100 commits).
async fn checkpoint(archive: &Archive, table: &deltalake::DeltaTable) -> Result<()> {
    let Some(version) = table.version() else {
        return Ok(());
    };
    let name = format!("{version:020}.checkpoint.parquet");
    if archive.log_has(&name) {
        return Ok(());
    }
    deltalake::checkpoints::create_checkpoint(table, None)
        .await
        .map_err(|e| Error::Delta {
            path: archive.events_dir(),
            source: Box::new(e),
        })
}

/// What `archive compact` did.
/// How many times `archive compact` starts again when another writer committed while
/// it rewrote, before it gives way (exit 75, nothing changed).
const COMPACT_ATTEMPTS: u32 = 5;

#[derive(Debug, Serialize, Default)]
pub struct CompactReport {
    pub days_compacted: usize,
    pub files_removed: u64,
    pub files_added: u64,
    pub version: i64,
}

/// Rewrite every day held in more than one file as one file sorted by time, all days in
/// one atomic commit.
///
/// The commit is made on the version the rewrite read, never rebased (`archive::rewrite`):
/// delta-rs's conflict check (1.1) lets a commit that removes files go ahead over
/// another that removed the same files without changing data (`dataChange: false`, as
/// every compaction and small-file merge is), and both rewrites would then be live, each
/// event twice; its OPTIMIZE retries that way whatever it is told. Another writer's
/// commit in between makes this read the new version and rewrite again, up to
/// 5 times (`COMPACT_ATTEMPTS`); then it gives way (exit 75), nothing changed.
pub async fn compact(archive: &Archive) -> Result<CompactReport> {
    let _lock = archive.lock_for_writing()?;
    for attempt in 1..=COMPACT_ATTEMPTS {
        match compact_once(archive).await {
            Err(Error::Moved { .. }) if attempt < COMPACT_ATTEMPTS => tracing::info!(
                target: "auditq::archive",
                "another writer committed while compaction ran (attempt {attempt}): compacting again"
            ),
            Err(Error::Moved { path, .. }) => {
                return Err(Error::Moved {
                    path,
                    what: format!("compaction ({COMPACT_ATTEMPTS} times)"),
                });
            }
            done => return done,
        }
    }
    unreachable!("the last attempt returns")
}

/// One attempt of [`compact`]: [`Error::Moved`] when another writer committed first.
async fn compact_once(archive: &Archive) -> Result<CompactReport> {
    let table = archive.open_table().await?;
    let files = live_files(archive, &table)?;
    let mut per_day: BTreeMap<&str, Vec<&LiveFile>> = BTreeMap::new();
    for f in &files {
        per_day.entry(f.date.as_str()).or_default().push(f);
    }
    per_day.retain(|_, files| files.len() > 1);
    if per_day.is_empty() {
        checkpoint(archive, &table).await?;
        return Ok(CompactReport {
            version: table.version().map_or(-1, |v| v as i64),
            ..Default::default()
        });
    }
    // Vacuum keeps what compaction writes while the lease is held; the marker tells a
    // commit whose reply was lost from one that did not happen.
    let marker = Marker::new();
    let _lease = Lease::hold(archive, &marker, "compact")?;
    let now = chrono::Utc::now().timestamp_millis();
    let target = super::rewrite::stored_schema(archive, &table)?;
    let mut report = CompactReport {
        days_compacted: per_day.len(),
        ..Default::default()
    };
    let mut actions = Vec::new();
    for day in per_day.values_mut() {
        // Archiving order, so that events of the same time keep it.
        day.sort_by(|x, y| x.added.cmp(&y.added).then_with(|| x.rel.cmp(&y.rel)));
        let sorted = super::rewrite::day_sorted_by_time(day, &target)?;
        let replaced = super::rewrite::replace_files(
            archive,
            &table,
            day,
            now,
            false,
            sorted.into_iter().map(Ok),
        )
        .await?;
        report.files_removed += day.len() as u64;
        report.files_added += super::rewrite::adds(&replaced);
        actions.extend(replaced);
    }
    let operation = deltalake::protocol::DeltaOperation::Optimize {
        predicate: Some("days held in more than one file".into()),
        target_size: 512 * 1024 * 1024,
    };
    let version = super::rewrite::commit(
        archive,
        &table,
        &marker,
        actions,
        operation,
        [],
        "compaction",
    )
    .await?;
    let mut table = table;
    super::rewrite::advance(archive, &mut table, version).await?;
    checkpoint(archive, &table).await?;
    report.version = version as i64;
    Ok(report)
}
