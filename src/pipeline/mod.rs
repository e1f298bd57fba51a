//! Ingestion has one shape: sources feed sinks.
//!
//! - Sources: [`api::ApiSource`] (the Admin API's `/events-stream`: cursor, overlap,
//!   page → batch, quarantine of unreadable pages and invalid events), and the file
//!   and standard-input readers of [`crate::ingest`] (formats detected as `import`
//!   does), which `follow` also tails (`follow::source`).
//! - Sinks: [`archive::ArchiveSink`] (the archive: batches gathered, then committed
//!   with the source's checkpoint in one Delta commit, ids already archived dropped),
//!   and `follow`'s engine and outputs.
//!
//! `sync` = ApiSource → ArchiveSink; `import` = files → the archive's writer;
//! `follow` = any source → engine → sinks, and ArchiveSink with `--archive`.

pub mod api;
pub mod archive;

/// Which signal stopped us (2: SIGINT, 15: SIGTERM), once one arrives.
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
