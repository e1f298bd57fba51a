//! `auditq follow`

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::follow::{From, sink};
use crate::run::Settings;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").args(["org", "stdin", "file"])))]
pub struct Args {
    /// The query: filters, `where`, `dedup … within`, `first_seen`, then `fields …`, a
    /// windowed aggregate (`| count by actor over 5m > 10`) or a sequence
    #[arg(
        value_name = "QUERY",
        allow_hyphen_values = true,
        required_unless_present = "rules"
    )]
    query: Option<String>,
    /// Run every rule (`.aq` file with a `# name:`/`# severity:` header) of DIR
    /// instead of one query; each alert carries its rule
    #[arg(long, value_name = "DIR", conflicts_with = "query")]
    rules: Option<PathBuf>,
    /// Read the organization's audit log from the API
    #[arg(long, value_name = "ORG")]
    org: Option<String>,
    /// Read events from standard input until it closes
    #[arg(long)]
    stdin: bool,
    /// Read events from a file (NDJSON or one API page a line)
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// With --file: keep reading as it grows, across rotation (like tail -F)
    #[arg(short = 'F', long = "follow-file", requires = "file")]
    follow_file: bool,
    /// Where matches go: stdout, file:PATH, webhook:URL, splunk-hec:URL (repeatable;
    /// splunk-hec takes its token from SPLUNK_HEC_TOKEN)
    #[arg(long, value_name = "SINK", default_value = "stdout")]
    sink: Vec<String>,
    /// Checkpoint directory (default: one per query and source under
    /// $XDG_DATA_HOME/auditq/follow; stdin keeps none unless given)
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// How long windows wait for events that arrive late
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    lateness: String,
    /// How often the API is asked for new events
    #[arg(long, default_value = "15s", value_name = "DURATION")]
    poll: String,
    /// With --org: where the first run starts (unless the archive has a sync checkpoint)
    #[arg(long, default_value = "10m", value_name = "DURATION")]
    since: String,
    /// API root
    #[arg(long, default_value = "https://api.atlassian.com", value_name = "URL")]
    api_url: String,
    /// A file holding the API key (mode 0600), instead of ATLASSIAN_API_KEY
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Events per API page (at most 500)
    #[arg(long, default_value_t = 500, value_name = "N")]
    page_size: usize,
    /// Batches queued per sink before reading waits
    #[arg(long, default_value_t = 16, value_name = "N")]
    queue: usize,
    /// Rotate file: sinks at this many bytes
    #[arg(long, default_value_t = 100 << 20, value_name = "BYTES")]
    rotate_bytes: u64,
    /// How often a checkpoint is taken while events flow
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    checkpoint_every: String,
    /// "Now" for time clauses (default: AUDITQ_NOW, else the clock)
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub errors: super::ErrorsArg,
}

/// Where events come from: the API (`--org`, or the configured organization when no
/// source is given), standard input, or a file.
fn source(settings: &Settings, args: &Args) -> Result<From> {
    let org = match (&args.org, args.stdin, &args.file) {
        (None, false, None) => Some(settings.org(None)?),
        (org, _, _) => org.clone(),
    };
    Ok(match (org, args.stdin, &args.file) {
        (Some(org), _, _) => From::Api(crate::pipeline::source::Poll {
            api: crate::pipeline::api::Api {
                org,
                api_url: args.api_url.clone(),
                token: crate::run::api_token(args.token_file.as_deref())?,
                page_size: args.page_size.clamp(1, 500),
                limits: crate::api::client::Limits::default(),
            },
            every: super::duration("poll", &args.poll)?,
        }),
        (None, true, _) => From::Stdin,
        (None, false, Some(path)) => From::File {
            path: path.clone(),
            follow: args.follow_file,
        },
        (None, false, None) => return Err(Error::Usage("give --org, --stdin or --file".into())),
    })
}

/// The sinks' options: the flags, the HEC token, the dead-letter file beside the state.
fn sink_options(args: &Args) -> sink::Options {
    let hec_token = std::env::var("SPLUNK_HEC_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .map(crate::api::client::Secret::new);
    let dead_letter = (args.state.clone())
        .unwrap_or_else(|| crate::paths::data_dir().join("follow"))
        .join("dead-letter.ndjson");
    sink::Options {
        queue: args.queue,
        rotate_bytes: args.rotate_bytes,
        hec_token,
        compact: std::io::stdout().is_terminal(),
        dead_letter,
        ..sink::Options::default()
    }
}

pub fn run(settings: &Settings, args: Args) -> Result<()> {
    let from = source(settings, &args)?;
    let sinks = (args.sink.iter())
        .map(|s| sink::Spec::parse(s))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(Error::Usage)?;
    let sink = sink_options(&args);
    let library = crate::run::macros(settings.macros.as_deref())?;
    let query = args.query.clone().unwrap_or_default();
    let expanded = (library.expand(&query)).map_err(|d| Error::rejected(&query, d))?;
    let rules = match &args.rules {
        Some(dir) => crate::follow::pack::load(dir, &library)?,
        None => Vec::new(),
    };
    let opts = crate::follow::Options {
        query: expanded.text.clone(),
        rules,
        from,
        sinks,
        sink,
        // --archive (or AUDITQ_ARCHIVE) given: every event read is archived too.
        archive: settings.archive_given.then(|| settings.archive.clone()),
        state: args.state,
        lateness: super::duration("lateness", &args.lateness)?,
        since: super::duration("since", &args.since)?,
        checkpoint_every: super::duration("checkpoint-every", &args.checkpoint_every)?,
        now: crate::run::now(args.now.as_deref())?,
        ..crate::follow::Options::default()
    };
    let report = super::runtime()?
        .block_on(crate::follow::follow(opts))
        .map_err(|e| crate::run::restore(&expanded, e))?;
    if !settings.quiet {
        eprintln!("{}", report.summary());
    }
    if report.undelivered {
        return Err(crate::follow::error::Error::Undelivered.into());
    }
    Ok(())
}
