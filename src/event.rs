//! The one Arrow schema of an audit event, and JSON event -> Arrow rows.
//!
//! Parsing is lenient, as real pages demand: times with or without fractional seconds and
//! with any UTC offset (normalised to UTC µs), optional `location`, `container`, `context`,
//! `links` and `message`, fields of an unexpected type read as absent. Only two things make
//! an event unusable: no string `id`, or a `time` that cannot be parsed. Everything the
//! schema does not model survives in `raw`, the event's JSON exactly as received.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, NaiveDateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, Int64Builder, ListBuilder, RecordBatch, StringBuilder, StructBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny};
use serde_json::value::RawValue;

/// Version of the archive schema, written into every Parquet file's key-value metadata.
/// Bump it when a column is added (columns are only ever added, always nullable).
pub const SCHEMA_VERSION: &str = "2";

/// Column names, in schema order.
pub mod col {
    pub const ID: &str = "id";
    pub const ORG_ID: &str = "org_id";
    pub const TIME: &str = "time";
    pub const PROCESSED_AT: &str = "processed_at";
    pub const ACTION: &str = "action";
    pub const ACTOR_ID: &str = "actor_id";
    pub const ACTOR_NAME: &str = "actor_name";
    pub const ACTOR_EMAIL: &str = "actor_email";
    pub const ACTOR_TYPE: &str = "actor_type";
    pub const AUTH_TYPE: &str = "auth_type";
    pub const TOKEN_LABEL: &str = "token_label";
    pub const IP: &str = "ip";
    pub const COUNTRY: &str = "country";
    pub const REGION: &str = "region";
    pub const CITY: &str = "city";
    pub const MESSAGE: &str = "message";
    pub const CONTEXT: &str = "context";
    pub const CONTAINER: &str = "container";
    pub const RAW: &str = "raw";
    pub const RAW_HASH: &str = "raw_hash";
    /// The event's place in the archive's Merkle log (see `archive::evidence`): assigned
    /// by the commit that archives it, null in a batch not archived yet and in files
    /// written before schema version 2.
    pub const LEAF: &str = "leaf";
    pub const DATE: &str = "date";
}

/// The fields of one `context` / `container` element.
fn object_fields() -> Fields {
    Fields::from(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("type", DataType::Utf8, true),
        Field::new("name", DataType::Utf8, true),
    ])
}

fn object_list_item() -> Arc<Field> {
    Arc::new(Field::new(
        "element",
        DataType::Struct(object_fields()),
        true,
    ))
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use col::*;
    let s = |name: &str| Field::new(name, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new(ID, DataType::Utf8, false),
        s(ORG_ID),
        Field::new(TIME, utc_micros(), false),
        Field::new(PROCESSED_AT, utc_micros(), true),
        s(ACTION),
        s(ACTOR_ID),
        s(ACTOR_NAME),
        s(ACTOR_EMAIL),
        s(ACTOR_TYPE),
        s(AUTH_TYPE),
        s(TOKEN_LABEL),
        s(IP),
        s(COUNTRY),
        s(REGION),
        s(CITY),
        s(MESSAGE),
        Field::new(CONTEXT, DataType::List(object_list_item()), true),
        Field::new(CONTAINER, DataType::List(object_list_item()), true),
        Field::new(RAW, DataType::Utf8, false),
        Field::new(RAW_HASH, DataType::Int64, false),
        Field::new(LEAF, DataType::Int64, true),
        Field::new(DATE, DataType::Utf8, false),
    ]))
});

/// The archive schema (the `date` partition column last).
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

/// Hash of an event id, the key of the archive's id index. Stable across versions.
pub fn id_hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), 0x6175_6469_7471)
}

/// Content fingerprint of an event's raw JSON: xxh3 of the bytes with insignificant
/// whitespace removed, so the same event pretty-printed or compact hashes the same.
/// Stored in `raw_hash`; an id seen again with another fingerprint is a conflict.
pub fn raw_hash(raw: &str) -> i64 {
    xxhash_rust::xxh3::xxh3_64(compact_json(raw).as_bytes()) as i64
}

/// JSON text without whitespace between tokens (borrowed when it has none): one line,
/// as NDJSON needs, with keys and values byte for byte as they came.
pub fn compact_json(raw: &str) -> std::borrow::Cow<'_, str> {
    let bytes = raw.as_bytes();
    if !has_whitespace_outside_strings(bytes) {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut compact = Vec::with_capacity(bytes.len());
    let (mut in_str, mut esc) = (false, false);
    for &b in bytes {
        if in_str {
            compact.push(b);
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
        } else if !b.is_ascii_whitespace() {
            if b == b'"' {
                in_str = true;
            }
            compact.push(b);
        }
    }
    // Only ASCII whitespace outside strings was removed: still UTF-8.
    std::borrow::Cow::Owned(String::from_utf8(compact).expect("UTF-8 in, UTF-8 out"))
}

/// Whether JSON text has whitespace between tokens (compact JSON has none).
///
/// 64 bytes at a time where it can, branch-free: masks of the quotes, backslashes and
/// bytes below 0x21 of a block (eight bytes per word operation), the in-string bytes as
/// the prefix XOR of the quote mask. A block with a backslash, or with a byte below 0x21
/// outside strings, is looked at byte by byte.
fn has_whitespace_outside_strings(bytes: &[u8]) -> bool {
    let (mut in_str, mut esc) = (false, false);
    let mut blocks = bytes.chunks_exact(64);
    for block in &mut blocks {
        if !esc {
            let (quotes, backslashes, low) = block_masks(block);
            if backslashes == 0 {
                let mut inside = prefix_xor(quotes);
                if in_str {
                    inside = !inside;
                }
                if low & !inside == 0 {
                    in_str = inside >> 63 == 1;
                    continue;
                }
            }
        }
        if whitespace_bytewise(block, &mut in_str, &mut esc) {
            return true;
        }
    }
    whitespace_bytewise(blocks.remainder(), &mut in_str, &mut esc)
}

/// The byte-by-byte scan of [`has_whitespace_outside_strings`], carrying its state.
fn whitespace_bytewise(bytes: &[u8], in_str: &mut bool, esc: &mut bool) -> bool {
    for &b in bytes {
        if *in_str {
            if *esc {
                *esc = false;
            } else if b == b'\\' {
                *esc = true;
            } else if b == b'"' {
                *in_str = false;
            }
        } else if b == b'"' {
            *in_str = true;
        } else if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            return true;
        }
    }
    false
}

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// High bit of each byte of `w` that is zero (exact: no borrows between bytes).
fn zero_bytes(w: u64) -> u64 {
    !(((w & LOW7) + LOW7) | w | LOW7)
}

/// High bit of each byte of `w` below 0x21.
fn low_bytes(w: u64) -> u64 {
    !(((w & LOW7) + ONES * 0x5f) | w | LOW7)
}

/// The high bits of the eight bytes of `w` as bits 0..8 (byte 0 -> bit 0).
fn movemask(high_bits: u64) -> u64 {
    ((high_bits >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// (quotes, backslashes, bytes below 0x21) of a 64-byte block, one bit per byte.
fn block_masks(block: &[u8]) -> (u64, u64, u64) {
    let (mut quotes, mut backslashes, mut low) = (0, 0, 0);
    for (k, word) in block.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        quotes |= movemask(zero_bytes(w ^ (ONES * u64::from(b'"')))) << (8 * k);
        backslashes |= movemask(zero_bytes(w ^ (ONES * u64::from(b'\\')))) << (8 * k);
        low |= movemask(low_bytes(w)) << (8 * k);
    }
    (quotes, backslashes, low)
}

/// Bit i = XOR of bits 0..=i: set from an opening quote up to (not including) its closing one.
fn prefix_xor(mut x: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        x ^= x << shift;
    }
    x
}

/// Why an event could not be archived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("event has no string `id`")]
    NoId,
    #[error("event `{id}` has no `attributes.time`")]
    NoTime { id: String },
    #[error("event `{id}` has an unparsable time `{time}`")]
    BadTime { id: String, time: String },
    #[error(
        "event `{id}` has time `{time}`, outside the times auditq archives (1970-01-01 to 2261-12-31 UTC)"
    )]
    TimeOutOfRange { id: String, time: String },
}

/// The times an event may have to be archived (µs, UTC): 1970-01-01 up to 2262-01-01.
/// Arrow's time arithmetic (`date_bin`, `timechart`) works in nanoseconds, whose 64 bits
/// end in April 2262; an audit event is never earlier than 1970.
pub const ARCHIVED_TIMES: std::ops::Range<i64> = 0..9_214_646_400_000_000;

// ---------------------------------------------------------------------------------------
// Lenient serde types. Every nested object goes through `Lenient`, every leaf string
// through `Str`: a value of an unexpected type reads as absent instead of failing the event.

/// A string, or absent when the JSON value is anything else.
#[derive(Default, Debug)]
struct Str<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Some(Cow::Owned(v))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Str(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                Str::deserialize(d)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Str(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Self::Value, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Str(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl Str<'_> {
    fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// A nested object that reads as absent when the JSON value is not an object.
///
/// Single pass: a map is handed straight to `T` (whose fields are all lenient, so it
/// cannot fail on types); anything else is skipped.
#[derive(Debug)]
struct Lenient<T>(Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

/// A list whose elements that are not objects are skipped; absent when not a list.
#[derive(Debug)]
struct LenientList<T>(Vec<T>);

impl<T> Default for LenientList<T> {
    fn default() -> Self {
        LenientList(Vec::new())
    }
}

struct LenientVisitor<T>(std::marker::PhantomData<T>);

macro_rules! skip_scalars {
    ($value:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for LenientVisitor<Lenient<T>> {
    type Value = Lenient<T>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    skip_scalars!(Lenient(None));
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        while a.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Lenient(None))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(a)).map(|t| Lenient(Some(t)))
    }
}

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for LenientVisitor<LenientList<T>> {
    type Value = LenientList<T>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    skip_scalars!(LenientList(Vec::new()));
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = a.next_element::<Lenient<T>>()? {
            items.extend(item.0);
        }
        Ok(LenientList(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(LenientList(Vec::new()))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor::<Lenient<T>>(std::marker::PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for LenientList<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor::<LenientList<T>>(std::marker::PhantomData))
    }
}

/// One JSON document of an input: an event, or an envelope holding `data`.
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct Doc<'a> {
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    attributes: Lenient<Attributes<'a>>,
    #[serde(borrow)]
    message: Lenient<Message<'a>>,
    #[serde(borrow)]
    links: Lenient<Links<'a>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct Attributes<'a> {
    #[serde(borrow)]
    time: Str<'a>,
    #[serde(borrow)]
    processed_at: Str<'a>,
    #[serde(borrow)]
    action: Str<'a>,
    #[serde(borrow)]
    actor: Lenient<Actor<'a>>,
    #[serde(borrow)]
    context: LenientList<Object<'a>>,
    #[serde(borrow)]
    container: LenientList<Object<'a>>,
    #[serde(borrow)]
    location: Lenient<Location<'a>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct Actor<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    email: Str<'a>,
    #[serde(borrow)]
    auth: Lenient<Auth<'a>>,
    app: Option<IgnoredAny>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct Auth<'a> {
    #[serde(borrow)]
    auth_type: Str<'a>,
    #[serde(borrow)]
    token_label: Str<'a>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct Object<'a> {
    #[serde(borrow)]
    id: Str<'a>,
    #[serde(borrow, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow)]
    attributes: Lenient<ObjectAttributes<'a>>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct ObjectAttributes<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    group_name: Str<'a>,
    #[serde(borrow)]
    site_name: Str<'a>,
    #[serde(borrow)]
    display_name: Str<'a>,
    #[serde(borrow)]
    email: Str<'a>,
}

impl ObjectAttributes<'_> {
    /// The element's human name: the first of `name`, `groupName`, `siteName`,
    /// `displayName`, `email` that is present.
    fn name(&self) -> Option<&str> {
        [
            &self.name,
            &self.group_name,
            &self.site_name,
            &self.display_name,
            &self.email,
        ]
        .into_iter()
        .find_map(|s| s.as_deref())
    }
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct Location<'a> {
    #[serde(borrow)]
    ip: Str<'a>,
    #[serde(borrow)]
    country_name: Str<'a>,
    #[serde(borrow)]
    region_name: Str<'a>,
    #[serde(borrow)]
    city: Str<'a>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct Message<'a> {
    #[serde(borrow)]
    content: Str<'a>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct Links<'a> {
    #[serde(borrow, rename = "self")]
    self_: Str<'a>,
}

// ---------------------------------------------------------------------------------------

/// Parse an ISO-8601 / RFC 3339 time as the API writes it, leniently: fractional seconds
/// optional, any offset (or none: read as UTC), `T` or space. Returns UTC microseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Some(t) = parse_time_fast(s.as_bytes()) {
        return Some(t);
    }
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc).timestamp_micros());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc).timestamp_micros());
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    None
}

/// The API's usual form, `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, without chrono's generality.
fn parse_time_fast(b: &[u8]) -> Option<i64> {
    fn num(b: &[u8]) -> Option<i64> {
        b.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    }
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (h, mi, sec) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    let micros = match (&b[19..], b.last()) {
        (b"Z", _) => 0,
        (rest, Some(b'Z')) if rest.len() >= 3 && rest.len() <= 11 && rest[0] == b'.' => {
            let frac = &rest[1..rest.len() - 1];
            let mut v = num(frac)?;
            for _ in frac.len()..6 {
                v *= 10;
            }
            for _ in 6..frac.len() {
                v /= 10;
            }
            v
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59
    {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(((days * 24 + h) * 60 + mi) * 60_000_000 + sec * 1_000_000 + micros)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Format UTC microseconds as RFC 3339 with millisecond precision, as the API does.
pub fn format_time(micros: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(micros) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => micros.to_string(),
    }
}

/// The UTC day (`YYYY-MM-DD`) of a time in microseconds: the `date` partition value.
pub fn utc_date(micros: i64) -> String {
    match DateTime::<Utc>::from_timestamp_micros(micros) {
        Some(t) => t.format("%Y-%m-%d").to_string(),
        None => "1970-01-01".to_owned(),
    }
}

/// The organisation id in an event's `links.self` (`…/orgs/{org}/events/{id}`).
fn org_from_link(link: &str) -> Option<&str> {
    let rest = &link[link.find("/orgs/")? + 6..];
    let end = rest.find('/').unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// Classify an actor: `app` for apps and Atlassian's own system apps, `user` for account
/// ids (`557058:…` or 24 hex digits), `system` for anything else (product names).
fn actor_type(actor: &Actor) -> Option<&'static str> {
    let id = actor.id.as_deref()?;
    if actor.app.is_some() || actor.email.as_deref() == Some("Atlassian app") {
        return Some("app");
    }
    let hex24 = id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit());
    Some(if hex24 || id.contains(':') {
        "user"
    } else {
        "system"
    })
}

/// What one JSON document of an input holds.
pub enum Document<'a> {
    /// An envelope `{"data": …}`: a page (array) or a single event (object).
    Envelope(&'a RawValue),
    /// A JSON array of events.
    Array(Vec<&'a RawValue>),
    /// A bare event, already appended to the batch builder.
    Event,
    /// A bare event that cannot be archived.
    Invalid(Invalid),
}

/// Builds Arrow record batches of events, row by row.
pub struct BatchBuilder {
    id: StringBuilder,
    org_id: StringBuilder,
    time: TimestampMicrosecondBuilder,
    processed_at: TimestampMicrosecondBuilder,
    action: StringBuilder,
    actor_id: StringBuilder,
    actor_name: StringBuilder,
    actor_email: StringBuilder,
    actor_type: StringBuilder,
    auth_type: StringBuilder,
    token_label: StringBuilder,
    ip: StringBuilder,
    country: StringBuilder,
    region: StringBuilder,
    city: StringBuilder,
    message: StringBuilder,
    context: ListBuilder<StructBuilder>,
    container: ListBuilder<StructBuilder>,
    raw: StringBuilder,
    raw_hash: Int64Builder,
    date: StringBuilder,
    last_day: (i64, String),
    /// Whether `raw_hash` is computed (the archive needs it; a stream does not).
    fingerprints: bool,
    /// Whether `raw` holds the JSON (a check of derived columns has it at hand already).
    keep_raw: bool,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

impl BatchBuilder {
    pub fn new() -> Self {
        let objects = || {
            ListBuilder::new(StructBuilder::from_fields(object_fields(), 0))
                .with_field(object_list_item())
        };
        let ts = || TimestampMicrosecondBuilder::new().with_timezone("UTC");
        BatchBuilder {
            id: StringBuilder::new(),
            org_id: StringBuilder::new(),
            time: ts(),
            processed_at: ts(),
            action: StringBuilder::new(),
            actor_id: StringBuilder::new(),
            actor_name: StringBuilder::new(),
            actor_email: StringBuilder::new(),
            actor_type: StringBuilder::new(),
            auth_type: StringBuilder::new(),
            token_label: StringBuilder::new(),
            ip: StringBuilder::new(),
            country: StringBuilder::new(),
            region: StringBuilder::new(),
            city: StringBuilder::new(),
            message: StringBuilder::new(),
            context: objects(),
            container: objects(),
            raw: StringBuilder::new(),
            raw_hash: Int64Builder::new(),
            date: StringBuilder::new(),
            last_day: (i64::MIN, String::new()),
            fingerprints: true,
            keep_raw: true,
        }
    }

    /// A builder whose `raw` column is empty: for comparing the columns derived from
    /// JSON that is at hand, without copying it.
    pub fn without_raw(mut self) -> Self {
        self.keep_raw = false;
        self
    }

    /// A builder whose `raw_hash` is 0: for events that are not archived.
    pub fn without_fingerprints(mut self) -> Self {
        self.fingerprints = false;
        self
    }

    /// Parse one JSON document. A bare event is appended; an envelope or array is returned
    /// for the caller to walk (see [`Document`]).
    pub fn push_document<'a>(&mut self, text: &'a str) -> Document<'a> {
        if text.starts_with('[') {
            return match serde_json::from_str::<Vec<&RawValue>>(text) {
                Ok(items) => Document::Array(items),
                Err(e) => Document::Invalid(Invalid::Json(e.to_string())),
            };
        }
        let doc: Doc = match serde_json::from_str(text) {
            Ok(doc) => doc,
            Err(e) => return Document::Invalid(Invalid::Json(e.to_string())),
        };
        if let Some(data) = doc.data {
            return Document::Envelope(data);
        }
        match self.push_doc(doc, text) {
            Ok(()) => Document::Event,
            Err(e) => Document::Invalid(e),
        }
    }

    /// Parse and append one event (no envelope).
    pub fn push_event(&mut self, raw: &str) -> Result<(), Invalid> {
        let doc: Doc = serde_json::from_str(raw).map_err(|e| Invalid::Json(e.to_string()))?;
        self.push_doc(doc, raw)
    }

    fn push_doc(&mut self, doc: Doc, raw: &str) -> Result<(), Invalid> {
        let id = doc
            .id
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or(Invalid::NoId)?;
        let attrs = doc.attributes.0.unwrap_or_default();
        let time_text = attrs
            .time
            .as_deref()
            .ok_or_else(|| Invalid::NoTime { id: id.to_owned() })?;
        let time = parse_time(time_text).ok_or_else(|| Invalid::BadTime {
            id: id.to_owned(),
            time: time_text.to_owned(),
        })?;
        if !ARCHIVED_TIMES.contains(&time) {
            return Err(Invalid::TimeOutOfRange {
                id: id.to_owned(),
                time: time_text.to_owned(),
            });
        }
        let actor = attrs.actor.0.unwrap_or_default();
        let auth = actor.auth.0.as_ref();
        let location = attrs.location.0.unwrap_or_default();
        let links = doc.links.0.unwrap_or_default();

        self.id.append_value(id);
        self.org_id
            .append_option(links.self_.as_deref().and_then(org_from_link));
        self.time.append_value(time);
        self.processed_at
            .append_option(attrs.processed_at.as_deref().and_then(parse_time));
        self.action.append_option(attrs.action.as_deref());
        self.actor_id.append_option(actor.id.as_deref());
        self.actor_name.append_option(actor.name.as_deref());
        self.actor_email.append_option(actor.email.as_deref());
        self.actor_type.append_option(actor_type(&actor));
        self.auth_type
            .append_option(auth.and_then(|a| a.auth_type.as_deref()));
        self.token_label
            .append_option(auth.and_then(|a| a.token_label.as_deref()));
        self.ip
            .append_option(location.ip.as_deref().filter(|s| !s.is_empty()));
        self.country.append_option(location.country_name.as_deref());
        self.region.append_option(location.region_name.as_deref());
        self.city.append_option(location.city.as_deref());
        self.message
            .append_option(doc.message.0.as_ref().and_then(|m| m.content.as_deref()));
        append_objects(&mut self.context, &attrs.context.0);
        append_objects(&mut self.container, &attrs.container.0);
        self.raw.append_value(if self.keep_raw { raw } else { "" });
        self.raw_hash
            .append_value(if self.fingerprints { raw_hash(raw) } else { 0 });
        let day = time.div_euclid(MICROS_PER_DAY);
        if day != self.last_day.0 {
            self.last_day = (day, utc_date(time));
        }
        self.date.append_value(&self.last_day.1);
        Ok(())
    }

    /// The batch of all rows appended so far, in input order; the builder starts afresh.
    pub fn finish(&mut self) -> RecordBatch {
        // The raw JSON is most of the bytes: start the next batch at this one's size
        // rather than growing (and copying) from nothing.
        let raw = self.raw.finish();
        let (rows, bytes) = (
            datafusion::arrow::array::Array::len(&raw),
            raw.value_data().len(),
        );
        self.raw = StringBuilder::with_capacity(rows, bytes + bytes / 8);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.org_id.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.processed_at.finish()),
            Arc::new(self.action.finish()),
            Arc::new(self.actor_id.finish()),
            Arc::new(self.actor_name.finish()),
            Arc::new(self.actor_email.finish()),
            Arc::new(self.actor_type.finish()),
            Arc::new(self.auth_type.finish()),
            Arc::new(self.token_label.finish()),
            Arc::new(self.ip.finish()),
            Arc::new(self.country.finish()),
            Arc::new(self.region.finish()),
            Arc::new(self.city.finish()),
            Arc::new(self.message.finish()),
            Arc::new(self.context.finish()),
            Arc::new(self.container.finish()),
            Arc::new(raw),
            Arc::new(self.raw_hash.finish()),
            datafusion::arrow::array::new_null_array(&DataType::Int64, rows),
            Arc::new(self.date.finish()),
        ];
        RecordBatch::try_new(schema(), columns).expect("builder columns match the event schema")
    }
}

fn append_objects(list: &mut ListBuilder<StructBuilder>, items: &[Object]) {
    for item in items {
        let attrs = item.attributes.0.as_ref();
        let b = list.values();
        b.field_builder::<StringBuilder>(0)
            .expect("field 0 is a string")
            .append_option(item.id.as_deref());
        b.field_builder::<StringBuilder>(1)
            .expect("field 1 is a string")
            .append_option(item.kind.as_deref());
        b.field_builder::<StringBuilder>(2)
            .expect("field 2 is a string")
            .append_option(attrs.and_then(|a| a.name()));
        b.append(true);
    }
    list.append(true);
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::TimestampMicrosecondType;

    #[test]
    fn times_are_read_leniently_and_normalised_to_utc() {
        let base = parse_time("2022-05-12T19:13:13Z").unwrap();
        assert_eq!(parse_time("2022-05-12T19:13:13.000Z"), Some(base));
        assert_eq!(parse_time("2022-05-12T21:13:13+02:00"), Some(base));
        assert_eq!(parse_time("2022-05-12T21:13:13.000+0200"), Some(base));
        assert_eq!(parse_time("2022-05-12T19:13:13"), Some(base));
        assert_eq!(parse_time("2022-05-12T19:13:13.5Z"), Some(base + 500_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2026-02-30T00:00:00Z"), None);
        assert_eq!(
            parse_time("2024-02-29T00:00:00.123456789Z"),
            parse_time("2024-02-29T00:00:00.123456+00:00")
        );
        assert_eq!(parse_time("1969-12-31T23:59:59.999Z"), Some(-1000));
        assert_eq!(format_time(base + 327_000), "2022-05-12T19:13:13.327Z");
        assert_eq!(
            utc_date(parse_time("2022-05-12T23:59:59-01:00").unwrap()),
            "2022-05-13"
        );
    }

    /// The word-at-a-time whitespace check agrees with a plain byte loop.
    #[test]
    fn whitespace_check_agrees_with_a_byte_loop() {
        fn slow(bytes: &[u8]) -> bool {
            let (mut in_str, mut esc) = (false, false);
            for &b in bytes {
                if in_str {
                    if esc {
                        esc = false;
                    } else if b == b'\\' {
                        esc = true;
                    } else if b == b'"' {
                        in_str = false;
                    }
                } else if b == b'"' {
                    in_str = true;
                } else if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                    return true;
                }
            }
            false
        }
        let mut rng = crate::rng::Rng::new(5);
        let alphabet = b"ab\"\\ \n\t{}:,x\x01\x0c\xff";
        for round in 0..50_000 {
            // Short texts with many special bytes; long ones (several 64-byte blocks) with few.
            let (len, alphabet) = match round % 3 {
                0 => (rng.below(40) as usize, &alphabet[..]),
                1 => (
                    rng.below(400) as usize,
                    &b"aaaaaaaaaaaaaaab\"\"\"  \\\x01\xff"[..],
                ),
                _ => (
                    rng.below(400) as usize,
                    &b"aaaaaaaaaaaaaaab\"\"\"\"  \x01\n\xff"[..],
                ),
            };
            let s: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect();
            assert_eq!(
                has_whitespace_outside_strings(&s),
                slow(&s),
                "{:?}",
                String::from_utf8_lossy(&s)
            );
        }
    }

    /// The fast path agrees with chrono on every shape it accepts.
    #[test]
    fn fast_time_parsing_agrees_with_chrono() {
        let mut rng = crate::rng::Rng::new(3);
        for _ in 0..20_000 {
            // 1900-01-01 .. 2100-01-01
            let micros = rng.below(6_311_433_600_000_000) as i64 - 2_208_988_800_000_000;
            let t = DateTime::<Utc>::from_timestamp_micros(micros).unwrap();
            for fmt in [
                chrono::SecondsFormat::Secs,
                chrono::SecondsFormat::Millis,
                chrono::SecondsFormat::Micros,
            ] {
                let text = t.to_rfc3339_opts(fmt, true);
                let slow = DateTime::parse_from_rfc3339(&text)
                    .unwrap()
                    .timestamp_micros();
                assert_eq!(parse_time_fast(text.as_bytes()), Some(slow), "{text}");
            }
        }
    }

    #[test]
    fn raw_hash_ignores_insignificant_whitespace_only() {
        assert_eq!(raw_hash(r#"{"a": "x y"}"#), raw_hash(r#"{"a":"x y"}"#));
        assert_ne!(raw_hash(r#"{"a":"x y"}"#), raw_hash(r#"{"a":"xy"}"#));
        assert_eq!(
            raw_hash("{\"a\":\"q\\\" \"}"),
            raw_hash("{ \"a\" : \"q\\\" \" }")
        );
        assert!(!has_whitespace_outside_strings(
            br#"{"a":"x y","b":["\" z",1]}"#
        ));
        assert!(has_whitespace_outside_strings(br#"{"a":"x y", "b":1}"#));
        assert!(has_whitespace_outside_strings(br#"{"a":"\\" ,"b":1}"#));
        assert!(!has_whitespace_outside_strings(br#"{"a":"\\"}"#));
        assert!(!has_whitespace_outside_strings(br#"{"a":"\"#));
    }

    #[test]
    fn a_minimal_event_parses_with_absent_optionals() {
        let mut b = BatchBuilder::new();
        let raw = r#"{"id":"e1","attributes":{"time":"2026-01-02T03:04:05Z","action":"user_login","actor":{"id":"confluence","email":"Atlassian app"},"location":{"ip":42}},"message":"not an object"}"#;
        b.push_event(raw).unwrap();
        let batch = b.finish();
        assert_eq!(batch.num_rows(), 1);
        let get = |name: &str| batch.column_by_name(name).unwrap().clone();
        assert_eq!(get(col::ACTOR_TYPE).as_string::<i32>().value(0), "app");
        assert!(get(col::IP).is_null(0));
        assert!(get(col::MESSAGE).is_null(0));
        assert_eq!(get(col::RAW).as_string::<i32>().value(0), raw);
        assert_eq!(get(col::DATE).as_string::<i32>().value(0), "2026-01-02");
        let t = get(col::TIME);
        assert_eq!(
            t.as_primitive::<TimestampMicrosecondType>().value(0),
            parse_time("2026-01-02T03:04:05Z").unwrap()
        );
        assert_eq!(get(col::CONTEXT).as_list::<i32>().value(0).len(), 0);
    }

    #[test]
    fn an_event_without_id_or_time_is_invalid() {
        let mut b = BatchBuilder::new();
        assert_eq!(
            b.push_event(r#"{"attributes":{"time":"2026-01-02T03:04:05Z"}}"#),
            Err(Invalid::NoId)
        );
        assert_eq!(
            b.push_event(r#"{"id":"x","attributes":{"time":"soon"}}"#),
            Err(Invalid::BadTime {
                id: "x".into(),
                time: "soon".into()
            })
        );
        assert_eq!(
            b.push_event(r#"{"id":"x"}"#),
            Err(Invalid::NoTime { id: "x".into() })
        );
        assert!(matches!(b.push_event("{"), Err(Invalid::Json(_))));
        assert_eq!(b.finish().num_rows(), 0);
    }

    #[test]
    fn objects_keep_id_type_and_a_name() {
        let mut b = BatchBuilder::new();
        let raw = r#"{"id":"e","links":{"self":"https://api.atlassian.com/admin/v1/orgs/org-1/events/e"},
          "attributes":{"time":"2026-01-02T03:04:05.123Z","actor":{"id":"5d3a7e0c9b1f2a0012c4e8d1","auth":{"authType":"api-token","tokenLabel":"ci"}},
          "context":[{"id":"g","type":"groups","attributes":{"groupName":"admins"}}, 7, {"type":"users","attributes":{"name":"Kai"}}],
          "container":[{"id":"s","type":"sites","attributes":{"siteName":"acme"}}]}}"#;
        b.push_event(raw).unwrap();
        let batch = b.finish();
        let s = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap()
                .as_string::<i32>()
                .value(0)
                .to_owned()
        };
        assert_eq!(s(col::ORG_ID), "org-1");
        assert_eq!(s(col::ACTOR_TYPE), "user");
        assert_eq!(s(col::AUTH_TYPE), "api-token");
        assert_eq!(s(col::TOKEN_LABEL), "ci");
        let ctx = batch
            .column_by_name(col::CONTEXT)
            .unwrap()
            .as_list::<i32>()
            .value(0);
        let ctx = ctx.as_struct();
        assert_eq!(ctx.len(), 2);
        assert_eq!(ctx.column(2).as_string::<i32>().value(0), "admins");
        assert_eq!(ctx.column(2).as_string::<i32>().value(1), "Kai");
        assert!(ctx.column(0).is_null(1));
    }
}
