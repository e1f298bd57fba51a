//! `auditq detect DIR`: a rule pack backtested over the archive in one pass.
//!
//! The archived events of the range are read once, in time order, and pushed through the
//! same [`Pack`] that `follow --rules DIR` runs live — windows, sequences, `dedup …
//! within` and `first_seen` included — so a backtest finds what the live rules would
//! have found. `first_seen` rules first learn the tuples of the events before the range.
//! Per rule: its hits, the first and the last, and the keys that hit most.

use std::collections::HashMap;
use std::time::Instant;

use datafusion::arrow::array::{ArrayRef, RecordBatch, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::common::ScalarValue;
use serde::Serialize;

use crate::archive::Archive;
use crate::follow::engine::Record;
use crate::follow::error::{Error, Result};
use crate::follow::pack::{self, Pack, Rule};
use crate::lang::time::Clock;
use crate::pipeline::source::{FromArchive, Msg, Source};

/// How the summary is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// What one rule found.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub rule: String,
    pub name: String,
    pub severity: pack::Severity,
    pub hits: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    /// The keys (an event's actor, an alert's or a sequence's key) that hit most, with
    /// their hits.
    pub top: Vec<(String, u64)>,
}

/// A backtest's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub events: u64,
    pub seconds: f64,
    pub rules: Vec<Found>,
}

/// Keys shown per rule.
const TOP: usize = 3;

/// Backtest `rules` over the archive's events of the last `since` µs before `clock.now`.
pub async fn detect(
    archive: &Archive,
    rules: Vec<Rule>,
    clock: Clock,
    since: i64,
    lateness: i64,
) -> Result<Report> {
    let started = Instant::now();
    let mut pack =
        Pack::rules(rules, &clock, lateness).map_err(|r| Error::Rules(pack::LoadError::Rule(r)))?;
    let start = clock.now.saturating_sub(since);
    crate::follow::seed(&mut pack, archive, clock.now, Some(start)).await?;
    let mut tally: HashMap<String, Tally> = HashMap::new();
    let (ctx, summary) = crate::query::open(archive).await?;
    let range = format!("since \"{}\" | fields *", crate::event::format_time(start));
    let planned = crate::query::plan(&ctx, &range, clock, summary.as_ref()).await?;
    // A summary needs no event's JSON: `raw` (most of the bytes) is read only for the
    // rules that look inside it.
    let frame = if pack.reads_raw() {
        planned.frame
    } else {
        let keep: Vec<datafusion::prelude::Expr> = planned
            .frame
            .schema()
            .columns()
            .into_iter()
            .filter(|c| c.name != crate::event::col::RAW)
            .map(datafusion::prelude::Expr::Column)
            .collect();
        planned
            .frame
            .select(keep)
            .map_err(crate::query::Error::Execute)?
    };
    let stream = frame
        .execute_stream()
        .await
        .map_err(crate::query::Error::Execute)?;
    // The archive's events, replayed as a source, as `follow` would have read them.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Msg>(4);
    let replay = tokio::spawn(Box::new(FromArchive { stream }).run(tx));
    let mut events = 0;
    let schema = crate::event::schema();
    while let Some(msg) = rx.recv().await {
        let Msg::Batch { batch, .. } = msg else {
            continue;
        };
        events += batch.num_rows() as u64;
        let batch = conform(&batch, &schema).map_err(crate::query::Error::Execute)?;
        let records = pack.push(&batch).map_err(Error::Evaluate)?;
        count(&mut tally, records);
    }
    (replay.await).map_err(|source| Error::Task {
        what: "archive replay".into(),
        source,
    })??;
    count(&mut tally, pack.finish());
    let rules = pack
        .rule_list()
        .into_iter()
        .map(|r| {
            let t = tally.remove(&r.id).unwrap_or_default();
            let mut top: Vec<(String, u64)> = t.keys.into_iter().collect();
            top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            top.truncate(TOP);
            Found {
                rule: r.id.clone(),
                name: r.name.clone(),
                severity: r.severity,
                hits: t.hits,
                first: t.first.map(crate::event::format_time),
                last: t.last.map(crate::event::format_time),
                top,
            }
        })
        .collect();
    Ok(Report {
        events,
        seconds: started.elapsed().as_secs_f64(),
        rules,
    })
}

#[derive(Default)]
struct Tally {
    hits: u64,
    first: Option<i64>,
    last: Option<i64>,
    keys: HashMap<String, u64>,
}

fn count(tally: &mut HashMap<String, Tally>, records: Vec<Record>) {
    for r in records {
        let Some(rule) = &r.rule else {
            continue;
        };
        let t = tally.entry(rule.to_string()).or_default();
        t.hits += 1;
        t.first = Some(t.first.map_or(r.time, |f| f.min(r.time)));
        t.last = Some(t.last.map_or(r.time, |l| l.max(r.time)));
        *t.keys.entry(r.key).or_default() += 1;
    }
}

/// A batch of the archive's table as the stream's event schema: each column by name,
/// cast (views to plain strings); a column the scan lacks is null (or zero).
fn conform(
    batch: &RecordBatch,
    schema: &datafusion::arrow::datatypes::SchemaRef,
) -> datafusion::common::Result<RecordBatch> {
    let n = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) => Ok(cast(c, f.data_type())?),
            None if f.is_nullable() => Ok(new_null_array(f.data_type(), n)),
            None => ScalarValue::new_default(f.data_type())?.to_array_of_size(n),
        })
        .collect::<datafusion::common::Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The report as a table (or CSV) with a line of totals, or as JSON.
pub fn render(report: &Report, format: Format, color: bool) -> Result<String> {
    if format == Format::Json {
        return serde_json::to_string_pretty(report)
            .map(|s| s + "\n")
            .map_err(|source| Error::Encode {
                what: "the detect report",
                source,
            });
    }
    let rows: Vec<[String; 6]> = report
        .rules
        .iter()
        .map(|f| {
            let top = f
                .top
                .iter()
                .map(|(k, n)| format!("{k} ({n})"))
                .collect::<Vec<_>>()
                .join("; ");
            [
                f.rule.clone(),
                f.severity.name().to_owned(),
                f.hits.to_string(),
                f.first.clone().unwrap_or_default(),
                f.last.clone().unwrap_or_default(),
                top,
            ]
        })
        .collect();
    let head = ["rule", "severity", "hits", "first", "last", "top keys"];
    if format == Format::Csv {
        let quote = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_owned()
            }
        };
        let mut out = head.join(",") + "\n";
        for r in &rows {
            out.push_str(&r.iter().map(|c| quote(c)).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        return Ok(out);
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    if !color {
        t.force_no_tty();
    }
    t.set_header(head);
    for r in rows {
        t.add_row(r);
    }
    let hits: u64 = report.rules.iter().map(|f| f.hits).sum();
    Ok(format!(
        "{t}\n{} rules, {hits} hits over {} events in {:.2} s\n",
        report.rules.len(),
        report.events,
        report.seconds
    ))
}
