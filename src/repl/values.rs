//! Values the prompt completes (actions, actors, countries), read from the archive
//! through the same query path as any query, and re-read when the archive changed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;

use crate::archive::Archive;
use crate::query::{self, Clock};

/// How long read values are trusted before the archive is looked at again.
const FRESH_FOR: Duration = Duration::from_secs(5);

/// Most values kept for one field.
const MAX_VALUES: usize = 5000;

/// Which completion list a field's values come from, and the query that reads it.
fn source(field: &str) -> Option<(&'static str, &'static [&'static str])> {
    match field.to_ascii_lowercase().as_str() {
        "action" | "event" => Some(("action", &["action"])),
        "actor" => Some(("actor", &["actor.name", "actor.email"])),
        "actor.name" => Some(("actor.name", &["actor.name"])),
        "actor.email" => Some(("actor.email", &["actor.email"])),
        "actor.id" => Some(("actor.id", &["actor.id"])),
        "country" => Some(("country", &["country"])),
        "city" => Some(("city", &["city"])),
        _ => None,
    }
}

#[derive(Default)]
pub struct Values {
    archive: Option<Archive>,
    runtime: Option<tokio::runtime::Handle>,
    /// List name -> (values, most frequent first; when read).
    lists: HashMap<&'static str, (Vec<String>, Instant)>,
}

impl Values {
    pub fn new(archive: Archive, runtime: tokio::runtime::Handle) -> Values {
        Values {
            archive: Some(archive),
            runtime: Some(runtime),
            lists: HashMap::new(),
        }
    }

    /// Read everything again on next use (after a query, or another archive).
    pub fn forget(&mut self, archive: Option<Archive>) {
        if archive.is_some() {
            self.archive = archive;
        }
        self.lists.clear();
    }

    /// The values `field` takes in the archive, most frequent first.
    pub fn for_field(&mut self, field: &str) -> Vec<String> {
        let Some((list, read_from)) = source(field) else {
            return Vec::new();
        };
        if let Some((values, at)) = self.lists.get(list)
            && at.elapsed() < FRESH_FOR
        {
            return values.clone();
        }
        let mut values = Vec::new();
        for f in read_from {
            values.extend(self.read(f));
        }
        let mut seen = std::collections::HashSet::new();
        values.retain(|v| seen.insert(v.clone()));
        self.lists.insert(list, (values.clone(), Instant::now()));
        values
    }

    /// The most frequent values of `field`: `| top N field`, as a user would ask.
    fn read(&self, field: &str) -> Vec<String> {
        let (Some(archive), Some(rt)) = (&self.archive, &self.runtime) else {
            return Vec::new();
        };
        let text = format!("| top {MAX_VALUES} {field}");
        let now = chrono::Utc::now().timestamp_micros();
        // Called from the line editor, outside the runtime.
        let batches = rt.block_on(async {
            query::run(archive, &text, Clock::utc(now), false)
                .await?
                .collect()
                .await
        });
        let Ok(batches) = batches else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for b in &batches {
            if let Ok(col) = cast(b.column(0), &DataType::Utf8) {
                out.extend(col.as_string::<i32>().iter().flatten().map(str::to_owned));
            }
        }
        out
    }

    #[cfg(test)]
    pub fn set_for_tests(&mut self, field: &str, values: &[&str]) {
        let (list, _) = source(field).expect("a field with values");
        self.lists.insert(
            list,
            (
                values.iter().map(|v| v.to_string()).collect(),
                Instant::now(),
            ),
        );
    }
}
