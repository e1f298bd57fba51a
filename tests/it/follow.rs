//! `auditq follow`: the same matches as `query`; window alerts on a scripted sequence,
//! late events and restarts; the fake API to a webhook and a Splunk HEC receiver across
//! faults and SIGKILL.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::sync::{Fake, archived_ids};
use super::{auditq, ok, run};

const NOW: &str = "2026-11-01T00:00:00Z";

/// The ids of NDJSON lines.
fn ids_of(ndjson: &str) -> Vec<String> {
    ndjson
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["id"].as_str().expect("an id").to_owned()
        })
        .collect()
}

/// The binary with no archive (the `--archive` of [`auditq`] would make `follow` archive
/// what it reads), its data and config under `scratch`.
pub fn bare(scratch: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auditq"));
    c.env_remove("AUDITQ_ARCHIVE")
        .env("AUDITQ_CONFIG", scratch.with_extension("no-config.toml"))
        .env("XDG_DATA_HOME", scratch.with_extension("data"))
        .env("NO_COLOR", "1");
    c
}

/// `auditq follow --stdin QUERY < input`.
fn follow_stdin(scratch: &Path, query: &str, input: &Path) -> super::Run {
    let mut c = bare(scratch);
    c.args(["follow", "--stdin", "--now", NOW, "--", query])
        .stdin(std::fs::File::open(input).unwrap());
    run(&mut c)
}

#[test]
fn follow_and_query_select_the_same_events() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let events = dir.path().join("events.ndjson");
    super::generate_to(&events, 100000, 30, NOW, 3);
    super::import(&a, &events);
    let queries = [
        "event:user_login_failed",
        "action ~ \"user_*\"",
        "actor:ada*",
        "-actor:svc-* event:*delete*",
        "ip in 10.0.0.0/8",
        "ip in (\"2001:db8::/32\", 192.168.0.0/16)",
        "ip not in (172.16.0.0/12)",
        "country:Germany or country:\"United Kingdom\"",
        "country != \"United States\"",
        "has city and not has region",
        "not has ip",
        "\"admin\"",
        "event ~ /^(jira|confluence)_.*(admin|permission)/i",
        "actor.email ~ \"*@example.com\" and event:group_*",
        "context.type = groups",
        "container:site-2",
        "time >= 2026-10-20 and time < \"2026-10-25 12:00+02:00\"",
        "since 3d",
        "between 2026-10-10 and 2026-10-12 event:user_*",
        "action in (user_login, user_logout) | where country:(Germany, Japan)",
        "actor.id ~ \"712020:*\" and auth:*",
        "message ~ \"*removed*\"",
        "event:bitbucket_* -country:Australia | fields time, actor, event, ip",
    ];
    let mut nonempty = 0;
    for q in queries {
        let head = q.split(" | fields").next().unwrap();
        let want = ok(super::query_at(&a, NOW).args([
            "--format",
            "csv",
            "--",
            &format!("{head} | fields id"),
        ]));
        let mut want: Vec<String> = want.stdout.lines().skip(1).map(str::to_owned).collect();
        let got = follow_stdin(&a, q, &events);
        assert_eq!(got.code, 0, "{q}: {}", got.stderr);
        if q == queries[0] {
            // The literal prefilter skipped lines unparsed, and the matches still agree.
            assert!(got.stderr.contains("skipped unparsed"), "{}", got.stderr);
        }
        let mut got = ids_of(&got.stdout);
        // follow keeps arrival order; query sorts by time: compare as sets (no repeats).
        want.sort();
        got.sort();
        assert_eq!(
            got.len(),
            want.len(),
            "{q}: follow {} vs query {}",
            got.len(),
            want.len()
        );
        assert_eq!(got, want, "{q}");
        nonempty += usize::from(!got.is_empty());
    }
    assert!(nonempty >= 20, "only {nonempty} queries matched anything");
}

/// An event of the scripted sequences: `actor` did `action` at `time`, processed at
/// `processed`.
fn event(id: &str, actor: &str, time: &str, processed: &str) -> String {
    serde_json::json!({
        "id": id,
        "type": "events",
        "attributes": {
            "time": time,
            "processedAt": processed,
            "action": "user_login_failed",
            "actor": {"id": format!("id-{actor}"), "name": actor, "email": format!("{actor}@example.com")},
            "location": {"ip": "10.0.0.1"}
        }
    })
    .to_string()
}

/// `10:MM:SS` on the scripted day.
fn at(m: u32, s: u32) -> String {
    format!("2026-02-16T10:{m:02}:{s:02}.000Z")
}

/// The sequence, in arrival (processing) order, with the alerts it must fire for
/// `count by actor over 5m > 10`.
fn scripted() -> (Vec<String>, Vec<(String, String)>) {
    let mut lines = Vec::new();
    let mut n = 0;
    let mut add = |lines: &mut Vec<String>, actor: &str, time: String, processed: String| {
        n += 1;
        lines.push(event(&format!("ev-{n:03}"), actor, &time, &processed));
    };
    // ada: 11 failures at 10:00:00, :20, … 10:03:20 — the 11th crosses the threshold.
    for i in 0..11 {
        let t = at(i * 20 / 60, i * 20 % 60);
        add(&mut lines, "ada", t.clone(), t);
    }
    // bob: 10 in five minutes (no alert) …
    for i in 0..10 {
        let t = at(1 + i / 2, (i % 2) * 30 + 10);
        add(&mut lines, "bob", t.clone(), t);
    }
    // … dan twice, then bob's 11th: its time 10:06, processed 10:13, after dan's 10:12 —
    // out of order but inside the lateness: 11 in (10:01:00, 10:06:00], an alert.
    add(&mut lines, "dan", at(8, 0), at(8, 0));
    add(&mut lines, "dan", at(12, 0), at(12, 0));
    add(&mut lines, "bob", at(6, 0), at(13, 0));
    // cy: 10 within three minutes; an 11th comes after the watermark passed its time.
    for i in 0..10 {
        let t = at(20 + i / 4, (i % 4) * 15);
        add(&mut lines, "cy", t.clone(), t);
    }
    // ada again after a quiet spell: a new episode, a second alert.
    for i in 0..11 {
        let t = at(30 + i / 3, (i % 3) * 20);
        add(&mut lines, "ada", t.clone(), t);
    }
    // cy's 11th, time 10:21, processed 10:46: past the lateness, counted as late.
    add(&mut lines, "cy", at(21, 0), at(46, 0));
    // Later events move the watermark past every window.
    for i in 0..3 {
        let t = at(50 + i, 0);
        add(&mut lines, "dan", t.clone(), t);
    }
    let alerts = vec![
        ("ada".to_owned(), at(3, 20)),
        ("bob".to_owned(), at(6, 0)),
        ("ada".to_owned(), at(33, 20)),
    ];
    (lines, alerts)
}

fn alerts_of(stdout: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["actor"]
                    .as_str()
                    .unwrap()
                    .trim_end_matches("@example.com")
                    .to_owned(),
                v["window_end"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}

const ALERT: &str = "event:user_login_failed | count by actor over 5m > 10";

#[test]
fn window_alerts_fire_on_the_expected_windows_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, expected) = scripted();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let r = follow_stdin(&dir.path().join("a"), ALERT, &input);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(alerts_of(&r.stdout), expected, "{}", r.stdout);
    assert!(r.stderr.contains("1 late"), "{}", r.stderr);
    // Each alert carries its window and count, and an id stable across runs.
    let first: serde_json::Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["count"], 11);
    assert_eq!(first["window_start"], "2026-02-16T09:58:20.000Z");
    assert!(first["id"].as_str().unwrap().starts_with("alert-"));
    let again = follow_stdin(&dir.path().join("a"), ALERT, &input);
    assert_eq!(again.stdout, r.stdout);

    // Hopping windows: one row per key and 10-minute window with more than 5 failures.
    let r = follow_stdin(
        &dir.path().join("a"),
        "| count by actor over 10m every 10m > 5",
        &input,
    );
    let rows: Vec<(String, String)> = alerts_of(&r.stdout);
    assert_eq!(
        rows,
        vec![
            ("ada".into(), at(10, 0)),
            ("bob".into(), at(10, 0)),
            ("cy".into(), at(30, 0)),
            ("ada".into(), at(40, 0)),
        ],
        "{}",
        r.stdout
    );
}

#[test]
fn a_restart_continues_the_windows_without_alerting_again() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, expected) = scripted();
    let file = dir.path().join("events.ndjson");
    let state = dir.path().join("state");
    let a = dir.path().join("a");
    let follow = || {
        let mut c = auditq(&a);
        c.args(["follow", "--file"])
            .arg(&file)
            .arg("--state")
            .arg(&state)
            .args(["--", ALERT]);
        ok(&mut c)
    };
    // The first 16 events: ada's first burst and part of bob's.
    std::fs::write(&file, lines[..16].join("\n") + "\n").unwrap();
    let first = alerts_of(&follow().stdout);
    // The rest arrives; the second run starts where the first stopped.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    writeln!(f, "{}", lines[16..].join("\n")).unwrap();
    drop(f);
    let second = alerts_of(&follow().stdout);
    let third = follow();
    assert_eq!(third.stdout, "", "nothing new, nothing sent");
    let mut all = first.clone();
    all.extend(second.clone());
    assert_eq!(first, expected[..1].to_vec());
    assert_eq!(all, expected, "first {first:?} second {second:?}");
}

#[test]
fn refused_queries_say_why_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    std::fs::write(&input, scripted().0.join("\n")).unwrap();
    ok(auditq(&dir.path().join("a"))
        .args(["import", "--quiet"])
        .arg(&input));
    let r = follow_stdin(&dir.path().join("a"), "| count by actor", &input);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("over 5m > 10"), "{}", r.stderr);
    let r = follow_stdin(&dir.path().join("a"), "| sort -time", &input);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("needs the whole input"), "{}", r.stderr);
    // And `query` says where windows run.
    let r = run(auditq(&dir.path().join("a")).args(["query", "| count by actor over 5m > 1"]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("auditq follow"), "{}", r.stderr);
}

/// What the HTTP receivers saw.
#[derive(Default)]
struct Received {
    /// Delivered ids (each delivery once, so repeats show).
    webhook: Vec<String>,
    hec: Vec<String>,
    /// Requests answered with an error on purpose.
    refused: u32,
    bad_auth: u32,
}

/// A webhook receiver and a Splunk HEC receiver on 127.0.0.1. Every 7th request gets a
/// 503 (and is not counted as received).
struct Receivers {
    url: String,
    seen: Arc<Mutex<Received>>,
    rt: tokio::runtime::Runtime,
}

const HEC_TOKEN: &str = "hec-canary-token-5d1f";

impl Receivers {
    fn start() -> Receivers {
        use axum::routing::post;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let seen = Arc::new(Mutex::new(Received::default()));
        let count = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (s1, c1) = (seen.clone(), count.clone());
        let (s2, c2) = (seen.clone(), count.clone());
        let app = axum::Router::new()
            .route(
                "/hook/secret-path",
                post(move |body: String| {
                    let (seen, count) = (s1.clone(), c1.clone());
                    async move {
                        if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 7 == 6 {
                            seen.lock().unwrap().refused += 1;
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        let items: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
                        let mut s = seen.lock().unwrap();
                        for v in items {
                            s.webhook.push(v["id"].as_str().unwrap().to_owned());
                        }
                        axum::http::StatusCode::OK
                    }
                }),
            )
            .route(
                "/services/collector/event",
                post(move |headers: axum::http::HeaderMap, body: String| {
                    let (seen, count) = (s2.clone(), c2.clone());
                    async move {
                        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                        if auth != Some(&format!("Splunk {HEC_TOKEN}")) {
                            seen.lock().unwrap().bad_auth += 1;
                            return axum::http::StatusCode::FORBIDDEN;
                        }
                        if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 7 == 6 {
                            seen.lock().unwrap().refused += 1;
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        let mut s = seen.lock().unwrap();
                        for v in serde_json::Deserializer::from_str(&body)
                            .into_iter::<serde_json::Value>()
                        {
                            let v = v.unwrap();
                            // The Atlassian id, for de-duplication, in `fields` and in the event.
                            let id = v["fields"]["id"].as_str().unwrap().to_owned();
                            assert_eq!(v["event"]["id"].as_str(), Some(id.as_str()));
                            assert!(v["time"].as_f64().is_some());
                            s.hec.push(id);
                        }
                        axum::http::StatusCode::OK
                    }
                }),
            );
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(async move { axum::serve(listener, app).await });
        Receivers { url, seen, rt }
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        let _ = &self.rt;
    }
}

fn ids_matching(archive: &Path, query: &str) -> BTreeSet<String> {
    let r = ok(auditq(archive).args([
        "query",
        "--format",
        "csv",
        "--",
        &format!("{query} | fields id"),
    ]));
    r.stdout.lines().skip(1).map(str::to_owned).collect()
}

#[test]
fn every_match_reaches_the_webhook_and_hec_across_faults_and_sigkill() {
    // 429s, 503s, a reset and a truncated page from the API; 503s from the receivers.
    let fake = Fake::start(3_000, &["429x2@2", "503x2@6", "reset@9", "truncate@12"], "");
    let rx = Receivers::start();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let state = dir.path().join("state");
    let query = "event:user_* or event:group_*";
    let follow = || {
        let mut c = auditq(&a);
        c.env("ATLASSIAN_API_KEY", &fake.api().token)
            .env("SPLUNK_HEC_TOKEN", HEC_TOKEN)
            .args([
                "follow",
                "--org",
                &fake.api().org,
                "--api-url",
                &fake.api().url,
            ])
            .args(["--since", "30d", "--poll", "1s", "--page-size", "100"])
            .args(["--checkpoint-every", "1s", "--state"])
            .arg(&state)
            .args(["--sink", &format!("webhook:{}/hook/secret-path", rx.url)])
            .args(["--sink", &format!("splunk-hec:{}", rx.url)])
            .args(["--", query])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    };
    let wait_for = |n: usize| {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            let s = rx.seen.lock().unwrap();
            let have: BTreeSet<&String> = s.webhook.iter().collect();
            let hec: BTreeSet<&String> = s.hec.iter().collect();
            if have.len() >= n && hec.len() >= n {
                return;
            }
            drop(s);
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let stop = |mut child: std::process::Child, signal: &str| {
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let started = Instant::now();
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            !err.contains(HEC_TOKEN) && !err.contains("secret-path"),
            "{err}"
        );
        (status, started.elapsed(), err)
    };

    // Run 1: read the backlog, then SIGKILL while events are still arriving.
    let child = follow().spawn().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    fake.append(200, 30);
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, _) = stop(child, "KILL");
    assert!(!status.success());
    // What each sink had received when the run was killed (they run independently).
    let (hook_before, hec_before) = {
        let s = rx.seen.lock().unwrap();
        (s.webhook.len(), s.hec.len())
    };

    // Run 2: late events while it runs; then SIGTERM: a clean stop within 5 s.
    let child = follow().spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    fake.append(100, 120);
    fake.append(50, 0);
    std::thread::sleep(Duration::from_millis(200));
    // Wait until the archive holds everything served, then for the sinks.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if std::fs::read_to_string(state.join("checkpoint.json")).is_ok()
            && archived_ids(&a).len() == fake.api().visible_ids().len()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let expected = ids_matching(&a, query);
    wait_for(expected.len());
    let (status, took, err) = stop(child, "TERM");
    assert!(status.success(), "{err}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // The archive holds exactly what the API served, once each.
    assert_eq!(archived_ids(&a), fake.api().visible_ids());
    assert!(expected.len() > 500, "{}", expected.len());
    let s = rx.seen.lock().unwrap();
    assert!(s.refused > 0, "the receivers' 503s were exercised");
    assert_eq!(s.bad_auth, 0);
    for (name, got, before) in [
        ("webhook", &s.webhook, hook_before),
        ("hec", &s.hec, hec_before),
    ] {
        let distinct: BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(distinct, expected, "{name}: every match, and only matches");
        // Repeats only from the run that was killed (at most what was sent since its
        // last checkpoint, plus the overlap): never from the clean stop.
        let repeats = got.len() - distinct.len();
        eprintln!(
            "{name}: {} deliveries, {} distinct, {repeats} repeats; {before} deliveries before the kill; {} 503s",
            got.len(),
            distinct.len(),
            s.refused
        );
        assert!(repeats <= before, "{name}: {repeats} repeats");
    }
    let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
    for id in &s.webhook[hook_before.min(s.webhook.len())..] {
        *counts.entry(id).or_default() += 1;
    }
    assert!(counts.values().all(|&n| n <= 2));
}

#[test]
fn a_followed_file_is_read_across_rotation_and_the_sink_file_gets_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, _) = scripted();
    let log = dir.path().join("audit.ndjson");
    let out = dir.path().join("out.ndjson");
    std::fs::write(&log, lines[..20].join("\n") + "\n").unwrap();
    let mut c = bare(&dir.path().join("scratch"));
    c.args(["follow", "-F", "--file"])
        .arg(&log)
        .arg("--sink")
        .arg(format!("file:{}", out.display()))
        .args(["--checkpoint-every", "1s", "--", ""])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let lines_in = |p: &Path| std::fs::read_to_string(p).map_or(0, |s| s.lines().count());
    let wait = |n: usize| {
        let started = Instant::now();
        while lines_in(&out) < n && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let child = c.spawn().unwrap();
    wait(20);
    // A writer appends, then rotates: the old file moves away, a new one takes its name.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(f, "{}", lines[20..30].join("\n")).unwrap();
    drop(f);
    wait(30);
    std::fs::rename(&log, dir.path().join("audit.ndjson.1")).unwrap();
    std::fs::write(&log, lines[30..].join("\n") + "\n").unwrap();
    wait(lines.len());
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let done = child.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let got = ids_of(&std::fs::read_to_string(&out).unwrap());
    let want: Vec<String> = lines.iter().map(|l| ids_of(l).remove(0)).collect();
    assert_eq!(got, want, "every event once, in order");
}

#[test]
fn a_dead_sink_holds_events_back_but_not_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, scripted().0.join("\n") + "\n").unwrap();
    // A port nobody listens on: every POST is refused, and retried.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = bare(&dir.path().join("scratch"));
    c.args(["follow", "--stdin", "--state"])
        .arg(dir.path().join("state"))
        .args([
            "--sink",
            &format!("webhook:http://127.0.0.1:{port}/hook?token=canary-77"),
        ])
        .args(["--", "event:user_login_failed"])
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let sent = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("could not connect"), "{err}");
    assert!(err.contains("sent again on the next run"), "{err}");
    assert!(
        !err.contains("canary-77") && !err.contains("/hook"),
        "{err}"
    );
    // Nothing was delivered, so no checkpoint moved past it.
    assert!(!dir.path().join("state/checkpoint.json").exists());
}

#[test]
fn a_refused_event_goes_to_the_dead_letter_file_and_the_rest_is_delivered() {
    use axum::routing::post;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let got = Arc::new(Mutex::new(Vec::<String>::new()));
    let g = got.clone();
    // Refuses (400) any batch holding ev-005; takes every other.
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: String| {
            let got = g.clone();
            async move {
                let items: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
                if items.iter().any(|v| v["id"] == "ev-005") {
                    return (axum::http::StatusCode::BAD_REQUEST, "bad field: actor");
                }
                let mut g = got.lock().unwrap();
                g.extend(items.iter().map(|v| v["id"].as_str().unwrap().to_owned()));
                (axum::http::StatusCode::OK, "")
            }
        }),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let (lines, _) = scripted();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let state = dir.path().join("state");
    let mut c = bare(&dir.path().join("scratch"));
    c.args(["follow", "--stdin", "--state"])
        .arg(&state)
        .args(["--sink", &format!("webhook:{url}"), "--", ""])
        .stdin(std::fs::File::open(&input).unwrap());
    let r = ok(&mut c);
    assert!(r.stderr.contains("refused event ev-005"), "{}", r.stderr);
    let mut want: Vec<String> = lines.iter().map(|l| ids_of(l).remove(0)).collect();
    want.retain(|id| id != "ev-005");
    let mut delivered = got.lock().unwrap().clone();
    delivered.sort();
    want.sort();
    assert_eq!(delivered, want);
    let dead = std::fs::read_to_string(state.join("dead-letter.ndjson")).unwrap();
    let dead: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["id"], "ev-005");
    assert_eq!(dead[0]["status"], 400);
    assert_eq!(dead[0]["reason"], "bad field: actor");
    assert_eq!(dead[0]["record"]["id"], "ev-005");
    assert!(r.stderr.contains("1 refused"), "{}", r.stderr);
}
