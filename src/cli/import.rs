//! `auditq import FILE…`

use crate::error::Result;
use crate::ingest::Input;
use crate::run::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Input files; `-` reads standard input
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
    /// Events per atomic commit
    #[arg(long, default_value_t = 40_000, value_name = "N")]
    batch_size: usize,
}

pub fn run(settings: &Settings, args: Args) -> Result<()> {
    let inputs: Vec<Input> = args.files.iter().map(|f| Input::parse(f)).collect();
    let opts = crate::import::Options {
        batch_size: args.batch_size,
        progress: settings.progress,
        verbose: settings.verbose > 0,
    };
    let import = crate::import::import(&settings.archive, &inputs, &opts);
    let report = super::runtime()?.block_on(import)?;
    if !settings.quiet {
        super::say(&report.summary(&settings.archive))?;
    }
    Ok(())
}
