//! Reading events from files and stdin: API pages, single-event envelopes, JSON arrays
//! and NDJSON, detected per JSON document, streamed in bounded batches.
//!
//! A reader thread splits the input into JSON documents, parses events and builds Arrow
//! batches; the caller's task archives them. The channel between them holds two messages,
//! so memory stays flat however large the input. Bytes that are not JSON, and events
//! without an id or with an unparsable time, go to the quarantine byte for byte.

use std::io::Read;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;

use tokio::sync::mpsc;

use datafusion::arrow::array::RecordBatch;
use serde_json::value::RawValue;

use crate::archive::quarantine::{Kind, Quarantine};
use crate::event::{BatchBuilder, Document, Invalid};

/// An input of `import`.
#[derive(Debug, Clone)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    pub fn parse(arg: &str) -> Self {
        if arg == "-" {
            Input::Stdin
        } else {
            Input::File(PathBuf::from(arg))
        }
    }

    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "stdin".to_owned(),
            Input::File(p) => p.display().to_string(),
        }
    }

    /// Size in bytes, when known (for progress).
    pub fn size(&self) -> Option<u64> {
        match self {
            Input::Stdin => None,
            Input::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
        }
    }

    fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Input::Stdin => Box::new(std::io::stdin()),
            Input::File(p) => Box::new(std::fs::File::open(p)?),
        })
    }
}

/// Errors of reading input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading `{input}`: {source}")]
    Read {
        input: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing quarantine `{}`: {source}", .path.display())]
    Quarantine {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A bug: the reader thread panicked (its message went to stderr).
    #[error("the input reader thread panicked")]
    ReaderPanicked,
}

/// One message from the reader thread.
pub enum Chunk {
    /// Parsed events (event schema, input order): slices of the parsers' batches, about
    /// `batch_size` rows in all (never more), not copied into one batch.
    Batch(Vec<RecordBatch>),
    /// Progress: input bytes framed so far, and byte runs quarantined as not JSON.
    Progress { bytes: u64, invalid: u64 },
}

/// Counts of what the reader saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadStats {
    /// Events parsed (archivable).
    pub events: u64,
    /// Documents or byte runs that went to the quarantine.
    pub invalid: u64,
    pub bytes: u64,
    /// Documents a prefilter skipped unparsed.
    pub skipped: u64,
}

/// Documents per parse job: small enough to spread over the parser threads, large
/// enough that the hand-offs cost nothing.
const JOB_DOCS: usize = 1024;

/// Bytes that are not JSON are quarantined in pieces of at most this size.
const MAX_GARBAGE: usize = 1 << 20;

/// Parser threads. The machine this runs on has two cores; the framer and the archive
/// writer share them with these.
const PARSERS: usize = 2;

/// Start reading one input. Batches arrive in input order on the returned channel; the
/// join handle gives the final counts (or the error that stopped the reader).
///
/// Threads: a framer splits the input into JSON documents (and quarantines bytes that are
/// not JSON); two parser threads turn jobs of documents into Arrow batches; a collector
/// puts the parts back in input order and sends batches of `batch_size` events.
pub fn spawn_reader(input: Input, quarantine: Quarantine, batch_size: usize) -> Reader {
    spawn(input, quarantine, batch_size, false, Parsing::default())
}

/// A test on a document's raw bytes: false skips it unparsed (a prefilter that knows the
/// document cannot hold a wanted event).
pub type Keep = std::sync::Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// How the parsers treat documents.
#[derive(Clone, Default)]
pub struct Parsing {
    /// Documents this refuses are not parsed.
    pub keep: Option<Keep>,
    /// No `raw_hash` (events that will not be archived).
    pub no_fingerprints: bool,
}

/// [`spawn_reader`] for a live input (`follow --stdin`): whatever one read returns is
/// framed at once, and events that arrived are sent when the input pauses (25 ms)
/// instead of waiting for a whole batch.
pub fn spawn_live_reader(
    input: Input,
    quarantine: Quarantine,
    batch_size: usize,
    parsing: Parsing,
) -> Reader {
    spawn(input, quarantine, batch_size, true, parsing)
}

/// The batches of a reader, and its thread (which gives the final counts).
pub type Reader = (
    mpsc::Receiver<Chunk>,
    std::thread::JoinHandle<Result<ReadStats, Error>>,
);

fn spawn(
    input: Input,
    quarantine: Quarantine,
    batch_size: usize,
    live: bool,
    parsing: Parsing,
) -> Reader {
    let (tx, rx) = mpsc::channel(1);
    let handle = std::thread::Builder::new()
        .name("auditq-reader".into())
        .spawn(move || read_input(&input, &quarantine, batch_size.max(1), live, &parsing, &tx))
        .expect("spawning a thread");
    (rx, handle)
}

/// Documents handed to a parser: their bytes, and where each one is. In NDJSON mode the
/// text is a block of whole input lines, handed over without a copy.
struct Job {
    seq: u64,
    text: Vec<u8>,
    /// (input offset, start, end) of each document in `text`.
    docs: Vec<(u64, usize, usize)>,
}

/// A parser's output for one job.
struct Part {
    seq: u64,
    batch: RecordBatch,
    events: u64,
    invalid: u64,
    skipped: u64,
}

/// Parses documents into a batch builder; quarantines what is not an archivable event.
pub(crate) struct Parser<'a> {
    builder: BatchBuilder,
    events: u64,
    invalid: u64,
    quarantine: &'a Quarantine,
    source: &'a str,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(quarantine: &'a Quarantine, source: &'a str) -> Self {
        Parser {
            builder: BatchBuilder::new(),
            events: 0,
            invalid: 0,
            quarantine,
            source,
        }
    }

    /// A parser as `parsing` says (without fingerprints, when asked).
    pub(crate) fn with(quarantine: &'a Quarantine, source: &'a str, parsing: &Parsing) -> Self {
        let mut parser = Parser::new(quarantine, source);
        if parsing.no_fingerprints {
            parser.builder = BatchBuilder::new().without_fingerprints();
        }
        parser
    }

    /// Events parsed since the last call, as a batch; and the count quarantined.
    pub(crate) fn take(&mut self) -> (RecordBatch, u64) {
        self.events = 0;
        (self.builder.finish(), std::mem::take(&mut self.invalid))
    }

    pub(crate) fn invalid(&mut self, raw: &[u8], why: &Invalid, offset: u64) -> Result<(), Error> {
        self.invalid += 1;
        let id = match why {
            Invalid::NoTime { id } | Invalid::BadTime { id, .. } => Some(id.as_str()),
            _ => None,
        };
        let source = format!("{} at byte {offset}", self.source);
        self.quarantine
            .put(Kind::Invalid, raw, &why.to_string(), &source, id)
            .map_err(|source| Error::Quarantine {
                path: self.quarantine.dir().to_owned(),
                source,
            })?;
        Ok(())
    }

    fn event(&mut self, raw: &str, offset: u64) -> Result<(), Error> {
        match self.builder.push_event(raw) {
            Ok(()) => {
                self.events += 1;
                Ok(())
            }
            Err(why) => self.invalid(raw.as_bytes(), &why, offset),
        }
    }

    pub(crate) fn document(&mut self, text: &str, offset: u64) -> Result<(), Error> {
        match self.builder.push_document(text) {
            Document::Event => self.events += 1,
            Document::Invalid(why) => self.invalid(text.as_bytes(), &why, offset)?,
            Document::Array(items) => {
                for item in items {
                    self.event(item.get(), offset)?;
                }
            }
            Document::Envelope(data) => {
                if data.get().starts_with('[') {
                    match serde_json::from_str::<Vec<&RawValue>>(data.get()) {
                        Ok(items) => {
                            for item in items {
                                self.event(item.get(), offset)?;
                            }
                        }
                        Err(e) => {
                            self.invalid(text.as_bytes(), &Invalid::Json(e.to_string()), offset)?
                        }
                    }
                } else if data.get() != "null" {
                    self.event(data.get(), offset)?;
                }
            }
        }
        Ok(())
    }
}

fn parse_jobs(
    jobs: &std::sync::Mutex<std_mpsc::Receiver<Job>>,
    parts: &std_mpsc::SyncSender<Part>,
    quarantine: &Quarantine,
    source: &str,
    parsing: &Parsing,
) -> Result<(), Error> {
    let mut parser = Parser::with(quarantine, source, parsing);
    let keep = parsing.keep.as_ref();
    let mut skipped = 0;
    loop {
        let job = match jobs.lock().map(|rx| rx.recv()) {
            Ok(Ok(job)) => job,
            _ => return Ok(()),
        };
        for &(offset, start, end) in &job.docs {
            let bytes = &job.text[start..end];
            if keep.is_some_and(|k| !k(bytes)) {
                skipped += 1;
                continue;
            }
            match std::str::from_utf8(bytes) {
                Ok(text) => parser.document(text, offset)?,
                Err(e) => {
                    parser.invalid(bytes, &Invalid::Json(format!("not UTF-8: {e}")), offset)?
                }
            }
        }
        let part = Part {
            seq: job.seq,
            batch: parser.builder.finish(),
            events: std::mem::take(&mut parser.events),
            invalid: std::mem::take(&mut parser.invalid),
            skipped: std::mem::take(&mut skipped),
        };
        if parts.send(part).is_err() {
            return Ok(());
        }
    }
}

/// Put parts back in input order and send them in chunks of exactly `batch_size` rows
/// (the last one smaller), as zero-copy slices.
fn collect_parts(
    parts: std_mpsc::Receiver<Part>,
    batch_size: usize,
    live: bool,
    tx: &mpsc::Sender<Chunk>,
) -> (u64, u64, u64) {
    let (mut events, mut invalid, mut skipped) = (0, 0, 0);
    let mut waiting = std::collections::BTreeMap::new();
    let mut next = 0u64;
    let mut pending = std::collections::VecDeque::<RecordBatch>::new();
    let mut rows = 0usize;
    // Send `n` rows from the front of `pending`.
    let send = |pending: &mut std::collections::VecDeque<RecordBatch>, n: usize| -> bool {
        let mut out = Vec::new();
        let mut left = n;
        while left > 0 {
            let b = pending.pop_front().expect("enough rows are pending");
            if b.num_rows() > left {
                pending.push_front(b.slice(left, b.num_rows() - left));
                out.push(b.slice(0, left));
                left = 0;
            } else {
                left -= b.num_rows();
                out.push(b);
            }
        }
        tx.blocking_send(Chunk::Batch(out)).is_ok()
    };
    loop {
        let part = if live {
            match parts.recv_timeout(std::time::Duration::from_millis(25)) {
                Ok(p) => p,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    // The input paused: what arrived goes out now.
                    if rows > 0 {
                        if !send(&mut pending, rows) {
                            return (events, invalid, skipped);
                        }
                        rows = 0;
                    }
                    continue;
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match parts.recv() {
                Ok(p) => p,
                Err(_) => break,
            }
        };
        waiting.insert(part.seq, part);
        while let Some(part) = waiting.remove(&next) {
            next += 1;
            events += part.events;
            invalid += part.invalid;
            skipped += part.skipped;
            if part.batch.num_rows() == 0 {
                continue;
            }
            rows += part.batch.num_rows();
            pending.push_back(part.batch);
            while rows >= batch_size {
                if !send(&mut pending, batch_size) {
                    return (events, invalid, skipped);
                }
                rows -= batch_size;
            }
        }
    }
    if rows > 0 {
        send(&mut pending, rows);
    }
    (events, invalid, skipped)
}

fn read_input(
    input: &Input,
    quarantine: &Quarantine,
    batch_size: usize,
    live: bool,
    parsing: &Parsing,
    tx: &mpsc::Sender<Chunk>,
) -> Result<ReadStats, Error> {
    let name = input.name();
    let (job_tx, job_rx) = std_mpsc::sync_channel::<Job>(PARSERS * 2);
    let (part_tx, part_rx) = std_mpsc::sync_channel::<Part>(PARSERS * 2);
    // Shared by the parsers only: when they all stop, the framer's sends fail and it stops.
    let job_rx = std::sync::Arc::new(std::sync::Mutex::new(job_rx));
    std::thread::scope(|scope| {
        let parsers: Vec<_> = (0..PARSERS)
            .map(|_| {
                let (part_tx, job_rx, name) = (part_tx.clone(), job_rx.clone(), name.as_str());
                scope.spawn(move || parse_jobs(&job_rx, &part_tx, quarantine, name, parsing))
            })
            .collect();
        drop((part_tx, job_rx));
        let collector = scope.spawn(move || collect_parts(part_rx, batch_size, live, tx));
        let framed = frame_input(input, quarantine, &name, live, job_tx, tx);
        let parsed: Vec<Result<(), Error>> = parsers
            .into_iter()
            .map(|p| p.join().expect("parser thread"))
            .collect();
        let (events, invalid, skipped) = collector.join().expect("collector thread");
        let (bytes, garbage) = framed?;
        parsed.into_iter().collect::<Result<Vec<()>, Error>>()?;
        Ok(ReadStats {
            events,
            invalid: invalid + garbage,
            bytes,
            skipped,
        })
    })
}

/// Split the input into JSON documents and hand them to the parsers in jobs. Returns the
/// bytes read and the number of byte runs that were not JSON (quarantined here).
/// Read the next bytes of `reader` onto `buf`: live, what a pipe holds now (one read);
/// else up to a chunk. 0 at the end of the input.
fn read_more(reader: &mut impl Read, buf: &mut Vec<u8>, live: bool) -> std::io::Result<usize> {
    loop {
        let got = if live {
            let start = buf.len();
            buf.resize(start + CHUNK, 0);
            let r = reader.read(&mut buf[start..]);
            buf.truncate(start + *r.as_ref().unwrap_or(&0));
            r
        } else {
            reader.by_ref().take(CHUNK as u64).read_to_end(buf)
        };
        match got {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            got => return got,
        }
    }
}

/// Input at `at` that does not parse (`rest`, what is unread): skipped to the end of
/// its line and kept with the run of garbage before it. Each bad line is its own
/// quarantine item (and counts as one read), not a run of lines merged into one; a long
/// run without a newline (binary input) is cut into pieces, so memory stays bounded.
/// How many bytes were skipped; `None`: wait for more input.
fn skip_garbage(
    rest: &[u8],
    eof: bool,
    at: u64,
    garbage: &mut Option<(u64, Vec<u8>)>,
    parser: &mut Parser,
    e: &serde_json::Error,
) -> Result<Option<usize>, Error> {
    let (skip, line_end) = match memchr::memchr(b'\n', rest) {
        Some(i) if i < MAX_GARBAGE => (i + 1, true),
        Some(_) => (MAX_GARBAGE, false),
        None if eof || rest.len() >= MAX_GARBAGE => (rest.len().min(MAX_GARBAGE), false),
        None => return Ok(None),
    };
    let why = Invalid::Json(e.to_string());
    let g = garbage.get_or_insert_with(|| (at, Vec::new()));
    g.1.extend_from_slice(&rest[..skip]);
    if line_end {
        let (goff, bytes) = garbage.take().expect("just inserted");
        if !bytes.trim_ascii().is_empty() {
            parser.invalid(&bytes, &why, goff)?;
        }
    } else if g.1.len() >= MAX_GARBAGE {
        let (goff, bytes) = garbage.take().expect("just inserted");
        parser.invalid(&bytes, &why, goff)?;
    }
    if eof
        && skip >= rest.len()
        && let Some((goff, bytes)) = garbage.take()
    {
        parser.invalid(&bytes, &why, goff)?;
    }
    Ok(Some(skip))
}

fn frame_input(
    input: &Input,
    quarantine: &Quarantine,
    name: &str,
    live: bool,
    jobs: std_mpsc::SyncSender<Job>,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(u64, u64), Error> {
    let rerr = |source| Error::Read {
        input: name.to_owned(),
        source,
    };
    let mut reader = input.open().map_err(rerr)?;
    let mut garbage_parser = Parser::new(quarantine, name);
    let mut job = Job {
        seq: 0,
        text: Vec::new(),
        docs: Vec::new(),
    };
    let mut closed = false;
    let send = |job: &mut Job| -> bool {
        if job.docs.is_empty() {
            return true;
        }
        let next = Job {
            seq: job.seq + 1,
            text: Vec::new(),
            docs: Vec::with_capacity(JOB_DOCS),
        };
        jobs.send(std::mem::replace(job, next)).is_ok()
    };
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
    // Absolute input offset of buf[0].
    let mut base: u64 = 0;
    let mut eof = false;
    // A run of bytes that did not parse, kept until the next good document.
    let mut garbage: Option<(u64, Vec<u8>)> = None;
    // Decided on the first document: NDJSON of bare events is cut at newlines.
    let mut mode = Mode::Undecided;
    while !eof && !closed {
        eof = read_more(&mut reader, &mut buf, live).map_err(rerr)? == 0;
        let mut consumed = 0usize;
        while consumed < buf.len() && !closed {
            if mode == Mode::Lines {
                let end = match memchr::memrchr(b'\n', &buf[consumed..]) {
                    _ if eof => buf.len(),
                    Some(i) => consumed + i + 1,
                    None if buf.len() - consumed > MAX_LINE => {
                        // Not NDJSON after all: scan the rest document by document.
                        mode = Mode::Documents;
                        continue;
                    }
                    None => break,
                };
                // What the scanner framed so far goes first, then this block of lines.
                closed = !send(&mut job);
                let mut rest = Vec::with_capacity(CHUNK + buf.len() - end);
                rest.extend_from_slice(&buf[end..]);
                let mut text = std::mem::replace(&mut buf, rest);
                text.truncate(end);
                job.docs
                    .extend(lines(&text, consumed).map(|(s, e)| (base + s as u64, s, e)));
                job.text = text;
                closed = closed || !send(&mut job);
                base += end as u64;
                consumed = 0;
                continue;
            }
            let slice = &buf[consumed..];
            let mut stream = serde_json::Deserializer::from_slice(slice).into_iter::<&RawValue>();
            match stream.next() {
                None => {
                    consumed = buf.len();
                }
                Some(Ok(raw)) => {
                    let at = base + consumed as u64;
                    if let Some((goff, bytes)) = garbage.take() {
                        garbage_parser.invalid(&bytes, &Invalid::Json("not JSON".into()), goff)?;
                    }
                    if job.text.is_empty() {
                        job.text.reserve(CHUNK);
                    }
                    let start = job.text.len();
                    job.text.extend_from_slice(raw.get().as_bytes());
                    job.docs.push((at, start, job.text.len()));
                    if mode == Mode::Undecided {
                        mode = Mode::decide(raw.get(), &slice[stream.byte_offset()..]);
                    }
                    if job.docs.len() >= JOB_DOCS {
                        closed = !send(&mut job);
                    }
                    consumed += stream.byte_offset();
                }
                Some(Err(e)) if e.is_eof() && !eof => break,
                Some(Err(e)) => {
                    let (rest, at) = (&buf[consumed..], base + consumed as u64);
                    let skipped =
                        skip_garbage(rest, eof, at, &mut garbage, &mut garbage_parser, &e)?;
                    let Some(skipped) = skipped else { break };
                    consumed += skipped;
                }
            }
        }
        buf.drain(..consumed);
        base += consumed as u64;
        let _ = tx.blocking_send(Chunk::Progress {
            bytes: base,
            invalid: garbage_parser.invalid,
        });
    }
    if let Some((goff, bytes)) = garbage.take() {
        let text = String::from_utf8_lossy(&bytes);
        if !text.trim().is_empty() {
            garbage_parser.invalid(&bytes, &Invalid::Json("not JSON".into()), goff)?;
        }
    }
    send(&mut job);
    Ok((base, garbage_parser.invalid))
}

/// Bytes read from the input at a time; also the size of an NDJSON job.
const CHUNK: usize = 1 << 20;

/// In NDJSON mode, a line longer than this sends the rest of the input to the scanner
/// (which keeps such runs in bounded pieces). No single event comes near it.
const MAX_LINE: usize = MAX_GARBAGE;

/// How the framer finds documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Before the first document.
    Undecided,
    /// A JSON scanner finds each document, whatever the layout (pages, pretty-printed
    /// JSON, several documents on a line).
    Documents,
    /// NDJSON of bare events: each line is one document, cut at newlines without being
    /// scanned here (the parsers check each line; a line that is not a whole JSON value
    /// goes to the quarantine).
    Lines,
}

impl Mode {
    /// NDJSON when the first document is a bare event (not a page, envelope or array)
    /// on a line of its own.
    fn decide(first: &str, after: &[u8]) -> Mode {
        #[derive(serde::Deserialize)]
        struct Probe {
            id: Option<serde::de::IgnoredAny>,
            data: Option<serde::de::IgnoredAny>,
        }
        let bare_event = matches!(
            serde_json::from_str::<Probe>(first),
            Ok(Probe {
                id: Some(_),
                data: None
            })
        );
        let own_line = !first.contains('\n')
            && after
                .iter()
                .find(|b| !matches!(b, b' ' | b'\t' | b'\r'))
                .is_some_and(|&b| b == b'\n');
        if bare_event && own_line {
            Mode::Lines
        } else {
            Mode::Documents
        }
    }
}

/// (start, end) of each non-blank line of `text[from..]`, without the line break.
fn lines(text: &[u8], from: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut start = from;
    std::iter::from_fn(move || {
        while start < text.len() {
            let end = memchr::memchr(b'\n', &text[start..]).map_or(text.len(), |i| start + i);
            let line = (start, end);
            start = end + 1;
            if !text[line.0..line.1].trim_ascii().is_empty() {
                return Some(line);
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;

    fn read_all(
        text: &str,
        batch: usize,
    ) -> (Vec<String>, ReadStats, Quarantine, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.json");
        std::fs::write(&path, text).unwrap();
        let q = Quarantine::new(dir.path().join("q"));
        let (mut rx, handle) = spawn_reader(Input::File(path), q.clone(), batch);
        let mut ids = Vec::new();
        while let Some(chunk) = rx.blocking_recv() {
            if let Chunk::Batch(parts) = chunk {
                let rows: usize = parts.iter().map(RecordBatch::num_rows).sum();
                assert!(rows > 0 && rows <= batch);
                for b in parts {
                    ids.extend(
                        b.column(0)
                            .as_string::<i32>()
                            .iter()
                            .map(|s| s.unwrap().to_owned()),
                    );
                }
            }
        }
        let stats = handle.join().unwrap().unwrap();
        (ids, stats, q, dir)
    }

    const E1: &str = r#"{"id":"a","attributes":{"time":"2026-01-01T00:00:00Z"}}"#;
    const E2: &str = r#"{"id":"b","attributes":{"time":"2026-01-01T00:00:01.5Z"}}"#;

    #[test]
    fn detects_pages_envelopes_arrays_and_ndjson() {
        let page =
            format!("{{\"data\":[{E1},\n  {E2}],\"meta\":{{\"next\":null}},\"links\":{{}}}}");
        let single = format!("{{\"data\":{E1}}}");
        let array = format!("[{E2}, {E1}]");
        let ndjson = format!("{E1}\n{E2}\n");
        for (text, want) in [
            (page, vec!["a", "b"]),
            (single, vec!["a"]),
            (array, vec!["b", "a"]),
            (ndjson, vec!["a", "b"]),
        ] {
            let (ids, stats, _, _d) = read_all(&text, 1000);
            assert_eq!(ids, want, "{text}");
            assert_eq!(stats.invalid, 0);
        }
        // Several pages, pretty-printed, one after another.
        let pages = format!("{{\"data\": [ {E1} ]}}\n\n{{\n \"data\": [\n  {E2}\n ]\n}}\n");
        assert_eq!(read_all(&pages, 1000).0, vec!["a", "b"]);
    }

    #[test]
    fn ndjson_is_cut_at_newlines_and_other_layouts_are_scanned() {
        // NDJSON of bare events: each line is a document; a value spread over several
        // lines is not NDJSON, and its lines are kept in the quarantine.
        let pretty_e2 = E2.replace(",", ",\n");
        let text = format!("{E1}\r\n\n{pretty_e2}\n{E1}\n");
        let (ids, stats, q, _d) = read_all(&text, 10);
        assert_eq!(ids, vec!["a", "a"]);
        assert_eq!(stats.invalid, pretty_e2.lines().count() as u64);
        assert!(q.count(Kind::Invalid) >= 1);
        // The same event first, pretty-printed: the scanner reads every document.
        let text = format!("{pretty_e2}\n{E1}\n{pretty_e2}\n");
        let (ids, stats, _, _d) = read_all(&text, 10);
        assert_eq!(ids, vec!["b", "a", "b"]);
        assert_eq!(stats.invalid, 0);
        // Two documents on the first line: not NDJSON either.
        let text = format!("{E1} {E2}\n{E1}\n");
        assert_eq!(read_all(&text, 10).0, vec!["a", "b", "a"]);
    }

    #[test]
    fn bad_lines_are_quarantined_and_reading_goes_on() {
        let text = format!("{E1}\n{{\"id\": \"x\", broken\n{{\"attributes\":{{}}}}\n{E2}\n");
        let (ids, stats, q, _d) = read_all(&text, 1);
        assert_eq!(ids, vec!["a", "b"]);
        assert_eq!(stats.events, 2);
        assert_eq!(stats.invalid, 2);
        assert_eq!(q.count(Kind::Invalid), 2);
    }

    #[test]
    fn a_truncated_last_line_is_quarantined() {
        let text = format!("{E1}\n{}", &E2[..20]);
        let (ids, stats, q, _d) = read_all(&text, 10);
        assert_eq!(ids, vec!["a"]);
        assert_eq!(stats.invalid, 1);
        assert_eq!(q.count(Kind::Invalid), 1);
    }

    #[test]
    fn binary_garbage_is_kept_in_bounded_pieces() {
        let mut text = String::from(E1);
        text.push('\n');
        text.extend(std::iter::repeat_n('x', 3 * MAX_GARBAGE + 5));
        text.push('\n');
        text.push_str(E2);
        let (ids, stats, q, _d) = read_all(&text, 10);
        assert_eq!(ids, vec!["a", "b"]);
        assert_eq!(stats.invalid, 4);
        // 1 MiB three times (the same bytes: stored once), then the tail.
        assert_eq!(q.count(Kind::Invalid), 2);
        for e in std::fs::read_dir(q.dir().join("invalid")).unwrap() {
            let len = e.unwrap().metadata().unwrap().len() as usize;
            assert!(len <= MAX_GARBAGE + 1, "{len}");
        }
    }

    #[test]
    fn batches_are_bounded() {
        let text: String = (0..2500)
            .map(|i| {
                format!(
                    "{{\"id\":\"e{i}\",\"attributes\":{{\"time\":\"2026-01-01T00:00:00Z\"}}}}\n"
                )
            })
            .collect();
        let (ids, stats, _, _d) = read_all(&text, 1000);
        assert_eq!(stats.events, 2500);
        // Parsed by several threads, delivered in input order.
        let want: Vec<String> = (0..2500).map(|i| format!("e{i}")).collect();
        assert_eq!(ids, want);
    }
}
