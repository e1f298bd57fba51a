//! Rule packs: several compiled queries evaluated on one stream of events, with one
//! checkpoint. `follow QUERY` runs a pack of one; `follow --rules DIR` and `auditq
//! detect DIR` run every rule of a directory.
//!
//! A rule is a query file (`.aq`) whose first lines are a header of `# key: value`
//! comments — `name` and `severity` required, `description` and `tags` optional — so a
//! rule is also a query `auditq query --file` runs as it is:
//!
//! ```text
//! # name: Organization admin granted
//! # severity: high
//! # description: Someone became an org admin, or a group got admin access.
//! # tags: privilege, admin
//! event in (added_org_admin, group_granted_admin_access)
//! ```

use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use serde::Serialize;

use super::engine::{self, Engine, Record};
use crate::diag::Diagnostic;
use crate::lang::Query;
use crate::lang::macros::{Expanded, Library};
use crate::lang::time::Clock;

/// How much a rule's hit matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [(&'static str, Severity); 4] = [
        ("low", Severity::Low),
        ("medium", Severity::Medium),
        ("high", Severity::High),
        ("critical", Severity::Critical),
    ];

    pub fn name(self) -> &'static str {
        Severity::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map(|(n, _)| *n)
            .expect("every severity is listed")
    }
}

/// One rule of a pack.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    /// The file's name without `.aq`: stable, part of each alert.
    pub id: String,
    pub name: String,
    pub severity: Severity,
    pub description: String,
    pub tags: Vec<String>,
    #[serde(skip)]
    pub path: PathBuf,
    /// The query, macros expanded.
    #[serde(skip)]
    pub text: Expanded,
}

/// Why a rule could not be loaded: its file, and the error (a rendered diagnostic
/// carries the file's text).
#[derive(Debug)]
pub struct Refused {
    pub path: PathBuf,
    pub text: String,
    pub diags: Vec<Diagnostic>,
}

/// The header of a rule file: `(key, value)` of its leading `# key: value` lines.
fn header(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let Some(comment) = line.trim_start().strip_prefix('#') else {
            if line.trim().is_empty() {
                at += line.len();
                continue;
            }
            break;
        };
        if let Some((k, v)) = comment.split_once(':') {
            let key = k.trim().to_ascii_lowercase();
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.push((key, v.trim().to_owned(), at));
            }
        }
        at += line.len();
    }
    out
}

/// Every `.aq` file of `dir` as a rule, in the order of their names; each is checked as
/// a query `follow` can run (its macros, from `macros`, expanded).
pub fn load(dir: &Path, macros: &Library) -> Result<Vec<Rule>, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        // Anything named `.aq` but a directory is a rule, and refused when it is not a
        // regular file (a FIFO, a device) rather than passed over in silence.
        .filter(|p| p.extension().is_some_and(|x| x == "aq") && !p.is_dir())
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(LoadError::Empty(dir.to_path_buf()));
    }
    paths.iter().map(|p| rule(p, macros)).collect()
}

/// What stops a pack from loading.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` holds no rules (`.aq` files)", .0.display())]
    Empty(PathBuf),
    #[error("the rule `{}` is refused", .0.path.display())]
    Rule(Box<Refused>),
}

/// The most a rule file may hold.
pub const MAX_RULE_BYTES: u64 = 1 << 20;

fn rule(path: &Path, macros: &Library) -> Result<Rule, LoadError> {
    let text =
        crate::userfile::read_text(path, MAX_RULE_BYTES).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let refuse = |diags: Vec<Diagnostic>| {
        LoadError::Rule(Box::new(Refused {
            path: path.to_path_buf(),
            text: text.clone(),
            diags,
        }))
    };
    let fields = header(&text);
    let get = |k: &str| fields.iter().find(|(key, _, _)| key == k);
    let Some((_, name, _)) = get("name") else {
        return Err(refuse(vec![
            Diagnostic::error("E0450", "a rule's header names it", 0, 0)
                .label("no `# name:` line")
                .help("start the file with `# name: …` and `# severity: low|medium|high|critical`"),
        ]));
    };
    let severity = match get("severity") {
        Some((_, v, at)) => match Severity::ALL
            .iter()
            .find(|(n, _)| v.eq_ignore_ascii_case(n))
        {
            Some((_, s)) => *s,
            None => {
                return Err(refuse(vec![
                    Diagnostic::error(
                        "E0451",
                        format!("unknown severity `{v}`"),
                        *at,
                        *at + v.len() + 12,
                    )
                    .help("severities: low, medium, high, critical"),
                ]));
            }
        },
        None => {
            return Err(refuse(vec![
                Diagnostic::error("E0451", "a rule's header gives its severity", 0, 0)
                    .label("no `# severity:` line")
                    .help("`# severity: low|medium|high|critical`"),
            ]));
        }
    };
    let expanded = macros.expand(&text).map_err(refuse)?;
    Ok(Rule {
        id: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        name: name.clone(),
        severity,
        description: get("description")
            .map(|(_, v, _)| v.clone())
            .unwrap_or_default(),
        tags: get("tags")
            .map(|(_, v, _)| {
                v.split(',')
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        path: path.to_path_buf(),
        text: expanded,
    })
}

/// One compiled member of a pack.
struct Member {
    rule: Option<Rule>,
    query: Query,
    engine: Engine,
}

/// Compiled queries on one stream.
pub struct Pack {
    /// What the checkpoint is of: the query's canonical text, or every rule's.
    pub text: String,
    members: Vec<Member>,
}

impl Pack {
    /// The pack of one query (`follow QUERY`): its records as they are.
    pub fn single(query: Query, engine: Engine) -> Pack {
        Pack {
            text: engine.text.clone(),
            members: vec![Member {
                rule: None,
                query,
                engine,
            }],
        }
    }

    /// Every rule compiled for a stream; the first that cannot be is refused.
    pub fn rules(rules: Vec<Rule>, clock: &Clock, lateness: i64) -> Result<Pack, Box<Refused>> {
        let mut members = Vec::new();
        let mut text = String::from("rules");
        for rule in rules {
            let refuse = |diags: Vec<Diagnostic>| {
                Box::new(Refused {
                    path: rule.path.clone(),
                    text: rule.text.original.clone(),
                    diags: diags.into_iter().map(|d| rule.text.restore(d)).collect(),
                })
            };
            let query = crate::lang::parse(&rule.text.text).map_err(refuse)?;
            let engine = Engine::new(&query, clock, lateness).map_err(|d| refuse(vec![d]))?;
            text.push_str(&format!("\u{1f}{}\u{1f}{}", rule.id, engine.text));
            members.push(Member {
                rule: Some(rule),
                query,
                engine,
            });
        }
        Ok(Pack { text, members })
    }

    /// Whether a member may read `raw` in its logic (a `raw.PATH` field, `fields *`):
    /// a word `raw…` or `*` in its text. Without one, `detect` (which keeps no event's
    /// JSON) need not read the widest column.
    pub fn reads_raw(&self) -> bool {
        self.members.iter().any(|m| {
            let text = m.query.to_string();
            crate::lang::lex::tokens(&text).iter().any(|t| {
                let w = t.text(&text).trim_matches('`').to_ascii_lowercase();
                matches!(
                    t.kind,
                    crate::lang::lex::Kind::Word | crate::lang::lex::Kind::Field { .. }
                ) && (w == "raw" || w.starts_with("raw.") || w == "*")
            })
        })
    }

    /// The rules (none for a single query).
    pub fn rule_list(&self) -> Vec<&Rule> {
        self.members
            .iter()
            .filter_map(|m| m.rule.as_ref())
            .collect()
    }

    /// Each member's records for one batch.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<Vec<Record>, String> {
        let mut out = Vec::new();
        for m in &mut self.members {
            let records = m.engine.push(batch)?;
            out.extend(mark(m.rule.as_ref(), records));
        }
        Ok(out)
    }

    /// The source is caught up at `now`.
    pub fn idle(&mut self, now: i64) -> Vec<Record> {
        let mut out = Vec::new();
        for m in &mut self.members {
            let records = m.engine.idle(now);
            out.extend(mark(m.rule.as_ref(), records));
        }
        out
    }

    /// The end of a finite input.
    pub fn finish(&mut self) -> Vec<Record> {
        let mut out = Vec::new();
        for m in &mut self.members {
            let records = m.engine.finish();
            out.extend(mark(m.rule.as_ref(), records));
        }
        out
    }

    pub fn late(&self) -> u64 {
        self.members.iter().map(|m| m.engine.late()).sum()
    }

    /// Each member's state, in order.
    pub fn state(&self) -> Vec<engine::State> {
        self.members.iter().map(|m| m.engine.state()).collect()
    }

    /// Continue from a checkpoint of the same pack.
    pub fn restore(&mut self, states: Vec<engine::State>) {
        for (m, s) in self.members.iter_mut().zip(states) {
            m.engine.restore(s);
        }
    }

    /// Per member: its query and engine (for seeding `first_seen` from history).
    pub fn members_mut(&mut self) -> impl Iterator<Item = (&Query, &mut Engine)> {
        self.members.iter_mut().map(|m| (&m.query, &mut m.engine))
    }
}

/// A rule's records carry its id, name and severity: in the JSON (first) and in the id
/// (two rules may match one event).
fn mark(rule: Option<&Rule>, records: Vec<Record>) -> Vec<Record> {
    let Some(rule) = rule else {
        return records;
    };
    let head = format!(
        "\"rule\":{},\"rule_name\":{},\"severity\":{}",
        serde_json::Value::from(rule.id.as_str()),
        serde_json::Value::from(rule.name.as_str()),
        serde_json::Value::from(rule.severity.name())
    );
    let id: std::sync::Arc<str> = rule.id.as_str().into();
    records
        .into_iter()
        .map(|mut r| {
            r.id = format!("{}:{}", rule.id, r.id);
            r.rule = Some(std::sync::Arc::clone(&id));
            r.json = match r.json.strip_prefix('{') {
                Some("}") => format!("{{{head}}}"),
                Some(rest) => format!("{{{head},{rest}"),
                None => r.json,
            };
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_the_leading_comment_lines() {
        let h = header(
            "# name: Admin granted\n#severity:HIGH\n\n# tags: a, b\nevent:x\n# name: not this\n",
        );
        let keys: Vec<(&str, &str)> = h.iter().map(|(k, v, _)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            keys,
            vec![
                ("name", "Admin granted"),
                ("severity", "HIGH"),
                ("tags", "a, b")
            ]
        );
    }
}
