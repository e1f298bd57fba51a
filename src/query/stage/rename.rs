//! `| rename a as b, c as d`: the columns at this point under new names, in the same
//! order (for exports, and for a lookup on a column named like the file's). Over events,
//! the columns are those shown (the default ones, or those `fields` chose), which
//! become a table; in `follow`, the names of each record's columns.

use datafusion::prelude::Expr;

use super::{Def, Flow, Out, Plan, R, Stream};
use crate::diag::{Diagnostic, did_you_mean};
use crate::lang::ast::{Field, Rename, Span};
use crate::query::compile::{DEFAULT_VIEW, column, df_err, fields_of, project, resort, time_order};
use crate::query::fields::resolve;

impl Rename {
    /// The new names of `columns` (over events, a column is also found by any name of
    /// its field: `actor.mail` renames `actor.email`). E0421 for a column that is not
    /// there, E0407 for a name two columns would have.
    fn names(&self, columns: &[String], events: bool) -> R<Vec<String>> {
        let mut names = columns.to_vec();
        let same = |a: &str, b: &str| {
            a.eq_ignore_ascii_case(b)
                || (events
                    && resolve(a).is_some_and(|d| resolve(b).is_some_and(|e| e.name == d.name)))
        };
        for (from, to) in &self.pairs {
            let Some(at) = columns.iter().position(|c| same(&from.name, c)) else {
                let mut d = Diagnostic::at(
                    "E0421",
                    format!("there is no column `{}` to rename here", from.name),
                    from.span,
                )
                .help(format!("columns here: {}", columns.join(", ")));
                if let Some(m) = did_you_mean(&from.name, columns.iter().map(String::as_str)) {
                    d = d.help(format!("did you mean `{m}`?"));
                }
                return Err(d);
            };
            names[at] = to.name.clone();
        }
        for (i, name) in names.iter().enumerate() {
            if names[..i].iter().any(|n| n.eq_ignore_ascii_case(name)) {
                let span = self
                    .pairs
                    .iter()
                    .find(|(_, to)| to.name.eq_ignore_ascii_case(name))
                    .map_or(self.span, |(_, to)| to.span);
                return Err(Diagnostic::at(
                    "E0407",
                    format!("the column `{name}` is named twice"),
                    span,
                )
                .help("give it another name, or leave the other column out with `fields`"));
            }
        }
        Ok(names)
    }
}

impl Def for Rename {
    fn span(&self) -> Span {
        self.span
    }

    fn reads<'a>(&'a self, out: &mut Vec<&'a Field>) -> bool {
        out.extend(self.pairs.iter().map(|(from, _)| from));
        false
    }

    fn stream(&self) -> R<Flow> {
        Ok(Flow::Columns)
    }

    fn after_columns(&self) -> bool {
        true
    }

    fn plan(&self, p: &mut Plan<'_>) -> R<()> {
        let e = |e| df_err(e, self.span);
        let text = self.to_string();
        let events = p.cx.table.is_none();
        if events {
            // The events as they would be shown: in time order unless sorted, their
            // columns those of the view.
            if !p.ordered {
                p.with(|_, df| resort(df, time_order()).map_err(e))?;
                p.ordered = true;
            }
            let view = p.view.clone();
            p.with(|cx, df| project(cx, df, &view, &text))?;
        }
        p.with(|cx, df| {
            let columns: Vec<String> = df
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let names = self.names(&columns, events)?;
            let select: Vec<Expr> = columns
                .iter()
                .zip(&names)
                .map(|(c, n)| column(c).alias(n))
                .collect();
            let df = df.select(select).map_err(e)?;
            cx.now_table(&df, &text);
            Ok(df)
        })
    }

    fn step(&self, s: &mut Stream<'_>) -> R<()> {
        let mut columns = match std::mem::replace(&mut s.out, Out::Events) {
            Out::Fields(columns) => columns,
            Out::Events => super::fields::columns(s, fields_of(DEFAULT_VIEW))?,
            other => {
                s.out = other;
                return Err(Diagnostic::at(
                    "E0411",
                    format!("`{self}` renames columns, and these records have none"),
                    self.span,
                ));
            }
        };
        let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
        for ((name, _), new) in columns.iter_mut().zip(self.names(&names, true)?) {
            *name = new;
        }
        s.out = Out::Fields(columns);
        Ok(())
    }
}
