//! `| count by F` (or `F, G`, up to [`MAX_KEYS`] fields) on text fields, without
//! hashing every row's text.
//!
//! DataFusion's partial aggregate hashes and compares the bytes of every row's key (for
//! an actor id, 24 bytes hashed and compared per event): on 10M events that is half the
//! query's CPU. The archive's text columns are dictionary-encoded, and the Parquet
//! reader gives every row of one value in a batch the same 16-byte view (the same bytes
//! of the same buffer). This partial aggregate counts per distinct view of a batch, a
//! cheap integer hash, and looks up the text of each distinct view once per batch.
//!
//! It replaces only a partial aggregate that DataFusion would compute the same way: group
//! keys that are text columns, and aggregates that all count rows (`count(*)`). Its
//! output is the partial aggregate's own (the keys, then a count per aggregate), so the
//! repartition and the final aggregate above it are DataFusion's.
//!
//! With several keys, each key's text gets a number as with one, and a row's group is
//! found from its keys' numbers (see [`Pairs`]) rather than from the bytes of every key
//! (DataFusion's group values compare each column's text per row; on `count by
//! actor.id, action` over 10M events that was most of the time).
//!
//! When the key comes straight from the archive's files (through filters that do not
//! read it), the scan reads it as a dictionary instead, as the file stores it: a batch
//! is then an array of small integers into the page's dictionary, counted per integer,
//! and each dictionary text is looked up once per dictionary (see [`dictionary_input`]).
//!
//! Keys with many distinct values (an event id) gain nothing from counting: after
//! [`PROBE_ROWS`] rows with more than half of them distinct, each batch passes on as
//! it is, each row a count of 1, as DataFusion's own partial aggregate does.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Int64Array, StringViewArray, StringViewBuilder,
};
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result, config::ConfigOptions};
use datafusion::datasource::physical_plan::{
    FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, replace_children_if_necessary,
};
use futures_util::StreamExt;

/// Buffers of views up to this size are mapped directly (see [`ViewTable`]).
const DIRECT_BYTES: usize = 256 << 10;

/// Rows seen before deciding whether counting pays.
const PROBE_ROWS: usize = 100_000;

#[derive(Debug)]
pub struct CountByExec {
    input: Arc<dyn ExecutionPlan>,
    /// The keys' columns in the input, in the partial aggregate's order.
    keys: Vec<usize>,
    /// The partial aggregate's output: the keys, then one count per aggregate.
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl DisplayAs for CountByExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fields = self.schema.fields();
        let keys: Vec<&str> = fields[..self.keys.len()]
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        write!(
            f,
            "CountByExec: mode=Partial, gby=[{}], counts={}",
            keys.join(", "),
            fields.len() - self.keys.len()
        )
    }
}

impl ExecutionPlan for CountByExec {
    fn name(&self) -> &str {
        "CountByExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = super::one_child("CountByExec", children)?;
        Ok(Arc::new(Self {
            input,
            keys: self.keys.clone(),
            schema: Arc::clone(&self.schema),
            properties: Arc::clone(&self.properties),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let keys: Arc<[usize]> = self.keys.clone().into();
        let schema = Arc::clone(&self.schema);
        let counts = Counts::new(keys.len());
        let state = State::Counting(input, Box::new(counts));
        let batches = futures_util::stream::unfold(Some(state), move |state| {
            let (keys, schema) = (Arc::clone(&keys), Arc::clone(&schema));
            async move { step(state?, &keys, &schema).await }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            batches,
        )))
    }
}

enum State {
    Counting(SendableRecordBatchStream, Box<Counts>),
    /// Too many distinct keys: batches pass on, a count of 1 per row.
    Passing(SendableRecordBatchStream),
}

/// The next output batch, and what follows it.
async fn step(
    state: State,
    keys: &[usize],
    schema: &SchemaRef,
) -> Option<(Result<RecordBatch>, Option<State>)> {
    match state {
        State::Counting(mut input, mut counts) => {
            while let Some(batch) = input.next().await {
                let added = batch.and_then(|b| counts.add(&b, keys));
                if let Err(e) = added {
                    return Some((Err(e), None));
                }
                if counts.rows >= PROBE_ROWS && counts.counts.len() * 2 > counts.rows {
                    return Some((counts.finish(schema), Some(State::Passing(input))));
                }
            }
            if counts.rows == 0 {
                return None;
            }
            Some((counts.finish(schema), None))
        }
        State::Passing(mut input) => {
            let batch = input.next().await?;
            let out = batch.and_then(|b| {
                let ones: ArrayRef = Arc::new(Int64Array::from_value(1, b.num_rows()));
                let mut columns = keys
                    .iter()
                    .map(|&k| match b.column(k).data_type() {
                        DataType::Utf8View => Ok(Arc::clone(b.column(k))),
                        _ => datafusion::arrow::compute::cast(b.column(k), &DataType::Utf8View),
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                columns.resize(schema.fields().len(), ones);
                Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
            });
            Some((out, Some(State::Passing(input))))
        }
    }
}

/// The groups of one key's texts: a number for each distinct text seen so far.
#[derive(Default)]
struct Key {
    /// Group of each key's text.
    groups: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
    /// Group of the null key.
    null: Option<u32>,
    /// Groups made so far.
    len: u32,
    /// This batch's distinct views and their groups (see [`ViewTable`]).
    views: ViewTable,
    /// The dictionary of the last dictionary-encoded batch, and the group of each of its
    /// values once seen (`u32::MAX`: not yet).
    dictionary: Option<(ArrayRef, Vec<u32>)>,
}

impl Key {
    /// The group of a key's text (`None`: the null key), a new one if unseen.
    fn group_of(&mut self, text: Option<&str>) -> u32 {
        let next = self.len;
        let group = match text {
            None => *self.null.get_or_insert(next),
            Some(text) => match self.groups.get(text) {
                Some(&group) => group,
                None => {
                    self.groups.insert(text.into(), next);
                    next
                }
            },
        };
        if group == next {
            self.len += 1;
        }
        group
    }

    /// Starts a batch of dictionary keys over `values`: the groups of its values stay
    /// known while the dictionary is the same one.
    fn start_dictionary(&mut self, values: &ArrayRef) {
        let same = self
            .dictionary
            .as_ref()
            .is_some_and(|(v, _)| same_values(v, values));
        if !same {
            self.dictionary = Some((Arc::clone(values), vec![u32::MAX; values.len()]));
        }
    }

    /// The group of value `value` of the dictionary of [`Key::start_dictionary`].
    fn group_of_value(&mut self, values: &ArrayRef, value: usize) -> Result<u32> {
        let known = self
            .dictionary
            .as_ref()
            .and_then(|(_, g)| g.get(value).copied())
            .ok_or_else(out_of_range)?;
        if known != u32::MAX {
            return Ok(known);
        }
        let group = self.group_of(text_at(values, value)?);
        if let Some((_, groups)) = &mut self.dictionary {
            groups[value] = group;
        }
        Ok(group)
    }

    /// The group of each row of `column` (text or a dictionary of text), into `out`.
    fn rows(&mut self, column: &ArrayRef, out: &mut Vec<u32>) -> Result<()> {
        out.clear();
        if let Some(keys) = column.as_dictionary_opt::<Int32Type>() {
            let values = keys.values();
            self.start_dictionary(values);
            let codes = keys.keys().values();
            for (i, &code) in codes.iter().enumerate() {
                out.push(if keys.is_null(i) {
                    self.group_of(None)
                } else {
                    self.group_of_value(values, code as usize)?
                });
            }
            return Ok(());
        }
        let keys = text_keys(column)?;
        self.views.start(keys.data_buffers());
        let views = keys.views();
        for i in 0..keys.len() {
            out.push(self.group_of_view(keys, views, i));
        }
        Ok(())
    }

    /// The group of row `i` of a text column.
    #[inline]
    fn group_of_view(&mut self, keys: &StringViewArray, views: &[u128], i: usize) -> u32 {
        if keys.is_null(i) {
            return self.group_of(None);
        }
        match self.views.get(views[i]) {
            Some(group) => group,
            None => {
                let group = self.group_of(Some(keys.value(i)));
                self.views.insert(views[i], group);
                group
            }
        }
    }

    /// The text of each group, by group.
    fn texts(&self) -> Vec<Option<&str>> {
        let mut texts = vec![None; self.len as usize];
        for (text, &group) in &self.groups {
            texts[group as usize] = Some(&**text);
        }
        texts
    }

    fn clear(&mut self) {
        self.groups.clear();
        self.null = None;
        self.len = 0;
        self.dictionary = None;
    }
}

fn out_of_range() -> DataFusionError {
    DataFusionError::Internal("CountByExec: dictionary key out of range".into())
}

fn text_keys(column: &ArrayRef) -> Result<&StringViewArray> {
    column
        .as_any()
        .downcast_ref::<StringViewArray>()
        .ok_or_else(|| DataFusionError::Internal("CountByExec: key is not text".into()))
}

/// The most keys counted together.
const MAX_KEYS: usize = 4;

/// Cells [`Pairs`] may hold as tables before it turns to a hash table (16 MiB).
const DENSE_CELLS: usize = 1 << 22;

/// The groups of pairs (a group of the keys to the left, the next key's group), each
/// numbered in the order first seen. While the cells stay few (a few thousand actors
/// by a hundred actions), one table indexed by `left << bits | right`: one load a row,
/// no hashing, small enough to stay in the processor's caches. Keys with many values on
/// both sides would make the table sparse and large: past [`DENSE_CELLS`], a hash
/// table of the pairs.
enum Pairs {
    /// The pair's group + 1 (0: not seen); `bits`: room for `1 << bits` right groups.
    Dense {
        cells: Vec<u32>,
        bits: u32,
    },
    Hashed(HashMap<u64, u32, foldhash::fast::RandomState>),
}

impl Pairs {
    /// The group of `(left, right)`, and whether it is new: then it is `next`.
    #[inline]
    fn group(&mut self, left: u32, right: u32, next: u32) -> (u32, bool) {
        match self {
            Pairs::Dense { cells, bits } => {
                let at = ((left as usize) << *bits) | right as usize;
                if (right >> *bits) == 0
                    && let Some(&g) = cells.get(at)
                    && g != 0
                {
                    return (g - 1, false);
                }
                let wide = (u32::BITS - right.leading_zeros()).max(*bits);
                let rows = (cells.len() >> *bits).max((left as usize + 1).next_power_of_two());
                if rows << wide > DENSE_CELLS {
                    *self = Pairs::Hashed(self.to_hashed());
                    return self.group(left, right, next);
                }
                if wide != *bits {
                    *cells = relaid(cells, *bits, wide);
                    *bits = wide;
                }
                cells.resize(cells.len().max(rows << wide), 0);
                cells[((left as usize) << wide) | right as usize] = next + 1;
                (next, true)
            }
            Pairs::Hashed(groups) => {
                let mut new = false;
                let group = *groups
                    .entry(u64::from(left) << 32 | u64::from(right))
                    .or_insert_with(|| {
                        new = true;
                        next
                    });
                (group, new)
            }
        }
    }

    fn to_hashed(&self) -> HashMap<u64, u32, foldhash::fast::RandomState> {
        let mut groups = HashMap::default();
        if let Pairs::Dense { cells, bits } = self {
            for (at, &g) in cells.iter().enumerate() {
                if g != 0 {
                    let (left, right) = (at >> bits, at & ((1 << bits) - 1));
                    groups.insert((left as u64) << 32 | right as u64, g - 1);
                }
            }
        }
        groups
    }
}

/// `cells` of rows `1 << bits` wide laid out again `1 << wider` wide.
fn relaid(cells: &[u32], bits: u32, wider: u32) -> Vec<u32> {
    let mut out = vec![0; (cells.len() >> bits) << wider];
    for (row, old) in cells.chunks(1 << bits).enumerate() {
        out[row << wider..][..old.len()].copy_from_slice(old);
    }
    out
}

impl Default for Pairs {
    fn default() -> Self {
        Pairs::Dense {
            cells: Vec::new(),
            bits: 4,
        }
    }
}

/// The count of each distinct key (or tuple of keys) seen so far.
struct Counts {
    rows: usize,
    keys: Vec<Key>,
    /// With several keys, the groups of the first two keys' groups, then of that group
    /// and the third key's, and so on, each with the number of its groups. A group of
    /// the last is a group of all the keys.
    pairs: Vec<(Pairs, u32)>,
    /// With several keys, each group's keys' groups (`keys.len()` a group).
    members: Vec<u32>,
    /// Each group's count. With one key, a group is the key's group.
    counts: Vec<i64>,
    /// Rows of one batch per dictionary value (one key).
    per_value: Vec<i64>,
    /// Each row's group of each key, for one batch (several keys).
    rows_of: Vec<Vec<u32>>,
}

impl Counts {
    fn new(keys: usize) -> Self {
        Self {
            rows: 0,
            keys: (0..keys).map(|_| Key::default()).collect(),
            pairs: (1..keys).map(|_| Default::default()).collect(),
            members: Vec::new(),
            counts: Vec::new(),
            per_value: Vec::new(),
            rows_of: vec![Vec::new(); keys],
        }
    }

    fn add(&mut self, batch: &RecordBatch, keys: &[usize]) -> Result<()> {
        self.rows += batch.num_rows();
        if let [key] = keys {
            return self.add_one(batch.column(*key));
        }
        for (i, &k) in keys.iter().enumerate() {
            self.keys[i].rows(batch.column(k), &mut self.rows_of[i])?;
        }
        let (first, rest) = self.rows_of.split_first().ok_or_else(out_of_range)?;
        for (row, &first) in first.iter().enumerate() {
            let (mut group, mut new) = (first, false);
            for ((pairs, len), right) in self.pairs.iter_mut().zip(rest) {
                (group, new) = pairs.group(group, right[row], *len);
                *len += u32::from(new);
            }
            if new {
                self.members.push(first);
                self.members.extend(rest.iter().map(|groups| groups[row]));
                self.counts.push(0);
            }
            self.counts[group as usize] += 1;
        }
        Ok(())
    }

    /// Counts a batch of one key.
    fn add_one(&mut self, column: &ArrayRef) -> Result<()> {
        if let Some(keys) = column.as_dictionary_opt::<Int32Type>() {
            return self.add_dictionary(keys);
        }
        let keys = text_keys(column)?;
        let key = &mut self.keys[0];
        key.views.start(keys.data_buffers());
        let views = keys.views();
        for i in 0..keys.len() {
            let group = key.group_of_view(keys, views, i);
            bump(&mut self.counts, group, 1);
        }
        Ok(())
    }

    /// Counts a batch of dictionary keys of one key: rows per key first, then each
    /// key's rows added to its text's group, the text looked up once per dictionary.
    fn add_dictionary(&mut self, keys: &DictionaryArray<Int32Type>) -> Result<()> {
        let values = keys.values();
        let key = &mut self.keys[0];
        key.start_dictionary(values);
        self.per_value.clear();
        self.per_value.resize(values.len(), 0);
        let codes = keys.keys().values();
        match keys.nulls() {
            None => {
                for &k in codes.iter() {
                    *self
                        .per_value
                        .get_mut(k as usize)
                        .ok_or_else(out_of_range)? += 1;
                }
            }
            Some(nulls) => {
                for i in nulls.valid_indices() {
                    *self
                        .per_value
                        .get_mut(codes[i] as usize)
                        .ok_or_else(out_of_range)? += 1;
                }
                if nulls.null_count() > 0 {
                    let group = key.group_of(None);
                    bump(&mut self.counts, group, nulls.null_count() as i64);
                }
            }
        }
        for (value, &rows) in self.per_value.iter().enumerate() {
            if rows != 0 {
                let group = key.group_of_value(values, value)?;
                bump(&mut self.counts, group, rows);
            }
        }
        Ok(())
    }

    /// The partial aggregate's rows: each key (or tuple of keys) and its count (once
    /// per aggregate).
    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let groups = self.counts.len();
        let width = self.keys.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (i, key) in self.keys.iter().enumerate() {
            let texts = key.texts();
            let mut column = StringViewBuilder::with_capacity(groups);
            if width == 1 {
                self.counts.resize(texts.len(), 0);
                column.extend(texts.iter().copied());
            } else {
                let members = self.members.iter().skip(i).step_by(width);
                column.extend(members.map(|&g| texts[g as usize]));
            }
            columns.push(Arc::new(column.finish()));
        }
        let counts: ArrayRef = Arc::new(Int64Array::from(std::mem::take(&mut self.counts)));
        self.keys.iter_mut().for_each(Key::clear);
        self.pairs.iter_mut().for_each(|p| *p = Default::default());
        self.members.clear();
        columns.resize(schema.fields().len(), counts);
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }
}

/// Adds `rows` to a group's count, the group new if it is the next one.
#[inline]
fn bump(counts: &mut Vec<i64>, group: u32, rows: i64) {
    let group = group as usize;
    if group >= counts.len() {
        counts.resize(group + 1, 0);
    }
    counts[group] += rows;
}

/// Whether two dictionaries are the same values: the reader makes a new array for each
/// batch of a column chunk, over the same buffers (held by the first array, so that
/// their memory cannot be reused meanwhile).
fn same_values(a: &ArrayRef, b: &ArrayRef) -> bool {
    let (a, b) = (a.to_data(), b.to_data());
    a.len() == b.len()
        && a.offset() == b.offset()
        && a.buffers().len() == b.buffers().len()
        && a.buffers()
            .iter()
            .zip(b.buffers())
            .all(|(x, y)| x.ptr_eq(y))
        && a.child_data().is_empty()
        && b.child_data().is_empty()
}

/// The text of a dictionary's value `i` (`None`: null).
fn text_at(values: &ArrayRef, i: usize) -> Result<Option<&str>> {
    if values.is_null(i) {
        return Ok(None);
    }
    let text = match values.data_type() {
        DataType::Utf8 => values.as_string::<i32>().value(i),
        DataType::LargeUtf8 => values.as_string::<i64>().value(i),
        DataType::Utf8View => values.as_string_view().value(i),
        other => {
            return Err(DataFusionError::Internal(format!(
                "CountByExec: dictionary of {other}"
            )));
        }
    };
    Ok(Some(text))
}

/// An open-addressing table from 16-byte views to groups, cleared by a generation
/// stamp. Over one list of buffers, equal views are equal texts (a view holds the
/// length and either the whole text or its buffer and offset); different views may
/// still be equal texts, which the lookup by text then finds.
#[derive(Default)]
pub(super) struct ViewTable {
    /// For views of texts longer than 12 bytes (a buffer and an offset), one entry
    /// per 13 bytes of each buffer: the view's offset and length, and its group + 1
    /// (0: empty). Texts laid out one after the other (a dictionary's) each have
    /// their own entry, which stays in the processor's cache where a hash table would
    /// not; a view that finds its entry taken by another (overlapping texts) goes to
    /// the hash table. Empty when the buffers are larger than [`DIRECT_BYTES`].
    direct: Vec<Vec<(u64, u32)>>,
    slots: Vec<(u128, u32, u32)>,
    /// Slots of this generation in use.
    filled: usize,
    generation: u32,
    buffers: Vec<Buffer>,
}

impl ViewTable {
    /// Starts a batch whose views point into `buffers`. The views of
    /// the previous batches stay known while the buffers are the same ones (the pages
    /// of one dictionary), held here so that their memory cannot be reused meanwhile.
    pub(super) fn start(&mut self, buffers: &[Buffer]) {
        let same = self.buffers.len() == buffers.len()
            && self.buffers.iter().zip(buffers).all(|(a, b)| a.ptr_eq(b));
        if !same || self.generation == u32::MAX {
            self.buffers = buffers.to_vec();
            self.direct.clear();
            if buffers.iter().map(Buffer::len).sum::<usize>() <= DIRECT_BYTES {
                self.direct = buffers
                    .iter()
                    .map(|b| vec![(0, 0); b.len() / 13 + 1])
                    .collect();
            }
            self.filled = 0;
            if self.generation == u32::MAX {
                self.slots.fill((0, 0, 0));
                self.generation = 0;
            }
            self.generation += 1;
        }
        self.reserve(0);
    }

    /// Room for `more` views, the table at most half full: small enough to stay in
    /// the cache when a key has a few thousand values.
    fn reserve(&mut self, more: usize) {
        let size = ((self.filled + more) * 2).next_power_of_two().max(64);
        if self.slots.len() >= size {
            return;
        }
        let old = std::mem::replace(&mut self.slots, vec![(0, 0, 0); size]);
        let generation = self.generation;
        self.generation = 1;
        self.filled = 0;
        for (view, group, g) in old {
            if g == generation {
                self.insert(view, group);
            }
        }
    }

    #[inline]
    fn slot(&self, view: u128) -> usize {
        let mixed = ((view as u64) ^ ((view >> 64) as u64).rotate_left(29))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> 32) as usize & (self.slots.len() - 1)
    }

    /// The entry of `view` in [`ViewTable::direct`], if it has one, and the offset
    /// and length it is found by.
    #[inline]
    fn direct(&mut self, view: u128) -> Option<(&mut (u64, u32), u64)> {
        if view as u32 <= 12 {
            return None;
        }
        let buffer = (view >> 64) as u32 as usize;
        let offset = (view >> 96) as u32 as usize;
        let entry = self.direct.get_mut(buffer)?.get_mut(offset / 13)?;
        Some((entry, ((view >> 96) << 32) as u64 | (view as u32 as u64)))
    }

    #[inline]
    pub(super) fn get(&mut self, view: u128) -> Option<u32> {
        if let Some(((key, group), wanted)) = self.direct(view)
            && *group != 0
            && *key == wanted
        {
            return Some(*group - 1);
        }
        let mask = self.slots.len() - 1;
        let mut at = self.slot(view);
        loop {
            let (v, group, generation) = self.slots[at];
            if generation != self.generation {
                return None;
            }
            if v == view {
                return Some(group);
            }
            at = (at + 1) & mask;
        }
    }

    pub(super) fn insert(&mut self, view: u128, group: u32) {
        if let Some(((key, entry), wanted)) = self.direct(view)
            && *entry == 0
        {
            (*key, *entry) = (wanted, group + 1);
            return;
        }
        self.reserve(1);
        let mask = self.slots.len() - 1;
        let mut at = self.slot(view);
        while self.slots[at].2 == self.generation {
            at = (at + 1) & mask;
        }
        self.slots[at] = (view, group, self.generation);
        self.filled += 1;
    }
}

/// Whether `agg` is a partial aggregate this operator computes the same: one to
/// [`MAX_KEYS`] text columns as keys, and only `count(*)`s or none (the distinct keys:
/// DataFusion makes `count(distinct x) … group by k` a group by `k, x` below a count).
/// The keys' columns.
fn keys_of(agg: &AggregateExec) -> Option<Vec<usize>> {
    let width = agg.group_expr().expr().len();
    if *agg.mode() != AggregateMode::Partial
        || !agg.group_expr().is_single()
        || !(1..=MAX_KEYS).contains(&width)
        || agg.limit_options().is_some()
        || !agg.dynamic_expressions_produced().is_empty()
        || agg.filter_expr().iter().any(Option::is_some)
    {
        return None;
    }
    let counts_rows = |a: &Arc<datafusion::physical_expr::aggregate::AggregateFunctionExpr>| {
        let args = a.expressions();
        a.fun().name() == "count"
            && !a.is_distinct()
            && args.len() == 1
            && args[0]
                .downcast_ref::<Literal>()
                .is_some_and(|l| !l.value().is_null())
    };
    if !agg.aggr_expr().iter().all(counts_rows) {
        return None;
    }
    let input = agg.input().schema();
    let schema = agg.schema();
    let keys = agg
        .group_expr()
        .expr()
        .iter()
        .map(|(e, _)| e.downcast_ref::<Column>().map(Column::index))
        .collect::<Option<Vec<_>>>()?;
    let text = |t: &DataType| t == &DataType::Utf8View;
    let fits = keys.iter().all(|&k| text(input.field(k).data_type()))
        && schema.fields().len() == width + agg.aggr_expr().len()
        && schema.fields()[..width].iter().all(|f| text(f.data_type()))
        && schema.fields()[width..]
            .iter()
            .all(|f| f.data_type() == &DataType::Int64);
    fits.then_some(keys)
}

/// `plan` (the input of a count by its column `key`) with the key read as a dictionary,
/// `Dictionary(Int32, Utf8)`, when it can be: the key is a column of the archive's
/// Parquet files written with a dictionary, passed up unchanged, and nothing between
/// the scan and the count reads it (a filter on the key, or a pruning predicate,
/// keeps the plan as it is). Every file is then given the table's file schema, with
/// that one column as a dictionary, as the schema to read it by.
fn dictionary_input(plan: &Arc<dyn ExecutionPlan>, key: usize) -> Option<Arc<dyn ExecutionPlan>> {
    if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        let inner = match filter.projection() {
            Some(p) => *p.get(key)?,
            None => key,
        };
        if collect_columns(filter.predicate())
            .iter()
            .any(|c| c.index() == inner)
        {
            return None;
        }
        let input = dictionary_input(filter.input(), inner)?;
        return replace_children_if_necessary(Arc::clone(plan), vec![input]).ok();
    }
    let scan = plan.downcast_ref::<DataSourceExec>()?;
    let config = scan.data_source().downcast_ref::<FileScanConfig>()?;
    let parquet = config.file_source().downcast_ref::<ParquetSource>()?;
    let columns: Vec<usize> = parquet
        .projection()?
        .iter()
        .map(|p| p.expr.downcast_ref::<Column>().map(Column::index))
        .collect::<Option<_>>()?;
    let table = parquet.table_schema();
    let file_schema = table.file_schema();
    let column = *columns.get(key)?;
    let field = file_schema.fields().get(column)?;
    if field.data_type() != &DataType::Utf8View
        || super::write::NO_DICTIONARY.contains(&field.name().as_str())
        || parquet
            .filter()
            .is_some_and(|p| collect_columns(&p).iter().any(|c| c.name() == field.name()))
    {
        return None;
    }
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let mut fields = file_schema.fields().to_vec();
    fields[column] = Arc::new(Field::clone(field).with_data_type(dictionary));
    let file_schema = Arc::new(Schema::new_with_metadata(
        fields,
        file_schema.metadata().clone(),
    ));
    let table = TableSchema::builder(Arc::clone(&file_schema))
        .with_table_partition_cols(table.table_partition_cols().to_vec())
        .build();
    let mut source = ParquetSource::new(table)
        .with_table_parquet_options(parquet.table_parquet_options().clone());
    if let Some(predicate) = parquet.filter() {
        source = source.with_predicate(predicate);
    }
    let file_groups = config
        .file_groups
        .iter()
        .map(|group| {
            group
                .iter()
                .map(|f| f.clone().with_arrow_schema(Arc::clone(&file_schema)))
                .collect::<Vec<_>>()
                .into()
        })
        .collect();
    let config = FileScanConfigBuilder::from(config.clone())
        .with_source(Arc::new(source))
        .with_file_groups(file_groups)
        .with_projection_indices(Some(columns))
        .ok()?
        .build();
    Some(DataSourceExec::from_data_source(config))
}

/// Replaces each partial aggregate that [`CountByExec`] computes the same.
#[derive(Debug, Default)]
pub struct CountBy;

impl PhysicalOptimizerRule for CountBy {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node: Arc<dyn ExecutionPlan>| {
            let Some(agg) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(keys) = keys_of(agg) else {
                return Ok(Transformed::no(node));
            };
            let mut input = Arc::clone(agg.input());
            for &key in &keys {
                if let Some(read) = dictionary_input(&input, key) {
                    input = read;
                }
            }
            Ok(Transformed::yes(Arc::new(CountByExec {
                input,
                keys,
                schema: agg.schema(),
                properties: Arc::clone(agg.properties()),
            })))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "auditq_count_by"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use datafusion::arrow::array::UInt32Array;
    use datafusion::arrow::compute::take;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::{MemTable, TableProvider};
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// The text of key `n`: long (in a buffer) or short (inline in the view).
    fn text(n: usize) -> String {
        if n.is_multiple_of(5) {
            format!("c{n}")
        } else {
            format!("actor-{n:024}")
        }
    }

    /// Two partitions of batches of `rows` keys of `distinct` values, one null in 13.
    /// Odd batches are taken from one array of the values, as the Parquet reader
    /// gives a dictionary's pages (equal texts share a view); even batches hold a copy
    /// of each row's text (equal texts at different places).
    pub(in crate::archive) fn table(rows: usize, distinct: usize) -> Arc<dyn TableProvider> {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8View, true)]));
        let values = StringViewArray::from_iter_values((0..distinct).map(text));
        let mut partitions = vec![vec![], vec![]];
        for (b, start) in (0..rows).step_by(8192).enumerate() {
            let keys: Vec<Option<u32>> = (start..rows.min(start + 8192))
                .map(|i| (!i.is_multiple_of(13)).then_some(((i * 7919) % distinct) as u32))
                .collect();
            let column: ArrayRef = if b % 2 == 1 {
                take(&values, &UInt32Array::from(keys), None).unwrap()
            } else {
                Arc::new(
                    keys.iter()
                        .map(|k| k.map(|k| text(k as usize)))
                        .collect::<StringViewArray>(),
                )
            };
            let batch = RecordBatch::try_new(Arc::clone(&schema), vec![column]).unwrap();
            partitions[b % 2].push(batch);
        }
        for partition in &mut partitions {
            let batch = RecordBatch::try_new(Arc::clone(&schema), vec![overlapping()]).unwrap();
            partition.push(batch);
        }
        Arc::new(MemTable::try_new(schema, partitions).unwrap())
    }

    /// Views of one buffer that start within 13 bytes of each other, as a kernel
    /// that slices texts may make them: different texts at nearby (or the same)
    /// offsets.
    fn overlapping() -> ArrayRef {
        let bytes = b"actor-000000000000000000000001-and-more-text".as_slice();
        let view = |offset: usize, len: usize| {
            let text = &bytes[offset..offset + len];
            let prefix = u32::from_le_bytes(text[..4].try_into().unwrap());
            len as u128 | (prefix as u128) << 32 | (offset as u128) << 96
        };
        let views = [
            (0, 30),
            (0, 14),
            (2, 28),
            (5, 20),
            (0, 30),
            (2, 28),
            (12, 13),
        ];
        let views = views.iter().cycle().take(70).map(|&(o, l)| view(o, l));
        let array =
            StringViewArray::try_new(views.collect(), vec![Buffer::from(bytes.to_vec())], None)
                .unwrap();
        Arc::new(array)
    }

    /// The rows (sorted by the query) and the plan of `sql` over `table` as `t`, with
    /// `rule` added to DataFusion's optimizer rules if given.
    pub(in crate::archive) async fn run(
        rule: Option<Arc<dyn PhysicalOptimizerRule + Send + Sync>>,
        table: Arc<dyn TableProvider>,
        sql: &str,
    ) -> (String, String) {
        let mut state = SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_target_partitions(2))
            .with_default_features();
        if let Some(rule) = rule {
            state = state.with_physical_optimizer_rule(rule);
        }
        let ctx = SessionContext::new_with_state(state.build());
        ctx.register_table("t", table).unwrap();
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let plan = datafusion::physical_plan::displayable(plan.as_ref())
            .set_show_schema(true)
            .indent(true)
            .to_string();
        let rows = pretty_format_batches(&df.collect().await.unwrap())
            .unwrap()
            .to_string();
        (rows, plan)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_as_datafusion_does() {
        let queries = [
            "SELECT k, count(*) AS n FROM t GROUP BY k ORDER BY k NULLS FIRST",
            "SELECT k, count(*) AS n, count(1) AS m FROM t GROUP BY k ORDER BY k NULLS FIRST",
            // Views into the middle of other texts, as `substr` makes them.
            "SELECT s, count(*) AS n FROM (SELECT substr(k, 3) AS s FROM t) GROUP BY s ORDER BY s NULLS FIRST",
            "SELECT s, count(*) AS n FROM (SELECT substr(k, 1, 14) AS s FROM t) GROUP BY s ORDER BY s NULLS FIRST",
        ];
        agrees(table, &queries).await;
        // Not a count of rows: DataFusion's own.
        stays_datafusions(table(1000, 10), "SELECT k, count(k) FROM t GROUP BY k").await;
    }

    /// Each of `queries` runs through `CountByExec` and answers as DataFusion's own
    /// aggregate, over `make(rows, distinct)`: a few values, then more distinct values
    /// than half the rows (which pass through after the probe).
    async fn agrees(make: fn(usize, usize) -> Arc<dyn TableProvider>, queries: &[&str]) {
        for (rows, distinct) in [(50_000, 300), (3 * PROBE_ROWS, 2 * PROBE_ROWS)] {
            for &sql in queries {
                let (ours, plan) =
                    run(Some(Arc::new(CountBy) as _), make(rows, distinct), sql).await;
                let (theirs, _) = run(None, make(rows, distinct), sql).await;
                assert!(plan.contains("CountByExec"), "{sql}: {plan}");
                assert_eq!(ours, theirs, "{sql} over {rows} rows, {distinct} values");
            }
        }
    }

    /// `sql` over `table` keeps DataFusion's partial aggregate.
    async fn stays_datafusions(table: Arc<dyn TableProvider>, sql: &str) {
        let (_, plan) = run(Some(Arc::new(CountBy) as _), table, sql).await;
        assert!(!plan.contains("CountByExec"), "{sql}: {plan}");
    }

    /// A key `k` of `distinct` values (one null in 13, each row's text its own copy)
    /// beside a second key `j` of 7 values (one null in 17).
    fn pairs(rows: usize, distinct: usize) -> Arc<dyn TableProvider> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8View, true),
            Field::new("j", DataType::Utf8View, true),
        ]));
        let mut partitions = vec![vec![], vec![]];
        for (b, start) in (0..rows).step_by(8192).enumerate() {
            let range = start..rows.min(start + 8192);
            let k: StringViewArray = range
                .clone()
                .map(|i| (!i.is_multiple_of(13)).then(|| text((i * 7919) % distinct)))
                .collect();
            let j: StringViewArray = range
                .map(|i| (!i.is_multiple_of(17)).then(|| text(i % 7)))
                .collect();
            let batch =
                RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(k), Arc::new(j)]).unwrap();
            partitions[b % 2].push(batch);
        }
        Arc::new(MemTable::try_new(schema, partitions).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_several_keys_as_datafusion_does() {
        let queries = [
            "SELECT k, j, count(*) AS n FROM t GROUP BY k, j ORDER BY k, j NULLS FIRST",
            "SELECT j, k, count(*) AS n, count(1) AS m FROM t GROUP BY j, k ORDER BY j, k NULLS FIRST",
            "SELECT j, s, k, count(*) AS n FROM (SELECT j, k, substr(k, 3) AS s FROM t) GROUP BY j, s, k ORDER BY j, s, k NULLS FIRST",
            "SELECT k, k AS k2, count(*) AS n FROM t GROUP BY k, k ORDER BY k NULLS FIRST",
            "SELECT DISTINCT j, k FROM t ORDER BY j, k NULLS FIRST",
            "SELECT k, count(DISTINCT j) AS n FROM t GROUP BY k ORDER BY k NULLS FIRST",
        ];
        agrees(pairs, &queries).await;
        // More keys than `MAX_KEYS`: DataFusion's own.
        let five = "SELECT k, j, count(*) FROM (SELECT k, j, k AS a, j AS b, substr(k, 2) AS c FROM t) GROUP BY k, j, a, b, c";
        stays_datafusions(pairs(1000, 10), five).await;
    }

    #[test]
    fn pairs_keep_their_groups_when_the_tables_turn_to_hashing() {
        let mut pairs = Pairs::default();
        let mut seen: HashMap<(u32, u32), u32> = HashMap::new();
        // Right groups up to 300,000 under 1,000 left ones: sparse tables, past the
        // cells they may hold within the first pass.
        for pass in 0..2 {
            for i in 0..400_000u32 {
                let (left, right) = (i % 1000, (i.wrapping_mul(7919)) % 300_000);
                let next = seen.len() as u32;
                let got = pairs.group(left, right, next);
                match seen.get(&(left, right)) {
                    Some(&known) => assert_eq!(got, (known, false), "pass {pass}"),
                    None => {
                        assert_eq!(got, (next, true), "pass {pass}");
                        seen.insert((left, right), next);
                    }
                }
            }
        }
        assert!(matches!(pairs, Pairs::Hashed(_)));
        // 2,001 values by 122 (actors by actions) stay tables.
        let (mut small, mut next) = (Pairs::default(), 0);
        for i in 0..100_000u32 {
            next += u32::from(small.group(i % 2001, (i / 7) % 122, next).1);
        }
        assert!(matches!(small, Pairs::Dense { .. }), "{next} groups");
    }

    /// Parquet files of `k` (text, a null in 11) and `o`, some with a dictionary
    /// throughout, one whose dictionary outgrows its limit (later pages plain), one
    /// written without a dictionary.
    async fn parquet_table(dir: &std::path::Path) -> Arc<dyn TableProvider> {
        use datafusion::parquet::arrow::ArrowWriter;
        use datafusion::parquet::file::properties::WriterProperties;
        use datafusion::prelude::ParquetReadOptions;
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("o", DataType::Utf8, true),
        ]));
        let props = [
            WriterProperties::builder().build(),
            WriterProperties::builder()
                .set_dictionary_page_size_limit(256)
                .set_data_page_row_count_limit(500)
                .set_write_batch_size(500)
                .build(),
            WriterProperties::builder()
                .set_dictionary_enabled(false)
                .build(),
            WriterProperties::builder().build(),
        ];
        for (f, props) in props.into_iter().enumerate() {
            let rows = 20_000;
            let k: datafusion::arrow::array::StringArray = (0..rows)
                .map(|i| (i % 11 != 3).then(|| text((i * 31 + f * 7) % (40 + 100 * f))))
                .collect();
            let o: datafusion::arrow::array::StringArray = (0..rows)
                .map(|i| Some(if i % 3 == 0 { "x" } else { "y" }))
                .collect();
            let batch =
                RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(k), Arc::new(o)]).unwrap();
            let file = std::fs::File::create(dir.join(format!("part-{f}.parquet"))).unwrap();
            let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).unwrap();
            writer.write(&batch).unwrap();
            writer.close().unwrap();
        }
        let ctx = SessionContext::new();
        ctx.register_parquet("t", dir.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
        ctx.table_provider("t").await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_dictionaries_as_datafusion_does() {
        let dir = tempfile::tempdir().unwrap();
        // (query, the columns the scan reads as dictionaries)
        let queries: [(&str, &[&str]); 6] = [
            (
                "SELECT k, count(*) AS n FROM t GROUP BY k ORDER BY k NULLS FIRST",
                &["k"],
            ),
            (
                "SELECT k, count(*) AS n, count(1) AS m FROM t WHERE o = 'x' GROUP BY k ORDER BY k NULLS FIRST",
                &["k"],
            ),
            // The filter reads the key: it stays text.
            (
                "SELECT k, count(*) AS n FROM t WHERE k <> 'c0' GROUP BY k ORDER BY k NULLS FIRST",
                &[],
            ),
            (
                "SELECT o, k, count(*) AS n FROM t GROUP BY o, k ORDER BY o, k NULLS FIRST",
                &["k", "o"],
            ),
            // The filter reads one key: that one stays text, the other is a dictionary.
            (
                "SELECT k, o, count(*) AS n FROM t WHERE o <> 'y' GROUP BY k, o ORDER BY k, o NULLS FIRST",
                &["k"],
            ),
            (
                "SELECT s, count(*) AS n FROM (SELECT substr(k, 3) AS s FROM t) GROUP BY s ORDER BY s NULLS FIRST",
                &[],
            ),
        ];
        for (sql, dictionaries) in queries {
            let table = parquet_table(dir.path()).await;
            let (ours, plan) = run(Some(Arc::new(CountBy) as _), Arc::clone(&table), sql).await;
            let (theirs, _) = run(None, table, sql).await;
            assert!(plan.contains("CountByExec"), "{sql}: {plan}");
            for column in ["k", "o"] {
                let read = plan.contains(&format!("{column}:Dictionary(Int32, Utf8)"));
                assert_eq!(read, dictionaries.contains(&column), "{sql}: {plan}");
            }
            assert_eq!(ours, theirs, "{sql}");
        }
    }
}
