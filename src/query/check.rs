//! Between parsing and compiling: does the query run over stored events (a batch:
//! `query`, the REPL) or over a stream (`follow`), and can the command asked run it?
//!
//! A window on event time (`over 5m`, `dedup … within 1h`) only means something on a
//! stream; an aggregate without a window, a sort or a `head` need the whole input,
//! which a stream never has. Both commands used to find this out while compiling, each
//! in its own words; `check` says it once, before anything is compiled, stage by stage
//! in the order they are written.

use crate::diag::Diagnostic;
use crate::lang::ast::{AggFn, Expr, Field, Query, Stage, Window};
use crate::lang::time::Clock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Over stored events, once (`query`, the REPL).
    Batch,
    /// Over events as they arrive (`follow`).
    Stream,
}

type R<T> = Result<T, Diagnostic>;

/// What `q` needs: a stream when a stage windows on event time.
pub fn needs(q: &Query) -> Mode {
    let windowed = q.stages.iter().any(|s| {
        matches!(
            s,
            Stage::Stats {
                window: Some(_),
                ..
            } | Stage::Dedup(_, Some(_), _)
        )
    });
    if windowed { Mode::Stream } else { Mode::Batch }
}

/// `Ok` when `mode` can run `q`; else the first stage that it cannot, and why.
pub fn check(q: &Query, mode: Mode) -> R<()> {
    sequences(q)?;
    event_fields(q)?;
    match mode {
        Mode::Batch if needs(q) == Mode::Batch => Ok(()),
        Mode::Batch => q.stages.iter().try_for_each(batch),
        Mode::Stream => {
            let mut done: Option<&Stage> = None;
            for stage in &q.stages {
                if let Some(last) = done {
                    return Err(refuse(
                        stage,
                        &format!("nothing can follow `{last}` in `auditq follow`"),
                        "`follow` ends a query with `fields …`, a windowed aggregate or a sequence",
                    ));
                }
                if stream(stage)? {
                    done = Some(stage);
                }
            }
            Ok(())
        }
    }
}

/// A sequence and `first_seen` read events (their time, id and fields), so only `where`
/// may come before them; a sequence's span must be longer than zero. Both commands run
/// them.
fn sequences(q: &Query) -> R<()> {
    for (i, stage) in q.stages.iter().enumerate() {
        let (name, span) = match stage {
            Stage::Sequence(_, span) => ("a sequence", *span),
            Stage::FirstSeen { span, .. } => ("`first_seen`", *span),
            _ => continue,
        };
        if let Some(before) = q.stages[..i]
            .iter()
            .find(|s| !matches!(s, Stage::Where(..)))
        {
            return Err(Diagnostic::at(
                "E0413",
                format!("{name} reads events, and `{before}` came before it"),
                span,
            )
            .help("only `where` may come before it; put the other stages after it"));
        }
        if let Stage::Sequence(s, _) = stage
            && Clock::duration(&s.within, span)? <= 0
        {
            return Err(Diagnostic::at(
                "E0208",
                "a sequence's span must be longer than zero",
                span,
            ));
        }
    }
    Ok(())
}

/// Every field events are read by must be one of the catalogue's (or `raw.PATH`): the
/// fields of the filters and stages, in the order written, up to the first stage whose
/// output names are an aggregate's columns or a lookup's (known only when compiling).
/// An unknown one is E0101, for `query` and `follow` alike, before anything is compiled.
fn event_fields(q: &Query) -> R<()> {
    let mut fields: Vec<&Field> = Vec::new();
    if let Some(f) = &q.filter {
        expr_fields(f, &mut fields);
    }
    for stage in &q.stages {
        match stage {
            Stage::Where(e, _) => expr_fields(e, &mut fields),
            Stage::Fields { fields: fs, .. } => fields.extend(fs.iter().filter(|f| f.name != "*")),
            Stage::Sort(keys, _) => fields.extend(keys.iter().map(|k| &k.field)),
            Stage::Head(..) | Stage::Bucket(..) => {}
            Stage::Dedup(fs, _, _) => fields.extend(fs),
            Stage::FirstSeen { fields: fs, by, .. } => {
                fields.extend(by);
                fields.extend(fs);
            }
            Stage::Stats { aggs, by, .. } => {
                fields.extend(by);
                fields.extend(aggs.iter().filter_map(|a| a.field.as_ref()));
                break;
            }
            Stage::Top { field, by, .. } => {
                fields.extend(by);
                fields.push(field);
                break;
            }
            Stage::Distinct(fs, _) => {
                fields.extend(fs);
                break;
            }
            Stage::Timechart { agg, by, .. } => {
                fields.extend(agg.iter().filter_map(|a| a.field.as_ref()));
                fields.extend(by);
                break;
            }
            Stage::Sequence(s, _) => {
                fields.extend(&s.by);
                for step in s.steps.iter().chain(&s.until) {
                    expr_fields(&step.filter, &mut fields);
                }
                break;
            }
            Stage::Lookup(l, _) => {
                fields.push(&l.on);
                break;
            }
        }
    }
    match fields.into_iter().find(|f| {
        super::fields::resolve(&f.name).is_none() && super::fields::raw_path(&f.name).is_none()
    }) {
        Some(f) => Err(super::fields::unknown(f)),
        None => Ok(()),
    }
}

/// The fields a filter compares, in the order written.
fn expr_fields<'a>(e: &'a Expr, out: &mut Vec<&'a Field>) {
    match e {
        Expr::Or(items, _) | Expr::And(items, _) => {
            for i in items {
                expr_fields(i, out);
            }
        }
        Expr::Not(inner, _) => expr_fields(inner, out),
        Expr::Cmp { field, .. } | Expr::In { field, .. } | Expr::Has(field, _) => out.push(field),
        Expr::Text(..) => {}
    }
}

/// Whether stored events can go through `stage`.
fn batch(stage: &Stage) -> R<()> {
    match stage {
        Stage::Stats {
            window: Some(w), ..
        } => Err(Diagnostic::at(
            "E0410",
            "a window (`over …`) is for `auditq follow`",
            w.span,
        )
        .help("over stored events, bucket by time instead: `| timechart 5m count by actor`")),
        Stage::Dedup(_, Some(_), span) => {
            Err(
                Diagnostic::at("E0410", "`dedup … within` is for `auditq follow`", *span)
                    .help("over stored events, `dedup f` keeps the first event of each value"),
            )
        }
        _ => Ok(()),
    }
}

/// Whether a stream can go through `stage`: `Ok(true)` when the stage ends what a
/// stream can do (its records are the output).
fn stream(stage: &Stage) -> R<bool> {
    match stage {
        Stage::Where(..)
        | Stage::Dedup(_, Some(_), _)
        | Stage::FirstSeen { .. }
        | Stage::Lookup(..) => Ok(false),
        Stage::Fields { .. } | Stage::Sequence(..) => Ok(true),
        Stage::Dedup(_, None, _) => Err(refuse(
            stage,
            "`dedup` without `within` remembers every value for ever",
            "bound it: `| dedup actor within 1h`",
        )),
        Stage::Stats {
            aggs,
            window: Some(w),
            ..
        } => {
            let (over, every) = lengths(w)?;
            let at = |code, message: &str| Diagnostic::at(code, message.to_owned(), w.span);
            if over <= 0 || every.is_some_and(|e| e <= 0) {
                return Err(at("E0208", "a window must be longer than zero"));
            }
            if w.threshold.is_some() && !matches!(aggs[0].func, AggFn::Count | AggFn::Dc) {
                return Err(at(
                    "E0412",
                    "a threshold compares a count: the first aggregate must be `count` or `dc(…)`",
                ));
            }
            if every.is_none() && w.threshold.is_none() {
                return Err(
                    at("E0412", "a sliding window needs a threshold to alert on").help(format!(
                        "alert: `over {} > 10`; one row per key and window: `over {} every {}`",
                        w.over, w.over, w.over
                    )),
                );
            }
            Ok(true)
        }
        Stage::Stats { window: None, .. } => Err(refuse(
            stage,
            "an aggregate without a window needs the whole input, which `follow` never has",
            &format!(
                "add a window: `| {0} over 5m > 10` (an alert per key) or `| {0} over 5m every 5m` (a row per key and window)",
                stage.to_string().trim_start_matches("stats ")
            ),
        )),
        Stage::Sort(..)
        | Stage::Head(..)
        | Stage::Top { .. }
        | Stage::Distinct(..)
        | Stage::Timechart { .. } => Err(refuse(
            stage,
            &format!("`{stage}` needs the whole input, which `follow` never has"),
            "`follow` emits events as they arrive; to aggregate, add a window: `| count by actor over 5m > 10`",
        )),
        Stage::Bucket(..) => Err(refuse(
            stage,
            "`bucket` has nothing to feed in `follow`",
            "windows bucket by time themselves: `| count by action over 5m every 5m`",
        )),
    }
}

/// A window's length and step in µs (E0203/E0210 when one is too long).
pub fn lengths(w: &Window) -> R<(i64, Option<i64>)> {
    let over = Clock::duration(&w.over, w.span)?;
    let every = w
        .every
        .as_ref()
        .map(|e| Clock::duration(e, w.span))
        .transpose()?;
    Ok((over, every))
}

fn refuse(stage: &Stage, why: &str, help: &str) -> Diagnostic {
    Diagnostic::at("E0411", why.to_owned(), stage.span()).help(help.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (query, what it needs, the code `query` gives, the code `follow` gives).
    const CASES: &[(&str, Mode, Option<&str>, Option<&str>)] = &[
        ("actor:x | fields time, ip", Mode::Batch, None, None),
        (
            "| count by actor over 5m > 10",
            Mode::Stream,
            Some("E0410"),
            None,
        ),
        (
            "| count by action over 5m every 1m",
            Mode::Stream,
            Some("E0410"),
            None,
        ),
        (
            "| dedup actor within 1h | where ip:*",
            Mode::Stream,
            Some("E0410"),
            None,
        ),
        ("| count by actor", Mode::Batch, None, Some("E0411")),
        ("| sort -time | head 3", Mode::Batch, None, Some("E0411")),
        ("| dedup actor", Mode::Batch, None, Some("E0411")),
        ("| bucket time 1h", Mode::Batch, None, Some("E0411")),
        ("| fields ip | where ip:*", Mode::Batch, None, Some("E0411")),
        (
            "| count by actor over 5m",
            Mode::Stream,
            Some("E0410"),
            Some("E0412"),
        ),
        (
            "| values(ip) by actor over 5m > 1",
            Mode::Stream,
            Some("E0410"),
            Some("E0412"),
        ),
        (
            "| count by actor over 0s every 0s",
            Mode::Stream,
            Some("E0410"),
            Some("E0208"),
        ),
        (
            "| count by actor over 999999999d > 1",
            Mode::Stream,
            Some("E0410"),
            Some("E0210"),
        ),
        (
            "| sequence by actor within 1h [event:a] [event:b] | count by actor",
            Mode::Batch,
            None,
            Some("E0411"),
        ),
        (
            "| where ip:* | sequence within 1h [event:a] [event:b] until [event:c]",
            Mode::Batch,
            None,
            None,
        ),
        (
            "| fields actor | sequence within 1h [event:a] [event:b]",
            Mode::Batch,
            Some("E0413"),
            Some("E0413"),
        ),
        (
            "event:user_login | first_seen country by actor after 30d | fields time, country",
            Mode::Batch,
            None,
            None,
        ),
        (
            "| lookup hr.csv on actor.email = email | where status = gone",
            Mode::Batch,
            None,
            None,
        ),
        (
            "| count by actor | first_seen country by actor",
            Mode::Batch,
            Some("E0413"),
            Some("E0413"),
        ),
        ("actr:x | count", Mode::Batch, Some("E0101"), Some("E0101")),
        (
            "| count by actor | where actr > 3",
            Mode::Batch,
            None,
            Some("E0411"),
        ),
        (
            "| sequence by actor within 0s [event:a] [event:b]",
            Mode::Batch,
            Some("E0208"),
            Some("E0208"),
        ),
    ];

    #[test]
    fn each_command_runs_what_it_can() {
        for &(q, needs_mode, batch, stream) in CASES {
            let query = crate::lang::parse(q).unwrap();
            assert_eq!(needs(&query), needs_mode, "{q}");
            let code = |m| check(&query, m).err().map(|d| d.code);
            assert_eq!(code(Mode::Batch), batch, "{q} as a batch");
            assert_eq!(code(Mode::Stream), stream, "{q} as a stream");
        }
    }
}
