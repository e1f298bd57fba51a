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

use datafusion::arrow::compute::concat_batches;
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
}

/// One message from the reader thread.
pub enum Chunk {
    /// Parsed events (event schema, input order).
    Batch(RecordBatch),
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
pub fn spawn_reader(
    input: Input,
    quarantine: Quarantine,
    batch_size: usize,
) -> (
    mpsc::Receiver<Chunk>,
    std::thread::JoinHandle<Result<ReadStats, Error>>,
) {
    let (tx, rx) = mpsc::channel(1);
    let handle = std::thread::Builder::new()
        .name("auditq-reader".into())
        .spawn(move || read_input(&input, &quarantine, batch_size.max(1), &tx))
        .expect("spawning a thread");
    (rx, handle)
}

/// Documents handed to a parser: their text, back to back, and where each starts.
struct Job {
    seq: u64,
    text: String,
    /// (input offset, start, end) of each document in `text`.
    docs: Vec<(u64, usize, usize)>,
}

/// A parser's output for one job.
struct Part {
    seq: u64,
    batch: RecordBatch,
    events: u64,
    invalid: u64,
}

/// Parses documents into a batch builder; quarantines what is not an archivable event.
struct Parser<'a> {
    builder: BatchBuilder,
    events: u64,
    invalid: u64,
    quarantine: &'a Quarantine,
    source: &'a str,
}

impl Parser<'_> {
    fn invalid(&mut self, raw: &[u8], why: &Invalid, offset: u64) -> Result<(), Error> {
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

    fn document(&mut self, text: &str, offset: u64) -> Result<(), Error> {
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
) -> Result<(), Error> {
    let mut parser = Parser {
        builder: BatchBuilder::new(),
        events: 0,
        invalid: 0,
        quarantine,
        source,
    };
    loop {
        let job = match jobs.lock().map(|rx| rx.recv()) {
            Ok(Ok(job)) => job,
            _ => return Ok(()),
        };
        for &(offset, start, end) in &job.docs {
            parser.document(&job.text[start..end], offset)?;
        }
        let part = Part {
            seq: job.seq,
            batch: parser.builder.finish(),
            events: std::mem::take(&mut parser.events),
            invalid: std::mem::take(&mut parser.invalid),
        };
        if parts.send(part).is_err() {
            return Ok(());
        }
    }
}

/// Put parts back in input order and send batches of exactly `batch_size` events (the
/// last one smaller).
fn collect_parts(
    parts: std_mpsc::Receiver<Part>,
    batch_size: usize,
    tx: &mpsc::Sender<Chunk>,
) -> (u64, u64) {
    let (mut events, mut invalid) = (0, 0);
    let mut waiting = std::collections::BTreeMap::new();
    let mut next = 0u64;
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut rows = 0usize;
    // Send full batches while there are enough rows; with `all`, send the rest too.
    let flush = |pending: &mut Vec<RecordBatch>, rows: &mut usize, all: bool| -> bool {
        if *rows == 0 || (*rows < batch_size && !all) {
            return true;
        }
        let mut batch = match pending.len() {
            1 => pending.pop().expect("one batch"),
            _ => concat_batches(&crate::event::schema(), pending.iter())
                .expect("parts share the event schema"),
        };
        pending.clear();
        while batch.num_rows() >= batch_size || (all && batch.num_rows() > 0) {
            let n = batch.num_rows().min(batch_size);
            if tx.blocking_send(Chunk::Batch(batch.slice(0, n))).is_err() {
                return false;
            }
            batch = batch.slice(n, batch.num_rows() - n);
        }
        *rows = batch.num_rows();
        if *rows > 0 {
            pending.push(batch);
        }
        true
    };
    for part in parts {
        waiting.insert(part.seq, part);
        while let Some(part) = waiting.remove(&next) {
            next += 1;
            events += part.events;
            invalid += part.invalid;
            if part.batch.num_rows() == 0 {
                continue;
            }
            rows += part.batch.num_rows();
            pending.push(part.batch);
            if !flush(&mut pending, &mut rows, false) {
                return (events, invalid);
            }
        }
    }
    flush(&mut pending, &mut rows, true);
    (events, invalid)
}

fn read_input(
    input: &Input,
    quarantine: &Quarantine,
    batch_size: usize,
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
                scope.spawn(move || parse_jobs(&job_rx, &part_tx, quarantine, name))
            })
            .collect();
        drop((part_tx, job_rx));
        let collector = scope.spawn(move || collect_parts(part_rx, batch_size, tx));
        let framed = frame_input(input, quarantine, &name, job_tx, tx);
        let parsed: Vec<Result<(), Error>> = parsers
            .into_iter()
            .map(|p| p.join().expect("parser thread"))
            .collect();
        let (events, invalid) = collector.join().expect("collector thread");
        let (bytes, garbage) = framed?;
        parsed.into_iter().collect::<Result<Vec<()>, Error>>()?;
        Ok(ReadStats {
            events,
            invalid: invalid + garbage,
            bytes,
        })
    })
}

/// Split the input into JSON documents and hand them to the parsers in jobs. Returns the
/// bytes read and the number of byte runs that were not JSON (quarantined here).
fn frame_input(
    input: &Input,
    quarantine: &Quarantine,
    name: &str,
    jobs: std_mpsc::SyncSender<Job>,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(u64, u64), Error> {
    let rerr = |source| Error::Read {
        input: name.to_owned(),
        source,
    };
    let mut reader = input.open().map_err(rerr)?;
    let mut garbage_parser = Parser {
        builder: BatchBuilder::new(),
        events: 0,
        invalid: 0,
        quarantine,
        source: name,
    };
    let mut job = Job {
        seq: 0,
        text: String::new(),
        docs: Vec::new(),
    };
    let mut closed = false;
    let send = |job: &mut Job| -> bool {
        if job.docs.is_empty() {
            return true;
        }
        let next = Job {
            seq: job.seq + 1,
            text: String::with_capacity(job.text.len()),
            docs: Vec::with_capacity(JOB_DOCS),
        };
        jobs.send(std::mem::replace(job, next)).is_ok()
    };
    const CHUNK: usize = 4 << 20;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
    // Absolute input offset of buf[0].
    let mut base: u64 = 0;
    let mut eof = false;
    // A run of bytes that did not parse, kept until the next good document.
    let mut garbage: Option<(u64, Vec<u8>)> = None;
    while !eof && !closed {
        let n = loop {
            match reader.by_ref().take(CHUNK as u64).read_to_end(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(rerr(e)),
            }
        };
        eof = n == 0;
        let mut consumed = 0usize;
        while consumed < buf.len() && !closed {
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
                    let start = job.text.len();
                    job.text.push_str(raw.get());
                    job.docs.push((at, start, job.text.len()));
                    if job.docs.len() >= JOB_DOCS {
                        closed = !send(&mut job);
                    }
                    consumed += stream.byte_offset();
                }
                Some(Err(e)) if e.is_eof() && !eof => break,
                Some(Err(e)) => {
                    // Skip to the end of the line and keep the skipped bytes.
                    let rest = &buf[consumed..];
                    // A long run without a newline (binary input) is cut into pieces so
                    // memory stays bounded.
                    let skip = match memchr_newline(rest) {
                        Some(i) => (i + 1).min(MAX_GARBAGE),
                        None if eof || rest.len() >= MAX_GARBAGE => rest.len().min(MAX_GARBAGE),
                        None => break,
                    };
                    let at = base + consumed as u64;
                    let g = garbage.get_or_insert_with(|| (at, Vec::new()));
                    g.1.extend_from_slice(&rest[..skip]);
                    consumed += skip;
                    if g.1.len() >= MAX_GARBAGE {
                        let (goff, bytes) = garbage.take().expect("just inserted");
                        garbage_parser.invalid(&bytes, &Invalid::Json(e.to_string()), goff)?;
                    }
                    if eof && consumed >= buf.len() {
                        let (goff, bytes) = garbage.take().expect("just inserted");
                        garbage_parser.invalid(&bytes, &Invalid::Json(e.to_string()), goff)?;
                    }
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

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
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
            if let Chunk::Batch(b) = chunk {
                assert!(b.num_rows() <= batch);
                ids.extend(
                    b.column(0)
                        .as_string::<i32>()
                        .iter()
                        .map(|s| s.unwrap().to_owned()),
                );
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
        // "\n"+1 MiB, 1 MiB, 1 MiB (the same bytes: stored once), the tail.
        assert_eq!(q.count(Kind::Invalid), 3);
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
