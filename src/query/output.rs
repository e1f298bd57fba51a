//! Writing results: a table fitted to the terminal, CSV, JSON, NDJSON or Parquet.
//! Timestamps are written as RFC 3339 UTC (`2026-02-16T08:00:00.000Z`) in every text format.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Ndjson,
    Parquet,
}

impl Format {
    /// The format a file name implies (`x.parquet`, `x.csv`, `x.json`, `x.ndjson`, `x.jsonl`).
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "parquet" => Some(Format::Parquet),
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "txt" => Some(Format::Table),
            _ => None,
        }
    }
}

const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

fn options() -> FormatOptions<'static> {
    FormatOptions::default()
        .with_timestamp_tz_format(Some(TIME_FORMAT))
        .with_timestamp_format(Some(TIME_FORMAT))
        .with_null("")
}

fn werr(e: impl std::fmt::Display) -> Error {
    Error::Runtime(format!("writing the result: {e}"))
}

fn io(e: std::io::Error) -> Error {
    Error::Io {
        what: "writing the result".into(),
        source: e,
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
        .map_err(werr)?;
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

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Lists and structs as display text, which the CSV writer cannot print itself.
fn nested_as_text(batch: &RecordBatch) -> Result<RecordBatch> {
    columns_as_text(batch, DataType::is_nested)
}

/// Timestamps as RFC 3339 strings, so JSON writers print them like the text formats.
fn times_as_text(batch: &RecordBatch) -> Result<RecordBatch> {
    columns_as_text(batch, |t| matches!(t, DataType::Timestamp(..)))
}

/// The columns whose type `which` picks as display text (`Utf8`).
fn columns_as_text(batch: &RecordBatch, which: impl Fn(&DataType) -> bool) -> Result<RecordBatch> {
    let opts = options();
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if which(f.data_type()) {
            let fmt = ArrayFormatter::try_new(c.as_ref(), &opts).map_err(werr)?;
            let s: StringArray = (0..c.len())
                .map(|r| c.is_valid(r).then(|| fmt.value(r).to_string()))
                .collect();
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            cols.push(Arc::new(s));
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(werr)
}

/// Write `batches` (with `schema`, for the header of an empty result) in `format`.
pub fn write(
    out: &mut dyn Write,
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    width: Option<usize>,
) -> Result<()> {
    match format {
        Format::Csv => {
            let header: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| csv_field(f.name()))
                .collect();
            writeln!(out, "{}", header.join(",")).map_err(io)?;
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(false)
                .with_null(String::new())
                .with_timestamp_tz_format(TIME_FORMAT.to_owned())
                .with_timestamp_format(TIME_FORMAT.to_owned())
                .build(out);
            for b in batches {
                w.write(&nested_as_text(b)?).map_err(werr)?;
            }
        }
        Format::Json | Format::Ndjson => {
            let converted = batches
                .iter()
                .map(times_as_text)
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&RecordBatch> = converted.iter().collect();
            let mut buf = Vec::new();
            if format == Format::Json {
                let mut w = datafusion::arrow::json::ArrayWriter::new(&mut buf);
                w.write_batches(&refs).map_err(werr)?;
                w.finish().map_err(werr)?;
                if buf.is_empty() {
                    buf.extend_from_slice(b"[]");
                }
                buf.push(b'\n');
            } else {
                let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut buf);
                w.write_batches(&refs).map_err(werr)?;
                w.finish().map_err(werr)?;
            }
            out.write_all(&buf).map_err(io)?;
        }
        Format::Parquet => {
            let mut buf = Vec::new();
            let props = crate::archive::write::writer_properties();
            let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
                &mut buf,
                schema.clone(),
                Some(props),
            )
            .map_err(werr)?;
            for b in batches {
                w.write(&nested_as_text(b)?).map_err(werr)?;
            }
            w.close().map_err(werr)?;
            out.write_all(&buf).map_err(io)?;
        }
        Format::Table => {
            let mut t = comfy_table::Table::new();
            t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
            if let Some(w) = width {
                t.set_width(w as u16);
            }
            t.set_header(schema.fields().iter().map(|f| f.name().clone()));
            let mut rows = 0;
            for b in batches {
                for row in cells(b)? {
                    rows += 1;
                    t.add_row(
                        row.into_iter()
                            .map(|v| cut(&v.unwrap_or_default(), MAX_CELL)),
                    );
                }
            }
            writeln!(out, "{t}").map_err(io)?;
            writeln!(out, "{rows} row{}", if rows == 1 { "" } else { "s" }).map_err(io)?;
        }
    }
    Ok(())
}

/// A table for a screen of `width` columns: each value on one line, the widest columns
/// cut (with `…`) until the table fits; at most `max_rows` rows. Returns the number of
/// rows shown.
pub fn write_fitted_table(
    out: &mut dyn Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    width: usize,
    max_rows: usize,
) -> Result<usize> {
    let header: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    'batches: for b in batches {
        for row in cells(b)? {
            if rows.len() == max_rows {
                break 'batches;
            }
            rows.push(
                row.into_iter()
                    .map(|v| cut(&v.unwrap_or_default(), MAX_CELL))
                    .collect(),
            );
        }
    }
    let chars = |s: &String| s.chars().count();
    let mut widths: Vec<usize> = header.iter().map(chars).collect();
    for row in &rows {
        for (w, v) in widths.iter_mut().zip(row) {
            *w = (*w).max(chars(v));
        }
    }
    // Each column takes its width, a space either side and a border.
    let total = |ws: &[usize]| ws.iter().map(|w| w + 3).sum::<usize>() + 1;
    while total(&widths) > width {
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
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
    t.set_header(header.iter().zip(&widths).map(|(h, &w)| cut(h, w)));
    for row in &rows {
        t.add_row(row.iter().zip(&widths).map(|(v, &w)| cut(v, w)));
    }
    writeln!(out, "{t}").map_err(io)?;
    Ok(rows.len())
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
    let mut t: String = one_line.chars().take(max - 1).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn a_fitted_table_cuts_the_widest_column_and_the_rows() {
        use datafusion::arrow::array::Int64Array;
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let long = "x".repeat(100);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![long.as_str(), "b", "c"])),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        let shown = write_fitted_table(&mut out, &schema, &[batch], 40, 2).unwrap();
        assert_eq!(shown, 2);
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.chars().count() <= 40), "{text}");
        assert!(text.contains('…') && !text.contains("│ c"), "{text}");
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
            Some(Format::Parquet)
        );
        assert_eq!(
            Format::from_path(Path::new("x.JSONL")),
            Some(Format::Ndjson)
        );
        assert_eq!(Format::from_path(Path::new("x")), None);
    }
}
