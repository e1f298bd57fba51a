//! An independent reader: the Python `deltalake` package reads the same rows and ids.
//! Needs `AUDITQ_PYTHON`, a Python that has `deltalake` and `pyarrow` (`scripts/test`
//! makes it); without it the test is ignored.

use super::*;

#[test]
#[cfg_attr(not(auditq_python), ignore = "needs AUDITQ_PYTHON: run scripts/test")]
fn python_deltalake_reads_what_stats_reports() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("archive");
    let input = generate(dir.path(), 30_000, 11);
    ok(auditq(&a)
        .args(["import", "--batch-size", "7000"])
        .arg(&input));
    ok(auditq(&a).arg("import").arg(fixture("page.json")));
    ok(auditq(&a).args(["archive", "compact"]));
    ok(auditq(&a).arg("import").arg(fixture("events.ndjson")));
    let s = stats(&a);
    let out = python_script("delta_check.py", &[&a.join("events")]);
    let py: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(py["rows"], s["events"], "python {py} vs stats {s}");
    assert_eq!(py["distinct_ids"], s["distinct_ids"]);
    assert_eq!(py["version"], s["version"]);
    assert_eq!(py["days"], s["days"]);
    assert_eq!(s["events"], 30_000 + 5);
}
