//! Events in processing order -> events in time order: the one reorder buffer of
//! windows ([`super::window`]) and sequences ([`super::sequence`]).
//!
//! Each event waits until the watermark — the largest progress seen minus the
//! lateness — passes its time; then events are released earliest first (ties as the
//! item's order says). An event whose time the watermark already passed is late:
//! counted, and not taken. Saved in the follow checkpoint (its fields flattened into
//! the owner's, as they were before there was one type).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

/// An item with a time; its order (earliest first) is the release order.
pub trait Timed: Ord {
    fn time(&self) -> i64;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct Reorder<T: Ord> {
    /// The largest progress seen (µs).
    progress: Option<i64>,
    /// Events released up to this time (the watermark at the last release).
    released: Option<i64>,
    pending: BinaryHeap<Reverse<T>>,
    /// Events that came after the watermark passed their time.
    pub late: u64,
}

impl<T: Ord> Default for Reorder<T> {
    fn default() -> Self {
        Reorder {
            progress: None,
            released: None,
            pending: BinaryHeap::new(),
            late: 0,
        }
    }
}

impl<T: Timed> Reorder<T> {
    /// Progress is at least `p` (µs); whether it moved forward.
    pub fn advance(&mut self, p: i64) -> bool {
        let forward = self.progress.is_none_or(|q| p > q);
        if forward {
            self.progress = Some(p);
        }
        forward
    }

    /// The largest progress seen.
    pub fn progress(&self) -> Option<i64> {
        self.progress
    }

    /// Released up to this time.
    pub fn released(&self) -> Option<i64> {
        self.released
    }

    /// Take `item` to wait for the watermark, unless the watermark already passed its
    /// time: then it is late, counted, and `false`.
    pub fn offer(&mut self, item: T) -> bool {
        if self.released.is_some_and(|r| item.time() <= r) {
            self.late += 1;
            return false;
        }
        self.pending.push(Reverse(item));
        true
    }

    /// Whether a release to `wm` would release anything new (`wm` is past the last).
    pub fn moves(&self, wm: i64) -> bool {
        self.released.is_none_or(|r| wm > r)
    }

    /// The earliest waiting item, if its time is at or before `wm`.
    pub fn pop_until(&mut self, wm: i64) -> Option<T> {
        match self.pending.peek() {
            Some(Reverse(item)) if item.time() <= wm => self.pending.pop().map(|r| r.0),
            _ => None,
        }
    }

    /// The earliest waiting item's time.
    pub fn next_time(&self) -> Option<i64> {
        self.pending.peek().map(|r| r.0.time())
    }

    /// Everything up to `wm` is released: later items at or before it are late.
    pub fn released_to(&mut self, wm: i64) {
        self.released = Some(wm);
    }

    /// The latest time of the waiting items (a finite input's end releases to it).
    pub fn last_waiting(&self) -> Option<i64> {
        self.pending.iter().map(|r| r.0.time()).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Timed for (i64, u64) {
        fn time(&self) -> i64 {
            self.0
        }
    }

    #[test]
    fn releases_in_time_order_and_counts_the_late() {
        let mut r = Reorder::default();
        for item in [(30, 1), (10, 2), (20, 3), (10, 4)] {
            assert!(r.offer(item));
        }
        assert!(r.advance(25));
        assert!(!r.advance(20));
        let mut out = Vec::new();
        while let Some(item) = r.pop_until(20) {
            out.push(item);
        }
        r.released_to(20);
        assert_eq!(out, [(10, 2), (10, 4), (20, 3)]);
        assert!(!r.offer((15, 5)));
        assert_eq!(r.late, 1);
        assert!(!r.moves(20) && r.moves(21));
        assert_eq!((r.next_time(), r.last_waiting()), (Some(30), Some(30)));
    }

    /// The saved form is the one windows and sequences saved before there was one type.
    #[test]
    fn saved_as_before() {
        let mut r = Reorder::default();
        r.offer((5, 1));
        r.advance(7);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"progress": 7, "released": null, "pending": [[5, 1]], "late": 0})
        );
        let back: Reorder<(i64, u64)> = serde_json::from_value(json).unwrap();
        assert_eq!(back.next_time(), Some(5));
    }
}
