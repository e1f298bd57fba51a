//! `auditq archive …`: stats, verify, compact, repair, vacuum.

use clap::Subcommand;

use crate::archive::maintain;
use crate::error::{Error, Result};
use crate::run::Settings;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Events, days, time range, files, bytes, top actions
    Stats {
        /// Print JSON
        #[arg(long)]
        json: bool,
        /// How many top actions to list
        #[arg(long, default_value_t = 10, value_name = "N")]
        top: usize,
    },
    /// Check every live file opens, matches the schema and that ids are unique
    Verify {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Rewrite each day held in several files as one file sorted by time (one commit)
    Compact,
    /// Remove the later copies of ids archived more than once (one commit); the removed
    /// copies are kept in quarantine/conflict/
    Repair {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete data files no live version references (never live data)
    Vacuum {
        /// Keep files removed or orphaned less than this long ago (at least 1h without
        /// --force)
        #[arg(long, default_value = "7d", value_name = "DURATION")]
        older_than: String,
        /// Only list what would be deleted
        #[arg(long)]
        dry_run: bool,
        /// Take an --older-than under 1h for files removed from the table (old versions'
        /// readers may fail); unreferenced files are still kept 1h, and any written since
        /// a writer in flight began
        #[arg(long)]
        force: bool,
    },
}

pub fn run(settings: &Settings, action: Command) -> Result<()> {
    let archive = &settings.archive;
    let rt = super::runtime()?;
    match action {
        Command::Stats { json: as_json, top } => {
            let stats = rt.block_on(maintain::stats(archive, top))?;
            if as_json {
                return super::say_json(&stats);
            }
            let mut lines = vec![
                format!("archive      {}", stats.archive),
                format!("version      {}", stats.version),
                format!(
                    "events       {} ({} distinct ids)",
                    stats.events, stats.distinct_ids
                ),
                format!("days         {}", stats.days),
                format!("first        {}", stats.first.as_deref().unwrap_or("-")),
                format!("last         {}", stats.last.as_deref().unwrap_or("-")),
                format!(
                    "files        {} ({})",
                    stats.files,
                    human_bytes(stats.bytes)
                ),
                format!(
                    "quarantine   {} invalid, {} conflicting duplicates",
                    stats.quarantined_invalid, stats.quarantined_conflicts
                ),
                "top actions".to_owned(),
            ];
            lines.extend(
                stats
                    .top_actions
                    .iter()
                    .map(|(a, n)| format!("  {n:>10}  {a}")),
            );
            super::say(&lines.join("\n"))
        }
        Command::Verify { json: as_json } => {
            let report = rt.block_on(maintain::verify(archive))?;
            if as_json {
                super::say_json(&report)?;
            } else if report.problems.is_empty() {
                super::say(&format!(
                    "ok: version {}, {} files, {} events, every id once",
                    report.version, report.files, report.rows
                ))?;
            } else {
                for p in &report.problems {
                    eprintln!(
                        "problem: {}: {}",
                        p.file.as_deref().unwrap_or("archive"),
                        p.what
                    );
                }
            }
            match report.problems.len() {
                0 => Ok(()),
                n => Err(Error::VerifyFailed { problems: n }),
            }
        }
        Command::Compact => {
            let r = rt.block_on(maintain::compact(archive))?;
            if !settings.quiet {
                super::say(&match r.days_compacted {
                    0 => format!(
                        "nothing to compact: every day is one file (version {})",
                        r.version
                    ),
                    d => format!(
                        "compacted {d} days: {} files -> {} files (version {})",
                        r.files_removed, r.files_added, r.version
                    ),
                })?;
            }
            Ok(())
        }
        Command::Repair { json: as_json } => {
            let r = rt.block_on(crate::archive::repair::repair(archive))?;
            if as_json {
                super::say_json(&r)?;
            } else if !settings.quiet {
                super::say(&match r.copies_removed {
                    0 => format!(
                        "nothing to repair: every id is archived once (version {})",
                        r.version
                    ),
                    n => format!(
                        "removed {n} later copies of {} ids from {} files (version {}); the copies are in quarantine/conflict/",
                        r.ids, r.files_rewritten, r.version
                    ),
                })?;
            }
            Ok(())
        }
        Command::Vacuum {
            older_than,
            dry_run,
            force,
        } => {
            let age = super::duration("older-than", &older_than)?;
            let r = rt.block_on(maintain::vacuum(archive, age, dry_run, force))?;
            if !settings.quiet {
                super::say(&vacuum_summary(&r, dry_run, settings.verbose > 0))?;
            }
            Ok(())
        }
    }
}

/// What `archive vacuum` says it did (or would do, in a dry run).
fn vacuum_summary(r: &maintain::VacuumReport, dry_run: bool, verbose: bool) -> String {
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut lines = vec![format!(
        "{verb} {} unreferenced files",
        r.files_deleted.len()
    )];
    if r.stale_leases > 0 {
        let verb = if dry_run { "would remove" } else { "removed" };
        lines.push(format!(
            "{verb} {} leases of writers that died over 24 hours ago",
            r.stale_leases
        ));
    }
    if !r.writers_in_flight.is_empty() {
        let who: Vec<String> = r
            .writers_in_flight
            .iter()
            .map(|w| format!("{} (pid {})", w.what, w.pid))
            .collect();
        lines.push(format!(
            "kept every file written since the oldest of {} writers in flight began: {}",
            who.len(),
            who.join(", ")
        ));
    }
    if verbose || dry_run {
        lines.extend(r.files_deleted.iter().map(|f| format!("  {f}")));
    }
    lines.join("\n")
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
