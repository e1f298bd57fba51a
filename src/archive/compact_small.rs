//! Compaction that keeps up by itself: after each commit, a writer merges the small files
//! of the days the commit touched, tier by tier, so that a day holds a bounded number of
//! files however many commits made it (a year of 15-minute syncs is 35,000 commits;
//! `follow --archive` commits every few seconds while events flow).
//!
//! A file's tier is its size band: under 1 MiB, under 16 MiB, under 256 MiB ([`TIERS`]);
//! larger files are left alone (`archive compact` rewrites whole days). When a day holds
//! [`FAN_IN`] files of one tier, those and every smaller file of the day are merged into
//! one file, its rows in archiving order (the files in the order the log added them,
//! then by path, each file's rows in order). A merge lands its file in a higher tier, so
//! an event is rewritten about once per tier (write amplification ≤ 4), and a day holds
//! fewer than `FAN_IN` files of each tier between merges.
//!
//! A day is *settled* once the writer archives an event more than [`SETTLE_MICROS`]
//! (an hour) past the day's end: Atlassian records few events that late. A settled day
//! is merged whole (its files under the top tier, when they hold at most
//! [`WHOLE_DAY_MAX`] bytes), its rows sorted by `time` as `archive compact` writes a
//! day, so that a year of syncs leaves one file a day, as compaction would, plus the
//! tiers of the day in progress. That is one more rewrite of each event. The commit that
//! settles a day (its newest event is past the day's settling time, the writer's newest
//! before it was not; a writer starts from the newest the table's statistics show)
//! merges it whole when it holds more than one file. Events that come for it later land
//! in small files of that day, merged by the tiers, and the day is merged whole again
//! only once they are a quarter of its largest file or more (so late events do not
//! rewrite a day each time). The days looked at are those a commit
//! touched, and the last day before the newest that holds files (the day the writer has
//! just moved past).
//!
//! A merge is one commit (`OPTIMIZE`, no data change: the same events, the same `leaf`
//! places) made through `archive::rewrite` on the version the writer just committed,
//! under a [`Lease`] that keeps `vacuum` from the new file until then. Another writer's
//! commit in between fails it with nothing changed; the next commit tries again.

use std::collections::BTreeMap;

use deltalake::DeltaTable;
use deltalake::protocol::DeltaOperation;

use super::commit::{Lease, Marker};
use super::read::{LiveFile, all_rows, live_files};
use super::{Archive, Result};

/// The upper bounds (bytes, exclusive) of the size tiers of the files merged.
pub const TIERS: [u64; 3] = [1 << 20, 16 << 20, 256 << 20];

/// Files of one tier in a day that make a merge.
pub const FAN_IN: usize = 10;

/// How long after a day's end (µs of event time) the writer must have archived an event
/// before the day is settled and merged whole.
pub const SETTLE_MICROS: i64 = 3_600_000_000;

/// The most stored bytes a settled day's merge takes: the day is sorted in memory (about
/// eight times its stored size). Larger days keep their tiers; `archive compact` does them.
pub const WHOLE_DAY_MAX: u64 = 32 << 20;

const DAY_MICROS: i64 = 86_400_000_000;

/// What a writer's upkeep after its commits did: merges of small files, and the
/// vacuum of old file versions (see [`super::vacuum`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Compacted {
    /// Merges made (one a day and commit).
    pub merges: u64,
    pub files_removed: u64,
    pub files_added: u64,
    /// Files deleted by vacuums (removed from the table longer ago than its window).
    pub files_vacuumed: u64,
}

impl Compacted {
    /// The clause a writer's summary ends with when it merged or vacuumed files: `;
    /// merged N small files into M; vacuumed K old files` (empty when it did neither).
    pub fn clause(&self) -> String {
        let mut s = String::new();
        if self.merges > 0 {
            s += &format!(
                "; merged {} small files into {}",
                self.files_removed, self.files_added
            );
        }
        if self.files_vacuumed > 0 {
            s += &format!(
                "; vacuumed {} old files (removed longer ago than the time-travel window)",
                self.files_vacuumed
            );
        }
        s
    }
}

impl std::ops::AddAssign for Compacted {
    fn add_assign(&mut self, o: Self) {
        self.merges += o.merges;
        self.files_removed += o.files_removed;
        self.files_added += o.files_added;
        self.files_vacuumed += o.files_vacuumed;
    }
}

/// The files of one day's `files` to merge now, in archiving order (none: not due).
pub fn due<'a>(files: &[&'a LiveFile]) -> Vec<&'a LiveFile> {
    let mut limit = None;
    let mut low = 0;
    for &high in &TIERS {
        let in_tier = files.iter().filter(|f| (low..high).contains(&f.size));
        if in_tier.count() >= FAN_IN {
            limit = Some(high);
        }
        low = high;
    }
    let Some(limit) = limit else {
        return Vec::new();
    };
    let mut chosen: Vec<&LiveFile> = files.iter().copied().filter(|f| f.size < limit).collect();
    chosen.sort_by(|x, y| x.added.cmp(&y.added).then_with(|| x.rel.cmp(&y.rel)));
    chosen
}

/// The files of a settled day to merge whole, in archiving order (none: one file, too
/// many bytes, or, unless the commit `just_settled` it, late events too few to be worth
/// a rewrite of the day).
pub fn whole_day_due<'a>(files: &[&'a LiveFile], just_settled: bool) -> Vec<&'a LiveFile> {
    let top = TIERS[TIERS.len() - 1];
    let mut chosen: Vec<&LiveFile> = files.iter().copied().filter(|f| f.size < top).collect();
    let total: u64 = chosen.iter().map(|f| f.size).sum();
    let largest = chosen.iter().map(|f| f.size).max().unwrap_or(0);
    let worth = just_settled || (total - largest) * 4 >= largest;
    if chosen.len() < 2 || total > WHOLE_DAY_MAX || !worth {
        return Vec::new();
    }
    chosen.sort_by(|x, y| x.added.cmp(&y.added).then_with(|| x.rel.cmp(&y.rel)));
    chosen
}

/// When `day` (`YYYY-MM-DD`) settles, in µs of event time.
fn settles_at(day: &str) -> Option<i64> {
    let start = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()?
        .and_hms_opt(0, 0, 0)?;
    Some(start.and_utc().timestamp_micros() + DAY_MICROS + SETTLE_MICROS)
}

/// The days among `touched` and the last day before the newest that holds files (of
/// `dates`, sorted) that are settled when the writer's newest event is at `newest` (µs).
pub fn settled_days(dates: &[&str], touched: &[String], newest: i64) -> Vec<String> {
    let settled = |day: &str| settles_at(day).is_some_and(|at| at <= newest);
    let newest_day = chrono::DateTime::from_timestamp_micros(newest)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let before = dates
        .iter()
        .rev()
        .find(|d| **d < newest_day.as_str())
        .map(|d| d.to_string());
    let mut days: Vec<String> = touched.iter().cloned().chain(before).collect();
    days.sort_unstable();
    days.dedup();
    days.retain(|d| settled(d));
    days
}

/// The time (µs) of the newest event `table` holds, by the statistics the log keeps of
/// the files of its latest day (`i64::MIN` when it shows none).
pub fn newest_archived(table: &DeltaTable) -> i64 {
    let Ok(snapshot) = table.snapshot() else {
        return i64::MIN;
    };
    let day_of = |path: &str| {
        path.split('/')
            .find_map(|s| s.strip_prefix("date="))
            .map(str::to_owned)
    };
    let files = snapshot.log_data();
    let Some(latest) = files.iter().filter_map(|f| day_of(f.path().as_ref())).max() else {
        return i64::MIN;
    };
    files
        .iter()
        .filter(|f| day_of(f.path().as_ref()).as_ref() == Some(&latest))
        .filter_map(|f| {
            let stats: serde_json::Value = serde_json::from_str(&f.stats()?).ok()?;
            let max = stats["maxValues"][crate::event::col::TIME].as_str()?;
            Some(
                chrono::DateTime::parse_from_rfc3339(max)
                    .ok()?
                    .timestamp_micros(),
            )
        })
        .max()
        .unwrap_or(i64::MIN)
}

/// Merge the files due in `days` of `table` (the writer's latest version; its newest
/// event was at `before` µs and is at `newest` after the commit) and in the day it has
/// just settled, in one commit: what was merged, and the table at the new version
/// (`table` itself when nothing was due).
pub async fn compact_days(
    a: &Archive,
    mut table: DeltaTable,
    days: &[String],
    (before, newest): (i64, i64),
) -> Result<(DeltaTable, Compacted)> {
    let files = live_files(a, &table)?;
    let mut per_day: BTreeMap<&str, Vec<&LiveFile>> = BTreeMap::new();
    for f in &files {
        per_day.entry(&f.date).or_default().push(f);
    }
    let dates: Vec<&str> = per_day.keys().copied().collect();
    let settled = settled_days(&dates, days, newest);
    let mut merges: Vec<(bool, Vec<&LiveFile>)> = Vec::new();
    for (day, files) in &per_day {
        let whole = match settled.iter().any(|d| d == day) {
            true => {
                let just = settles_at(day).is_some_and(|at| before < at);
                whole_day_due(files, just)
            }
            false => Vec::new(),
        };
        if !whole.is_empty() {
            merges.push((true, whole));
        } else if days.iter().any(|d| d == day) {
            merges.push((false, due(files)));
        }
    }
    merges.retain(|(_, files)| !files.is_empty());
    if merges.is_empty() {
        return Ok((table, Compacted::default()));
    }
    let marker = Marker::new();
    let _lease = Lease::hold(a, &marker, "compact")?;
    let now = chrono::Utc::now().timestamp_millis();
    let target = super::rewrite::stored_schema(a, &table)?;
    let mut actions = Vec::new();
    let mut done = Compacted::default();
    for (whole, merge) in &merges {
        let replaced = if *whole {
            let sorted = super::rewrite::day_sorted_by_time(merge, &target)?;
            super::rewrite::replace_files(a, &table, merge, now, false, sorted.into_iter().map(Ok))
                .await?
        } else {
            let readers = merge
                .iter()
                .map(|f| all_rows(f))
                .collect::<Result<Vec<_>>>()?;
            let rows = readers
                .into_iter()
                .flatten()
                .map(|b| super::rewrite::conform(&b?, &target));
            super::rewrite::replace_files(a, &table, merge, now, false, rows).await?
        };
        done.merges += 1;
        done.files_removed += merge.len() as u64;
        done.files_added += super::rewrite::adds(&replaced);
        actions.extend(replaced);
    }
    let operation = DeltaOperation::Optimize {
        predicate: Some("small files of the days a commit touched or settled".into()),
        target_size: TIERS[TIERS.len() - 1] as i64,
    };
    let version =
        super::rewrite::commit(a, &table, &marker, actions, operation, [], "compaction").await?;
    super::rewrite::advance(a, &mut table, version).await?;
    Ok((table, done))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(i: usize, size: u64) -> LiveFile {
        LiveFile {
            rel: format!("date=2026-11-01/part-{i:03}.parquet"),
            path: format!("/a/events/date=2026-11-01/part-{i:03}.parquet").into(),
            remote: None,
            size,
            date: "2026-11-01".into(),
            added: i as i64,
        }
    }

    #[test]
    fn a_tier_is_merged_with_the_smaller_files_when_it_fills_and_large_files_never() {
        const MIB: u64 = 1 << 20;
        let mut files: Vec<LiveFile> = (0..9).map(|i| file(i, 50_000)).collect();
        files.push(file(100, 300 * MIB));
        let refs: Vec<&LiveFile> = files.iter().collect();
        assert!(due(&refs).is_empty(), "9 small files are not due");
        files.push(file(9, 40_000));
        let refs: Vec<&LiveFile> = files.iter().collect();
        let chosen = due(&refs);
        assert_eq!(chosen.len(), 10);
        assert!(chosen.iter().all(|f| f.size < MIB));
        assert!(chosen.windows(2).all(|w| w[0].added < w[1].added));
        // Ten files of the second tier take the small ones with them.
        let mut files: Vec<LiveFile> = (0..10).map(|i| file(i, 2 * MIB)).collect();
        files.extend((10..13).map(|i| file(i, 1000)));
        files.push(file(20, 20 * MIB));
        let refs: Vec<&LiveFile> = files.iter().collect();
        let chosen = due(&refs);
        assert_eq!(chosen.len(), 13);
        assert!(chosen.iter().all(|f| f.size < 16 * MIB));
    }

    fn micros(t: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .timestamp_micros()
    }

    #[test]
    fn a_day_settles_an_hour_after_its_end_and_the_day_just_passed_is_looked_at() {
        let dates = ["2026-10-30", "2026-10-31", "2026-11-01"];
        let touched = ["2026-11-01".to_owned()];
        // 00:59 on Nov 1: Oct 31 is not settled yet.
        let early = micros("2026-11-01T00:59:59Z");
        assert!(settled_days(&dates, &touched, early).is_empty());
        // 01:00: Oct 31 (the last day with files before the newest) is; Oct 30 is left to
        // the merge that settled it, and the day in progress never is.
        let hour = micros("2026-11-01T01:00:00Z");
        assert_eq!(settled_days(&dates, &touched, hour), ["2026-10-31"]);
        // A late event of an old day touches it: that day is looked at too.
        let late = ["2026-10-02".to_owned(), "2026-11-01".to_owned()];
        assert_eq!(
            settled_days(&dates, &late, hour),
            ["2026-10-02", "2026-10-31"]
        );
        // A writer that jumped ahead settles the last day before the newest with files.
        let jump = micros("2026-11-09T12:00:00Z");
        let touched = ["2026-11-09".to_owned()];
        assert_eq!(settled_days(&dates, &touched, jump), ["2026-11-01"]);
        assert!(settled_days(&dates, &touched, i64::MIN).is_empty());
    }

    #[test]
    fn a_settled_day_is_merged_whole_unless_its_late_files_are_few_or_it_is_big() {
        const MIB: u64 = 1 << 20;
        let files: Vec<LiveFile> = (0..3).map(|i| file(i, 2 * MIB)).collect();
        let refs: Vec<&LiveFile> = files.iter().collect();
        assert_eq!(whole_day_due(&refs, false).len(), 3, "three files of 2 MiB");
        assert!(whole_day_due(&refs[..1], true).is_empty(), "one file");
        // A merged day and a late small file: in the hour the day settled, the day is
        // made one file; later, not worth rewriting the day for it.
        let late = [file(0, 8 * MIB), file(1, 100_000)];
        let refs: Vec<&LiveFile> = late.iter().collect();
        assert_eq!(whole_day_due(&refs, true).len(), 2);
        assert!(whole_day_due(&refs, false).is_empty());
        // Late files that add a quarter of the day are.
        let late = [file(0, 8 * MIB), file(1, MIB), file(2, MIB)];
        let refs: Vec<&LiveFile> = late.iter().collect();
        assert_eq!(whole_day_due(&refs, false).len(), 3);
        // A day too big to sort in memory keeps its tiers; files of the top tier stay.
        let big: Vec<LiveFile> = (0..3).map(|i| file(i, 20 * MIB)).collect();
        let refs: Vec<&LiveFile> = big.iter().collect();
        assert!(whole_day_due(&refs, true).is_empty());
        let mixed = [file(0, 300 * MIB), file(1, MIB), file(2, MIB)];
        let refs: Vec<&LiveFile> = mixed.iter().collect();
        let chosen = whole_day_due(&refs, false);
        assert_eq!(chosen.len(), 2);
        assert!(chosen.iter().all(|f| f.size == MIB));
    }
}
