//! Evidence (issue 29): keys, sealing, proofs checked by the independent verifier in
//! `examples/verify/`, verification of the whole archive, time travel and evidence
//! bundles. Tests that run Python need `AUDITQ_PYTHON` (`scripts/test` makes it).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// `auditq key generate` into `dir`: (private key file, verifier key text).
pub fn make_key(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("seal.key");
    let r = ok(auditq(&dir.join("unused"))
        .args([
            "key",
            "generate",
            "--name",
            "audit.example.com/test",
            "--out",
        ])
        .arg(&key));
    (key, r.stdout.trim().to_owned())
}

/// `auditq` on `archive` with `key` configured as the signing key.
fn sealing(archive: &Path, key: &Path) -> Command {
    let mut c = auditq(archive);
    c.env("AUDITQ_SIGNING_KEY", key);
    c
}

/// `examples/verify/verify.py --key KEY ARGS…`: (exit code, stdout).
fn independent(key: &str, args: &[&str]) -> (i32, String) {
    let python = std::env::var_os("AUDITQ_PYTHON").expect("AUDITQ_PYTHON is set");
    let out = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/verify/verify.py"))
        .args(["--key", key])
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.stderr.is_empty(),
        "verify.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The ids of an NDJSON file of events.
fn ids_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// `input` split into files of the given sizes, in order.
fn split(dir: &Path, input: &Path, sizes: &[usize]) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(input).unwrap();
    let mut lines = text.lines();
    sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let path = dir.join(format!("part-{i}.ndjson"));
            let part: Vec<&str> = lines.by_ref().take(n).collect();
            std::fs::write(&path, part.join("\n") + "\n").unwrap();
            path
        })
        .collect()
}

#[test]
fn a_key_is_written_for_its_owner_alone_and_only_the_verifier_is_printed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    let r = ok(auditq(&dir.path().join("a"))
        .args([
            "key",
            "generate",
            "--name",
            "audit.example.com/jira",
            "--out",
        ])
        .arg(&key));
    let private = std::fs::read_to_string(&key).unwrap();
    assert!(
        private.starts_with("PRIVATE+KEY+audit.example.com/jira+"),
        "{private}"
    );
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let verifier = r.stdout.trim();
    assert!(
        verifier.starts_with("audit.example.com/jira+"),
        "{verifier}"
    );
    // PRIVATE+KEY+<name>+<key hash>+<base64 key>: the key is all after the fourth `+`
    // (base64 may hold `+` itself).
    let secret = private.trim().splitn(5, '+').nth(4).unwrap();
    assert!(secret.len() > 40, "{secret}");
    assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret));
    // An existing file is never overwritten; a bad name is a usage error.
    let again = run(auditq(&dir.path().join("a"))
        .args(["key", "generate", "--name", "x", "--out"])
        .arg(&key));
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), private);
    let bad = run(auditq(&dir.path().join("a"))
        .args(["key", "generate", "--name", "has space", "--out"])
        .arg(dir.path().join("k2")));
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    // A broken key file is named, its text never shown.
    std::fs::write(
        dir.path().join("broken"),
        "PRIVATE+KEY+x+00000000+c2VjcmV0LXRleHQ=",
    )
    .unwrap();
    let r =
        run(sealing(&dir.path().join("a"), &dir.path().join("broken")).args(["archive", "seal"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("signing key") && !r.stderr.contains("c2VjcmV0"),
        "{}",
        r.stderr
    );
}

/// Flip one byte of a proof's JSON text, in a place chosen by `k`: the event, the leaf
/// hash, the path, the index, the checkpoint's root or its signature.
fn one_byte_changed(line: &str, k: usize) -> String {
    let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
    let flip = |s: &str, at: usize| -> String {
        let mut b = s.as_bytes().to_vec();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let field = |v: &serde_json::Value, f: &str| v[f].as_str().unwrap().to_owned();
    match k % 6 {
        0 => {
            let raw = field(&v, "raw");
            let at = raw.find("\"action\"").unwrap() + 11;
            v["raw"] = flip(&raw, at).into();
        }
        1 => v["leaf_hash"] = flip(&field(&v, "leaf_hash"), 0).into(),
        2 => {
            let p = v["inclusion_path"][0].as_str().unwrap().to_owned();
            v["inclusion_path"][0] = flip(&p, 0).into();
        }
        3 => v["leaf_index"] = (v["leaf_index"].as_u64().unwrap() ^ 1).into(),
        4 => {
            let c = field(&v, "checkpoint");
            let root_line = c.split('\n').take(2).map(|l| l.len() + 1).sum::<usize>();
            v["checkpoint"] = flip(&c, root_line).into();
        }
        _ => {
            let c = field(&v, "checkpoint");
            let sig = c.rfind(' ').unwrap() + 10;
            v["checkpoint"] = flip(&c, sig).into();
        }
    }
    v.to_string()
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn the_independent_verifier_accepts_every_proof_and_rejects_each_with_one_byte_changed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, verifier) = make_key(d);
    let a = d.join("archive");
    let input = generate(d, 3300, 29);
    // Eleven sealed imports of uneven sizes: eleven checkpoints, most not on a chunk's edge.
    let sizes = [1, 255, 300, 313, 256, 400, 199, 500, 376, 300, 400];
    for part in split(d, &input, &sizes) {
        ok(sealing(&a, &key).args(["import", "--quiet"]).arg(&part));
    }
    let checkpoints: Vec<PathBuf> = {
        let mut c: Vec<PathBuf> = std::fs::read_dir(a.join("evidence/checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        c.sort();
        c
    };
    assert_eq!(checkpoints.len(), sizes.len());
    // 1,000 ids of the 3,300, spread over every import.
    let ids: Vec<String> = ids_of(&input).into_iter().step_by(3).take(1000).collect();
    let r = ok(auditq(&a).args(["archive", "prove"]).args(&ids));
    // Without the cache that says where each file's bloom filters lie (a read-only copy
    // of the archive), the filters in the files' footers find the same events.
    let cache = a.join("cache");
    std::fs::rename(&cache, d.join("cache.saved")).unwrap();
    std::fs::write(&cache, "not a directory").unwrap();
    let again = ok(auditq(&a).args(["archive", "prove"]).args(&ids));
    assert_eq!(again.stdout, r.stdout);
    std::fs::remove_file(&cache).unwrap();
    std::fs::rename(d.join("cache.saved"), &cache).unwrap();
    let proofs = d.join("proofs.ndjson");
    std::fs::write(&proofs, &r.stdout).unwrap();
    let (code, out) = independent(&verifier, &["inclusion", proofs.to_str().unwrap()]);
    assert_eq!(
        (code, out.trim()),
        (0, "ok: 1000 events are in the signed tree")
    );
    let changed: Vec<String> = r
        .stdout
        .lines()
        .enumerate()
        .map(|(k, l)| one_byte_changed(l, k))
        .collect();
    std::fs::write(&proofs, changed.join("\n") + "\n").unwrap();
    let (code, out) = independent(&verifier, &["inclusion", proofs.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("FAIL line")).count(),
        1000,
        "{out}"
    );
    // Each older checkpoint is consistent with the latest; a byte changed in the path,
    // or an old checkpoint of another size, is refused.
    for old in &checkpoints[..checkpoints.len() - 1] {
        let size: u64 = old.file_name().unwrap().to_str().unwrap().parse().unwrap();
        let r = ok(auditq(&a).args(["archive", "prove", "--consistency", &size.to_string()]));
        let proof = d.join("consistency.json");
        std::fs::write(&proof, &r.stdout).unwrap();
        let args = [
            "consistency",
            old.to_str().unwrap(),
            proof.to_str().unwrap(),
        ];
        let (code, out) = independent(&verifier, &args);
        assert_eq!(code, 0, "{size}: {out}");
        let mut v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let first = v["consistency_path"][0].as_str().unwrap().to_owned();
        let mut b = first.into_bytes();
        b[0] = if b[0] == b'A' { b'B' } else { b'A' };
        v["consistency_path"][0] = String::from_utf8(b).unwrap().into();
        std::fs::write(&proof, v.to_string()).unwrap();
        let (code, out) = independent(&verifier, &args);
        assert_eq!(code, 1, "{size} with a byte changed: {out}");
    }
    // The checkpoints themselves, and one signed by another key.
    let latest = checkpoints.last().unwrap().to_str().unwrap();
    assert_eq!(independent(&verifier, &["checkpoint", latest]).0, 0);
    let (_, other) = make_key(&d.join("other").tap_dir());
    assert_eq!(independent(&other, &["checkpoint", latest]).0, 1);
    // auditq's own verification agrees, and says how much is sealed.
    let r = ok(auditq(&a).args(["archive", "verify", "--verifier-key", &verifier]));
    assert!(
        r.stdout
            .contains("every event matches the evidence log: 3300 leaves sealed in 11 checkpoints"),
        "{}",
        r.stdout
    );
    let r = run(auditq(&a).args(["archive", "verify", "--verifier-key", &other]));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("does not verify with key"),
        "{}",
        r.stderr
    );
}

trait TapDir {
    fn tap_dir(self) -> Self;
}

impl TapDir for PathBuf {
    /// The directory, made.
    fn tap_dir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn the_tamper_suite_catches_every_kind_and_nothing_else() {
    let python = PathBuf::from(std::env::var_os("AUDITQ_PYTHON").unwrap());
    let venv = python.parent().unwrap().parent().unwrap();
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/tamper.sh"))
        .arg("1500")
        .env("AUDITQ_BIN", env!("CARGO_BIN_EXE_auditq"))
        .env("AUDITQ_VENV", venv)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("caught ")).count(),
        13,
        "{stdout}"
    );
    assert!(
        stdout.contains("all 13 kinds of tampering caught"),
        "{stdout}"
    );
}

/// The counts each version answers, read with `--as-of`.
fn counts_as_of(c: &mut dyn FnMut() -> Command, versions: &[u64]) -> Vec<u64> {
    versions
        .iter()
        .map(|v| {
            let r = ok(c().args([
                "query",
                "--as-of",
                &v.to_string(),
                "--format",
                "csv",
                "| count",
            ]));
            r.stdout.lines().nth(1).unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn as_of_answers_from_each_version_and_history_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, verifier) = make_key(d);
    let a = d.join("archive");
    let input = generate(d, 900, 7);
    for part in split(d, &input, &[200, 300, 400]) {
        ok(sealing(&a, &key)
            .args(["--no-compact", "import", "--quiet"])
            .arg(&part));
    }
    // Version 0 creates the table; 1, 2, 3 are the imports (no merges between them).
    assert_eq!(
        counts_as_of(&mut || auditq(&a), &[0, 1, 2, 3]),
        [0, 200, 500, 900]
    );
    let r = ok(auditq(&a).args(["archive", "history", "--json"]));
    let h: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(h.len(), 4);
    for (v, (added, tree)) in h[1..].iter().zip([(200, 200), (300, 500), (400, 900)]) {
        assert_eq!(v["operation"], "WRITE");
        assert_eq!(v["events_added"], added, "{v}");
        assert_eq!(v["tree_size"], tree, "{v}");
        assert_eq!(v["checkpoint"], tree, "{v}");
        assert!(v["time"].as_str().unwrap().ends_with('Z'), "{v}");
    }
    // A time: the last version committed by then; before the first, a usage error.
    let t = h[2]["time"].as_str().unwrap();
    let r = ok(auditq(&a).args(["query", "--as-of", t, "--format", "csv", "| count"]));
    assert_eq!(r.stdout.lines().nth(1), Some("500"));
    assert!(r.stderr.contains("as of version 2"), "{}", r.stderr);
    for bad in ["2001-01-01", "9", "yesterday"] {
        let r = run(auditq(&a).args(["query", "--as-of", bad, "| count"]));
        assert_eq!(r.code, 2, "{bad}: {}", r.stderr);
        assert!(r.stderr.contains("--as-of"), "{}", r.stderr);
    }
    // explain says which version; compaction adds a version and changes no count.
    let r = ok(auditq(&a).args(["explain", "--as-of", "1", "| count"]));
    assert!(r.stdout.starts_with("As of version 1"), "{}", r.stdout);
    ok(auditq(&a).args(["archive", "compact"]));
    assert_eq!(
        counts_as_of(&mut || auditq(&a), &[1, 3, 4]),
        [200, 900, 900]
    );
    let r = ok(auditq(&a).args(["archive", "history"]));
    assert!(
        r.stdout.lines().last().unwrap().contains("OPTIMIZE"),
        "{}",
        r.stdout
    );
    // Compaction rewrote files, never the log: the evidence still verifies.
    ok(auditq(&a).args(["archive", "verify", "--verifier-key", &verifier]));
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn an_evidence_bundle_checks_offline_with_the_script_it_carries() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, verifier) = make_key(d);
    let a = d.join("archive");
    let input = generate(d, 2000, 8);
    ok(sealing(&a, &key).args(["import", "--quiet"]).arg(&input));
    let bundle = d.join("bundle");
    let r = ok(sealing(&a, &key)
        .args(["query", "--now", "2026-11-01T00:00:00Z", "--evidence"])
        .arg(&bundle)
        .arg("event ~ \"*delete*\" | head 25"));
    assert!(r.stdout.starts_with("wrote 25 rows to"), "{}", r.stdout);
    for f in [
        "result.ndjson",
        "proofs.ndjson",
        "checkpoint",
        "verifier.key",
        "verify.py",
        "README.txt",
    ] {
        assert!(bundle.join(f).is_file(), "{f}");
    }
    assert_eq!(
        std::fs::read_to_string(bundle.join("verifier.key"))
            .unwrap()
            .trim(),
        verifier
    );
    let proofs = bundle.join("proofs.ndjson");
    let (code, out) = independent(&verifier, &["inclusion", proofs.to_str().unwrap()]);
    assert_eq!(
        (code, out.trim()),
        (0, "ok: 25 events are in the signed tree")
    );
    // The proofs are of the result's rows.
    let result: Vec<String> = ids_of(&bundle.join("result.ndjson"));
    assert_eq!(ids_of(&proofs), result);
    // A result without events has no proofs; CSV when asked.
    let r = ok(sealing(&a, &key)
        .args(["query", "--format", "csv", "--evidence"])
        .arg(d.join("counts"))
        .arg("| count by action"));
    assert!(r.stdout.contains("and 0 proofs"), "{}", r.stdout);
    assert!(d.join("counts/result.csv").is_file());
    // Without a key to name, the bundle is refused before anything runs.
    let r = run(auditq(&a)
        .args(["query", "--evidence"])
        .arg(d.join("x"))
        .arg("| head 1"));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--verifier-key"), "{}", r.stderr);
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn a_sealed_event_moved_to_the_quarantine_is_found_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, verifier) = make_key(d);
    let a = d.join("archive");
    let input = generate(d, 600, 12);
    ok(sealing(&a, &key).args(["import", "--quiet"]).arg(&input));
    let id = ids_of(&input)[123].clone();
    let python = std::env::var_os("AUDITQ_PYTHON").unwrap();
    let out = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/tamper.py"))
        .args(["move-to-quarantine", a.to_str().unwrap(), &id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = ok(auditq(&a).args(["archive", "verify", "--verifier-key", &verifier]));
    assert!(
        r.stdout.contains(&format!("1 sealed events are in the quarantine, where `archive repair` moved them (first: `{id}`, quarantine/conflict/")),
        "{}",
        r.stdout
    );
}

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn an_archive_of_schema_version_1_gains_the_log_and_names_what_it_does_not_cover() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, verifier) = make_key(d);
    let input = generate(d, 1200, 41);
    let parts = split(d, &input, &[800, 400]);
    let src = d.join("src");
    ok(auditq(&src).args(["import", "--quiet"]).arg(&parts[0]));
    let old = d.join("old");
    python_script(
        "legacy_table.py",
        &[&src.join("events"), &old.join("events")],
    );
    let star = |a: &Path| ok(auditq(a).args(["query", "--format", "csv", "| fields * | count"]));
    assert_eq!(star(&old).stdout.lines().nth(1), Some("800"));
    // A writer gives the table the column and its properties, then archives with leaves.
    ok(sealing(&old, &key)
        .args(["import", "--quiet"])
        .arg(&parts[1]));
    let r = ok(auditq(&old).args(["archive", "history", "--json"]));
    let h: Vec<serde_json::Value> = serde_json::from_str(&r.stdout).unwrap();
    let ops: Vec<&str> = h.iter().map(|v| v["operation"].as_str().unwrap()).collect();
    assert!(
        ops.ends_with(&["ADD COLUMN", "SET TBLPROPERTIES", "WRITE"]),
        "{ops:?}"
    );
    // Old and new files read together, every column.
    let r = ok(auditq(&old).args(["query", "--format", "ndjson", "| fields * | sort time"]));
    assert_eq!(r.stdout.lines().count(), 1200);
    ok(auditq(&old).args(["archive", "verify"]));
    // The new events are sealed and provable; the old ones are named, once per file.
    let new_id = &ids_of(&parts[1])[5];
    ok(auditq(&old).args(["archive", "prove", new_id]));
    let r = run(auditq(&old).args(["archive", "verify", "--verifier-key", &verifier]));
    assert_eq!(r.code, 1, "{}", r.stdout);
    let problems: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("problem:"))
        .collect();
    assert!(!problems.is_empty());
    assert!(
        problems
            .iter()
            .all(|p| p.contains("has no place in the log") && p.contains("schema version 1")),
        "{}",
        r.stderr
    );
    let old_id = &ids_of(&parts[0])[5];
    let r = run(auditq(&old).args(["archive", "prove", old_id]));
    assert!(r.stderr.contains("has no place in the log"), "{}", r.stderr);
    assert!(r.stderr.contains("archive seal --adopt"), "{}", r.stderr);

    // Compaction mixes old and new events in a day's file; adoption gives the old ones
    // the next places (the new keep theirs), and a seal covers them all.
    ok(auditq(&old).args(["archive", "compact"]));
    let r = ok(auditq(&old)
        .args(["archive", "seal", "--adopt", "--key"])
        .arg(&key));
    assert!(
        r.stdout
            .contains("adopted 800 events archived before the log: places 400..1200"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("sealed 800 events"), "{}", r.stdout);
    let r = ok(auditq(&old).args(["archive", "verify", "--verifier-key", &verifier]));
    assert!(
        r.stdout.contains("1200 events, every id once"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("1200 leaves sealed"), "{}", r.stdout);
    let proofs = d.join("proofs.ndjson");
    let r = ok(auditq(&old).args(["archive", "prove", old_id, new_id]));
    std::fs::write(&proofs, &r.stdout).unwrap();
    let (code, out) = independent(&verifier, &["inclusion", proofs.to_str().unwrap()]);
    assert_eq!(
        (code, out.trim()),
        (0, "ok: 2 events are in the signed tree")
    );
    let r = ok(auditq(&old)
        .args(["archive", "seal", "--adopt", "--json", "--key"])
        .arg(&key));
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        (j["adopted"]["events"].as_u64(), j["size"].as_u64()),
        (Some(0), Some(1200))
    );
    assert_eq!(star(&old).stdout.lines().nth(1), Some("1200"));

    // A table of schema version 1 that no writer has touched since gains the column too.
    let older = d.join("older");
    python_script(
        "legacy_table.py",
        &[&src.join("events"), &older.join("events")],
    );
    let r = ok(auditq(&older)
        .args(["archive", "seal", "--adopt", "--key"])
        .arg(&key));
    assert!(
        r.stdout
            .contains("adopted 800 events archived before the log: places 0..800"),
        "{}",
        r.stdout
    );
    ok(auditq(&older).args(["archive", "verify", "--verifier-key", &verifier]));
}

#[test]
fn follow_seals_what_it_archives_and_says_it_archived() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, verifier) = make_key(d);
    let a = d.join("archive");
    let input = generate(d, 2000, 7);
    let r = ok(sealing(&a, &key)
        .args(["follow", "--stdin", "--now", "2026-11-01T00:00:00Z"])
        .args(["--", "event:user_login"])
        .stdin(std::fs::File::open(&input).unwrap()));
    let archived = format!("; 2000 new events archived to {}", a.display());
    assert!(r.stderr.contains(&archived), "{}", r.stderr);
    let v = ok(auditq(&a).args(["archive", "verify", "--verifier-key", &verifier]));
    assert!(
        v.stdout.contains("2000 events, every id once")
            && v.stdout.contains("2000 leaves sealed")
            && !v.stdout.contains("not sealed yet"),
        "{}",
        v.stdout
    );
}
