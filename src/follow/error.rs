//! What stops `follow` (and `detect`, which runs its engine over the archive).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading events, or archiving them.
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::Error),
    /// Refused query text, or a query over the archive that failed.
    #[error(transparent)]
    Query(#[from] crate::query::Error),
    #[error(transparent)]
    Rules(#[from] super::pack::LoadError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding {what} as JSON")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The state directory holds the checkpoint of another query or source.
    #[error(
        "the checkpoint in `{}` is for `{query}` on {source_name}; give another --state for this query",
        .dir.display()
    )]
    OtherCheckpoint {
        dir: PathBuf,
        query: String,
        source_name: String,
    },
    #[error("a splunk-hec sink needs SPLUNK_HEC_TOKEN in the environment")]
    NoHecToken,
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

impl From<crate::archive::Error> for Error {
    fn from(e: crate::archive::Error) -> Self {
        Error::Pipeline(e.into())
    }
}

impl From<crate::ingest::Error> for Error {
    fn from(e: crate::ingest::Error) -> Self {
        Error::Pipeline(e.into())
    }
}

impl From<crate::api::client::ApiError> for Error {
    fn from(e: crate::api::client::ApiError) -> Self {
        Error::Pipeline(e.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
