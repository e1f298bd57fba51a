//! The query language against a small hand-written archive (`tests/golden/events.ndjson`,
//! 20 events): golden results, rendered errors, output formats and exit codes.
//!
//! `tests/golden/queries.txt` and `tests/golden/errors.txt` hold each query (`> …`) and
//! what it must print. After a deliberate change, `AUDITQ_BLESS=1 cargo test --test it
//! query` rewrites them; review the diff before committing.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{auditq, ok, run};

pub const NOW: &str = "2026-02-18T12:00:00Z";

pub fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// The archive of the golden events, built once per test run.
pub fn archive() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        ok(auditq(&dir.path().join("a"))
            .arg("import")
            .arg(golden("events.ndjson")));
        dir
    })
    .path()
    .join("a")
    .leak()
}

/// `> query` blocks and their expected output.
pub fn cases(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(q) = line.strip_prefix("> ") {
            out.push((q.to_owned(), String::new()));
        } else if let Some((_, expected)) = out.last_mut() {
            expected.push_str(line);
            expected.push('\n');
        }
    }
    for (_, e) in &mut out {
        *e = e.trim_end().to_owned();
    }
    out
}

/// Run every case of `file` through `f`; compare, or rewrite the file when blessing.
fn check(file: &str, f: impl Fn(&str) -> String) {
    let path = golden(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let header: String = text
        .lines()
        .take_while(|l| !l.starts_with("> "))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut blessed = header;
    let mut failures = Vec::new();
    for (q, expected) in cases(&text) {
        let actual = f(&q).trim_end().to_owned();
        blessed.push_str(&format!("> {q}\n{actual}\n\n"));
        if actual != expected {
            failures.push(format!(
                "> {q}\n--- expected\n{expected}\n--- actual\n{actual}\n"
            ));
        }
    }
    if std::env::var_os("AUDITQ_BLESS").is_some() {
        std::fs::write(&path, blessed.trim_end().to_owned() + "\n").unwrap();
        return;
    }
    assert!(
        failures.is_empty(),
        "{} of the cases in {file} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `auditq query --now NOW [args] -- QUERY` (a query may start with `-`).
fn query_with(q: &str, args: &[&str]) -> std::process::Command {
    let mut c = auditq(archive());
    c.args(["query", "--now", NOW]).args(args).args(["--", q]);
    c
}

fn query(q: &str) -> std::process::Command {
    query_with(q, &[])
}

#[test]
fn golden_queries() {
    let text = std::fs::read_to_string(golden("queries.txt")).unwrap();
    assert!(cases(&text).len() >= 40);
    check("queries.txt", |q| {
        let r = run(&mut query_with(q, &["--format", "csv"]));
        assert_eq!(r.code, 0, "{q}\n{}", r.stderr);
        r.stdout
    });
}

#[test]
fn malformed_queries_render_a_caret_and_exit_2() {
    let text = std::fs::read_to_string(golden("errors.txt")).unwrap();
    assert!(cases(&text).len() >= 20);
    check("errors.txt", |q| {
        let r = run(&mut query(q));
        assert_eq!(r.code, 2, "{q}\n{}{}", r.stdout, r.stderr);
        assert!(r.stdout.is_empty());
        r.stderr
    });
}

#[test]
fn errors_as_json_for_scripts() {
    let r = run(&mut query_with("acter = x since 7d", &["--errors", "json"]));
    assert_eq!(r.code, 2);
    let v: serde_json::Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(v["severity"], "error");
    assert_eq!(v["code"], "E0101");
    assert_eq!(v["span"]["start"], 0);
    assert_eq!(v["span"]["end"], 5);
    assert_eq!(v["span"]["col"], 1);
    assert_eq!(v["help"][0], "did you mean `actor`?");
}

#[test]
fn formats_and_empty_results() {
    let none = "action = nothing_like_this";
    assert_eq!(
        ok(&mut query_with(none, &["--format", "csv"])).stdout,
        "time,action,actor.name,actor.email,ip,country,message,id\n"
    );
    assert_eq!(
        ok(&mut query_with(none, &["--format", "json"])).stdout,
        "[]\n"
    );
    assert_eq!(
        ok(&mut query_with(none, &["--format", "ndjson"])).stdout,
        ""
    );
    // Piped stdout without --format: CSV.
    assert!(ok(&mut query("| count")).stdout.starts_with("count\n20"));
    let r = ok(&mut query_with(
        "id == golden-e06 | fields id, time, context",
        &["--format", "json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["time"], "2026-02-11T23:59:59.999Z");
    assert_eq!(v[0]["context"][0]["name"], "Ben Jansen");
    let r = ok(&mut query_with(
        "actor:ada@example.com | count by action | sort -count, action | head 2",
        &["--format", "ndjson"],
    ));
    assert_eq!(r.stdout.lines().count(), 2);
    assert_eq!(
        r.stdout.lines().next().unwrap(),
        r#"{"action":"user_login","count":2}"#
    );
    // -o infers Parquet from the name; the file reads back.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.parquet");
    ok(&mut query_with(
        "since 30d | fields id, time",
        &["-o", out.to_str().unwrap()],
    ));
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&out).unwrap(),
        )
        .unwrap();
    assert_eq!(reader.metadata().file_metadata().num_rows(), 20);
    // --file with comments.
    let qf = dir.path().join("q.aq");
    std::fs::write(
        &qf,
        "# failed logins\nevent:user_login_failed # any actor\n| count\n",
    )
    .unwrap();
    let r = ok(super::query_at(archive(), NOW).args(["--file"]).arg(&qf));
    assert_eq!(r.stdout, "count\n4\n");
}

#[test]
fn explain_shows_plans_pruning_and_sql() {
    let r =
        ok(super::explain_at(archive(), NOW).args(["event:user_login* since 2d | count by actor"]));
    assert!(
        r.stdout
            .contains("query:\n  event ~ \"user_login*\" since 2d | stats count by actor"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("logical plan:"));
    assert!(r.stdout.contains("physical plan:"));
    // The time clause reaches the partition column.
    assert!(
        r.stdout.contains("date >= Utf8(\"2026-02-16\")"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("sql:\n  SELECT"), "{}", r.stdout);
}

#[test]
fn now_comes_from_the_flag_or_the_environment() {
    let a = ok(&mut query("today | count")).stdout;
    let b = ok(auditq(archive())
        .env("AUDITQ_NOW", NOW)
        .args(["query", "today | count"]))
    .stdout;
    assert_eq!(a, b);
    assert_eq!(a, "count\n2\n");
    let r = run(super::query_at(archive(), "yesterday-ish").args(["| count"]));
    assert_eq!(r.code, 2);
}

/// Every annotated example query runs against generated data.
#[test]
fn example_queries_run() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/queries");
    let data = tempfile::tempdir().unwrap();
    let a = data.path().join("a");
    let events = data.path().join("e.ndjson");
    super::generate_to(&events, 20000, 30, NOW, 7);
    super::import(&a, &events);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "aq") {
            let r = ok(super::query_at(&a, NOW)
                .args(["--format", "csv", "--file"])
                .arg(&path));
            assert!(
                r.stdout.lines().count() >= 2,
                "{}: no rows\n{}",
                path.display(),
                r.stdout
            );
            n += 1;
        }
    }
    assert!(n >= 10, "{n} example queries");
}

#[test]
fn warnings_name_near_actions_and_an_early_start() {
    let r = ok(&mut query(
        "actor = \"x\" and event ~ \"permission*\" since 7d | count",
    ));
    assert_eq!(r.stdout, "count\n0\n");
    assert!(
        r.stderr.contains(
            "warning[W0010]: no archived action matches `permission*` (an anchored glob)"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("actions that come close: confluence_added_space_permission"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("use `*permission*`"), "{}", r.stderr);
    let r = ok(&mut query("since 30d | count"));
    assert!(r.stderr.contains("warning[W0240]: the time range starts before the archive's first event (2026-02-10T08:00:00.000Z)"), "{}", r.stderr);
    // Inside the archive's span: silent.
    let r = ok(&mut query("event:user_login since 2d | count"));
    assert_eq!(r.stderr, "");
    // --quiet silences warnings.
    let r =
        ok(auditq(archive()).args(["--quiet", "query", "--now", NOW, "--", "event:nope | count"]));
    assert_eq!(r.stderr, "");
}

/// The SQL `explain` prints runs unchanged in a DataFusion session over the same table
/// and gives the query's answer.
#[test]
fn explained_sql_runs_and_agrees() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let archive = auditq::archive::Archive::at(archive());
    let now = auditq::event::parse_time(NOW).unwrap();
    for q in [
        "event ~ \"user_*\" since 7d | count by actor",
        "ip in 172.16.0.0/12 or context:FIN | fields id, action",
        "country != Germany | stats count, dc(ip) as ips by country",
        "\"site-admins\" on 2026-02-17 | fields id",
    ] {
        rt.block_on(async {
            let text = auditq::query::explain(&archive, q, auditq::query::Clock::utc(now), false)
                .await
                .unwrap();
            let sql = text.split("sql:\n").nth(1).unwrap().trim();
            let ctx = auditq::query::session(&archive).await.unwrap();
            let via_sql = ctx.sql(sql).await.unwrap().collect().await.unwrap();
            let direct = auditq::query::run(&archive, q, auditq::query::Clock::utc(now), false)
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            // Rows as sorted `column=value` lists: the unparser may order columns differently.
            let show = |batches: &[datafusion::arrow::array::RecordBatch]| {
                let mut rows = Vec::new();
                for b in batches {
                    for r in 0..b.num_rows() {
                        let mut cells: Vec<String> = b
                            .schema()
                            .fields()
                            .iter()
                            .zip(b.columns())
                            .map(|(f, c)| {
                                let v =
                                    datafusion::arrow::util::display::array_value_to_string(c, r)
                                        .unwrap();
                                format!("{}={v}", f.name())
                            })
                            .collect();
                        cells.sort();
                        rows.push(cells.join(" "));
                    }
                }
                rows.sort();
                rows
            };
            assert_eq!(show(&via_sql), show(&direct), "{q}\n{sql}");
            assert!(
                direct.iter().map(|b| b.num_rows()).sum::<usize>() > 0,
                "{q}"
            );
        });
    }
}

#[test]
fn a_query_on_a_missing_archive_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(auditq(&dir.path().join("none")).args(["query", "| count"]));
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("error: no archive at"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1);
}

/// Comparisons on `action` are planned from the archive's summary (its set of actions):
/// the summary follows every write, and a damaged cache is rebuilt, never trusted.
#[test]
fn action_filters_follow_new_writes_and_a_damaged_cache() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let first = dir.path().join("first.ndjson");
    let later = dir.path().join("later.ndjson");
    let event = |id: &str, action: &str, time: &str| {
        format!(
            "{{\"id\":\"{id}\",\"type\":\"events\",\"attributes\":{{\"time\":\"{time}\",\"action\":\"{action}\",\"actor\":{{\"id\":\"u1\"}}}}}}\n"
        )
    };
    std::fs::write(&first, event("s-1", "user_login", "2026-02-10T08:00:00Z")).unwrap();
    std::fs::write(
        &later,
        event("s-2", "Group_Deleted", "2026-02-10T09:00:00Z")
            + &event("s-3", "group_created", "2026-02-11T09:00:00Z"),
    )
    .unwrap();
    super::import(&a, &first);
    let count = |q: &str| ok(super::query_at(&a, NOW).args(["--format", "csv", "--", q]));
    let r = count("event ~ \"group_*\" | count");
    assert_eq!(r.stdout, "count\n0\n");
    assert!(r.stderr.contains("W0010"), "{}", r.stderr);
    assert!(a.join("cache/summary.json").is_file());
    // A second write adds a day and a file to an existing day: both are seen.
    super::import(&a, &later);
    for (q, want) in [
        ("event ~ \"group_*\" | count", "2"),
        ("event = \"GROUP_DELETED\" | count", "1"),
        ("event == \"group_deleted\" | count", "0"),
        ("event != \"user_login\" | count", "2"),
        ("event in (user_login, \"group_c*\") | count", "2"),
        ("event ~ /deleted$/i | count", "1"),
    ] {
        let r = count(q);
        assert_eq!(r.stdout, format!("count\n{want}\n"), "{q}");
    }
    assert_eq!(count("event ~ \"group_*\" | count").stderr, "");
    // A damaged cache is recomputed.
    for name in ["summary.json", "files.json"] {
        std::fs::write(a.join("cache").join(name), b"{not json").unwrap();
    }
    assert_eq!(count("event ~ \"group_*\" | count").stdout, "count\n2\n");
    let summary = std::fs::read_to_string(a.join("cache/summary.json")).unwrap();
    assert!(summary.contains("Group_Deleted"), "{summary}");
    // A read-only archive still answers (the cache cannot be written).
    std::fs::remove_dir_all(a.join("cache")).unwrap();
    std::fs::write(
        a.join("cache"),
        b"a file where the cache directory would be",
    )
    .unwrap();
    assert_eq!(count("event ~ \"group_*\" | count").stdout, "count\n2\n");
}

/// A point lookup reads only the files whose `id` bloom filter may hold the id, and
/// still finds every event.
#[test]
fn point_lookups_skip_files_by_bloom_filter_and_miss_nothing() {
    let csv = ["--format", "csv"];
    let ids = ok(&mut query_with("| fields id", &csv));
    let ids: Vec<&str> = ids.stdout.lines().skip(1).collect();
    assert_eq!(ids.len(), 20);
    for id in &ids {
        let r = ok(&mut query_with(
            &format!("id == \"{id}\" | fields id"),
            &csv,
        ));
        assert_eq!(r.stdout, format!("id\n{id}\n"));
    }
    let both = format!("id in (\"{}\", \"{}\", \"nope\") | count", ids[0], ids[19]);
    let r = ok(&mut query_with(&both, &csv));
    assert_eq!(r.stdout, "count\n2\n");
    // The golden events span several days, one file each: the lookup opens one file.
    let r = ok(auditq(archive()).args([
        "explain",
        "--analyze",
        "--now",
        NOW,
        &format!("id == \"{}\"", ids[19]),
    ]));
    let analyzed = r.stdout.split("analyzed plan:").nth(1).unwrap();
    assert!(analyzed.contains("file_groups={1 group"), "{analyzed}");
    assert!(analyzed.contains("files_opened=1,"), "{analyzed}");
    let r = ok(auditq(archive()).args(["explain", "--analyze", "--now", NOW, "id == \"nope\""]));
    let analyzed = r.stdout.split("analyzed plan:").nth(1).unwrap();
    assert!(analyzed.contains("EmptyExec"), "{analyzed}");
}

/// A query of the golden archive as CSV, from a file (an argument is limited to 128 KiB).
fn query_file(q: &str) -> super::Run {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("q.aq");
    std::fs::write(&file, q).unwrap();
    let mut c = auditq(archive());
    c.args(["query", "--now", NOW, "--format", "csv", "--file"])
        .arg(&file);
    run(&mut c)
}

/// Any number of values: `in (…)` over a text field and `or` chains of `=` on one field
/// are one set membership, planned at once; long mixed `or`/`and` chains join as
/// balanced trees. 10,000 values aborted with a stack overflow before.
#[test]
fn thousands_of_values_are_one_set_and_never_overflow() {
    let csv = |q: &str| {
        let r = query_file(q);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout
    };
    let few = csv("actor.email in (\"ADA@example.com\", \"bob@example.com\") | count");
    let many: Vec<String> = (0..10_000)
        .map(|i| format!("\"nobody{i}@example.com\""))
        .chain(["\"ADA@example.com\"".into(), "\"bob@example.com\"".into()])
        .collect();
    assert_eq!(
        csv(&format!("actor.email in ({}) | count", many.join(", "))),
        few
    );
    let ors: Vec<String> = many.iter().map(|v| format!("actor.email = {v}")).collect();
    assert_eq!(csv(&format!("{} | count", ors.join(" or "))), few);
    // The complement, with events without an email among them.
    let all = csv("| count");
    let not_few = csv("actor.email not in (\"ADA@example.com\", \"bob@example.com\") | count");
    assert_eq!(
        csv(&format!("actor.email not in ({}) | count", many.join(", "))),
        not_few
    );
    let n = |s: &str| s.lines().nth(1).unwrap().parse::<u64>().unwrap();
    assert_eq!(n(&few) + n(&not_few), n(&all));
    // Mixed conditions, thousands deep.
    let mixed: Vec<String> = (0..3_000)
        .map(|i| format!("(actor.email = \"nobody{i}@example.com\" and country != XX)"))
        .chain([
            "actor.email = \"ADA@example.com\"".into(),
            "actor.email == \"bob@example.com\"".into(),
        ])
        .collect();
    assert_eq!(csv(&format!("{} | count", mixed.join(" or "))), few);
    // Long lists of globs and of networks: one regex set, one table of networks.
    let globs: Vec<String> = (0..3_000)
        .map(|i| format!("\"nobody{i}*\""))
        .chain(["\"ADA*\"".into(), "\"bob@example.com\"".into()])
        .collect();
    assert_eq!(
        csv(&format!("actor.email in ({}) | count", globs.join(", "))),
        csv("actor.email ~ \"ada*\" or actor.email = \"bob@example.com\" | count")
    );
    assert_eq!(
        csv(&format!(
            "actor.email not in ({}) | count",
            globs.join(", ")
        )),
        csv("actor.email not in (\"ada*\", \"bob@example.com\") | count")
    );
    let nets: Vec<String> = (0..3_000)
        .map(|i| format!("192.{}.{}.0/24", i / 250, i % 250))
        .chain([
            "10.0.0.0/8".into(),
            "2001:db8::/32".into(),
            "203.0.113.8".into(),
        ])
        .collect();
    assert_eq!(
        csv(&format!("ip in ({}) | count by ip", nets.join(", "))),
        csv("ip in (10.0.0.0/8, 2001:db8::/32, 203.0.113.8) | count by ip")
    );
    assert_eq!(
        csv(&format!("ip in ({}) | count", nets.join(", "))),
        "count\n11\n"
    );
    // The summary's actions: a set of actions is the archived ones it names.
    let logins = csv("event:user_login | count");
    let actions: Vec<String> = (0..5_000)
        .map(|i| format!("no_such_action_{i}"))
        .chain(["USER_LOGIN".into()])
        .collect();
    assert_eq!(
        csv(&format!("event in ({}) | count", actions.join(", "))),
        logins
    );
}

/// A query too large for the engine is refused when compiled (exit 2, caret), not by
/// the engine at run time (exit 1, after seconds and hundreds of MB); a megabyte of
/// plain text is just a value.
#[test]
fn a_pattern_too_large_for_the_engine_is_exit_2_with_a_caret() {
    let run_file = |q: String| query_file(&q);
    for glob in ["a*".repeat(300_000), "a*".repeat(30_000)] {
        for field in ["actor.email", "container"] {
            let r = run_file(format!("{field} ~ \"*{glob}\" | count"));
            assert_eq!(r.code, 2, "{}", r.stderr);
            assert!(
                r.stderr.contains("error[E0312]: pattern too large") && r.stderr.contains('^'),
                "{}",
                r.stderr
            );
        }
    }
    // Regexes: too long, and short but compiling past the engine's limit.
    for re in ["a".repeat(100_000), "(a{1000}){1000}".to_owned()] {
        let r = run_file(format!("actor.email ~ /{re}/ | count"));
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(
            r.stderr.contains("error[E031") && r.stderr.contains('^'),
            "{}",
            r.stderr
        );
    }
    // A megabyte of free text (a case-insensitive substring of five columns).
    let r = run_file(format!("\"{}\" | count", "x".repeat(1_000_000)));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("error[E0312]"), "{}", r.stderr);
    let r = run_file(format!(
        "actor.email = \"{}\" | count",
        "x".repeat(1_000_000)
    ));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "count\n0\n"),
        "{}",
        r.stderr
    );
}
