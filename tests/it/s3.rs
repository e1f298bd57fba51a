//! The S3-compatible store that object-storage tests run against: moto's server mode,
//! from the test virtualenv, on 127.0.0.1. Safe concurrent writers without a lock file
//! depend on the store refusing a second put of the same key with `If-None-Match: *`
//! (a Delta commit is the put of `_delta_log/N.json`): this is tested first, on the
//! server itself. Then every command on an `s3://` archive.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{generate, ok, run};

/// A moto server, killed when dropped.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

impl S3Server {
    pub fn start() -> S3Server {
        let python = PathBuf::from(std::env::var_os("AUDITQ_PYTHON").expect("AUDITQ_PYTHON"));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(python.with_file_name("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }
}

impl S3Server {
    /// Make the bucket `name` on the server.
    pub fn bucket(&self, name: &str) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let r = s3(
                &reqwest::Client::new(),
                reqwest::Method::PUT,
                format!("{}/{name}", self.endpoint),
            )
            .send()
            .await
            .expect("bucket");
            assert!(r.status().is_success(), "{}", r.status());
        });
    }

    /// Make the bucket `name` with Object Lock on and a default retention (compliance
    /// mode, one day): the server then refuses an upload without `Content-MD5` (or
    /// `x-amz-sdk-checksum-algorithm`), as S3 does.
    pub fn locked_bucket(&self, name: &str) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let http = reqwest::Client::new();
            let bucket = format!("{}/{name}", self.endpoint);
            let r = s3(&http, reqwest::Method::PUT, bucket.clone())
                .header("x-amz-bucket-object-lock-enabled", "true")
                .send()
                .await
                .expect("bucket");
            assert!(r.status().is_success(), "{}", r.status());
            let config = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>\
                <Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>1</Days></DefaultRetention>\
                </Rule></ObjectLockConfiguration>";
            let r = s3(
                &http,
                reqwest::Method::PUT,
                format!("{bucket}?object-lock="),
            )
            .body(config)
            .send()
            .await
            .expect("object lock configuration");
            assert!(r.status().is_success(), "{}", r.status());
            let r = s3(&http, reqwest::Method::PUT, format!("{bucket}/probe"))
                .body("no Content-MD5")
                .send()
                .await
                .expect("put");
            let why = r.text().await.unwrap_or_default();
            assert!(
                why.contains("MissingUploadObjectWithObjectLockHeaders"),
                "the locked bucket takes an upload without Content-MD5: {why}"
            );
        });
    }

    /// The Object Lock mode and retain-until date of `bucket/key`, as the server reports them.
    pub fn object_lock(&self, bucket: &str, key: &str) -> (String, String) {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let url = format!("{}/{bucket}/{key}", self.endpoint);
            let r = s3(&reqwest::Client::new(), reqwest::Method::HEAD, url)
                .send()
                .await
                .expect("head");
            assert!(r.status().is_success(), "{}", r.status());
            let header = |name: &str| {
                r.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            (
                header("x-amz-object-lock-mode"),
                header("x-amz-object-lock-retain-until-date"),
            )
        })
    }

    /// The environment that reaches this server: the standard AWS variables. The secret
    /// key is the suite's canary (moto does not check signatures): no message may hold it.
    pub fn env(&self, c: &mut Command, cache: &Path) {
        c.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", super::CANARY)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env_remove("AWS_PROFILE")
            .env("XDG_CACHE_HOME", cache);
    }

    /// `tests/python/SCRIPT ARGS…` with delta-rs reaching this server.
    fn python_output(&self, script: &str, args: &[&str], cache: &Path) -> std::process::Output {
        let python = std::env::var_os("AUDITQ_PYTHON").expect("AUDITQ_PYTHON");
        let mut py = Command::new(python);
        py.arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/python")
                .join(script),
        )
        .args(args)
        .env("AWS_ALLOW_HTTP", "true");
        self.env(&mut py, cache);
        py.output().unwrap()
    }

    /// [`S3Server::python_output`]'s stdout; it must succeed.
    pub fn python(&self, script: &str, args: &[&str], cache: &Path) -> Vec<u8> {
        let out = self.python_output(script, args, cache);
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The table at `url` read by delta-rs from Python: `{rows, distinct_ids, days, version}`.
    /// A read that aborts in delta-rs's own runtime ("terminate called without an active
    /// exception", seen on S3 about once in a hundred reads) is tried again, three times
    /// at most: it only reads.
    pub fn delta_check(&self, url: &str, cache: &Path) -> serde_json::Value {
        let table = format!("{url}/events");
        for _ in 0..2 {
            let out = self.python_output("delta_check.py", &[&table], cache);
            if out.status.success() {
                return serde_json::from_slice(&out.stdout).expect("delta_check.py prints JSON");
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("terminate called"),
                "delta_check.py: {stderr}"
            );
        }
        let out = self.python("delta_check.py", &[&table], cache);
        serde_json::from_slice(&out).expect("delta_check.py prints JSON")
    }

    /// `auditq --archive URL` against this server, caching under `cache`.
    pub fn auditq(&self, url: &str, cache: &Path) -> Command {
        let mut c = super::auditq(Path::new(url));
        self.env(&mut c, cache);
        c
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An S3 request the server routes (its credential scope names the service; moto does
/// not check the signature).
/// A server with the bucket `audit`, a temporary directory and the archive cache in it.
fn audit_bucket() -> (S3Server, tempfile::TempDir, PathBuf) {
    let server = S3Server::start();
    server.bucket("audit");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    (server, dir, cache)
}

fn s3(http: &reqwest::Client, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
    http.request(method, url).header(
        "Authorization",
        "AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=0",
    )
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn the_s3_server_refuses_a_second_conditional_put_of_a_key() {
    let server = S3Server::start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let put = reqwest::Method::PUT;
        let bucket = format!("{}/archive", server.endpoint);
        let made = s3(&http, put.clone(), bucket.clone())
            .send()
            .await
            .expect("bucket");
        assert!(made.status().is_success(), "{}", made.status());
        let key = format!("{bucket}/events/_delta_log/00000000000000000001.json");
        let first = s3(&http, put.clone(), key.clone())
            .header("If-None-Match", "*")
            .body("first writer")
            .send()
            .await
            .expect("put");
        assert!(first.status().is_success(), "{}", first.status());
        let second = s3(&http, put.clone(), key.clone())
            .header("If-None-Match", "*")
            .body("second writer")
            .send()
            .await
            .expect("put");
        assert_eq!(
            second.status().as_u16(),
            412,
            "the second put of the same key"
        );
        let kept = s3(&http, reqwest::Method::GET, key)
            .send()
            .await
            .expect("get");
        assert_eq!(kept.text().await.expect("body"), "first writer");
    });
}

/// `archive stats --json` of an S3 archive.
fn stats(server: &S3Server, url: &str, cache: &Path) -> serde_json::Value {
    let r = ok(server
        .auditq(url, cache)
        .args(["archive", "stats", "--json"]));
    serde_json::from_str(&r.stdout).expect("stats is JSON")
}

/// Its sorted ids (duplicates kept, so a duplicate shows).
fn ids(server: &S3Server, url: &str, cache: &Path) -> Vec<String> {
    let r = ok(server
        .auditq(url, cache)
        .args(["query", "--format", "csv", "--", "| fields id"]));
    let mut ids: Vec<String> = r.stdout.lines().skip(1).map(str::to_owned).collect();
    ids.sort();
    ids
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn an_archive_on_s3_takes_every_archive_command_and_python_deltalake_reads_it() {
    let (server, dir, cache) = audit_bucket();
    let url = "s3://audit/org-1";
    let input = generate(dir.path(), 200_000, 21);
    let r = ok(server
        .auditq(url, &cache)
        .args(["import", "--batch-size", "30000"])
        .arg(&input));
    assert!(r.stdout.contains("added 200000,"), "{}", r.stdout);
    // Again: nothing twice.
    let r = ok(server.auditq(url, &cache).arg("import").arg(&input));
    assert!(
        r.stdout.contains("added 0, already present 200000"),
        "{}",
        r.stdout
    );
    // A bad line goes to the quarantine beside the table, in the bucket.
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(&bad, "{\"not\": \"an event\"}\n").unwrap();
    ok(server.auditq(url, &cache).arg("import").arg(&bad));
    let s = stats(&server, url, &cache);
    assert_eq!(
        (s["events"].as_u64(), s["distinct_ids"].as_u64()),
        (Some(200_000), Some(200_000)),
        "{s}"
    );
    assert_eq!(s["quarantined_invalid"], 1, "{s}");
    assert_eq!(s["archive"], url);
    // Nothing of the archive is on the local disk but its cache, named after the table.
    let cached: Vec<_> = std::fs::read_dir(cache.join("auditq")).unwrap().collect();
    assert_eq!(cached.len(), 1, "one table's cache");
    let r = ok(server.auditq(url, &cache).args(["archive", "verify"]));
    assert!(r.stdout.starts_with("ok:"), "{}", r.stdout);
    ok(server.auditq(url, &cache).args(["archive", "compact"]));
    let s = stats(&server, url, &cache);
    assert_eq!(
        s["files"], s["days"],
        "one file per day after compaction: {s}"
    );
    let r =
        ok(server
            .auditq(url, &cache)
            .args(["archive", "vacuum", "--older-than", "0s", "--force"]));
    assert!(r.stdout.starts_with("deleted"), "{}", r.stdout);
    ok(server.auditq(url, &cache).args(["archive", "verify"]));
    // The same answers with the local cache gone.
    std::fs::remove_dir_all(&cache).unwrap();
    let s = stats(&server, url, &cache);
    assert_eq!(s["events"], 200_000);
    // Point lookups read the id bloom filters of every file from the bucket.
    let some: Vec<String> = ids(&server, url, &cache)
        .into_iter()
        .step_by(40_000)
        .collect();
    for id in &some {
        let r = ok(server.auditq(url, &cache).args([
            "query",
            "--format",
            "csv",
            "--",
            &format!("id == {id} | fields id"),
        ]));
        assert_eq!(r.stdout, format!("id\n{id}\n"));
    }
    let r = ok(server
        .auditq(url, &cache)
        .args(["explain", "event:user_login | count"]));
    assert!(r.stdout.contains("DataSourceExec"), "{}", r.stdout);
    // An independent reader: delta-rs through Python, given the server's endpoint.
    let py = server.delta_check(url, &cache);
    assert_eq!(py["rows"], 200_000, "{py}");
    assert_eq!(py["distinct_ids"], 200_000, "{py}");
    assert_eq!(py["version"], s["version"], "{py}");
}

/// A REPL session on S3 keeps the table it read between its queries (a `HEAD` of the
/// next commit instead of the log's listing and reads), and still answers from the
/// latest version: what another process archives meanwhile shows in the next query.
#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn a_repl_session_on_s3_sees_what_is_archived_between_its_queries() {
    use std::io::{BufRead, Write};
    let (server, dir, cache) = audit_bucket();
    let url = "s3://audit/repl";
    ok(server
        .auditq(url, &cache)
        .arg("import")
        .arg(generate(dir.path(), 2_000, 31)));
    let mut repl = server
        .auditq(url, &cache)
        .arg("repl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = repl.stdin.take().unwrap();
    let output = repl.stdout.take().unwrap();
    let (tx, counts) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(output)
            .lines()
            .map_while(Result::ok)
        {
            if let Ok(n) = line.trim().parse::<u64>() {
                let _ = tx.send(n);
            }
        }
    });
    writeln!(input, ".format csv").unwrap();
    let mut count = || {
        writeln!(input, "| count").unwrap();
        counts
            .recv_timeout(Duration::from_secs(60))
            .expect("a count")
    };
    assert_eq!(count(), 2_000);
    assert_eq!(count(), 2_000);
    ok(server
        .auditq(url, &cache)
        .arg("import")
        .arg(generate(dir.path(), 1_000, 32)));
    assert_eq!(count(), 3_000);
    assert_eq!(count(), 3_000);
    drop(input);
    assert!(repl.wait().unwrap().success());
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn queries_on_s3_answer_as_on_a_local_copy() {
    use super::differential::{NOW, PAIRS};
    let (server, dir, cache) = audit_bucket();
    let (url, local) = ("s3://audit/diff", dir.path().join("local"));
    let events = dir.path().join("events.ndjson");
    super::generate_to(&events, 100000, 60, NOW, 5);
    ok(super::auditq(&local).arg("import").arg(&events));
    ok(server.auditq(url, &cache).arg("import").arg(&events));
    let mut failures = Vec::new();
    for (q, _, ordered) in PAIRS {
        let query = |c: &mut Command| {
            let r = ok(c.args(["--quiet", "query", "--format", "csv", "--now", NOW, "--", q]));
            let mut rows: Vec<String> = r.stdout.lines().map(str::to_owned).collect();
            if !ordered {
                rows.sort();
            }
            rows
        };
        let (on_s3, on_disk) = (
            query(&mut server.auditq(url, &cache)),
            query(&mut super::auditq(&local)),
        );
        if on_s3 != on_disk {
            failures.push(format!("{q}\n  s3: {on_s3:?}\n  local: {on_disk:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn import_to_s3_survives_sigkill_at_random_moments() {
    let (server, dir, cache) = audit_bucket();
    let input = generate(dir.path(), 200_000, 42);
    let prefix = std::cell::Cell::new(0);
    let url = |p: u32| format!("s3://audit/kill-{p}");
    let import = |p: u32| {
        let mut c = server.auditq(&url(p), &cache);
        c.args(["--quiet", "import", "--batch-size", "10000"])
            .arg(&input);
        c
    };
    // A run that finished before its kill: a fresh archive, to keep killing.
    super::kill::kill_at_random_moments(
        3000,
        || import(prefix.get()),
        || prefix.set(prefix.get() + 1),
    );
    let prefix = prefix.get();
    let r = ok(&mut import(prefix));
    assert_eq!(r.stderr, "");
    let s = stats(&server, &url(prefix), &cache);
    assert_eq!(
        (s["events"].as_u64(), s["distinct_ids"].as_u64()),
        (Some(200_000), Some(200_000)),
        "{s}"
    );
    ok(server
        .auditq(&url(prefix), &cache)
        .args(["archive", "verify"]));
    ok(server.auditq(&url(prefix), &cache).args([
        "archive",
        "vacuum",
        "--older-than",
        "0s",
        "--force",
    ]));
    ok(server
        .auditq(&url(prefix), &cache)
        .args(["archive", "verify"]));
    assert_eq!(stats(&server, &url(prefix), &cache)["events"], 200_000);
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn two_concurrent_imports_into_one_s3_archive_store_each_event_once() {
    let (server, dir, cache) = audit_bucket();
    let all = generate(dir.path(), 200_000, 8);
    let text = std::fs::read_to_string(&all).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (first, second) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    std::fs::write(&first, lines[..150_000].join("\n")).unwrap();
    std::fs::write(&second, lines[50_000..].join("\n")).unwrap();
    for round in 0..5 {
        let url = format!("s3://audit/race-{round}");
        let spawn = |input: &Path| {
            server
                .auditq(&url, &cache)
                .args(["--quiet", "import", "--batch-size", "20000"])
                .arg(input)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(&first), spawn(&second));
        for child in [a, b] {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "round {round}: {stderr}");
        }
        let got = ids(&server, &url, &cache);
        let mut distinct = got.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 200_000, "round {round}");
        assert_eq!(got.len(), 200_000, "round {round}: an id archived twice");
        let r = ok(server.auditq(&url, &cache).args(["archive", "verify"]));
        assert!(r.stdout.starts_with("ok:"), "round {round}: {}", r.stdout);
    }
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn compaction_racing_an_import_on_s3_loses_and_repeats_nothing() {
    let (server, dir, cache) = audit_bucket();
    let url = "s3://audit/compacted";
    let first = generate(dir.path(), 60_000, 12);
    let second = generate(dir.path(), 60_000, 13);
    ok(server
        .auditq(url, &cache)
        .args(["import", "--batch-size", "5000"])
        .arg(&first));
    // Many small commits land while compaction rewrites the days the first import made.
    let import = server
        .auditq(url, &cache)
        .args(["--quiet", "import", "--batch-size", "2000"])
        .arg(&second)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..3 {
        let r = run(server.auditq(url, &cache).args(["archive", "compact"]));
        // delta-rs rebases a compaction over appends; one that lost every retry says so
        // and changes nothing.
        let lost = r.code == 1 && (r.stderr.contains("attempt") || r.stderr.contains("onflict"));
        assert!(r.code == 0 || lost, "{}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
    let out = import.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(server.auditq(url, &cache).args(["archive", "compact"]));
    let got = ids(&server, url, &cache);
    let mut distinct = got.clone();
    distinct.dedup();
    assert_eq!(got.len(), 120_000, "no event lost or stored twice");
    assert_eq!(distinct.len(), 120_000);
    let r = ok(server.auditq(url, &cache).args(["archive", "verify"]));
    assert!(r.stdout.starts_with("ok:"), "{}", r.stdout);
    let s = stats(&server, url, &cache);
    assert_eq!(s["files"], s["days"], "{s}");
}

/// A writer that merges small files as it commits and `archive compact`, racing on one
/// S3 archive (where no lock keeps them apart), each SIGKILLed at random moments and
/// started again: the archive ends with every event once, and verifies.
#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn a_merging_writer_and_compaction_killed_at_random_moments_on_s3_lose_and_repeat_nothing() {
    let (server, dir, cache) = audit_bucket();
    let url = "s3://audit/killed";
    let input = dir.path().join("three-days.ndjson");
    super::generate_to(&input, 12_000, 3, "2026-11-01T00:00:00Z", 21);
    let text = std::fs::read_to_string(&input).unwrap();
    let start = dir.path().join("start.ndjson");
    let first: Vec<&str> = text.lines().take(100).collect();
    std::fs::write(&start, first.join("\n") + "\n").unwrap();
    ok(server.auditq(url, &cache).arg("import").arg(&start));
    let spawn = |args: &[&str]| {
        server
            .auditq(url, &cache)
            .arg("--quiet")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill moments seeded with {seed}");
    let mut rng = auditq::generate::Rng::new(seed);
    // Each round imports the next 500 events and the 500 before them again (re-sent
    // events), in commits of 25: many small files, merged as they come.
    let lines: Vec<&str> = text.lines().collect();
    let (mut writer_kills, mut compact_kills) = (0, 0);
    for round in 0..lines.len() / 500 {
        if writer_kills >= 5 && compact_kills >= 5 {
            break;
        }
        let part = dir.path().join(format!("part-{round}.ndjson"));
        let from = (round * 500).saturating_sub(500);
        std::fs::write(&part, lines[from..(round + 1) * 500].join("\n") + "\n").unwrap();
        let part = part.to_string_lossy().into_owned();
        let mut writer = spawn(&["import", "--batch-size", "25", &part]);
        std::thread::sleep(std::time::Duration::from_millis(rng.below(800)));
        let mut compact = spawn(&["archive", "compact"]);
        let deadline = |ms| std::time::Instant::now() + std::time::Duration::from_millis(ms);
        let mut ends = [
            (
                &mut writer,
                deadline(100 + rng.below(3000)),
                &mut writer_kills,
            ),
            (
                &mut compact,
                deadline(50 + rng.below(1200)),
                &mut compact_kills,
            ),
        ];
        // Both watched at once: each is killed at its own moment if still running.
        let mut running = [true, true];
        while running.contains(&true) {
            for ((child, end, kills), on) in ends.iter_mut().zip(&mut running) {
                if !*on {
                    continue;
                }
                if child.try_wait().unwrap().is_some() {
                    *on = false;
                } else if std::time::Instant::now() >= *end {
                    child.kill().unwrap(); // SIGKILL
                    **kills += 1;
                    *on = false;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for (child, _, _) in &mut ends {
            let out = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
            let status = child.wait().unwrap();
            assert!(!out.contains("panicked"), "{out}");
            // Compaction that lost its race to the writer every time gives way, saying so.
            let gave_way = status.code() == Some(75) && out.contains("changed while compaction");
            let killed = status.code().is_none();
            assert!(status.success() || killed || gave_way, "{status:?}: {out}");
        }
    }
    assert!(
        writer_kills >= 3 && compact_kills >= 3,
        "kills: {writer_kills} writer, {compact_kills} compaction"
    );
    let r = ok(server.auditq(url, &cache).arg("import").arg(&input));
    assert!(r.stdout.contains("added "), "{}", r.stdout);
    ok(server.auditq(url, &cache).args(["archive", "compact"]));
    let got = ids(&server, url, &cache);
    let mut distinct = got.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 12_000, "an event lost");
    assert_eq!(got.len(), 12_000, "an event archived twice");
    let r = ok(server.auditq(url, &cache).args(["archive", "verify"]));
    assert!(r.stdout.starts_with("ok:"), "{}", r.stdout);
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn sync_into_an_s3_archive_is_exact_and_resumes_from_its_checkpoint() {
    let (server, _dir, cache) = audit_bucket();
    let url = "s3://audit/synced";
    let fake = super::sync::Fake::start(20_000, &[], "");
    let sync = || {
        let mut c = server.auditq(url, &cache);
        c.env("ATLASSIAN_API_KEY", &fake.api().token)
            .args([
                "sync",
                "--org",
                &fake.api().org,
                "--api-url",
                &fake.api().url,
            ])
            .args(["--since", "30d", "--page-size", "500"]);
        c
    };
    ok(&mut sync());
    assert_eq!(ids(&server, url, &cache), fake.api().visible_ids());
    let before = fake.api().requests().len();
    fake.append(50, 600);
    ok(&mut sync());
    assert_eq!(ids(&server, url, &cache), fake.api().visible_ids());
    assert!(
        fake.api().requests().len() - before <= 3,
        "the second run resumed from its checkpoint instead of reading everything again"
    );
    let r = run(server.auditq(url, &cache).args(["archive", "verify"]));
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn follow_archives_to_s3_and_the_repl_and_demo_open_it() {
    use std::io::Write;
    let (server, dir, cache) = audit_bucket();
    let input = generate(dir.path(), 3_000, 4);
    let url = "s3://audit/followed";
    let out = super::follow_stdin(
        &mut server.auditq(url, &cache),
        "event:user_login | fields id",
        &[&std::fs::read(&input).unwrap()],
        Duration::ZERO,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let matches = out.stdout.lines().count();
    assert!(matches > 0);
    assert_eq!(stats(&server, url, &cache)["events"], 3_000);
    // The REPL switches to it by URL.
    let mut repl = server
        .auditq(Path::new("unused").to_str().unwrap(), &cache)
        .arg("repl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    repl.stdin
        .take()
        .unwrap()
        .write_all(
            format!(".archive {url}\n.format csv\nevent:user_login | count\n.quit\n").as_bytes(),
        )
        .unwrap();
    let out = repl.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("\n{matches}\n")), "{text}");
    // The demo writes its archive there too.
    let r = ok(server
        .auditq("s3://audit/demo", &cache)
        .args(["demo", "--events", "2000", "--days", "5"]));
    assert!(
        r.stdout.contains("--archive s3://audit/demo"),
        "{}",
        r.stdout
    );
    assert!(stats(&server, "s3://audit/demo", &cache)["events"].as_u64() > Some(1_900));
}

/// Issue 27, item 7: 200,000 conflicting duplicates went to the quarantine on S3 one
/// object at a time (about 266 a second), with nothing said even at `-vv`.
#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn conflicting_duplicates_on_s3_are_quarantined_together_and_said() {
    let (server, dir, cache) = audit_bucket();
    let url = "s3://audit/conflicts";
    let input = generate(dir.path(), 5_000, 31);
    ok(server.auditq(url, &cache).arg("import").arg(&input));
    // The same ids with other content.
    let text = std::fs::read_to_string(&input).unwrap();
    let changed: String = text
        .lines()
        .take(3_000)
        .map(|l| format!("{},\"x\":1}}\n", &l[..l.len() - 1]))
        .collect();
    let again = dir.path().join("changed.ndjson");
    std::fs::write(&again, changed).unwrap();
    let r = ok(server
        .auditq(url, &cache)
        .args(["-v", "import"])
        .arg(&again));
    assert!(
        r.stdout.contains("conflicting duplicates 3000"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("quarantining 3000 events"),
        "{}",
        r.stderr
    );
    assert_eq!(stats(&server, url, &cache)["quarantined_conflicts"], 3000);
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn evidence_and_time_travel_on_s3_as_on_disk() {
    let server = S3Server::start();
    server.bucket("audit");
    server.locked_bucket("locked");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cache = d.join("cache");
    let url = "s3://audit/sealed";
    let (key, verifier) = super::evidence::make_key(d);
    let input = generate(d, 900, 31);
    let text = std::fs::read_to_string(&input).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for (i, part) in [&lines[..200], &lines[200..500], &lines[500..]]
        .iter()
        .enumerate()
    {
        let f = d.join(format!("part-{i}.ndjson"));
        std::fs::write(&f, part.join("\n") + "\n").unwrap();
        ok(server
            .auditq(url, &cache)
            .env("AUDITQ_SIGNING_KEY", &key)
            .args(["--no-compact", "import", "--quiet"])
            .arg(&f));
    }
    for (v, want) in [(1, "200"), (2, "500"), (3, "900")] {
        let r = ok(server.auditq(url, &cache).args([
            "query",
            "--as-of",
            &v.to_string(),
            "--format",
            "csv",
            "| count",
        ]));
        assert_eq!(r.stdout.lines().nth(1), Some(want), "version {v}");
    }
    let r = ok(server
        .auditq(url, &cache)
        .args(["archive", "verify", "--verifier-key", &verifier]));
    assert!(
        r.stdout.contains("900 leaves sealed in 3 checkpoints"),
        "{}",
        r.stdout
    );
    let id = serde_json::from_str::<serde_json::Value>(lines[333]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = ok(server.auditq(url, &cache).args(["archive", "prove", &id]));
    let proof: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(proof["tree_size"], 900);
    // Sealing again publishes the checkpoint to a bucket whose Object Lock has a default
    // retention: the upload carries the Content-MD5 it asks for, and is locked.
    let r = ok(server
        .auditq(url, &cache)
        .args(["archive", "seal", "--key"])
        .arg(&key)
        .args(["--publish", "s3://locked/checkpoints"]));
    assert!(r.stdout.contains("nothing to seal"), "{}", r.stdout);
    let listed = server.python("list_keys.py", &["locked", "checkpoints/"], &cache);
    assert_eq!(
        String::from_utf8_lossy(&listed).trim(),
        "checkpoints/00000000000000000900"
    );
    let (mode, until) = server.object_lock("locked", "checkpoints/00000000000000000900");
    assert_eq!(mode, "COMPLIANCE");
    assert!(!until.is_empty(), "no retain-until date");
    // A table of schema version 1 on S3: adoption gives its events places.
    let legacy = "s3://audit/legacy";
    server.python(
        "legacy_table.py",
        &[&format!("{url}/events"), &format!("{legacy}/events")],
        &cache,
    );
    let r = ok(server
        .auditq(legacy, &cache)
        .args(["archive", "seal", "--adopt", "--key"])
        .arg(&key));
    assert!(
        r.stdout
            .contains("adopted 900 events archived before the log: places 0..900"),
        "{}",
        r.stdout
    );
    let r =
        ok(server
            .auditq(legacy, &cache)
            .args(["archive", "verify", "--verifier-key", &verifier]));
    assert!(r.stdout.contains("900 leaves sealed"), "{}", r.stdout);
    // The archive extends the checkpoint an auditor kept.
    let trusted = d.join("trusted");
    std::fs::write(&trusted, proof["checkpoint"].as_str().unwrap()).unwrap();
    ok(server
        .auditq(url, &cache)
        .args([
            "archive",
            "verify",
            "--verifier-key",
            &verifier,
            "--trusted",
        ])
        .arg(&trusted));
}
