//! `auditq fake-api`

use crate::api::fake::{FakeApi, Fault, Options};
use crate::error::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Port (0 picks a free one)
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Organization id (default: the generator's)
    #[arg(long)]
    org: Option<String>,
    /// The key clients must send (default: derived from the seed)
    #[arg(long)]
    token: Option<String>,
    /// Events to serve
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Days they span, ending now
    #[arg(long, default_value_t = 30)]
    days: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Serve without rate limits
    #[arg(long)]
    no_rate_limit: bool,
    /// Inject a fault: `KIND[xCOUNT][@FROM]`, e.g. `429x20@3`, `503x5`, `truncatex10@2`, `htmlx100`
    #[arg(long, value_name = "SPEC")]
    fault: Vec<String>,
}

fn options(args: Args) -> Result<Options> {
    let faults = (args.fault.iter())
        .map(|f| Fault::parse(f.trim()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(Error::Usage)?;
    Ok(Options {
        org: args.org.unwrap_or_default(),
        token: args.token.unwrap_or_default(),
        events: args.events,
        days: args.days,
        seed: args.seed,
        rate_limit: !args.no_rate_limit,
        faults,
        ..Default::default()
    })
}

/// Serve until stopped; the URL, organization and key first.
pub fn run(args: Args) -> Result<()> {
    let port = args.port;
    let opts = options(args)?;
    super::runtime()?.block_on(async {
        let api = FakeApi::start(opts, port)
            .await
            .map_err(|source| Error::Io {
                what: "starting the fake API".into(),
                source,
            })?;
        super::say(&format!(
            "url   {}\norg   {}\ntoken {}",
            api.url, api.org, api.token
        ))?;
        api.wait().await;
        Ok(())
    })
}
