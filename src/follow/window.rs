//! Windowed aggregation on event time, with allowed lateness.
//!
//! Events arrive in processing order, not in event-time order. Each one waits in a
//! reorder buffer until the *watermark* — the largest progress seen minus the lateness —
//! passes its time; then events are released in time order (ties by arrival). So the
//! result does not depend on arrival order, as long as no event is later than the
//! lateness. An event whose time the watermark has already passed is *late*: it is
//! counted, reported, and not aggregated.
//!
//! Progress is an event's `processedAt` when it has one (API events do), else its time;
//! the smaller of the two, so a far-future `time` cannot close every window.
//!
//! - **Sliding** (`over W`): per key, the events of `(t − W, t]`, evaluated at each event
//!   time `t`. An alert fires when the threshold is crossed, once per episode: the key
//!   re-arms when its aggregate falls back below the threshold.
//! - **Hopping** (`over W every S`): windows `[s, s + W)` with `s` a multiple of `S` since
//!   the Unix epoch; one row per key and window when the window closes (the threshold, if
//!   any, filters rows). `S = W` is tumbling.
//!
//! All state is serializable: the follow checkpoint stores it, so a restart neither
//! forgets open windows nor repeats an alert.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::reorder::{Reorder, Timed};
use crate::event;
use crate::lang::ast::{AggFn, CmpOp};

/// A value of a key or an aggregated field.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Val {
    Int(i64),
    /// Microseconds since the epoch, UTC.
    Time(i64),
    Str(String),
}

impl Val {
    pub fn to_json(&self) -> Json {
        match self {
            Val::Int(n) => json!(n),
            Val::Time(t) => json!(event::format_time(*t)),
            Val::Str(s) => json!(s),
        }
    }
}

pub fn opt_json(v: &Option<Val>) -> Json {
    v.as_ref().map_or(Json::Null, Val::to_json)
}

/// One event as the window sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub time: i64,
    /// Arrival number: ties in time are released in arrival order.
    pub seq: u64,
    pub key: Vec<Option<Val>>,
    pub vals: Vec<Option<Val>>,
}

/// Order on (time, seq): released earliest first, ties in arrival order.
impl Ord for Row {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}
impl Timed for Row {
    fn time(&self) -> i64 {
        self.time
    }
}
impl PartialOrd for Row {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Row {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Row {}

/// What a window computes (its stage's: `query/stage/stats.rs`).
pub use crate::query::stage::stats::WindowSpec as Spec;

/// One aggregate's running value.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Acc {
    Count(u64),
    Set(BTreeSet<Val>),
    Min(Option<Val>),
    Max(Option<Val>),
    First(Option<(i64, u64, Val)>),
    Last(Option<(i64, u64, Val)>),
}

impl Acc {
    fn new(f: AggFn) -> Acc {
        match f {
            AggFn::Count => Acc::Count(0),
            AggFn::Dc | AggFn::Values => Acc::Set(BTreeSet::new()),
            AggFn::Min => Acc::Min(None),
            AggFn::Max => Acc::Max(None),
            AggFn::First => Acc::First(None),
            AggFn::Last => Acc::Last(None),
        }
    }

    /// Add a value. `count` without a field counts rows (`has_field` false).
    fn add(&mut self, has_field: bool, v: &Option<Val>, time: i64, seq: u64) {
        match (self, v) {
            (Acc::Count(n), _) if !has_field => *n += 1,
            (_, None) => {}
            (Acc::Count(n), Some(_)) => *n += 1,
            (Acc::Set(s), Some(v)) => {
                s.insert(v.clone());
            }
            (Acc::Min(m), Some(v)) => {
                if m.as_ref().is_none_or(|m| v < m) {
                    *m = Some(v.clone());
                }
            }
            (Acc::Max(m), Some(v)) => {
                if m.as_ref().is_none_or(|m| v > m) {
                    *m = Some(v.clone());
                }
            }
            (Acc::First(f), Some(v)) => {
                if f.as_ref().is_none_or(|(t, s, _)| (time, seq) < (*t, *s)) {
                    *f = Some((time, seq, v.clone()));
                }
            }
            (Acc::Last(l), Some(v)) => {
                if l.as_ref().is_none_or(|(t, s, _)| (time, seq) > (*t, *s)) {
                    *l = Some((time, seq, v.clone()));
                }
            }
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Acc::Count(n) => Some(*n as f64),
            Acc::Set(s) => Some(s.len() as f64),
            _ => None,
        }
    }

    fn json(&self, f: AggFn) -> Json {
        match (self, f) {
            (Acc::Count(n), _) => json!(n),
            (Acc::Set(s), AggFn::Dc) => json!(s.len()),
            (Acc::Set(s), _) => Json::Array(s.iter().map(Val::to_json).collect()),
            (Acc::Min(v) | Acc::Max(v), _) => opt_json(v),
            (Acc::First(v) | Acc::Last(v), _) => {
                v.as_ref().map_or(Json::Null, |(_, _, v)| v.to_json())
            }
        }
    }
}

/// The aggregates of one key in one window.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Accs(Vec<Acc>);

impl Accs {
    fn new(spec: &Spec) -> Accs {
        Accs(spec.aggs.iter().map(|(f, _, _)| Acc::new(*f)).collect())
    }
    fn add(&mut self, spec: &Spec, row: &Row) {
        for (i, acc) in self.0.iter_mut().enumerate() {
            acc.add(spec.aggs[i].1, &row.vals[i], row.time, row.seq);
        }
    }
    /// Whether the threshold holds (always, without one).
    fn passes(&self, spec: &Spec) -> bool {
        let Some((op, n)) = spec.threshold else {
            return true;
        };
        let Some(v) = self.0.first().and_then(Acc::number) else {
            return false;
        };
        match op {
            CmpOp::Gt => v > n,
            CmpOp::Ge => v >= n,
            CmpOp::Lt => v < n,
            CmpOp::Le => v <= n,
            CmpOp::Ne | CmpOp::ExactNe => v != n,
            _ => v == n,
        }
    }
}

/// A key's values and aggregates in one hopping window.
type Group = (Vec<Option<Val>>, Accs);

/// One key of a sliding window: its events in the window, and whether it is alerting.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Slide {
    key: Vec<Option<Val>>,
    rows: VecDeque<Row>,
    alerting: bool,
}

/// An output row: an alert or a window's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Stable across runs: a hash of the query, the window and the key.
    pub id: String,
    pub start: i64,
    pub end: i64,
    /// One JSON object, its columns in query order.
    pub json: String,
    /// The key's values, for a summary (`auditq detect`'s top keys).
    pub key: String,
}

/// Everything a window remembers; saved in the follow checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Events waiting for the watermark; progress, what was released, the late.
    #[serde(flatten)]
    order: Reorder<Row>,
    seq: u64,
    /// Sliding: per key (its JSON).
    slides: BTreeMap<String, Slide>,
    /// When idle sliding keys were last swept.
    swept: Option<i64>,
    /// Hopping: per window start, per key.
    windows: BTreeMap<i64, BTreeMap<String, Group>>,
}

impl State {
    /// Events that came after the watermark passed their time.
    pub fn late(&self) -> u64 {
        self.order.late
    }
}

/// Key values as a person reads them: `ada@example.com`, `ada@example.com, DE`.
pub fn shown_key(key: &[Option<Val>]) -> String {
    key.iter()
        .map(|v| match v {
            Some(Val::Str(s)) => s.clone(),
            Some(Val::Int(n)) => n.to_string(),
            Some(Val::Time(t)) => event::format_time(*t),
            None => "-".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn key_text(key: &[Option<Val>]) -> String {
    serde_json::to_string(key).expect("values serialize")
}

pub struct Window {
    pub spec: Spec,
    pub state: State,
}

impl Window {
    pub fn new(spec: Spec, state: State) -> Window {
        Window { spec, state }
    }

    /// Take one event (`progress`: its processedAt, when known), releasing what the
    /// watermark passed first — event by event, so batching never changes a result.
    /// Returns false when the event was late and is not counted.
    pub fn push(
        &mut self,
        time: i64,
        progress: Option<i64>,
        key: Vec<Option<Val>>,
        vals: Vec<Option<Val>>,
        out: &mut Vec<Output>,
    ) -> bool {
        let p = progress.map_or(time, |p| p.min(time));
        if self.state.order.advance(p) {
            self.release(out);
        }
        let row = Row {
            time,
            seq: self.state.seq + 1,
            key,
            vals,
        };
        let taken = self.state.order.offer(row);
        if taken {
            self.state.seq += 1;
        }
        taken
    }

    /// Move progress to at least `now` (µs): a source that is caught up knows that no
    /// event processed before `now` is still to come.
    pub fn idle(&mut self, now: i64, out: &mut Vec<Output>) {
        self.state.order.advance(now);
        self.release(out);
    }

    /// Release every event the watermark has passed, and close finished windows.
    pub fn release(&mut self, out: &mut Vec<Output>) {
        if let Some(p) = self.state.order.progress() {
            self.release_to(p.saturating_sub(self.spec.lateness), out);
        }
    }

    /// The end of a finite input: every event waiting is released and every window
    /// closed. Events that come later (a restart on a grown file) are late if their
    /// time is at or before the last event released or in a window already closed.
    pub fn finish(&mut self, out: &mut Vec<Output>) {
        let last = self.state.order.last_waiting();
        if let Some(t) = last.or(self.state.order.released()) {
            self.release_to(t, out);
        }
        let closed = self
            .state
            .windows
            .last_key_value()
            .map(|(s, _)| s + self.spec.over - 1);
        self.close(i64::MAX - 1, out);
        if let Some(c) = closed {
            let r = self.state.order.released().map_or(c, |r| r.max(c));
            self.state.order.released_to(r);
        }
    }

    fn release_to(&mut self, wm: i64, out: &mut Vec<Output>) {
        if !self.state.order.moves(wm) {
            return;
        }
        while let Some(first) = self.state.order.pop_until(wm) {
            let time = first.time;
            let mut group = vec![first];
            while let Some(next) = self.state.order.pop_until(time) {
                group.push(next);
            }
            match self.spec.every {
                Some(every) => self.hop(group, every),
                None => self.slide(group, out),
            }
        }
        self.state.order.released_to(wm);
        if self.spec.every.is_some() {
            self.close(wm, out);
        } else if self
            .state
            .swept
            .is_none_or(|s| wm.saturating_sub(s) > self.spec.over)
        {
            // Keys without an event in the window are dropped: they hold nothing.
            let edge = wm.saturating_sub(self.spec.over);
            self.state
                .slides
                .retain(|_, s| s.rows.back().is_some_and(|r| r.time > edge));
            self.state.swept = Some(wm);
        }
    }

    fn slide(&mut self, group: Vec<Row>, out: &mut Vec<Output>) {
        let spec = &self.spec;
        let t = group[0].time;
        let mut touched: Vec<String> = Vec::new();
        for row in group {
            let k = key_text(&row.key);
            let slide = self.state.slides.entry(k.clone()).or_insert_with(|| Slide {
                key: row.key.clone(),
                rows: VecDeque::new(),
                alerting: false,
            });
            if !touched.contains(&k) {
                touched.push(k);
                while slide.rows.front().is_some_and(|r| r.time <= t - spec.over) {
                    slide.rows.pop_front();
                }
                // Between two events of a key its aggregate only falls: its value just
                // before this one is the lowest since the last evaluation.
                if slide.alerting && !aggregate(spec, &slide.rows).passes(spec) {
                    slide.alerting = false;
                }
            }
            slide.rows.push_back(row);
        }
        for k in touched {
            let slide = self.state.slides.get_mut(&k).expect("touched");
            let accs = aggregate(spec, &slide.rows);
            if accs.passes(spec) && !slide.alerting {
                slide.alerting = true;
                out.push(output(spec, t - spec.over, t, &slide.key, &accs));
            }
        }
    }

    fn hop(&mut self, group: Vec<Row>, every: i64) {
        let spec = &self.spec;
        for row in group {
            let k = key_text(&row.key);
            let mut s = row.time.div_euclid(every) * every;
            while s > row.time - spec.over {
                let w = self.state.windows.entry(s).or_default();
                let (_, accs) = w
                    .entry(k.clone())
                    .or_insert_with(|| (row.key.clone(), Accs::new(spec)));
                accs.add(spec, &row);
                s -= every;
            }
        }
    }

    /// Emit and drop the windows that end at or before the watermark.
    fn close(&mut self, wm: i64, out: &mut Vec<Output>) {
        while let Some((&start, _)) = self.state.windows.first_key_value() {
            let end = start + self.spec.over;
            if end > wm.saturating_add(1) {
                break;
            }
            let (_, keys) = self.state.windows.pop_first().expect("first");
            for (key, accs) in keys.values() {
                if accs.passes(&self.spec) {
                    out.push(output(&self.spec, start, end, key, accs));
                }
            }
        }
    }
}

fn aggregate(spec: &Spec, rows: &VecDeque<Row>) -> Accs {
    let mut accs = Accs::new(spec);
    for r in rows {
        accs.add(spec, r);
    }
    accs
}

fn output(spec: &Spec, start: i64, end: i64, key: &[Option<Val>], accs: &Accs) -> Output {
    let id = format!(
        "alert-{:016x}",
        xxhash_rust::xxh3::xxh3_64(
            format!(
                "{}\u{1f}{start}\u{1f}{end}\u{1f}{}",
                spec.query,
                key_text(key)
            )
            .as_bytes()
        )
    );
    // Written by hand to keep the columns in query order: id, window, keys, aggregates.
    let mut fields: Vec<(&str, Json)> = vec![
        ("id", json!(id)),
        ("window_start", json!(event::format_time(start))),
        ("window_end", json!(event::format_time(end))),
    ];
    for (name, v) in spec.keys.iter().zip(key) {
        fields.push((name, opt_json(v)));
    }
    for ((f, _, name), acc) in spec.aggs.iter().zip(&accs.0) {
        fields.push((name, acc.json(*f)));
    }
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Json::from(*k)))
        .collect();
    Output {
        id,
        start,
        end,
        json: format!("{{{}}}", body.join(",")),
        key: shown_key(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    fn spec(every: Option<i64>, threshold: Option<(CmpOp, f64)>) -> Spec {
        Spec {
            query: "q".into(),
            over: 5 * MIN,
            every,
            lateness: 10 * MIN,
            threshold,
            keys: vec!["actor".into()],
            aggs: vec![(AggFn::Count, false, "count".into())],
        }
    }

    fn push(w: &mut Window, minute: f64, actor: &str, out: &mut Vec<Output>) -> bool {
        let t = (minute * MIN as f64) as i64;
        w.push(t, None, vec![Some(Val::Str(actor.into()))], vec![None], out)
    }

    #[test]
    fn sliding_alerts_once_per_episode_whatever_the_arrival_order() {
        // 4 events of ada within 5 minutes, threshold > 3: one alert at minute 4.
        let minutes = [0.0, 1.0, 2.0, 4.0, 4.5, 30.0, 31.0, 32.0, 33.0];
        let run = |order: &[usize]| {
            let mut w = Window::new(spec(None, Some((CmpOp::Gt, 3.0))), State::default());
            let mut out = Vec::new();
            for &i in order {
                assert!(push(&mut w, minutes[i], "ada", &mut out));
            }
            w.finish(&mut out);
            out.iter()
                .map(|o| {
                    let v: Json = serde_json::from_str(&o.json).unwrap();
                    (o.end / MIN, v["count"].as_u64().unwrap())
                })
                .collect::<Vec<_>>()
        };
        let in_order = run(&[0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(in_order, vec![(4, 4), (33, 4)]);
        assert_eq!(run(&[3, 0, 2, 1, 4, 8, 5, 7, 6]), in_order);
    }

    #[test]
    fn hopping_windows_close_after_the_lateness() {
        let mut w = Window::new(spec(Some(5 * MIN), None), State::default());
        let mut out = Vec::new();
        push(&mut w, 1.0, "ada", &mut out);
        push(&mut w, 2.0, "bob", &mut out);
        push(&mut w, 6.0, "ada", &mut out);
        assert!(
            out.is_empty(),
            "the window [0, 5) stays open for 10 minutes"
        );
        push(&mut w, 15.5, "cy", &mut out);
        let rows: Vec<String> = out.iter().map(|o| o.json.clone()).collect();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(rows[0].contains("\"actor\":\"ada\"") && rows[0].contains("\"count\":1"));
        // A late event for a closed window is counted as late, not aggregated.
        assert!(!push(&mut w, 3.0, "ada", &mut out));
        assert_eq!(w.state.late(), 1);
        out.clear();
        w.finish(&mut out);
        assert_eq!(out.len(), 2, "[5, 10) ada and [15, 20) cy");
    }

    #[test]
    fn state_survives_a_round_trip_through_json() {
        let mut w = Window::new(spec(None, Some((CmpOp::Gt, 1.0))), State::default());
        let mut out = Vec::new();
        push(&mut w, 0.0, "ada", &mut out);
        let saved = serde_json::to_string(&w.state).unwrap();
        let mut w2 = Window::new(w.spec.clone(), serde_json::from_str(&saved).unwrap());
        push(&mut w2, 1.0, "ada", &mut out);
        w2.finish(&mut out);
        assert_eq!(out.len(), 1);
    }
}
