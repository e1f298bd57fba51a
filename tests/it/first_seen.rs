//! `| first_seen`: `follow` reports the events `query` reports over the same events (the
//! DuckDB comparison is in `differential.rs`), learns history from the archive on its
//! first run, and reports nothing twice across a restart.

use std::collections::BTreeSet;
use std::io::Write;

use super::{auditq, ok};

const NOW: &str = "2026-11-01T00:00:00Z";
const STAGE: &str = "event:user_login | first_seen country by actor.id";

/// The `id` of each NDJSON line.
fn ids(ndjson: &str) -> Vec<String> {
    ndjson
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn time_of(line: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let t = v["attributes"]["time"].as_str().unwrap().to_owned();
    (t, v["id"].as_str().unwrap().to_owned())
}

#[test]
fn follow_learns_from_the_archive_and_reports_each_tuple_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all.ndjson");
    super::generate_to(&all, 30000, 20, NOW, 12);
    let mut lines: Vec<String> = std::fs::read_to_string(&all)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort_by_key(|l| time_of(l));
    let (third, two_thirds) = (lines.len() / 3, 2 * lines.len() / 3);
    let split = time_of(&lines[third]).0;

    // Over one archive of everything, `query` is the reference.
    let whole = dir.path().join("whole");
    std::fs::write(&all, lines.join("\n") + "\n").unwrap();
    super::import(&whole, &all);
    let reference = |since: Option<&str>| -> Vec<String> {
        let q = match since {
            Some(t) => format!(
                "event:user_login since \"{t}\" | first_seen country by actor.id | fields id"
            ),
            None => format!("{STAGE} | fields id"),
        };
        let r = ok(super::query_at(&whole, NOW).args(["--format", "ndjson", "--", &q]));
        ids(&r.stdout)
    };

    // Without an archive, `follow` learns as it goes: the same events as `query`.
    let mut c = super::follow::bare(&dir.path().join("scratch"));
    c.args([
        "follow",
        "--stdin",
        "--now",
        NOW,
        "--",
        &format!("{STAGE} | fields id"),
    ])
    .stdin(std::fs::File::open(&all).unwrap());
    let streamed = ids(&ok(&mut c).stdout);
    let everything = reference(None);
    assert!(everything.len() > 100, "{}", everything.len());
    assert_eq!(streamed, everything);

    // The first third archived; `follow` reads the rest in two runs, archiving it: its
    // first run learns the archive's tuples, its second continues from its checkpoint.
    let a = dir.path().join("a");
    let head = dir.path().join("head.ndjson");
    std::fs::write(&head, lines[..third].join("\n") + "\n").unwrap();
    super::import(&a, &head);
    let file = dir.path().join("rest.ndjson");
    std::fs::write(&file, lines[third..two_thirds].join("\n") + "\n").unwrap();
    let state = dir.path().join("state");
    let follow = || {
        let mut c = auditq(&a);
        c.env("XDG_DATA_HOME", dir.path().join("data"))
            .args(["follow", "--file"])
            .arg(&file)
            .arg("--state")
            .arg(&state)
            .args(["--", &format!("{STAGE} | fields id")]);
        ids(&ok(&mut c).stdout)
    };
    let first = follow();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    writeln!(f, "{}", lines[two_thirds..].join("\n")).unwrap();
    drop(f);
    let second = follow();
    assert!(!first.is_empty() && !second.is_empty());
    let mut got = first.clone();
    got.extend(second);
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "an event reported twice");
    assert_eq!(
        got,
        reference(Some(&split)),
        "judged against history, not only what follow read"
    );
}
