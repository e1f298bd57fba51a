//! `| lookup`: a 2,000-row roster (e-mails in mixed case) and a table of overlapping
//! networks, joined to generated events; the answers equal DuckDB's joins over the same
//! files. Needs `AUDITQ_PYTHON` (see `differential.rs`).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::differential::csv_fields;
use super::{auditq, ok, python_script, run};

const NOW: &str = "2026-11-01T00:00:00Z";

/// `a.b.c.d` as an integer, in DuckDB SQL.
fn v4(x: &str) -> String {
    (1..=4)
        .map(|i| {
            format!(
                "(CAST(split_part({x}, '.', {i}) AS BIGINT) << {})",
                32 - 8 * i
            )
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn lookups_equal_duckdb_joins() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let events = dir.path().join("events.ndjson");
    ok(auditq(&a)
        .args([
            "generate", "--events", "50000", "--days", "30", "--end", NOW, "--seed", "21", "-o",
        ])
        .arg(&events));
    ok(auditq(&a).args(["import", "--quiet"]).arg(&events));

    // The roster: every actor's e-mail (every other one upper-cased), then made-up ones.
    let emails = ok(auditq(&a).args([
        "query",
        "--now",
        NOW,
        "--format",
        "csv",
        "--",
        "has actor.email | distinct actor.email",
    ]));
    let mut roster = String::from("email,department,status,risk\n");
    let mut n = 0;
    for e in emails.stdout.lines().skip(1) {
        let e = if n % 2 == 0 {
            e.to_uppercase()
        } else {
            e.to_owned()
        };
        let status = if n % 7 == 0 { "terminated" } else { "active" };
        writeln!(roster, "{e},dept-{},{status},{}", n % 5, n % 10).unwrap();
        n += 1;
    }
    while n < 2000 {
        writeln!(roster, "nobody{n}@example.org,dept-x,active,0").unwrap();
        n += 1;
    }
    let roster_file = dir.path().join("roster.csv");
    std::fs::write(&roster_file, roster).unwrap();

    // Networks: a /8, /16s and /24s over the addresses seen, overlapping, and the v6
    // one every generated v6 address is in (the SQL matches it by its text).
    let ips = ok(auditq(&a).args([
        "query",
        "--now",
        NOW,
        "--format",
        "csv",
        "--",
        "ip ~ \"*.*\" | distinct ip",
    ]));
    let mut nets: BTreeSet<String> = BTreeSet::new();
    for (i, ip) in ips.stdout.lines().skip(1).enumerate() {
        let o: Vec<&str> = ip.split('.').collect();
        match i % 9 {
            0 => nets.insert(format!("{}.0.0.0/8", o[0])),
            1 | 2 => nets.insert(format!("{}.{}.0.0/16", o[0], o[1])),
            3 => nets.insert(format!("{}.{}.{}.0/24", o[0], o[1], o[2])),
            _ => false,
        };
    }
    let mut table = String::from("network,site\n");
    for (i, net) in nets.iter().enumerate() {
        writeln!(table, "{net},site-{}", i % 13).unwrap();
    }
    table.push_str("2001:db8::/32,site-v6\n");
    let nets_file = dir.path().join("nets.csv");
    std::fs::write(&nets_file, table).unwrap();

    let (r, t) = (roster_file.display(), nets_file.display());
    let prefix = |len: &str, x: &str| format!("({x}) >> (32 - {len})");
    let pairs: Vec<(String, String)> = vec![
        (
            format!("| lookup {r} on actor.email = email | count by department, status"),
            format!(
                "SELECT department, status, count(*) FROM ev LEFT JOIN read_csv('{r}') l \
                 ON lower(ev.actor_email) = lower(l.email) GROUP BY ALL"
            ),
        ),
        (
            format!(
                "event:user_login | lookup {r} on actor.email = email fields status, risk \
                 | where status = terminated and risk > 3 | count by actor.email"
            ),
            format!(
                "SELECT actor_email, count(*) FROM ev JOIN read_csv('{r}') l \
                 ON lower(ev.actor_email) = lower(l.email) WHERE lower(action) = 'user_login' \
                 AND l.status = 'terminated' AND l.risk > 3 GROUP BY ALL"
            ),
        ),
        (
            format!(
                "| count by actor.email | lookup {r} on actor.email = email fields department | count by department"
            ),
            format!(
                "SELECT department, count(*) FROM (SELECT DISTINCT actor_email FROM ev) e \
                 LEFT JOIN read_csv('{r}') l ON lower(e.actor_email) = lower(l.email) GROUP BY ALL"
            ),
        ),
        (
            format!("| lookup {t} on ip cidr network | count by site"),
            format!(
                "WITH n AS (SELECT site, CAST(split_part(network, '/', 2) AS INT) AS len, \
                 {} AS net FROM read_csv('{t}') WHERE network NOT LIKE '%:%'), \
                 c AS (SELECT ev.id, n.site, n.len FROM ev JOIN n ON ev.ip NOT LIKE '%:%' AND {} = {} \
                 UNION ALL SELECT id, 'site-v6', 32 FROM ev WHERE lower(ip) LIKE '2001:db8:%'), \
                 m AS (SELECT id, site, row_number() OVER (PARTITION BY id ORDER BY len DESC) AS r FROM c) \
                 SELECT m.site, count(*) FROM ev LEFT JOIN (SELECT id, site FROM m WHERE r = 1) m USING (id) \
                 GROUP BY ALL",
                v4("split_part(network, '/', 1)"),
                prefix("n.len", &v4("ev.ip")),
                prefix("n.len", "n.net"),
            ),
        ),
    ];
    let sqls: Vec<&str> = pairs.iter().map(|p| p.1.as_str()).collect();
    let qfile = dir.path().join("queries.json");
    std::fs::write(&qfile, serde_json::to_string(&sqls).unwrap()).unwrap();
    let out = python_script("duckdb_queries.py", &[&a.join("events"), &qfile]);
    let duck: Vec<Vec<Vec<String>>> = serde_json::from_slice(&out).unwrap();
    for ((q, sql), mut want) in pairs.iter().zip(duck) {
        let r = ok(auditq(&a).args(["--quiet", "query", "--format", "csv", "--now", NOW, "--", q]));
        let mut got: Vec<Vec<String>> = r.stdout.lines().skip(1).map(csv_fields).collect();
        got.sort();
        want.sort();
        assert!(got.len() > 1, "{q}: {got:?}");
        assert_eq!(got, want, "{q}\n  sql: {sql}");
    }

    // A file that is not there, a format it does not read, a column it lacks.
    let missing = run(auditq(&a).args(["query", "--", "| lookup nowhere.csv on actor.email"]));
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(missing.stderr.contains("E0430") && missing.stderr.contains("nowhere.csv"));
    let xlsx = run(auditq(&a).args(["query", "--", "| lookup roster.xlsx on actor.email"]));
    assert!(
        xlsx.stderr.contains("not a lookup format"),
        "{}",
        xlsx.stderr
    );
    let q = format!("| lookup {r} on actor.email = mail");
    let lacking = run(auditq(&a).args(["query", "--", &q]));
    assert!(
        lacking.stderr.contains("did you mean `email`"),
        "{}",
        lacking.stderr
    );
}
