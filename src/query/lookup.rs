//! `| lookup FILE on f [= column | cidr column] [fields a, b]`: a left join of a small
//! file (an HR roster, service-account owners, office networks) read when the query is
//! compiled. CSV (a header line; types inferred), Parquet, NDJSON (`.ndjson`, `.jsonl`).
//!
//! Text matches case-insensitively, as `=` does. `cidr` matches an address against a
//! column of networks: [`network_of`] gives each address the text of the most specific
//! network holding it, and the join is then an equality on that text.

use std::collections::HashMap;
use std::io::{BufReader, Cursor, Seek};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::lit;

use super::udf::{Cidr, constant};

/// A lookup file's rows.
pub struct Table {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl Table {
    /// The file's column names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect()
    }
}

/// The most a lookup file may hold: it is read whole into memory.
pub const MAX_BYTES: u64 = 256 << 20;

/// The file's rows, by its extension; an error says why in words, never quoting what the
/// file holds (a rule pack may name any file: `/proc/self/environ` as a `.csv`).
pub fn read(path: &str) -> std::result::Result<Table, String> {
    let ext = Path::new(path)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let open = || {
        crate::userfile::read(Path::new(path), MAX_BYTES)
            .map(Cursor::new)
            .map_err(|e| format!("cannot read `{path}`: {e}"))
    };
    let bad = |e: &dyn std::fmt::Display| {
        format!(
            "cannot read `{path}`: {}",
            crate::userfile::redact(&e.to_string())
        )
    };
    let (schema, batches): (SchemaRef, Vec<RecordBatch>) = match ext.as_str() {
        "csv" => {
            use datafusion::arrow::csv::{ReaderBuilder, reader::Format};
            let mut f = open()?;
            let format = Format::default().with_header(true);
            let (schema, _) = format.infer_schema(&mut f, None).map_err(|e| bad(&e))?;
            if schema
                .fields()
                .iter()
                .any(|c| c.name().chars().any(char::is_control) || c.name().len() > 1024)
            {
                return Err(format!(
                    "cannot read `{path}`: its first line is not a CSV header (control characters or over-long names)"
                ));
            }
            f.rewind().map_err(|e| bad(&e))?;
            let schema = Arc::new(schema);
            let reader = ReaderBuilder::new(Arc::clone(&schema))
                .with_format(format)
                .build(f)
                .map_err(|e| bad(&e))?;
            let batches = reader.collect::<Result<_, _>>().map_err(|e| bad(&e))?;
            (schema, batches)
        }
        "parquet" => {
            use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
            let bytes = bytes::Bytes::from(open()?.into_inner());
            let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| bad(&e))?;
            let schema = Arc::clone(builder.schema());
            let reader = builder.build().map_err(|e| bad(&e))?;
            let batches = reader.collect::<Result<_, _>>().map_err(|e| bad(&e))?;
            (schema, batches)
        }
        "ndjson" | "jsonl" => {
            use datafusion::arrow::json::ReaderBuilder;
            use datafusion::arrow::json::reader::infer_json_schema_from_seekable;
            let mut f = BufReader::new(open()?);
            let (schema, _) = infer_json_schema_from_seekable(&mut f, None).map_err(|e| bad(&e))?;
            let schema = Arc::new(schema);
            let reader = ReaderBuilder::new(Arc::clone(&schema))
                .build(f)
                .map_err(|e| bad(&e))?;
            let batches = reader.collect::<Result<_, _>>().map_err(|e| bad(&e))?;
            (schema, batches)
        }
        other => {
            return Err(format!(
                "`{path}`: {} is not a lookup format (.csv, .parquet, .ndjson, .jsonl)",
                if other.is_empty() {
                    "a file without an extension".to_owned()
                } else {
                    format!("`.{other}`")
                }
            ));
        }
    };
    Ok(Table { schema, batches })
}

/// The networks of a column (its text, once each, in file order), or the first that is
/// not one.
pub fn networks(table: &Table, column: usize) -> std::result::Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen: std::collections::HashSet<String> = Default::default();
    let mut row = 0;
    for b in &table.batches {
        let texts = cast(b.column(column), &DataType::Utf8).map_err(|e| e.to_string())?;
        for t in texts.as_string::<i32>() {
            row += 1;
            let Some(t) = t else { continue };
            Cidr::parse(t).map_err(|_| {
                // A value is shown only when it looks like an address: the file may be
                // anything a rule pack named.
                let ip_like = t.len() <= 43
                    && t.chars()
                        .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '/'));
                let shown = if ip_like { t } else { "…" };
                format!("row {row}: `{shown}` is not a network (`10.0.0.0/8`, `2001:db8::/32`)")
            })?;
            if seen.insert(t.to_owned()) {
                out.push(t.to_owned());
            }
        }
    }
    Ok(out)
}

/// Networks by prefix length, longest first: an address is masked once per length.
#[derive(Debug)]
pub struct Networks {
    by_len: Vec<(bool, u128, HashMap<u128, usize>)>,
}

impl Networks {
    pub fn new(texts: &[&str]) -> std::result::Result<Networks, String> {
        let mut by: std::collections::BTreeMap<(bool, u32), (u128, HashMap<u128, usize>)> =
            Default::default();
        for (i, t) in texts.iter().enumerate() {
            let c = Cidr::parse(t)?;
            let (v6, len, net) = c.key();
            let (_, nets) = by
                .entry((v6, len))
                .or_insert_with(|| (c.mask(), HashMap::new()));
            nets.entry(net).or_insert(i);
        }
        Ok(Networks {
            by_len: by
                .into_iter()
                .rev()
                .map(|((v6, _), (mask, nets))| (v6, mask, nets))
                .collect(),
        })
    }

    /// The most specific network holding `addr`.
    pub fn find(&self, addr: &str) -> Option<usize> {
        let (v6, bits) = match addr.parse::<std::net::IpAddr>().ok()? {
            std::net::IpAddr::V4(v4) => (false, u128::from(u32::from(v4))),
            std::net::IpAddr::V6(v6) => (true, u128::from(v6)),
        };
        self.by_len
            .iter()
            .filter(|(is_v6, _, _)| *is_v6 == v6)
            .find_map(|(_, mask, nets)| nets.get(&(bits & mask)).copied())
    }
}

/// `network_of(ip, 'net\nnet…')`: the text of the most specific network holding the
/// address, null when none does (or the address is null or not one). The networks are
/// indexed once per plan (kept with the hash of their text), not once per batch.
#[derive(Debug)]
struct NetworkOf {
    signature: Signature,
    built: std::sync::Mutex<Option<(u64, Arc<Networks>)>>,
}

impl PartialEq for NetworkOf {
    fn eq(&self, other: &Self) -> bool {
        self.signature == other.signature
    }
}

impl Eq for NetworkOf {}

impl std::hash::Hash for NetworkOf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.signature.hash(state);
    }
}

impl NetworkOf {
    /// The index of `list` (networks one a line), built when the list is new.
    fn index(&self, list: &str, texts: &[&str]) -> std::result::Result<Arc<Networks>, String> {
        let hash = xxhash_rust::xxh3::xxh3_64(list.as_bytes());
        let mut built = self.built.lock().expect("not poisoned");
        if let Some((h, nets)) = built.as_ref()
            && *h == hash
        {
            return Ok(Arc::clone(nets));
        }
        let nets = Arc::new(Networks::new(texts)?);
        *built = Some((hash, Arc::clone(&nets)));
        Ok(nets)
    }
}

impl ScalarUDFImpl for NetworkOf {
    fn name(&self) -> &str {
        "network_of"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let list = constant(&args.args[1], self.name())?;
        let texts: Vec<&str> = list.split('\n').collect();
        let nets = match self.index(&list, &texts) {
            Ok(n) => n,
            Err(e) => return exec_err!("{e}"),
        };
        let ips: ArrayRef = cast(&args.args[0].to_array(args.number_rows)?, &DataType::Utf8)?;
        let mut out = StringBuilder::with_capacity(ips.len(), 0);
        for ip in ips.as_string::<i32>() {
            out.append_option(ip.and_then(|ip| nets.find(ip)).map(|i| texts[i]));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

pub fn network_of_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(NetworkOf {
        signature: Signature::any(2, Volatility::Immutable),
        built: Default::default(),
    })
}

/// `network_of(ip, nets)`: the most specific of `nets` holding `ip` (see `NetworkOf`).
pub fn network_of(ip: Expr, nets: &[String]) -> Expr {
    network_of_udf().call(vec![ip, lit(nets.join("\n"))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_wins_in_v4_and_v6() {
        let texts = [
            "10.0.0.0/8",
            "10.20.0.0/16",
            "10.20.30.0/24",
            "2001:db8::/32",
            "2001:db8:1::/48",
        ];
        let n = Networks::new(&texts).unwrap();
        let at = |ip| n.find(ip).map(|i| texts[i]);
        assert_eq!(at("10.20.30.4"), Some("10.20.30.0/24"));
        assert_eq!(at("10.20.31.4"), Some("10.20.0.0/16"));
        assert_eq!(at("10.9.9.9"), Some("10.0.0.0/8"));
        assert_eq!(at("11.0.0.1"), None);
        assert_eq!(at("2001:db8:1::5"), Some("2001:db8:1::/48"));
        assert_eq!(at("2001:db8:2::5"), Some("2001:db8::/32"));
        assert_eq!(at("not an address"), None);
    }
}
