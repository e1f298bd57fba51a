//! Crash safety: SIGKILL `auditq import` at random moments, re-run, and the archive ends
//! with exactly the input's events, each once.

use std::time::{Duration, Instant};

use super::*;

#[test]
fn import_survives_sigkill_at_random_moments() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path(), 200_000, 42);
    let a = dir.path().join("archive");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = auditq::generate::Rng::new(seed);
    eprintln!("kill moments seeded with {seed}");

    let import = || {
        let mut c = auditq(&a);
        c.args(["--quiet", "import", "--batch-size", "10000"])
            .arg(&input);
        c
    };
    let mut kills = 0;
    let mut attempts = 0;
    while kills < 10 && attempts < 40 {
        attempts += 1;
        let wait = Duration::from_millis(50 + rng.below(4000));
        let mut child = import()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while start.elapsed() < wait {
            if child.try_wait().unwrap().is_some() {
                break;
            }
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
            // It finished before the kill: start over on a fresh archive to keep killing.
            std::fs::remove_dir_all(&a).unwrap();
        }
    }
    assert!(
        kills >= 10,
        "only {kills} kills landed in {attempts} attempts"
    );
    let r = ok(&mut import());
    assert_eq!(r.stderr, "");
    let s = stats(&a);
    assert_eq!(s["events"], 200_000, "{s}");
    assert_eq!(s["distinct_ids"], 200_000, "{s}");
    ok(auditq(&a).args(["archive", "verify"]));
    // Files of commits that never happened are removed by vacuum; live data is not.
    ok(auditq(&a).args(["archive", "vacuum", "--older-than", "0s"]));
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
    let dry = ok(auditq(&a).args(["archive", "vacuum", "--older-than", "0s", "--dry-run"]));
    assert!(dry.stdout.starts_with("would delete"), "{}", dry.stdout);
    assert_eq!(on_disk(), before);
    ok(auditq(&a).args(["archive", "vacuum", "--older-than", "0s"]));
    assert_eq!(on_disk() as u64, s["files"].as_u64().unwrap());
    ok(auditq(&a).args(["archive", "verify"]));
    assert_eq!(stats(&a)["events"], 200_000);
}
