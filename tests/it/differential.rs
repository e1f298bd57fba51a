//! Differential test: auditq's answers equal DuckDB's, running hand-written SQL over the
//! live Parquet files of the same archive (100k generated events). Runs when
//! `AUDITQ_PYTHON` names a Python with `deltalake` and `duckdb` (`.ci/run` makes it).

use super::*;

const NOW: &str = "2026-02-18T12:00:00Z";

/// (auditq query, DuckDB SQL over `ev`, whether row order matters).
const PAIRS: &[(&str, &str, bool)] = &[
    ("| count", "SELECT count(*) FROM ev", true),
    // Answered from the archive's summary, not by a scan.
    (
        "| count by event",
        "SELECT action, count(*) FROM ev GROUP BY action",
        false,
    ),
    (
        "| count by action | sort -count, action | head 5",
        "SELECT action, count(*) AS c FROM ev GROUP BY action ORDER BY c DESC, action LIMIT 5",
        true,
    ),
    (
        "event:user_login | count",
        "SELECT count(*) FROM ev WHERE lower(action) = 'user_login'",
        true,
    ),
    (
        "event ~ \"user_*\" | count by action",
        "SELECT action, count(*) FROM ev WHERE action ILIKE 'user\\_%' ESCAPE '\\' GROUP BY action",
        false,
    ),
    (
        "event ~ \"*permission*\" | count",
        "SELECT count(*) FROM ev WHERE action ILIKE '%permission%'",
        true,
    ),
    (
        "event ~ /^bitbucket_repository_(created|deleted)$/ | count by action",
        "SELECT action, count(*) FROM ev WHERE regexp_matches(action, '^bitbucket_repository_(created|deleted)$') GROUP BY action",
        false,
    ),
    (
        "actor ~ \"svc-*\" | count by actor.email",
        "SELECT actor_email, count(*) FROM ev WHERE actor_id ILIKE 'svc-%' OR actor_email ILIKE 'svc-%' OR actor_name ILIKE 'svc-%' GROUP BY actor_email",
        false,
    ),
    (
        "-actor:svc-* | count",
        "SELECT count(*) FROM ev WHERE (actor_id IS NULL OR NOT actor_id ILIKE 'svc-%') AND (actor_email IS NULL OR NOT actor_email ILIKE 'svc-%') AND (actor_name IS NULL OR NOT actor_name ILIKE 'svc-%')",
        true,
    ),
    (
        "country = germany | count",
        "SELECT count(*) FROM ev WHERE lower(country) = 'germany'",
        true,
    ),
    (
        "country != Germany | count",
        "SELECT count(*) FROM ev WHERE country IS NULL OR lower(country) <> 'germany'",
        true,
    ),
    (
        "not has ip | count",
        "SELECT count(*) FROM ev WHERE ip IS NULL OR ip = ''",
        true,
    ),
    (
        "ip in 10.0.0.0/8 | count",
        "SELECT count(*) FROM ev WHERE ip LIKE '10.%' AND ip NOT LIKE '%:%'",
        true,
    ),
    (
        "ip in 172.16.0.0/12 | count by country",
        "SELECT country, count(*) FROM ev WHERE regexp_matches(ip, '^172\\.(1[6-9]|2[0-9]|3[01])\\.') GROUP BY country",
        false,
    ),
    (
        "ip ~ \"2001:db8:*\" | count",
        "SELECT count(*) FROM ev WHERE ip ILIKE '2001:db8:%'",
        true,
    ),
    (
        "since 7d | count",
        "SELECT count(*) FROM ev WHERE time >= TIMESTAMPTZ '2026-02-18 12:00:00+00' - INTERVAL 7 DAY",
        true,
    ),
    (
        "since 30d@d | count by action | sort -count, action | head 5",
        "SELECT action, count(*) AS c FROM ev WHERE time >= TIMESTAMPTZ '2026-01-19 00:00:00+00' GROUP BY action ORDER BY c DESC, action LIMIT 5",
        true,
    ),
    (
        "between 2026-01-01 and 2026-01-31 | count",
        "SELECT count(*) FROM ev WHERE time >= TIMESTAMPTZ '2026-01-01 00:00:00+00' AND time < TIMESTAMPTZ '2026-02-01 00:00:00+00'",
        true,
    ),
    (
        "on 2026-02-01 | count by actor.type",
        "SELECT actor_type, count(*) FROM ev WHERE time >= TIMESTAMPTZ '2026-02-01 00:00:00+00' AND time < TIMESTAMPTZ '2026-02-02 00:00:00+00' GROUP BY actor_type",
        false,
    ),
    (
        "yesterday | count",
        "SELECT count(*) FROM ev WHERE time >= TIMESTAMPTZ '2026-02-17 00:00:00+00' AND time < TIMESTAMPTZ '2026-02-18 00:00:00+00'",
        true,
    ),
    (
        "on 2026-02-01 tz \"America/New_York\" | count",
        "SELECT count(*) FROM ev WHERE time >= TIMESTAMPTZ '2026-02-01 05:00:00+00' AND time < TIMESTAMPTZ '2026-02-02 05:00:00+00'",
        true,
    ),
    (
        "| stats count, dc(actor.id) as actors, dc(ip) as ips by country",
        "SELECT country, count(*), count(DISTINCT actor_id), count(DISTINCT ip) FROM ev GROUP BY country",
        false,
    ),
    (
        "| top 5 action",
        "SELECT action, count(*) AS c FROM ev WHERE action IS NOT NULL GROUP BY action ORDER BY c DESC, action LIMIT 5",
        true,
    ),
    (
        "| top 2 country by actor.type",
        "SELECT actor_type, country, c FROM (SELECT actor_type, country, count(*) AS c, row_number() OVER (PARTITION BY actor_type ORDER BY count(*) DESC, country) AS r FROM ev WHERE country IS NOT NULL GROUP BY actor_type, country) WHERE r <= 2",
        false,
    ),
    (
        "has token_label | count by token_label",
        "SELECT token_label, count(*) FROM ev WHERE token_label IS NOT NULL AND token_label <> '' GROUP BY token_label",
        false,
    ),
    (
        "auth = api-token | count",
        "SELECT count(*) FROM ev WHERE lower(auth_type) = 'api-token'",
        true,
    ),
    (
        "\"export\" | count",
        "SELECT count(*) FROM ev WHERE actor_name ILIKE '%export%' OR actor_email ILIKE '%export%' OR actor_id ILIKE '%export%' OR action ILIKE '%export%' OR message ILIKE '%export%' \
         OR len(list_filter(context, lambda x: lower(x.id) LIKE '%export%' OR lower(x.name) LIKE '%export%')) > 0 \
         OR len(list_filter(container, lambda x: lower(x.id) LIKE '%export%' OR lower(x.name) LIKE '%export%')) > 0",
        true,
    ),
    (
        "context.type = users | count",
        "SELECT count(*) FROM ev WHERE len(list_filter(context, lambda x: lower(x.type) = 'users')) > 0",
        true,
    ),
    (
        "container:\"Example Org\" | count",
        "SELECT count(*) FROM ev WHERE len(list_filter(container, lambda x: lower(x.id) = 'example org' OR lower(x.name) = 'example org')) > 0",
        true,
    ),
    (
        "event:user_login_failed | timechart 1d | sort -count, time | head 5",
        "SELECT strftime(date_trunc('day', time), '%Y-%m-%dT%H:%M:%S.000Z'), count(*) AS c FROM ev WHERE lower(action) = 'user_login_failed' GROUP BY 1 ORDER BY c DESC, 1 LIMIT 5",
        true,
    ),
    (
        "| distinct actor.type, auth",
        "SELECT DISTINCT actor_type, auth_type FROM ev",
        false,
    ),
    (
        "message ~ \"*token*\" | count",
        "SELECT count(*) FROM ev WHERE message ILIKE '%token%'",
        true,
    ),
    (
        "action in (user_login, \"group_*\") country not in (Germany, France) | count",
        "SELECT count(*) FROM ev WHERE (lower(action) = 'user_login' OR action ILIKE 'group\\_%' ESCAPE '\\') AND (country IS NULL OR lower(country) <> 'germany') AND (country IS NULL OR lower(country) <> 'france')",
        true,
    ),
];

/// One CSV line as fields (quotes as auditq writes them).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => out.last_mut().unwrap().push(c),
        }
    }
    out
}

#[test]
fn auditq_agrees_with_duckdb() {
    if std::env::var_os("AUDITQ_PYTHON").is_none() {
        eprintln!("skipped: AUDITQ_PYTHON is not set (see scripts/python-venv.sh)");
        return;
    }
    assert!(PAIRS.len() >= 25);
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("archive");
    let events = dir.path().join("events.ndjson");
    ok(auditq(&a)
        .args([
            "generate", "--events", "100000", "--days", "60", "--end", NOW, "--seed", "5", "-o",
        ])
        .arg(&events));
    ok(auditq(&a).arg("import").arg(&events));
    let sqls: Vec<&str> = PAIRS.iter().map(|p| p.1).collect();
    let qfile = dir.path().join("queries.json");
    std::fs::write(&qfile, serde_json::to_string(&sqls).unwrap()).unwrap();
    let out = python_script("duckdb_queries.py", &[&a.join("events"), &qfile]);
    let duck: Vec<Vec<Vec<String>>> = serde_json::from_slice(&out).unwrap();
    // Not vacuous: nearly every query finds something in the generated data.
    let nonzero = duck
        .iter()
        .filter(|rows| !rows.is_empty() && rows[0].last().is_some_and(|v| v != "0"))
        .count();
    assert!(nonzero >= 25, "only {nonzero} queries found rows: {duck:?}");
    let mut failures = Vec::new();
    for ((q, sql, ordered), expected) in PAIRS.iter().zip(duck) {
        let r = ok(auditq(&a).args(["--quiet", "query", "--format", "csv", "--now", NOW, "--", q]));
        let mut got: Vec<Vec<String>> = r.stdout.lines().skip(1).map(csv_fields).collect();
        let mut want = expected;
        if !ordered {
            got.sort();
            want.sort();
        }
        if got != want {
            failures.push(format!(
                "{q}\n  sql: {sql}\n  auditq: {got:?}\n  duckdb: {want:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        PAIRS.len(),
        failures.join("\n")
    );
}
