//! `auditq demo`

use std::path::PathBuf;

use crate::archive::Archive;
use crate::error::Result;
use crate::run::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events to generate
    #[arg(long, default_value_t = 50_000)]
    events: u64,
    /// Days they span, ending now
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Where the demo archive goes (default: --archive when given, else auditq-demo)
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn run(settings: &Settings, args: Args) -> Result<()> {
    // --dir, else --archive (or AUDITQ_ARCHIVE), else ./auditq-demo.
    let archive = match (args.dir, settings.archive_given) {
        (Some(d), _) => Archive::at(d),
        (None, true) => settings.archive.clone(),
        (None, false) => Archive::at("auditq-demo"),
    };
    let demo = crate::demo::demo(&archive, args.events, args.days, settings.progress);
    super::runtime()?.block_on(demo)
}
