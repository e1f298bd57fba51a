//! Rule packs: every shipped rule (`examples/detections/`) stays silent on a clean set of
//! events and fires on the same set with its pattern injected, live (`follow --rules`)
//! and in a backtest (`detect`), which agree hit for hit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{auditq, ok, run};

const NOW: &str = "2026-10-15T00:00:00Z";
const DAY: i64 = 86_400_000_000;
const MIN: i64 = 60_000_000;

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/detections")
}

fn t0() -> i64 {
    auditq::event::parse_time("2026-09-01T08:00:00Z").unwrap()
}

/// One event: `actor` did `action` at `time` from `country`, about `target` (the first
/// element of its context, when given).
fn event(
    id: &str,
    actor: &str,
    action: &str,
    time: i64,
    country: &str,
    target: Option<&str>,
) -> String {
    let t = auditq::event::format_time(time);
    let mut attributes = serde_json::json!({
        "time": t,
        "processedAt": t,
        "action": action,
        "actor": {"id": format!("id-{actor}"), "name": actor, "email": format!("{actor}@example.com")},
        "location": {"ip": "10.1.2.3", "countryName": country}
    });
    if let Some(u) = target {
        attributes["context"] =
            serde_json::json!([{"id": u, "type": "users", "attributes": {"name": u}}]);
    }
    serde_json::json!({"id": id, "type": "events", "attributes": attributes}).to_string()
}

/// Forty days of ordinary work: five people log in every morning from home, view and
/// push, log out.
fn clean() -> Vec<String> {
    let mut out = Vec::new();
    let people = [
        ("ada", "Germany"),
        ("ben", "France"),
        ("cy", "Ireland"),
        ("dan", "Spain"),
        ("eve", "Italy"),
    ];
    for day in 0..40 {
        for (p, (who, country)) in people.iter().enumerate() {
            let at = t0() + day * DAY + p as i64 * 7 * MIN;
            for (k, action) in [
                "user_login",
                "user_profile_viewed",
                "bitbucket_repository_pushed",
                "user_logout",
            ]
            .iter()
            .enumerate()
            {
                out.push(event(
                    &format!("c-{day}-{who}-{k}"),
                    who,
                    action,
                    at + k as i64 * 30 * MIN,
                    country,
                    None,
                ));
            }
        }
    }
    out
}

/// Each rule's pattern, injected on day 35.
fn injections() -> Vec<(&'static str, Vec<String>)> {
    let at = t0() + 35 * DAY + 3 * 3_600_000_000;
    let one = |id: &str, action: &str| vec![event(id, "mallory", action, at, "Germany", None)];
    vec![
        ("admin-granted", one("i-admin", "added_org_admin")),
        (
            "auth-policy-changed",
            one("i-2sv", "twosv_disabled_for_user"),
        ),
        ("api-token-first-time", one("i-token", "api_token_created")),
        ("impersonation", one("i-imp", "user_logged_in_as_user")),
        (
            "login-new-country",
            vec![event("i-geo", "ada", "user_login", at, "Brazil", None)],
        ),
        (
            "failed-login-burst",
            (0..11)
                .map(|i| {
                    event(
                        &format!("i-fail-{i}"),
                        "ben",
                        "user_login_failed",
                        at + i * 20_000_000,
                        "France",
                        None,
                    )
                })
                .collect(),
        ),
        (
            "mass-repository-deletion",
            (0..6)
                .map(|i| {
                    event(
                        &format!("i-del-{i}"),
                        "mallory",
                        "bitbucket_repository_deleted",
                        at + i * MIN,
                        "Germany",
                        None,
                    )
                })
                .collect(),
        ),
        (
            "marketplace-app-installed",
            one("i-app", "marketplace_app_installed"),
        ),
        ("audit-log-export", one("i-audit", "audit_log_exported")),
        (
            "domain-verification-changed",
            one("i-domain", "domain_removed"),
        ),
        (
            "invited-then-admin",
            vec![
                event(
                    "i-inv-0",
                    "cy",
                    "user_invited",
                    at,
                    "Ireland",
                    Some("outsider"),
                ),
                event(
                    "i-inv-1",
                    "dan",
                    "added_org_admin",
                    at + 2 * DAY,
                    "Spain",
                    Some("outsider"),
                ),
            ],
        ),
        (
            "admin-grant-then-deletions",
            vec![
                event(
                    "i-seq-0",
                    "eve",
                    "user_granted_role",
                    at,
                    "Italy",
                    Some("friend"),
                ),
                event(
                    "i-seq-1",
                    "eve",
                    "user_deleted",
                    at + 10 * MIN,
                    "Italy",
                    Some("victim"),
                ),
            ],
        ),
        (
            "ip-allowlist-changed",
            one("i-ip", "ip_allowlist_policy_update"),
        ),
        ("malware-detected", one("i-mal", "malware_detected")),
    ]
}

/// Hits per rule of `follow --rules` over `lines`, arriving in time order.
fn live(scratch: &Path, lines: &[String]) -> BTreeMap<String, u64> {
    let input = scratch.with_extension("ndjson");
    let mut lines = lines.to_vec();
    lines.sort_by_key(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["attributes"]["time"].as_str().unwrap().to_owned()
    });
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let mut c = super::follow::bare(scratch);
    c.args(["follow", "--stdin", "--now", NOW, "--rules"])
        .arg(rules_dir())
        .stdin(std::fs::File::open(&input).unwrap());
    let r = ok(&mut c);
    let mut hits = BTreeMap::new();
    for l in r.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(
            v["severity"].is_string() && v["rule_name"].is_string(),
            "{l}"
        );
        *hits
            .entry(v["rule"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    hits
}

/// Hits per rule of `detect` over an archive of `lines`.
fn backtest(archive: &Path, lines: &[String]) -> BTreeMap<String, u64> {
    let input = archive.with_extension("ndjson");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    ok(auditq(archive).args(["import", "--quiet"]).arg(&input));
    let r = ok(auditq(archive)
        .args(["detect", "--since", "60d", "--now", NOW, "--format", "json"])
        .arg(rules_dir()));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_owned(),
                f["hits"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn every_shipped_rule_fires_on_its_pattern_and_stays_silent_on_clean_events() {
    let dir = tempfile::tempdir().unwrap();
    let injections = injections();
    let shipped: Vec<String> = std::fs::read_dir(rules_dir())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "aq").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    assert!(shipped.len() >= 12, "{shipped:?}");
    for rule in &shipped {
        assert!(
            injections.iter().any(|(r, _)| r == rule),
            "no pattern for `{rule}`"
        );
    }

    let clean = clean();
    let silent = backtest(&dir.path().join("clean"), &clean);
    assert_eq!(silent.len(), shipped.len());
    assert!(
        silent.values().all(|&n| n == 0),
        "hits on clean events: {silent:?}"
    );
    assert!(live(&dir.path().join("clean-live"), &clean).is_empty());

    let mut everything = clean.clone();
    for (rule, lines) in &injections {
        let mut set = clean.clone();
        set.extend(lines.iter().cloned());
        let hits = live(&dir.path().join(format!("live-{rule}")), &set);
        assert!(
            hits.get(*rule).is_some_and(|&n| n >= 1),
            "`{rule}` did not fire: {hits:?}"
        );
        everything.extend(lines.iter().cloned());
    }
    // All patterns at once: the backtest and the live run agree rule by rule.
    let mut all = backtest(&dir.path().join("all"), &everything);
    let live_all = live(&dir.path().join("all-live"), &everything);
    assert!(all.values().all(|&n| n >= 1), "{all:?}");
    all.retain(|_, n| *n > 0);
    assert_eq!(all, live_all);
}

#[test]
fn a_bad_rule_is_refused_naming_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("ok.aq"),
        "# name: fine\n# severity: low\nevent:x\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("typo.aq"),
        "# name: typo\n# severity: high\nactr:alice | sort -time\n",
    )
    .unwrap();
    let a = dir.path().join("a");
    let r = run(auditq(&a).args(["detect"]).arg(&rules));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("typo.aq") && r.stderr.contains("3 | actr:alice"),
        "{}",
        r.stderr
    );
    std::fs::write(
        rules.join("typo.aq"),
        "# name: typo\n# severity: urgent\nevent:x\n",
    )
    .unwrap();
    let r = run(auditq(&a).args(["detect"]).arg(&rules));
    assert!(
        r.stderr.contains("unknown severity `urgent`"),
        "{}",
        r.stderr
    );
}

/// `follow --rules` keeps one checkpoint for every rule: a run that stops half-way and
/// a second run on the rest send what one run over everything sends, nothing twice.
#[test]
fn a_rule_pack_continues_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = clean();
    for (_, l) in injections() {
        lines.extend(l);
    }
    lines.sort_by_key(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["attributes"]["time"].as_str().unwrap().to_owned()
    });
    let ids = |out: &str| -> Vec<String> { out.lines().map(str::to_owned).collect() };
    let file = dir.path().join("audit.ndjson");
    let follow = |state: &str| {
        let mut c = super::follow::bare(&dir.path().join("scratch"));
        c.args(["follow", "--now", NOW, "--file"])
            .arg(&file)
            .arg("--state")
            .arg(dir.path().join(state))
            .arg("--rules")
            .arg(rules_dir());
        ok(&mut c).stdout
    };
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let whole = ids(&follow("whole"));
    // The injections sit on days 35 to 37: stop in the middle of them.
    let cut = lines
        .iter()
        .position(|l| l.contains("\"i-fail-5\""))
        .unwrap();
    std::fs::write(&file, lines[..cut].join("\n") + "\n").unwrap();
    let mut parts = ids(&follow("parts"));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    std::io::Write::write_all(&mut f, (lines[cut..].join("\n") + "\n").as_bytes()).unwrap();
    drop(f);
    parts.extend(ids(&follow("parts")));
    let (mut a, mut b) = (whole.clone(), parts.clone());
    a.sort();
    b.sort();
    assert!(whole.len() >= 14, "{whole:?}");
    assert_eq!(a, b);
}
