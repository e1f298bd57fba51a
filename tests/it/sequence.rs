//! `| sequence`: `query` finds exactly the sequences an independent brute-force oracle
//! finds (injected ones and near-misses among generated events), `follow` finds the same
//! over the events shuffled within the lateness, and a SIGKILL restart repeats none.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::ok;

const NOW: &str = "2026-11-01T00:00:00Z";
const WITHIN: i64 = 3_600_000_000;
const QUERY: &str = "| sequence by actor.id within 1h [event:user_granted_role] \
                     [event ~ \"*_deleted\"] until [event:user_logout]";

/// What the oracle reads of an event.
#[derive(Debug, Clone)]
struct Ev {
    id: String,
    time: i64,
    action: String,
    actor: Option<String>,
}

fn parse(line: &str) -> Ev {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let a = &v["attributes"];
    Ev {
        id: v["id"].as_str().unwrap().to_owned(),
        time: auditq::event::parse_time(a["time"].as_str().unwrap()).unwrap(),
        action: a["action"].as_str().unwrap_or("").to_owned(),
        actor: a["actor"]["id"].as_str().map(str::to_owned),
    }
}

fn first_step(e: &Ev) -> bool {
    e.action == "user_granted_role"
}
fn second_step(e: &Ev) -> bool {
    e.action.ends_with("_deleted")
}
fn cancels(e: &Ev) -> bool {
    e.action == "user_logout"
}

/// The (key, first id, second id) of every sequence, by the definition rather than by a
/// state machine: per key, in (time, id) order, a second-step event `b` completes with
/// the latest first-step event `a` before it, unless an event between them cancels, or
/// a second-step event between them completed with `a` already, or `a` is more than
/// the span before `b`. (An event matching `until` is no step.)
fn oracle(events: &[Ev]) -> BTreeSet<(String, String, String)> {
    let mut by_key: BTreeMap<&str, Vec<&Ev>> = BTreeMap::new();
    for e in events {
        if let Some(k) = &e.actor {
            by_key.entry(k).or_default().push(e);
        }
    }
    let mut out = BTreeSet::new();
    for (key, mut evs) in by_key {
        evs.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
        for (j, b) in evs.iter().enumerate() {
            if cancels(b) || !second_step(b) {
                continue;
            }
            let Some(i) = (0..j)
                .rev()
                .find(|&i| first_step(evs[i]) && !cancels(evs[i]))
            else {
                continue;
            };
            let a = evs[i];
            let between = &evs[i + 1..j];
            if b.time - a.time <= WITHIN
                && !between.iter().any(|e| cancels(e))
                && !between.iter().any(|e| second_step(e))
            {
                out.insert((key.to_owned(), a.id.clone(), b.id.clone()));
            }
        }
    }
    out
}

fn event(id: &str, actor: &str, action: &str, time: i64) -> String {
    let t = auditq::event::format_time(time);
    serde_json::json!({
        "id": id,
        "type": "events",
        "attributes": {
            "time": t,
            "processedAt": t,
            "action": action,
            "actor": {"id": actor, "name": actor, "email": format!("{actor}@example.com")},
            "location": {"ip": "10.0.0.1"}
        }
    })
    .to_string()
}

/// Injected sequences and near-misses, and the (key, first, second) ids that must be
/// found among them.
fn injected(base: i64) -> (Vec<String>, BTreeSet<(String, String, String)>) {
    let m = 60_000_000;
    let plan: &[(&str, &[(&str, i64)])] = &[
        (
            "inj-ok",
            &[("user_granted_role", 0), ("user_deleted", 30 * m)],
        ),
        // The latest start counts: 55 minutes before the deletion.
        (
            "inj-latest",
            &[
                ("user_granted_role", 0),
                ("user_granted_role", 10 * m),
                ("group_deleted", 65 * m),
            ],
        ),
        (
            "inj-order",
            &[("user_deleted", 0), ("user_granted_role", 10 * m)],
        ),
        (
            "inj-late",
            &[("user_granted_role", 0), ("user_deleted", 61 * m)],
        ),
        (
            "inj-cancelled",
            &[
                ("user_granted_role", 0),
                ("user_logout", 5 * m),
                ("user_deleted", 10 * m),
            ],
        ),
        // One sequence, not two: the grant is used once.
        (
            "inj-twice",
            &[
                ("user_granted_role", 0),
                ("user_deleted", 5 * m),
                ("group_deleted", 6 * m),
            ],
        ),
    ];
    let mut lines = Vec::new();
    let mut want = BTreeSet::new();
    for (n, (actor, steps)) in plan.iter().enumerate() {
        let t0 = base + n as i64 * 7_200_000_000;
        let ids: Vec<String> = (0..steps.len()).map(|i| format!("{actor}-{i}")).collect();
        for ((action, at), id) in steps.iter().zip(&ids) {
            lines.push(event(id, actor, action, t0 + at));
        }
        match *actor {
            "inj-ok" | "inj-twice" => {
                want.insert((actor.to_string(), ids[0].clone(), ids[1].clone()));
            }
            "inj-latest" => {
                want.insert((actor.to_string(), ids[1].clone(), ids[2].clone()));
            }
            _ => {}
        }
    }
    // A different key for each step: no sequence.
    lines.push(event(
        "inj-key-0",
        "inj-key-a",
        "user_granted_role",
        base - m,
    ));
    lines.push(event("inj-key-1", "inj-key-b", "user_deleted", base));
    (lines, want)
}

/// Generated events with injected sequences: the lines, and the injected expectation.
fn events(dir: &Path) -> (Vec<String>, BTreeSet<(String, String, String)>) {
    let bg = dir.join("bg.ndjson");
    super::generate_to(&bg, 60000, 10, NOW, 11);
    let mut lines: Vec<String> = std::fs::read_to_string(&bg)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let base = auditq::event::parse_time("2026-10-27T00:00:00Z").unwrap();
    let (inj, want) = injected(base);
    lines.extend(inj);
    (lines, want)
}

/// (key, first id, second id) of NDJSON sequence rows, and their sequence ids.
fn rows(ndjson: &str) -> (Vec<(String, String, String)>, Vec<String>) {
    let mut found = Vec::new();
    let mut ids = Vec::new();
    for l in ndjson.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let s = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("{k} in {l}"))
                .to_owned()
        };
        found.push((s("actor.id"), s("step1_id"), s("step2_id")));
        ids.push(s("sequence"));
    }
    (found, ids)
}

#[test]
fn query_and_follow_find_exactly_the_oracles_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, want) = events(dir.path());
    let all = dir.path().join("all.ndjson");
    std::fs::write(&all, lines.join("\n") + "\n").unwrap();
    let a = dir.path().join("a");
    super::import(&a, &all);

    let expected = oracle(&lines.iter().map(|l| parse(l)).collect::<Vec<_>>());
    assert!(
        expected.len() > 20,
        "the generated events hold sequences too"
    );
    let injected: BTreeSet<_> = expected
        .iter()
        .filter(|(k, _, _)| k.starts_with("inj-"))
        .cloned()
        .collect();
    assert_eq!(injected, want, "the oracle finds what was injected");

    let q = ok(super::query_at(&a, NOW).args(["--format", "ndjson", "--", QUERY]));
    let (found, ids) = rows(&q.stdout);
    assert_eq!(found.len(), expected.len(), "no sequence twice");
    assert_eq!(found.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "ids are unique"
    );

    // Stages follow a sequence.
    let counted = ok(super::query_at(&a, NOW).args([
        "--format",
        "ndjson",
        "--",
        &format!("{QUERY} | count by actor.id | sort -count, actor.id"),
    ]));
    let mut per_key: BTreeMap<String, i64> = BTreeMap::new();
    for (k, _, _) in &expected {
        *per_key.entry(k.clone()).or_default() += 1;
    }
    let got: BTreeMap<String, i64> = counted
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["actor.id"].as_str().unwrap().to_owned(),
                v["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, per_key);

    // `follow` over the same events, each arriving up to 5 minutes after events later
    // than it (the lateness is 10): the same rows, byte for byte.
    let mut shuffled: Vec<(i64, &String)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let jitter = (i as i64).wrapping_mul(2_654_435_761) % 300_000_000;
            (parse(l).time + jitter.abs(), l)
        })
        .collect();
    shuffled.sort();
    let input = dir.path().join("shuffled.ndjson");
    let body: Vec<&str> = shuffled.iter().map(|(_, l)| l.as_str()).collect();
    std::fs::write(&input, body.join("\n") + "\n").unwrap();
    let mut c = super::follow::bare(&dir.path().join("scratch"));
    c.args(["follow", "--stdin", "--now", NOW, "--", QUERY])
        .stdin(std::fs::File::open(&input).unwrap());
    let f = ok(&mut c);
    let sorted = |s: &str| s.lines().map(str::to_owned).collect::<BTreeSet<_>>();
    assert_eq!(
        f.stdout.lines().count(),
        q.stdout.lines().count(),
        "{}",
        f.stderr
    );
    assert_eq!(sorted(&f.stdout), sorted(&q.stdout));
    assert!(f.stderr.contains(" 0 late"), "{}", f.stderr);
}

#[test]
fn a_sigkilled_follow_repeats_no_sequence_after_its_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, _) = events(dir.path());
    lines.sort_by_key(|l| {
        let e = parse(l);
        (e.time, e.id)
    });
    // Events a day later move the watermark past everything.
    let end = parse(lines.last().unwrap()).time;
    for i in 0..3 {
        lines.push(event(
            &format!("tail-{i}"),
            "tail",
            "user_login",
            end + 86_400_000_000 + i,
        ));
    }
    // A sequence whose first step is read before the kill and its second after.
    let half = lines.len() / 2;
    let t = parse(&lines[half]).time;
    lines.insert(
        half,
        event("straddle-0", "inj-straddle", "user_granted_role", t),
    );
    lines.insert(
        half + 2,
        event("straddle-1", "inj-straddle", "user_deleted", t + 60_000_000),
    );
    let half = half + 1;
    let expected = oracle(&lines.iter().map(|l| parse(l)).collect::<Vec<_>>());
    let straddle = (
        "inj-straddle".to_owned(),
        "straddle-0".to_owned(),
        "straddle-1".to_owned(),
    );
    assert!(expected.contains(&straddle));
    let log = dir.path().join("audit.ndjson");
    let out = dir.path().join("out.ndjson");
    let state = dir.path().join("state");
    std::fs::write(&log, lines[..half].join("\n") + "\n").unwrap();
    let errors = dir.path().join("stderr.txt");
    let start = || {
        let mut c = super::follow::bare(&dir.path().join("scratch"));
        c.args(["follow", "-F", "--file"])
            .arg(&log)
            .arg("--state")
            .arg(&state)
            .arg("--sink")
            .arg(format!("file:{}", out.display()))
            .args(["--checkpoint-every", "1s", "--", QUERY])
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&errors)
                    .unwrap(),
            );
        c.spawn().unwrap()
    };
    let lines_in = || std::fs::read_to_string(&out).map_or(0, |s| s.lines().count());
    let checkpoint = state.join("checkpoint.json");
    // Until the output has not grown for two seconds and a checkpoint was saved after
    // it (the follow takes one within a second of sending anything).
    let settle = |least: usize| {
        let started = Instant::now();
        let mut last = (usize::MAX, Instant::now());
        while started.elapsed() < Duration::from_secs(60) {
            let n = lines_in();
            if n != last.0 {
                last = (n, Instant::now());
            }
            let saved_after = |p: &Path| {
                let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
                matches!((m(&checkpoint), m(p)), (Some(c), Some(o)) if c >= o)
            };
            if n >= least && last.1.elapsed() > Duration::from_secs(2) && saved_after(&out) {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "follow did not settle: {} lines\n{}",
            lines_in(),
            std::fs::read_to_string(&errors).unwrap_or_default()
        );
    };
    let mut first = start();
    let before = settle(1);
    Command::new("kill")
        .args(["-KILL", &first.id().to_string()])
        .status()
        .unwrap();
    first.wait().unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(f, "{}", lines[half..].join("\n")).unwrap();
    drop(f);
    let mut second = start();
    let after = settle(expected.len());
    Command::new("kill")
        .args(["-INT", &second.id().to_string()])
        .status()
        .unwrap();
    second.wait().unwrap();
    let (found, ids) = rows(&std::fs::read_to_string(&out).unwrap());
    assert!(before > 0 && after > before, "{before} then {after}");
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        ids.len(),
        "a sequence sent twice"
    );
    assert_eq!(found.into_iter().collect::<BTreeSet<_>>(), expected);
}
