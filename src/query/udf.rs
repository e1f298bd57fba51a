//! Two functions DataFusion lacks: CIDR containment on the `ip` string column, and
//! "any element of a `context`/`container` list matches".

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, StringArray, StringViewArray,
};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::lit;
use regex::Regex;

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    net: u128,
    mask: u128,
    v6: bool,
    /// See [`Cidr::text_prefix`].
    prefix: String,
}

impl Cidr {
    /// For an IPv4 network, the text every address in it starts with: its whole
    /// leading octets (`10.20.` for 10.20.0.0/16, `172.` for 172.16.0.0/12). IPv4
    /// addresses have one spelling, so text without it is rejected before parsing.
    fn text_prefix(&self) -> String {
        if self.v6 {
            return String::new();
        }
        // At most three octets: the fourth is followed by no dot.
        let whole = ((self.mask as u32).count_ones() / 8).min(3) as usize;
        let octets = (self.net as u32).to_be_bytes();
        octets[..whole].iter().map(|o| format!("{o}.")).collect()
    }

    /// `10.0.0.0/8`, `2001:db8::/32`, or a single address.
    pub fn parse(text: &str) -> std::result::Result<Cidr, String> {
        let (addr, bits) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let ip: std::net::IpAddr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IP address"))?;
        let (value, width, v6) = match ip {
            std::net::IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32u32, false),
            std::net::IpAddr::V6(v6) => (u128::from(v6), 128u32, true),
        };
        let bits = match bits {
            None => width,
            Some(b) => match b.parse::<u32>() {
                Ok(n) if n <= width => n,
                _ => {
                    return Err(format!(
                        "{} prefix length must be 0–{width}",
                        if v6 { "IPv6" } else { "IPv4" }
                    ));
                }
            },
        };
        let mask = if bits == 0 {
            0
        } else {
            (u128::MAX << (width - bits)) & (u128::MAX >> (128 - width))
        };
        let mut cidr = Cidr {
            net: value & mask,
            mask,
            v6,
            prefix: String::new(),
        };
        cidr.prefix = cidr.text_prefix();
        Ok(cidr)
    }

    /// (IPv6?, prefix length, network bits): the key of a [`NetworkTable`].
    pub(super) fn key(&self) -> (bool, u32, u128) {
        (self.v6, self.mask.count_ones(), self.net)
    }

    pub(super) fn mask(&self) -> u128 {
        self.mask
    }

    pub fn contains(&self, ip: &str) -> bool {
        if !self.v6 {
            return ip.starts_with(self.prefix.as_str())
                && ip
                    .parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|v4| u128::from(u32::from(v4)) & self.mask == self.net);
        }
        match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(v4)) if !self.v6 => {
                u128::from(u32::from(v4)) & self.mask == self.net
            }
            Ok(std::net::IpAddr::V6(v6)) if self.v6 => u128::from(v6) & self.mask == self.net,
            _ => false,
        }
    }
}

/// Many networks, looked up by prefix length: an address is masked once per distinct
/// length (at most 33 for IPv4, 129 for IPv6) and looked up in a hash set, whatever the
/// number of networks.
#[derive(Debug, Default)]
pub struct NetworkTable {
    /// (IPv6?, prefix length, mask) → networks of that length.
    by_len: Vec<(bool, u128, std::collections::HashSet<u128>)>,
}

impl NetworkTable {
    pub fn new(cidrs: &[Cidr]) -> NetworkTable {
        let mut by: std::collections::BTreeMap<
            (bool, u32),
            (u128, std::collections::HashSet<u128>),
        > = Default::default();
        for c in cidrs {
            let (v6, len, net) = c.key();
            by.entry((v6, len))
                .or_insert_with(|| (c.mask, Default::default()))
                .1
                .insert(net);
        }
        NetworkTable {
            by_len: by
                .into_iter()
                .map(|((v6, _), (mask, nets))| (v6, mask, nets))
                .collect(),
        }
    }

    pub fn contains(&self, addr: &std::net::IpAddr) -> bool {
        let (v6, bits) = match addr {
            std::net::IpAddr::V4(v4) => (false, u128::from(u32::from(*v4))),
            std::net::IpAddr::V6(v6) => (true, u128::from(*v6)),
        };
        self.by_len
            .iter()
            .any(|(is_v6, mask, nets)| *is_v6 == v6 && nets.contains(&(bits & mask)))
    }
}

/// The literal text of a constant argument.
pub(super) fn constant(arg: &ColumnarValue, name: &str) -> Result<String> {
    match arg {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
        ) => Ok(s.clone()),
        _ => exec_err!("{name}: the pattern must be a constant string"),
    }
}

/// `ip_in_cidr(ip, '10.0.0.0/8')`: null for a null ip.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IpInCidr {
    signature: Signature,
}

/// Which addresses of an array lie in `net` (null for null).
fn containment(ips: &ArrayRef, net: &Cidr) -> Result<BooleanArray> {
    Ok(match ips.data_type() {
        DataType::Utf8View => {
            // A view holds a string's length and its first four bytes: most addresses
            // are rejected there, without reading the string from its buffer.
            let ips = ips.as_string_view();
            let want = net.prefix.as_bytes();
            // Up to four bytes of the prefix, compared as one integer with the view's.
            let n = want.len().min(4);
            let mut head = [0u8; 4];
            head[..n].copy_from_slice(&want[..n]);
            let head = u32::from_le_bytes(head);
            let mask = if n == 4 {
                u32::MAX
            } else {
                (1u32 << (8 * n)) - 1
            };
            let views = ips.views();
            let values = BooleanBuffer::collect_bool(ips.len(), |i| {
                let view = views[i];
                (view as u32 as usize) >= want.len()
                    && ((view >> 32) as u32) & mask == head
                    && net.contains(ips.value(i))
            });
            BooleanArray::new(values, ips.nulls().cloned())
        }
        _ => {
            let ips = cast(ips, &DataType::Utf8)?;
            ips.as_string::<i32>()
                .iter()
                .map(|ip| ip.map(|ip| net.contains(ip)))
                .collect()
        }
    })
}

impl ScalarUDFImpl for IpInCidr {
    fn name(&self) -> &str {
        "ip_in_cidr"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let cidr = constant(&args.args[1], self.name())?;
        let net = match Cidr::parse(&cidr) {
            Ok(n) => n,
            Err(e) => return exec_err!("{e}"),
        };
        let ips = args.args[0].to_array(args.number_rows)?;
        let out = containment(&ips, &net)?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// How a string is matched.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Case-insensitive equality (holds the lower-cased value).
    Eq(String),
    Exact(String),
    /// An anchored glob or a regex search.
    Re(Regex),
    /// Case-insensitive substring (lower-cased).
    Contains(String),
    /// Any value at all (for `has`).
    Any,
}

impl Matcher {
    pub fn is_match(&self, s: &str) -> bool {
        match self {
            Matcher::Eq(v) => folds_to(s, v),
            Matcher::Exact(v) => s == v,
            Matcher::Re(re) => re.is_match(s),
            Matcher::Contains(v) => s.to_lowercase().contains(v.as_str()),
            Matcher::Any => !s.is_empty(),
        }
    }

    /// Encoded as (mode, pattern) arguments of `list_match`.
    fn encode(&self) -> (&'static str, String) {
        match self {
            Matcher::Eq(v) => ("eq", v.clone()),
            Matcher::Exact(v) => ("exact", v.clone()),
            Matcher::Re(re) => ("regex", re.as_str().to_owned()),
            Matcher::Contains(v) => ("contains", v.clone()),
            Matcher::Any => ("any", String::new()),
        }
    }

    fn decode(mode: &str, pattern: &str) -> Result<Matcher> {
        Ok(match mode {
            "eq" => Matcher::Eq(pattern.to_lowercase()),
            "exact" => Matcher::Exact(pattern.to_owned()),
            "regex" => match Regex::new(pattern) {
                Ok(re) => Matcher::Re(re),
                Err(e) => return exec_err!("list_match: {e}"),
            },
            "contains" => Matcher::Contains(pattern.to_lowercase()),
            "any" => Matcher::Any,
            other => return exec_err!("list_match: unknown mode `{other}`"),
        })
    }
}

/// The regex of an anchored, case-insensitive glob (`*`, `?`). Fails only when the
/// glob is too large for the regex engine (its size limit, as Arrow's `LIKE` has).
pub fn glob_regex(glob: &str) -> std::result::Result<Regex, regex::Error> {
    Regex::new(&glob_pattern(glob))
}

/// The regex text of [`glob_regex`].
pub fn glob_pattern(glob: &str) -> String {
    let mut re = String::from("(?is)^");
    for c in glob.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    re
}

/// `list_match(context, 'id_name'|'type', mode, pattern)`: whether any element's id or
/// name (or type) matches. False for an empty or null list.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ListMatch {
    signature: Signature,
}

impl ScalarUDFImpl for ListMatch {
    fn name(&self) -> &str {
        "list_match"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let part = constant(&args.args[1], self.name())?;
        let matcher = Matcher::decode(
            &constant(&args.args[2], self.name())?,
            &constant(&args.args[3], self.name())?,
        )?;
        let lists = args.args[0].to_array(args.number_rows)?;
        let Some(lists) = lists.as_list_opt::<i32>() else {
            return exec_err!("list_match: expects a list column");
        };
        let items = lists.values().as_struct();
        // Views, as the archive is read (a no-op there; other strings are viewed, not copied).
        let child = |name: &str| -> Result<Option<StringViewArray>> {
            Ok(match items.column_by_name(name) {
                Some(c) => Some(cast(c, &DataType::Utf8View)?.as_string_view().clone()),
                None => None,
            })
        };
        let fields = match part.as_str() {
            "type" => vec![child("type")?],
            _ => vec![child("id")?, child("name")?],
        };
        let offsets = lists.value_offsets();
        let out: BooleanArray = (0..lists.len())
            .map(|row| {
                if lists.is_null(row) {
                    return Some(false);
                }
                let (a, b) = (offsets[row] as usize, offsets[row + 1] as usize);
                Some((a..b).any(|k| {
                    fields
                        .iter()
                        .flatten()
                        .any(|f| f.is_valid(k) && matcher.is_match(f.value(k)))
                }))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `json_get(raw, 'a.b.0.c')`: the value at a path in a JSON text column, as text (a
/// string as it reads, anything else as JSON); null where the path leads nowhere or the
/// text is not JSON.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonGet {
    signature: Signature,
}

/// The value at `path` (dot-separated keys; numbers index lists) in `doc`.
///
/// The path is walked over slices of the text: each step reads one object or list,
/// taking its members as raw text (serde_json skips over a raw value without its
/// nesting limit), so a value nested at any depth — or beside one — is found. Only the
/// value found is parsed whole; one too deep for that is returned as its text, without
/// the spaces between tokens.
pub fn json_at(doc: &str, path: &[&str]) -> Option<String> {
    use serde_json::value::RawValue;
    let mut at: &str = doc;
    for key in path {
        let text = at.trim_start();
        at = if text.starts_with('{') {
            member(text, key)?
        } else if text.starts_with('[') {
            let i: usize = key.parse().ok()?;
            let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
            items.get(i)?.get()
        } else {
            return None;
        };
    }
    match serde_json::from_str::<serde_json::Value>(at) {
        Ok(serde_json::Value::Null) => None,
        Ok(serde_json::Value::String(s)) => Some(s),
        Ok(other) => Some(other.to_string()),
        // Deeper than serde_json's nesting limit: still a value (checked), as text.
        Err(_) => serde_json::from_str::<&RawValue>(at)
            .ok()
            .map(|raw| compact(raw.get())),
    }
}

/// The raw text of member `key` of the object `text` (the last, when it is repeated).
fn member<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    use serde::de::{Deserializer, MapAccess, Visitor};
    use serde_json::value::RawValue;
    /// A key, borrowed when it has no escapes.
    struct Key<'a>(std::borrow::Cow<'a, str>);
    impl<'de> serde::Deserialize<'de> for Key<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Key<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a key")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Key<'de>, E> {
                    Ok(Key(std::borrow::Cow::Borrowed(v)))
                }
                fn visit_str<E>(self, v: &str) -> std::result::Result<Key<'de>, E> {
                    Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
                }
            }
            d.deserialize_str(V)
        }
    }
    struct Find<'k>(&'k str);
    impl<'de> Visitor<'de> for Find<'_> {
        type Value = Option<&'de RawValue>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<M: MapAccess<'de>>(
            self,
            mut m: M,
        ) -> std::result::Result<Self::Value, M::Error> {
            let mut found = None;
            while let Some(k) = m.next_key::<Key<'de>>()? {
                let v: &'de RawValue = m.next_value()?;
                if k.0 == self.0 {
                    found = Some(v);
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let found = de.deserialize_map(Find(key)).ok()?;
    de.end().ok()?;
    Some(found?.get())
}

/// JSON text without the whitespace between its tokens.
fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

impl ScalarUDFImpl for JsonGet {
    fn name(&self) -> &str {
        "json_get"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let path = constant(&args.args[1], self.name())?;
        let keys: Vec<&str> = path.split('.').collect();
        let docs = args.args[0].to_array(args.number_rows)?;
        let docs = cast(&docs, &DataType::Utf8)?;
        let out: StringArray = docs
            .as_string::<i32>()
            .iter()
            .map(|d| d.and_then(|d| json_at(d, &keys)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

pub fn json_get_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonGet {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

/// `json_get(doc, path)`.
pub fn json_get(doc: Expr, path: &str) -> Expr {
    json_get_udf().call(vec![doc, lit(path)])
}

/// `fingerprint(text)`: 128 bits of xxh3 of a text (null for null), so that grouping or
/// partitioning by a long text (`first_seen raw`) holds 16 bytes a row, not the text.
/// Two texts share one with a chance of about n²/2¹²⁹.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Fingerprint {
    signature: Signature,
}

impl ScalarUDFImpl for Fingerprint {
    fn name(&self) -> &str {
        "fingerprint"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::FixedSizeBinary(16))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::FixedSizeBinaryBuilder;
        let texts = args.args[0].to_array(args.number_rows)?;
        let mut out = FixedSizeBinaryBuilder::with_capacity(texts.len(), 16);
        let mut put = |t: Option<&str>| match t {
            Some(t) => out.append_value(xxhash_rust::xxh3::xxh3_128(t.as_bytes()).to_le_bytes()),
            None => {
                out.append_null();
                Ok(())
            }
        };
        match texts.data_type() {
            DataType::Utf8View => texts.as_string_view().iter().try_for_each(&mut put)?,
            DataType::LargeUtf8 => texts.as_string::<i64>().iter().try_for_each(&mut put)?,
            _ => cast(&texts, &DataType::Utf8)?
                .as_string::<i32>()
                .iter()
                .try_for_each(&mut put)?,
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

pub fn fingerprint_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Fingerprint {
        signature: Signature::any(1, Volatility::Immutable),
    })
}

/// Whether `value` lower-cases to `lowered` (itself lower case).
pub fn folds_to(value: &str, lowered: &str) -> bool {
    if value.is_ascii() {
        value.len() == lowered.len() && value.eq_ignore_ascii_case(lowered)
    } else {
        value.to_lowercase() == lowered
    }
}

pub fn ip_in_cidr_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(IpInCidr {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

pub fn list_match_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(ListMatch {
        signature: Signature::any(4, Volatility::Immutable),
    })
}

/// `ip_in_cidr(ip, net)`.
pub fn ip_in_cidr(ip: Expr, net: &str) -> Expr {
    ip_in_cidr_udf().call(vec![ip, lit(net)])
}

/// `list_match(list, part, mode, pattern)`.
pub fn list_match(list: Expr, type_part: bool, m: &Matcher) -> Expr {
    let (mode, pattern) = m.encode();
    list_match_udf().call(vec![
        list,
        lit(if type_part { "type" } else { "id_name" }),
        lit(mode),
        lit(pattern),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of networks answers as `ip_in_cidr` of each network, joined with `or`.
    #[test]
    fn a_network_table_answers_as_each_network_would() {
        let nets: Vec<Cidr> = [
            "10.0.0.0/8",
            "10.20.0.0/16",
            "192.168.1.0/24",
            "203.0.113.7/32",
            "0.0.0.0/0",
            "2001:db8::/32",
            "2001:db8:1::/48",
            "::1/128",
        ]
        .iter()
        .map(|n| Cidr::parse(n).unwrap())
        .collect();
        let addrs = [
            "10.1.2.3",
            "11.0.0.1",
            "192.168.1.200",
            "192.168.2.1",
            "203.0.113.7",
            "203.0.113.8",
            "2001:db8::5",
            "2001:db9::1",
            "::1",
            "::2",
            "8.8.8.8",
        ];
        for k in 0..nets.len() {
            let some = &nets[k..];
            let table = NetworkTable::new(some);
            for a in addrs {
                let want = some.iter().any(|n| n.contains(a));
                assert_eq!(table.contains(&a.parse().unwrap()), want, "{a} in {some:?}");
            }
        }
    }

    #[test]
    fn json_paths_read_values_lists_and_objects() {
        let doc = r#"{"a":{"b":"x","n":3,"l":[{"k":"v"}],"z":null}}"#;
        assert_eq!(json_at(doc, &["a", "b"]), Some("x".into()));
        assert_eq!(json_at(doc, &["a", "n"]), Some("3".into()));
        assert_eq!(json_at(doc, &["a", "l", "0", "k"]), Some("v".into()));
        assert_eq!(json_at(doc, &["a", "l"]), Some(r#"[{"k":"v"}]"#.into()));
        assert_eq!(json_at(doc, &["a", "z"]), None);
        assert_eq!(json_at(doc, &["a", "l", "1"]), None);
        assert_eq!(json_at("not json", &["a"]), None);
        assert_eq!(json_at(r#"{"a":1} trailing"#, &["a"]), None);
        assert_eq!(
            json_at(r#"{"a\u0062":"esc","a":1,"a":2}"#, &["ab"]),
            Some("esc".into())
        );
        assert_eq!(
            json_at(r#"{"a":1,"a":2}"#, &["a"]),
            Some("2".into()),
            "the last wins"
        );
        assert_eq!(
            json_at(r#"{"s":"a \"q\" b"}"#, &["s"]),
            Some("a \"q\" b".into())
        );
    }

    /// Issue 27, item 5: a field nested 127 levels or more (serde_json's limit for a whole
    /// document is 128) hid every `raw.PATH` of its event.
    #[test]
    fn a_deeply_nested_field_hides_no_other_field_and_is_itself_read() {
        let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
        let doc = format!(
            r#"{{"id":"e1","deep": {deep},"attributes":{{"action":"user_login","n":[ 1, {{"x" : 2}} ]}}}}"#
        );
        assert_eq!(
            json_at(&doc, &["attributes", "action"]),
            Some("user_login".into())
        );
        assert_eq!(
            json_at(&doc, &["attributes", "n", "1", "x"]),
            Some("2".into())
        );
        assert_eq!(
            json_at(&doc, &["deep", "0", "0", "0"]).map(|t| t.len()),
            Some(2 * 4997 + 1)
        );
        assert_eq!(json_at(&doc, &["deep"]).unwrap()[..3].to_owned(), "[[[");
        assert_eq!(
            compact(r#"[ 1 , {"a b" : " c "} ]"#),
            r#"[1,{"a b":" c "}]"#
        );
    }

    #[test]
    fn string_views_are_tested_by_their_inline_bytes_then_in_full() {
        use datafusion::arrow::array::StringViewArray;
        let ips: ArrayRef = Arc::new(StringViewArray::from(vec![
            Some("10.20.1.2"),
            Some("10.20.100.200"),
            Some("10.2.0.1"),
            None,
            Some("10.200.0.1"),
            Some("10.20.999.1"),
            Some(""),
            Some("2001:db8::1"),
        ]));
        let got = |net: &str| -> Vec<Option<bool>> {
            containment(&ips, &Cidr::parse(net).unwrap())
                .unwrap()
                .iter()
                .collect()
        };
        let (t, f) = (Some(true), Some(false));
        assert_eq!(got("10.20.0.0/16"), vec![t, t, f, None, f, f, f, f]);
        assert_eq!(got("10.0.0.0/8"), vec![t, t, t, None, t, f, f, f]);
        assert_eq!(got("0.0.0.0/0"), vec![t, t, t, None, t, f, f, f]);
        assert_eq!(got("2001:db8::/32"), vec![f, f, f, None, f, f, f, t]);
    }

    #[test]
    fn cidr_containment() {
        let n = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.255.1.2"));
        assert!(!n.contains("11.0.0.1"));
        assert!(!n.contains("::1"));
        let n = Cidr::parse("172.16.0.0/12").unwrap();
        assert!(n.contains("172.31.255.255") && !n.contains("172.32.0.0"));
        let n = Cidr::parse("2001:db8::/32").unwrap();
        assert!(n.contains("2001:DB8:1::5") && !n.contains("2001:db9::1"));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8"));
        assert_eq!(
            Cidr::parse("10.0.0.0/33").unwrap_err(),
            "IPv4 prefix length must be 0–32"
        );
        assert!(Cidr::parse("10.0.0.300").is_err());
    }

    /// The text-prefix shortcut never changes an answer: every address in the network
    /// starts with it, and the exact test still follows.
    #[test]
    fn cidr_text_prefix_is_a_safe_shortcut() {
        for (net, prefix) in [
            ("10.20.0.0/16", "10.20."),
            ("172.16.0.0/12", "172."),
            ("192.168.1.0/24", "192.168.1."),
            ("192.168.1.7/32", "192.168.1."),
            ("10.0.0.0/7", ""),
            ("0.0.0.0/0", ""),
            ("2001:db8::/32", ""),
        ] {
            assert_eq!(Cidr::parse(net).unwrap().text_prefix(), prefix, "{net}");
        }
        let n = Cidr::parse("192.168.1.7/32").unwrap();
        assert!(n.contains("192.168.1.7") && !n.contains("192.168.1.70"));
        let n = Cidr::parse("10.20.0.0/16").unwrap();
        assert!(n.contains("10.20.255.1"));
        assert!(!n.contains("10.200.0.1") && !n.contains("10.20.x.1") && !n.contains("10.20.1"));
        // Leading zeros are not an IPv4 spelling (as without the shortcut).
        assert!(!n.contains("010.20.1.1") && !n.contains("10.20.01.1"));
    }

    #[test]
    fn globs_are_anchored_and_case_insensitive() {
        let g = glob_regex("user_*").unwrap();
        assert!(g.is_match("USER_login") && !g.is_match("xuser_login"));
        let g = |p: &str| glob_regex(p).unwrap();
        assert!(g("a?c").is_match("abc") && !g("a?c").is_match("abbc"));
        assert!(g("a.c").is_match("a.c") && !g("a.c").is_match("abc"));
    }
}
