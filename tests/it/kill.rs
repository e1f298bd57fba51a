//! Crash safety: SIGKILL `auditq import` at random moments, re-run, and the archive ends
//! with exactly the input's events, each once.

use std::time::{Duration, Instant};

use super::*;

#[test]
fn import_survives_sigkill_at_random_moments() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), 200_000, 42);
    let a = dir.path().join("archive");
    let import = || {
        let mut c = auditq(&a);
        c.args(["--quiet", "import", "--batch-size", "10000"])
            .arg(&input);
        c
    };
    // A run that finished before its kill starts over on a fresh archive.
    kill_at_random_moments(4000, import, || std::fs::remove_dir_all(&a).unwrap());
    let r = ok(&mut import());
    assert_eq!(r.stderr, "");
    let s = stats(&a);
    assert_eq!(s["events"], 200_000, "{s}");
    assert_eq!(s["distinct_ids"], 200_000, "{s}");
    ok(auditq(&a).args(["archive", "verify"]));
    // Files of commits that never happened are removed by vacuum once they are an hour
    // old (younger, a writer might still commit them); live data is not.
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(3700);
    for f in super::archive_faults::walk_parquet(&a.join("events")) {
        let file = std::fs::File::options().write(true).open(&f).unwrap();
        file.set_modified(then).unwrap();
    }
    ok(auditq(&a).args(["archive", "vacuum", "--older-than", "0s", "--force"]));
    ok(auditq(&a).args(["archive", "verify"]));
    assert_eq!(stats(&a)["events"], 200_000);
    // Compaction leaves one file per day and the same events.
    ok(auditq(&a).args(["archive", "compact"]));
    let s = stats(&a);
    assert_eq!(
        (s["events"].as_u64(), s["distinct_ids"].as_u64()),
        (Some(200_000), Some(200_000))
    );
    assert_eq!(s["files"], s["days"], "{s}");
    ok(auditq(&a).args(["archive", "verify"]));
    // The files compaction replaced are now unreferenced: a dry run lists, vacuum deletes.
    let on_disk = || super::archive_faults::walk_parquet(&a.join("events")).len();
    let before = on_disk();
    let dry = ok(auditq(&a).args([
        "archive",
        "vacuum",
        "--older-than",
        "0s",
        "--dry-run",
        "--force",
    ]));
    assert!(dry.stdout.starts_with("would delete"), "{}", dry.stdout);
    assert_eq!(on_disk(), before);
    ok(auditq(&a).args(["archive", "vacuum", "--older-than", "0s", "--force"]));
    assert_eq!(on_disk() as u64, s["files"].as_u64().unwrap());
    ok(auditq(&a).args(["archive", "verify"]));
    assert_eq!(stats(&a)["events"], 200_000);
}

/// Start a command and SIGKILL it after a random wait (50 ms to `max_wait_ms`), again
/// and again until 10 kills landed (at most 40 tries); `finished` is called after a run
/// that ended, successfully, before its kill. Every run's stderr must be free of panics.
pub fn kill_at_random_moments(
    max_wait_ms: u64,
    mut command: impl FnMut() -> std::process::Command,
    mut finished: impl FnMut(),
) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = auditq::generate::Rng::new(seed);
    eprintln!("kill moments seeded with {seed}");
    let (mut kills, mut attempts) = (0, 0);
    while kills < 10 && attempts < 40 {
        attempts += 1;
        let wait = Duration::from_millis(50 + rng.below(max_wait_ms));
        let mut child = command()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while start.elapsed() < wait && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let status = child.wait().unwrap();
        let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
        assert!(!stderr.contains("panicked"), "{stderr}");
        if status.success() {
            finished();
        }
    }
    assert!(
        kills >= 10,
        "only {kills} kills landed in {attempts} attempts"
    );
}
