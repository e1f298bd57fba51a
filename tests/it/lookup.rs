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
    super::generate_to(&events, 50000, 30, NOW, 21);
    super::import(&a, &events);

    // The roster: every actor's e-mail (every other one upper-cased), then made-up ones.
    let emails = ok(super::query_at(&a, NOW).args([
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
    let ips =
        ok(super::query_at(&a, NOW).args(["--format", "csv", "--", "ip ~ \"*.*\" | distinct ip"]));
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

/// `follow` joins as `query` does, and reads the file again when it changes.
#[test]
fn follow_looks_up_each_event_and_rereads_a_changed_file() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("roster.csv");
    std::fs::write(
        &roster,
        "email,status\nADA@example.com,active\nben@example.com,terminated\n",
    )
    .unwrap();
    let event = |id: &str, who: &str, minute: u32| {
        let t = format!("2026-02-16T10:{minute:02}:00.000Z");
        serde_json::json!({"id": id, "type": "events", "attributes": {
            "time": t, "processedAt": t, "action": "user_login",
            "actor": {"id": format!("id-{who}"), "name": who, "email": format!("{who}@example.com")}}})
        .to_string()
    };
    let log = dir.path().join("audit.ndjson");
    let first: Vec<String> = (0..6)
        .map(|i| event(&format!("e{i}"), if i % 2 == 0 { "ada" } else { "ben" }, i))
        .collect();
    std::fs::write(&log, first.join("\n") + "\n").unwrap();
    let q = format!(
        "| lookup {} on actor.email = email fields status | where status = terminated | fields actor.email, status",
        roster.display()
    );
    // As `query` over the same events.
    let a = dir.path().join("a");
    super::import(&a, &log);
    let batch = ok(auditq(&a).args(["query", "--format", "ndjson", "--", &q]));
    assert_eq!(batch.stdout.lines().count(), 3, "{}", batch.stdout);

    let out = dir.path().join("out.ndjson");
    let mut c = super::follow::bare(&dir.path().join("scratch"));
    c.args(["follow", "-F", "--file"])
        .arg(&log)
        .arg("--sink")
        .arg(format!("file:{}", out.display()))
        .args(["--", &q])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let lines = || std::fs::read_to_string(&out).unwrap_or_default();
    let wait = |n: usize| {
        let started = Instant::now();
        while lines().lines().count() < n && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait(3);
    let ids = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(ids(&lines()), ["e1", "e3", "e5"]);
    let live: Vec<String> = lines()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("id");
            v.to_string()
        })
        .collect();
    let batch: Vec<String> = batch
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(live, batch, "the same columns and values as `query`");
    // HR terminates ada: her next events match too.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(
        &roster,
        "email,status\nada@example.com,terminated\nben@example.com,terminated\n",
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(f, "{}\n{}", event("e6", "ada", 6), event("e7", "ben", 7)).unwrap();
    drop(f);
    wait(5);
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    assert_eq!(ids(&lines()), ["e1", "e3", "e5", "e6", "e7"]);
}
