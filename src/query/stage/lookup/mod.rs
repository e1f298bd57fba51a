//! `| lookup FILE on f [= column | cidr column] [fields a, b]`: a left join of a CSV,
//! Parquet or NDJSON file, whose columns become fields. In `query`, a join of the file
//! read into memory; in `follow`, an [`Index`] of it looked up per event.

mod index;

use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::{MemTable, provider_as_source};
use datafusion::functions::expr_fn::lower;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::prelude::Expr;

pub use index::Index;

use super::{Def, Flow, Plan, R, Step, Stream};
use crate::diag::{Diagnostic, did_you_mean};
use crate::event;
use crate::lang::ast::{Field, Lookup, Span};
use crate::query::compile::{Compiler, column, df_err};
use crate::query::fields;
use crate::query::lookup::{Table, network_of, networks, read};

impl Def for Lookup {
    fn span(&self) -> Span {
        self.span
    }

    fn reads<'a>(&'a self, out: &mut Vec<&'a Field>) -> bool {
        out.push(&self.on);
        false
    }

    fn stream(&self) -> R<Flow> {
        Ok(Flow::Pass)
    }

    fn plan(&self, p: &mut Plan<'_>) -> R<()> {
        let text = self.to_string();
        let mut added = Vec::new();
        p.with(|cx, df| {
            let (joined, names) = join(cx, df, self, &text)?;
            added = names;
            Ok(joined)
        })?;
        p.view.extend(added);
        p.ordered = false;
        Ok(())
    }

    /// Its file indexed, its columns added to the events'.
    fn step(&self, s: &mut Stream<'_>) -> R<()> {
        let spec = resolve(&s.cx, self)?;
        let key = s.output(&self.on)?;
        let added = spec.columns();
        s.cx.added.extend(added.clone());
        let mut fields: Vec<ArrowField> = s
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.extend(
            added
                .iter()
                .map(|(n, t)| ArrowField::new(n, t.clone(), true)),
        );
        let extended = std::sync::Arc::new(Schema::new(fields));
        s.schema = std::sync::Arc::clone(&extended);
        let column = spec.table.schema.field(spec.key).name().clone();
        let index = Index::new(
            &self.file,
            key,
            &column,
            self.cidr,
            added,
            extended,
            &spec.table,
        )
        .map_err(|why| Diagnostic::at("E0430", why, self.span))?;
        s.steps.push(Step::Lookup(Box::new(index)));
        Ok(())
    }
}

/// A lookup stage resolved against its file: the rows, the matched column, the columns
/// it adds (by index in the file), and for `cidr` the networks — for `query` (a join)
/// and `follow` (an index looked up per event) alike.
pub struct Spec {
    pub table: Table,
    pub key: usize,
    pub added: Vec<usize>,
    pub networks: Option<Vec<String>>,
}

impl Spec {
    /// The added columns' names and types.
    pub fn columns(&self) -> Vec<(String, DataType)> {
        self.added
            .iter()
            .map(|&i| {
                let f = self.table.schema.field(i);
                (f.name().clone(), f.data_type().clone())
            })
            .collect()
    }
}

/// A lookup file's columns for a help line: the first 20 whose names may be shown (see
/// [`crate::userfile::showable`]), and how many others there are.
fn shown_columns(columns: &[&str]) -> String {
    let shown: Vec<&str> = columns
        .iter()
        .copied()
        .filter(|c| crate::userfile::showable(c))
        .take(20)
        .collect();
    let others = columns.len() - shown.len();
    match (shown.is_empty(), others) {
        (true, _) => format!("it has {others} columns, none with a name like a column's"),
        (false, 0) => format!("its columns: {}", shown.join(", ")),
        (false, n) => format!("its columns: {}, and {n} more", shown.join(", ")),
    }
}

/// Read and check a lookup's file (E0430 … E0432, E0407).
fn resolve(cx: &Compiler<'_>, l: &Lookup) -> R<Spec> {
    let span = l.span;
    let table = read(&l.file).map_err(|why| {
        Diagnostic::at("E0430", why, span)
            .help("a lookup reads a .csv (with a header), .parquet, .ndjson or .jsonl file")
    })?;
    let columns = table.names();
    let find = |f: &Field| {
        columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(&f.name))
            .ok_or_else(|| {
                let mut d = Diagnostic::at(
                    "E0431",
                    format!("`{}` has no column `{}`", l.file, f.name),
                    f.span,
                )
                .help(shown_columns(&columns));
                let showable = columns
                    .iter()
                    .copied()
                    .filter(|c| crate::userfile::showable(c));
                if let Some(m) = did_you_mean(&f.name, showable) {
                    d = d.help(format!("did you mean `{m}`?"));
                }
                d
            })
    };
    let key = find(l.column.as_ref().unwrap_or(&l.on))?;
    let added: Vec<usize> = if l.fields.is_empty() {
        (0..columns.len()).filter(|&i| i != key).collect()
    } else {
        l.fields.iter().map(find).collect::<R<_>>()?
    };
    // A column must not take the name of a field or column the rows already have.
    let taken = |name: &str| match &cx.table {
        Some((cols, _)) => cols.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)),
        None => {
            fields::resolve(name).is_some()
                || event::schema()
                    .fields()
                    .iter()
                    .any(|f| f.name().eq_ignore_ascii_case(name))
                || cx.added.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
        }
    };
    if let Some(&i) = added.iter().find(|&&i| taken(columns[i])) {
        return Err(Diagnostic::at(
            "E0407",
            format!(
                "the column `{}` of `{}` is named like a field of the rows",
                columns[i], l.file
            ),
            span,
        )
        .help("choose the columns to add with `fields`, or rename the file's column"));
    }
    let networks = if l.cidr {
        Some(networks(&table, key).map_err(|why| {
            Diagnostic::at("E0432", format!("`{}`: {why}", l.file), span)
                .help("a `cidr` column holds networks: 10.20.0.0/16, 2001:db8::/32, or addresses")
        })?)
    } else {
        None
    };
    Ok(Spec {
        table,
        key,
        added,
        networks,
    })
}

/// `df` left-joined with a lookup file's rows (see `lookup.rs`), and the fields it added.
fn join(
    cx: &mut Compiler<'_>,
    df: DataFrame,
    l: &Lookup,
    text: &str,
) -> R<(DataFrame, Vec<Field>)> {
    let span = l.span;
    let e = |e| df_err(e, span);
    let spec = resolve(cx, l)?;
    let Spec {
        table,
        key,
        added,
        networks,
    } = &spec;
    let (key, added) = (*key, added.clone());
    let columns = table.names();
    let (state, plan) = df.into_parts();
    let schema = std::sync::Arc::clone(&table.schema);
    let provider = MemTable::try_new(schema, vec![table.batches.clone()]).map_err(e)?;
    let scan = LogicalPlanBuilder::scan(
        "lookup",
        provider_as_source(std::sync::Arc::new(provider)),
        None,
    )
    .and_then(LogicalPlanBuilder::build)
    .map_err(e)?;
    let mut select = vec![column(columns[key]).alias("__lookup_key")];
    select.extend(added.iter().map(|&i| column(columns[i]).alias(columns[i])));
    let file = DataFrame::new(state.clone(), scan)
        .select(select)
        .map_err(e)?;
    let df = DataFrame::new(state, plan);
    let on = cx.output(&l.on)?.1;
    let text_of = |x: Expr| lower(datafusion::prelude::cast(x, DataType::Utf8));
    let (left, right) = if let Some(nets) = networks {
        (network_of(on, nets), column("__lookup_key"))
    } else {
        (text_of(on), text_of(column("__lookup_key")))
    };
    let joined = df
        .join_on(file, datafusion::common::JoinType::Left, [left.eq(right)])
        .map_err(e)?;
    let keep: Vec<Expr> = joined
        .schema()
        .columns()
        .into_iter()
        .filter(|c| c.name != "__lookup_key")
        .map(Expr::Column)
        .collect();
    let joined = joined.select(keep).map_err(e)?;
    let names: Vec<Field> = added
        .iter()
        .map(|&i| Field {
            name: columns[i].to_owned(),
            span,
        })
        .collect();
    if cx.table.is_some() {
        cx.now_table(&joined, text);
    } else {
        cx.added.extend(spec.columns());
    }
    Ok((joined, names))
}
