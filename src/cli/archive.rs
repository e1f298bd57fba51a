//! `auditq archive …`: stats, verify, history, seal, prove, compact, repair, vacuum,
//! time-travel.

use std::path::PathBuf;

use clap::Subcommand;

use crate::archive::{evidence, maintain, short_duration, vacuum};
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
    /// Check every live file opens, matches the schema and that ids are unique; with
    /// --verifier-key, also every event against the signed evidence log
    Verify {
        /// Print JSON
        #[arg(long)]
        json: bool,
        /// The verifier key (`name+id+base64`, or a file holding it) whose checkpoints
        /// the archive must match
        #[arg(long, value_name = "KEY")]
        verifier_key: Option<String>,
        /// A checkpoint kept outside the archive that the archive must still extend
        /// (catches a rollback); needs --verifier-key
        #[arg(long, value_name = "CHECKPOINT_FILE", requires = "verifier_key")]
        trusted: Option<PathBuf>,
    },
    /// List the table's versions: commit time, operation, events added and removed, the
    /// evidence log's size and the checkpoint sealed with it (for `--as-of`)
    History {
        /// Print JSON (one array)
        #[arg(long)]
        json: bool,
    },
    /// Add the events archived since the last checkpoint to the evidence log and sign a
    /// checkpoint of it
    Seal {
        /// The private key (`auditq key generate`); default: the configured signing key
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Also write the checkpoint to DIR or s3://bucket/prefix (created once, never
        /// overwritten; uploads carry x-amz-checksum-sha256 and Content-MD5, which a
        /// bucket with an Object Lock default retention asks for)
        #[arg(long, value_name = "DIR|URL")]
        publish: Option<PathBuf>,
        /// First give the events archived before the evidence log (schema version 1)
        /// their places in it: rewrites the files that hold them, in one commit
        #[arg(long)]
        adopt: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Print inclusion proofs of events (one JSON object a line), or with --consistency
    /// a proof that an older tree is a prefix of the latest
    Prove {
        /// Event ids
        #[arg(value_name = "ID", required_unless_present = "consistency")]
        ids: Vec<String>,
        /// The size of the older tree (a checkpoint's second line)
        #[arg(long, value_name = "OLD_SIZE", conflicts_with = "ids")]
        consistency: Option<u64>,
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
        /// Delete files removed from the table longer ago than this (default: the
        /// archive's time-travel window, see `archive time-travel`; shorter needs --force)
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
        /// Only list what would be deleted
        #[arg(long)]
        dry_run: bool,
        /// Take an --older-than under the time-travel window or 1h (`--as-of` and old
        /// versions' readers may fail); unreferenced files are still kept 1h, and any
        /// written since a writer in flight began
        #[arg(long)]
        force: bool,
    },
    /// Show or set how long files removed from the table are kept, so that `--as-of`
    /// answers from versions that recent (Delta's `delta.deletedFileRetentionDuration`;
    /// default 7d); writers vacuum what is older every 100 versions
    TimeTravel {
        /// The new window, e.g. 30d or 400d (one commit); none: show it
        #[arg(value_name = "DURATION")]
        window: Option<String>,
        /// Take a window under 1h
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
        Command::Verify {
            json,
            verifier_key,
            trusted,
        } => verify(settings, &rt, json, verifier_key, trusted),
        Command::Seal {
            key,
            publish,
            adopt,
            json,
        } => seal(settings, &rt, key, publish, adopt, json),
        Command::History { json } => history(archive, json),
        Command::Prove { ids, consistency } => prove(settings, &rt, ids, consistency),
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
            let age = older_than
                .map(|o| super::duration("older-than", &o))
                .transpose()?;
            let r = rt.block_on(vacuum::vacuum(archive, age, dry_run, force))?;
            if !settings.quiet {
                super::say(&vacuum_summary(&r, dry_run, settings.verbose > 0))?;
            }
            Ok(())
        }
        Command::TimeTravel { window, force } => {
            super::say(&rt.block_on(time_travel(archive, window, force))?)
        }
    }
}

/// `archive time-travel [WINDOW]`: set the window, or say what it is.
async fn time_travel(
    archive: &crate::archive::Archive,
    window: Option<String>,
    force: bool,
) -> Result<String> {
    Ok(match window {
        Some(w) => {
            let w = super::duration("time-travel window", &w)?;
            let version = vacuum::set_window(archive, w, force).await?;
            format!(
                "time-travel window set to {} (version {version}): files removed from the table are kept that long, and `--as-of` answers from versions that recent",
                short_duration(w)
            )
        }
        None => format!(
            "files removed from the table are kept {}: `--as-of` answers from versions that recent (`auditq archive time-travel DURATION` sets it)",
            short_duration(vacuum::window(&archive.open_table().await?))
        ),
    })
}

/// What `archive vacuum` says it did (or would do, in a dry run).
fn vacuum_summary(r: &vacuum::VacuumReport, dry_run: bool, verbose: bool) -> String {
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut lines = vec![format!(
        "{verb} {} unreferenced files (removed from the table or never committed, more than {} ago)",
        r.files_deleted.len(),
        short_duration(r.older_than)
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

/// `archive verify`: the archive's own checks, and with a verifier key the evidence's.
fn verify(
    settings: &Settings,
    rt: &tokio::runtime::Runtime,
    as_json: bool,
    verifier_key: Option<String>,
    trusted: Option<PathBuf>,
) -> Result<()> {
    let archive = &settings.archive;
    let mut report = rt.block_on(maintain::verify(archive, verifier_key.is_none()))?;
    let evidence = match verifier_key {
        None => None,
        Some(key) => {
            let verifier = verifier(&key)?;
            let trusted = trusted.map(|p| read_text(&p)).transpose()?;
            let r = rt.block_on(evidence::verify(archive, &verifier, trusted.as_deref()))?;
            // The evidence check read the rows and made the row checks.
            report.rows = r.rows;
            report.problems.extend(r.problems.iter().cloned());
            Some(r)
        }
    };
    if as_json {
        super::say_json(&serde_json::json!({
            "version": report.version,
            "files": report.files,
            "rows": report.rows,
            "problems": report.problems,
            "evidence": evidence.as_ref().map(|e| serde_json::json!({
                "checkpoints": e.checkpoints,
                "sealed": e.sealed,
                "unsealed": e.unsealed,
                "trusted": e.trusted,
                "quarantined": e.quarantined.iter().map(|(leaf, id, item)| serde_json::json!({
                    "leaf": leaf, "id": id, "item": item,
                })).collect::<Vec<_>>(),
            })),
        }))?;
    } else if report.problems.is_empty() {
        let mut line = format!(
            "ok: version {}, {} files, {} events, every id once",
            report.version, report.files, report.rows
        );
        if let Some(e) = &evidence {
            line.push_str(&format!(
                "; every event matches the evidence log: {} leaves sealed in {} checkpoints{}{}{}",
                e.sealed,
                e.checkpoints,
                e.trusted
                    .map(|t| format!(", extends the trusted checkpoint of {t}"))
                    .unwrap_or_default(),
                match e.unsealed {
                    0 => String::new(),
                    n => format!("; {n} events archived since are not sealed yet"),
                },
                match e.quarantined.first() {
                    None => String::new(),
                    Some((_, id, item)) => format!(
                        "; {} sealed events are in the quarantine, where `archive repair` moved them (first: `{id}`, {item})",
                        e.quarantined.len()
                    ),
                }
            ));
        }
        super::say(&line)?;
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

/// `archive history`.
fn history(archive: &crate::archive::Archive, json: bool) -> Result<()> {
    let versions = crate::archive::history::history(archive)?;
    if json {
        return super::say_json(&versions);
    }
    let mut lines = vec![format!(
        "{:>7}  {:<24}  {:<14}  {:>8}  {:>8}  {:>10}  checkpoint",
        "version", "time", "operation", "added", "removed", "tree size"
    )];
    let or_dash = |n: Option<u64>| n.map_or("-".to_owned(), |n| n.to_string());
    for v in &versions {
        lines.push(format!(
            "{:>7}  {:<24}  {:<14}  {:>8}  {:>8}  {:>10}  {}",
            v.version,
            v.time.as_deref().unwrap_or("-"),
            v.operation,
            v.events_added,
            or_dash(v.events_removed),
            or_dash(v.tree_size),
            or_dash(v.checkpoint),
        ));
    }
    super::say(&lines.join("\n"))
}

/// `archive seal`.
fn seal(
    settings: &Settings,
    rt: &tokio::runtime::Runtime,
    key: Option<PathBuf>,
    publish: Option<PathBuf>,
    adopt: bool,
    json: bool,
) -> Result<()> {
    let publish = match publish {
        None => None,
        Some(to) => {
            let s3 = crate::archive::store::S3Options {
                checksums: true,
                ..settings.s3.clone()
            };
            Some(crate::run::archive_location(to, &s3)?)
        }
    };
    let archive = &settings.archive.clone().publishing_to(publish);
    let signer = match key {
        Some(path) => std::sync::Arc::new(crate::run::signer(&path)?),
        None => archive.signer().cloned().ok_or_else(|| {
            Error::Usage(
                "no signing key: pass --key FILE, set AUDITQ_SIGNING_KEY or `signing_key` in the config file (make one with `auditq key generate`)".into(),
            )
        })?,
    };
    let adopted = match adopt {
        true => Some(rt.block_on(evidence::adopt(archive))?),
        false => None,
    };
    let sealed = rt.block_on(evidence::seal(archive, &signer))?;
    if json {
        let mut out = serde_json::to_value(&sealed).expect("serializable");
        if let Some(adopted) = &adopted {
            out["adopted"] = serde_json::to_value(adopted).expect("serializable");
        }
        return super::say_json(&out);
    }
    if !settings.quiet {
        match &adopted {
            Some(evidence::Adopted {
                events: 0,
                first_leaf,
                ..
            }) => super::say(&format!(
                "nothing to adopt: every event has a place in the log ({first_leaf} places)"
            ))?,
            Some(a) => super::say(&format!(
                "adopted {} events archived before the log: places {}..{}, {} files rewritten (version {})",
                a.events,
                a.first_leaf,
                a.first_leaf + a.events,
                a.files_rewritten,
                a.version.unwrap_or_default()
            ))?,
            None => {}
        }
        super::say(&match sealed.size - sealed.previous {
            0 => format!(
                "nothing to seal: the latest checkpoint covers all {} events (version {})",
                sealed.size, sealed.version
            ),
            n => format!(
                "sealed {n} events: wrote checkpoint {} ({} leaves, version {}) to {}/evidence/",
                sealed.size,
                sealed.size,
                sealed.version,
                archive.root().display()
            ),
        })?;
    }
    Ok(())
}

/// `archive prove`.
fn prove(
    settings: &Settings,
    rt: &tokio::runtime::Runtime,
    ids: Vec<String>,
    consistency: Option<u64>,
) -> Result<()> {
    let archive = &settings.archive;
    let verifier = archive.signer().map(|s| s.verifier());
    if let Some(old) = consistency {
        let proof = rt.block_on(evidence::consistency(archive, verifier.as_ref(), old))?;
        return super::say(&serde_json::to_string(&proof).expect("serializable"));
    }
    let proofs = rt.block_on(evidence::prove(archive, verifier.as_ref(), &ids))?;
    let mut failed = 0;
    for p in proofs {
        match p {
            Ok(p) => super::say(&serde_json::to_string(&p).expect("serializable"))?,
            Err(why) => {
                failed += 1;
                eprintln!("error: {why}");
            }
        }
    }
    match failed {
        0 => Ok(()),
        n => Err(Error::Usage(format!(
            "{n} of {} ids have no proof",
            ids.len()
        ))),
    }
}

/// A verifier key given as its text, or as a file holding it.
pub(super) fn verifier(key: &str) -> Result<crate::note::Verifier> {
    if let Ok(v) = crate::note::Verifier::from_text(key) {
        return Ok(v);
    }
    let text = read_text(std::path::Path::new(key))
        .map_err(|_| Error::Usage(format!("--verifier-key `{key}`: neither a verifier key (`name+id+base64`) nor a file holding one")))?;
    crate::note::Verifier::from_text(&text)
        .map_err(|why| Error::Usage(format!("--verifier-key `{key}`: {why}")))
}

fn read_text(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        what: format!("reading `{}`", path.display()),
        source,
    })
}
