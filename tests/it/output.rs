//! Issue 13, "Output you can trust, and a CLI that fits people's habits": one test per
//! numbered defect (each failed before its fix), over the golden archive.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::query::{NOW, archive};
use super::{auditq, ok, run};

fn query(args: &[&str], q: &str) -> std::process::Command {
    let mut c = auditq(archive());
    c.args(["query", "--now", NOW]).args(args).args(["--", q]);
    c
}

fn parquet(path: &Path) -> ParquetRecordBatchReaderBuilder<std::fs::File> {
    ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap()
}

/// The files in `dir`, by name.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Defect 1: A reader that closes the pipe early ends the query quietly with 0, in every format.
#[test]
fn issue_13_1_a_closed_pipe_is_success_in_every_format() {
    for format in ["csv", "json", "ndjson", "table", "parquet"] {
        let mut child = query(&["--format", format], "| fields time, actor, action")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end before auditq writes anything.
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{format}: {stderr}");
        assert_eq!(stderr, "", "{format}");
    }
}

/// Defect 2: The compliance export writes Parquet with its list columns; a file output appears
/// only when complete, and no temporary file is left.
#[test]
fn issue_13_2_parquet_holds_list_columns_and_appears_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("perm.parquet");
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/queries/04-compliance-export.aq");
    ok(super::query_at(archive(), NOW)
        .args(["--file"])
        .arg(&example)
        .arg("-o")
        .arg(&out));
    assert_eq!(names(dir.path()), vec!["perm.parquet"]);
    let reader = parquet(&out);
    let schema = reader.schema().clone();
    assert!(
        matches!(schema.field_with_name("context").unwrap().data_type(), DataType::List(f) if matches!(f.data_type(), DataType::Struct(_))),
        "{schema:?}"
    );
    let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    let csv = ok(&mut query(
        &["--format", "csv"],
        &std::fs::read_to_string(&example).unwrap(),
    ));
    assert!(rows > 0);
    assert_eq!(rows, csv.stdout.lines().count() - 1);
    // A query that fails leaves nothing behind.
    let bad = dir.path().join("bad.parquet");
    let r = run(&mut query(&["-o", bad.to_str().unwrap()], "| fields nope"));
    assert_eq!(r.code, 2);
    assert_eq!(names(dir.path()), vec!["perm.parquet"]);
}

/// Defect 3: Parquet outputs claim no order they do not have, and times are µs UTC.
#[test]
fn issue_13_3_parquet_outputs_carry_only_true_metadata() {
    let dir = tempfile::tempdir().unwrap();
    for (name, q) in [
        ("agg.parquet", "| count by actor | sort -count"),
        ("chart.parquet", "| timechart 1d"),
        ("events.parquet", "| fields time, id"),
        ("all.parquet", "| fields *"),
    ] {
        let out = dir.path().join(name);
        ok(&mut query(&["-o", out.to_str().unwrap()], q));
        let reader = parquet(&out);
        let meta = reader.metadata();
        for rg in meta.row_groups() {
            assert!(rg.sorting_columns().is_none(), "{q}");
        }
        let kv = meta.file_metadata().key_value_metadata();
        assert!(
            kv.is_none_or(|kv| kv.iter().all(|k| !k.key.starts_with("auditq.sorted"))),
            "{q}: {kv:?}"
        );
        for f in reader.schema().fields() {
            let t = format!("{:?}", f.data_type());
            assert!(!t.contains("View"), "{q}: {} is {t}", f.name());
        }
        if let Ok(time) = reader.schema().field_with_name("time") {
            assert_eq!(
                time.data_type(),
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                "{q}"
            );
        }
    }
}

/// Defect 4: `explain`'s SQL orders as the query does (it printed the aggregate's inner `ORDER
/// BY actor` for `sort -count`); DuckDB runs every golden query's SQL in `differential`.
#[test]
fn issue_13_4_explains_sql_keeps_the_last_sort() {
    let r = ok(super::explain_at(archive(), NOW)
        .args(["since 30d | count by actor | sort -count | head 5"]));
    let sql = r.stdout.split("\nsql:\n").nth(1).unwrap();
    assert!(
        sql.contains("ORDER BY \"count\" DESC NULLS LAST, actor ASC NULLS LAST LIMIT 5"),
        "{sql}"
    );
}

/// Defect 5: A query may start with `-` (GitHub-style negation), for query, explain and follow.
#[test]
fn issue_13_5_a_query_may_start_with_a_minus() {
    let negated = ok(&mut query(&["--format", "csv"], "-actor.name:ada* | count"));
    let spelled = ok(&mut query(
        &["--format", "csv"],
        "not actor.name ~ \"ada*\" | count",
    ));
    assert_eq!(negated.stdout, spelled.stdout);
    // Without `--`, as people type it.
    let r = ok(super::query_at(archive(), NOW).args([
        "-actor.name:ada* event ~ \"*login*\"",
        "--format",
        "csv",
    ]));
    assert!(r.stdout.starts_with("time,"), "{}", r.stdout);
    ok(super::explain_at(archive(), NOW).args(["-actor:svc-* | count"]));
}

/// Defect 6: A stage without its `|` gets the hint that stages start with `|`.
#[test]
fn issue_13_6_a_stage_without_a_pipe_is_explained() {
    let r = run(&mut query(&[], "count by action"));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("did you mean `| count by action`?"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("actor:count"), "{}", r.stderr);
}

/// Defect 8: The query from standard input; an extension auditq does not write is an error;
/// `--archive` is where the demo goes; a saved query runs by name.
#[test]
fn issue_13_8_stdin_extensions_demo_and_saved_queries() {
    let mut child = super::query_at(archive(), NOW)
        .args(["--format", "csv", "--file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"# from a pipe\nevent:user_login_failed\n| count\n",
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "count\n4\n");

    let dir = tempfile::tempdir().unwrap();
    let xlsx = dir.path().join("x.xlsx");
    let r = run(&mut query(&["-o", xlsx.to_str().unwrap()], "| count"));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("`.xlsx`") && r.stderr.contains(".parquet"),
        "{}",
        r.stderr
    );
    assert!(names(dir.path()).is_empty());

    let demo = dir.path().join("demo-here");
    let r = ok(auditq(&demo)
        .current_dir(dir.path())
        .args(["demo", "--events", "2000", "--days", "10"]));
    assert!(r.stdout.contains("synced"), "{}", r.stdout);
    assert!(demo.join("events/_delta_log").is_dir());
    assert!(!dir.path().join("auditq-demo").exists());

    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("auditq/queries")).unwrap();
    std::fs::write(
        config.join("auditq/queries/fails.aq"),
        "event:user_login_failed | count\n",
    )
    .unwrap();
    let r = ok(auditq(archive())
        .env("XDG_CONFIG_HOME", &config)
        .args(["query", "--now", NOW, "--format", "csv", "--saved", "fails"]));
    assert_eq!(r.stdout, "count\n4\n");
    let r = run(auditq(archive())
        .env("XDG_CONFIG_HOME", &config)
        .args(["query", "--saved", "nope"]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no saved query `nope`"), "{}", r.stderr);
}

/// Defect 8: `-v` logs what the query does (its plan); without it nothing is logged.
#[test]
fn issue_13_8_verbose_logs_the_plan() {
    let r = ok(auditq(archive()).args([
        "-v",
        "query",
        "--now",
        NOW,
        "--format",
        "csv",
        "--",
        "| count by action",
    ]));
    assert!(r.stderr.contains("plan"), "{}", r.stderr);
    let r = ok(&mut query(&["--format", "csv"], "| count by action"));
    assert_eq!(r.stderr, "");
}

/// Defect 9: Lists in CSV are JSON text any CSV and JSON reader can take back.
#[test]
fn issue_13_9_csv_lists_are_json() {
    let r = ok(&mut query(
        &["--format", "csv"],
        "id == golden-e06 | fields id, context",
    ));
    let mut lines = r.stdout.lines();
    assert_eq!(lines.next(), Some("id,context"));
    let row = lines.next().unwrap();
    let cell = row.strip_prefix("golden-e06,").unwrap();
    // A CSV-quoted field: strip the quotes, undouble the inner ones.
    let json = cell
        .strip_prefix('"')
        .and_then(|c| c.strip_suffix('"'))
        .unwrap()
        .replace("\"\"", "\"");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["name"], "Ben Jansen", "{json}");
}

/// Defect 10: `timechart` fills every bucket of its range: 0 where nothing happened.
#[test]
fn issue_13_10_timechart_fills_empty_buckets() {
    // The golden events span 2026-02-10 .. 2026-02-18; failed logins fall on three days.
    let r = ok(&mut query(
        &["--format", "csv"],
        "event:user_login_failed | timechart 1d",
    ));
    let rows: Vec<&str> = r.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 9, "{}", r.stdout);
    assert_eq!(rows[0], "2026-02-10T00:00:00.000Z,2");
    assert_eq!(rows[1], "2026-02-11T00:00:00.000Z,0");
    let total: i64 = rows
        .iter()
        .map(|r| r.rsplit(',').next().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, 4);
    // The range of the time clause, not the data: 2 days of 12 h = 4 buckets, 3 empty
    // before the last event.
    let r = ok(&mut query(
        &["--format", "csv"],
        "event:user_login_failed between 2026-02-16 and 2026-02-17 | timechart 12h",
    ));
    assert_eq!(r.stdout.lines().count(), 1 + 4, "{}", r.stdout);
    // By a key: every key gets every bucket.
    let r = ok(&mut query(
        &["--format", "csv"],
        "event:user_login_failed | timechart 1d count by actor",
    ));
    assert_eq!(r.stdout.lines().count(), 1 + 9 * 3, "{}", r.stdout);
    // Stages may follow the filled series.
    let r = ok(&mut query(
        &["--format", "csv"],
        "event:user_login_failed | timechart 1d | where count = 0 | count",
    ));
    assert_eq!(r.stdout, "count\n6\n");
}

/// `fields --json` lists each field with its type; completions and the manual page.
#[test]
fn fields_completions_and_man() {
    let r = ok(auditq(archive()).args(["fields", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let time = v
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "time")
        .unwrap();
    assert_eq!(time["type"], "time");

    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("auditq.bash");
    let r = ok(auditq(archive()).args(["completions", "bash"]));
    std::fs::write(&script, r.stdout).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}'; COMP_WORDS=(auditq qu); COMP_CWORD=1; COMP_LINE='auditq qu'; COMP_POINT=9; _auditq auditq qu auditq; echo \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .unwrap();
    let words = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        words.trim(),
        "query",
        "{words} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let page = dir.path().join("auditq.1");
    let r = ok(auditq(archive()).arg("man"));
    std::fs::write(&page, r.stdout).unwrap();
    let out = std::process::Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("auditq") && text.contains("query"), "{text}");
}

/// Run auditq in a pseudo-terminal of `cols` × `rows` (set with `stty`, as a real
/// terminal is, not through `COLUMNS`); everything it printed.
fn on_terminal(cols: u16, rows: u16, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("stty cols {cols} rows {rows}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_auditq"))
        .arg("--archive")
        .arg(archive())
        .args(args)
        .env_remove("COLUMNS")
        .env_remove("LINES")
        .env_remove("NO_COLOR")
        .env_remove("AUDITQ_ARCHIVE")
        .env("AUDITQ_CONFIG", archive().with_extension("no-config.toml"))
        .env("TERM", "xterm");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = rexpect::session::spawn_command(cmd, Some(60_000)).expect("a pty");
    let out = p.exp_eof().expect("auditq ends");
    // rexpect hands over each byte as one char: back to UTF-8.
    let bytes: Vec<u8> = out.chars().map(|c| c as u32 as u8).collect();
    String::from_utf8_lossy(&bytes).replace('\r', "")
}

fn strip_ansi(s: &str) -> String {
    regex::Regex::new("\x1b\\[[0-9;]*m")
        .unwrap()
        .replace_all(s, "")
        .into_owned()
}

/// Defect 7: On a terminal: its real width, a screenful of rows and a note of the rest (all
/// with `--all`), bars beside a timechart's counts; colour unless `NO_COLOR`.
#[test]
fn issue_13_7_a_terminal_gets_its_width_a_screenful_bars_and_colour_rules() {
    let q = [
        "query",
        "--now",
        NOW,
        "| fields time, id, actor, action, ip, country, message",
    ];
    let out = on_terminal(80, 24, &q, &[]);
    let text = strip_ansi(&out);
    let widest = text.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest <= 80, "a line of {widest} columns:\n{text}");
    assert!(text.contains('…'), "{text}");
    assert!(
        text.contains("20 rows, 17 shown: --all prints every row"),
        "{text}"
    );
    let q = ["query", "--now", NOW, "| fields id, action"];
    let text = strip_ansi(&on_terminal(80, 24, &q, &[]));
    assert!(text.contains("golden-e01"), "{text}");
    assert!(
        text.contains("20 rows, 17 shown: --all prints every row"),
        "{text}"
    );
    assert!(!text.contains("golden-e20"), "{text}");
    let mut all = q.to_vec();
    all.insert(1, "--all");
    let text = strip_ansi(&on_terminal(80, 24, &all, &[]));
    assert!(
        text.contains("golden-e20") && text.contains("20 rows"),
        "{text}"
    );
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");

    // A timechart draws bars; colour on a terminal, none with NO_COLOR or --color never.
    let chart = ["query", "--now", NOW, "| timechart 1d"];
    let coloured = on_terminal(80, 24, &chart, &[]);
    assert!(coloured.contains('█'), "{coloured}");
    assert!(coloured.contains('\x1b'), "{coloured}");
    let plain = on_terminal(80, 24, &chart, &[("NO_COLOR", "1")]);
    assert!(plain.contains('█') && !plain.contains('\x1b'), "{plain}");
    let mut never = chart.to_vec();
    never.insert(0, "--color=never");
    assert!(!on_terminal(80, 24, &never, &[]).contains('\x1b'));
    // By a key: one small chart per key, the busiest key (ada, 8 events) first.
    let by = ["query", "--now", NOW, "| timechart 1d count by actor"];
    let text = strip_ansi(&on_terminal(120, 40, &by, &[("NO_COLOR", "1")]));
    let first = text.lines().find(|l| l.contains('@')).unwrap();
    assert!(first.contains("ada@example.com"), "{text}");
    assert_eq!(text.matches("ada@example.com").count(), 1, "{text}");
    // Diagnostics too.
    let bad = ["query", "acter = 1"];
    assert!(on_terminal(80, 24, &bad, &[]).contains("\x1b[1;31merror"));
    let plain = on_terminal(80, 24, &bad, &[("NO_COLOR", "1")]);
    assert!(
        plain.contains("error[E0101]") && !plain.contains('\x1b'),
        "{plain}"
    );
}

/// Results stream: events in time order over files whose time ranges do not overlap (a
/// compacted archive) are a merge of the files, not a sort of every row; where a day's
/// files overlap, the rows are still sorted.
#[test]
fn events_in_time_order_are_merged_not_sorted_and_always_ordered() {
    let r = ok(super::explain_at(archive(), NOW).args(["| fields *"]));
    let physical = r
        .stdout
        .split("physical plan:")
        .nth(1)
        .unwrap()
        .split("\nsql:")
        .next()
        .unwrap();
    assert!(!physical.contains("SortExec"), "{physical}");
    assert!(physical.contains("output_ordering=[time"), "{physical}");

    // Two imports whose events interleave in time: every day has two overlapping files.
    let dir = tempfile::tempdir().unwrap();
    let all = super::generate(dir.path(), 4000, 9);
    let lines: Vec<String> = std::fs::read_to_string(&all)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let (odd, even): (Vec<_>, Vec<_>) = lines.iter().enumerate().partition(|(i, _)| i % 2 == 1);
    let a = dir.path().join("a");
    for (name, part) in [("odd", odd), ("even", even)] {
        let f = dir.path().join(name);
        let text: Vec<&str> = part.iter().map(|(_, l)| l.as_str()).collect();
        std::fs::write(&f, text.join("\n") + "\n").unwrap();
        super::import(&a, &f);
    }
    let r = ok(auditq(&a).args(["query", "--format", "csv", "--", "| fields time, id"]));
    let times: Vec<&str> = r.stdout.lines().skip(1).map(|l| &l[..24]).collect();
    assert_eq!(times.len(), 4000);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "not in time order");
}

/// "The latest N that match": under `sort -time | head N` a filtered scan reads the
/// newest files first, so the TopK's threshold skips the older files; the rows are the
/// ones a full sort gives, newest or oldest first, on compacted and overlapping files.
#[test]
fn latest_n_with_a_filter_reads_newest_files_first_and_answers_as_a_full_sort() {
    let dir = tempfile::tempdir().unwrap();
    let all = super::generate(dir.path(), 6000, 4);
    let a = dir.path().join("a");
    super::import(&a, &all);
    // The same events again as a second file per day (nothing new: ids dedupe), then a
    // second archive with two overlapping files a day.
    let b = dir.path().join("b");
    let lines: Vec<String> = std::fs::read_to_string(&all)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    for half in [0, 1] {
        let f = dir.path().join(format!("half-{half}"));
        let part: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == half)
            .map(|(_, l)| l.as_str())
            .collect();
        std::fs::write(&f, part.join("\n") + "\n").unwrap();
        super::import(&b, &f);
    }
    let csv = |archive: &Path, q: &str| -> Vec<String> {
        let r =
            ok(super::query_at(archive, "2026-11-01T00:00:00Z").args(["--format", "csv", "--", q]));
        r.stdout.lines().skip(1).map(str::to_owned).collect()
    };
    for archive in [&a, &b] {
        for filter in [
            "event ~ \"*delete*\"",
            "actor.type = user and country != US",
        ] {
            let mut times = csv(archive, &format!("{filter} | fields time"));
            assert!(times.len() > 50, "{filter}: {}", times.len());
            let oldest = csv(
                archive,
                &format!("{filter} | sort time | head 7 | fields time"),
            );
            assert_eq!(oldest, times[..7].to_vec(), "{filter}");
            times.reverse();
            let newest = csv(
                archive,
                &format!("{filter} | sort -time | head 7 | fields time"),
            );
            assert_eq!(newest, times[..7].to_vec(), "{filter}");
        }
    }
    // On the compacted archive, most files are skipped.
    let r = ok(auditq(&a).args([
        "explain",
        "--analyze",
        "--now",
        "2026-11-01T00:00:00Z",
        "event ~ \"*delete*\" | sort -time | head 7",
    ]));
    assert!(r.stdout.contains("reverse_row_groups=true"), "{}", r.stdout);
    let pruned = r
        .stdout
        .split("files_ranges_pruned_statistics=")
        .nth(1)
        .expect("a pruning metric");
    let (total, rest) = pruned.split_once(" total → ").unwrap();
    let matched: u32 = rest.split(' ').next().unwrap().parse().unwrap();
    let total: u32 = total.parse().unwrap();
    // Each of the two partitions reads its newest files until its own TopK is full:
    // three or four files of thirty, as the files' sizes split the days between them.
    assert!(
        total >= 28 && matched <= 4,
        "{matched} of {total} files read"
    );
}

/// `raw` is the event as received and `raw.PATH` reads any value inside it, in filters,
/// `fields` and `has`: nothing the API sends is out of reach.
#[test]
fn raw_paths_reach_every_value_the_api_sent() {
    let r = ok(&mut query(
        &["--format", "csv"],
        "raw.attributes.actor.auth.authType = API-TOKEN | fields id, raw.attributes.actor.auth.tokenLabel",
    ));
    assert_eq!(
        r.stdout,
        "id,raw.attributes.actor.auth.tokenLabel\ngolden-e07,ci-token\ngolden-e08,ci-token\ngolden-e15,export_token\n"
    );
    let r = ok(&mut query(
        &["--format", "csv"],
        "has raw.attributes.actor.auth | count",
    ));
    assert_eq!(r.stdout, "count\n3\n");
    // A list element, by index (backticks: a number is not an identifier).
    let r = ok(&mut query(
        &["--format", "csv"],
        "id == golden-e01 | fields `raw.attributes.container.0.attributes.name`",
    ));
    assert_eq!(r.stdout.lines().nth(1), Some("Example Jira"));
    // `raw` itself: the JSON as received.
    let r = ok(&mut query(
        &["--format", "csv"],
        "raw ~ \"*ci-token*\" | count",
    ));
    assert_eq!(r.stdout, "count\n2\n");
}
