//! Issue 27, items 3–7: inputs that took the process down, hung it, printed secrets or
//! answered wrongly with exit 0. Each is now refused with a clear error (exit 2) or
//! answered correctly. Every command here runs with the canary secrets of
//! [`super::auditq`] planted, and [`super::run`] fails any that prints one.

use std::path::Path;

use super::{CANARY, auditq, fixture, ok, run};

/// Seven levels of a macro used ten times by the next: 10^7 copies of the first.
fn power_macros() -> String {
    let mut text = String::from("let a0 = actor = \"x\";\n");
    for i in 1..=7 {
        let uses = vec![format!("$a{}", i - 1); 10].join(" or ");
        text.push_str(&format!("let a{i} = {uses};\n"));
    }
    text
}

#[test]
fn a_macro_that_grows_as_a_power_is_refused_in_query_and_detect() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    ok(auditq(&a).arg("import").arg(fixture("events.ndjson")));
    let query = format!("{}$a7 | count", power_macros());
    let r = run(auditq(&a).args(["query", "--", &query]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("E0444") && r.stderr.contains("$a7") && r.stderr.contains("^^^"),
        "{}",
        r.stderr
    );
    // The same in a rule of a pack.
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("power.aq"),
        format!("# name: power\n# severity: low\n{}$a7", power_macros()),
    )
    .unwrap();
    let r = run(auditq(&a).arg("detect").arg(&rules));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("E0444"), "{}", r.stderr);
}

/// A rule pack's lookup file may be anything: a link to `/proc/self/environ` (the
/// environment, secrets and all), to `/dev/zero` (an 8 GiB allocation, then an abort),
/// or a FIFO (a hang). None is read into a message; none hangs or aborts.
#[test]
fn lookup_and_macros_files_that_are_not_plain_data_are_refused_unechoed() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    ok(auditq(&a).arg("import").arg(fixture("events.ndjson")));
    let link = |name: &str, to: &str| {
        let p = dir.path().join(name);
        std::os::unix::fs::symlink(to, &p).unwrap();
        p
    };
    let environ = link("roster.csv", "/proc/self/environ");
    let zero = link("zero.csv", "/dev/zero");
    let fifo = dir.path().join("fifo.csv");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    for (file, why) in [
        (&environ, "not a CSV header"),
        (&zero, "not a regular file"),
        (&fifo, "not a regular file"),
    ] {
        let q = format!(
            "| lookup \"{}\" on actor.id = email fields owner | count",
            file.display()
        );
        let r = run(auditq(&a)
            .env("ATLASSIAN_API_KEY", CANARY)
            .args(["query", "--", &q]));
        assert_eq!(r.code, 2, "{}: {}", file.display(), r.stderr);
        assert!(
            r.stderr.contains("E0430") && r.stderr.contains(why),
            "{}: {}",
            file.display(),
            r.stderr
        );
    }
    // A CSV whose header names secrets (`KEY=value`): its columns are not listed.
    let named = dir.path().join("named.csv");
    std::fs::write(
        &named,
        format!("email,AWS_SECRET_ACCESS_KEY={CANARY}\nx@example.com,1\n"),
    )
    .unwrap();
    let q = format!(
        "| lookup \"{}\" on actor.id = mail | count",
        named.display()
    );
    let r = run(auditq(&a).args(["query", "--", &q]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("E0431") && r.stderr.contains("its columns: email, and 1 more"),
        "{}",
        r.stderr
    );
    // A macros file: the same refusals (exit 2), nothing echoed.
    let environ_aq = link("environ.aq", "/proc/self/environ");
    for (file, why) in [
        (&environ_aq, "not a text file"),
        (&zero, "not a regular file"),
        (&fifo, "not a regular file"),
    ] {
        let r = run(auditq(&a)
            .env("ATLASSIAN_API_KEY", CANARY)
            .arg("query")
            .arg("--macros")
            .arg(file)
            .args(["--", "| count"]));
        assert_eq!(r.code, 2, "{}: {}", file.display(), r.stderr);
        assert!(r.stderr.contains(why), "{}: {}", file.display(), r.stderr);
    }
    // A rule file that is a FIFO.
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(rules.join("hang.aq"))
        .status();
    assert!(made.is_ok_and(|s| s.success()));
    let r = run(auditq(&a).arg("detect").arg(&rules));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
}

/// An event with a field nested 200 levels deep: every `raw.PATH` of it read null
/// (serde_json's limit is 128 for a whole document), and queries answered 0 with exit 0.
#[test]
fn an_event_nested_deeper_than_json_parsers_like_is_still_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let event = format!(
        r#"{{"id":"deep-1","type":"events","attributes":{{"time":"2026-03-04T08:00:00.000Z","action":"user_login","actor":{{"id":"u1"}},"deep":{deep}}}}}"#
    );
    let file = dir.path().join("deep.ndjson");
    std::fs::write(&file, format!("{event}\n")).unwrap();
    super::import(&a, &file);
    let q = |text: &str| ok(auditq(&a).args(["query", "--format", "csv", "--", text])).stdout;
    assert_eq!(
        q("raw.attributes.action = \"user_login\" | count"),
        "count\n1\n"
    );
    let inner = q("| fields `raw.attributes.deep.0.0.0.0`");
    assert_eq!(
        inner.lines().nth(1),
        Some(format!("{}1{}", "[".repeat(196), "]".repeat(196)).as_str()),
        "{inner}"
    );
    // follow evaluates the same expression on the stream.
    let out = super::follow_stdin(
        &mut auditq(&dir.path().join("unused")),
        "raw.attributes.action = \"user_login\" | fields id",
        &[format!("{event}\n").as_bytes()],
        std::time::Duration::ZERO,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("deep-1"), "{}", out.stdout);
}

/// `network_of` compared each network with every one before it (30k networks: 1.25 s,
/// 100k: 15 s, 1M: past 300 s). 200k networks now load in about a second.
#[test]
fn a_cidr_lookup_of_200k_networks_answers_by_the_longest_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    ok(auditq(&a).arg("import").arg(fixture("single.json")));
    let nets = dir.path().join("nets.csv");
    let mut text = String::from("net,site\n");
    for i in 0..200_000u32 {
        let (b, c) = (i / 256 % 256, i % 256);
        text.push_str(&format!("10.{}.{b}.{c}/32,host{i}\n", i / 65_536));
    }
    text.push_str("198.51.100.0/24,office\n198.51.0.0/16,region\n");
    std::fs::write(&nets, text).unwrap();
    let q = format!(
        "| lookup \"{}\" on ip cidr net fields site | fields site",
        nets.display()
    );
    let r = ok(auditq(&a).args(["query", "--format", "csv", "--", &q]));
    assert_eq!(r.stdout, "site\noffice\n");
}

#[test]
fn a_sequence_keyed_by_id_time_or_action_answers() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let events = super::generate(dir.path(), 3000, 9);
    super::import(&a, &events);
    for key in ["id", "time", "action", "actor.id, action"] {
        let q =
            format!("| sequence by {key} within 1h [event:user_login] [event:user_login] | count");
        let r = run(auditq(&a).args(["query", "--format", "csv", "--", &q]));
        assert_eq!(r.code, 0, "{key}: {}", r.stderr);
        assert!(r.stdout.starts_with("count\n"), "{key}: {}", r.stdout);
    }
    // By action, two logins within the hour make a sequence; by id never (one event each).
    let count = |key: &str| {
        let q =
            format!("| sequence by {key} within 1h [event:user_login] [event:user_login] | count");
        ok(auditq(&a).args(["query", "--format", "csv", "--", &q]))
            .stdout
            .lines()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(count("id"), 0);
    assert!(count("action") > 0);
}

#[test]
fn an_s3_url_with_credentials_is_refused_without_echoing_them() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("s3://AKIAEXAMPLE:{CANARY}@bucket/prefix");
    for args in [&["query", "--", "| count"][..], &["archive", "stats"][..]] {
        let r = run(auditq(Path::new(&url)).args(args));
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(
            r.stderr.contains("s3://***@bucket/prefix") && r.stderr.contains("credentials"),
            "{}",
            r.stderr
        );
    }
    let _ = dir;
}

/// `first_seen raw` sorted every event's whole JSON (5 GB at 1.5M events): the window
/// now reads the text's fingerprint, worked out before it.
#[test]
fn first_seen_of_a_long_text_partitions_by_its_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    ok(auditq(&a).arg("import").arg(fixture("events.ndjson")));
    let r = ok(auditq(&a).args(["explain", "| first_seen raw | count"]));
    let window = r
        .stdout
        .lines()
        .find(|l| l.contains("WindowAggr"))
        .unwrap_or_else(|| panic!("no window in the plan:\n{}", r.stdout));
    assert!(
        window.contains("__part0") && !window.contains("raw"),
        "{window}"
    );
    assert!(r.stdout.contains("fingerprint("), "{}", r.stdout);
    // The same answer as counting distinct raws.
    let q = |t: &str| ok(auditq(&a).args(["query", "--format", "csv", "--", t])).stdout;
    let both = q("| count, dc(raw) as raws");
    let distinct = both.lines().nth(1).unwrap().split(',').nth(1).unwrap();
    assert_eq!(
        q("| first_seen raw | count"),
        format!("count\n{distinct}\n")
    );
}
