//! Differential test: auditq's answers equal DuckDB's, running hand-written SQL over the
//! live Parquet files of the same archive (100k generated events). Needs `AUDITQ_PYTHON`,
//! a Python with `deltalake` and `duckdb` (`scripts/test` makes it); ignored without it.

use super::*;

pub(super) const NOW: &str = "2026-02-18T12:00:00Z";

/// (auditq query, DuckDB SQL over `ev`, whether row order matters).
pub(super) const PAIRS: &[(&str, &str, bool)] = &[
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
    // First-seen values: row_number() = 1 per key and value, in time order.
    (
        "event:user_login | first_seen country by actor.id | fields id",
        "SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY actor_id, country ORDER BY time, id) AS rn FROM ev WHERE lower(action) = 'user_login' AND actor_id IS NOT NULL AND country IS NOT NULL) WHERE rn = 1",
        false,
    ),
    (
        "event:user_login since 7d | first_seen country by actor.id after 30d | count",
        "SELECT count(*) FROM (SELECT time, row_number() OVER (PARTITION BY actor_id, country ORDER BY time, id) AS rn FROM ev WHERE lower(action) = 'user_login' AND actor_id IS NOT NULL AND country IS NOT NULL) WHERE rn = 1 AND time >= TIMESTAMPTZ '2026-02-18 12:00:00+00' - INTERVAL 7 DAY AND time >= (SELECT min(time) FROM ev) + INTERVAL 30 DAY",
        true,
    ),
    (
        "event:user_login | first_seen country by actor.id after 30d | count",
        "SELECT count(*) FROM (SELECT time, row_number() OVER (PARTITION BY actor_id, country ORDER BY time, id) AS rn FROM ev WHERE lower(action) = 'user_login' AND actor_id IS NOT NULL AND country IS NOT NULL) WHERE rn = 1 AND time >= (SELECT min(time) FROM ev) + INTERVAL 30 DAY",
        true,
    ),
    (
        "| first_seen ip, country by actor | count by country | sort -count, country | head 5",
        "SELECT country, count(*) AS c FROM (SELECT country, row_number() OVER (PARTITION BY coalesce(actor_email, actor_name, actor_id), ip, country ORDER BY time, id) AS rn FROM ev WHERE coalesce(actor_email, actor_name, actor_id) IS NOT NULL AND ip IS NOT NULL AND country IS NOT NULL) WHERE rn = 1 GROUP BY country ORDER BY c DESC, country LIMIT 5",
        true,
    ),
    // A sequence, by its definition (see benches/sequence.py).
    (
        "| sequence by actor.id within 1h [event:user_granted_role] [event ~ \"*_deleted\"] until [event:user_logout] | count",
        "WITH c AS (SELECT actor_id AS k, time, id, action = 'user_granted_role' AS s0, action LIKE '%\\_deleted' ESCAPE '\\' AS s1, action = 'user_logout' AS u FROM ev WHERE actor_id IS NOT NULL AND action IN ('user_granted_role', 'user_logout') OR actor_id IS NOT NULL AND action LIKE '%\\_deleted' ESCAPE '\\'), \
         n AS (SELECT *, s0 AND NOT u AS st, s1 AND NOT u AS en, row_number() OVER w AS rn, sum(CASE WHEN s1 AND NOT u THEN 1 ELSE 0 END) OVER w AS ns1, sum(CASE WHEN u THEN 1 ELSE 0 END) OVER w AS nu FROM c WINDOW w AS (PARTITION BY k ORDER BY time, id ROWS UNBOUNDED PRECEDING)), \
         m AS (SELECT *, last_value(CASE WHEN st THEN rn END IGNORE NULLS) OVER p AS a_rn, last_value(CASE WHEN st THEN time END IGNORE NULLS) OVER p AS a_time, last_value(CASE WHEN st THEN ns1 END IGNORE NULLS) OVER p AS a_ns1, last_value(CASE WHEN st THEN nu END IGNORE NULLS) OVER p AS a_nu FROM n WINDOW p AS (PARTITION BY k ORDER BY time, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)) \
         SELECT count(*) FROM m WHERE en AND a_rn IS NOT NULL AND time - a_time <= INTERVAL 1 HOUR AND ns1 - 1 = a_ns1 AND nu = a_nu",
        true,
    ),
];

/// One CSV line as fields (quotes as auditq writes them).
pub(super) fn csv_fields(line: &str) -> Vec<String> {
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
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn auditq_agrees_with_duckdb() {
    assert!(PAIRS.len() >= 25);
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("archive");
    let events = dir.path().join("events.ndjson");
    super::generate_to(&events, 100000, 60, NOW, 5);
    super::import(&a, &events);
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

/// The SQL `explain` prints for every golden query, run by DuckDB over the golden
/// archive's live files, gives auditq's rows, unless `explain` says it is approximate
/// (it calls auditq's own functions) or has no SQL form. Prints how many of each.
#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn explained_sql_gives_auditqs_rows_in_duckdb() {
    use super::query::{NOW as GOLDEN_NOW, archive, cases, golden};
    let text = std::fs::read_to_string(golden("queries.txt")).unwrap();
    let mut portable: Vec<(String, String, Vec<Vec<String>>)> = Vec::new();
    let (mut approximate, mut no_sql) = (Vec::new(), Vec::new());
    for (q, expected) in cases(&text) {
        if expected.starts_with("error") {
            continue;
        }
        let r = ok(auditq(archive()).args(["explain", "--now", GOLDEN_NOW, "--", &q]));
        let sql = r.stdout.split("\nsql:\n").nth(1).unwrap().trim().to_owned();
        if sql.starts_with("(no SQL form") || sql.starts_with("(no faithful SQL form") {
            no_sql.push(q);
        } else if sql.contains("-- approximate outside auditq") {
            approximate.push(q);
        } else {
            let rows = expected.lines().skip(1).map(csv_fields).collect();
            portable.push((q, sql, rows));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let qfile = dir.path().join("sql.json");
    let sqls: Vec<&str> = portable.iter().map(|p| p.1.as_str()).collect();
    std::fs::write(&qfile, serde_json::to_string(&sqls).unwrap()).unwrap();
    let out = python_script("duckdb_sql.py", &[&archive().join("events"), &qfile]);
    let duck: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    let mut failures = Vec::new();
    for ((q, sql, mut want), got) in portable.iter().cloned().zip(duck) {
        let Some(rows) = got["rows"].as_array() else {
            failures.push(format!("{q}\n  sql: {sql}\n  duckdb: {}", got["error"]));
            continue;
        };
        let mut rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect()
            })
            .collect();
        // `values(f)` is a set: its order is the engine's.
        if q.contains("values(") {
            for r in rows.iter_mut().chain(want.iter_mut()) {
                for cell in r.iter_mut() {
                    if let Ok(serde_json::Value::Array(mut a)) = serde_json::from_str(cell) {
                        a.sort_by_key(|v| v.to_string());
                        *cell = serde_json::Value::Array(a).to_string();
                    }
                }
            }
        }
        rows.sort();
        want.sort();
        if rows != want {
            failures.push(format!(
                "{q}\n  sql: {sql}\n  auditq: {want:?}\n  duckdb: {rows:?}"
            ));
        }
    }
    eprintln!(
        "explain SQL: {} run in DuckDB with auditq's rows, {} approximate (auditq's own functions), {} without an SQL form",
        portable.len() - failures.len(),
        approximate.len(),
        no_sql.len()
    );
    assert!(portable.len() >= 40, "only {} portable", portable.len());
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        portable.len(),
        failures.join("\n")
    );
}
