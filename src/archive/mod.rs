//! The archive: a directory holding a Delta Lake table of events, a quarantine and a lock.
//!
//! ```text
//! ARCHIVE/
//!   events/            Delta Lake table, partitioned by date=YYYY-MM-DD (UTC day of `time`)
//!     _delta_log/      the transaction log: every write is one atomic commit
//!     date=2026-05-19/part-….zstd.parquet
//!   quarantine/
//!     invalid/         input that is not an archivable event: raw bytes + .meta.json
//!     conflict/        events whose id is archived with other content: newcomer's raw JSON
//!   cache/             per data file and in total: rows, time range, action counts
//!                      (a cache: rebuilt from the data files when missing or stale)
//!   LOCK               held (flock) by the one writer; the kernel frees it if the holder dies
//! ```

pub mod ids;
pub mod lock;
pub mod maintain;
mod newest_first;
pub mod provider;
pub mod quarantine;
pub mod read;
pub mod repair;
pub mod summary;
pub mod write;

use std::path::{Path, PathBuf};

use deltalake::DeltaTable;

pub use lock::Lock;
pub use quarantine::Quarantine;

/// Errors of the archive stage. Each carries the path or partition it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no archive at `{}` (create one with `auditq import` or `auditq sync`)", .path.display())]
    Missing { path: PathBuf },
    #[error("`{}` is not an archive directory: {reason}", .path.display())]
    NotAnArchive { path: PathBuf, reason: String },
    #[error("archive `{}` is locked by another auditq process{}; wait for it to finish", .path.display(), .holder.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Locked {
        path: PathBuf,
        holder: Option<String>,
    },
    #[error("{action} `{}`: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("delta table `{}`: {source}", .path.display())]
    Delta {
        path: PathBuf,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error("reading `{}`: {source}", .path.display())]
    Parquet {
        path: PathBuf,
        #[source]
        source: Box<datafusion::parquet::errors::ParquetError>,
    },
    #[error("query over `{}`: {source}", .path.display())]
    Query {
        path: PathBuf,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
    #[error("archive `{}` changed under {attempts} commits in a row (other writers); nothing of this batch was committed, run it again", .path.display())]
    Contended { path: PathBuf, attempts: u32 },
    #[error("{0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An archive directory.
#[derive(Debug, Clone)]
pub struct Archive {
    root: PathBuf,
}

impl Archive {
    /// The archive at `root`, which need not exist yet.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Archive { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The Delta table directory.
    pub fn events_dir(&self) -> PathBuf {
        self.root.join("events")
    }

    pub fn quarantine(&self) -> Quarantine {
        Quarantine::new(self.root.join("quarantine"))
    }

    fn io(&self, action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_owned();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    fn delta_err(&self) -> impl FnOnce(deltalake::DeltaTableError) -> Error {
        let path = self.events_dir();
        move |source| Error::Delta {
            path,
            source: Box::new(source),
        }
    }

    /// Create the archive directory if needed and take the writer lock.
    pub fn lock_for_writing(&self) -> Result<Lock> {
        if self.root.exists() && !self.root.is_dir() {
            return Err(Error::NotAnArchive {
                path: self.root.clone(),
                reason: "not a directory".into(),
            });
        }
        std::fs::create_dir_all(&self.root)
            .map_err(self.io("creating archive directory", &self.root))?;
        Lock::acquire(&self.root.join("LOCK"))
    }

    /// Open the events table for reading. Fails with [`Error::Missing`] if there is none.
    pub async fn open_table(&self) -> Result<DeltaTable> {
        let dir = self.events_dir();
        if !self.root.is_dir() {
            return Err(Error::Missing {
                path: self.root.clone(),
            });
        }
        if !dir.join("_delta_log").is_dir() {
            return Err(Error::Missing {
                path: self.root.clone(),
            });
        }
        let url = dir_url(&dir).map_err(|reason| Error::NotAnArchive {
            path: dir.clone(),
            reason,
        })?;
        deltalake::open_table(url).await.map_err(self.delta_err())
    }

    /// Open the events table, or prepare an empty one that the first write creates.
    pub async fn open_or_prepare_table(&self) -> Result<DeltaTable> {
        let dir = self.events_dir();
        std::fs::create_dir_all(&dir).map_err(self.io("creating table directory", &dir))?;
        let url = dir_url(&dir).map_err(|reason| Error::NotAnArchive {
            path: dir.clone(),
            reason,
        })?;
        DeltaTable::try_from_url(url)
            .await
            .map_err(self.delta_err())
    }
}

/// The `file://` URL of a directory (absolute, with a trailing slash).
fn dir_url(dir: &Path) -> std::result::Result<url::Url, String> {
    let abs = std::path::absolute(dir).map_err(|e| e.to_string())?;
    url::Url::from_directory_path(&abs).map_err(|()| "not an absolute local path".to_owned())
}
