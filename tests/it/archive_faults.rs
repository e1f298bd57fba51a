//! Archive faults: missing, unwritable, locked, corrupted.

use super::*;

/// Run, and expect exit `code` with one line on stderr: `error: …needle…`. Returns it.
#[track_caller]
fn one_line_failure(cmd: &mut std::process::Command, code: i32, needle: &str) -> String {
    let r = run(cmd);
    assert_eq!(r.code, code, "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got:\n{}", r.stderr);
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{}",
        lines[0]
    );
    lines[0].to_owned()
}

#[test]
fn a_missing_archive_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("nope");
    for cmd in [
        &["archive", "stats"][..],
        &["archive", "verify"],
        &["archive", "compact"],
        &["archive", "vacuum"],
    ] {
        let line = one_line_failure(auditq(&a).args(cmd), 1, "no archive at");
        assert!(line.contains("nope"), "{cmd:?}: {line}");
    }
}

#[test]
fn an_unwritable_archive_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    // A path below a regular file can never be created, whoever we run as.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    one_line_failure(
        auditq(&file.join("archive"))
            .arg("import")
            .arg(fixture("single.json")),
        1,
        "creating archive directory",
    );
    // procfs refuses new directories even to root.
    one_line_failure(
        auditq(Path::new("/proc/auditq-archive"))
            .arg("import")
            .arg(fixture("single.json")),
        1,
        "/proc/auditq-archive",
    );
    // An archive path that is a file.
    one_line_failure(
        auditq(&file).arg("import").arg(fixture("single.json")),
        1,
        "not a directory",
    );
}

#[test]
fn a_read_only_archive_directory_is_a_one_line_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("archive");
    ok(auditq(&a).arg("import").arg(fixture("single.json")));
    let set = |mode| {
        for p in [a.clone(), a.join("events"), a.join("events/_delta_log")] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    set(0o555);
    let probe = a.join("events/probe");
    let root = std::fs::write(&probe, "x").is_ok();
    if root {
        // Permission bits do not bind root; the procfs case above covers it.
        std::fs::remove_file(probe).unwrap();
    } else {
        one_line_failure(
            auditq(&a).arg("import").arg(fixture("events.ndjson")),
            1,
            "",
        );
    }
    // Reading a read-only archive works.
    ok(auditq(&a).args(["archive", "stats"]));
    set(0o755);
}

#[test]
fn a_second_writer_is_refused_with_exit_75_and_the_lock_dies_with_its_holder() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("archive");
    ok(auditq(&a).arg("import").arg(fixture("single.json")));
    let held = std::fs::OpenOptions::new()
        .write(true)
        .open(a.join("LOCK"))
        .unwrap();
    held.try_lock().unwrap();
    let locked = "locked by another auditq process";
    one_line_failure(
        auditq(&a).arg("import").arg(fixture("events.ndjson")),
        75,
        locked,
    );
    one_line_failure(auditq(&a).args(["archive", "compact"]), 75, locked);
    // Readers are not blocked.
    ok(auditq(&a).args(["archive", "stats"]));
    drop(held);
    ok(auditq(&a).arg("import").arg(fixture("events.ndjson")));
}

#[test]
fn verify_names_a_truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("archive");
    ok(auditq(&a)
        .arg("import")
        .args([fixture("page.json"), fixture("events.ndjson")]));
    let r = ok(auditq(&a).args(["archive", "verify"]));
    assert_summary(&r, "ok: ");
    let victim = walk_parquet(&a.join("events")).into_iter().next().unwrap();
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 2]).unwrap();
    let r = run(auditq(&a).args(["archive", "verify"]));
    assert_eq!(r.code, 1);
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        r.stderr.contains(&name),
        "the broken file is named:\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("bytes on disk") && r.stderr.contains("not a readable Parquet file"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .lines()
            .last()
            .unwrap()
            .starts_with("error: archive verify found 2 problem(s)"),
        "{}",
        r.stderr
    );
    // A deleted file is named too.
    std::fs::remove_file(&victim).unwrap();
    let r = run(auditq(&a).args(["archive", "verify"]));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&name) && r.stderr.contains("cannot be opened"),
        "{}",
        r.stderr
    );
}

#[test]
fn verify_finds_an_id_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("archive");
    let b = dir.path().join("other");
    ok(auditq(&a).arg("import").arg(fixture("single.json")));
    ok(auditq(&b).arg("import").arg(fixture("single.json")));
    // Smuggle a second copy of the same event into the same partition of `a`, bypassing
    // the writer: copy b's data file and add it to a's log by hand.
    let src = walk_parquet(&b.join("events")).remove(0);
    let rel = src.strip_prefix(b.join("events")).unwrap().to_owned();
    let renamed = rel.with_file_name("part-smuggled.zstd.parquet");
    std::fs::copy(&src, a.join("events").join(&renamed)).unwrap();
    let size = std::fs::metadata(&src).unwrap().len();
    let add = serde_json::json!({"add": {
        "path": renamed.to_string_lossy(), "partitionValues": {"date": "2026-03-04"},
        "size": size, "modificationTime": 1, "dataChange": true}});
    let log = a.join("events/_delta_log");
    let next = std::fs::read_dir(&log).unwrap().count(); // versions 0..next-1 are there
    std::fs::write(log.join(format!("{next:020}.json")), format!("{add}\n")).unwrap();
    let r = run(auditq(&a).args(["archive", "verify"]));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("id `0b6c3f6e-1f2a-4c55-9a0e-5e1b2c3d4e04` is stored 2 times"),
        "{}",
        r.stderr
    );
}

/// Two writers at once (the lock file removed under the first): each commit checks that
/// its version is still the next, the loser learns what was committed and decides again;
/// no id is archived twice, and both exit 0.
#[test]
fn two_writers_without_the_lock_never_archive_an_id_twice() {
    let dir = tempfile::tempdir().unwrap();
    let events = super::generate(dir.path(), 12_000, 21);
    for round in 0..3 {
        let a = dir.path().join(format!("race-{round}"));
        let import = |a: &Path| {
            auditq(a)
                .args(["import", "--batch-size", "400"])
                .arg(&events)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let first = import(&a);
        // Wait (bounded) for its first commits, then take its lock file away.
        let log = a.join("events/_delta_log");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::fs::read_dir(&log).map_or(0, |d| d.count()) < 2 + round {
            assert!(std::time::Instant::now() < deadline, "no commit in 60 s");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::remove_file(a.join("LOCK")).unwrap();
        let second = import(&a);
        for child in [first, second] {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let r = ok(auditq(&a).args(["query", "--format", "csv", "--", "| count, dc(id) as ids"]));
        assert_eq!(r.stdout, "count,ids\n12000,12000\n", "round {round}");
        let r = ok(auditq(&a).args(["archive", "verify"]));
        assert_summary(&r, "ok: ");
    }
}

/// `archive repair` removes the later copies of ids archived twice, in one commit, and
/// keeps them in the quarantine: the archive is then what one clean import gives.
#[test]
fn repair_removes_later_copies_of_ids_archived_twice_and_keeps_them_in_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let events = super::generate(dir.path(), 4000, 33);
    let a = dir.path().join("a");
    super::import(&a, &events);
    let r = ok(auditq(&a).args(["archive", "repair"]));
    assert!(r.stdout.contains("nothing to repair"), "{}", r.stdout);
    let clean = |archive: &Path| {
        ok(auditq(archive).args([
            "query",
            "--format",
            "csv",
            "--",
            "| sort id | fields id, time, action, raw",
        ]))
        .stdout
    };
    let want = clean(&a);
    // Plant 1,500 duplicates: another archive of the first 1,500 events, its data files
    // smuggled into a's table by one hand-written commit (as a writer without checks did).
    let text = std::fs::read_to_string(&events).unwrap();
    let part: Vec<&str> = text.lines().take(1500).collect();
    let some = dir.path().join("some.ndjson");
    std::fs::write(&some, part.join("\n") + "\n").unwrap();
    let b = dir.path().join("b");
    super::import(&b, &some);
    let mut adds = String::new();
    for src in walk_parquet(&b.join("events")) {
        let rel = src.strip_prefix(b.join("events")).unwrap().to_owned();
        let renamed = rel.with_file_name(format!(
            "planted-{}",
            rel.file_name().unwrap().to_string_lossy()
        ));
        std::fs::copy(&src, a.join("events").join(&renamed)).unwrap();
        let date = rel.to_string_lossy().split('/').next().unwrap()[5..].to_owned();
        let add = serde_json::json!({"add": {
            "path": renamed.to_string_lossy(), "partitionValues": {"date": date},
            "size": std::fs::metadata(&src).unwrap().len(),
            "modificationTime": 4_000_000_000_000i64, "dataChange": true}});
        adds.push_str(&format!("{add}\n"));
    }
    let log = a.join("events/_delta_log");
    let next = std::fs::read_dir(&log).unwrap().count();
    std::fs::write(log.join(format!("{next:020}.json")), adds).unwrap();
    let r = ok(auditq(&a).args(["query", "--format", "csv", "--", "| count, dc(id) as ids"]));
    assert_eq!(r.stdout, "count,ids\n5500,4000\n");
    assert_eq!(run(auditq(&a).args(["archive", "verify"])).code, 1);

    let r = ok(auditq(&a).args(["archive", "repair"]));
    assert!(
        r.stdout
            .starts_with("removed 1500 later copies of 1500 ids"),
        "{}",
        r.stdout
    );
    assert_eq!(clean(&a), want);
    let r = ok(auditq(&a).args(["archive", "verify"]));
    assert_summary(&r, "ok: ");
    // The planted files held the later copies: each is in the quarantine, saying why.
    let metas: Vec<PathBuf> = std::fs::read_dir(a.join("quarantine/conflict"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".meta.json"))
        .collect();
    assert_eq!(metas.len(), 1500);
    let meta = std::fs::read_to_string(&metas[0]).unwrap();
    assert!(
        meta.contains("archive repair") && meta.contains("planted-"),
        "{meta}"
    );
    let r = ok(auditq(&a).args(["archive", "repair"]));
    assert!(r.stdout.contains("nothing to repair"), "{}", r.stdout);
}

/// Row counts (the log) and the action summary (the cache) answer `| count` and
/// `| count by action` only while the files they describe are there as committed, and
/// the cache is used only when its checksum matches: an edited or damaged cache is
/// rebuilt, a missing file makes the queries that need it fail naming it.
#[test]
fn answers_from_metadata_only_while_the_files_back_them() {
    let dir = tempfile::tempdir().unwrap();
    let events = super::generate(dir.path(), 3000, 3);
    let a = dir.path().join("a");
    super::import(&a, &events);
    let q = |text: &str| run(auditq(&a).args(["query", "--format", "csv", "--", text]));
    let by_action = q("| count by action");
    assert_eq!(by_action.code, 0);
    assert_eq!(q("| count").stdout, "count\n3000\n");

    // An edited summary (valid JSON, one count changed) is not believed.
    let summary = a.join("cache/summary.json");
    let text = std::fs::read_to_string(&summary).unwrap();
    let (json, _) = text.rsplit_once('\n').unwrap();
    let mut value: serde_json::Value = serde_json::from_str(json).unwrap();
    let counts = value["summary"]["actions"].as_object_mut().unwrap();
    let first = counts.keys().next().unwrap().clone();
    counts[&first] = serde_json::json!(999_999);
    std::fs::write(&summary, value.to_string()).unwrap();
    assert_eq!(q("| count by action").stdout, by_action.stdout);
    let forged = format!("{value}\n{:016x}", 0u64);
    std::fs::write(&summary, forged).unwrap();
    assert_eq!(q("| count by action").stdout, by_action.stdout);

    // One live file deleted: what needs it fails naming it, the rest still answers.
    let victim = walk_parquet(&a.join("events"))
        .into_iter()
        .find(|p| p.to_string_lossy().contains("date=2026-10-25"))
        .unwrap();
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    let day =
        ok(auditq(&a).args(["query", "--format", "csv", "--", "on 2026-10-28 | count"])).stdout;
    std::fs::remove_file(&victim).unwrap();
    for text in ["| count", "| count by action", "event ~ \"user_*\" | count"] {
        let r = q(text);
        assert_eq!(r.code, 1, "{text}: {}", r.stdout);
        assert!(r.stderr.contains(&name), "{text}: {}", r.stderr);
    }
    assert_eq!(q("on 2026-10-28 | count").stdout, day);
    let r = run(auditq(&a).args(["archive", "stats"]));
    assert_eq!(r.code, 1, "{}", r.stdout);
}

/// A damaged log is named, by every command: an empty last commit (Delta reads it as
/// one that changed nothing, and its events vanished with exit 0), a torn one, a
/// damaged checkpoint. `vacuum` then deletes nothing.
#[test]
fn a_damaged_log_is_named_and_nothing_is_answered_or_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let events = super::generate(dir.path(), 2000, 8);
    let text = std::fs::read_to_string(&events).unwrap();
    let (first, second): (Vec<&str>, Vec<&str>) =
        text.lines()
            .enumerate()
            .fold((Vec::new(), Vec::new()), |(mut a, mut b), (i, l)| {
                if i < 1000 {
                    a.push(l)
                } else {
                    b.push(l)
                }
                (a, b)
            });
    let fresh = |name: &str| {
        let a = dir.path().join(name);
        for (i, part) in [&first, &second].iter().enumerate() {
            let f = dir.path().join(format!("{name}-{i}.ndjson"));
            std::fs::write(&f, part.join("\n") + "\n").unwrap();
            super::import(&a, &f);
        }
        a
    };
    let last_commit = |a: &Path| {
        let mut commits: Vec<PathBuf> = std::fs::read_dir(a.join("events/_delta_log"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        commits.sort();
        commits.pop().unwrap()
    };
    let expect_named = |a: &Path, path: &Path, needle: &str| {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for cmd in [
            &["query", "| count"][..],
            &["archive", "verify"],
            &["archive", "stats"],
            &["archive", "vacuum", "--older-than", "0s", "--force"],
            &["archive", "compact"],
        ] {
            let r = run(auditq(a).args(cmd));
            assert_eq!(r.code, 1, "{cmd:?}: {}", r.stdout);
            assert!(
                r.stderr.contains(&name) && r.stderr.contains(needle),
                "{cmd:?}: {}",
                r.stderr
            );
        }
        let r = run(auditq(a).arg("import").arg(&events));
        assert_eq!(r.code, 1, "{}", r.stdout);
    };

    let a = fresh("empty");
    let files = walk_parquet(&a.join("events")).len();
    let commit = last_commit(&a);
    std::fs::write(&commit, "").unwrap();
    expect_named(&a, &commit, "is empty");
    assert_eq!(
        walk_parquet(&a.join("events")).len(),
        files,
        "vacuum deleted data"
    );

    let a = fresh("torn");
    let commit = last_commit(&a);
    let bytes = std::fs::read(&commit).unwrap();
    std::fs::write(&commit, &bytes[..bytes.len() / 2]).unwrap();
    expect_named(&a, &commit, "not complete JSON");

    let a = fresh("checkpoint");
    ok(auditq(&a).args(["archive", "compact"]));
    let checkpoint = std::fs::read_dir(a.join("events/_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".checkpoint.parquet"))
        .expect("compact writes a checkpoint");
    std::fs::write(&checkpoint, b"PAR1 not a checkpoint").unwrap();
    expect_named(&a, &checkpoint, "checkpoint");
}

/// `vacuum` deletes leftovers whose events the table has, and refuses (deleting
/// nothing) when an unreferenced file holds the only copy of events.
#[test]
fn vacuum_never_deletes_the_only_copy_of_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    ok(auditq(&a).arg("import").arg(fixture("single.json")));
    ok(auditq(&b).arg("import").arg(fixture("events.ndjson")));
    // A leftover of a's own events (as compaction leaves): deleted.
    let own = walk_parquet(&a.join("events")).remove(0);
    let copy = own.with_file_name("part-leftover.zstd.parquet");
    std::fs::copy(&own, &copy).unwrap();
    // A leftover younger than an hour is kept whatever --older-than says (a writer may
    // still commit it); then it is an hour old.
    let r = ok(auditq(&a).args(["archive", "vacuum", "--older-than", "0s", "--force"]));
    assert!(
        r.stdout.contains("deleted 0 unreferenced files"),
        "{}",
        r.stdout
    );
    assert!(copy.exists());
    let hour_ago = |p: &Path| {
        let then = std::time::SystemTime::now() - std::time::Duration::from_secs(3700);
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(then)
            .unwrap();
    };
    hour_ago(&copy);
    // The lease of a writer that died two days ago: vacuum removes it, and says so.
    std::fs::create_dir_all(a.join("writers")).unwrap();
    let two_days_ago = chrono::Utc::now().timestamp_millis() - 2 * 86_400_000;
    std::fs::write(
        a.join("writers/dead.json"),
        format!(r#"{{"started_ms":{two_days_ago},"pid":1,"what":"append"}}"#),
    )
    .unwrap();
    let r = ok(auditq(&a).args(["archive", "vacuum", "--dry-run"]));
    assert!(r.stdout.contains("would remove 1 leases"), "{}", r.stdout);
    assert!(a.join("writers/dead.json").exists());
    let r = ok(auditq(&a).args(["archive", "vacuum", "--older-than", "0s", "--force"]));
    assert!(
        r.stdout.contains("deleted 1 unreferenced files") && r.stdout.contains("removed 1 leases"),
        "{}",
        r.stdout
    );
    assert!(!copy.exists() && !a.join("writers/dead.json").exists());
    // Events the table lacks (a lost commit's file): kept, and nothing is deleted.
    let foreign = walk_parquet(&b.join("events")).remove(0);
    let day = a
        .join("events")
        .join(foreign.parent().unwrap().file_name().unwrap());
    std::fs::create_dir_all(&day).unwrap();
    let stray = day.join("part-lost-commit.zstd.parquet");
    std::fs::copy(&foreign, &stray).unwrap();
    let also = own.with_file_name("part-leftover-2.zstd.parquet");
    std::fs::copy(&own, &also).unwrap();
    hour_ago(&stray);
    hour_ago(&also);
    let r = run(auditq(&a).args(["archive", "vacuum", "--older-than", "0s", "--force"]));
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("part-lost-commit.zstd.parquet")
            && r.stderr.contains("only copies")
            && r.stderr.contains("auditq import"),
        "{}",
        r.stderr
    );
    assert!(stray.exists() && also.exists());
    let r = run(auditq(&a).args([
        "archive",
        "vacuum",
        "--dry-run",
        "--older-than",
        "0s",
        "--force",
    ]));
    assert_eq!(r.code, 1, "{}", r.stdout);
}

/// Writers vacuum every 100 versions, keeping what the archive's time-travel window
/// (`archive time-travel`) says: a window of 7 days keeps the files a compaction removed
/// an instant ago, however old the files (and `--as-of` reads them); `auto_vacuum =
/// false` keeps them; a window they have outlived lets the next writer past a hundred
/// versions delete them, and say so.
#[test]
fn writers_vacuum_on_schedule_and_keep_the_time_travel_window() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let events = |n: usize, end: &str| {
        let path = dir.path().join(format!("{n}-{end}.ndjson"));
        let r = ok(auditq(&a).args([
            "generate",
            "--events",
            &n.to_string(),
            "--days",
            "1",
            "--end",
            end,
            "--seed",
            &end[8..10], // another seed a day: other ids
        ]));
        std::fs::write(&path, r.stdout).unwrap();
        path
    };
    // Three imports' files, compacted: files no longer live.
    let first = events(300, "2026-10-01T12:00:00Z");
    ok(auditq(&a)
        .args(["import", "--no-compact", "--batch-size", "100"])
        .arg(&first));
    let before_compaction = history_len(&a) - 1;
    ok(auditq(&a).args(["archive", "compact"]));
    let on_disk = || walk_parquet(&a.join("events")).len();
    let live = || stats(&a)["files"].as_u64().unwrap() as usize;
    let removed = on_disk() - live();
    assert!(removed >= 3, "{removed}");
    // Written 8 days ago: older than the window, so only their tombstones (kept in the
    // log for the window) tell that they were removed recently.
    let eight_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(8 * 86_400);
    for f in walk_parquet(&a.join("events")) {
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(eight_days_ago)
            .unwrap();
    }
    let r = ok(auditq(&a).args(["archive", "time-travel"]));
    assert!(r.stdout.contains("kept 7d"), "{}", r.stdout);
    let as_of_count = || {
        let v = before_compaction.to_string();
        ok(auditq(&a).args(["query", "--as-of", &v, "--format", "csv", "| count"])).stdout
    };
    assert_eq!(as_of_count(), "count\n300\n");
    // Past version 100 in one writer (a commit an event): the 7-day window keeps them.
    let crossing = |n: usize, end: &str| {
        let more = events(n, end);
        let latest = history_len(&a) - 1;
        // To the next version Delta writes a checkpoint after (99, 199, …).
        let target = ((latest + 1) / 100 + 1) * 100 - 1 - latest;
        let more = {
            let text = std::fs::read_to_string(&more).unwrap();
            let lines: Vec<&str> = text.lines().take(target).collect();
            std::fs::write(&more, lines.join("\n") + "\n").unwrap();
            more
        };
        ok(auditq(&a)
            .args(["import", "--no-compact", "--batch-size", "1"])
            .arg(&more))
    };
    let r = crossing(120, "2026-10-02T12:00:00Z");
    assert!(!r.stdout.contains("vacuumed"), "{}", r.stdout);
    assert_eq!(as_of_count(), "count\n300\n");
    // A window under an hour needs --force; then the removed files are older than it.
    let r = run(auditq(&a).args(["archive", "time-travel", "1s"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    ok(auditq(&a).args(["archive", "time-travel", "1s", "--force"]));
    let r = ok(auditq(&a).args(["archive", "time-travel"]));
    assert!(r.stdout.contains("kept 1s"), "{}", r.stdout);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let config = a.with_extension("no-config.toml");
    std::fs::write(&config, "auto_vacuum = false\n").unwrap();
    let r = crossing(120, "2026-10-03T12:00:00Z");
    assert!(!r.stdout.contains("vacuumed"), "{}", r.stdout);
    std::fs::remove_file(&config).unwrap();
    let r = crossing(120, "2026-10-04T12:00:00Z");
    assert!(
        r.stdout.contains(&format!(
            "vacuumed {removed} old files (removed longer ago than the time-travel window)"
        )),
        "{}",
        r.stdout
    );
    assert_eq!(on_disk(), live());
    let r = run(auditq(&a).args([
        "query",
        "--as-of",
        &before_compaction.to_string(),
        "| count",
    ]));
    assert_ne!(r.code, 0, "{}", r.stdout);
    ok(auditq(&a).args(["archive", "verify"]));
}

/// The number of versions in the archive's history.
fn history_len(a: &Path) -> usize {
    let r = ok(auditq(a).args(["archive", "history", "--json"]));
    serde_json::from_str::<serde_json::Value>(&r.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

/// Damage is detected, never answered around: 4 KiB overwritten inside a data file (its
/// size unchanged) makes every query that reads the file fail naming it, and `verify`
/// report it; queries of other days answer as before. Before, the damaged day answered
/// a wrong count with exit 0.
#[test]
fn a_damaged_data_file_fails_the_queries_that_read_it_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let events = super::generate(dir.path(), 6000, 12);
    let a = dir.path().join("a");
    super::import(&a, &events);
    let q = |text: &str| run(auditq(&a).args(["query", "--format", "csv", "--", text]));
    let other = q("on 2026-10-28 | count by action");
    let victim = walk_parquet(&a.join("events"))
        .into_iter()
        .find(|p| p.to_string_lossy().contains("date=2026-10-20"))
        .unwrap();
    // Read once: the file is known good (and remembered so).
    assert_eq!(q("on 2026-10-20 | count").code, 0);
    let mut bytes = std::fs::read(&victim).unwrap();
    let at = bytes.len() / 3;
    bytes[at..at + 4096].fill(0);
    std::fs::write(&victim, &bytes).unwrap();
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    for text in [
        "on 2026-10-20 | count",
        "| count",
        "since 3000d | count",
        "event ~ \"user_*\" | count by country",
        "| fields *",
    ] {
        let r = q(text);
        assert_eq!(r.code, 1, "{text}: {}", r.stdout);
        assert!(
            r.stderr.contains(&name) && r.stderr.contains("is damaged"),
            "{text}: {}",
            r.stderr
        );
    }
    assert_eq!(q("on 2026-10-28 | count by action").stdout, other.stdout);
    let r = run(auditq(&a).args(["archive", "verify"]));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&name) && r.stderr.contains("was recorded when it was written"),
        "{}",
        r.stderr
    );
}

/// A full disk (a 3 MiB tmpfs, mounted by the test when run as root; skipped otherwise):
/// one error line that says "writing" and where, no panic, no partial files left, and
/// the archive still valid.
#[test]
fn a_full_disk_is_one_clear_error_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let events = super::generate(dir.path(), 20_000, 5);
    let mount = dir.path().join("small");
    std::fs::create_dir(&mount).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&mount)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mount);
    let a = mount.join("a");
    let r = run(auditq(&a).arg("import").arg(&events));
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(
        lines[0].starts_with("error: writing")
            && lines[0].contains(&a.display().to_string())
            && lines[0].contains("No space left on device"),
        "{}",
        lines[0]
    );
    // Only what the table references is left: no partial data file, no temporary file.
    let referenced = ok(auditq(&a).args(["archive", "verify"]));
    assert_summary(&referenced, "ok: ");
    let stats = ok(auditq(&a).args(["archive", "stats", "--json"]));
    let files = serde_json::from_str::<serde_json::Value>(&stats.stdout).unwrap()["files"]
        .as_u64()
        .unwrap();
    assert_eq!(walk_parquet(&a.join("events")).len() as u64, files);
    let mut stray = Vec::new();
    let mut stack = vec![a.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap().to_string_lossy().contains(".tmp") {
                stray.push(p);
            }
        }
    }
    assert!(stray.is_empty(), "{stray:?}");
}

/// The Parquet data files under `dir` (not the Delta log's checkpoints).
pub fn walk_parquet(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.ends_with("_delta_log") {
            continue;
        }
        if p.is_dir() {
            out.extend(walk_parquet(&p));
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
    out.sort();
    out
}
