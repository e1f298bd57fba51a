//! Where events come from, for `follow` and `detect`: one trait, [`Source`], for the
//! API's `/events-stream` ([`FromApi`]), standard input ([`FromStdin`]), a file followed
//! like `tail -F` ([`FromFile`]) and the archive's events replayed in time order
//! ([`FromArchive`]). Each sends batches with the position after them; `follow`
//! checkpoints that position once the batch is delivered.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::api::{ApiSource, Patience, Start};
use super::{Error, Result};
use crate::archive::quarantine::Quarantine;
use crate::ingest::{self, Chunk, Input, Parser};

/// A source of events: it sends batches, each with the position after it, says when it
/// is caught up ([`Msg::Idle`]) and when a finite input ended ([`Msg::End`]); it stops
/// when the receiver is gone.
#[async_trait::async_trait]
pub trait Source: Send {
    async fn run(self: Box<Self>, tx: mpsc::Sender<Msg>) -> Result<()>;
}

/// Where a source stands, saved in the checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum Position {
    #[default]
    Start,
    /// The largest `processedAt` read (epoch ms).
    Api { processed: i64 },
    /// The byte after the last whole line read, in the file with this identity.
    File { dev: u64, ino: u64, offset: u64 },
}

pub enum Msg {
    Batch {
        batch: RecordBatch,
        pos: Position,
    },
    /// The source is caught up; no event processed before `now` (µs) is still to come,
    /// when it knows that (the API does).
    Idle {
        now: Option<i64>,
    },
    /// A finite input ended; `skipped` documents were never parsed (the prefilter).
    End {
        skipped: u64,
    },
}

/// The API polled for new events: where, and how often.
#[derive(Debug, Clone)]
pub struct Poll {
    pub api: super::api::Api,
    pub every: Duration,
}

/// `/events-stream` polled for ever from `processed` (epoch ms), starting `overlap`
/// before it: page through what is there, then ask again every `poll.every` with the
/// last cursor (see [`ApiSource`]).
pub struct FromApi {
    pub poll: Poll,
    pub processed: i64,
    pub overlap: i64,
    pub quarantine: Quarantine,
}

#[async_trait::async_trait]
impl Source for FromApi {
    async fn run(self: Box<Self>, tx: mpsc::Sender<Msg>) -> Result<()> {
        let FromApi {
            poll,
            processed,
            overlap,
            quarantine,
        } = *self;
        let start = Start {
            from: (processed - overlap).max(0),
            processed,
            overlap,
        };
        let patience = Patience::Forever { poll: poll.every };
        let mut source = ApiSource::new(&poll.api, "follow", start, patience, quarantine)?;
        loop {
            let read = source.next().await?;
            if let Some(batch) = read.batch {
                let pos = Position::Api {
                    processed: source.processed(),
                };
                if tx.send(Msg::Batch { batch, pos }).await.is_err() {
                    return Ok(());
                }
            }
            if read.caught_up {
                let idle = Msg::Idle {
                    now: Some(read.asked),
                };
                if tx.send(idle).await.is_err() {
                    return Ok(());
                }
                tokio::time::sleep(poll.every).await;
            }
        }
    }
}

/// Standard input (NDJSON of events, API pages, arrays), until it closes.
pub struct FromStdin {
    pub quarantine: Quarantine,
    pub parsing: ingest::Parsing,
}

#[async_trait::async_trait]
impl Source for FromStdin {
    async fn run(self: Box<Self>, tx: mpsc::Sender<Msg>) -> Result<()> {
        let (mut rx, handle) =
            ingest::spawn_live_reader(Input::Stdin, self.quarantine, 8192, self.parsing);
        while let Some(chunk) = rx.recv().await {
            if let Chunk::Batch(batches) = chunk {
                for batch in batches {
                    let pos = Position::Start;
                    if tx.send(Msg::Batch { batch, pos }).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        let stats = tokio::task::spawn_blocking(move || handle.join())
            .await
            .map_err(|source| Error::Task {
                what: "stdin".into(),
                source,
            })?
            .map_err(|_| Error::StdinReader)??;
        let _ = tx
            .send(Msg::End {
                skipped: stats.skipped,
            })
            .await;
        Ok(())
    }
}

/// A file of NDJSON (or pages, one per line) from `start`; with `follow`, read as it
/// grows, across rotation and truncation (see [`file`]). Reading stops once `stop` is set.
pub struct FromFile {
    pub path: PathBuf,
    pub follow: bool,
    pub start: Position,
    pub quarantine: Quarantine,
    pub parsing: ingest::Parsing,
    pub stop: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl Source for FromFile {
    async fn run(self: Box<Self>, tx: mpsc::Sender<Msg>) -> Result<()> {
        let f = *self;
        let read = move || {
            file(
                f.path,
                f.follow,
                f.start,
                f.quarantine,
                f.parsing,
                f.stop,
                tx,
            )
        };
        (tokio::task::spawn_blocking(read).await).map_err(|source| Error::Task {
            what: "file reader".into(),
            source,
        })?
    }
}

/// The archive's events as a query streams them (in time order), for `detect`.
pub struct FromArchive {
    pub stream: datafusion::execution::SendableRecordBatchStream,
}

#[async_trait::async_trait]
impl Source for FromArchive {
    async fn run(mut self: Box<Self>, tx: mpsc::Sender<Msg>) -> Result<()> {
        use futures_util::StreamExt;
        while let Some(batch) = self.stream.next().await {
            let batch = batch.map_err(crate::query::Error::Execute)?;
            let pos = Position::Start;
            if tx.send(Msg::Batch { batch, pos }).await.is_err() {
                return Ok(());
            }
        }
        let _ = tx.send(Msg::End { skipped: 0 }).await;
        Ok(())
    }
}

/// Read a file of NDJSON (or pages, one per line) from `start`; with `follow`, keep
/// reading as it grows, and when it is replaced (rotation: another file at the path) or
/// truncated, go on with the new content. Without `follow`, stop at its end.
fn file(
    path: PathBuf,
    follow: bool,
    start: Position,
    quarantine: Quarantine,
    parsing: ingest::Parsing,
    stop: Arc<AtomicBool>,
    tx: mpsc::Sender<Msg>,
) -> Result<()> {
    let io = |what: &str| {
        let what = format!("{what} `{}`", path.display());
        move |source| Error::Io { what, source }
    };
    let name = path.display().to_string();
    let mut parser = Parser::with(&quarantine, &name, &parsing);
    let keep = parsing.keep.clone();
    let mut f = std::fs::File::open(&path).map_err(io("opening"))?;
    let meta = f.metadata().map_err(io("reading"))?;
    let (mut dev, mut ino) = (meta.dev(), meta.ino());
    let mut offset = match start {
        Position::File {
            dev: d,
            ino: i,
            offset,
        } if d == dev && i == ino && offset <= meta.len() => offset,
        _ => 0,
    };
    f.seek(SeekFrom::Start(offset)).map_err(io("reading"))?;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut skipped = 0u64;
    let send = |parser: &mut Parser, pos: Position| -> bool {
        let (batch, _) = parser.take();
        batch.num_rows() == 0 || tx.blocking_send(Msg::Batch { batch, pos }).is_ok()
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let n = f.read(&mut chunk).map_err(io("reading"))?;
        if n > 0 {
            buf.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            let mut lines = 0;
            while let Some(i) = memchr::memchr(b'\n', &buf[start..]) {
                let line = &buf[start..start + i];
                let at = offset + start as u64;
                start += i + 1;
                if keep.as_ref().is_some_and(|k| !k(line)) {
                    skipped += 1;
                    continue;
                }
                document(&mut parser, line, at)?;
                lines += 1;
                if lines % 8192 == 0 {
                    let pos = Position::File {
                        dev,
                        ino,
                        offset: offset + start as u64,
                    };
                    if !send(&mut parser, pos) {
                        return Ok(());
                    }
                }
            }
            offset += start as u64;
            buf.drain(..start);
            if !send(&mut parser, Position::File { dev, ino, offset }) {
                return Ok(());
            }
            continue;
        }
        // At the end of what is there.
        if !follow {
            if !buf.is_empty() {
                // A last line without a newline.
                let rest = std::mem::take(&mut buf);
                document(&mut parser, &rest, offset)?;
                offset += rest.len() as u64;
                if !send(&mut parser, Position::File { dev, ino, offset }) {
                    return Ok(());
                }
            }
            let _ = tx.blocking_send(Msg::End { skipped });
            return Ok(());
        }
        if tx.blocking_send(Msg::Idle { now: None }).is_err() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
        match std::fs::metadata(&path) {
            Ok(m) if m.dev() != dev || m.ino() != ino => {
                // Rotated: the old file was read to its end above; the new one from 0.
                if let Ok(nf) = std::fs::File::open(&path) {
                    f = nf;
                    (dev, ino, offset) = (m.dev(), m.ino(), 0);
                    buf.clear();
                }
            }
            Ok(m) if m.len() < offset => {
                // Truncated in place (copytruncate): start again at its beginning.
                f.seek(SeekFrom::Start(0)).map_err(io("reading"))?;
                offset = 0;
                buf.clear();
            }
            _ => {}
        }
    }
}

fn document(parser: &mut Parser, line: &[u8], at: u64) -> Result<()> {
    match std::str::from_utf8(line) {
        Ok(text) if text.trim().is_empty() => Ok(()),
        Ok(text) => parser.document(text.trim(), at).map_err(Error::from),
        Err(e) => parser
            .invalid(
                line,
                &crate::event::Invalid::Json(format!("not UTF-8: {e}")),
                at,
            )
            .map_err(Error::from),
    }
}
