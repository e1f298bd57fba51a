//! `auditq sync`: pull an organization's audit log from the Admin API into the archive.
//!
//! Events come from `/events-stream`, in processing order (`processedAt`), so events that
//! Atlassian processes late — hours after their `time`, in a day already synced — are
//! still read. The first run starts `--since` ago; later runs start at the checkpoint
//! minus an overlap (10 minutes) and the writer drops the ids already archived.
//!
//! Every `commit_pages` pages the events are committed in one Delta commit that also
//! records the checkpoint (the largest `processedAt` committed, epoch ms) as the version
//! of the application transaction `auditq-sync:<org>`: the data and the checkpoint move
//! together or not at all. A crash at any moment loses nothing (the next run starts at
//! the last committed checkpoint) and duplicates nothing (ids are unique in the archive).

use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::TimestampMicrosecondType;

use crate::api::client::{ApiError, Client, Limits, Secret};
use crate::archive::Archive;
use crate::archive::quarantine::Kind;
use crate::archive::write::Writer;
use crate::error::{Error, Result};
use crate::event::{self, BatchBuilder, col};

/// How to sync.
#[derive(Debug, Clone)]
pub struct Options {
    pub org: String,
    /// API root, e.g. `https://api.atlassian.com`.
    pub api_url: String,
    pub token: Secret,
    /// How far back the first run reaches.
    pub since: Duration,
    /// How far before the checkpoint later runs start reading again.
    pub overlap: Duration,
    pub page_size: usize,
    /// Pages per commit.
    pub commit_pages: usize,
    pub progress: bool,
    pub limits: Limits,
}

impl Options {
    pub fn new(org: &str, api_url: &str, token: Secret) -> Self {
        Options {
            org: org.to_owned(),
            api_url: api_url.to_owned(),
            token,
            since: Duration::from_secs(180 * 86_400),
            overlap: Duration::from_secs(600),
            page_size: 500,
            commit_pages: 20,
            progress: false,
            limits: Limits::default(),
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
            "synced {} new events ({} already archived, {} conflicts, {} invalid) from {} pages in {:.1} s ({:.0} events/s, {} requests, {} retries); checkpoint {checkpoint}",
            self.added,
            self.already_archived,
            self.conflicts,
            self.invalid,
            self.pages,
            self.seconds,
            self.events_per_second(),
            self.requests,
            self.retries,
        )
    }
}

/// The application-transaction id of an organization's sync checkpoint.
pub fn app_id(org: &str) -> String {
    format!("auditq-sync:{org}")
}

/// Which signal stopped us, if one did.
pub(crate) async fn signalled() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => 2,
        _ = term.recv() => 15,
    }
}

/// Events of one page as a batch; invalid events go to the quarantine.
pub(crate) fn page_batch(
    quarantine: &crate::archive::quarantine::Quarantine,
    page: &crate::api::client::Page,
    source: &str,
    invalid: &mut u64,
) -> Result<RecordBatch> {
    let mut builder = BatchBuilder::new();
    for raw in &page.events {
        if let Err(why) = builder.push_event(raw.get()) {
            *invalid += 1;
            quarantine
                .put(
                    Kind::Invalid,
                    raw.get().as_bytes(),
                    &why.to_string(),
                    source,
                    None,
                )
                .map_err(|source| Error::Io {
                    what: "writing to the quarantine".into(),
                    source,
                })?;
        }
    }
    Ok(builder.finish())
}

/// A page that stayed unreadable: its bytes go to the quarantine, and the error says
/// where (the checkpoint does not move past it).
pub(crate) fn poison(
    quarantine: &crate::archive::quarantine::Quarantine,
    path: &str,
    attempts: u32,
    why: &str,
    body: &[u8],
) -> Error {
    let stored = quarantine.put(
        Kind::Invalid,
        body,
        &format!("unreadable API page: {why}"),
        path,
        None,
    );
    match stored {
        Ok(q) => Error::Poison {
            message: format!(
                "{path}: the page stayed unreadable after {attempts} attempts ({why})"
            ),
            path: q,
        },
        Err(source) => Error::Io {
            what: "writing to the quarantine".into(),
            source,
        },
    }
}

/// The largest `processed_at` of a batch, epoch ms.
pub(crate) fn max_processed(batch: &RecordBatch) -> Option<i64> {
    let c = batch
        .column_by_name(col::PROCESSED_AT)?
        .as_primitive::<TimestampMicrosecondType>();
    (0..c.len())
        .filter(|&i| c.is_valid(i))
        .map(|i| c.value(i) / 1000)
        .max()
}

/// Run one sync to the end of the stream (or the first failure or signal).
pub async fn sync(archive: &Archive, opts: &Options) -> Result<Report> {
    let started = Instant::now();
    let mut writer = Writer::open(archive).await?;
    let app = app_id(&opts.org);
    let checkpoint = writer.checkpoint(&app).await?;
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
    let mut client = Client::new(
        &opts.api_url,
        &opts.org,
        opts.token.clone(),
        opts.limits.clone(),
    )?;
    let mut url = client.stream_url(&[
        ("from", from.to_string()),
        ("limit", opts.page_size.to_string()),
        ("sortOrder", "asc".to_owned()),
    ])?;
    let bar = opts.progress.then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_max: Option<i64> = checkpoint;
    let mut pending_pages = 0usize;
    let stop = signalled();
    tokio::pin!(stop);
    let result: Result<()> = async {
        loop {
            let fetched = tokio::select! {
                sig = &mut stop => return Err(Error::Interrupted(sig)),
                page = client.page(&url) => page,
            };
            let page = match fetched {
                Ok(p) => p,
                Err(ApiError::BadPage {
                    path,
                    attempts,
                    why,
                    body,
                }) => return Err(poison(&archive.quarantine(), &path, attempts, &why, &body)),
                Err(e) => return Err(e.into()),
            };
            report.pages += 1;
            report.fetched += page.events.len() as u64;
            let empty = page.events.is_empty();
            if !empty {
                let source = format!("sync page {} of {}", report.pages, opts.org);
                let batch = page_batch(&archive.quarantine(), &page, &source, &mut report.invalid)?;
                pending_max = pending_max.max(max_processed(&batch));
                pending.push(batch);
                pending_pages += 1;
            }
            let last = empty || page.next.is_none();
            if pending_pages >= opts.commit_pages || (last && pending_pages > 0) {
                // A commit in flight is finished even if a signal arrives meanwhile.
                let source = format!("sync of {}", opts.org);
                let stats = writer
                    .commit_checkpoint(&pending, &source, &app, pending_max.unwrap_or(from))
                    .await?;
                report.added += stats.added;
                report.already_archived += stats.present;
                report.conflicts += stats.conflicts;
                report.commits += 1;
                report.checkpoint = pending_max;
                pending.clear();
                pending_pages = 0;
            }
            if let Some(b) = &bar {
                let st = client.status.lock().expect("status lock").clone();
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
            match page.next {
                Some(next) if !empty => {
                    // The page size goes along: a cursor alone falls back to the default.
                    url = client
                        .stream_url(&[("cursor", next), ("limit", opts.page_size.to_string())])?;
                }
                _ => return Ok(()),
            }
        }
    }
    .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let st = client.status.lock().expect("status lock").clone();
    report.requests = st.requests;
    report.retries = st.retries;
    report.seconds = started.elapsed().as_secs_f64();
    result.map(|()| report)
}
