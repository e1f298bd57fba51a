//! `import`: input shapes, idempotence, conflicts, quarantine, summary line.

use super::*;

#[test]
fn every_input_shape_is_detected_and_a_second_import_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("archive");
    let files = ["page.json", "single.json", "events.ndjson"].map(fixture);
    let r = ok(auditq(&a).arg("import").args(&files));
    // events.ndjson repeats the page's first event byte-for-byte in compact form.
    assert!(
        r.stdout.starts_with(
            "read 7 events: added 6, already present 1, conflicting duplicates 0, quarantined 0"
        ),
        "{}",
        r.stdout
    );
    let r = ok(auditq(&a).arg("import").args(&files));
    assert_summary(&r, "read 7 events: added 0, already present 7,");
    let s = stats(&a);
    assert_eq!(s["events"], 6);
    assert_eq!(s["distinct_ids"], 6);
    // 2026-03-02T00:30:00+02:00 is 2026-03-01 in UTC.
    assert_eq!(s["first"], "2026-03-01T22:30:00.000Z");
    assert_eq!(s["days"], 4);
    ok(auditq(&a).args(["archive", "verify"]));
}

#[test]
fn stdin_is_read_with_dash() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("archive");
    let r = ok(auditq(&a)
        .args(["import", "-"])
        .stdin(std::fs::File::open(fixture("events.ndjson")).unwrap()));
    assert_summary(&r, "read 3 events: added 3,");
}

#[test]
fn same_id_other_content_is_a_conflict_kept_in_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("archive");
    ok(auditq(&a).arg("import").arg(fixture("events.ndjson")));
    let r = ok(auditq(&a).arg("import").arg(fixture("conflict.ndjson")));
    assert!(
        r.stdout
            .contains("added 0, already present 0, conflicting duplicates 1"),
        "{}",
        r.stdout
    );
    let kept: Vec<_> = quarantined(&a, "conflict");
    assert_eq!(kept.len(), 1);
    let newcomer = std::fs::read_to_string(&kept[0]).unwrap();
    assert_eq!(
        newcomer.trim(),
        std::fs::read_to_string(fixture("conflict.ndjson"))
            .unwrap()
            .trim()
    );
    // The first version stays the archived one (its time is 2026-03-04, not 03-09).
    let s = stats(&a);
    assert_eq!(s["events"], 3);
    assert_eq!(s["last"], "2026-03-04T09:00:05.000Z");
    assert_eq!(s["quarantined_conflicts"], 1);
}

#[test]
fn bad_input_is_quarantined_byte_for_byte_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("archive");
    let r = ok(auditq(&a).arg("import").arg(fixture("bad.ndjson")));
    assert!(
        r.stdout.starts_with(
            "read 6 events: added 2, already present 0, conflicting duplicates 0, quarantined 4"
        ),
        "{}",
        r.stdout
    );
    let q = a.join("quarantine/invalid");
    let raws: Vec<String> = quarantined(&a, "invalid")
        .into_iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    // NDJSON: each bad line is kept on its own (the truncated event, the HTML line).
    assert_eq!(raws.len(), 4);
    let input = std::fs::read_to_string(fixture("bad.ndjson")).unwrap();
    for raw in &raws {
        assert!(
            input.contains(raw.as_str()),
            "quarantined bytes are a verbatim part of the input: {raw}"
        );
    }
    assert!(raws.iter().any(|r| r.starts_with("<html>")));
    assert!(
        raws.iter()
            .any(|r| r.contains("4e09") && !r.contains("<html>"))
    );
    assert!(raws.iter().any(|r| r.contains("last tuesday")));
    let metas: String = std::fs::read_dir(&q)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".meta.json"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(metas.contains("has no string `id`"), "{metas}");
    assert!(metas.contains("unparsable time `last tuesday`"), "{metas}");
}

/// The real, anonymised pages of the grove project: 31 events sharing one id.
#[test]
fn grove_pages_keep_one_event_and_report_thirty_conflicts() {
    let Some(samples) = shared_samples() else {
        eprintln!("skipped: ../shared/samples is not beside this checkout");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("archive");
    let grove = samples.join("org-events/grove");
    let pages = [
        grove.join("event_audit_001.json"),
        grove.join("event_audit_002.json"),
    ];
    let r = ok(auditq(&a).arg("import").args(&pages));
    assert_summary(
        &r,
        "read 31 events: added 1, already present 0, conflicting duplicates 30",
    );
    assert_eq!(stats(&a)["quarantined_conflicts"], 30);
    let r = ok(auditq(&a).arg("import").args(&pages));
    assert_summary(
        &r,
        "read 31 events: added 0, already present 1, conflicting duplicates 30",
    );
    assert_eq!(
        stats(&a)["quarantined_conflicts"],
        30,
        "re-importing does not pile up copies"
    );

    let b = dir.path().join("elastic");
    let ndjson = samples.join("org-events/elastic-atlassian_cloud/events.ndjson");
    let r = ok(auditq(&b).arg("import").arg(&ndjson));
    assert_summary(&r, "read 10 events: added 10,");
    let r = ok(auditq(&b).arg("import").arg(&ndjson));
    assert_summary(&r, "read 10 events: added 0, already present 10,");
}

#[test]
fn generate_is_deterministic_and_importable() {
    let dir = tempfile::tempdir().unwrap();
    let one = generate(dir.path(), 3000, 9);
    let first = std::fs::read(&one).unwrap();
    std::fs::remove_file(&one).unwrap();
    let again = generate(dir.path(), 3000, 9);
    assert_eq!(first, std::fs::read(&again).unwrap());
    let a = dir.path().join("archive");
    let r = ok(auditq(&a)
        .args(["import", "--batch-size", "1000"])
        .arg(&again));
    assert_summary(&r, "read 3000 events: added 3000,");
    let s = stats(&a);
    assert_eq!(s["events"], 3000);
    assert_eq!(s["top_actions"][0][0], "user_login");
}

#[test]
fn generate_into_a_closed_pipe_is_success() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = auditq(&dir.path().join("a"))
        .args(["generate", "--events", "1000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 4096];
    std::io::Read::read_exact(&mut out, &mut buf).unwrap();
    drop(out);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Settings resolve flag > environment > config file > default.
#[test]
fn the_archive_comes_from_flag_then_environment_then_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let from_config = dir.path().join("from-config");
    std::fs::write(
        &config,
        format!("archive = {:?}\n", from_config.to_str().unwrap()),
    )
    .unwrap();
    let bare = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_auditq"));
        c.env_remove("AUDITQ_ARCHIVE")
            .env("AUDITQ_CONFIG", &config)
            .stdin(Stdio::null());
        c
    };
    ok(bare().arg("import").arg(fixture("single.json")));
    assert_eq!(stats(&from_config)["events"], 1);
    let from_env = dir.path().join("from-env");
    ok(bare()
        .env("AUDITQ_ARCHIVE", &from_env)
        .arg("import")
        .arg(fixture("events.ndjson")));
    assert_eq!(stats(&from_env)["events"], 3);
    let from_flag = dir.path().join("from-flag");
    ok(bare()
        .env("AUDITQ_ARCHIVE", &from_env)
        .arg("--archive")
        .arg(&from_flag)
        .arg("import")
        .arg(fixture("page.json")));
    assert_eq!(stats(&from_flag)["events"], 3);
    assert_eq!(stats(&from_env)["events"], 3);

    std::fs::write(&config, "archiv = \"/tmp/typo\"\n").unwrap();
    let r = run(bare().args(["archive", "stats"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("error: config file") && r.stderr.contains("archiv"),
        "{}",
        r.stderr
    );
}

/// Times outside what auditq archives (1970 to 2261: Arrow buckets times in nanoseconds)
/// are quarantined with the reason, not archived to break every `timechart` later; a
/// duration reaching before the year 1 is a query error with a caret, not 0 rows.
#[test]
fn extreme_times_are_refused_at_import_and_in_queries() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("extreme.ndjson");
    std::fs::write(
        &input,
        [
            r#"{"id":"t-2300","attributes":{"time":"2300-01-01T00:00:00Z","action":"user_login"}}"#,
            r#"{"id":"t-0000","attributes":{"time":"0000-01-01T00:00:00Z","action":"user_login"}}"#,
            r#"{"id":"t-1969","attributes":{"time":"1969-12-31T23:59:59Z","action":"user_login"}}"#,
            r#"{"id":"t-ok","attributes":{"time":"2026-10-20T08:00:00Z","action":"user_login"}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let a = dir.path().join("archive");
    let r = ok(auditq(&a).arg("import").arg(&input));
    assert!(
        r.stdout.contains("added 1,") && r.stdout.contains("quarantined 3"),
        "{}",
        r.stdout
    );
    let metas: String = std::fs::read_dir(a.join("quarantine/invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".meta.json"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(
        metas.matches("outside the times auditq archives").count(),
        3,
        "{metas}"
    );
    let r = ok(auditq(&a).args(["query", "--format", "csv", "--", "| timechart 1d"]));
    assert_eq!(r.stdout, "time,count\n2026-10-20T00:00:00.000Z,1\n");

    let r = run(auditq(&a).args(["query", "since 999999999d | count"]));
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains("error[E0210]") && r.stderr.contains('^'),
        "{}",
        r.stderr
    );
    let r = ok(auditq(&a).args(["query", "--format", "csv", "--", "since 20000d | count"]));
    assert_eq!(r.stdout, "count\n1\n");
}

/// Each line that is not JSON is its own quarantine item and counts as one read, also
/// when the whole input is such lines (it was one item: "read 1 events").
#[test]
fn each_bad_line_is_its_own_quarantine_item() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.ndjson");
    std::fs::write(&input, "garbage one\ngarbage two\n\ngarbage three\n").unwrap();
    let a = dir.path().join("archive");
    let r = ok(auditq(&a).arg("import").arg(&input));
    assert!(
        r.stdout.starts_with("read 3 events: added 0") && r.stdout.contains("quarantined 3"),
        "{}",
        r.stdout
    );
    let kept: Vec<String> = quarantined(&a, "invalid")
        .into_iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(kept.len(), 3);
    for line in ["garbage one", "garbage two", "garbage three"] {
        assert!(kept.iter().any(|k| k.trim_end() == line), "{kept:?}");
    }
}

#[test]
fn an_archive_is_a_path_a_file_url_or_on_s3_and_any_other_url_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("archive");
    let url = url::Url::from_file_path(&a).unwrap().to_string();
    let r = ok(auditq(Path::new(&url))
        .arg("import")
        .arg(fixture("events.ndjson")));
    assert_summary(&r, "read 3 events: added 3,");
    assert_eq!(
        stats(&a)["events"],
        3,
        "the file URL names the same archive"
    );
    for (given, says) in [
        (
            "gs://bucket/prefix",
            "is on an object store auditq does not read",
        ),
        ("ftp://host/archive", "has the scheme `ftp`"),
        ("file://host/archive", "is not a local file URL"),
        ("s3:///prefix", "needs a bucket"),
        // Credentials in clear to another machine: only when asked for.
        ("s3://bucket/prefix", "pass --allow-http"),
    ] {
        let r = run(auditq(Path::new(given))
            .env("AWS_ENDPOINT_URL", "http://192.0.2.1:9000")
            .current_dir(dir.path())
            .arg("import")
            .arg(fixture("events.ndjson")));
        assert_eq!(r.code, 2, "{given}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{given}: {}", r.stderr);
    }
    // Nothing was made in the working directory for them (`s3:/bucket/prefix` was).
    let made: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(made, ["archive"]);
}

/// The live data files of an archive, per `archive verify`'s "N files".
fn live_files(a: &Path) -> usize {
    let r = ok(auditq(a).args(["archive", "verify"]));
    let files = r
        .stdout
        .split(", ")
        .find(|p| p.ends_with(" files"))
        .unwrap();
    files.trim_end_matches(" files").parse().unwrap()
}

#[test]
fn writers_merge_the_small_files_of_a_day_as_commits_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, verifier) = super::evidence::make_key(d);
    let input = d.join("day.ndjson");
    generate_to(&input, 2000, 1, "2026-11-01T23:59:00Z", 3);
    let text = std::fs::read_to_string(&input).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (merging, plain) = (d.join("merging"), d.join("plain"));
    let mut merged = Vec::new();
    for (i, part) in lines.chunks(100).enumerate() {
        let f = d.join(format!("part-{i}.ndjson"));
        std::fs::write(&f, part.join("\n") + "\n").unwrap();
        let r = ok(auditq(&merging)
            .env("AUDITQ_SIGNING_KEY", &key)
            .arg("import")
            .arg(&f));
        if r.stdout.contains("; merged ") {
            merged.push((i, r.stdout.clone()));
        }
        ok(auditq(&plain).args(["--no-compact", "import"]).arg(&f));
    }
    // The tenth small file of the day makes a merge, and the summary says so.
    assert!(
        merged
            .first()
            .is_some_and(|(_, s)| s.trim_end().ends_with("; merged 10 small files into 1")),
        "{merged:?}"
    );
    assert_eq!(live_files(&plain), 20);
    assert!(live_files(&merging) < 10 + 2, "{}", live_files(&merging));
    // The same events, each once, sealed with their places; the merges are versions.
    let count = |a: &Path| ok(auditq(a).args(["query", "--format", "csv", "| count"])).stdout;
    assert_eq!(count(&merging), count(&plain));
    let r = ok(auditq(&merging).args(["archive", "verify", "--verifier-key", &verifier]));
    assert!(
        r.stdout.contains("2000 events, every id once"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("2000 leaves sealed"), "{}", r.stdout);
    let r = ok(auditq(&merging).args(["archive", "history", "--json"]));
    assert!(r.stdout.contains("\"OPTIMIZE\""), "{}", r.stdout);
    // As of the commit just before the first merge (version 0 made the table, import i
    // committed version i + 1), the archive answers from the files the merge removed.
    let before = merged[0].0 + 1;
    let r = ok(auditq(&merging).args([
        "query",
        "--as-of",
        &before.to_string(),
        "--format",
        "csv",
        "| count",
    ]));
    assert_eq!(r.stdout.lines().nth(1), Some(&*(before * 100).to_string()));
}

/// A day the writer has moved past by an hour is merged whole, sorted by time, as
/// `archive compact` writes it; late events of a settled day are archived in a file of
/// their own rather than rewriting the day.
#[test]
fn a_day_the_writer_moved_past_is_merged_whole_and_late_events_do_not_rewrite_it() {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::TimestampMicrosecondType;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, verifier) = super::evidence::make_key(d);
    let input = d.join("days.ndjson");
    generate_to(&input, 3000, 3, "2026-11-03T12:00:00Z", 5);
    let text = std::fs::read_to_string(&input).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let a = d.join("a");
    let import_part = |name: &str, part: &[&str]| {
        let f = d.join(name);
        std::fs::write(&f, part.join("\n") + "\n").unwrap();
        ok(auditq(&a)
            .env("AUDITQ_SIGNING_KEY", &key)
            .arg("import")
            .arg(&f))
    };
    for (i, part) in lines[1..].chunks(100).enumerate() {
        import_part(&format!("part-{i}.ndjson"), part);
    }
    // Oct 31 (from noon), Nov 1 and Nov 2 settled (one file each, rows by time); Nov 3
    // is in progress (its tiers: fewer than ten small files).
    ok(auditq(&a).args(["archive", "vacuum", "--older-than", "0s", "--force"]));
    let day_files = |day: &str| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(a.join(format!("events/date={day}")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect()
    };
    for day in ["2026-10-31", "2026-11-01", "2026-11-02"] {
        let files = day_files(day);
        assert_eq!(files.len(), 1, "{day}: {files:?}");
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&files[0]).unwrap())
                .unwrap()
                .build()
                .unwrap();
        let mut times = Vec::new();
        for b in reader {
            let b = b.unwrap();
            let t = b.column_by_name("time").unwrap();
            times.extend(
                t.as_primitive::<TimestampMicrosecondType>()
                    .values()
                    .iter()
                    .copied(),
            );
        }
        assert!(times.len() > 400, "{day}: {}", times.len());
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "{day} is not sorted by time"
        );
    }
    let third = day_files("2026-11-03").len();
    assert!((2..10).contains(&third), "{third}");
    // A late event of the first day: archived in a file of its own; the day is not
    // rewritten for it.
    let r = import_part("late.ndjson", &lines[..1]);
    assert_summary(&r, "read 1 events: added 1,");
    assert!(!r.stdout.contains("; merged "), "{}", r.stdout);
    let r = ok(auditq(&a).args(["archive", "verify", "--verifier-key", &verifier]));
    assert!(
        r.stdout.contains("3000 events, every id once"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("3000 leaves sealed"), "{}", r.stdout);
    assert_eq!(live_files(&a), 3 + third + 1);
}

/// A writer keeps the archived ids between runs (`cache/id-hashes.bin`) and reads only
/// the files committed since. A snapshot that names files no longer live (here, events
/// removed by a hand-written commit, as a repair can) never makes a returning event a
/// conflict; a damaged snapshot is ignored and written again.
#[test]
fn the_writer_keeps_its_ids_between_runs_and_a_stale_snapshot_never_refuses_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = d.join("a");
    let input = generate(d, 300, 41);
    let text = std::fs::read_to_string(&input).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (first, rest) = (d.join("first.ndjson"), d.join("rest.ndjson"));
    std::fs::write(&first, lines[..100].join("\n") + "\n").unwrap();
    std::fs::write(&rest, lines[100..].join("\n") + "\n").unwrap();
    import(&a, &first);
    let snapshot = a.join("cache/id-hashes.bin");
    assert!(!snapshot.exists());
    let r = ok(auditq(&a).arg("import").arg(&rest));
    assert_summary(&r, "read 200 events: added 200, already present 0,");
    assert!(snapshot.exists());
    let r = ok(auditq(&a).arg("import").arg(&first));
    assert_summary(
        &r,
        "read 100 events: added 0, already present 100, conflicting duplicates 0",
    );

    // Remove what the first import added (version 1), as a commit that changes data.
    let log = a.join("events/_delta_log");
    let adds = std::fs::read_to_string(log.join(format!("{:020}.json", 1))).unwrap();
    let mut removes = String::new();
    for line in adds.lines() {
        let action: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(add) = action.get("add") {
            let remove = serde_json::json!({"remove": {
                "path": add["path"], "partitionValues": add["partitionValues"],
                "size": add["size"], "deletionTimestamp": 4_000_000_000_000i64,
                "dataChange": true}});
            removes.push_str(&format!("{remove}\n"));
        }
    }
    let next = std::fs::read_dir(&log)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    std::fs::write(log.join(format!("{next:020}.json")), removes).unwrap();
    let count = || ok(auditq(&a).args(["query", "--format", "csv", "| count"])).stdout;
    assert_eq!(count(), "count\n200\n");
    // The snapshot still holds those ids: they come back as new events, not conflicts.
    let r = ok(auditq(&a).arg("import").arg(&first));
    assert_summary(
        &r,
        "read 100 events: added 100, already present 0, conflicting duplicates 0",
    );
    assert_eq!(count(), "count\n300\n");

    // A damaged snapshot is ignored (and replaced); nothing is added twice.
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&snapshot, &bytes).unwrap();
    let r = ok(auditq(&a).arg("import").arg(&input));
    assert_summary(
        &r,
        "read 300 events: added 0, already present 300, conflicting duplicates 0",
    );
    assert_ne!(std::fs::read(&snapshot).unwrap(), bytes);
    ok(auditq(&a).args(["archive", "verify"]));
}

/// Each file's `add` in the Delta log carries statistics of `time`, `processed_at` and
/// `leaf` only (the columns that can skip a file of a day), as the table's
/// `delta.dataSkippingStatsColumns` says — what the README promises.
#[test]
fn the_log_records_statistics_of_the_columns_that_skip_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    ok(auditq(&a).arg("import").arg(generate(dir.path(), 2_000, 5)));
    let mut adds = 0;
    for entry in std::fs::read_dir(a.join("events/_delta_log")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let action: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(conf) = action["metaData"]["configuration"].as_object() {
                assert_eq!(
                    conf["delta.dataSkippingStatsColumns"], "time,processed_at,leaf",
                    "{conf:?}"
                );
            }
            let Some(stats) = action["add"]["stats"].as_str() else {
                continue;
            };
            let stats: serde_json::Value = serde_json::from_str(stats).unwrap();
            let mut columns: Vec<&String> =
                stats["maxValues"].as_object().unwrap().keys().collect();
            columns.sort();
            assert_eq!(columns, ["leaf", "processed_at", "time"], "{stats}");
            assert!(stats["numRecords"].as_u64().unwrap() > 0);
            adds += 1;
        }
    }
    assert!(adds > 0);
    let r = ok(auditq(&a).args(["query", "--format", "csv", "since 400d | count"]));
    assert_eq!(r.stdout, "count\n2000\n");
}
