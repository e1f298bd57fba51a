//! Issue 27, items 1 and 2: S3 through a fault-injecting proxy (`tests/python/
//! s3_fault_proxy.py`, in front of moto on 127.0.0.1). A reply lost after the store did
//! the work, on every write path, and `archive vacuum` racing a compaction. After each:
//! every event once (`archive stats`, and delta-rs through Python as an independent
//! reader) and `archive verify` ok.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::s3::S3Server;
use super::{generate, ok, run};

/// The fault proxy, killed when dropped.
pub struct FaultProxy {
    child: Child,
    pub endpoint: String,
    port: u16,
}

/// The PUT of a Delta commit (`_delta_log/N.json`).
pub const COMMIT: &str = r"_delta_log/\d{20}\.json$";

impl FaultProxy {
    pub fn start(server: &S3Server) -> FaultProxy {
        let python = PathBuf::from(std::env::var_os("AUDITQ_PYTHON").expect("AUDITQ_PYTHON"));
        let upstream = server
            .endpoint
            .rsplit(':')
            .next()
            .expect("a port")
            .to_owned();
        let mut child = Command::new(python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/s3_fault_proxy.py"))
            .arg(upstream)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the fault proxy");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the proxy said {line:?}"));
        FaultProxy {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
        }
    }

    /// One request to the proxy's own control path; the reply's body.
    fn control(&self, method: &str, body: &str) -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "{method} /__faults HTTP/1.1\r\nHost: proxy\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        reply
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }

    /// Replace the fault plan (see the proxy's doc).
    pub fn arm(&self, plan: serde_json::Value) {
        self.control("POST", &plan.to_string());
    }

    /// The faults injected since the plan was armed.
    pub fn injected(&self) -> Vec<serde_json::Value> {
        let log: serde_json::Value = serde_json::from_str(&self.control("GET", "")).unwrap();
        log["injected"].as_array().cloned().unwrap_or_default()
    }

    /// `auditq --archive URL` reaching the store through this proxy.
    pub fn auditq(&self, server: &S3Server, url: &str, cache: &Path) -> Command {
        let mut c = server.auditq(url, cache);
        c.env("AWS_ENDPOINT_URL", &self.endpoint);
        c
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One reply dropped after the store did the work: the `skip+1`-th request of `method`
/// whose path matches `path`.
pub fn drop_reply(method: &str, path: &str, skip: u32) -> serde_json::Value {
    serde_json::json!({"rules": [{"method": method, "path": path, "action": "drop_reply", "skip": skip, "times": 1}]})
}

/// Rows and distinct ids by delta-rs through Python (the server reached directly).
pub fn python_counts(server: &S3Server, url: &str, cache: &Path) -> (u64, u64) {
    let v = server.delta_check(url, cache);
    (
        v["rows"].as_u64().unwrap(),
        v["distinct_ids"].as_u64().unwrap(),
    )
}

/// Every one of `n` events once, by auditq and by delta-rs, and `verify` ok.
#[track_caller]
pub fn exact(server: &S3Server, url: &str, cache: &Path, n: u64, what: &str) {
    let r = ok(server
        .auditq(url, cache)
        .args(["archive", "stats", "--json"]));
    let s: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (s["events"].as_u64(), s["distinct_ids"].as_u64()),
        (Some(n), Some(n)),
        "{what}: {s}"
    );
    assert_eq!(python_counts(server, url, cache), (n, n), "{what}");
    let r = run(server.auditq(url, cache).args(["archive", "verify"]));
    assert!(
        r.code == 0 && r.stdout.starts_with("ok:"),
        "{what}: {}{}",
        r.stdout,
        r.stderr
    );
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn a_lost_reply_to_an_import_or_sync_or_follow_commit_loses_nothing() {
    let server = S3Server::start();
    server.bucket("audit");
    let proxy = FaultProxy::start(&server);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let input = generate(dir.path(), 30_000, 71);
    // import: the reply to the table's creation (version 0), then to a data commit
    // (version 3). Before, a lost reply was taken for a lost race: the batch's files
    // were deleted though the commit referenced them, and every later command failed.
    for (prefix, skip) in [("import-create", 0), ("import-append", 3)] {
        let url = format!("s3://audit/{prefix}");
        proxy.arm(drop_reply("PUT", COMMIT, skip));
        let r = ok(proxy
            .auditq(&server, &url, &cache)
            .args(["import", "--batch-size", "5000"])
            .arg(&input));
        assert!(r.stdout.contains("added 30000,"), "{prefix}: {}", r.stdout);
        assert_eq!(
            proxy.injected().len(),
            1,
            "{prefix}: the fault was injected"
        );
        exact(&server, &url, &cache, 30_000, prefix);
        // Again: nothing twice.
        let r = ok(proxy
            .auditq(&server, &url, &cache)
            .arg("import")
            .arg(&input));
        assert!(
            r.stdout.contains("added 0, already present 30000"),
            "{}",
            r.stdout
        );
    }
    // sync: the commit also carries the checkpoint.
    let fake = super::sync::Fake::start(6_000, &[], "");
    let url = "s3://audit/synced";
    let sync = || {
        let mut c = proxy.auditq(&server, url, &cache);
        c.env("ATLASSIAN_API_KEY", &fake.api().token)
            .args([
                "sync",
                "--org",
                &fake.api().org,
                "--api-url",
                &fake.api().url,
            ])
            .args([
                "--since",
                "30d",
                "--page-size",
                "500",
                "--commit-pages",
                "2",
            ]);
        c
    };
    proxy.arm(drop_reply("PUT", COMMIT, 4));
    ok(&mut sync());
    assert_eq!(proxy.injected().len(), 1);
    let n = fake.api().visible_ids().len() as u64;
    exact(&server, url, &cache, n, "sync");
    fake.append(40, 600);
    proxy.arm(drop_reply("PUT", COMMIT, 0));
    ok(&mut sync());
    exact(
        &server,
        url,
        &cache,
        fake.api().visible_ids().len() as u64,
        "sync again",
    );
    // follow --archive: a commit a second while events flow.
    let url = "s3://audit/followed";
    proxy.arm(drop_reply("PUT", COMMIT, 1));
    let small = generate(dir.path(), 3_000, 72);
    let text = std::fs::read(&small).unwrap();
    let parts: Vec<&[u8]> = text.chunks(text.len() / 3 + 1).collect();
    let out = super::follow_stdin(
        &mut proxy.auditq(&server, url, &cache),
        "event:user_login | fields id",
        &parts,
        Duration::from_millis(1500),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(proxy.injected().len(), 1);
    exact(&server, url, &cache, 3_000, "follow --archive");
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn a_lost_reply_to_a_compaction_or_repair_commit_or_a_vacuum_delete_loses_nothing() {
    let server = S3Server::start();
    server.bucket("audit");
    let proxy = FaultProxy::start(&server);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let url = "s3://audit/maintained";
    // Two imports of events of the same 30 days: two files a day.
    for seed in [73, 75] {
        let input = generate(dir.path(), 10_000, seed);
        ok(server.auditq(url, &cache).arg("import").arg(&input));
    }
    // compact: before, delta-rs retried its own commit, took it for a conflicting one and
    // failed (exit 1) though the compaction was committed.
    proxy.arm(drop_reply("PUT", COMMIT, 0));
    let r = ok(proxy
        .auditq(&server, url, &cache)
        .args(["archive", "compact"]));
    assert!(r.stdout.contains("compacted"), "{}", r.stdout);
    assert_eq!(proxy.injected().len(), 1);
    exact(&server, url, &cache, 20_000, "compact");
    let s: serde_json::Value = serde_json::from_str(
        &ok(server
            .auditq(url, &cache)
            .args(["archive", "stats", "--json"]))
        .stdout,
    )
    .unwrap();
    assert_eq!(s["files"], s["days"], "{s}");
    // repair: 300 ids archived twice by a writer without checks (delta-rs from Python).
    server.python(
        "plant_duplicates.py",
        &[&format!("{url}/events"), "300"],
        &cache,
    );
    proxy.arm(drop_reply("PUT", COMMIT, 0));
    let r = ok(proxy
        .auditq(&server, url, &cache)
        .args(["archive", "repair"]));
    assert!(
        r.stdout.contains("removed 300 later copies"),
        "{}",
        r.stdout
    );
    assert_eq!(proxy.injected().len(), 1);
    exact(&server, url, &cache, 20_000, "repair");
    // vacuum: the reply to a delete lost (the store deleted it; the retry finds none).
    proxy.arm(drop_reply("DELETE", r"\.parquet$", 0));
    let r = ok(proxy.auditq(&server, url, &cache).args([
        "archive",
        "vacuum",
        "--older-than",
        "0s",
        "--force",
    ]));
    assert!(r.stdout.starts_with("deleted"), "{}", r.stdout);
    exact(&server, url, &cache, 20_000, "vacuum");
}

/// Item 2: a vacuum with no retention, run while a compaction has written its files but
/// not committed them (its commit held back by the proxy), deleted those files (they
/// hold only ids the table has); the compaction then committed and every day pointed at
/// deleted objects. Now the compaction's lease keeps them, and unreferenced files are
/// kept an hour whatever `--older-than` says. The commit's reply is lost too.
#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn vacuum_racing_a_compaction_on_s3_deletes_nothing_the_compaction_commits() {
    let server = S3Server::start();
    server.bucket("audit");
    let proxy = FaultProxy::start(&server);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let url = "s3://audit/raced";
    let input = generate(dir.path(), 20_000, 74);
    // Without merges as it goes, so that compaction has days to rewrite.
    ok(server
        .auditq(url, &cache)
        .args(["--no-compact", "import", "--batch-size", "2500"])
        .arg(&input));
    // Without --force, no vacuum under an hour.
    let r = run(server
        .auditq(url, &cache)
        .args(["archive", "vacuum", "--older-than", "0d"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    proxy.arm(serde_json::json!({"rules": [
        {"method": "PUT", "path": COMMIT, "action": "stall_drop", "seconds": 6, "times": 1}
    ]}));
    let compact = proxy
        .auditq(&server, url, &cache)
        .args(["archive", "compact"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.injected().is_empty() {
        assert!(
            Instant::now() < deadline,
            "compaction never reached its commit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The compaction's files are written, its commit on its way: vacuum now.
    let r =
        ok(server
            .auditq(url, &cache)
            .args(["archive", "vacuum", "--older-than", "0d", "--force"]));
    assert!(
        r.stdout.contains("writers in flight") && r.stdout.contains("compact"),
        "{}",
        r.stdout
    );
    let out = compact.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exact(&server, url, &cache, 20_000, "compact ‖ vacuum");
    let r = ok(server
        .auditq(url, &cache)
        .args(["query", "--format", "csv", "--", "| count"]));
    assert_eq!(r.stdout, "count\n20000\n");
}
