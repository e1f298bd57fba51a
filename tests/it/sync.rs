//! `auditq sync` against the fake API on 127.0.0.1: exact archives, resume, SIGKILL,
//! rate limits, server errors, refusals, late events, poison pages, and the token.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use auditq::api::fake::{FakeApi, Fault, Options, Seen};

use super::{auditq, ok, run};

/// A fake API running on its own runtime for the length of a test.
pub struct Fake {
    api: Option<FakeApi>,
    rt: tokio::runtime::Runtime,
}

impl Fake {
    pub fn start(events: u64, faults: &[&str], token: &str) -> Fake {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let opts = Options {
            events,
            days: 20,
            seed: 11,
            token: token.to_owned(),
            rate_limit: false,
            faults: faults.iter().map(|f| Fault::parse(f).unwrap()).collect(),
            ..Default::default()
        };
        let api = rt.block_on(FakeApi::start(opts, 0)).unwrap();
        Fake { api: Some(api), rt }
    }

    pub fn api(&self) -> &FakeApi {
        self.api.as_ref().unwrap()
    }

    fn sync(&self, archive: &Path) -> Command {
        self.sync_to(archive, &self.api().org, &self.api().url)
    }

    fn sync_to(&self, archive: &Path, org: &str, url: &str) -> Command {
        let mut c = auditq(archive);
        c.env("ATLASSIAN_API_KEY", &self.api().token)
            .args(["sync", "--org", org, "--api-url", url])
            .args([
                "--since",
                "30d",
                "--page-size",
                "100",
                "--attempts",
                "3",
                "--timeout",
                "5s",
            ]);
        c
    }

    /// Append `n` events processed now, their time `late_minutes` ago.
    pub fn append(&self, n: u64, late_minutes: u64) {
        let url = format!(
            "{}/_fake/append?n={n}&late_minutes={late_minutes}",
            self.api().url
        );
        self.rt.block_on(async {
            let r = reqwest::Client::new().post(url).send().await.unwrap();
            assert!(r.status().is_success());
        });
    }

    fn requests(&self) -> Vec<Seen> {
        self.api().requests()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(api) = self.api.take() {
            api.stop();
        }
    }
}

/// The archive's ids, sorted (duplicates kept, so a duplicate shows).
pub fn archived_ids(archive: &Path) -> Vec<String> {
    if !archive.join("events").exists() {
        return Vec::new();
    }
    let r = ok(auditq(archive).args(["query", "--format", "csv", "--", "| fields id"]));
    let mut ids: Vec<String> = r.stdout.lines().skip(1).map(str::to_owned).collect();
    ids.sort();
    ids
}

#[test]
fn sync_archives_exactly_the_apis_events_and_resumes_with_late_ones() {
    let fake = Fake::start(20_000, &[], "");
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let r = ok(&mut fake.sync(&a));
    assert!(r.stdout.starts_with("synced "), "{}", r.stdout);
    let served = fake.api().visible_ids();
    assert!(served.len() > 19_900, "{}", served.len());
    assert_eq!(archived_ids(&a), served);
    // 100 per page: about 200 pages, one request each.
    let first_run = fake.requests().len();
    assert!((200..=202).contains(&first_run), "{first_run} requests");
    // Late events: processed now, their time 10 hours ago, in a day already synced.
    fake.append(50, 600);
    let r = ok(&mut fake.sync(&a));
    assert!(r.stdout.starts_with("synced 50 new events"), "{}", r.stdout);
    assert_eq!(archived_ids(&a), fake.api().visible_ids());
    // The second run read only the overlap and the new events, not everything again.
    assert!(
        fake.requests().len() - first_run <= 3,
        "{}",
        fake.requests().len()
    );
    // Nothing new: nothing added.
    let r = ok(&mut fake.sync(&a));
    assert!(r.stdout.starts_with("synced 0 new events"), "{}", r.stdout);
    ok(auditq(&a).args(["archive", "verify"]));
}

/// Run `sync` (made by `sync`) and SIGKILL it after 20 ms plus a random wait below
/// `max_wait_ms`, again and again until `kills` kills landed (at most five tries per
/// kill); a run that finished first gets 2,000 more events from the API for the next.
/// No run may panic.
fn kill_syncs(fake: &Fake, kills: u32, seed: u64, max_wait_ms: u64, sync: impl Fn() -> Command) {
    let mut rng = auditq::generate::Rng::new(seed);
    let (mut landed, mut attempts) = (0, 0);
    while landed < kills && attempts < kills * 5 {
        attempts += 1;
        let mut child = sync()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20 + rng.below(max_wait_ms)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            landed += 1;
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        if out.status.success() {
            // Finished before the kill: more events, so the next run has work to do.
            fake.append(2_000, 30);
        }
    }
    assert!(
        landed >= kills,
        "only {landed} kills in {attempts} attempts"
    );
}

#[test]
fn sync_survives_sigkill_at_random_moments() {
    let kills_wanted: u32 = std::env::var("AUDITQ_SYNC_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let fake = Fake::start(20_000, &[], "");
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    kill_syncs(&fake, kills_wanted, 5, 600, || {
        let mut c = fake.sync(&a);
        c.args(["--commit-pages", "3", "--quiet"]);
        c
    });
    ok(&mut fake.sync(&a));
    let ids = archived_ids(&a);
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "duplicates in the archive");
    assert_eq!(ids, fake.api().visible_ids());
    ok(auditq(&a).args(["archive", "verify"]));
}

/// Issue 29: with a signing key configured, `sync` seals after each commit; killed at
/// random (between a commit and its seal too) and run again, it ends with a checkpoint
/// that verifies and covers exactly the archived events.
#[test]
fn sync_with_a_signing_key_killed_at_random_ends_sealed_over_exactly_its_events() {
    let fake = Fake::start(12_000, &[], "");
    let dir = tempfile::tempdir().unwrap();
    let (key, verifier) = super::evidence::make_key(dir.path());
    let a = dir.path().join("a");
    kill_syncs(&fake, 10, 29, 500, || {
        let mut c = fake.sync(&a);
        c.env("AUDITQ_SIGNING_KEY", &key)
            .args(["--commit-pages", "2", "--quiet"]);
        c
    });
    ok(fake.sync(&a).env("AUDITQ_SIGNING_KEY", &key));
    let ids = archived_ids(&a);
    assert_eq!(ids, fake.api().visible_ids());
    let r = ok(auditq(&a).args(["archive", "verify", "--verifier-key", &verifier]));
    assert!(
        r.stdout.contains(&format!("{} leaves sealed", ids.len()))
            && !r.stdout.contains("not sealed yet"),
        "{}",
        r.stdout
    );
}

#[test]
fn rate_limits_are_waited_out_and_server_errors_retried() {
    // Requests 2–4 get 429 with Retry-After: 1; 6–7 get 503; 9 a 500.
    let fake = Fake::start(2_000, &["429:1x3@2", "503x2@6", "500@9", "reset@11"], "");
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let r = ok(&mut fake.sync(&a));
    assert!(r.stdout.contains("retries"), "{}", r.stdout);
    assert_eq!(archived_ids(&a), fake.api().visible_ids());
    let seen = fake.requests();
    for pair in seen.windows(2) {
        if pair[0].status == 429 {
            assert!(
                pair[1].at_ms - pair[0].at_ms >= 1000,
                "request {} came {} ms after a 429 asking for 1 s",
                pair[1].n,
                pair[1].at_ms - pair[0].at_ms
            );
        }
    }
    assert_eq!(seen.iter().filter(|s| s.status == 429).count(), 3);
    assert_eq!(seen.iter().filter(|s| s.status >= 500).count(), 3);
    assert!(seen.len() >= 12, "the reset was retried: {}", seen.len());
}

#[test]
fn the_real_rate_limit_pauses_before_the_next_request() {
    // Rate limits on: 50 requests a minute on the stream. A page of 1 event per request
    // makes the 51st request wait for the next minute (the test stops it sooner).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt
        .block_on(FakeApi::start(
            Options {
                events: 60,
                days: 1,
                seed: 3,
                ..Default::default()
            },
            0,
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let mut child = auditq(&a)
        .env("ATLASSIAN_API_KEY", &api.token)
        .args([
            "sync",
            "--org",
            &api.org,
            "--api-url",
            &api.url,
            "--since",
            "2d",
        ])
        .args(["--page-size", "1", "--quiet"])
        .spawn()
        .unwrap();
    let started = Instant::now();
    while api.requests().len() < 50 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    let seen = api.requests();
    // It stopped at the advertised limit instead of provoking 429s.
    assert_eq!(
        seen.iter().filter(|s| s.status == 429).count(),
        0,
        "{seen:?}"
    );
    let minute = |s: &Seen| s.at_ms / 60_000;
    let per_minute = seen
        .iter()
        .filter(|s| minute(s) == minute(&seen[0]))
        .count();
    assert!(per_minute <= 50, "{per_minute}");
    api.stop();
}

#[test]
fn refusals_fail_at_once_with_a_clear_message() {
    let fake = Fake::start(100, &[], "");
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let cases: [(&str, &str, &str); 2] = [
        ("wrong key", "expire", "ATLASSIAN_API_KEY"),
        ("wrong org", "organization not found", "--org"),
    ];
    for (i, (case, needle, hint)) in cases.iter().enumerate() {
        let before = fake.requests().len();
        let mut c = if i == 0 {
            let mut c = fake.sync(&a);
            c.env("ATLASSIAN_API_KEY", "not-the-key");
            c
        } else {
            fake.sync_to(&a, "no-such-org", &fake.api().url)
        };
        let r = run(&mut c);
        assert_eq!(r.code, 77, "{case}: {}", r.stderr);
        assert!(
            r.stderr.contains(needle) && r.stderr.contains(hint),
            "{case}: {}",
            r.stderr
        );
        assert_eq!(
            fake.requests().len() - before,
            1,
            "{case}: one request only"
        );
    }
    let forbidden = Fake::start(100, &["403x100"], "");
    let r = run(&mut forbidden.sync(&dir.path().join("b")));
    assert_eq!(r.code, 77, "{}", r.stderr);
    assert!(r.stderr.contains("Guard"), "{}", r.stderr);
    assert_eq!(forbidden.requests().len(), 1);
}

#[test]
fn unreadable_pages_are_quarantined_and_the_checkpoint_stays() {
    for fault in ["htmlx100@3", "truncatex100@3"] {
        let fake = Fake::start(1_000, &[fault], "");
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let r = run(fake.sync(&a).args(["--commit-pages", "1"]));
        assert_eq!(r.code, 65, "{fault}: {}", r.stderr);
        assert!(
            r.stderr.contains("quarantine") || r.stderr.contains("unreadable"),
            "{}",
            r.stderr
        );
        // Pages 1 and 2 were committed; page 3 never was.
        assert_eq!(archived_ids(&a).len(), 200, "{fault}");
        let q = super::quarantined(&a, "invalid");
        assert_eq!(q.len(), 1, "{fault}: {q:?}");
        // Three attempts at page 3, then stop.
        assert_eq!(fake.requests().len(), 5, "{fault}");
        // The next run starts from the same checkpoint: it asks for page 3 again.
        let r = run(fake.sync(&a).args(["--commit-pages", "1"]));
        assert_eq!(r.code, 65);
        assert_eq!(
            archived_ids(&a).len(),
            200,
            "{fault}: nothing new committed"
        );
    }
}

/// Issue 13 (8): the config file's `org` is the organization when `--org` is not given,
/// and `-v` logs each request (path, status) and each commit, never the key.
#[test]
fn issue_13_8_the_config_org_is_used_and_v_logs_requests() {
    let fake = Fake::start(300, &[], "");
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("org = \"{}\"\n", fake.api().org)).unwrap();
    let r = ok(auditq(&a)
        .env("AUDITQ_CONFIG", &config)
        .env("ATLASSIAN_API_KEY", &fake.api().token)
        .args(["-v", "sync", "--api-url", &fake.api().url, "--since", "30d"]));
    assert_eq!(archived_ids(&a), fake.api().visible_ids());
    assert!(
        r.stderr.contains(&format!(
            "GET /admin/v1/orgs/{}/events-stream",
            fake.api().org
        )),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("committed version"), "{}", r.stderr);
    assert!(!r.stderr.contains(&fake.api().token), "{}", r.stderr);
    // Neither flag nor config: a usage error that says where an org comes from.
    let r = run(auditq(&a)
        .env("ATLASSIAN_API_KEY", &fake.api().token)
        .env_remove("ATLASSIAN_ORG_ID")
        .args(["sync", "--api-url", &fake.api().url]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("config file"), "{}", r.stderr);
}

#[test]
fn the_token_never_leaves_the_authorization_header() {
    let canary = "canary-7d1f0c2e9b8a4f6d5c3b2a1908f7e6d5";
    let fake = Fake::start(500, &["503@2", "truncate@4", "429:1@5"], canary);
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let mut outputs = Vec::new();
    let api = fake.api();
    for (org, url) in [
        (api.org.as_str(), api.url.as_str()),
        ("nope", api.url.as_str()),
        (api.org.as_str(), "http://127.0.0.1:9"),
    ] {
        let r = run(fake
            .sync_to(&a, org, url)
            .env("RUST_LOG", "trace")
            .arg("--verbose"));
        outputs.push(r.stdout);
        outputs.push(r.stderr);
    }
    // A wrong key: the message must not echo what was sent either.
    let r = run(fake
        .sync(&a)
        .env("ATLASSIAN_API_KEY", format!("{canary}-wrong")));
    outputs.push(r.stdout);
    outputs.push(r.stderr);
    for o in &outputs {
        assert!(!o.contains(canary), "token printed: {o}");
    }
    for f in walk(dir.path()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "token in {}",
            f.display()
        );
    }
    // The server saw it only in the Authorization header (as a hash), never in a URL.
    assert!(
        fake.requests()
            .iter()
            .all(|s| !s.query.contains(canary) && !s.path.contains(canary))
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn sigterm_and_sigint_stop_a_sync_cleanly_and_quickly() {
    // Request 4 stalls for 30 s: the signal arrives while a page is in flight.
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let fake = Fake::start(2_000, &["stall:30@4"], "");
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let child = fake
            .sync(&a)
            .args(["--commit-pages", "1", "--quiet"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while fake.requests().len() < 3 && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let sent = Instant::now();
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let out = child.wait_with_output().unwrap();
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "{:?}",
            sent.elapsed()
        );
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Three pages of 100 were committed, each with its checkpoint; nothing else.
        assert_eq!(archived_ids(&a).len(), 300);
        ok(auditq(&a).args(["archive", "verify"]));
    }
}

#[test]
fn demo_runs_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    let r = ok(auditq(&dir.path().join("unused"))
        .args(["demo", "--events", "3000", "--days", "10", "--dir"])
        .arg(&d));
    assert!(r.stdout.contains("synced "), "{}", r.stdout);
    assert_eq!(
        r.stdout.matches("\n# ").count(),
        auditq::demo::QUERIES.len(),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("Explore further"), "{}", r.stdout);
    assert!(d.join("events/_delta_log").is_dir());
}
