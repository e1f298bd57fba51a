//! `| lookup` on a stream: the file is indexed once by its matched column, each event
//! looked up in the index (its `cidr` networks by longest prefix), and the file read
//! again when it changes — an HR roster updated during a run applies to the next events.
//! Matching is `query`'s: a left join, text case-insensitive, one row per matching line.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, UInt32Array, new_null_array};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::physical_expr::PhysicalExpr;

use crate::query::lookup::{Networks, Table, read};

/// How often the file's modification time is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The file's rows, indexed.
struct Loaded {
    modified: Option<SystemTime>,
    /// The added columns, cast to the types the query was compiled with.
    columns: Vec<ArrayRef>,
    /// Matched text (lower-cased; for `cidr`, the network as written) → rows.
    index: HashMap<String, Vec<u32>>,
    networks: Option<(Networks, Vec<String>)>,
}

pub struct Index {
    file: String,
    key: Arc<dyn PhysicalExpr>,
    key_column: String,
    cidr: bool,
    added: Vec<(String, DataType)>,
    /// The events' schema with the added columns after them.
    schema: SchemaRef,
    loaded: Loaded,
    checked: Instant,
}

impl Index {
    /// A lookup of `table` (read when the query was compiled) on `key`, adding `added`
    /// (name, type) to events of `schema`'s columns before them.
    pub fn new(
        file: &str,
        key: Arc<dyn PhysicalExpr>,
        key_column: &str,
        cidr: bool,
        added: Vec<(String, DataType)>,
        schema: SchemaRef,
        table: &Table,
    ) -> Result<Index, String> {
        let loaded = index(table, key_column, cidr, &added, modified(file))?;
        Ok(Index {
            file: file.to_owned(),
            key,
            key_column: key_column.to_owned(),
            cidr,
            added,
            schema,
            loaded,
            checked: Instant::now(),
        })
    }

    /// The events of `batch` with the file's columns: one row per matching line, nulls
    /// where none matches.
    pub fn apply(&mut self, batch: &RecordBatch) -> Result<RecordBatch, String> {
        self.reload();
        let keys = self
            .key
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| e.to_string())?;
        let keys = cast(&keys, &DataType::Utf8).map_err(|e| e.to_string())?;
        let keys = keys.as_string::<i32>();
        let (mut left, mut right) = (Vec::new(), Vec::new());
        for (i, key) in keys.iter().enumerate() {
            let found = key.and_then(|k| match &self.loaded.networks {
                Some((nets, texts)) => nets.find(k).and_then(|n| self.loaded.index.get(&texts[n])),
                None => self.loaded.index.get(&k.to_lowercase()),
            });
            match found {
                Some(rows) => {
                    for &r in rows {
                        left.push(i as u32);
                        right.push(Some(r));
                    }
                }
                None => {
                    left.push(i as u32);
                    right.push(None);
                }
            }
        }
        let (left, right) = (UInt32Array::from(left), UInt32Array::from(right));
        let mut columns = batch
            .columns()
            .iter()
            .map(|c| take(c, &left, None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        for c in &self.loaded.columns {
            columns.push(take(c, &right, None).map_err(|e| e.to_string())?);
        }
        RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(|e| e.to_string())
    }

    /// Read the file again if it changed since it was indexed; a file that cannot be read
    /// now leaves the last index in place (and says so).
    fn reload(&mut self) {
        if self.checked.elapsed() < CHECK_EVERY {
            return;
        }
        self.checked = Instant::now();
        let now = modified(&self.file);
        if now == self.loaded.modified {
            return;
        }
        let fresh =
            read(&self.file).and_then(|t| index(&t, &self.key_column, self.cidr, &self.added, now));
        match fresh {
            Ok(l) => {
                tracing::info!(target: "auditq::follow", "lookup `{}` read again", self.file);
                self.loaded = l;
            }
            Err(why) => {
                tracing::warn!(target: "auditq::follow", "lookup `{}` not read again, the last version stays: {why}", self.file);
                self.loaded.modified = now;
            }
        }
    }
}

fn modified(file: &str) -> Option<SystemTime> {
    std::fs::metadata(file).and_then(|m| m.modified()).ok()
}

/// Index `table` by `key_column`; its `added` columns by name (nulls when a new version
/// of the file lacks one).
fn index(
    table: &Table,
    key_column: &str,
    cidr: bool,
    added: &[(String, DataType)],
    modified: Option<SystemTime>,
) -> Result<Loaded, String> {
    let all = concat_batches(&table.schema, &table.batches).map_err(|e| e.to_string())?;
    let column = |name: &str| {
        table
            .schema
            .fields()
            .iter()
            .position(|f| f.name().eq_ignore_ascii_case(name))
            .map(|i| all.column(i))
    };
    let key = column(key_column).ok_or_else(|| format!("no column `{key_column}` any more"))?;
    let key = cast(key, &DataType::Utf8).map_err(|e| e.to_string())?;
    let mut index: HashMap<String, Vec<u32>> = HashMap::new();
    for (r, k) in key.as_string::<i32>().iter().enumerate() {
        if let Some(k) = k {
            let k = if cidr { k.to_owned() } else { k.to_lowercase() };
            index.entry(k).or_default().push(r as u32);
        }
    }
    let networks = if cidr {
        let texts: Vec<String> = index.keys().cloned().collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        Some((Networks::new(&refs)?, texts))
    } else {
        None
    };
    let columns = added
        .iter()
        .map(|(name, ty)| match column(name) {
            Some(c) => cast(c, ty).map_err(|e| e.to_string()),
            None => Ok(new_null_array(ty, all.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Loaded {
        modified,
        columns,
        index,
        networks,
    })
}
