//! Reading events from files and stdin: API pages, single-event envelopes, JSON arrays
//! and NDJSON, detected per JSON document, streamed in bounded batches.
//!
//! A reader thread splits the input into JSON documents, parses events and builds Arrow
//! batches; the caller's task archives them. The channel between them holds two messages,
//! so memory stays flat however large the input. Bytes that are not JSON, and events
//! without an id or with an unparsable time, go to the quarantine byte for byte.

use std::io::Read;
use std::path::PathBuf;
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
    /// Progress: input bytes consumed so far, and documents that were quarantined.
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

/// Start a reader thread for one input. Batches arrive on the returned channel; the join
/// handle gives the final counts (or the error that stopped the reader).
pub fn spawn_reader(
    input: Input,
    quarantine: Quarantine,
    batch_size: usize,
) -> (
    mpsc::Receiver<Chunk>,
    std::thread::JoinHandle<Result<ReadStats, Error>>,
) {
    let (tx, rx) = mpsc::channel(2);
    let handle = std::thread::Builder::new()
        .name("auditq-reader".into())
        .spawn(move || read_input(&input, &quarantine, batch_size.max(1), &tx))
        .expect("spawning a thread");
    (rx, handle)
}

struct Sink<'a> {
    builder: BatchBuilder,
    stats: ReadStats,
    batch_size: usize,
    tx: &'a mpsc::Sender<Chunk>,
    quarantine: &'a Quarantine,
    source: String,
    closed: bool,
}

impl Sink<'_> {
    fn invalid(&mut self, raw: &[u8], why: &Invalid, offset: u64) -> Result<(), Error> {
        self.stats.invalid += 1;
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

    fn event(&mut self, raw: &RawValue, offset: u64) -> Result<(), Error> {
        match self.builder.push_event(raw.get()) {
            Ok(()) => {
                self.stats.events += 1;
                self.maybe_flush();
                Ok(())
            }
            Err(why) => self.invalid(raw.get().as_bytes(), &why, offset),
        }
    }

    fn document(&mut self, raw: &RawValue, offset: u64) -> Result<(), Error> {
        match self.builder.push_document(raw) {
            Document::Event => {
                self.stats.events += 1;
                self.maybe_flush();
            }
            Document::Invalid(why) => self.invalid(raw.get().as_bytes(), &why, offset)?,
            Document::Array(items) => {
                for item in items {
                    self.event(item, offset)?;
                }
            }
            Document::Envelope(data) => {
                if data.get().starts_with('[') {
                    match serde_json::from_str::<Vec<&RawValue>>(data.get()) {
                        Ok(items) => {
                            for item in items {
                                self.event(item, offset)?;
                            }
                        }
                        Err(e) => self.invalid(
                            raw.get().as_bytes(),
                            &Invalid::Json(e.to_string()),
                            offset,
                        )?,
                    }
                } else if data.get() != "null" {
                    self.event(data, offset)?;
                }
            }
        }
        Ok(())
    }

    fn maybe_flush(&mut self) {
        if self.builder.len() >= self.batch_size {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.builder.is_empty() {
            let batch = self.builder.finish();
            // A closed channel means the consumer stopped (an error there); stop quietly.
            self.closed |= self.tx.blocking_send(Chunk::Batch(batch)).is_err();
        }
    }
}

fn read_input(
    input: &Input,
    quarantine: &Quarantine,
    batch_size: usize,
    tx: &mpsc::Sender<Chunk>,
) -> Result<ReadStats, Error> {
    let name = input.name();
    let rerr = |source| Error::Read {
        input: name.clone(),
        source,
    };
    let mut reader = input.open().map_err(rerr)?;
    let mut sink = Sink {
        builder: BatchBuilder::new(),
        stats: ReadStats::default(),
        batch_size,
        tx,
        quarantine,
        source: name.clone(),
        closed: false,
    };
    const CHUNK: usize = 4 << 20;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 2);
    // Absolute input offset of buf[0].
    let mut base: u64 = 0;
    let mut eof = false;
    // A run of bytes that did not parse, kept until the next good document.
    let mut garbage: Option<(u64, Vec<u8>)> = None;
    while !eof && !sink.closed {
        let n = loop {
            match reader.by_ref().take(CHUNK as u64).read_to_end(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(rerr(e)),
            }
        };
        eof = n == 0;
        let mut consumed = 0usize;
        while consumed < buf.len() && !sink.closed {
            let slice = &buf[consumed..];
            let mut stream = serde_json::Deserializer::from_slice(slice).into_iter::<&RawValue>();
            match stream.next() {
                None => {
                    consumed = buf.len();
                }
                Some(Ok(raw)) => {
                    let at = base + consumed as u64;
                    if let Some((goff, bytes)) = garbage.take() {
                        sink.invalid(&bytes, &Invalid::Json("not JSON".into()), goff)?;
                    }
                    sink.document(raw, at)?;
                    consumed += stream.byte_offset();
                }
                Some(Err(e)) if e.is_eof() && !eof => break,
                Some(Err(e)) => {
                    // Skip to the end of the line and keep the skipped bytes.
                    let rest = &buf[consumed..];
                    let skip = match memchr_newline(rest) {
                        Some(i) => i + 1,
                        None if eof => rest.len(),
                        None => break,
                    };
                    let at = base + consumed as u64;
                    let g = garbage.get_or_insert_with(|| (at, Vec::new()));
                    g.1.extend_from_slice(&rest[..skip]);
                    consumed += skip;
                    if eof && consumed >= buf.len() {
                        let (goff, bytes) = garbage.take().expect("just inserted");
                        sink.invalid(&bytes, &Invalid::Json(e.to_string()), goff)?;
                    }
                }
            }
        }
        buf.drain(..consumed);
        base += consumed as u64;
        sink.stats.bytes = base;
        let _ = tx.blocking_send(Chunk::Progress {
            bytes: base,
            invalid: sink.stats.invalid,
        });
    }
    if let Some((goff, bytes)) = garbage.take() {
        let text = String::from_utf8_lossy(&bytes);
        if !text.trim().is_empty() {
            sink.invalid(&bytes, &Invalid::Json("not JSON".into()), goff)?;
        }
    }
    sink.flush();
    Ok(sink.stats)
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
    fn batches_are_bounded() {
        let text: String = (0..2500)
            .map(|i| {
                format!(
                    "{{\"id\":\"e{i}\",\"attributes\":{{\"time\":\"2026-01-01T00:00:00Z\"}}}}\n"
                )
            })
            .collect();
        let (ids, stats, _, _d) = read_all(&text, 1000);
        assert_eq!(ids.len(), 2500);
        assert_eq!(stats.events, 2500);
    }
}
