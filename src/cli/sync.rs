//! `auditq sync`

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::lang::duration::parse_duration;
use crate::run::Settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Organization id [env: ATLASSIAN_ORG_ID; config: org]
    #[arg(long, value_name = "ORG")]
    org: Option<String>,
    /// API root
    #[arg(long, default_value = "https://api.atlassian.com", value_name = "URL")]
    api_url: String,
    /// How far back the first run reaches
    #[arg(long, default_value = "180d", value_name = "DURATION")]
    since: String,
    /// A file holding the API key (mode 0600), instead of ATLASSIAN_API_KEY
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Events per page (at most 500)
    #[arg(long, default_value_t = 500, value_name = "N")]
    page_size: usize,
    /// Pages per atomic commit
    #[arg(long, default_value_t = 20, value_name = "N")]
    commit_pages: usize,
    /// Attempts per request before giving up (5xx, network, unreadable pages)
    #[arg(long, default_value_t = 6, value_name = "N")]
    attempts: u32,
    /// Time limit per request
    #[arg(long, default_value = "120s", value_name = "DURATION")]
    timeout: String,
}

/// The options of `sync`: the arguments, the settings, the key.
fn options(settings: &Settings, args: Args) -> Result<crate::sync::Options> {
    let org = settings.org(args.org)?;
    let token = crate::run::api_token(args.token_file.as_deref())?;
    let mut opts = crate::sync::Options::new(&org, &args.api_url, token);
    opts.since = parse_duration(&args.since).map_err(Error::Usage)?;
    opts.api.page_size = args.page_size.clamp(1, 500);
    opts.commit_pages = args.commit_pages.max(1);
    opts.progress = settings.progress;
    opts.api.limits.attempts = args.attempts.max(1);
    opts.api.limits.total_timeout = parse_duration(&args.timeout).map_err(Error::Usage)?;
    Ok(opts)
}

pub fn run(settings: &Settings, args: Args) -> Result<()> {
    let opts = options(settings, args)?;
    let report = super::runtime()?.block_on(crate::sync::sync(&settings.archive, &opts))?;
    if !settings.quiet {
        super::say(&report.summary())?;
    }
    Ok(())
}
