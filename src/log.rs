//! Logging: what auditq does, as `tracing` events on stderr — off unless asked for.
//!
//! `-v` shows auditq's own steps (API requests and their answers, commits, query plans);
//! `-vv` adds their details and the engines' (DataFusion, Delta) own messages; `RUST_LOG`
//! (`auditq=debug,deltalake=info`) chooses exactly. Tokens never appear: requests are
//! logged by path and query, never their headers.

use tracing_subscriber::filter::Targets;

/// The filter `-v` given `verbose` times means.
fn filter(verbose: u8) -> &'static str {
    match verbose {
        0 => "off",
        1 => "auditq=info",
        2 => "auditq=debug,deltalake=info,datafusion=info",
        _ => "debug",
    }
}

/// Start logging to stderr: `RUST_LOG` when set, else by `-v` count. A second call does
/// nothing.
pub fn init(verbose: u8, color: bool) {
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let targets: Targets = match spec.as_deref().map(str::parse::<Targets>) {
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            eprintln!("warning: RUST_LOG is not a filter ({e}); using -v");
            filter(verbose).parse().expect("valid built-in filter")
        }
        None => filter(verbose).parse().expect("valid built-in filter"),
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(true)
        .compact();
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry().with(fmt).with(targets);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_level_parses() {
        for v in 0..4 {
            super::filter(v)
                .parse::<super::Targets>()
                .expect("a filter");
        }
    }
}
