//! Verification: the data against the signed log. Every leaf is recomputed from the data
//! files, every column auditq derives from `raw` is derived again and compared, each
//! stored checkpoint's signature is checked and its root recomputed from the data, and
//! with a checkpoint the auditor kept, that the archive still extends it.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{Int64Type, TimestampMicrosecondType};

use super::tiles::Tiles;
use super::{
    Archive, CHUNK, Checkpoint, Result, checkpoint_rel, checkpoint_sizes, read_checkpoint,
};
use crate::archive::maintain::{IdsOnce, Problem, outside_partition};
use crate::archive::read::{LiveFile, live_files, read_columns};
use crate::event::{self, col};
use crate::merkle::{self, Frontier, Hash};
use crate::note;

/// What the evidence check found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    /// Checkpoints stored, and the size of the latest.
    pub checkpoints: usize,
    pub sealed: u64,
    /// Events archived since the latest checkpoint (not covered by a signature yet).
    pub unsealed: u64,
    /// The size of the trusted checkpoint the archive was checked to extend.
    pub trusted: Option<u64>,
    /// Sealed events that are not in the table but in the quarantine, where `archive
    /// repair` moved them: (leaf, id, quarantine item).
    pub quarantined: Vec<(u64, String, String)>,
    /// The events read (every row of every live file).
    pub rows: u64,
    pub problems: Vec<Problem>,
}

impl Report {
    fn problem(&mut self, file: Option<&str>, what: String) {
        self.problems.push(Problem {
            file: file.map(str::to_owned),
            what,
        });
    }
}

/// Where each leaf was found.
struct Found {
    hashes: Vec<Hash>,
    /// Per leaf: 1 + the index in `places` of the file holding it; 0 when not seen.
    at: Vec<u32>,
    places: Vec<String>,
}

impl Found {
    fn grow(&mut self, len: usize) {
        if self.at.len() < len {
            self.hashes.resize(len, [0; 32]);
            self.at.resize(len, 0);
        }
    }

    /// The place a leaf was found in, if it was.
    fn place(&self, leaf: usize) -> Option<&str> {
        let i = *self.at.get(leaf)?;
        (i > 0).then(|| self.places[i as usize - 1].as_str())
    }

    /// The number of a new place.
    fn add_place(&mut self, name: &str) -> u32 {
        self.places.push(name.to_owned());
        self.places.len() as u32
    }
}

/// The stored checkpoints that `verifier` signed, oldest first; the others reported.
fn signed_checkpoints(
    a: &Archive,
    verifier: &note::Verifier,
    report: &mut Report,
) -> Result<Vec<Checkpoint>> {
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    for size in checkpoint_sizes(a)? {
        let rel = checkpoint_rel(size);
        let text = read_checkpoint(a, size)?;
        match Checkpoint::open(&text, verifier) {
            Err(why) => report.problem(
                Some(&rel),
                format!(
                    "checkpoint does not verify with key `{}`: {why}",
                    verifier.name
                ),
            ),
            Ok(c) if c.size != size => report.problem(
                Some(&rel),
                format!("checkpoint of {} leaves stored under size {size}", c.size),
            ),
            Ok(c) => checkpoints.push(c),
        }
    }
    Ok(checkpoints)
}

/// Check the archive's data against its evidence, with checkpoints signed by `verifier`;
/// `trusted`: the text of a checkpoint kept outside the archive.
pub async fn verify(
    a: &Archive,
    verifier: &note::Verifier,
    trusted: Option<&str>,
) -> Result<Report> {
    let mut report = Report::default();
    let checkpoints = signed_checkpoints(a, verifier, &mut report)?;
    report.checkpoints = checkpoints.len();
    let sealed = checkpoints.last().map_or(0, |c| c.size);
    report.sealed = sealed;
    if checkpoints.is_empty() {
        report.problem(
            None,
            format!(
                "no checkpoint signed by `{}`: the archive was never sealed with this key",
                verifier.name
            ),
        );
    }
    let trusted = match trusted.map(|t| Checkpoint::open(t, verifier)) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(why)) => {
            report.problem(
                None,
                format!(
                    "the trusted checkpoint does not verify with key `{}`: {why}",
                    verifier.name
                ),
            );
            None
        }
    };
    report.trusted = trusted.as_ref().map(|c| c.size);

    let table = a.open_table().await?;
    let files = live_files(a, &table)?;
    let tiles = Tiles::load(a, sealed).ok();
    let mut found = Found {
        hashes: Vec::new(),
        at: Vec::new(),
        places: Vec::with_capacity(files.len()),
    };
    found.grow(sealed as usize);
    let mut ids = IdsOnce::default();
    scan_files(&files, tiles.as_ref(), |i, file, scanned| {
        let place = found.add_place(&file.rel);
        let mut problems = scanned.problems;
        report.rows += scanned.ids.len() as u64;
        for id in scanned.ids {
            ids.add(i, id);
        }
        if scanned.outside > 0 {
            problems.push(outside_partition(file, scanned.outside));
        }
        for (leaf, h, id) in scanned.leaves {
            found.grow(leaf + 1);
            if let Some(other) = found.place(leaf) {
                problems.push(format!(
                    "event `{id}` claims leaf {leaf}, which an event in `{other}` holds: an event was added or copied"
                ));
                continue;
            }
            found.hashes[leaf] = h;
            found.at[leaf] = place;
        }
        for what in problems {
            report.problem(Some(&file.rel), what);
        }
    })?;
    let every: Vec<usize> = (0..files.len()).collect();
    report.problems.extend(ids.problems(&files, &every)?);
    report.unsealed = found.at[sealed as usize..]
        .iter()
        .filter(|&&f| f > 0)
        .count() as u64;
    if let Some(t) = &tiles {
        explain_from_quarantine(a, t, sealed, &mut found, &mut report)?;
    }
    for leaf in 0..sealed {
        if found.place(leaf as usize).is_none() {
            report.problem(
                None,
                format!(
                    "leaf {leaf} (sealed by checkpoint `{}`) is in no live file: an archived event was removed",
                    checkpoints
                        .iter()
                        .find(|c| c.size > leaf)
                        .map_or_else(String::new, |c| checkpoint_rel(c.size))
                ),
            );
        }
    }
    if tiles.is_none() && sealed > 0 {
        report.problem(None, "the evidence tiles are missing or damaged (proofs cannot be made); the data is checked against the checkpoints' roots alone".into());
    }
    if let Some(t) = &tiles {
        for (c, stored) in t.chunks().iter().enumerate() {
            let lo = c * CHUNK as usize;
            if merkle::root(&found.hashes[lo..lo + CHUNK as usize]) != *stored {
                report.problem(
                    Some(&super::tiles::tile_rel(lo as u64 / super::TILE, sealed)),
                    format!(
                        "the root of leaves {lo}..{} differs from the data's",
                        lo + CHUNK as usize
                    ),
                );
            }
        }
    }

    prefix_roots(
        &checkpoints,
        trusted.as_ref(),
        &mut found,
        sealed,
        &mut report,
    );
    Ok(report)
}

/// Sealed leaves missing from the table whose event `archive repair` moved to the
/// quarantine (its raw bytes hash to the leaf's fingerprint): found there, and their
/// hashes put in place so the roots are checked with them.
fn explain_from_quarantine(
    a: &Archive,
    tiles: &Tiles,
    sealed: u64,
    found: &mut Found,
    report: &mut Report,
) -> Result<()> {
    let missing: Vec<u64> = (0..sealed).filter(|&l| found.at[l as usize] == 0).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let q = a.quarantine();
    let items = q
        .items(crate::archive::quarantine::Kind::Conflict)
        .map_err(|source| crate::archive::Error::Io {
            action: "reading the quarantine",
            path: q.dir().to_owned(),
            source,
        })?;
    let mut by_print: std::collections::HashMap<[u8; 4], Vec<(Hash, String, String)>> =
        Default::default();
    for (name, raw) in items {
        let id = serde_json::from_slice::<serde_json::Value>(&raw)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned));
        if let Some(id) = id {
            let h = merkle::leaf_hash(&merkle::event_leaf(&id, &raw));
            by_print
                .entry([h[0], h[1], h[2], h[3]])
                .or_default()
                .push((h, id, name));
        }
    }
    for leaf in missing {
        let Some(print) = tiles.fingerprint(leaf) else {
            continue;
        };
        if let Some((h, id, name)) = by_print.get(&print).and_then(|c| c.first()) {
            found.hashes[leaf as usize] = *h;
            found.at[leaf as usize] = found.add_place(&format!("quarantine/{name}"));
            report
                .quarantined
                .push((leaf, id.clone(), format!("quarantine/{name}")));
        }
    }
    Ok(())
}

/// Every checkpoint, and the trusted one, is the root of a prefix of the data's leaves:
/// one pass over them, in order.
fn prefix_roots(
    checkpoints: &[Checkpoint],
    trusted: Option<&Checkpoint>,
    found: &mut Found,
    sealed: u64,
    report: &mut Report,
) {
    let mut sizes: Vec<(u64, Hash, String)> = checkpoints
        .iter()
        .map(|c| (c.size, c.root, checkpoint_rel(c.size)))
        .collect();
    if let Some(t) = trusted {
        let held = found
            .at
            .iter()
            .rposition(|&f| f > 0)
            .map_or(0, |i| i as u64 + 1);
        if t.size > held.max(sealed) {
            report.problem(
                None,
                format!("the archive was rolled back: the trusted checkpoint covers {} leaves, the archive holds {}", t.size, held.max(sealed)),
            );
        } else {
            found.grow(t.size as usize);
            sizes.push((t.size, t.root, "the trusted checkpoint".into()));
        }
    }
    sizes.sort_by_key(|s| s.0);
    let mut frontier = Frontier::default();
    let mut next = sizes.iter().peekable();
    for leaf in found.hashes.iter() {
        if next.peek().is_none() {
            break;
        }
        frontier.push(*leaf);
        while let Some((size, root, name)) = next.next_if(|s| s.0 == frontier.size()) {
            if frontier.root() != *root {
                report.problem(
                    Some(name),
                    format!("the tree of the archive's first {size} leaves does not have this checkpoint's root"),
                );
            }
        }
    }
}

fn all_columns() -> Vec<String> {
    event::schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != col::DATE)
        .collect()
}

/// What one file holds: its events' leaves (place, hash, id) and the problems found in
/// it alone (columns that differ from `raw`, events without a place, events that are
/// not the ones sealed at their place).
#[derive(Default)]
struct FileScan {
    leaves: Vec<(usize, Hash, String)>,
    problems: Vec<String>,
    /// The rows' [`event::id_hash`]es, for the check that every id is stored once.
    ids: Vec<u64>,
    /// Rows whose time is not in the file's `date` partition.
    outside: u64,
}

/// Scan every file on two threads (hashing and parsing the raw JSON is the work),
/// handing each file's result to `merge`, on this thread, as it comes: memory holds a
/// few files' results, not the archive's.
fn scan_files(
    files: &[LiveFile],
    tiles: Option<&Tiles>,
    mut merge: impl FnMut(usize, &LiveFile, FileScan),
) -> Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let names = all_columns();
    let columns: Vec<&str> = names.iter().map(String::as_str).collect();
    let (send, receive) = std::sync::mpsc::sync_channel::<Result<(usize, FileScan)>>(4);
    let work = |send: std::sync::mpsc::SyncSender<Result<(usize, FileScan)>>| {
        let mut builder = event::BatchBuilder::new().without_raw();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(file) = files.get(i) else { return };
            let mut scan = FileScan::default();
            let day = chrono::NaiveDate::parse_from_str(&file.date, "%Y-%m-%d")
                .ok()
                .map(|d| {
                    d.and_time(chrono::NaiveTime::MIN)
                        .and_utc()
                        .timestamp_micros()
                });
            let read = read_columns(file, &columns, |b| {
                scan.batch(b, &mut builder, tiles);
                scan.days(b, day);
                Ok(())
            });
            let failed = read.is_err();
            if send.send(read.map(|()| (i, scan))).is_err() || failed {
                return;
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..2 {
            let send = send.clone();
            s.spawn(move || work(send));
        }
        drop(send);
        for got in receive {
            let (i, scan) = got?;
            merge(i, &files[i], scan);
        }
        Ok(())
    })
}

impl FileScan {
    /// Count the rows whose time is not in the day starting at `day` (µs; `None`: a
    /// partition that is not a date, where no row is).
    fn days(&mut self, b: &RecordBatch, day: Option<i64>) {
        const DAY: i64 = 86_400_000_000;
        let Some(times) = b.column_by_name(col::TIME) else {
            return;
        };
        let times = times.as_primitive::<TimestampMicrosecondType>();
        self.outside += times
            .iter()
            .filter(|t| !matches!((t, day), (Some(t), Some(d)) if (d..d + DAY).contains(t)))
            .count() as u64;
    }

    fn batch(&mut self, b: &RecordBatch, builder: &mut event::BatchBuilder, tiles: Option<&Tiles>) {
        let column = |name: &str| b.column_by_name(name);
        let (Some(ids), Some(raws)) = (column(col::ID), column(col::RAW)) else {
            self.problems.push("lacks the `id` or `raw` column".into());
            return;
        };
        let ids = ids.as_string::<i32>();
        let raws = raws.as_string::<i32>();
        let leaves = column(col::LEAF).map(|l| l.as_primitive::<Int64Type>().clone());
        let mut placeless: Option<(&str, usize)> = None;
        for row in 0..b.num_rows() {
            let id = ids.value(row);
            let raw = raws.value(row);
            self.ids.push(event::id_hash(id));
            // Every row, whatever its leaf: its columns are derived again below.
            let _ = builder.push_document(raw);
            let leaf = leaves
                .as_ref()
                .filter(|l| l.is_valid(row))
                .and_then(|l| usize::try_from(l.value(row)).ok());
            let Some(leaf) = leaf else {
                placeless.get_or_insert((id, 0)).1 += 1;
                continue;
            };
            let h = merkle::leaf_hash(&merkle::event_leaf(id, raw.as_bytes()));
            if let Some(sealed) = tiles.and_then(|t| t.fingerprint(leaf as u64))
                && sealed != [h[0], h[1], h[2], h[3]]
            {
                self.problems.push(format!(
                    "event `{id}` (leaf {leaf}) is not the event sealed there: its id or raw JSON changed after it was sealed"
                ));
            }
            self.leaves.push((leaf, h, id.to_owned()));
        }
        if let Some((id, n)) = placeless {
            let more = match n {
                1 => String::new(),
                n => format!(" (and {} more events of this file)", n - 1),
            };
            self.problems.push(format!(
                "event `{id}`{more} has no place in the log: added outside auditq's writers, or archived by an auditq before the log (schema version 1); `auditq archive seal --adopt` gives such events places"
            ));
        }
        derived_columns(b, builder, &mut self.problems);
    }
}

/// Compare the columns derived from the batch's `raw` (the rows pushed to `builder`)
/// with what is stored.
fn derived_columns(b: &RecordBatch, builder: &mut event::BatchBuilder, problems: &mut Vec<String>) {
    let column = |name: &str| b.column_by_name(name);
    let (Some(ids), Some(raws)) = (column(col::ID), column(col::RAW)) else {
        return;
    };
    let ids = ids.as_string::<i32>();
    let raws = raws.as_string::<i32>();
    let derived = builder.finish();
    if derived.num_rows() != b.num_rows() {
        // Some raw JSON no longer parses as an event: name the rows.
        for row in 0..b.num_rows() {
            let mut one = event::BatchBuilder::new();
            let _ = one.push_document(raws.value(row));
            if one.finish().num_rows() != 1 {
                problems.push(format!(
                    "event `{}`: its raw JSON is not an event",
                    ids.value(row)
                ));
            }
        }
        return;
    }
    for field in derived.schema().fields() {
        let name = field.name().as_str();
        if matches!(name, col::LEAF | col::DATE | col::RAW | col::ID) {
            continue;
        }
        let (Some(stored), Some(want)) = (column(name), derived.column_by_name(name)) else {
            continue;
        };
        let want: ArrayRef = if stored.data_type() == want.data_type() {
            want.clone()
        } else {
            match cast(want, stored.data_type()) {
                Ok(w) => w,
                Err(_) => continue,
            }
        };
        if stored.to_data() == want.to_data() {
            continue;
        }
        for row in 0..b.num_rows() {
            if stored.slice(row, 1).to_data() != want.slice(row, 1).to_data() {
                problems.push(format!(
                    "event `{}`: column `{name}` says otherwise than its raw JSON",
                    ids.value(row)
                ));
            }
        }
    }
    // The id is derived too: compare it last, by value.
    if let Some(want) = derived.column_by_name(col::ID) {
        let want = want.as_string::<i32>();
        for row in 0..b.num_rows() {
            if want.value(row) != ids.value(row) {
                problems.push(format!(
                    "event `{}`: column `id` says otherwise than its raw JSON (`{}`)",
                    ids.value(row),
                    want.value(row)
                ));
            }
        }
    }
}
