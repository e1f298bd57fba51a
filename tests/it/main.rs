//! The one integration-test binary: the `auditq` executable driven as users drive it.

mod archive_faults;
#[cfg(feature = "cluster")]
mod cluster;
mod differential;
mod evidence;
mod first_seen;
mod follow;
mod hostile;
mod import;
mod kill;
mod layers;
mod lookup;
mod macros;
mod output;
mod python_delta;
mod query;
mod rename;
mod repl;
mod rules;
mod s3;
mod s3_faults;
mod sequence;
mod sync;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A secret planted in the environment of every command the suite runs (as the AWS
/// secret key, the HEC token and one more variable); [`run`] fails a test whose command
/// printed it (issue 27: a lookup error once printed the whole environment).
pub const CANARY: &str = "auditq-canary-5eb1c7";

/// The built binary, with an environment that ignores the developer's own settings.
pub fn auditq(archive: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auditq"));
    c.env("AWS_SECRET_ACCESS_KEY", CANARY)
        .env("SPLUNK_HEC_TOKEN", CANARY)
        .env("AUDITQ_TEST_SECRET", CANARY);
    c.env_remove("AUDITQ_ARCHIVE")
        .env("AUDITQ_CONFIG", archive.with_extension("no-config.toml"))
        .env("NO_COLOR", "1")
        .arg("--archive")
        .arg(archive)
        .stdin(Stdio::null());
    c
}

/// Exit code, stdout, stderr.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Run {
    finished(cmd.output().expect("auditq runs"))
}

/// `cmd follow --stdin QUERY` (quiet), fed `parts` with `pause` between them, to its end.
pub fn follow_stdin(
    cmd: &mut Command,
    query: &str,
    parts: &[&[u8]],
    pause: std::time::Duration,
) -> Run {
    use std::io::Write;
    let mut child = cmd
        .args(["--quiet", "follow", "--stdin", query])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("auditq runs");
    let mut stdin = child.stdin.take().expect("piped");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        stdin.write_all(part).expect("follow reads its input");
    }
    drop(stdin);
    finished(child.wait_with_output().expect("auditq runs"))
}

/// A finished command's output, checked for panics and the planted secrets.
fn finished(output: Output) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = output;
    let r = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    assert!(
        !r.stderr.contains("panicked"),
        "auditq panicked:\n{}",
        r.stderr
    );
    assert!(
        !r.stdout.contains(CANARY) && !r.stderr.contains(CANARY),
        "a secret of the environment was printed:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    r
}

pub fn ok(cmd: &mut Command) -> Run {
    let r = run(cmd);
    assert_eq!(
        r.code, 0,
        "expected success\nstdout: {}\nstderr: {}",
        r.stdout, r.stderr
    );
    r
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `../shared/samples`, when this checkout sits beside it.
pub fn shared_samples() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/samples");
    p.is_dir().then_some(p)
}

/// `archive stats --json` parsed.
pub fn stats(archive: &Path) -> serde_json::Value {
    let r = ok(auditq(archive).args(["archive", "stats", "--json"]));
    serde_json::from_str(&r.stdout).expect("stats is JSON")
}

/// Generate `n` events over 30 days into a file (deterministic).
pub fn generate(dir: &Path, n: u64, seed: u64) -> PathBuf {
    let path = dir.join(format!("gen-{n}-{seed}.ndjson"));
    generate_to(&path, n, 30, "2026-11-01T00:00:00Z", seed);
    path
}

/// `auditq generate`: `n` events over `days` days ending at `end`, with `seed`, into
/// `path` (the same arguments give the same events).
pub fn generate_to(path: &Path, n: u64, days: u32, end: &str, seed: u64) {
    let scratch = path.with_extension("unused");
    ok(auditq(&scratch)
        .args(["generate", "--events", &n.to_string()])
        .args(["--days", &days.to_string(), "--end", end])
        .args(["--seed", &seed.to_string(), "-o"])
        .arg(path));
}

/// `auditq query --now NOW` on `archive` (the rest of the arguments to add).
pub fn query_at(archive: &Path, now: &str) -> Command {
    let mut c = auditq(archive);
    c.args(["query", "--now", now]);
    c
}

/// `auditq explain --now NOW` on `archive` (the rest of the arguments to add).
pub fn explain_at(archive: &Path, now: &str) -> Command {
    let mut c = auditq(archive);
    c.args(["explain", "--now", now]);
    c
}

/// `auditq import --quiet FILE` into `archive`.
pub fn import(archive: &Path, file: &Path) {
    ok(auditq(archive).args(["import", "--quiet"]).arg(file));
}

/// Assert the summary line (stdout) starts as expected.
#[track_caller]
pub fn assert_summary(r: &Run, prefix: &str) {
    assert!(
        r.stdout.starts_with(prefix),
        "expected `{prefix}…`, got: {}",
        r.stdout
    );
}

/// The raw files (not the `.meta.json`) in `ARCHIVE/quarantine/KIND`.
pub fn quarantined(archive: &Path, kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(archive.join("quarantine").join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".meta.json"))
        .collect();
    files.sort();
    files
}

/// Run `tests/python/SCRIPT ARGS…` with the Python `AUDITQ_PYTHON` names; its stdout.
pub fn python_script(script: &str, args: &[&Path]) -> Vec<u8> {
    let python = std::env::var_os("AUDITQ_PYTHON").expect("AUDITQ_PYTHON is set");
    let out = Command::new(python)
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/python")
                .join(script),
        )
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
