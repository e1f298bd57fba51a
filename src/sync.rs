//! `auditq sync`: pull an organization's audit log from the Admin API into the archive.
//!
//! `sync` = [`ApiSource`] → [`ArchiveSink`] (see [`crate::pipeline`]). Events come from
//! `/events-stream`, in processing order (`processedAt`), so events that Atlassian
//! processes late — hours after their `time`, in a day already synced — are still read. The first run starts `--since` ago; later runs start at the checkpoint
//! minus an overlap (10 minutes) and the writer drops the ids already archived.
//!
//! Every `commit_pages` pages the events are committed in one Delta commit that also
//! records the checkpoint (the largest `processedAt` committed, epoch ms) as the version
//! of the application transaction `auditq-sync:<org>`: the data and the checkpoint move
//! together or not at all. A crash at any moment loses nothing (the next run starts at
//! the last committed checkpoint) and duplicates nothing (ids are unique in the archive).

use std::time::{Duration, Instant};

use crate::api::client::{Limits, Secret};
use crate::archive::Archive;
use crate::event;
use crate::pipeline::api::{Api, ApiSource, Patience, Start};
use crate::pipeline::archive::{ArchiveSink, api_app};
use crate::pipeline::signalled;
use crate::pipeline::{Error, Result};

/// How to sync.
#[derive(Debug, Clone)]
pub struct Options {
    /// The organization, the API, the page size and the client's limits.
    pub api: Api,
    /// How far back the first run reaches.
    pub since: Duration,
    /// How far before the checkpoint later runs start reading again.
    pub overlap: Duration,
    /// Pages per commit.
    pub commit_pages: usize,
    pub progress: bool,
}

impl Options {
    pub fn new(org: &str, api_url: &str, token: Secret) -> Self {
        Options {
            api: Api {
                org: org.to_owned(),
                api_url: api_url.to_owned(),
                token,
                page_size: 500,
                limits: Limits::default(),
            },
            since: Duration::from_secs(180 * 86_400),
            overlap: Duration::from_secs(600),
            commit_pages: 20,
            progress: false,
        }
    }
}

/// What a sync did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    pub pages: u64,
    pub fetched: u64,
    pub added: u64,
    pub already_archived: u64,
    pub conflicts: u64,
    pub invalid: u64,
    pub commits: u64,
    pub requests: u64,
    pub retries: u64,
    /// The checkpoint after the run (largest `processedAt` committed, epoch ms).
    pub checkpoint: Option<i64>,
    /// Where this run started reading (`processedAt`, epoch ms).
    pub from: i64,
    pub seconds: f64,
    /// Small files merged after the commits.
    pub compacted: crate::archive::compact_small::Compacted,
}

impl Report {
    pub fn events_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.fetched as f64 / self.seconds
        } else {
            0.0
        }
    }

    pub fn summary(&self) -> String {
        let checkpoint = self
            .checkpoint
            .map(|ms| event::format_time(ms * 1000))
            .unwrap_or_else(|| "none".into());
        format!(
            "synced {} new events ({} already archived, {} conflicts, {} invalid) from {} pages in {:.1} s ({:.0} events/s, {} requests, {} retries); checkpoint {checkpoint}{}",
            self.added,
            self.already_archived,
            self.conflicts,
            self.invalid,
            self.pages,
            self.seconds,
            self.events_per_second(),
            self.requests,
            self.retries,
            self.compacted.clause(),
        )
    }
}

/// Run one sync to the end of the stream (or the first failure or signal).
pub async fn sync(archive: &Archive, opts: &Options) -> Result<Report> {
    let started = Instant::now();
    let mut sink = ArchiveSink::open(
        archive,
        Some(api_app(&opts.api.org)),
        format!("sync of {}", opts.api.org),
    )
    .await?;
    let checkpoint = sink.checkpoint().await?;
    let now = chrono::Utc::now().timestamp_millis();
    let from = match checkpoint {
        Some(ms) => ms - opts.overlap.as_millis() as i64,
        None => now - opts.since.as_millis() as i64,
    };
    let mut report = Report {
        checkpoint,
        from,
        ..Default::default()
    };
    let start = Start {
        from,
        processed: from,
        overlap: opts.overlap.as_millis() as i64,
    };
    let mut source = ApiSource::new(
        &opts.api,
        "sync",
        start,
        Patience::None,
        archive.quarantine(),
    )?;
    let bar = opts.progress.then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    let mut pending_max: Option<i64> = checkpoint;
    let mut pending_pages = 0usize;
    let stop = signalled();
    tokio::pin!(stop);
    let result: Result<()> = async {
        loop {
            let read = tokio::select! {
                sig = &mut stop => return Err(Error::Interrupted(sig)),
                read = source.next() => read?,
            };
            report.pages = source.pages();
            report.fetched += read.fetched as u64;
            report.invalid += read.invalid;
            if let Some(batch) = read.batch {
                pending_max = pending_max.max(read.max_processed);
                sink.push(batch);
                pending_pages += 1;
            }
            if pending_pages >= opts.commit_pages || (read.caught_up && pending_pages > 0) {
                // A commit in flight is finished even if a signal arrives meanwhile.
                let stats = sink.commit(pending_max.unwrap_or(from)).await?;
                report.added += stats.added;
                report.already_archived += stats.present;
                report.conflicts += stats.conflicts;
                report.compacted += stats.compacted;
                report.commits += 1;
                report.checkpoint = pending_max;
                pending_pages = 0;
            }
            if let Some(b) = &bar {
                let st = source.status();
                let rate = report.fetched as f64 / started.elapsed().as_secs_f64().max(1e-3);
                let wait = st
                    .rate_wait_until
                    .map(|t| {
                        format!(
                            ", waiting {} s for the rate limit",
                            (t - chrono::Utc::now().timestamp_millis()).max(0) / 1000
                        )
                    })
                    .unwrap_or_default();
                b.set_message(format!(
                    "{} pages, {} events ({} new), {rate:.0} events/s{wait}",
                    report.pages, report.fetched, report.added
                ));
            }
            if read.caught_up {
                return Ok(());
            }
        }
    }
    .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let st = source.status();
    report.requests = st.requests;
    report.retries = st.retries;
    report.seconds = started.elapsed().as_secs_f64();
    result.map(|()| report)
}
