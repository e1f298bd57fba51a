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
//! A merge is one commit (`OPTIMIZE`, no data change: the same events, the same `leaf`
//! places) made through `archive::rewrite` on the version the writer just committed,
//! under a [`Lease`] that keeps `vacuum` from the new file until then. Another writer's
//! commit in between fails it with nothing changed; the next commit tries again.

use std::collections::BTreeMap;

use deltalake::DeltaTable;
use deltalake::protocol::DeltaOperation;

use super::commit::{Lease, Marker};
use super::read::{LiveFile, all_rows, live_files};
use super::{Archive, Error, Result};

/// The upper bounds (bytes, exclusive) of the size tiers of the files merged.
pub const TIERS: [u64; 3] = [1 << 20, 16 << 20, 256 << 20];

/// Files of one tier in a day that make a merge.
pub const FAN_IN: usize = 10;

/// What a writer's compactions did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Compacted {
    /// Merges made (one a day and commit).
    pub merges: u64,
    pub files_removed: u64,
    pub files_added: u64,
}

impl Compacted {
    /// The clause a writer's summary ends with when it merged files: `; merged N small
    /// files into M` (empty when it merged none).
    pub fn clause(&self) -> String {
        match self.merges {
            0 => String::new(),
            _ => format!(
                "; merged {} small files into {}",
                self.files_removed, self.files_added
            ),
        }
    }
}

impl std::ops::AddAssign for Compacted {
    fn add_assign(&mut self, o: Self) {
        self.merges += o.merges;
        self.files_removed += o.files_removed;
        self.files_added += o.files_added;
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

/// Merge the files due in `days` of `table` (the writer's latest version), in one
/// commit: what was merged, and the table at the new version (`table` itself when
/// nothing was due).
pub async fn compact_days(
    a: &Archive,
    mut table: DeltaTable,
    days: &[String],
) -> Result<(DeltaTable, Compacted)> {
    let files = live_files(a, &table)?;
    let mut per_day: BTreeMap<&str, Vec<&LiveFile>> = BTreeMap::new();
    for f in &files {
        if days.contains(&f.date) {
            per_day.entry(&f.date).or_default().push(f);
        }
    }
    let merges: Vec<Vec<&LiveFile>> = per_day
        .values()
        .map(|files| due(files))
        .filter(|due| !due.is_empty())
        .collect();
    if merges.is_empty() {
        return Ok((table, Compacted::default()));
    }
    let marker = Marker::new();
    let _lease = Lease::hold(a, &marker, "compact")?;
    let now = chrono::Utc::now().timestamp_millis();
    let mut actions = Vec::new();
    let mut done = Compacted::default();
    for merge in &merges {
        let readers = merge
            .iter()
            .map(|f| all_rows(f))
            .collect::<Result<Vec<_>>>()?;
        let rows = readers.into_iter().flatten().map(|b| Ok(b?));
        let replaced = super::rewrite::replace_files(a, &table, merge, now, false, rows).await?;
        done.merges += 1;
        done.files_removed += merge.len() as u64;
        done.files_added += super::rewrite::adds(&replaced);
        actions.extend(replaced);
    }
    let operation = DeltaOperation::Optimize {
        predicate: Some("small files of the days a commit touched".into()),
        target_size: TIERS[TIERS.len() - 1] as i64,
    };
    let version =
        super::rewrite::commit(a, &table, &marker, actions, operation, [], "compaction").await?;
    table
        .update_incremental(Some(version))
        .await
        .map_err(|e| Error::Delta {
            path: a.events_dir(),
            source: Box::new(e),
        })?;
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
}
