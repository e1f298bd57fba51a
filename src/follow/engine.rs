//! A query compiled once for a stream: physical expressions applied to each batch of
//! events as it arrives, with no planning per batch.
//!
//! What `follow` runs: the head (time clauses and filter), then `where`, `dedup … within`,
//! `first_seen` and `lookup` stages in any order, then optionally `fields …` (and
//! `rename`), one windowed aggregate (`| count by actor over 5m > 10`) or one sequence.
//! Each stage says what it becomes here (its `step` in `query/stage/`), or why it cannot
//! run (a stage that needs the whole input: `sort`, `head`, `top`, …). Filters are the
//! compiler's own ([`Compiler::filter`]), so `follow` and `query` select the same events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema, TimeUnit};
use serde::{Deserialize, Serialize};

use super::sequence;
use super::window::{self, Val, Window};
use crate::diag::Diagnostic;
use crate::event::{self, col as c};
use crate::lang::ast::{self, Field, Query, Stage};
use crate::lang::time::{self, Clock};
use crate::query::check;
use crate::query::compile::{self, Compiler};
use crate::query::output;
use crate::query::sequence::{Shape, key_texts};
use crate::query::stage::{self, Out, Phys, Step};

/// What a match or an alert becomes, for the sinks.
#[derive(Debug, Clone)]
pub struct Record {
    /// The Atlassian event id, or the alert's stable id.
    pub id: String,
    /// Event time, or the end of the alert's window (µs).
    pub time: i64,
    pub alert: bool,
    /// One line of JSON.
    pub json: String,
    /// What the record is about, for a summary (`auditq detect`'s top keys): an event's
    /// actor, an alert's or a sequence's key values.
    pub key: String,
    /// The id of the rule of a pack that made it.
    pub rule: Option<Arc<str>>,
}

/// Everything the engine remembers; saved in the follow checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Per `dedup` stage: each key's last emitted event time.
    dedup: Vec<BTreeMap<String, i64>>,
    /// Only in a checkpoint: while running, the window holds its own state.
    window: Option<window::State>,
    /// The largest event time seen (µs), for pruning dedup keys.
    max_time: Option<i64>,
    /// A sequence's pending events and sequences.
    #[serde(default)]
    sequence: Option<sequence::Stream>,
    /// Per `first_seen` stage: every key and value tuple seen (see [`key_texts`]).
    #[serde(default)]
    seen: Vec<BTreeSet<String>>,
    /// Where `first_seen … after` counts from: the archive's first event, else the
    /// first event read.
    #[serde(default)]
    start: Option<i64>,
}

/// The longest tuple text `first_seen` keeps as it is; a longer one is kept as its
/// fingerprint (see [`seen_key`]).
const SEEN_TEXT: usize = 64;

/// How `first_seen` remembers a tuple: its text when short and not starting with a NUL,
/// else a NUL, `h` and 32 hex digits of its 128-bit xxh3 (`first_seen raw` kept every
/// event's JSON). The two forms never meet.
fn seen_key(text: String) -> String {
    if text.len() <= SEEN_TEXT && !text.starts_with('\0') {
        text
    } else {
        format!("\0h{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
    }
}

pub struct Engine {
    pub text: String,
    steps: Vec<Step>,
    out: Out,
    window: Option<Window>,
    state: State,
    lateness: i64,
}

type R<T> = std::result::Result<T, Diagnostic>;

impl Engine {
    /// Compile `q` for a stream. `lateness` (µs) is how long windows wait for late events.
    pub fn new(q: &Query, clock: &Clock, lateness: i64) -> R<Engine> {
        check::check(q, check::Mode::Stream)?;
        let clock = Clock {
            now: clock.now,
            tz: time::query_tz(q, clock.tz)?,
        };
        let mut s = stage::Stream::new(Compiler::new(&clock), q.to_string(), lateness);
        if let Some(p) = compile::head_predicate(q, &s.cx)? {
            let p = s.phys(p)?;
            s.steps.push(Step::Filter(p));
        }
        for st in &q.stages {
            stage::of(st).step(&mut s)?;
        }
        let window = match &s.out {
            Out::Window { spec, .. } => Some(Window::new(spec.clone(), window::State::default())),
            _ => None,
        };
        let state = State {
            dedup: vec![BTreeMap::new(); s.dedups],
            sequence: matches!(s.out, Out::Sequence { .. }).then(sequence::Stream::default),
            seen: vec![BTreeSet::new(); s.seen],
            ..Default::default()
        };
        Ok(Engine {
            text: q.to_string(),
            steps: s.steps,
            out: s.out,
            window,
            state,
            lateness,
        })
    }

    /// The state to checkpoint (the window's is kept by the window, and copied here).
    pub fn state(&self) -> State {
        State {
            window: self.window.as_ref().map(|w| w.state.clone()),
            ..self.state.clone()
        }
    }

    /// Events that arrived after their window had closed.
    pub fn late(&self) -> u64 {
        let sequence = self.state.sequence.as_ref().map_or(0, |s| s.late());
        self.window.as_ref().map_or(0, |w| w.state.late()) + sequence
    }

    /// The `first_seen` stages' seeds: for each, the query over stored events (before
    /// `until`, when given) whose rows are every key and value tuple seen (`where`
    /// filters included).
    pub fn seeds(q: &Query, until: Option<i64>) -> Vec<String> {
        let mut out = Vec::new();
        let mut head = Query {
            filter: q.filter.clone(),
            time: until
                .map(|t| {
                    let at = ast::TimePoint::At(event::format_time(t), ast::Span::default());
                    vec![ast::TimeClause::Until(at, ast::Span::default())]
                })
                .unwrap_or_default(),
            ..Default::default()
        };
        for stage in &q.stages {
            match stage {
                Stage::FirstSeen(ast::FirstSeen { fields, by, .. }) => {
                    let mut seed = head.clone();
                    let all: Vec<Field> = by.iter().chain(fields).cloned().collect();
                    seed.stages.push(Stage::Distinct(ast::Distinct {
                        fields: all,
                        span: ast::Span::default(),
                    }));
                    out.push(seed.to_string());
                }
                s => head.stages.push(s.clone()),
            }
        }
        out
    }

    /// Learn the tuples of `first_seen` stage `slot` from stored events (the rows of
    /// its [`Engine::seeds`] query), and count `after` from `start`, the archive's first
    /// event.
    pub fn seed(
        &mut self,
        slot: usize,
        rows: &RecordBatch,
        start: Option<i64>,
    ) -> Result<(), String> {
        let texts = key_texts(rows.columns(), rows.num_rows()).map_err(|e| e.to_string())?;
        let seen = self
            .state
            .seen
            .get_mut(slot)
            .ok_or("no such first_seen stage")?;
        seen.extend(texts.into_iter().flatten().map(seen_key));
        if let Some(s) = start {
            self.state.start = Some(self.state.start.map_or(s, |t| t.min(s)));
        }
        Ok(())
    }

    /// Continue from a checkpoint's state (of the same query).
    pub fn restore(&mut self, mut state: State) {
        if let (Some(w), Some(ws)) = (&mut self.window, state.window.take()) {
            w.state = ws;
        }
        if state.dedup.len() == self.state.dedup.len() && state.seen.len() == self.state.seen.len()
        {
            // A checkpoint of an earlier version kept long tuples whole.
            for seen in &mut state.seen {
                if seen.iter().any(|k| k.len() > SEEN_TEXT) {
                    *seen = std::mem::take(seen).into_iter().map(seen_key).collect();
                }
            }
            self.state = state;
        }
    }

    /// Evaluate one batch of events (the event schema). Matches or alerts come out.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<Vec<Record>, String> {
        let mut batch = batch.clone();
        if let Some(t) = times(&batch)
            && let Some(m) = datafusion::arrow::compute::max(&t)
        {
            self.state.max_time = Some(self.state.max_time.map_or(m, |x| x.max(m)));
        }
        for step in &mut self.steps {
            if batch.num_rows() == 0 {
                return Ok(Vec::new());
            }
            match step {
                Step::Filter(p) => {
                    let mask = eval(p, &batch)?;
                    let mask = mask
                        .as_boolean_opt()
                        .ok_or("a filter gave no boolean")?
                        .clone();
                    batch = filter_record_batch(&batch, &mask).map_err(|e| e.to_string())?;
                }
                Step::Dedup { keys, within, slot } => {
                    let keys = keys
                        .iter()
                        .map(|k| eval(k, &batch).map(|a| values(&a)))
                        .collect::<Result<Vec<_>, _>>()?;
                    let t = times(&batch).ok_or("no time column")?;
                    let seen = &mut self.state.dedup[*slot];
                    let mut keep = Vec::with_capacity(batch.num_rows());
                    for (i, time) in t.values().iter().enumerate() {
                        let key: Vec<&Option<Val>> = keys.iter().map(|k| &k[i]).collect();
                        let k = serde_json::to_string(&key).expect("values serialize");
                        let dup = seen
                            .get(&k)
                            .is_some_and(|&last| (time - last).abs() < *within);
                        if !dup {
                            let last = seen.entry(k).or_insert(*time);
                            *last = (*last).max(*time);
                        }
                        keep.push(!dup);
                    }
                    // Keys not seen for `within` (plus the lateness) can go.
                    if let Some(max) = self.state.max_time
                        && seen.len() > 10_000
                    {
                        let edge = max - *within - self.lateness;
                        seen.retain(|_, last| *last >= edge);
                    }
                    batch = filter_record_batch(&batch, &BooleanArray::from(keep))
                        .map_err(|e| e.to_string())?;
                }
                Step::Lookup(l) => batch = l.apply(&batch)?,
                Step::FirstSeen { parts, after, slot } => {
                    let arrays = parts
                        .iter()
                        .map(|p| eval(p, &batch))
                        .collect::<Result<Vec<_>, _>>()?;
                    let texts = key_texts(&arrays, batch.num_rows()).map_err(|e| e.to_string())?;
                    let t = times(&batch).ok_or("no time column")?;
                    let start = *self.state.start.get_or_insert(t.value(0));
                    let seen = &mut self.state.seen[*slot];
                    let keep: Vec<bool> = texts
                        .into_iter()
                        .zip(t.values().iter())
                        .map(|(k, &time)| {
                            let new = k.is_some_and(|k| seen.insert(seen_key(k)));
                            new && after.is_none_or(|a| time >= start.saturating_add(a))
                        })
                        .collect();
                    batch = filter_record_batch(&batch, &BooleanArray::from(keep))
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        self.emit(&batch)
    }

    /// What the steps let through, as records: the events, their fields, window alerts
    /// or completed sequences.
    fn emit(&mut self, batch: &RecordBatch) -> Result<Vec<Record>, String> {
        match &self.out {
            Out::Events => Ok(events(batch)),
            Out::Fields(cols) => fields(batch, cols),
            Out::Window { keys, vals, .. } => {
                window_alerts(keys, vals, self.window.as_mut(), batch)
            }
            Out::Sequence {
                keys,
                names,
                steps,
                until,
                shape,
            } => {
                let stream = self.state.sequence.as_mut();
                let out = SequenceOut {
                    keys,
                    names,
                    steps,
                    until: until.as_ref(),
                    shape,
                };
                sequences_found(&out, stream, self.lateness, batch)
            }
        }
    }

    /// The source is caught up at `now` (µs): windows may close.
    pub fn idle(&mut self, now: i64) -> Vec<Record> {
        let mut out = Vec::new();
        if let Some(w) = &mut self.window {
            w.idle(now, &mut out);
        }
        if let (Some(stream), Out::Sequence { names, shape, .. }) =
            (&mut self.state.sequence, &self.out)
        {
            let mut found = Vec::new();
            stream.advance(shape, names, now, self.lateness, &mut found);
            return sequences(found);
        }
        alerts(out)
    }

    /// The end of a finite input: every open window closes.
    pub fn finish(&mut self) -> Vec<Record> {
        let mut out = Vec::new();
        if let Some(w) = &mut self.window {
            w.finish(&mut out);
        }
        if let (Some(stream), Out::Sequence { names, shape, .. }) =
            (&mut self.state.sequence, &self.out)
        {
            let mut found = Vec::new();
            stream.finish(shape, names, &mut found);
            return sequences(found);
        }
        alerts(out)
    }
}

fn alerts(out: Vec<window::Output>) -> Vec<Record> {
    out.into_iter()
        .map(|o| Record {
            id: o.id,
            time: o.end,
            alert: true,
            json: o.json,
            key: o.key,
            rule: None,
        })
        .collect()
}

/// The batch's event times, if it has them.
fn times(
    b: &RecordBatch,
) -> Option<
    datafusion::arrow::array::PrimitiveArray<
        datafusion::arrow::datatypes::TimestampMicrosecondType,
    >,
> {
    b.column_by_name(c::TIME).map(|a| {
        a.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
            .clone()
    })
}

/// A batch through a window: each event counted in event-time order, alerts out.
fn window_alerts(
    keys: &[Phys],
    vals: &[Option<Phys>],
    window: Option<&mut Window>,
    batch: &RecordBatch,
) -> Result<Vec<Record>, String> {
    let keys = keys
        .iter()
        .map(|k| eval(k, batch).map(|a| values(&a)))
        .collect::<Result<Vec<_>, _>>()?;
    let vals = vals
        .iter()
        .map(|v| match v {
            Some(v) => eval(v, batch).map(|a| values(&a)),
            None => Ok(vec![None; batch.num_rows()]),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let t = times(batch).ok_or("no time column")?;
    let processed = batch.column_by_name(c::PROCESSED_AT).map(|a| {
        a.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
            .clone()
    });
    let w = window.expect("a window");
    let mut out = Vec::new();
    for i in 0..batch.num_rows() {
        let p = processed
            .as_ref()
            .and_then(|p| p.is_valid(i).then(|| p.value(i)));
        w.push(
            t.value(i),
            p,
            keys.iter().map(|k| k[i].clone()).collect(),
            vals.iter().map(|v| v[i].clone()).collect(),
            &mut out,
        );
    }
    Ok(alerts(out))
}

/// What a sequence stage evaluates on each batch.
struct SequenceOut<'a> {
    keys: &'a [Phys],
    names: &'a [String],
    steps: &'a [Phys],
    until: Option<&'a Phys>,
    shape: &'a Shape,
}

/// A batch through a sequence: the candidates (events matching a step or `until`) wait
/// in the stream's reorder buffer; completed sequences out.
fn sequences_found(
    out: &SequenceOut<'_>,
    stream: Option<&mut sequence::Stream>,
    lateness: i64,
    batch: &RecordBatch,
) -> Result<Vec<Record>, String> {
    let SequenceOut {
        keys,
        names,
        steps,
        until,
        shape,
    } = *out;
    let flags = |p: &Phys| -> Result<BooleanArray, String> {
        Ok(eval(p, batch)?
            .as_boolean_opt()
            .ok_or("a step gave no boolean")?
            .clone())
    };
    let steps = steps.iter().map(flags).collect::<Result<Vec<_>, _>>()?;
    let until = until.map(flags).transpose()?;
    // Keys are worked out for the candidates only (an event matching a step
    // or `until`): a key may be costly (`raw.PATH` parses the event's JSON).
    let candidate: Vec<bool> = (0..batch.num_rows())
        .map(|i| until.as_ref().is_some_and(|u| u.value(i)) || steps.iter().any(|s| s.value(i)))
        .collect();
    let candidates = filter_record_batch(batch, &BooleanArray::from(candidate.clone()))
        .map_err(|e| e.to_string())?;
    let key_arrays = keys
        .iter()
        .map(|k| eval(k, &candidates))
        .collect::<Result<Vec<_>, _>>()?;
    let mut texts = key_texts(&key_arrays, candidates.num_rows())
        .map_err(|e| e.to_string())?
        .into_iter();
    let values: Vec<Vec<Option<Val>>> = key_arrays.iter().map(values).collect();
    let (ids, t) = ids_and_times(batch);
    let actions = batch
        .column_by_name(c::ACTION)
        .map(|a| a.as_string::<i32>());
    let processed = batch.column_by_name(c::PROCESSED_AT).map(|a| {
        a.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
            .clone()
    });
    let stream = stream.expect("a sequence's state");
    let mut found = Vec::new();
    let mut j = 0;
    for (i, &is_candidate) in candidate.iter().enumerate() {
        let time = t.value(i);
        let progress = processed
            .as_ref()
            .and_then(|p| p.is_valid(i).then(|| p.value(i)));
        let key = if is_candidate {
            j += 1;
            texts.next().flatten()
        } else {
            None
        };
        let Some(key) = key else {
            let p = progress.map_or(time, |p| p.min(time));
            stream.advance(shape, names, p, lateness, &mut found);
            continue;
        };
        let w = sequence::Waiting {
            time,
            id: ids.value(i).to_owned(),
            key,
            values: values.iter().map(|v| v[j - 1].clone()).collect(),
            event: actions.and_then(|a| a.is_valid(i).then(|| a.value(i).to_owned())),
            matches: steps.iter().map(|s| s.value(i)).collect(),
            until: until.as_ref().is_some_and(|u| u.value(i)),
        };
        stream.push(shape, names, lateness, w, progress, &mut found);
    }
    Ok(sequences(found))
}

fn sequences(found: Vec<sequence::Found>) -> Vec<Record> {
    found
        .into_iter()
        .map(|f| Record {
            id: f.id,
            time: f.time,
            alert: true,
            json: f.json,
            key: f.key,
            rule: None,
        })
        .collect()
}

fn eval(p: &Phys, batch: &RecordBatch) -> Result<ArrayRef, String> {
    p.evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()))
        .map_err(|e| e.to_string())
}

/// The values of an array, for keys and aggregates.
pub fn values(a: &ArrayRef) -> Vec<Option<Val>> {
    let n = a.len();
    let valid = |i: usize| a.is_valid(i);
    match a.data_type() {
        DataType::Utf8 => {
            let s = a.as_string::<i32>();
            (0..n)
                .map(|i| valid(i).then(|| Val::Str(s.value(i).to_owned())))
                .collect()
        }
        DataType::Utf8View => {
            let s = a.as_string_view();
            (0..n)
                .map(|i| valid(i).then(|| Val::Str(s.value(i).to_owned())))
                .collect()
        }
        DataType::Int64 => {
            let v = a.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            (0..n)
                .map(|i| valid(i).then(|| Val::Int(v.value(i))))
                .collect()
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let v = a.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
            (0..n)
                .map(|i| valid(i).then(|| Val::Time(v.value(i))))
                .collect()
        }
        _ => {
            let opts = datafusion::arrow::util::display::FormatOptions::default();
            match datafusion::arrow::util::display::ArrayFormatter::try_new(a.as_ref(), &opts) {
                Ok(f) => (0..n)
                    .map(|i| valid(i).then(|| Val::Str(f.value(i).to_string())))
                    .collect(),
                Err(_) => vec![None; n],
            }
        }
    }
}

/// The `id` and `time` columns of events.
fn ids_and_times(
    batch: &RecordBatch,
) -> (
    &datafusion::arrow::array::StringArray,
    &datafusion::arrow::array::TimestampMicrosecondArray,
) {
    let ids = batch.column_by_name(c::ID).expect("id").as_string::<i32>();
    let times = batch
        .column_by_name(c::TIME)
        .expect("time")
        .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
    (ids, times)
}

/// Each event's actor as `actor` shows it: the e-mail, else the name, else the id.
fn actors(batch: &RecordBatch) -> Vec<String> {
    let column = |n: &str| batch.column_by_name(n).map(|a| a.as_string::<i32>());
    let cols = [c::ACTOR_EMAIL, c::ACTOR_NAME, c::ACTOR_ID].map(column);
    (0..batch.num_rows())
        .map(|i| {
            cols.iter()
                .flatten()
                .find(|a| a.is_valid(i))
                .map_or_else(|| "-".to_owned(), |a| a.value(i).to_owned())
        })
        .collect()
}

/// Matching events as their own JSON, on one line each.
fn events(batch: &RecordBatch) -> Vec<Record> {
    let (ids, times) = ids_and_times(batch);
    let raw = batch
        .column_by_name(c::RAW)
        .expect("raw")
        .as_string::<i32>();
    actors(batch)
        .into_iter()
        .enumerate()
        .map(|(i, key)| Record {
            id: ids.value(i).to_owned(),
            time: times.value(i),
            alert: false,
            json: event::compact_json(raw.value(i)).into_owned(),
            key,
            rule: None,
        })
        .collect()
}

/// Chosen columns, written the way `query --format ndjson` writes them.
fn fields(batch: &RecordBatch, cols: &[(String, Phys)]) -> Result<Vec<Record>, String> {
    let arrays = cols
        .iter()
        .map(|(_, p)| eval(p, batch))
        .collect::<Result<Vec<_>, _>>()?;
    let schema = Arc::new(Schema::new(
        cols.iter()
            .zip(&arrays)
            .map(|((n, _), a)| ArrowField::new(n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let projected = RecordBatch::try_new(schema, arrays).map_err(|e| e.to_string())?;
    let buf = output::ndjson_bytes(&projected).map_err(|e| crate::diag::chain(&e))?;
    let text = String::from_utf8(buf).map_err(|e| e.to_string())?;
    let (ids, times) = ids_and_times(batch);
    Ok(text
        .lines()
        .zip(actors(batch))
        .enumerate()
        .map(|(i, (line, key))| Record {
            id: ids.value(i).to_owned(),
            time: times.value(i),
            alert: false,
            json: line.to_owned(),
            key,
            rule: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(q: &str) -> R<Engine> {
        let clock = Clock::utc(event::parse_time("2026-02-18T00:00:00Z").unwrap());
        Engine::new(&crate::lang::parse(q).unwrap(), &clock, 600_000_000)
    }

    #[test]
    fn whole_input_stages_are_refused_with_a_hint() {
        for (q, hint) in [
            ("| count by actor", "over 5m"),
            ("| sort -time", "add a window"),
            ("| head 5", "add a window"),
            ("| top 5 actor", "add a window"),
            ("| dedup actor", "within 1h"),
            ("| count by actor over 5m", "threshold"),
            ("| fields actor | where actor = x", "ends a query"),
        ] {
            let Err(d) = engine(q) else {
                panic!("`{q}` was accepted");
            };
            let text = crate::diag::render(q, &[d], false);
            assert!(text.contains(hint), "`{q}`:\n{text}");
        }
        assert!(engine("actor:ada event:user_* | where country != DE | dedup actor within 1h | fields time, actor").is_ok());
        assert!(engine("| stats dc(ip) as ips by actor over 1h > 3").is_ok());
    }
}
