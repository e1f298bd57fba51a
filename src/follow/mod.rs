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
pub mod pack;
pub mod prefilter;
pub mod reorder;
pub mod sequence;
pub mod sink;
pub mod window;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
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
use crate::event::col as c;
use crate::pipeline::archive::{ArchiveSink, api_app};
use crate::pipeline::source::{self, Msg, Position, Source};
use crate::query::Clock;
use engine::Engine;
use error::{Error, Result};
use pack::Pack;

/// Where events come from.
#[derive(Debug, Clone)]
pub enum From {
    Api(source::Poll),
    Stdin,
    File { path: PathBuf, follow: bool },
}

/// How to follow.
#[derive(Debug, Clone)]
pub struct Options {
    pub query: String,
    /// `--rules DIR`: the rules run instead of `query` (when not empty).
    pub rules: Vec<pack::Rule>,
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

impl Default for Options {
    /// Standard input to standard output, checkpoints unkept, now by the clock.
    fn default() -> Self {
        Options {
            query: String::new(),
            rules: Vec::new(),
            from: From::Stdin,
            sinks: vec![sink::Spec::Stdout],
            sink: sink::Options::default(),
            archive: None,
            state: None,
            lateness: Duration::from_secs(600),
            since: Duration::from_secs(600),
            overlap: Duration::from_secs(600),
            checkpoint_every: Duration::from_secs(1),
            now: chrono::Utc::now().timestamp_micros(),
            shutdown_grace: Duration::from_millis(4500),
        }
    }
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
    /// Small files merged after its commits.
    pub compacted: crate::archive::compact_small::Compacted,
    /// Where it archived what it read (`--archive`), if anywhere.
    pub archive: Option<String>,
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
        let archived = match &self.archive {
            Some(to) => format!(
                "; {} new events archived to {to}{}",
                self.archived,
                self.compacted.clause()
            ),
            None => String::new(),
        };
        format!(
            "follow: {} events read ({} read again and skipped{skipped}), {} matches, {} alerts, {} late; {}{archived}",
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
    /// The first (or only) query's state; the other rules' in `more`.
    engine: engine::State,
    #[serde(default)]
    more: Vec<engine::State>,
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
            .map_err(|source| Error::Checkpoint { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format!("reading `{}`", path.display()))(e)),
    }
}

fn save(dir: &Path, cp: &Checkpoint) -> Result<()> {
    let path = dir.join(CHECKPOINT);
    let bytes = serde_json::to_vec(cp).map_err(Error::EncodeCheckpoint)?;
    crate::archive::quarantine::write_atomic(&path, &bytes)
        .map_err(io(format!("writing `{}`", path.display())))
}

/// The default checkpoint directory of a query on a source.
pub fn default_state_dir(query: &str, source: &str) -> PathBuf {
    let h = xxhash_rust::xxh3::xxh3_64(format!("{query}\u{1f}{source}").as_bytes());
    crate::paths::data_dir()
        .join("follow")
        .join(format!("{h:016x}"))
}

impl From {
    /// Names the source, for the checkpoint (a checkpoint is for one source).
    pub fn describe(&self) -> String {
        match self {
            From::Api(a) => format!("api:{}", a.api.org),
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

/// Whether the run goes on after an event.
#[derive(PartialEq)]
enum Flow {
    Go,
    /// The input ended, or a signal arrived (then `Report::signal` says which).
    Stop,
}

type Signal = Pin<Box<dyn Future<Output = i32> + Send>>;

/// `work`, unless a signal comes first (recorded in `report`).
async fn unless_signalled<T>(
    signal: &mut Signal,
    report: &mut Report,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        t = work => Some(t),
        sig = signal => {
            report.signal = Some(sig);
            None
        }
    }
}

/// A run between two events: the engine, where the source stands, and what was read,
/// sent and checkpointed. Each event of the source is one method; a checkpoint waits
/// for the sinks, commits to the archive, then saves the checkpoint file.
struct Run {
    engine: Pack,
    sinks: sink::Sinks,
    archive: Option<ArchiveSink>,
    state_dir: Option<PathBuf>,
    source_name: String,
    position: Position,
    seq: i64,
    recent: Recent,
    overlap_ms: i64,
    report: Report,
    /// Read or sent since the last checkpoint.
    dirty: bool,
    /// A signal arrived while records were queued on the sinks: the engine took a
    /// batch whose position was not recorded, so no checkpoint may be taken any more
    /// (the next run reads that batch again, and sends it again).
    torn: bool,
    last_checkpoint: Instant,
    signal: Signal,
}

impl Run {
    /// A batch read up to `pos`.
    async fn on_batch(&mut self, batch: RecordBatch, pos: Position) -> Result<Flow> {
        let (batch, repeated) = if matches!(pos, Position::Api { .. }) {
            self.recent.fresh(&batch)
        } else {
            (batch, 0)
        };
        self.report.repeated += repeated;
        self.report.read += batch.num_rows() as u64;
        let records = self.engine.push(&batch).map_err(Error::Evaluate)?;
        if self.send(records).await? == Flow::Stop {
            return Ok(Flow::Stop);
        }
        self.position = pos;
        self.dirty = true;
        let Some(archive) = &mut self.archive else {
            return Ok(Flow::Go);
        };
        archive.push(batch);
        if archive.rows() >= 50_000 {
            return self.checkpoint().await;
        }
        Ok(Flow::Go)
    }

    /// The source is caught up: windows up to `now` (when it knows it) close.
    async fn on_idle(&mut self, now: Option<i64>) -> Result<Flow> {
        if let Some(now) = now {
            let records = self.engine.idle(now);
            if !records.is_empty() {
                self.dirty = true;
            }
            if self.send(records).await? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        if self.dirty {
            return self.checkpoint().await;
        }
        Ok(Flow::Go)
    }

    /// A finite input ended: every window closes.
    async fn on_end(&mut self, skipped: u64) -> Result<Flow> {
        self.report.skipped = skipped;
        let records = self.engine.finish();
        if self.send(records).await? == Flow::Go {
            self.checkpoint().await?;
        }
        Ok(Flow::Stop)
    }

    /// The clock: a checkpoint every `every` while something happened.
    async fn on_tick(&mut self, every: Duration) -> Result<Flow> {
        if self.dirty && self.last_checkpoint.elapsed() >= every {
            return self.checkpoint().await;
        }
        Ok(Flow::Go)
    }

    /// Queues records on the sinks; a full queue waits, but a signal still stops us.
    async fn send(&mut self, records: Vec<engine::Record>) -> Result<Flow> {
        count(&mut self.report, &records);
        let sent =
            unless_signalled(&mut self.signal, &mut self.report, self.sinks.send(records)).await;
        match sent {
            Some(r) => r.map(|()| Flow::Go),
            None => {
                self.torn = true;
                Ok(Flow::Stop)
            }
        }
    }

    /// Deliver, archive and save: everything up to here is done. A signal during the
    /// wait for the sinks stops the run.
    async fn checkpoint(&mut self) -> Result<Flow> {
        let delivered =
            unless_signalled(&mut self.signal, &mut self.report, self.sinks.barrier()).await;
        match delivered {
            Some(r) => r?,
            None => return Ok(Flow::Stop),
        }
        self.save().await?;
        Ok(Flow::Go)
    }

    /// After a signal: deliver what was sent, and checkpoint unless torn. The caller
    /// bounds the wait.
    async fn shutdown(&mut self) -> Result<()> {
        self.sinks.barrier().await?;
        if self.torn {
            self.report.undelivered = true;
            return Ok(());
        }
        self.save().await
    }

    /// Everything sent is delivered: commit the events read, then save the checkpoint.
    async fn save(&mut self) -> Result<()> {
        self.seq += 1;
        if let Some(archive) = &mut self.archive {
            let version = match &self.position {
                Position::Api { processed } => *processed,
                _ => self.seq,
            };
            let stats = archive.commit(version).await?;
            self.report.archived += stats.added;
            self.report.compacted += stats.compacted;
        }
        if let Position::Api { processed } = &self.position {
            self.recent.prune(processed - 2 * self.overlap_ms);
        }
        if let Some(d) = &self.state_dir {
            let mut states = self.engine.state().into_iter();
            let cp = Checkpoint {
                query: self.engine.text.clone(),
                source: self.source_name.clone(),
                position: self.position.clone(),
                engine: states.next().unwrap_or_default(),
                more: states.collect(),
                recent: self
                    .recent
                    .ids
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
                seq: self.seq,
                saved: crate::event::format_time(chrono::Utc::now().timestamp_micros()),
            };
            save(d, &cp)?;
        }
        self.report.checkpoints += 1;
        self.dirty = false;
        self.last_checkpoint = Instant::now();
        Ok(())
    }
}

/// A first run learns the `first_seen` tuples of the events already archived (before
/// `until`, when given), so that the first event read is judged against history (later
/// runs have their checkpoint).
pub async fn seed(pack: &mut Pack, archive: &Archive, now: i64, until: Option<i64>) -> Result<()> {
    // The archive's first event, looked up once, and only if some rule learns.
    let mut start: Option<Option<i64>> = None;
    for (query, engine) in pack.members_mut() {
        let seeds = Engine::seeds(query, until);
        if seeds.is_empty() {
            continue;
        }
        let start = match start {
            Some(s) => s,
            None => match crate::query::open(archive).await {
                Ok((_, summary)) => *start.insert(summary.and_then(|s| s.first)),
                // Nothing archived yet: nothing to learn.
                Err(crate::query::Error::Archive(crate::archive::Error::Missing { .. })) => {
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            },
        };
        for (slot, text) in seeds.iter().enumerate() {
            let mut answer = crate::query::run(archive, text, Clock::utc(now), false).await?;
            let mut tuples = 0;
            while let Some(batch) = answer.next().await? {
                tuples += batch.num_rows();
                engine.seed(slot, &batch, start).map_err(Error::Evaluate)?;
            }
            tracing::info!(target: "auditq::follow", "first_seen: {tuples} tuples learnt from the archive (`{text}`)");
        }
    }
    Ok(())
}

/// The engine of the query, or of the rules; and the query (a pack of rules has none).
fn engine(opts: &Options) -> Result<(Pack, Option<crate::lang::Query>)> {
    let clock = Clock::utc(opts.now);
    let lateness = opts.lateness.as_micros() as i64;
    if opts.rules.is_empty() {
        let query =
            crate::lang::parse(&opts.query).map_err(|d| crate::query::rejected(&opts.query, d))?;
        let engine = Engine::new(&query, &clock, lateness)
            .map_err(|d| crate::query::rejected(&opts.query, vec![d]))?;
        Ok((Pack::single(query.clone(), engine), Some(query)))
    } else {
        let pack = Pack::rules(opts.rules.clone(), &clock, lateness)
            .map_err(|r| Error::Rules(pack::LoadError::Rule(r)))?;
        Ok((pack, None))
    }
}

/// Where a run resumes: the checkpoint's position, sequence number and recent ids.
#[derive(Default)]
struct Resumed {
    position: Position,
    seq: i64,
    recent: Recent,
    restored: bool,
}

/// The checkpoint in `state_dir`, restored into `engine`; it must be this query's on
/// this source.
fn resume(engine: &mut Pack, state_dir: Option<&Path>, source_name: &str) -> Result<Resumed> {
    let Some(cp) = state_dir.map(load).transpose()?.flatten() else {
        return Ok(Resumed::default());
    };
    if cp.query != engine.text || cp.source != source_name {
        return Err(Error::OtherCheckpoint {
            dir: state_dir.map_or_else(|| PathBuf::from("?"), Path::to_path_buf),
            query: cp.query,
            source_name: cp.source,
        });
    }
    let mut states = vec![cp.engine];
    states.extend(cp.more);
    engine.restore(states);
    Ok(Resumed {
        position: cp.position,
        seq: cp.seq,
        recent: Recent {
            ids: cp.recent.into_iter().collect(),
        },
        restored: true,
    })
}

/// How documents are parsed: those that cannot match are not parsed, and events get no
/// fingerprint (the archive's content hash), unless every event is archived. A pack of
/// rules reads every document (each rule needs its own words).
fn parsing(opts: &Options, query: Option<&crate::lang::Query>) -> crate::ingest::Parsing {
    let prefilter = query.and_then(prefilter::Prefilter::of);
    let keep: Option<crate::ingest::Keep> = match (&opts.archive, prefilter) {
        (None, Some(p)) => Some(Arc::new(move |doc: &[u8]| p.keep(doc))),
        _ => None,
    };
    crate::ingest::Parsing {
        keep,
        no_fingerprints: opts.archive.is_none(),
    }
}

/// The source of `opts.from`, from `position` (the API's first run starts at the
/// archive's sync checkpoint, else `since` ago; the position says so from then on).
async fn open_source(
    opts: &Options,
    position: &mut Position,
    archive: Option<&ArchiveSink>,
    quarantine: &Quarantine,
    parsing: crate::ingest::Parsing,
    stop: &Arc<AtomicBool>,
) -> Result<Box<dyn Source>> {
    Ok(match &opts.from {
        From::Api(poll) => {
            let from = match &position {
                Position::Api { processed } => *processed,
                _ => {
                    let archived = match archive {
                        Some(a) => a.checkpoint().await?,
                        None => None,
                    };
                    archived.unwrap_or(opts.now / 1000 - opts.since.as_millis() as i64)
                }
            };
            if let Position::Start = position {
                *position = Position::Api { processed: from };
            }
            Box::new(source::FromApi {
                poll: poll.clone(),
                processed: from,
                overlap: opts.overlap.as_millis() as i64,
                quarantine: quarantine.clone(),
            })
        }
        From::Stdin => Box::new(source::FromStdin {
            quarantine: quarantine.clone(),
            parsing,
        }),
        From::File { path, follow } => Box::new(source::FromFile {
            path: path.clone(),
            follow: *follow,
            start: position.clone(),
            quarantine: quarantine.clone(),
            parsing,
            stop: stop.clone(),
        }),
    })
}

/// Run until the input ends, a signal arrives, or something fails for good.
pub async fn follow(opts: Options) -> Result<Report> {
    let (mut engine, query) = engine(&opts)?;
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
    let mut resumed = resume(&mut engine, state_dir.as_deref(), &source_name)?;
    if !resumed.restored
        && let Some(a) = &opts.archive
    {
        seed(&mut engine, a, opts.now, None).await?;
    }
    let quarantine = match (&opts.archive, &state_dir) {
        (Some(a), _) => a.quarantine(),
        (None, Some(d)) => Quarantine::new(d.join("quarantine")),
        (None, None) => Quarantine::new(crate::paths::data_dir().join("follow").join("quarantine")),
    };
    let app = match &opts.from {
        From::Api(a) => api_app(&a.api.org),
        _ => format!("auditq-follow:{source_name}"),
    };
    let archive = match &opts.archive {
        Some(a) => Some(ArchiveSink::open(a, Some(app), format!("follow of {source_name}")).await?),
        None => None,
    };
    let parsing = parsing(&opts, query.as_ref());
    let stop = Arc::new(AtomicBool::new(false));
    let position = &mut resumed.position;
    let source = open_source(
        &opts,
        position,
        archive.as_ref(),
        &quarantine,
        parsing,
        &stop,
    )
    .await?;
    let (tx, rx) = mpsc::channel::<Msg>(4);
    let source_task = tokio::spawn(source.run(tx));
    let run = Run {
        engine,
        sinks: sink::Sinks::start(&opts.sinks, &opts.sink)?,
        archive,
        state_dir,
        source_name,
        position: resumed.position,
        seq: resumed.seq,
        recent: resumed.recent,
        overlap_ms: opts.overlap.as_millis() as i64,
        report: Report {
            archive: opts
                .archive
                .as_ref()
                .map(|a| a.root().display().to_string()),
            ..Report::default()
        },
        dirty: false,
        torn: false,
        last_checkpoint: Instant::now(),
        signal: Box::pin(crate::pipeline::signalled()),
    };
    run.drive(rx, source_task, &stop, &opts).await
}

impl Run {
    /// Take messages from the source until it ends, fails or a signal comes; then stop
    /// reading and close the sinks (within the grace period after a signal).
    async fn drive(
        mut self,
        mut rx: mpsc::Receiver<Msg>,
        mut source_task: tokio::task::JoinHandle<crate::pipeline::Result<()>>,
        stop: &AtomicBool,
        opts: &Options,
    ) -> Result<Report> {
        let every = opts.checkpoint_every;
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome: Result<()> = async {
            loop {
                let msg = tokio::select! {
                    sig = &mut self.signal => {
                        self.report.signal = Some(sig);
                        return Ok(());
                    }
                    _ = tick.tick() => None,
                    m = rx.recv() => Some(m),
                };
                let flow = match msg {
                    None => self.on_tick(every).await?,
                    Some(Some(Msg::Batch { batch, pos })) => self.on_batch(batch, pos).await?,
                    Some(Some(Msg::Idle { now })) => self.on_idle(now).await?,
                    Some(Some(Msg::End { skipped })) => self.on_end(skipped).await?,
                    Some(None) => {
                        // The source stopped: its error, or the end of its input.
                        return match (&mut source_task).await {
                            Ok(r) => Ok(r?),
                            Err(source) => Err(Error::Task {
                                what: "source".into(),
                                source,
                            }),
                        };
                    }
                };
                if flow == Flow::Stop {
                    return Ok(());
                }
            }
        }
        .await;
        stop.store(true, Ordering::Relaxed);
        rx.close();
        self.report.late = self.engine.late();
        if let Err(e) = outcome {
            source_task.abort();
            return Err(e);
        }
        if self.report.signal.is_some() {
            // Stop reading; deliver what was sent, within the grace period.
            source_task.abort();
            match tokio::time::timeout(opts.shutdown_grace, self.shutdown()).await {
                Ok(r) => r?,
                Err(_) => {
                    self.report.undelivered = true;
                    return Ok(self.report);
                }
            }
        }
        let mut report = std::mem::take(&mut self.report);
        let closed = tokio::time::timeout(opts.shutdown_grace, self.sinks.close()).await;
        if let Ok(counts) = closed {
            report.sinks = counts?
                .into_iter()
                .map(|(n, c)| (n, c.delivered, c.dead))
                .collect();
        }
        Ok(report)
    }
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
