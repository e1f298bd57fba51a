//! Between parsing and compiling: does the query run over stored events (a batch:
//! `query`, the REPL) or over a stream (`follow`), and can the command asked run it?
//!
//! A window on event time (`over 5m`, `dedup … within 1h`) only means something on a
//! stream; an aggregate without a window, a sort or a `head` need the whole input,
//! which a stream never has. Both commands used to find this out while compiling, each
//! in its own words; `check` says it once, before anything is compiled, stage by stage
//! in the order they are written, each stage answering for itself (`stage/`).

use super::stage::{self, Flow, expr_fields};
use crate::diag::Diagnostic;
use crate::lang::ast::{Field, Query, Stage};

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
    if q.stages.iter().any(|s| stage::of(s).windowed()) {
        Mode::Stream
    } else {
        Mode::Batch
    }
}

/// `Ok` when `mode` can run `q`; else the first stage that it cannot, and why.
pub fn check(q: &Query, mode: Mode) -> R<()> {
    sequences(q)?;
    event_fields(q)?;
    match mode {
        Mode::Batch if needs(q) == Mode::Batch => Ok(()),
        Mode::Batch => q.stages.iter().try_for_each(|s| stage::of(s).batch()),
        Mode::Stream => {
            let mut done: Option<(&Stage, Flow)> = None;
            for s in &q.stages {
                let def = stage::of(s);
                if let Some((last, flow)) = done
                    && !(flow == Flow::Columns && def.after_columns())
                {
                    return Err(stage::refuse(
                        def,
                        &format!("nothing can follow `{last}` in `auditq follow`"),
                        "`follow` ends a query with `fields …`, a windowed aggregate or a sequence",
                    ));
                }
                let flow = def.stream()?;
                if flow != Flow::Pass {
                    done = Some((s, flow));
                }
            }
            Ok(())
        }
    }
}

/// A sequence and `first_seen` read events (their time, id and fields), so only `where`
/// may come before them; then what each stage finds wrong with itself whatever the
/// command (a sequence's span must be longer than zero).
fn sequences(q: &Query) -> R<()> {
    for (i, s) in q.stages.iter().enumerate() {
        let def = stage::of(s);
        if let Some(name) = def.reads_events()
            && let Some(before) = q.stages[..i]
                .iter()
                .find(|s| !matches!(s, Stage::Where(..)))
        {
            return Err(Diagnostic::at(
                "E0413",
                format!("{name} reads events, and `{before}` came before it"),
                def.span(),
            )
            .help("only `where` may come before it; put the other stages after it"));
        }
        def.check()?;
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
    for s in &q.stages {
        if !stage::of(s).reads(&mut fields) {
            break;
        }
    }
    match fields.into_iter().find(|f| {
        super::fields::resolve(&f.name).is_none() && super::fields::raw_path(&f.name).is_none()
    }) {
        Some(f) => Err(super::fields::unknown(f)),
        None => Ok(()),
    }
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
