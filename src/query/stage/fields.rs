//! `| fields a, b` (keep), `| fields -a, -b` (drop), `| fields *` (every column): the
//! columns shown; in `follow`, the columns of each record (the event id always among
//! them: sinks and SIEMs de-duplicate on it).

use super::{Def, Flow, Out, Plan, R, Stream};
use crate::lang::ast::{Field, Fields, Span};
use crate::query::compile::{DEFAULT_VIEW, fields_of, is_star, project};
use crate::query::fields::resolve;

/// Whether `a` and `b` resolve to the same field of the catalogue (two names it does
/// not know compare equal, as they always have: noted in docs/decisions.md).
fn same_field(a: &str, b: &str) -> bool {
    resolve(a).map(|d| d.name) == resolve(b).map(|d| d.name)
}

impl Def for Fields {
    fn span(&self) -> Span {
        self.span
    }

    fn reads<'a>(&'a self, out: &mut Vec<&'a Field>) -> bool {
        out.extend(self.fields.iter().filter(|f| f.name != "*"));
        true
    }

    fn stream(&self) -> R<Flow> {
        Ok(Flow::Columns)
    }

    fn plan(&self, p: &mut Plan<'_>) -> R<()> {
        let fields = &self.fields;
        let text = self.to_string();
        if self.exclude {
            for f in fields {
                p.cx.output(f)?;
            }
            let events = p.cx.table.is_none();
            let drop = |v: &Field| {
                fields.iter().any(|f| {
                    f.name.eq_ignore_ascii_case(&v.name) || (events && same_field(&f.name, &v.name))
                })
            };
            if let Some((cols, _)) = &p.cx.table {
                let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
                let keep: Vec<Field> = fields_of(&names).into_iter().filter(|v| !drop(v)).collect();
                return p.with(|cx, df| project(cx, df, &keep, &text));
            }
            p.view.retain(|v| !drop(v));
        } else if is_star(fields) {
            // Every column: of the events (the archive's), or of the table.
            if p.cx.table.is_none() {
                p.view = fields.clone();
            }
        } else if p.cx.table.is_some() {
            return p.with(|cx, df| project(cx, df, fields, &text));
        } else {
            for f in fields {
                p.cx.output(f)?;
            }
            p.view = fields.clone();
        }
        Ok(())
    }

    fn step(&self, s: &mut Stream<'_>) -> R<()> {
        // `fields *`: the whole event, which is what a match is anyway.
        if !self.exclude && is_star(&self.fields) {
            return Ok(());
        }
        let chosen: Vec<Field> = if self.exclude {
            for f in &self.fields {
                s.cx.output(f)?;
            }
            let dropped = |name: &str| self.fields.iter().any(|f| same_field(&f.name, name));
            let kept: Vec<&str> = DEFAULT_VIEW
                .iter()
                .copied()
                .filter(|n| !dropped(n))
                .collect();
            fields_of(&kept)
        } else {
            self.fields.clone()
        };
        s.out = Out::Fields(columns(s, chosen)?);
        Ok(())
    }
}

/// The records of a stream as the columns of `chosen`, the event id among them.
pub(super) fn columns(s: &Stream<'_>, mut chosen: Vec<Field>) -> R<Vec<(String, super::Phys)>> {
    if !chosen.iter().any(|f| same_field(&f.name, "id")) {
        chosen.insert(0, fields_of(&["id"]).remove(0));
    }
    chosen
        .iter()
        .map(|f| {
            let (name, e) = s.cx.output(f)?;
            Ok((name, s.phys(e)?))
        })
        .collect()
}
