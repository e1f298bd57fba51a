//! The top-level error, wrapping each stage's error, and the one place that decides exit
//! codes.
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | success (also: output pipe closed by the reader) |
//! | 1    | runtime failure: archive, input, output; `archive verify` found problems |
//! | 2    | usage error: bad flag, bad config file, invalid duration or time |
//! | 65   | data error (EX_DATAERR): an API page stayed unreadable; its bytes are quarantined |
//! | 75   | temporary failure (EX_TEMPFAIL): the archive is locked by another writer, or other |
//! |      | writers took 50 commit versions in a row before this one; the API kept failing |
//! |      | (5xx, network, rate limits) — run again later, nothing is lost |
//! | 77   | permission (EX_NOPERM): the API refused the key (401/403) or the org (404) |
//! | 130  | interrupted by SIGINT; 143 by SIGTERM (nothing half-written) |

use std::path::PathBuf;

use crate::{archive, ingest};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command line; clap renders it (also `--help` and `--version`, exit 0).
    #[error(transparent)]
    Clap(#[from] clap::Error),
    #[error("{0}")]
    Usage(String),
    #[error("config file `{}`: {message}", .path.display())]
    Config { path: PathBuf, message: String },
    #[error(transparent)]
    Archive(#[from] archive::Error),
    #[error(transparent)]
    Input(#[from] ingest::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("archive verify found {problems} problem(s)")]
    VerifyFailed { problems: usize },
    /// A query that does not parse or compile: its text and diagnostics, rendered by the
    /// caller (`main`, the REPL) in the style and colour it chose.
    #[error(transparent)]
    BadQuery(Box<crate::diag::Rejected>),
    /// A rule pack that cannot be loaded; a refused rule carries its file's text and
    /// diagnostics, rendered by `main`.
    #[error(transparent)]
    Rules(#[from] crate::follow::pack::LoadError),
    #[error(transparent)]
    Query(crate::query::Error),
    #[cfg(feature = "cluster")]
    #[error(transparent)]
    Cluster(#[from] crate::cluster::Error),
    #[error(transparent)]
    Follow(crate::follow::error::Error),
    /// Ingestion's own: a page that stayed unreadable, a signal, a reader that failed.
    #[error(transparent)]
    Pipeline(crate::pipeline::Error),
    #[error(transparent)]
    Prompt(#[from] Prompt),
    #[error("encoding {what} as JSON")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Api(#[from] crate::api::client::ApiError),
}

/// What can stop the REPL's prompt itself.
#[derive(Debug, thiserror::Error)]
pub enum Prompt {
    #[error("setting up the prompt")]
    Setup(#[source] rustyline::error::ReadlineError),
    #[error("reading input")]
    Read(#[source] rustyline::error::ReadlineError),
    #[error("the query stopped")]
    Stopped(#[source] tokio::task::JoinError),
}

/// Each layer's error as the one exit codes are decided on: its variants are lifted to
/// this level, and what a layer says in its own terms is worded here in the command
/// line's (`--cluster`, `--state`).
impl From<crate::pipeline::Error> for Error {
    fn from(e: crate::pipeline::Error) -> Self {
        use crate::pipeline::Error as P;
        match e {
            P::Archive(e) => Error::Archive(e),
            P::Input(e) => Error::Input(e),
            P::Api(e) => Error::Api(e),
            e @ P::NotAFile(_) => Error::Usage(e.to_string()),
            P::Io { what, source } => Error::Io { what, source },
            P::Query(e) => e.into(),
            e @ (P::Poison { .. } | P::Interrupted(_) | P::Task { .. } | P::StdinReader) => {
                Error::Pipeline(e)
            }
        }
    }
}

impl From<crate::query::Error> for Error {
    fn from(e: crate::query::Error) -> Self {
        use crate::query::Error as Q;
        match e {
            Q::Rejected(r) => Error::BadQuery(r),
            Q::Archive(e) => Error::Archive(e),
            e @ Q::NoCluster => Error::Usage(format!("--cluster: {e}")),
            e @ Q::SequenceOnCluster => {
                Error::Usage(format!("{e}; run the query without --cluster"))
            }
            #[cfg(feature = "cluster")]
            Q::Cluster(e) => match e.downcast::<crate::cluster::Error>() {
                Ok(e) => Error::Cluster(*e),
                Err(e) => Error::Query(Q::Cluster(e)),
            },
            e => Error::Query(e),
        }
    }
}

impl From<crate::follow::error::Error> for Error {
    fn from(e: crate::follow::error::Error) -> Self {
        use crate::follow::error::Error as F;
        match e {
            F::Pipeline(e) => e.into(),
            F::Query(e) => e.into(),
            F::Rules(e) => Error::Rules(e),
            F::Io { what, source } => Error::Io { what, source },
            F::Encode { what, source } => Error::Encode { what, source },
            e @ (F::OtherCheckpoint { .. } | F::NoHecToken) => Error::Usage(e.to_string()),
            e => Error::Follow(e),
        }
    }
}

pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_DATAERR: u8 = 65;
pub const EXIT_TEMPFAIL: u8 = 75;
pub const EXIT_NOPERM: u8 = 77;

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            _ if self.is_broken_pipe() => 0,
            Error::Clap(e) => e.exit_code().clamp(0, 255) as u8,
            Error::Usage(_)
            | Error::Archive(
                archive::Error::RetentionTooShort { .. } | archive::Error::AsOf { .. },
            )
            | Error::Config { .. }
            | Error::BadQuery(_)
            | Error::Rules(
                crate::follow::pack::LoadError::Rule(_) | crate::follow::pack::LoadError::Empty(_),
            ) => EXIT_USAGE,
            // A rule file that is no file of text (a FIFO, a device, too large).
            Error::Rules(crate::follow::pack::LoadError::Io { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
                ) =>
            {
                EXIT_USAGE
            }
            #[cfg(feature = "cluster")]
            Error::Cluster(
                crate::cluster::Error::LocalArchive(_) | crate::cluster::Error::Address(_),
            ) => EXIT_USAGE,
            Error::Archive(
                archive::Error::Locked { .. }
                | archive::Error::Contended { .. }
                | archive::Error::Moved { .. },
            ) => EXIT_TEMPFAIL,
            Error::Api(e) => {
                use crate::api::client::ApiError::*;
                match e {
                    Auth { .. } | Forbidden { .. } | OrgNotFound { .. } => EXIT_NOPERM,
                    GaveUp { .. } => EXIT_TEMPFAIL,
                    BadPage { .. } => EXIT_DATAERR,
                    Interrupted => 130,
                    Rejected { .. } | Url(_) => EXIT_RUNTIME,
                }
            }
            Error::Pipeline(crate::pipeline::Error::Poison { .. }) => EXIT_DATAERR,
            Error::Pipeline(crate::pipeline::Error::Interrupted(sig)) => {
                (128 + sig).clamp(0, 255) as u8
            }
            _ => EXIT_RUNTIME,
        }
    }

    /// A closed output pipe (`auditq generate | head`) is success, not failure.
    pub fn is_broken_pipe(&self) -> bool {
        let io = match self {
            Error::Io { source, .. } => Some(source),
            Error::Input(ingest::Error::Read { source, .. }) => Some(source),
            Error::Query(crate::query::Error::Output { source, .. }) => Some(source),
            _ => None,
        };
        io.is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// A refused query, from its diagnostics.
    pub fn rejected(src: &str, diags: Vec<crate::diag::Diagnostic>) -> Error {
        crate::query::rejected(src, diags).into()
    }

    /// The message with its chain of causes, on one line.
    pub fn render(&self) -> String {
        crate::diag::chain(self)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::VerifyFailed { problems: 1 }.exit_code(), 1);
        let locked = Error::Archive(archive::Error::Locked {
            path: "a".into(),
            holder: None,
        });
        assert_eq!(locked.exit_code(), 75);
        let pipe = Error::Io {
            what: "writing".into(),
            source: std::io::ErrorKind::BrokenPipe.into(),
        };
        assert_eq!(pipe.exit_code(), 0);
    }
}
