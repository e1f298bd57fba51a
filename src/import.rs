//! `import`: inputs -> reader thread (ingest, a file source) -> [`ArchiveSink`], one
//! commit per batch.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::archive::Archive;
use crate::archive::write::CommitStats;
use crate::ingest::{Chunk, Input, spawn_reader};
use crate::pipeline::archive::ArchiveSink;
use crate::pipeline::{Error, Result};

/// What an import did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ImportReport {
    /// Events read (archivable or not).
    pub read: u64,
    pub added: u64,
    pub already_present: u64,
    /// Events whose id was archived with other content; the newcomer is in
    /// `quarantine/conflict/`.
    pub conflicts: u64,
    /// Documents that are not archivable events, in `quarantine/invalid/`.
    pub quarantined: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// Small files merged after the commits.
    pub compacted: crate::archive::compact_small::Compacted,
}

impl ImportReport {
    pub fn events_per_second(&self) -> f64 {
        self.read as f64 / self.seconds.max(1e-9)
    }

    /// The one-line summary printed at the end.
    pub fn summary(&self, archive: &Archive) -> String {
        let mut s = format!(
            "read {} events: added {}, already present {}, conflicting duplicates {}, quarantined {} ({:.1}s, {:.0} events/s)",
            self.read,
            self.added,
            self.already_present,
            self.conflicts,
            self.quarantined,
            self.seconds,
            self.events_per_second()
        );
        if self.conflicts + self.quarantined > 0 {
            s.push_str(&format!(
                "; kept aside in {}",
                archive.quarantine().dir().display()
            ));
        }
        s.push_str(&self.compacted.clause());
        s
    }
}

/// Options of an import.
#[derive(Debug, Clone)]
pub struct Options {
    /// Events per commit.
    pub batch_size: usize,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// One line per commit on stderr.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_size: 40_000,
            progress: false,
            verbose: false,
        }
    }
}

pub async fn import(archive: &Archive, inputs: &[Input], opts: &Options) -> Result<ImportReport> {
    let start = Instant::now();
    // Check every input before taking the lock and loading the id index.
    for input in inputs {
        if let Input::File(p) = input
            && !p.is_file()
        {
            return Err(Error::NotAFile(p.clone()));
        }
    }
    let mut sink = ArchiveSink::open(archive, None, "import".into()).await?;
    let total: Option<u64> = inputs.iter().map(Input::size).sum();
    let bar = progress_bar(opts.progress, total);
    let mut report = ImportReport::default();
    for input in inputs {
        let (mut rx, handle) = spawn_reader(input.clone(), archive.quarantine(), opts.batch_size);
        let source = input.name();
        let mut done_bytes = 0;
        let mut stats = CommitStats::default();
        while let Some(chunk) = rx.recv().await {
            match chunk {
                Chunk::Progress { bytes, invalid } => {
                    done_bytes = bytes;
                    bar.set_position(report.bytes + bytes);
                    bar.set_message(format!(
                        "{} added, {} quarantined",
                        report.added + stats.added,
                        report.quarantined + invalid
                    ));
                }
                Chunk::Batch(batches) => {
                    let t = Instant::now();
                    let s = sink.commit_batches(&batches, &source).await?;
                    if opts.verbose {
                        bar.suspend(|| {
                            eprintln!(
                                "commit: {} rows, {} added, {} present, {} conflicts in {:.0} ms (table version {})",
                                batches.iter().map(|b| b.num_rows()).sum::<usize>(),
                                s.added,
                                s.present,
                                s.conflicts,
                                t.elapsed().as_secs_f64() * 1e3,
                                sink.version()
                            )
                        });
                    }
                    stats += s;
                }
            }
        }
        drop(rx);
        let read = handle
            .join()
            .map_err(|_| crate::ingest::Error::ReaderPanicked)??;
        report.read += read.events + read.invalid;
        report.quarantined += read.invalid;
        report.added += stats.added;
        report.already_present += stats.present;
        report.conflicts += stats.conflicts;
        report.compacted += stats.compacted;
        report.bytes += done_bytes.max(read.bytes);
    }
    bar.finish_and_clear();
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

fn progress_bar(show: bool, total: Option<u64>) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{spinner} importing [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} importing {bytes} {bytes_per_sec} {msg}")
                .expect("valid template"),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
