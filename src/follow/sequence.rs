//! `| sequence …` on a stream: the query's [`Machine`], fed in event-time order.
//!
//! Events arrive in processing order. As windows do, they wait in a [`Reorder`] buffer
//! for the watermark and are released in time order, ties by event id: the order
//! `query` sorts them in, so a stream finds the sequences `query` finds over the same
//! events, whatever their arrival order within the lateness.

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use super::reorder::{Reorder, Timed};
use super::window::{Val, opt_json};
use crate::event;
use crate::query::sequence::{Ev, Machine, Shape, sequence_id};

/// One candidate event waiting for the watermark.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Waiting {
    pub time: i64,
    pub id: String,
    pub key: String,
    /// The key's values, for the output.
    pub values: Vec<Option<Val>>,
    pub event: Option<String>,
    pub matches: Vec<bool>,
    pub until: bool,
}

impl Timed for Waiting {
    fn time(&self) -> i64 {
        self.time
    }
}

/// A sequence's state on a stream; saved in the follow checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stream {
    machine: Machine,
    /// Events waiting for the watermark; progress, what was released, the late.
    #[serde(flatten)]
    order: Reorder<Waiting>,
}

/// A completed sequence: its id, its last event's time, and its row as JSON.
pub struct Found {
    pub id: String,
    pub time: i64,
    pub json: String,
    /// The key's values, for a summary.
    pub key: String,
}

impl Stream {
    /// Take one candidate event (`progress`: its processedAt, when known).
    pub fn push(
        &mut self,
        shape: &Shape,
        names: &[String],
        lateness: i64,
        w: Waiting,
        progress: Option<i64>,
        out: &mut Vec<Found>,
    ) {
        let p = progress.map_or(w.time, |p| p.min(w.time));
        self.advance(shape, names, p, lateness, out);
        self.order.offer(w);
    }

    /// Events that came after the watermark passed their time.
    pub fn late(&self) -> u64 {
        self.order.late
    }

    /// Progress is at least `now` (µs): release what the watermark passed.
    pub fn advance(
        &mut self,
        shape: &Shape,
        names: &[String],
        now: i64,
        lateness: i64,
        out: &mut Vec<Found>,
    ) {
        if self.order.advance(now) {
            self.release(shape, names, now.saturating_sub(lateness), out);
        }
    }

    /// A finite input ended: every waiting event is taken.
    pub fn finish(&mut self, shape: &Shape, names: &[String], out: &mut Vec<Found>) {
        if let Some(t) = self.order.last_waiting() {
            self.release(shape, names, t, out);
        }
    }

    fn release(&mut self, shape: &Shape, names: &[String], wm: i64, out: &mut Vec<Found>) {
        if !self.order.moves(wm) {
            return;
        }
        while let Some(w) = self.order.pop_until(wm) {
            let ev = Ev {
                time: w.time,
                id: w.id,
                event: w.event,
            };
            if let Some(done) = self.machine.push(shape, &w.key, ev, &w.matches, w.until) {
                out.push(found(shape, names, &w.values, &done));
            }
        }
        self.order.released_to(wm);
    }
}

/// The row `query --format ndjson` writes for the same sequence, its columns in the
/// same order (written by hand: a JSON map would sort them).
fn found(shape: &Shape, names: &[String], values: &[Option<Val>], done: &[Ev]) -> Found {
    let time = |t: i64| json!(event::format_time(t));
    let id = sequence_id(shape, done);
    let last = done[done.len() - 1].time;
    let mut row: Vec<(String, Json)> = names
        .iter()
        .cloned()
        .zip(values.iter().map(opt_json))
        .collect();
    row.push(("sequence".into(), json!(id)));
    row.push(("first".into(), time(done[0].time)));
    row.push(("last".into(), time(last)));
    for (i, e) in done.iter().enumerate() {
        let n = i + 1;
        row.push((format!("step{n}_time"), time(e.time)));
        row.push((format!("step{n}_id"), json!(e.id)));
        let event = e.event.as_ref().map_or(Json::Null, |s| json!(s));
        row.push((format!("step{n}_event"), event));
    }
    let body: Vec<String> = row
        .iter()
        .map(|(k, v)| format!("{}:{v}", Json::from(k.as_str())))
        .collect();
    Found {
        id,
        time: last,
        json: format!("{{{}}}", body.join(",")),
        key: super::window::shown_key(values),
    }
}
