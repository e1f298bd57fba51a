//! `auditq demo`: a fake API on a free loopback port, a sync into a demo archive, five
//! example queries with their output, and what to try next. No account, no network.

use crate::api::client::Secret;
use crate::api::fake::{FakeApi, Options as FakeOptions};
use crate::archive::Archive;
use crate::error::{Error, Result};
use crate::query::{self, output};

/// The queries the demo runs, each with what it answers.
pub const QUERIES: &[(&str, &str)] = &[
    (
        "What happened most in the last 7 days?",
        "since 7d | top 5 action",
    ),
    (
        "Who changed permissions or roles this month?",
        "event ~ \"*permission*\" or event ~ \"*role*\" since 30d | count by actor | sort -count | head 5",
    ),
    (
        "Failed logins per day over the last week",
        "event:user_login_failed since 7d@d | timechart 1d",
    ),
    (
        "Accounts that used the most IP addresses",
        "| dc(ip) as ips by actor | sort -ips | head 5",
    ),
    (
        "The five latest admin API-token actions",
        "has token_label | sort -time | head 5 | fields time, actor, action, token_label",
    ),
];

pub async fn demo(archive: &Archive, events: u64, days: u32, progress: bool) -> Result<()> {
    let opts = FakeOptions {
        events,
        days,
        seed: 7,
        rate_limit: false,
        ..Default::default()
    };
    let say = |s: &str| println!("{s}");
    say(&format!(
        "Generating {events} events over {days} days and serving them on 127.0.0.1 …"
    ));
    let api = FakeApi::start(opts, 0).await.map_err(|source| Error::Io {
        what: "starting the fake API".into(),
        source,
    })?;
    say(&format!(
        "Fake Atlassian API at {} (org {})",
        api.url, api.org
    ));
    let mut sync = crate::sync::Options::new(&api.org, &api.url, Secret::new(api.token.clone()));
    sync.since = std::time::Duration::from_secs((days as u64 + 1) * 86_400);
    sync.progress = progress;
    let report = crate::sync::sync(archive, &sync).await?;
    say(&report.summary());
    api.stop();
    let now = chrono::Utc::now().timestamp_micros();
    for (question, q) in QUERIES {
        say(&format!(
            "\n# {question}\n$ auditq --archive {} query '{q}'",
            archive.root().display()
        ));
        let answer = query::run(archive, q, query::Clock::utc(now), false).await?;
        let screen = output::Screen {
            width: Some(110),
            bars: answer.chart,
            ..Default::default()
        };
        let writer = output::Writer::new(
            output::Format::Table,
            &answer.schema,
            &output::Dest::Stdout,
            screen,
        )?;
        answer.write(writer).await?;
    }
    say(&format!(
        "\nExplore further:\n  auditq --archive {d} repl\n  auditq --archive {d} query 'actor = \"…\" and event ~ \"group_*\" since 7d'\n  auditq --archive {d} query 'since 30d | count by action' --format csv\n  auditq --archive {d} explain 'event ~ \"*delete*\" | top 10 actor'\n  auditq --archive {d} archive stats",
        d = archive.root().display()
    ));
    Ok(())
}
