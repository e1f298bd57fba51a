//! The writer's memory of archived ids, in bounded space.
//!
//! Two parts, so that a writer over a 10M-event archive stays well under 512 MiB:
//!
//! - [`IdSet`]: every archived id's 64-bit hash, 8 bytes an id (a sorted vector, plus
//!   the ids added since it was last merged). It answers "is this id archived
//!   anywhere?" — for a live sync, almost always "no", and then nothing else is read.
//! - [`DayCache`]: id hash -> content fingerprint for the UTC days a writer touched
//!   lately, loaded from that day's files on demand and bounded in ids (least recently
//!   used days are dropped). It tells "already present" from "conflict".
//!
//! An id that is archived, but not in the day its new copy claims, is a conflict: the
//! same content means the same `time`, hence the same day.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A pass-through hasher: the keys are already xxh3 hashes.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Id hash -> content fingerprint (`raw_hash`).
///
/// Two different ids share a 64-bit hash with probability about n²/2⁶⁵ (≈3·10⁻⁶ at 10M
/// events); the newcomer would then be reported as a conflict and kept in the
/// quarantine, never lost (see docs/decisions.md).
pub type IdIndex = HashMap<u64, i64, BuildHasherDefault<PassThrough>>;

/// Merge the recent ids into the sorted vector when there are this many.
const MERGE_AT: usize = 1 << 20;

/// A set of id hashes: a sorted vector and an unsorted recent part.
#[derive(Default)]
pub struct IdSet {
    sorted: Vec<u64>,
    recent: HashSet<u64, BuildHasherDefault<PassThrough>>,
}

impl IdSet {
    /// A set of `hashes` (any order, duplicates allowed).
    pub fn from_hashes(mut hashes: Vec<u64>) -> IdSet {
        hashes.sort_unstable();
        hashes.dedup();
        hashes.shrink_to_fit();
        IdSet {
            sorted: hashes,
            recent: HashSet::default(),
        }
    }

    /// The set of `sorted` (sorted and distinct: a snapshot's) and `more` (any order).
    pub fn from_sorted_and(sorted: Vec<u64>, more: Vec<u64>) -> IdSet {
        debug_assert!(sorted.windows(2).all(|w| w[0] < w[1]));
        if more.len() < MERGE_AT {
            // Few: kept apart, as ids added later are (no copy of the sorted part).
            let mut set = IdSet {
                sorted,
                recent: HashSet::default(),
            };
            for h in more {
                set.insert(h);
            }
            return set;
        }
        let mut set = IdSet::from_hashes(more);
        if set.sorted.is_empty() {
            set.sorted = sorted;
        } else if !sorted.is_empty() {
            let mut merged = Vec::with_capacity(sorted.len() + set.sorted.len());
            let (mut a, mut b) = (sorted.iter().peekable(), set.sorted.iter().peekable());
            while let (Some(&&x), Some(&&y)) = (a.peek(), b.peek()) {
                merged.push(x.min(y));
                if x <= y {
                    a.next();
                }
                if y <= x {
                    b.next();
                }
            }
            merged.extend(a.chain(b));
            set.sorted = merged;
        }
        set
    }

    /// All hashes, sorted and distinct (merges the recent part in).
    pub fn sorted(&mut self) -> &[u64] {
        if !self.recent.is_empty() {
            self.merge();
        }
        &self.sorted
    }

    pub fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, hash: u64) -> bool {
        self.recent.contains(&hash) || self.sorted.binary_search(&hash).is_ok()
    }

    pub fn insert(&mut self, hash: u64) {
        if self.sorted.binary_search(&hash).is_err() {
            self.recent.insert(hash);
        }
        if self.recent.len() >= MERGE_AT {
            self.merge();
        }
    }

    /// Move the recent ids into the sorted vector: a merge from the back, in place (the
    /// vector grows once, by the number of recent ids).
    fn merge(&mut self) {
        let mut add: Vec<u64> = self.recent.drain().collect();
        self.recent.shrink_to(MERGE_AT);
        add.sort_unstable();
        let old = self.sorted.len();
        self.sorted.resize(old + add.len(), 0);
        let (mut i, mut j, mut out) = (old, add.len(), old + add.len());
        while j > 0 {
            out -= 1;
            if i > 0 && self.sorted[i - 1] > add[j - 1] {
                self.sorted[out] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[out] = add[j - 1];
                j -= 1;
            }
        }
    }
}

/// Id hash -> fingerprint for recently used days, bounded in ids.
pub struct DayCache {
    days: HashMap<String, (IdIndex, u64)>,
    ids: usize,
    budget: usize,
    tick: u64,
}

impl DayCache {
    /// A cache that keeps about `budget` ids (always at least the day in use).
    pub fn new(budget: usize) -> DayCache {
        DayCache {
            days: HashMap::new(),
            ids: 0,
            budget,
            tick: 0,
        }
    }

    /// The index of `day`, if cached (and marks it used).
    pub fn get(&mut self, day: &str) -> Option<&IdIndex> {
        self.tick += 1;
        let tick = self.tick;
        self.days.get_mut(day).map(|(index, used)| {
            *used = tick;
            &*index
        })
    }

    /// Cache `index` as `day`'s, dropping the least recently used days over budget.
    pub fn put(&mut self, day: &str, index: IdIndex) {
        self.tick += 1;
        self.ids += index.len();
        if let Some((old, _)) = self.days.insert(day.to_owned(), (index, self.tick)) {
            self.ids -= old.len();
        }
        self.evict(day);
    }

    /// Drop `day`'s index (another writer added to that day): it is read again when needed.
    pub fn forget(&mut self, day: &str) {
        if let Some((old, _)) = self.days.remove(day) {
            self.ids -= old.len();
        }
    }

    /// Record ids committed in `day` (hash, fingerprint), if that day is cached.
    pub fn extend(&mut self, day: &str, ids: impl IntoIterator<Item = (u64, i64)>) {
        if let Some((index, _)) = self.days.get_mut(day) {
            for (hash, fingerprint) in ids {
                if index.insert(hash, fingerprint).is_none() {
                    self.ids += 1;
                }
            }
        }
    }

    fn evict(&mut self, keep: &str) {
        while self.ids > self.budget && self.days.len() > 1 {
            let oldest = self
                .days
                .iter()
                .filter(|(d, _)| d.as_str() != keep)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(d, _)| d.clone());
            let Some(oldest) = oldest else { break };
            if let Some((index, _)) = self.days.remove(&oldest) {
                self.ids -= index.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_holds_what_was_inserted_across_merges() {
        let mut set = IdSet::from_hashes(vec![50, 10, 30, 10]);
        assert_eq!(set.len(), 3);
        // Enough inserts to merge twice, interleaved with the initial values.
        let n = 2 * MERGE_AT as u64 + 7;
        for h in (0..n).map(|i| i * 3 + 1) {
            set.insert(h);
        }
        set.insert(10);
        // 10 = 3 * 3 + 1 was there already.
        let mut joined = IdSet::from_sorted_and(vec![1, 4, 8], vec![9, 4, 2, 2]);
        assert_eq!(joined.sorted(), &[1, 2, 4, 8, 9]);
        let many: Vec<u64> = (0..MERGE_AT as u64 + 1).map(|i| i * 2).collect();
        let mut joined = IdSet::from_sorted_and(vec![1, 3, 5], many);
        assert_eq!(joined.len(), MERGE_AT + 4);
        assert!(joined.sorted().windows(2).all(|w| w[0] < w[1]));
        assert_eq!(IdSet::from_sorted_and(vec![], vec![3, 1]).sorted(), &[1, 3]);
        assert_eq!(IdSet::from_sorted_and(vec![5], vec![]).sorted(), &[5]);
        assert_eq!(set.len(), 2 + n as usize);
        assert!(set.sorted.windows(2).all(|w| w[0] < w[1]));
        for h in [10, 30, 50, 1, 4, (n - 1) * 3 + 1] {
            assert!(set.contains(h), "{h}");
        }
        for h in [0, 2, 3, 11, n * 3 + 1] {
            assert!(!set.contains(h), "{h}");
        }
    }

    #[test]
    fn the_day_cache_drops_the_least_recently_used_day() {
        let day = |n: u64| -> IdIndex { (0..n).map(|h| (h, 0)).collect() };
        let mut cache = DayCache::new(10);
        cache.put("a", day(4));
        cache.put("b", day(4));
        assert!(cache.get("a").is_some());
        cache.put("c", day(4)); // over budget: b is the oldest
        assert!(cache.get("b").is_none());
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        // A day larger than the budget is still kept while in use.
        cache.put("big", day(20));
        assert!(cache.get("big").is_some());
        assert_eq!(cache.days.len(), 1);
        cache.extend("big", [(100, 7)]);
        cache.extend("gone", [(100, 7)]);
        assert_eq!(cache.get("big").unwrap().get(&100), Some(&7));
        assert_eq!(cache.ids, 21);
    }
}
