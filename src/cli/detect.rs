//! `auditq detect DIR`

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use crate::detect::Format;
use crate::error::{Error, Result};
use crate::run::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The directory of rules
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// How far back (from now)
    #[arg(long, default_value = "30d", value_name = "DURATION")]
    since: String,
    /// How long windows and sequences wait for late events
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    lateness: String,
    /// table on a terminal, csv when piped, or json
    #[arg(long, value_enum)]
    format: Option<Format>,
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// Backtest on an earlier version of the archive (a version number, or a time: the
    /// last version committed by then)
    #[arg(long, value_name = "VERSION|TIME")]
    as_of: Option<String>,
}

pub fn run(settings: &Settings, args: Args) -> Result<()> {
    let micros = |flag: &str, v: &str| super::duration(flag, v).map(|d| d.as_micros() as i64);
    let now = crate::run::now(args.now.as_deref())?;
    let library = crate::run::macros(settings.macros.as_deref())?;
    let rules = crate::follow::pack::load(&args.dir, &library)?;
    let archive = super::as_of(settings, args.as_of.as_deref())?;
    let report = super::runtime()?.block_on(crate::detect::detect(
        &archive,
        rules,
        crate::query::Clock::utc(now),
        micros("since", &args.since)?,
        micros("lateness", &args.lateness)?,
    ))?;
    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Csv
    });
    let text = crate::detect::render(&report, format, settings.color_out)?;
    (std::io::stdout().lock().write_all(text.as_bytes())).map_err(|source| Error::Io {
        what: "writing output".into(),
        source,
    })
}
