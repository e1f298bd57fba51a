//! What stops `follow` besides the archive, the API and I/O.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the follow checkpoint `{}` is unreadable; move it away to start afresh", .path.display())]
    Checkpoint {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("encoding the follow checkpoint")]
    EncodeCheckpoint(#[source] serde_json::Error),
    #[error("the {what} task failed")]
    Task {
        what: String,
        #[source]
        source: tokio::task::JoinError,
    },
    /// Evaluating filters or windows on a batch failed (an Arrow kernel's message).
    #[error("evaluating the query on new events: {0}")]
    Evaluate(String),
    #[error("the stdin reader failed")]
    StdinReader,
    #[error("sink {name} stopped")]
    SinkStopped { name: String },
    #[error("sink {name}: setting up its HTTP client")]
    SinkClient {
        name: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("sink {name}: HEC refused the token (HTTP {status}); check SPLUNK_HEC_TOKEN")]
    HecRefused { name: String, status: u16 },
    #[error(
        "stopped before every sink had delivered; what they missed is sent again on the next run"
    )]
    Undelivered,
}
