//! `auditq generate`

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::generate::{Config, Generator};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of events
    #[arg(long, value_name = "N")]
    events: u64,
    /// Days the events span, ending at --end
    #[arg(long, default_value_t = 90, value_name = "D")]
    days: u32,
    /// End of the span (RFC 3339; default: now)
    #[arg(long, value_name = "TIME")]
    end: Option<String>,
    /// Random seed
    #[arg(long, default_value_t = 1, value_name = "S")]
    seed: u64,
    /// Write to a file instead of stdout
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let end_micros = match args.end {
        Some(text) => crate::event::parse_time(&text).ok_or_else(|| {
            Error::Usage(format!(
                "--end: `{text}` is not a time (expected RFC 3339, e.g. 2026-11-01T00:00:00Z)"
            ))
        })?,
        None => chrono::Utc::now().timestamp() * 1_000_000,
    };
    let mut generator = Generator::new(Config::new(args.events, args.days, end_micros, args.seed));
    let werr = |source| Error::Io {
        what: "writing events".into(),
        source,
    };
    match args.output {
        Some(path) => {
            (generator.write_ndjson(&mut super::create(&path)?)).map_err(werr)?;
        }
        None => {
            (generator.write_ndjson(&mut std::io::stdout().lock())).map_err(werr)?;
        }
    }
    Ok(())
}
