//! Macros: a macros file (`--macros`, or the config directory's `macros.aq`), `let`
//! statements at the start of a query or a query file, and errors drawn at the use and
//! at the definition.

use super::{auditq, ok, run};

const NOW: &str = "2026-02-18T12:00:00Z";

#[test]
fn macros_expand_from_files_and_statements_and_errors_show_both_places() {
    let dir = tempfile::tempdir().unwrap();
    let a = super::query::archive();
    let file = dir.path().join("team.aq");
    std::fs::write(
        &file,
        "# Shared by the team\nlet logins = event ~ \"user_login*\";\n\
         let top = | count by actor | sort -count, actor | head 2;\nlet bad = actr:ada;\n",
    )
    .unwrap();
    let query = |args: &[&str]| {
        let mut c = auditq(a);
        c.args(["--macros"])
            .arg(&file)
            .args(["query", "--now", NOW, "--format", "csv"])
            .args(args);
        run(&mut c)
    };
    let plain = ok(super::query_at(a, NOW).args([
        "--format",
        "csv",
        "--",
        "(event ~ \"user_login*\") since 7d | count by actor | sort -count, actor | head 2",
    ]));
    let with = query(&["--", "$logins since 7d $top"]);
    assert_eq!(with.code, 0, "{}", with.stderr);
    assert_eq!(with.stdout, plain.stdout);
    assert!(plain.stdout.lines().count() == 3, "{}", plain.stdout);

    // Statements before the query, in a query file too; a later one shadows.
    let qfile = dir.path().join("q.aq");
    std::fs::write(
        &qfile,
        "let logins = event:user_login_failed;\n$logins | count\n",
    )
    .unwrap();
    let failed = query(&["--file", qfile.to_str().unwrap()]);
    let direct = ok(super::query_at(a, NOW).args([
        "--format",
        "csv",
        "--",
        "event:user_login_failed | count",
    ]));
    assert_eq!(failed.stdout, direct.stdout);

    // An error inside a macro: drawn at the use, then at the definition.
    let bad = query(&["--", "since 1d $bad | count"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("1 | since 1d $bad | count"),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stderr.contains("in `$bad`, defined in"),
        "{}",
        bad.stderr
    );
    assert!(
        bad.stderr.contains("4 | let bad = actr:ada;"),
        "{}",
        bad.stderr
    );
    let unknown = query(&["--", "$login | count"]);
    assert!(
        unknown.stderr.contains("did you mean `$logins`?"),
        "{}",
        unknown.stderr
    );

    // Without --macros: the config directory's macros.aq, if there is one.
    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("auditq")).unwrap();
    std::fs::copy(&file, config.join("auditq/macros.aq")).unwrap();
    let mut c = auditq(a);
    c.env("XDG_CONFIG_HOME", &config).args([
        "query",
        "--now",
        NOW,
        "--format",
        "csv",
        "--",
        "$logins since 7d $top",
    ]);
    assert_eq!(ok(&mut c).stdout, plain.stdout);
    // A --macros file that is not there is an error, not "no macros".
    let mut c = auditq(a);
    c.args(["--macros", "/nonexistent/m.aq", "query", "--", "| count"]);
    let missing = run(&mut c);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(missing.stderr.contains("macros file"), "{}", missing.stderr);
}
