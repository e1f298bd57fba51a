//! `auditq repl` driven in a pseudo-terminal, keys and all: a query and its table,
//! completion of a field and of an action, a two-line query, a caret error, Ctrl-C during
//! a long query, `.format csv`, and history across a restart.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rexpect::session::{PtySession, spawn_command};

use super::{auditq, generate};

const NOW: &str = "2026-11-01T00:00:00Z";

/// The prompt, with its own history and config under `home`.
fn prompt(archive: &Path, home: &Path) -> PtySession {
    let mut cmd: Command = auditq(archive);
    // The pty is the standard input (`auditq` gives a null one).
    cmd.stdin(std::process::Stdio::inherit())
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("TERM", "xterm")
        .env("COLUMNS", "160")
        .env("LINES", "60")
        .args(["repl", "--now", NOW]);
    let mut p = spawn_command(cmd, Some(60_000)).expect("the prompt starts in a pty");
    p.exp_string("auditq> ").expect("a prompt");
    p
}

/// The output up to `marker`, then up to the next prompt: the editor discards input
/// typed before it takes the terminal back, so each line waits for that. (The prompt
/// alone is no marker: it is redrawn as keys are typed.)
fn answer(p: &mut PtySession, marker: &str) -> String {
    let out = until(p, marker);
    until(p, "auditq> ");
    out
}

/// The output up to `marker`.
fn until(p: &mut PtySession, marker: &str) -> String {
    let got = p
        .exp_string(marker)
        .unwrap_or_else(|e| panic!("waiting for {marker:?}: {e}"));
    // rexpect hands over each byte as one char: back to UTF-8.
    let bytes: Vec<u8> = got.chars().map(|c| c as u32 as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn an_analyst_session() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let events = generate(dir.path(), 300_000, 7);
    super::import(&archive, &events);
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    let mut p = prompt(&archive, &home);

    // A query and its table, with the footer.
    p.send_line(r#"event = "user_login" | count"#).unwrap();
    let out = answer(&mut p, "1 row in");
    assert!(out.contains("│ count"), "{out}");

    // What another process archives meanwhile shows in the next query.
    let before = count_in(&out);
    let more = generate(dir.path(), 5_000, 8);
    super::import(&archive, &more);
    p.send_line(r#"event = "user_login" | count"#).unwrap();
    let after = count_in(&answer(&mut p, "1 row in"));
    assert!(after > before, "{before} -> {after}");

    // `.as-of` answers from an earlier version (0: the empty table), then the latest.
    p.send_line(".as-of 0").unwrap();
    answer(&mut p, "queries answer as of version 0");
    p.send_line(r#"event = "user_login" | count"#).unwrap();
    assert_eq!(count_in(&answer(&mut p, "1 row in")), 0);
    p.send_line(".as-of").unwrap();
    answer(&mut p, "queries answer from the latest version");
    p.send_line(r#"event = "user_login" | count"#).unwrap();
    assert_eq!(count_in(&answer(&mut p, "1 row in")), after);

    // Tab completes a field: `countr` -> `country`.
    p.send(r#"event = "user_login" | count by countr"#).unwrap();
    p.send("\t").unwrap();
    p.send_line("").unwrap();
    let out = answer(&mut p, "rows in");
    assert!(out.contains("│ country"), "{out}");

    // Tab completes an action from the archive: `user_logo` -> `"user_logout"`.
    p.send(r#"event ~ "user_logo"#).unwrap();
    p.send("\t").unwrap();
    p.send_line(" | count by event").unwrap();
    let out = answer(&mut p, "1 row in");
    assert!(out.contains("│ user_logout"), "{out}");

    // A line ending in `|` goes on to the next.
    p.send_line(r#"event = "user_login" |"#).unwrap();
    p.send_line("count by actor.name | head 3").unwrap();
    let out = answer(&mut p, "3 rows in");
    assert!(out.contains("│ actor.name"), "{out}");

    // A typo: the caret rendering, with "did you mean".
    p.send_line(r#"actr = "x""#).unwrap();
    let out = answer(&mut p, "did you mean `actor`");
    assert!(out.contains("^^^^ not a field"), "{out}");

    // Ctrl-C during a long query cancels it, and the prompt takes the next line.
    // Pasted (one redraw, not one per key); the editor turns bracketed paste off once
    // it accepted the line.
    p.send(&format!("\x1b[200~{}\x1b[201~\r", long_query()))
        .unwrap();
    p.flush().unwrap();
    until(&mut p, "\x1b[?2004l");
    std::thread::sleep(Duration::from_millis(300));
    p.send_control('c').unwrap();
    answer(&mut p, "cancelled");

    // `.format csv`, then a query prints CSV.
    p.send_line(".format csv").unwrap();
    answer(&mut p, "format: csv");
    p.send_line(r#"event = "user_logout" | count"#).unwrap();
    p.exp_regex(r"count\r?\n\d+\r?\n")
        .expect("the count as CSV");
    answer(&mut p, "row in");

    // An output file whose extension auditq does not write is refused, not written as CSV.
    p.send_line(".output report.xlsx").unwrap();
    answer(&mut p, "`.xlsx` is not a format auditq writes");
    p.send_line(".output").unwrap();
    answer(&mut p, "results go to the screen");

    p.send_line(".quit").unwrap();
    p.exp_eof().unwrap();

    // History survives a restart: Ctrl-R finds the earlier query, Enter runs it.
    let mut p = prompt(&archive, &home);
    p.send_control('r').unwrap();
    p.send("by actor.name | hea").unwrap();
    p.flush().unwrap();
    p.send_line("").unwrap(); // accept the match
    p.send_line("").unwrap(); // run it
    let out = answer(&mut p, "3 rows in");
    assert!(out.contains("│ actor.name"), "{out}");
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
}

/// The number in a one-cell table.
fn count_in(out: &str) -> u64 {
    let row = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix('│')?.trim().strip_suffix('│'))
        .filter_map(|cell| cell.trim().parse().ok())
        .next_back();
    row.unwrap_or_else(|| panic!("no count in {out}"))
}

/// A query that takes seconds: an IP against 1,500 networks, none of which holds it
/// (most of the time goes to planning the long `or`, which does not yield).
/// A query that runs for tens of seconds on the session's 305,000 events: each row's raw
/// JSON parsed for 40 different paths. (1,500 networks were slow until they became one
/// table of networks.)
fn long_query() -> String {
    let paths: Vec<String> = (0..40)
        .map(|i| format!("raw.attributes.p{i} = \"x\""))
        .collect();
    format!("{} | count by message", paths.join(" or "))
}
