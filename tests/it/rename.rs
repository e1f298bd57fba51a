//! `| rename a as b, c as d`: the stage added to show that a stage lives in one module
//! (`src/query/stage/rename.rs`). The same rows under new names in `query` (every
//! format), `explain` and its SQL, `follow`, and before a `lookup`; clear errors.

use std::path::Path;

use super::follow::bare;
use super::{explain_at, ok, query_at, run};

const NOW: &str = "2026-11-01T00:00:00Z";

fn archive(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let a = dir.join("a");
    let events = dir.join("events.ndjson");
    super::generate_to(&events, 3000, 10, NOW, 28);
    super::import(&a, &events);
    (a, events)
}

fn csv(a: &Path, q: &str) -> String {
    ok(query_at(a, NOW).args(["--format", "csv", "--", q])).stdout
}

/// The header and the rows of a CSV.
fn split(csv: &str) -> (&str, Vec<&str>) {
    let mut lines = csv.lines();
    (lines.next().unwrap_or(""), lines.collect())
}

#[test]
fn rename_gives_the_same_rows_under_new_names() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = archive(dir.path());

    // Chosen columns.
    let plain = csv(&a, "event:user_login | fields actor.email, ip");
    let renamed = csv(
        &a,
        "event:user_login | fields actor.email, ip | rename actor.email as email, ip as source_ip",
    );
    let ((h1, r1), (h2, r2)) = (split(&plain), split(&renamed));
    assert_eq!(h1, "actor.email,ip");
    assert_eq!(h2, "email,source_ip");
    assert!(r1.len() > 10, "{plain}");
    assert_eq!(r1, r2);

    // The columns shown by default: one renamed in place, the events in time order.
    let plain = csv(&a, "event:user_login");
    let renamed = csv(&a, "event:user_login | rename actor.email as email");
    let ((h1, r1), (h2, r2)) = (split(&plain), split(&renamed));
    assert_eq!(h2, h1.replace("actor.email", "email"));
    assert_eq!(r1, r2);

    // A table: its columns renamed, and the new names are the ones later stages use.
    let plain = csv(
        &a,
        "| count by actor.email, action | sort -count, actor.email | head 5",
    );
    let renamed = csv(
        &a,
        "| count by actor.email, action | rename actor.email as who, count as n | sort -n, who | head 5",
    );
    let ((h1, r1), (h2, r2)) = (split(&plain), split(&renamed));
    assert_eq!((h1, h2), ("actor.email,action,count", "who,action,n"));
    assert_eq!(r1, r2);

    // Every output format carries the new names.
    let json = ok(query_at(&a, NOW).args([
        "--format",
        "ndjson",
        "--",
        "| count by country | rename country as land",
    ]));
    let first: serde_json::Value =
        serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert!(
        first.get("land").is_some() && first.get("country").is_none(),
        "{first}"
    );
}

#[test]
fn a_renamed_column_is_what_a_lookup_matches() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = archive(dir.path());
    let emails = csv(&a, "has actor.email | distinct actor.email");
    let mut roster = String::from("email,department\n");
    for (i, e) in emails.lines().skip(1).enumerate() {
        roster.push_str(&format!("{e},dept-{}\n", i % 3));
    }
    let file = dir.path().join("roster.csv");
    std::fs::write(&file, roster).unwrap();
    let f = file.display();
    // `on email`: the file's column of that name, and now the table's.
    let by_rename = csv(
        &a,
        &format!(
            "| count by actor.email | rename actor.email as email | lookup \"{f}\" on email | count by department"
        ),
    );
    let by_column = csv(
        &a,
        &format!(
            "| count by actor.email | lookup \"{f}\" on actor.email = email | count by department"
        ),
    );
    assert_eq!(by_rename, by_column);
    assert_eq!(split(&by_rename).1.len(), 3, "{by_rename}");
}

#[test]
fn explain_shows_the_stage_and_its_sql() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = archive(dir.path());
    let r =
        ok(explain_at(&a, NOW)
            .args(["--", "| count by actor.email | rename actor.email as email"]));
    assert!(
        r.stdout
            .contains("| stats count by actor.email | rename actor.email as email"),
        "{}",
        r.stdout
    );
    let sql = r.stdout.split("sql:").nth(1).expect("a sql section");
    assert!(sql.contains("AS email"), "{sql}");
}

#[test]
fn rename_errors_name_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = archive(dir.path());
    let fails = |q: &str, code: &str, words: &str| {
        let r = run(query_at(&a, NOW).args(["--", q]));
        assert_eq!(r.code, 2, "{q}: {}", r.stderr);
        assert!(
            r.stderr.contains(code) && r.stderr.contains(words),
            "{q}:\n{}",
            r.stderr
        );
        assert!(r.stderr.contains('^'), "{q}: no caret\n{}", r.stderr);
    };
    fails(
        "| count by actor | rename actr as a",
        "E0421",
        "did you mean `actor`?",
    );
    fails(
        "| count by actor, action | rename actor as action",
        "E0407",
        "named twice",
    );
    fails(
        "| fields ip | rename country as c",
        "E0421",
        "columns here: ip",
    );
    fails("| rename contry as c", "E0101", "unknown field `contry`");
    fails("| rename ip", "E0", "`as` and the new name");
}

#[test]
fn follow_renames_each_records_columns() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    super::generate_to(&events, 500, 5, NOW, 29);
    let follow = |q: &str| {
        let mut c = bare(&dir.path().join("s"));
        c.args(["follow", "--stdin", "--now", NOW, "--", q])
            .stdin(std::fs::File::open(&events).unwrap());
        run(&mut c)
    };
    let r = follow("has ip | fields actor.email, ip | rename ip as source_ip");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() > 10, "{}", r.stdout);
    for (l, text) in lines.iter().zip(r.stdout.lines()) {
        assert!(text.starts_with("{\"id\":"), "the id first: {text}");
        let keys: Vec<&String> = l.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["actor.email", "id", "source_ip"], "{l}");
    }
    // Without `fields`: the columns `query` shows, one renamed.
    let r = follow("has ip | rename ip as source_ip");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let first: serde_json::Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    assert!(
        first.get("source_ip").is_some() && first.get("ip").is_none(),
        "{first}"
    );
    assert!(
        first.get("time").is_some() && first.get("id").is_some(),
        "{first}"
    );
    // Nothing renames a window's alerts.
    let r = follow("| count by actor over 5m > 1 | rename actor as who");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("nothing can follow"), "{}", r.stderr);
}
