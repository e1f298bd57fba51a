//! `auditq follow`: the query language on events as they arrive.
//!
//! One loop: a source sends batches of events ([`source`]); the compiled query
//! ([`engine`]) turns each batch into matches or window alerts; the sinks ([`sink`])
//! deliver them. Every second (and whenever the source is caught up or ends) a
//! checkpoint is taken:
//!
//! 1. a barrier waits until every sink delivered everything sent so far;
//! 2. with `--archive`, the events read since the last checkpoint are committed, with
//!    the position in the same Delta commit (for the API, the sync checkpoint of the
//!    organization: `sync` and `follow` continue each other);
//! 3. the checkpoint file (source position, window and dedup state, the ids read in the
//!    overlap) is replaced atomically.
//!
//! A crash between two checkpoints re-reads from the last one: the archive drops the ids
//! it has, the sinks get those events again (at-least-once), and the windows, restored
//! from the same checkpoint, see the same events again — so no alert is lost, and an
//! alert is repeated only if it was sent after the last checkpoint.

pub mod engine;
pub mod error;
pub mod prefilter;
pub mod sink;
pub mod source;
pub mod window;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::archive::Archive;
use crate::archive::lock::Lock;
use crate::archive::quarantine::Quarantine;
use crate::archive::write::Writer;
use crate::error::{Error, Result};
use crate::event::col as c;
use crate::query::Clock;
use engine::Engine;
use source::{Msg, Position};

/// Where events come from.
#[derive(Debug, Clone)]
pub enum From {
    Api(source::Api),
    Stdin,
    File { path: PathBuf, follow: bool },
}

/// How to follow.
#[derive(Debug, Clone)]
pub struct Options {
    pub query: String,
    pub from: From,
    pub sinks: Vec<sink::Spec>,
    pub sink: sink::Options,
    pub archive: Option<Archive>,
    /// Checkpoint directory (`None`: stdin without `--state` keeps no checkpoint).
    pub state: Option<PathBuf>,
    pub lateness: Duration,
    /// The first run against the API starts this long ago (unless the archive has a
    /// sync checkpoint for the organization).
    pub since: Duration,
    /// Re-read before the checkpoint, against events processed out of order.
    pub overlap: Duration,
    pub checkpoint_every: Duration,
    pub now: i64,
    /// Longest wait for the sinks when stopping on a signal.
    pub shutdown_grace: Duration,
}

/// What a follow did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub read: u64,
    /// Documents the literal prefilter skipped unparsed (they cannot match).
    pub skipped: u64,
    pub repeated: u64,
    pub matches: u64,
    pub alerts: u64,
    pub late: u64,
    pub archived: u64,
    pub checkpoints: u64,
    pub sinks: Vec<(String, u64, u64)>,
    /// Stopped by this signal.
    pub signal: Option<i32>,
    /// Stopped on a signal before every sink had delivered (they re-send on restart).
    pub undelivered: bool,
}

impl Report {
    pub fn summary(&self) -> String {
        let sinks: Vec<String> = self
            .sinks
            .iter()
            .map(|(n, d, dead)| {
                if *dead > 0 {
                    format!("{n}: {d} delivered, {dead} refused")
                } else {
                    format!("{n}: {d} delivered")
                }
            })
            .collect();
        let skipped = if self.skipped > 0 {
            format!(
                ", {} documents skipped unparsed (they cannot match)",
                self.skipped
            )
        } else {
            String::new()
        };
        format!(
            "follow: {} events read ({} read again and skipped{skipped}), {} matches, {} alerts, {} late; {}",
            self.read,
            self.repeated,
            self.matches,
            self.alerts,
            self.late,
            sinks.join(", ")
        )
    }
}

/// The checkpoint file.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    query: String,
    source: String,
    position: Position,
    engine: engine::State,
    /// Ids read with their `processedAt` (ms), within the overlap of the position.
    recent: Vec<(String, i64)>,
    seq: i64,
    saved: String,
}

const CHECKPOINT: &str = "checkpoint.json";

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

fn load(dir: &Path) -> Result<Option<Checkpoint>> {
    let path = dir.join(CHECKPOINT);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| error::Error::Checkpoint { path, source }.into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format!("reading `{}`", path.display()))(e)),
    }
}

fn save(dir: &Path, cp: &Checkpoint) -> Result<()> {
    let path = dir.join(CHECKPOINT);
    let bytes = serde_json::to_vec(cp).map_err(error::Error::EncodeCheckpoint)?;
    crate::archive::quarantine::write_atomic(&path, &bytes)
        .map_err(io(format!("writing `{}`", path.display())))
}

/// The default checkpoint directory of a query on a source.
pub fn default_state_dir(query: &str, source: &str) -> PathBuf {
    let h = xxhash_rust::xxh3::xxh3_64(format!("{query}\u{1f}{source}").as_bytes());
    crate::run::data_dir()
        .join("follow")
        .join(format!("{h:016x}"))
}

impl From {
    /// Names the source, for the checkpoint (a checkpoint is for one source).
    pub fn describe(&self) -> String {
        match self {
            From::Api(a) => format!("api:{}", a.org),
            From::Stdin => "stdin".into(),
            From::File { path, .. } => format!("file:{}", path.display()),
        }
    }
}

/// Ids already read in the overlap, so that reading it again repeats nothing.
#[derive(Default)]
struct Recent {
    ids: HashMap<String, i64>,
}

impl Recent {
    /// Keep the rows not read before; remember them.
    fn fresh(&mut self, batch: &RecordBatch) -> (RecordBatch, u64) {
        let ids = batch.column_by_name(c::ID).expect("id").as_string::<i32>();
        let Some(p) = batch.column_by_name(c::PROCESSED_AT) else {
            return (batch.clone(), 0);
        };
        let p = p.as_primitive::<TimestampMicrosecondType>();
        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut repeated = 0;
        for i in 0..batch.num_rows() {
            let ms = if p.is_valid(i) { p.value(i) / 1000 } else { 0 };
            let new = self.ids.insert(ids.value(i).to_owned(), ms).is_none();
            repeated += u64::from(!new);
            keep.push(new);
        }
        if repeated == 0 {
            return (batch.clone(), 0);
        }
        let kept = filter_record_batch(batch, &BooleanArray::from(keep)).expect("same length");
        (kept, repeated)
    }

    fn prune(&mut self, before_ms: i64) {
        self.ids.retain(|_, ms| *ms >= before_ms);
    }
}

/// Run until the input ends, a signal arrives, or something fails for good.
pub async fn follow(opts: Options) -> Result<Report> {
    let query = crate::lang::parse(&opts.query).map_err(|d| Error::rejected(&opts.query, d))?;
    let mut engine = Engine::new(
        &query,
        &Clock::utc(opts.now),
        opts.lateness.as_micros() as i64,
    )
    .map_err(|d| Error::rejected(&opts.query, vec![d]))?;
    let source_name = opts.from.describe();
    let state_dir = match (&opts.state, &opts.from) {
        (Some(d), _) => Some(d.clone()),
        (None, From::Stdin) => None,
        (None, _) => Some(default_state_dir(&engine.text, &source_name)),
    };
    let _lock: Option<Lock> = match &state_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(io(format!("creating `{}`", d.display())))?;
            Some(Lock::acquire(&d.join("LOCK"))?)
        }
        None => None,
    };
    let checkpoint = match &state_dir {
        Some(d) => load(d)?,
        None => None,
    };
    let mut recent = Recent::default();
    let mut position = Position::Start;
    let mut seq = 0i64;
    if let Some(cp) = checkpoint {
        if cp.query != engine.text || cp.source != source_name {
            return Err(Error::Usage(format!(
                "the checkpoint in `{}` is for `{}` on {}; give another --state for this query",
                state_dir.as_deref().unwrap_or(Path::new("?")).display(),
                cp.query,
                cp.source
            )));
        }
        engine.restore(cp.engine);
        recent.ids = cp.recent.into_iter().collect();
        position = cp.position;
        seq = cp.seq;
    }
    let quarantine = match (&opts.archive, &state_dir) {
        (Some(a), _) => a.quarantine(),
        (None, Some(d)) => Quarantine::new(d.join("quarantine")),
        (None, None) => Quarantine::new(crate::run::data_dir().join("follow").join("quarantine")),
    };
    let mut writer = match &opts.archive {
        Some(a) => Some(Writer::open(a).await?),
        None => None,
    };
    let app = match &opts.from {
        From::Api(a) => crate::sync::app_id(&a.org),
        _ => format!("auditq-follow:{source_name}"),
    };
    let overlap_ms = opts.overlap.as_millis() as i64;
    // Documents that cannot match are not parsed, and events get no fingerprint (the
    // archive's content hash) — unless every event is archived.
    let keep: Option<crate::ingest::Keep> = match (&opts.archive, prefilter::Prefilter::of(&query))
    {
        (None, Some(p)) => Some(Arc::new(move |doc: &[u8]| p.keep(doc))),
        _ => None,
    };
    let parsing = crate::ingest::Parsing {
        keep,
        no_fingerprints: opts.archive.is_none(),
    };
    let (tx, mut rx) = mpsc::channel::<Msg>(4);
    let stop = Arc::new(AtomicBool::new(false));
    let mut source_task: tokio::task::JoinHandle<Result<()>> = match &opts.from {
        From::Api(api) => {
            let from = match &position {
                Position::Api { processed } => *processed,
                _ => {
                    let archived = match &writer {
                        Some(w) => w.checkpoint(&app).await?,
                        None => None,
                    };
                    archived.unwrap_or(opts.now / 1000 - opts.since.as_millis() as i64)
                }
            };
            if let Position::Start = position {
                position = Position::Api { processed: from };
            }
            tokio::spawn(source::api(
                api.clone(),
                from,
                overlap_ms,
                quarantine.clone(),
                tx,
            ))
        }
        From::Stdin => tokio::spawn(source::stdin(quarantine.clone(), parsing, tx)),
        From::File { path, follow } => {
            let (path, follow, start, stop) =
                (path.clone(), *follow, position.clone(), stop.clone());
            let q = quarantine.clone();
            tokio::task::spawn_blocking(move || {
                source::file(path, follow, start, q, parsing, stop, tx)
            })
        }
    };
    let mut sinks = sink::Sinks::start(&opts.sinks, &opts.sink)?;
    let mut report = Report::default();
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_rows = 0usize;
    let mut dirty = false;
    let mut last_checkpoint = Instant::now();
    let signal = crate::sync::signalled();
    tokio::pin!(signal);
    let mut tick = tokio::time::interval(opts.checkpoint_every.max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    // Deliver, archive and save: everything up to here is done.
    macro_rules! checkpoint {
        // While running: a signal during the wait for the sinks stops the run.
        () => {{
            tokio::select! {
                r = sinks.barrier() => r?,
                sig = &mut signal => {
                    report.signal = Some(sig);
                    return Ok(());
                }
            }
            checkpoint!(delivered);
        }};
        // The last one, after a signal: the caller bounds the wait.
        (last) => {{
            sinks.barrier().await?;
            checkpoint!(delivered);
        }};
        (delivered) => {{
            seq += 1;
            if let Some(w) = &mut writer {
                let version = match &position {
                    Position::Api { processed } => *processed,
                    _ => seq,
                };
                let stats = w
                    .commit_checkpoint(&pending, &format!("follow of {source_name}"), &app, version)
                    .await?;
                report.archived += stats.added;
            }
            pending.clear();
            pending_rows = 0;
            if let Position::Api { processed } = &position {
                recent.prune(processed - 2 * overlap_ms);
            }
            if let Some(d) = &state_dir {
                let cp = Checkpoint {
                    query: engine.text.clone(),
                    source: source_name.clone(),
                    position: position.clone(),
                    engine: engine.state(),
                    recent: recent.ids.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                    seq,
                    saved: crate::event::format_time(chrono::Utc::now().timestamp_micros()),
                };
                save(d, &cp)?;
            }
            report.checkpoints += 1;
            dirty = false;
            last_checkpoint = Instant::now();
        }};
    }

    // Queue records on the sinks; a full queue waits, but a signal still stops us. Then
    // the engine has taken a batch whose position was not recorded: no checkpoint may be
    // taken any more (the next run reads that batch again, and sends it again).
    let mut torn = false;
    macro_rules! send {
        ($records:expr) => {{
            tokio::select! {
                r = sinks.send($records) => r?,
                sig = &mut signal => {
                    report.signal = Some(sig);
                    torn = true;
                    return Ok(());
                }
            }
        }};
    }

    let outcome: Result<()> = async {
        loop {
            let msg = tokio::select! {
                sig = &mut signal => {
                    report.signal = Some(sig);
                    return Ok(());
                }
                _ = tick.tick() => {
                    if dirty && last_checkpoint.elapsed() >= opts.checkpoint_every {
                        checkpoint!();
                    }
                    continue;
                }
                m = rx.recv() => m,
            };
            match msg {
                Some(Msg::Batch { batch, pos }) => {
                    let (batch, repeated) = if matches!(pos, Position::Api { .. }) {
                        recent.fresh(&batch)
                    } else {
                        (batch, 0)
                    };
                    report.repeated += repeated;
                    report.read += batch.num_rows() as u64;
                    let records = engine.push(&batch).map_err(error::Error::Evaluate)?;
                    count(&mut report, &records);
                    send!(records);
                    position = pos;
                    dirty = true;
                    if writer.is_some() && batch.num_rows() > 0 {
                        pending_rows += batch.num_rows();
                        pending.push(batch);
                    }
                    if pending_rows >= 50_000 {
                        checkpoint!();
                    }
                }
                Some(Msg::Idle { now }) => {
                    if let Some(now) = now {
                        let records = engine.idle(now);
                        count(&mut report, &records);
                        if !records.is_empty() {
                            dirty = true;
                        }
                        send!(records);
                    }
                    if dirty {
                        checkpoint!();
                    }
                }
                Some(Msg::End { skipped }) => {
                    report.skipped = skipped;
                    let records = engine.finish();
                    count(&mut report, &records);
                    send!(records);
                    checkpoint!();
                    return Ok(());
                }
                None => {
                    // The source stopped: its error, or the end of its input.
                    return match (&mut source_task).await {
                        Ok(r) => r,
                        Err(source) => Err(error::Error::Task {
                            what: "source".into(),
                            source,
                        }
                        .into()),
                    };
                }
            }
        }
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    rx.close();
    report.late = engine.late();
    if let Err(e) = outcome {
        source_task.abort();
        return Err(e);
    }
    if report.signal.is_some() {
        // Stop reading; deliver what was sent, within the grace period.
        source_task.abort();
        let drained = tokio::time::timeout(opts.shutdown_grace, async {
            if torn {
                sinks.barrier().await?;
                report.undelivered = true;
            } else {
                checkpoint!(last);
            }
            Ok::<(), Error>(())
        })
        .await;
        match drained {
            Ok(r) => r?,
            Err(_) => {
                report.undelivered = true;
                return Ok(report);
            }
        }
    }
    let closed = tokio::time::timeout(opts.shutdown_grace, sinks.close()).await;
    if let Ok(counts) = closed {
        report.sinks = counts?
            .into_iter()
            .map(|(n, c)| (n, c.delivered, c.dead))
            .collect();
    }
    Ok(report)
}

fn count(report: &mut Report, records: &[engine::Record]) {
    for r in records {
        if r.alert {
            report.alerts += 1;
        } else {
            report.matches += 1;
        }
    }
}
