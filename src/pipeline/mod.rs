//! Ingestion has one shape: sources feed sinks.
//!
//! - Sources: [`api::ApiSource`] (the Admin API's `/events-stream`: cursor, overlap,
//!   page → batch, quarantine of unreadable pages and invalid events), and the file
//!   and standard-input readers of [`crate::ingest`] (formats detected as `import`
//!   does). `follow` and `detect` read through one trait, [`source::Source`]: the API
//!   polled, standard input, a file followed like `tail -F`, the archive replayed.
//! - Sinks: [`archive::ArchiveSink`] (the archive: batches gathered, then committed
//!   with the source's checkpoint in one Delta commit, ids already archived dropped),
//!   and `follow`'s engine and outputs.
//!
//! `sync` = ApiSource → ArchiveSink; `import` = files → the archive's writer;
//! `follow` = any source → engine → sinks, and ArchiveSink with `--archive`.

pub mod api;
pub mod archive;
pub mod source;

use std::path::PathBuf;

/// What stops ingestion (`sync`, `import`, `follow`'s reading and archiving).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Archive(#[from] crate::archive::Error),
    #[error(transparent)]
    Input(#[from] crate::ingest::Error),
    #[error(transparent)]
    Api(#[from] crate::api::client::ApiError),
    /// An API page that stayed unreadable; its bytes are in the quarantine.
    #[error("{message}; the page's bytes are in `{}`, and the checkpoint did not move", .path.display())]
    Poison { message: String, path: PathBuf },
    /// Stopped by a signal (SIGINT = 2, SIGTERM = 15) after finishing or abandoning the
    /// batch in flight.
    #[error("interrupted by signal {0}; the archive holds every commit made before it")]
    Interrupted(i32),
    /// An input named on the command line that is no readable file.
    #[error("`{}` is not a readable file", .0.display())]
    NotAFile(PathBuf),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The archive's events replayed by a query (`detect`).
    #[error(transparent)]
    Query(#[from] crate::query::Error),
    #[error("the {what} task failed")]
    Task {
        what: String,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("the stdin reader failed")]
    StdinReader,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which signal stopped us (2: SIGINT, 15: SIGTERM), once one arrives.
pub(crate) fn signalled() -> impl std::future::Future<Output = i32> + Send + 'static {
    watch(&[2, 15])
}

/// Ctrl-C (SIGINT), once it arrives.
pub(crate) fn interrupted() -> impl std::future::Future<Output = i32> + Send + 'static {
    watch(&[2])
}

/// The first of `signals` to arrive, watched on a thread of its own.
///
/// A runtime polls its signal driver only when a worker runs out of tasks or between
/// task polls, and a query over files in the page cache never waits for I/O: one poll
/// of a scan can decode every batch of a partition. A signal waited for on the query's
/// own runtime could then wait as long as the query. The handlers are installed before
/// this returns, so a signal that comes before the first poll is not missed (nor does it
/// kill the process). The thread ends when the future is dropped.
fn watch(signals: &'static [i32]) -> impl std::future::Future<Output = i32> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::oneshot::channel::<i32>();
    let watcher = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .ok()
        .and_then(|rt| {
            let streams = {
                let _in = rt.enter();
                signals
                    .iter()
                    .map(|&n| signal(SignalKind::from_raw(n)).map(|s| (n, s)))
                    .collect::<std::io::Result<Vec<_>>>()
                    .ok()?
            };
            Some((rt, streams))
        });
    if let Some((rt, streams)) = watcher {
        let spawned = std::thread::Builder::new()
            .name("auditq-signals".into())
            .spawn(move || {
                let mut tx = tx;
                rt.block_on(async move {
                    let first =
                        futures_util::future::select_all(streams.into_iter().map(|(n, mut s)| {
                            Box::pin(async move {
                                s.recv().await;
                                n
                            })
                        }));
                    tokio::select! {
                        (n, _, _) = first => { let _ = tx.send(n); }
                        _ = tx.closed() => {}
                    }
                });
            });
        if let Err(e) = spawned {
            tracing::warn!("signals will not be caught: no thread to watch them ({e})");
        }
    }
    async move {
        match rx.await {
            Ok(n) => n,
            // No watcher (no runtime or handler for it: the signal's default action
            // stands; no thread: the warning above says signals go unanswered).
            Err(_) => std::future::pending().await,
        }
    }
}
