//! The one reader of the Admin API's `/events-stream`, for `sync` and `follow`.
//!
//! Events come in processing order (`processedAt`), so events that Atlassian processes
//! late are still read. Reading starts at a `processedAt` (epoch ms) and goes on with
//! the cursor of each page. Each page becomes one batch; invalid events go to the
//! quarantine, and a page that stays unreadable is quarantined whole and stops the
//! reading (the checkpoint does not move past it).
//!
//! `sync` reads until it is caught up and fails on any API error. `follow` reads for
//! ever: it waits and tries again while the API is away, and when the API refuses an
//! old cursor it starts again at the last `processedAt` read minus the overlap.

use std::time::Duration;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::TimestampMicrosecondType;

use super::{Error, Result};
use crate::api::client::{ApiError, Client, Limits, Page, Secret, Status};
use crate::archive::quarantine::{Kind, Quarantine};
use crate::event::{BatchBuilder, col};

/// Where and how to read.
#[derive(Debug, Clone)]
pub struct Api {
    pub org: String,
    /// API root, e.g. `https://api.atlassian.com`.
    pub api_url: String,
    pub token: Secret,
    pub page_size: usize,
    pub limits: Limits,
}

/// What happens when the API is away or refuses a cursor.
#[derive(Debug, Clone, Copy)]
pub enum Patience {
    /// Fail: `sync` is run again by its scheduler.
    None,
    /// Wait (`poll`, doubling up to 5 minutes) and try again; start again before the
    /// last event read when the cursor is refused.
    Forever { poll: Duration },
}

/// One page read.
pub struct Read {
    /// Its valid events; `None` for an empty page.
    pub batch: Option<RecordBatch>,
    /// Events on the page, valid or not.
    pub fetched: usize,
    /// Events that went to the quarantine.
    pub invalid: u64,
    /// The largest `processedAt` of the batch (epoch ms).
    pub max_processed: Option<i64>,
    /// The last page there is for now.
    pub caught_up: bool,
    /// When the page was asked for (µs): no event processed before is still to come
    /// once caught up.
    pub asked: i64,
}

/// Where reading starts.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    /// The first request's `from` (`processedAt`, epoch ms).
    pub from: i64,
    /// The position already reached (the checkpoint), or `from`.
    pub processed: i64,
    /// How far before the position reading starts again when a cursor is refused (ms).
    pub overlap: i64,
}

pub struct ApiSource {
    client: Client,
    org: String,
    /// `sync` or `follow`: names the pages in the quarantine.
    reader: &'static str,
    page_size: String,
    quarantine: Quarantine,
    patience: Patience,
    cursor: Option<String>,
    /// The largest `processedAt` read (epoch ms); before the first page, the start.
    processed: i64,
    /// How far before `processed` reading starts again without a cursor (ms).
    overlap: i64,
    /// Where reading starts without a cursor (ms).
    from: i64,
    pages: u64,
    trouble: u32,
}

impl ApiSource {
    /// Reading from `start.from` (`processedAt`, epoch ms).
    pub fn new(
        api: &Api,
        reader: &'static str,
        start: Start,
        patience: Patience,
        quarantine: Quarantine,
    ) -> Result<Self> {
        let client = Client::new(
            &api.api_url,
            &api.org,
            api.token.clone(),
            api.limits.clone(),
        )?;
        Ok(ApiSource {
            client,
            org: api.org.clone(),
            reader,
            page_size: api.page_size.to_string(),
            quarantine,
            patience,
            cursor: None,
            processed: start.processed,
            overlap: start.overlap,
            from: start.from,
            pages: 0,
            trouble: 0,
        })
    }

    /// Pages read so far, empty ones included.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The largest `processedAt` read (epoch ms), or the start.
    pub fn processed(&self) -> i64 {
        self.processed
    }

    /// Requests, retries and rate-limit wait of the client.
    pub fn status(&self) -> Status {
        self.client.status.lock().expect("status lock").clone()
    }

    /// The next page.
    pub async fn next(&mut self) -> Result<Read> {
        loop {
            let url = match &self.cursor {
                // The page size goes along: a cursor alone falls back to the default.
                Some(c) => self
                    .client
                    .stream_url(&[("cursor", c.clone()), ("limit", self.page_size.clone())])?,
                None => self.client.stream_url(&[
                    ("from", self.from.to_string()),
                    ("limit", self.page_size.clone()),
                    ("sortOrder", "asc".to_owned()),
                ])?,
            };
            let asked = chrono::Utc::now().timestamp_micros();
            match self.client.page(&url).await {
                Ok(page) => {
                    self.trouble = 0;
                    return self.read(page, asked);
                }
                Err(e) => self.trouble(e).await?,
            }
        }
    }

    /// A page as a batch; the cursor and position move past it.
    fn read(&mut self, page: Page, asked: i64) -> Result<Read> {
        self.pages += 1;
        let fetched = page.events.len();
        let mut invalid = 0;
        let mut max = None;
        let batch = if fetched == 0 {
            None
        } else {
            let source = format!("{} page {} of {}", self.reader, self.pages, self.org);
            let batch = page_batch(&self.quarantine, &page, &source, &mut invalid)?;
            max = max_processed(&batch);
            if let Some(p) = max {
                self.processed = self.processed.max(p);
            }
            Some(batch)
        };
        let caught_up = fetched == 0 || page.next.is_none();
        if let Some(next) = page.next {
            // Kept after the last page: polling goes on from it.
            self.cursor = Some(next);
        }
        Ok(Read {
            batch,
            fetched,
            invalid,
            max_processed: max,
            caught_up,
            asked,
        })
    }

    /// What to do about a failed request: an error, or (when patient) go on after a
    /// wait or from an earlier position.
    async fn trouble(&mut self, e: ApiError) -> Result<()> {
        let poll = match (self.patience, e) {
            (
                _,
                ApiError::BadPage {
                    path,
                    attempts,
                    why,
                    body,
                },
            ) => return Err(poison(&self.quarantine, &path, attempts, &why, &body)),
            (Patience::None, e) => return Err(e.into()),
            (Patience::Forever { .. }, ApiError::Rejected { status: 400, .. })
                if self.cursor.is_some() =>
            {
                eprintln!(
                    "warning: the API refused the stream cursor; reading again from the last event read"
                );
                self.cursor = None;
                self.from = (self.processed - self.overlap).max(0);
                return Ok(());
            }
            (Patience::Forever { poll }, ApiError::GaveUp { path, last, .. }) => {
                // The API will be back: nothing was read, nothing is lost.
                self.trouble += 1;
                let wait = poll * 2u32.pow(self.trouble.min(5));
                eprintln!(
                    "warning: {path}: {last}; trying again in {} s",
                    wait.as_secs()
                );
                wait
            }
            (Patience::Forever { .. }, e) => return Err(e.into()),
        };
        tokio::time::sleep(poll.min(Duration::from_secs(300))).await;
        Ok(())
    }
}

/// Events of one page as a batch; invalid events go to the quarantine.
fn page_batch(
    quarantine: &Quarantine,
    page: &Page,
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
fn poison(quarantine: &Quarantine, path: &str, attempts: u32, why: &str, body: &[u8]) -> Error {
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
fn max_processed(batch: &RecordBatch) -> Option<i64> {
    let c = batch
        .column_by_name(col::PROCESSED_AT)?
        .as_primitive::<TimestampMicrosecondType>();
    (0..c.len())
        .filter(|&i| c.is_valid(i))
        .map(|i| c.value(i) / 1000)
        .max()
}
