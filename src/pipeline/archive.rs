//! The archive as a sink: batches gathered, then committed together with the source's
//! checkpoint (the version of the application transaction `app`) in one Delta commit.
//! The data and the checkpoint move together or not at all; the writer drops the ids
//! already archived, so a source that reads again from an earlier position duplicates
//! nothing.

use datafusion::arrow::array::RecordBatch;

use super::Result;
use crate::archive::Archive;
use crate::archive::write::{CommitStats, Writer};

/// The application-transaction id of an organization's API checkpoint (shared by
/// `sync` and `follow` of the same organization).
pub fn api_app(org: &str) -> String {
    format!("auditq-sync:{org}")
}

pub struct ArchiveSink {
    writer: Writer,
    /// The application transaction of the source's checkpoint; `None` for `import`.
    app: Option<String>,
    /// Names the commits (in the commit info and the quarantine).
    source: String,
    pending: Vec<RecordBatch>,
    rows: usize,
}

impl ArchiveSink {
    /// The archive, for a source whose checkpoint is the application transaction `app`
    /// (`None`: a source without a position, whose commits carry no checkpoint).
    pub async fn open(archive: &Archive, app: Option<String>, source: String) -> Result<Self> {
        Ok(ArchiveSink {
            writer: Writer::open(archive).await?,
            app,
            source,
            pending: Vec::new(),
            rows: 0,
        })
    }

    /// The checkpoint committed last, if any.
    pub async fn checkpoint(&self) -> Result<Option<i64>> {
        match &self.app {
            Some(app) => Ok(self.writer.checkpoint(app).await?),
            None => Ok(None),
        }
    }

    /// Commits `batches` at once, named by `source`, without a checkpoint: `import`,
    /// whose files have no position to resume from (their ids make a second run add
    /// nothing).
    pub async fn commit_batches(
        &mut self,
        batches: &[RecordBatch],
        source: &str,
    ) -> Result<CommitStats> {
        Ok(self.writer.commit(batches, source).await?)
    }

    /// The table's version after the last commit.
    pub fn version(&self) -> i64 {
        self.writer.version()
    }

    /// Gathers a batch for the next commit.
    pub fn push(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.rows += batch.num_rows();
            self.pending.push(batch);
        }
    }

    /// Rows gathered since the last commit.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Commits what was gathered (possibly nothing) with `checkpoint`.
    pub async fn commit(&mut self, checkpoint: i64) -> Result<CommitStats> {
        let stats = match &self.app {
            Some(app) => {
                self.writer
                    .commit_checkpoint(&self.pending, &self.source, app, checkpoint)
                    .await?
            }
            None => self.writer.commit(&self.pending, &self.source).await?,
        };
        self.pending.clear();
        self.rows = 0;
        Ok(stats)
    }
}
