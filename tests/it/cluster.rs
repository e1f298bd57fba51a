//! Queries on a Ballista cluster (cargo feature `cluster`): a scheduler and two
//! executors as separate `auditq cluster` processes on 127.0.0.1, the archive on the
//! local S3 server. Every differential query gives the rows it gives locally.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::differential::{NOW, PAIRS};
use super::s3::S3Server;
use super::{ok, run};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Processes killed when dropped.
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(server: &S3Server, cache: &Path, args: &[String]) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auditq"));
    server.env(&mut c, cache);
    c.env("AUDITQ_CONFIG", cache.join("no-config.toml"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("auditq cluster starts")
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn queries_on_a_ballista_cluster_give_the_local_rows() {
    let server = S3Server::start();
    server.bucket("audit");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (url, local) = ("s3://audit/cluster", dir.path().join("local"));
    let events = dir.path().join("events.ndjson");
    super::generate_to(&events, 50000, 60, NOW, 5);
    ok(super::auditq(&local).arg("import").arg(&events));
    ok(server.auditq(url, &cache).arg("import").arg(&events));

    let scheduler = format!("127.0.0.1:{}", free_port());
    let mut cluster = Processes(vec![spawn(
        &server,
        &cache,
        &[
            "cluster".into(),
            "scheduler".into(),
            "--bind".into(),
            scheduler.clone(),
        ],
    )]);
    for _ in 0..2 {
        let (port, grpc) = (free_port(), free_port());
        cluster.0.push(spawn(
            &server,
            &cache,
            &[
                "cluster".into(),
                "executor".into(),
                "--scheduler".into(),
                scheduler.clone(),
                "--port".into(),
                port.to_string(),
                "--grpc-port".into(),
                grpc.to_string(),
                "--vcores".into(),
                "1".into(),
            ],
        ));
    }
    let on_cluster = |q: &str| {
        run(server.auditq(url, &cache).args([
            "--quiet",
            "query",
            "--cluster",
            &scheduler,
            "--format",
            "csv",
            "--now",
            NOW,
            "--",
            q,
        ]))
    };
    // The executors register with the scheduler within seconds.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = on_cluster("| count");
        if r.code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster did not answer: {}",
            r.stderr
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut failures = Vec::new();
    for (q, _, ordered) in PAIRS {
        // A sequence is auditq's own operator: a cluster refuses it, clearly.
        if q.contains("| sequence") {
            let r = on_cluster(q);
            assert_eq!(r.code, 2, "{q}: {}", r.stderr);
            assert!(
                r.stderr.contains("does not run on a cluster"),
                "{}",
                r.stderr
            );
            continue;
        }
        let rows = |r: super::Run| {
            assert_eq!(r.code, 0, "{q}: {}", r.stderr);
            let mut rows: Vec<String> = r.stdout.lines().map(str::to_owned).collect();
            if !ordered {
                rows.sort();
            }
            rows
        };
        let here = rows(run(super::auditq(&local)
            .args(["--quiet", "query", "--format", "csv", "--now", NOW, "--", q])));
        let there = rows(on_cluster(q));
        if here != there {
            failures.push(format!("{q}\n  cluster: {there:?}\n  local: {here:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // explain shows the stages the scheduler made.
    let r = ok(server.auditq(url, &cache).args([
        "explain",
        "--cluster",
        &scheduler,
        "| count by action",
    ]));
    assert!(r.stdout.contains("DistributedQueryExec"), "{}", r.stdout);
    // A local archive is not on storage the executors reach.
    let r = run(super::auditq(&local).args(["query", "--cluster", &scheduler, "| count"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("s3://bucket/prefix"), "{}", r.stderr);
}
