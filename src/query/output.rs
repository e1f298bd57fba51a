//! Writing results as they come: a table fitted to the terminal, CSV, JSON, NDJSON or
//! Parquet, to standard output or to a file that appears only when complete.
//!
//! - Timestamps are RFC 3339 UTC (`2026-02-16T08:00:00.000Z`) in every text format, and
//!   microseconds UTC in Parquet (the archive's type).
//! - Nested values (`context`, `container`) are JSON text in CSV and tables, JSON in
//!   JSON, and lists of structs in Parquet.
//! - A file output is written to a temporary file beside it and renamed into place by
//!   [`Writer::finish`]; a failure or an interruption leaves no partial file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::Error;

type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Ndjson,
    Parquet,
}

/// The file extensions `-o` understands, and the format each means.
pub const EXTENSIONS: &[(&str, Format)] = &[
    ("csv", Format::Csv),
    ("json", Format::Json),
    ("ndjson", Format::Ndjson),
    ("jsonl", Format::Ndjson),
    ("parquet", Format::Parquet),
    ("txt", Format::Table),
];

impl Format {
    /// Every format auditq writes, the one list of them (`--format`, the REPL's
    /// `.format`, `-o`'s extensions below).
    pub const ALL: [Format; 5] = [
        Format::Table,
        Format::Csv,
        Format::Json,
        Format::Ndjson,
        Format::Parquet,
    ];

    /// Its name, as `--format` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Parquet => "parquet",
        }
    }

    /// The format of a name (`csv`), as `--format` takes it.
    pub fn named(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether it is text a terminal can show (not Parquet).
    pub fn is_text(self) -> bool {
        self != Format::Parquet
    }

    /// The names of the text formats, as a sentence lists them: "table, csv, json or
    /// ndjson".
    pub fn text_names() -> String {
        let names: Vec<&str> = (Format::ALL.into_iter())
            .filter(|f| f.is_text())
            .map(Format::name)
            .collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        }
    }

    /// The format a file name implies (`x.parquet`, `x.csv`, `x.json`, `x.ndjson`,
    /// `x.jsonl`, `x.txt`); an error naming the known ones for any other name.
    pub fn from_path(path: &Path) -> std::result::Result<Format, String> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if let Some(ext) = &ext
            && let Some((_, f)) = EXTENSIONS.iter().find(|(e, _)| e == ext)
        {
            return Ok(*f);
        }
        let known: Vec<String> = EXTENSIONS.iter().map(|(e, _)| format!(".{e}")).collect();
        Err(format!(
            "cannot tell the output format of `{}` ({}); name the file {} or give --format {}",
            path.display(),
            match &ext {
                Some(e) => format!("`.{e}` is not a format auditq writes"),
                None => "it has no extension".to_owned(),
            },
            known.join(", "),
            Format::ALL.map(Format::name).join("|")
        ))
    }
}

const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

fn options() -> FormatOptions<'static> {
    FormatOptions::default()
        .with_timestamp_tz_format(Some(TIME_FORMAT))
        .with_timestamp_format(Some(TIME_FORMAT))
        .with_null("")
}

/// How a table is drawn: at most `width` columns wide, at most `max_rows` rows (the rest
/// are counted), bars beside a chart's counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Screen {
    pub width: Option<usize>,
    pub max_rows: Option<usize>,
    /// Draw a bar beside each row's last numeric column (`timechart`).
    pub bars: bool,
    pub color: bool,
}

/// Where the result goes.
#[derive(Debug, Clone)]
pub enum Dest {
    Stdout,
    File(PathBuf),
}

/// What a writer wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows of the result.
    pub rows: u64,
    /// Rows shown (a table on a screen may show fewer).
    pub shown: u64,
}

/// The last I/O error of a [`Target`], which the Arrow writers turn into text: a closed
/// pipe must stay a closed pipe (exit 0), not become "Csv error: Broken pipe".
#[derive(Clone)]
struct Failed {
    slot: Arc<std::sync::Mutex<Option<std::io::Error>>>,
    what: Arc<str>,
}

impl Failed {
    fn set(&self, e: &std::io::Error) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(std::io::Error::new(e.kind(), e.to_string()));
    }

    /// The I/O error behind a writer's error, if there was one; else the writer's.
    fn error(&self, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        let io = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        match io {
            Some(source) => Error::Output {
                what: self.what.to_string(),
                source,
            },
            None => Error::Encode(e.into()),
        }
    }
}

/// The bytes' destination: stdout, or a temporary file renamed into place at the end.
struct Target {
    out: TargetKind,
    failed: Failed,
}

enum TargetKind {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File {
        file: std::io::BufWriter<std::fs::File>,
        tmp: PathBuf,
        path: PathBuf,
        done: bool,
    },
}

impl Target {
    fn open(dest: &Dest) -> Result<Target> {
        let out = match dest {
            Dest::Stdout => TargetKind::Stdout(std::io::BufWriter::with_capacity(
                1 << 16,
                std::io::stdout(),
            )),
            Dest::File(path) => {
                let name = path.file_name().ok_or_else(|| Error::Output {
                    what: format!("`{}` is not a file name", path.display()),
                    source: std::io::ErrorKind::InvalidInput.into(),
                })?;
                let tmp = path.with_file_name(format!(
                    ".{}.tmp.{}",
                    name.to_string_lossy(),
                    std::process::id()
                ));
                let file = std::fs::File::create(&tmp).map_err(|source| Error::Output {
                    what: format!("creating `{}`", path.display()),
                    source,
                })?;
                TargetKind::File {
                    file: std::io::BufWriter::with_capacity(1 << 16, file),
                    tmp,
                    path: path.clone(),
                    done: false,
                }
            }
        };
        let what = match &out {
            TargetKind::Stdout(_) => "writing the result".to_owned(),
            TargetKind::File { path, .. } => format!("writing `{}`", path.display()),
        };
        let failed = Failed {
            slot: Arc::default(),
            what: what.into(),
        };
        Ok(Target { out, failed })
    }

    fn error(&self, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        self.failed.error(e)
    }

    /// Flush, and move a file into place.
    fn commit(mut self) -> Result<()> {
        let what = self.failed.what.to_string();
        let io = |source| Error::Output {
            what: what.clone(),
            source,
        };
        match &mut self.out {
            TargetKind::Stdout(w) => w.flush().map_err(io),
            TargetKind::File {
                file,
                tmp,
                path,
                done,
            } => {
                file.flush().map_err(io)?;
                file.get_ref().sync_all().map_err(io)?;
                std::fs::rename(&*tmp, &*path).map_err(io)?;
                *done = true;
                Ok(())
            }
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let TargetKind::File { tmp, done, .. } = &self.out
            && !*done
        {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

impl Target {
    fn sink(&mut self) -> &mut dyn Write {
        match &mut self.out {
            TargetKind::Stdout(w) => w,
            TargetKind::File { file, .. } => file,
        }
    }

    /// `r`, having kept its error for [`Failed::error`].
    fn noted<T>(&self, r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r {
            self.failed.set(e);
        }
        r
    }
}

impl Write for Target {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.sink().write(buf);
        self.noted(r)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.sink().flush();
        self.noted(r)
    }
}

/// Writes a result batch by batch; [`Writer::finish`] completes it.
pub struct Writer {
    kind: Kind,
    rows: u64,
    failed: Failed,
}

enum Kind {
    Csv(Box<datafusion::arrow::csv::Writer<Target>>),
    Json(Box<datafusion::arrow::json::ArrayWriter<Target>>),
    Ndjson(Box<datafusion::arrow::json::LineDelimitedWriter<Target>>),
    Parquet(
        Box<datafusion::parquet::arrow::ArrowWriter<Target>>,
        SchemaRef,
    ),
    Table(Box<Table>),
}

impl Writer {
    /// A writer of `schema`'s rows in `format` to `dest`.
    pub fn new(format: Format, schema: &SchemaRef, dest: &Dest, screen: Screen) -> Result<Writer> {
        let mut target = Target::open(dest)?;
        let failed = target.failed.clone();
        let kind = match format {
            Format::Csv => {
                let header: Vec<String> = schema
                    .fields()
                    .iter()
                    .map(|f| csv_field(f.name()))
                    .collect();
                if writeln!(target, "{}", header.join(",")).is_err() {
                    return Err(target.error("the header"));
                }
                Kind::Csv(Box::new(
                    datafusion::arrow::csv::WriterBuilder::new()
                        .with_header(false)
                        .with_null(String::new())
                        .with_timestamp_tz_format(TIME_FORMAT.to_owned())
                        .with_timestamp_format(TIME_FORMAT.to_owned())
                        .build(target),
                ))
            }
            Format::Json => Kind::Json(Box::new(json_writer().build(target))),
            Format::Ndjson => Kind::Ndjson(Box::new(json_writer().build(target))),
            Format::Parquet => {
                let out = parquet_schema(schema);
                let w = datafusion::parquet::arrow::ArrowWriter::try_new(
                    target,
                    out.clone(),
                    Some(parquet_properties()),
                )
                .map_err(|e| Error::Encode(e.into()))?;
                Kind::Parquet(Box::new(w), out)
            }
            Format::Table => Kind::Table(Box::new(Table::new(schema, screen, target))),
        };
        Ok(Writer {
            kind,
            rows: 0,
            failed,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        let failed = &self.failed;
        match &mut self.kind {
            Kind::Csv(w) => {
                let b = nested_as_json(batch)?;
                w.write(&b).map_err(|e| failed.error(e))
            }
            Kind::Json(w) => w.write(batch).map_err(|e| failed.error(e)),
            Kind::Ndjson(w) => w.write(batch).map_err(|e| failed.error(e)),
            Kind::Parquet(w, schema) => {
                let b = to_parquet_types(batch, schema)?;
                w.write(&b).map_err(|e| failed.error(e))
            }
            Kind::Table(t) => t.add(batch),
        }
    }

    /// Complete the output (a file is renamed into place); what was written.
    pub fn finish(self) -> Result<Written> {
        let rows = self.rows;
        let mut shown = rows;
        let failed = self.failed;
        let target = match self.kind {
            Kind::Csv(w) => w.into_inner(),
            Kind::Json(mut w) => {
                w.finish().map_err(|e| failed.error(e))?;
                let mut t = w.into_inner();
                if t.write_all(b"\n").is_err() {
                    return Err(t.error("the end of the array"));
                }
                t
            }
            Kind::Ndjson(mut w) => {
                w.finish().map_err(|e| failed.error(e))?;
                w.into_inner()
            }
            Kind::Parquet(w, _) => w.into_inner().map_err(|e| failed.error(e))?,
            Kind::Table(t) => {
                let (target, n) = t.finish()?;
                shown = n;
                target
            }
        };
        target.commit()?;
        Ok(Written { rows, shown })
    }
}

/// Parquet settings of an output: ZSTD, page statistics; no claims about the order of
/// rows or their origin (an output may be an aggregate in any order).
fn parquet_properties() -> datafusion::parquet::file::properties::WriterProperties {
    use datafusion::parquet::basic::{Compression, ZstdLevel};
    use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid zstd level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(128 * 1024))
        .build()
}

/// The archive's types: every timestamp as microseconds UTC, strings as strings (the
/// engine reads them as views, which readers would otherwise see as `string_view`), in
/// lists and structs too.
fn parquet_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(..) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) => DataType::List(parquet_field(f)),
        DataType::LargeList(f) => DataType::LargeList(parquet_field(f)),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(parquet_field).collect()),
        other => other.clone(),
    }
}

fn parquet_field(f: &FieldRef) -> FieldRef {
    Arc::new(
        f.as_ref()
            .clone()
            .with_data_type(parquet_type(f.data_type())),
    )
}

fn parquet_schema(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(parquet_field)
            .collect::<Vec<_>>(),
    ))
}

/// The batch as the Parquet writer's schema declares it. A top-level view goes to the
/// writer as it is (the writer takes a view for a string column, and stores the same
/// bytes); timestamps and nested columns are cast, as the writer wants those exactly.
fn to_parquet_types(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut cols = Vec::with_capacity(batch.num_columns());
    for (c, f) in batch.columns().iter().zip(schema.fields()) {
        let as_is = c.data_type() == f.data_type()
            || matches!(
                (c.data_type(), f.data_type()),
                (DataType::Utf8View, DataType::Utf8) | (DataType::BinaryView, DataType::Binary)
            );
        let c = if as_is {
            c.clone()
        } else {
            datafusion::arrow::compute::cast(c, f.data_type())
                .map_err(|e| Error::Encode(e.into()))?
        };
        fields.push(f.as_ref().clone().with_data_type(c.data_type().clone()));
        cols.push(c);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| Error::Encode(e.into()))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Nested columns (lists, structs, maps) as JSON text, which every CSV reader can take
/// and any JSON parser can read back.
fn nested_as_json(batch: &RecordBatch) -> Result<RecordBatch> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| f.data_type().is_nested())
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if f.data_type().is_nested() {
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            cols.push(Arc::new(json_text(f, c.as_ref())?));
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| Error::Encode(e.into()))
}

/// Each value of `array` as JSON text (null stays null).
fn json_text(field: &FieldRef, array: &dyn Array) -> Result<datafusion::arrow::array::StringArray> {
    use datafusion::arrow::json::writer::{EncoderOptions, make_encoder};
    let opts = EncoderOptions::default()
        .with_timestamp_tz_format(TIME_FORMAT.to_owned())
        .with_timestamp_format(TIME_FORMAT.to_owned());
    let mut enc = make_encoder(field, array, &opts).map_err(|e| Error::Encode(e.into()))?;
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 64);
    let mut buf = Vec::with_capacity(256);
    for i in 0..array.len() {
        if array.is_null(i) {
            out.append_null();
            continue;
        }
        buf.clear();
        enc.encode(i, &mut buf);
        out.append_value(String::from_utf8_lossy(&buf));
    }
    Ok(out.finish())
}

/// A table drawn at the end: the first `max_rows` rows kept as text, the rest counted.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    screen: Screen,
    target: Target,
}

impl Table {
    fn new(schema: &SchemaRef, screen: Screen, target: Target) -> Table {
        Table {
            header: schema.fields().iter().map(|f| f.name().clone()).collect(),
            rows: Vec::new(),
            screen,
            target,
        }
    }

    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let room = match self.screen.max_rows {
            Some(max) => max.saturating_sub(self.rows.len()),
            None => usize::MAX,
        };
        if room == 0 {
            return Ok(());
        }
        let batch = nested_as_json(&batch.slice(0, batch.num_rows().min(room)))?;
        self.rows.extend(cells(&batch)?.into_iter().map(|row| {
            row.into_iter()
                .map(|v| cut(&v.unwrap_or_default(), MAX_CELL))
                .collect()
        }));
        Ok(())
    }

    fn finish(mut self) -> Result<(Target, u64)> {
        if self.screen.bars && self.header.len() >= 3 {
            by_key(&mut self.rows);
        }
        let text = fitted(
            &self.header,
            &self.rows,
            self.screen.width.unwrap_or(usize::MAX),
            self.screen.bars,
            self.screen.color,
        );
        if self.target.write_all(text.as_bytes()).is_err() {
            return Err(self.target.error("the table"));
        }
        let shown = self.rows.len() as u64;
        Ok((self.target, shown))
    }
}

/// A chart by key (`time, key, value`) as one small chart per key: the keys with the
/// largest totals first, each key's buckets in time order, the key written once.
fn by_key(rows: &mut [Vec<String>]) {
    let value = |r: &Vec<String>| r.last().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let mut totals: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    for r in rows.iter() {
        *totals.entry(r[1].clone()).or_default() += value(r);
    }
    // Stable: within a key, the rows keep their (time) order.
    rows.sort_by(|a, b| {
        totals[&b[1]]
            .total_cmp(&totals[&a[1]])
            .then_with(|| a[1].cmp(&b[1]))
    });
    let mut last: Option<String> = None;
    for r in rows.iter_mut() {
        if last.as_deref() == Some(r[1].as_str()) {
            r[1] = String::new();
        } else {
            last = Some(r[1].clone());
        }
    }
}

/// Each value as display text (`None` for null).
fn cells(batch: &RecordBatch) -> Result<Vec<Vec<Option<String>>>> {
    let opts = options();
    let fmts = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Encode(e.into()))?;
    Ok((0..batch.num_rows())
        .map(|r| {
            batch
                .columns()
                .iter()
                .zip(&fmts)
                .map(|(c, f)| c.is_valid(r).then(|| f.value(r).to_string()))
                .collect()
        })
        .collect())
}

/// The table text for a screen of `width` columns: each value on one line, the widest
/// columns cut (with `…`) until the table fits. With `bars`, a column of bars
/// proportional to the last column (a count) is added, as wide as the screen allows.
fn fitted(
    header: &[String],
    rows: &[Vec<String>],
    width: usize,
    bars: bool,
    color: bool,
) -> String {
    let chars = |s: &String| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(chars).collect();
    for row in rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(chars(v));
        }
    }
    // Each column takes its width, a space either side and a border.
    let total = |ws: &[usize]| ws.iter().map(|w| w + 3).sum::<usize>() + 1;
    // A bar column wants at least this many cells.
    const BAR_MIN: usize = 10;
    let reserve = if bars { BAR_MIN + 3 } else { 0 };
    while total(&widths) + reserve > width {
        let (i, &w) = widths
            .iter()
            .enumerate()
            .max_by_key(|&(_, w)| *w)
            .expect("a result has a column");
        if w <= MIN_CELL {
            break;
        }
        widths[i] = w - 1;
    }
    let values: Vec<f64> = if bars {
        rows.iter()
            .map(|r| r.last().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
            .collect()
    } else {
        Vec::new()
    };
    let bar_width = if bars {
        width.saturating_sub(total(&widths) + 3).clamp(BAR_MIN, 50)
    } else {
        0
    };
    let max = values.iter().cloned().fold(0.0_f64, f64::max);
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
    let mut head: Vec<String> = header
        .iter()
        .zip(&widths)
        .map(|(h, &w)| cut(h, w))
        .collect();
    if bars {
        head.push(String::new());
    }
    t.set_header(head);
    for (i, row) in rows.iter().enumerate() {
        let mut cells: Vec<comfy_table::Cell> = row
            .iter()
            .zip(&widths)
            .map(|(v, &w)| comfy_table::Cell::new(cut(v, w)))
            .collect();
        if bars {
            let bar = bar(values[i], max, bar_width);
            let mut cell = comfy_table::Cell::new(format!("{bar:<bar_width$}"));
            if color {
                cell = cell.fg(comfy_table::Color::Cyan);
            }
            cells.push(cell);
        }
        t.add_row(cells);
    }
    if !color {
        t.force_no_tty();
    } else {
        t.enforce_styling();
    }
    format!("{t}\n")
}

/// A horizontal bar of `value` against `max` in at most `width` cells, in eighths.
fn bar(value: f64, max: f64, width: usize) -> String {
    if max <= 0.0 || value <= 0.0 || !value.is_finite() {
        return String::new();
    }
    const PARTS: [char; 8] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];
    let eighths = ((value / max) * (width * 8) as f64).round().max(1.0) as usize;
    let mut s = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        s.push(PARTS[eighths % 8 - 1]);
    }
    s
}

/// Longest value a table shows; narrowest a fitted column gets.
const MAX_CELL: usize = 80;
const MIN_CELL: usize = 6;

/// At most `max` characters, the last one `…` when cut.
fn cut(s: &str, max: usize) -> String {
    let one_line = s.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut t: String = one_line.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// JSON writers' settings: times as RFC 3339.
fn json_writer() -> datafusion::arrow::json::WriterBuilder {
    datafusion::arrow::json::WriterBuilder::new()
        .with_timestamp_tz_format(TIME_FORMAT.to_owned())
        .with_timestamp_format(TIME_FORMAT.to_owned())
}

/// A batch as NDJSON lines in memory, times as RFC 3339 (for `follow`'s records).
pub fn ndjson_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut w =
        json_writer().build::<_, datafusion::arrow::json::writer::LineDelimited>(Vec::new());
    w.write(batch).map_err(|e| Error::Encode(e.into()))?;
    w.finish().map_err(|e| Error::Encode(e.into()))?;
    Ok(w.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};

    /// The one list of formats is the one `--format` takes, and `-o`'s extensions
    /// name only formats in it.
    #[test]
    fn one_list_of_formats() {
        use clap::ValueEnum;
        let clap_names: Vec<String> = (Format::value_variants().iter())
            .map(|f| f.to_possible_value().unwrap().get_name().to_owned())
            .collect();
        assert_eq!(clap_names, Format::ALL.map(Format::name));
        for f in Format::ALL {
            assert_eq!(Format::named(f.name()), Some(f));
        }
        assert_eq!(Format::named("xml"), None);
        assert!(EXTENSIONS.iter().all(|(_, f)| Format::ALL.contains(f)));
        assert_eq!(Format::text_names(), "table, csv, json or ndjson");
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn a_fitted_table_cuts_the_widest_column() {
        let header = vec!["name".to_owned(), "n".to_owned()];
        let rows = vec![
            vec!["x".repeat(100), "1".to_owned()],
            vec!["b".to_owned(), "2".to_owned()],
        ];
        let text = fitted(&header, &rows, 40, false, false);
        assert!(text.lines().all(|l| l.chars().count() <= 40), "{text}");
        assert!(text.contains('…'), "{text}");
        let text = fitted(&header, &rows, 40, true, false);
        assert!(text.lines().all(|l| l.chars().count() <= 40), "{text}");
        assert!(text.contains('█'), "{text}");
    }

    #[test]
    fn a_chart_by_key_groups_the_top_keys_first() {
        let row = |t: &str, k: &str, v: &str| vec![t.to_owned(), k.to_owned(), v.to_owned()];
        let mut rows = vec![
            row("1", "a", "1"),
            row("1", "b", "5"),
            row("2", "a", "0"),
            row("2", "b", "2"),
        ];
        by_key(&mut rows);
        assert_eq!(
            rows,
            vec![
                row("1", "b", "5"),
                row("2", "", "2"),
                row("1", "a", "1"),
                row("2", "", "0"),
            ]
        );
    }

    #[test]
    fn bars_scale_to_the_largest_value() {
        assert_eq!(bar(10.0, 10.0, 4), "████");
        assert_eq!(bar(5.0, 10.0, 4), "██");
        assert_eq!(bar(0.0, 10.0, 4), "");
        assert_eq!(bar(1.0, 1000.0, 4), "▏");
    }

    #[test]
    fn long_values_are_cut() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("ab\ncd", 10), "ab cd");
    }

    #[test]
    fn formats_from_file_names() {
        assert_eq!(
            Format::from_path(Path::new("x.parquet")),
            Ok(Format::Parquet)
        );
        assert_eq!(Format::from_path(Path::new("x.JSONL")), Ok(Format::Ndjson));
        let e = Format::from_path(Path::new("x.xlsx")).unwrap_err();
        assert!(e.contains("`.xlsx`") && e.contains(".parquet"), "{e}");
        assert!(Format::from_path(Path::new("x")).is_err());
    }

    #[test]
    fn nested_values_are_json_text() {
        use datafusion::arrow::array::{ListBuilder, StructBuilder};
        let fields = vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("name", DataType::Utf8, true),
        ];
        let mut b = ListBuilder::new(StructBuilder::from_fields(fields.clone(), 2));
        let s = b.values();
        s.field_builder::<StringBuilder>(0)
            .unwrap()
            .append_value("ws-1");
        s.field_builder::<StringBuilder>(1)
            .unwrap()
            .append_value("Team \"A\", B");
        s.append(true);
        b.append(true);
        b.append_null();
        let list = b.finish();
        let schema = Arc::new(Schema::new(vec![
            Field::new("context", list.data_type().clone(), true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(list), Arc::new(Int64Array::from(vec![1, 2]))],
        )
        .unwrap();
        let out = nested_as_json(&batch).unwrap();
        let text = out
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(text.value(0)).unwrap();
        assert_eq!(v[0]["name"], "Team \"A\", B");
        assert!(text.is_null(1));
    }
}
