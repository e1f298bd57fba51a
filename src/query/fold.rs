//! auditq's `=` on text ignores case: it compiles to `lower(f) = 'value'`, which is what
//! the plan shows and what `explain`'s SQL says. Lowering every value to compare it
//! costs a new string per row (twice the time of `==`); `eq_fold(f, 'value')` answers
//! the same without lowering: an ASCII value matches only with the same length and an
//! ASCII case-insensitive comparison, any other value is lowered as before. The
//! optimizer rule [`FoldEq`] makes the replacement in filters; `follow` calls [`rewrite`].

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, OffsetSizeTrait};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions::string::lower::LowerFunc;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::udf::folds_to;

/// `eq_fold(s, 'x')` = `lower(s) = 'x'` for a lower-case constant `x`; null for null.
#[derive(Debug, PartialEq, Eq, Hash)]
struct EqFold {
    signature: Signature,
}

pub fn eq_fold_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(EqFold {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

fn strings<O: OffsetSizeTrait>(values: &ArrayRef, lowered: &str) -> BooleanArray {
    let values = values.as_string::<O>();
    // All ASCII (the usual case): a value of another length cannot match, and its
    // bytes are not read.
    let ascii = values.values().is_ascii();
    let offsets = values.value_offsets();
    let out = BooleanBuffer::collect_bool(values.len(), |i| {
        let len = (offsets[i + 1] - offsets[i]).as_usize();
        if ascii {
            len == lowered.len() && values.value(i).eq_ignore_ascii_case(lowered)
        } else {
            folds_to(values.value(i), lowered)
        }
    });
    BooleanArray::new(out, values.nulls().cloned())
}

fn views(values: &ArrayRef, lowered: &str) -> BooleanArray {
    let values = values.as_string_view();
    // A long value lives in a data buffer: when every buffer is ASCII, so is the value,
    // and the view's length decides most rows. A short value is inside its view.
    let ascii = values.data_buffers().iter().all(|b| b.is_ascii());
    let views = values.views();
    let out = BooleanBuffer::collect_bool(values.len(), |i| {
        let len = views[i] as u32 as usize;
        if len > 12 && ascii {
            len == lowered.len() && values.value(i).eq_ignore_ascii_case(lowered)
        } else {
            folds_to(values.value(i), lowered)
        }
    });
    BooleanArray::new(out, values.nulls().cloned())
}

impl ScalarUDFImpl for EqFold {
    fn name(&self) -> &str {
        "eq_fold"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let lowered = super::udf::constant(&args.args[1], self.name())?;
        if let ColumnarValue::Scalar(s) = &args.args[0] {
            let s = s.cast_to(&DataType::Utf8)?;
            let ScalarValue::Utf8(v) = s else {
                unreachable!("cast to Utf8")
            };
            let b = v.map(|v| folds_to(&v, &lowered));
            return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(b)));
        }
        let values = args.args[0].to_array(args.number_rows)?;
        let out = match values.data_type() {
            DataType::Utf8View => views(&values, &lowered),
            DataType::Utf8 => strings::<i32>(&values, &lowered),
            DataType::LargeUtf8 => strings::<i64>(&values, &lowered),
            _ => strings::<i32>(&cast(&values, &DataType::Utf8)?, &lowered),
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// What `matches_any` holds: the values of one long `in (…)` list.
#[derive(Debug)]
pub enum Patterns {
    /// Text: plain values lower-cased (compared as `=` compares, `lower(f) IN (…)`),
    /// and globs as one anchored, case-insensitive regex set.
    Text {
        lowered: std::collections::HashSet<String>,
        globs: Option<regex::RegexSet>,
    },
    /// Networks (`ip_in_cidr` of each), and plain addresses compared as text.
    Networks {
        table: super::udf::NetworkTable,
        exact: std::collections::HashSet<String>,
    },
}

/// Whether `value`, lower-cased, is in `lowered` (ASCII lowered in `buf`, no allocation).
fn lowered_in(lowered: &std::collections::HashSet<String>, value: &str, buf: &mut String) -> bool {
    if value.is_ascii() {
        buf.clear();
        buf.push_str(value);
        buf.make_ascii_lowercase();
        lowered.contains(buf.as_str())
    } else {
        lowered.contains(&value.to_lowercase())
    }
}

/// `matches_any(f)`: whether `f` matches any value of a long `in (…)` list, in one pass
/// (a hash set, one regex set, one table of networks) rather than one condition per
/// value. The list lives in the function, so planning sees one node, not one literal
/// per value (100,000 literals of an `IN` list took the optimizer seconds). Null for null.
#[derive(Debug)]
pub struct MatchesAny {
    signature: Signature,
    patterns: Patterns,
    /// Of the list's texts: equality and hashing for the planner.
    texts: Vec<String>,
    fingerprint: u64,
}

impl PartialEq for MatchesAny {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint && self.texts == other.texts
    }
}

impl Eq for MatchesAny {}

impl std::hash::Hash for MatchesAny {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.fingerprint.hash(state);
    }
}

/// `value` matched against every pattern of a list at once.
pub fn matches_any(value: Expr, patterns: Patterns, texts: Vec<String>) -> Expr {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for t in &texts {
        h.update(t.as_bytes());
        h.update(&[0]);
    }
    let udf = ScalarUDF::new_from_impl(MatchesAny {
        signature: Signature::any(1, Volatility::Immutable),
        patterns,
        fingerprint: h.digest(),
        texts,
    });
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf), vec![value]))
}

impl ScalarUDFImpl for MatchesAny {
    fn name(&self) -> &str {
        "matches_any"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let values = cast(
            &args.args[0].to_array(args.number_rows)?,
            &DataType::Utf8View,
        )?;
        let values = values.as_string_view();
        let mut buf = String::new();
        let out: BooleanArray = match &self.patterns {
            Patterns::Text { lowered, globs } => values
                .iter()
                .map(|v| {
                    v.map(|v| {
                        lowered_in(lowered, v, &mut buf)
                            || globs.as_ref().is_some_and(|g| g.is_match(v))
                    })
                })
                .collect(),
            Patterns::Networks { table, exact } => values
                .iter()
                .map(|v| {
                    v.map(|v| {
                        exact.contains(v)
                            || v.parse::<std::net::IpAddr>()
                                .is_ok_and(|a| table.contains(&a))
                    })
                })
                .collect(),
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `lower(x) = 'v'` (either way round, `v` lower case) as `eq_fold(x, 'v')`, anywhere
/// in `e`.
pub fn rewrite(e: Expr) -> Result<Transformed<Expr>> {
    e.transform_up(|e| {
        let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) = &e
        else {
            return Ok(Transformed::no(e));
        };
        let (value, text) = match (
            lowered_arg(left),
            crate::archive::provider::literal_text(right),
        ) {
            (Some(v), Some(t)) => (v, t),
            _ => match (
                lowered_arg(right),
                crate::archive::provider::literal_text(left),
            ) {
                (Some(v), Some(t)) => (v, t),
                _ => return Ok(Transformed::no(e)),
            },
        };
        if text.to_lowercase() != text {
            // `lower(x) = 'Ab'` is never true; leave it as written.
            return Ok(Transformed::no(e));
        }
        let call = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(eq_fold_udf()),
            vec![
                value.clone(),
                Expr::Literal(ScalarValue::Utf8(Some(text)), None),
            ],
        ));
        Ok(Transformed::yes(call))
    })
}

/// `x` of `lower(x)`.
fn lowered_arg(e: &Expr) -> Option<&Expr> {
    match e {
        Expr::ScalarFunction(f) if f.args.len() == 1 && f.func.inner().is::<LowerFunc>() => {
            Some(&f.args[0])
        }
        _ => None,
    }
}

/// [`rewrite`] in every filter of a plan (a filter's expression has no output name to
/// keep, unlike a projection's).
#[derive(Debug, Default)]
pub struct FoldEq;

impl OptimizerRule for FoldEq {
    fn name(&self) -> &str {
        "auditq_fold_eq"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        match plan {
            LogicalPlan::Filter(mut f) => {
                let t = rewrite(f.predicate)?;
                f.predicate = t.data;
                Ok(Transformed::new_transformed(
                    LogicalPlan::Filter(f),
                    t.transformed,
                ))
            }
            // The filters pushed to the scan too, or the next pass pushes the rewritten
            // filter beside the original.
            LogicalPlan::TableScan(mut scan) => {
                let mut changed = false;
                let mut filters: Vec<Expr> = Vec::with_capacity(scan.filters.len());
                for f in scan.filters {
                    let t = rewrite(f)?;
                    changed |= t.transformed;
                    if !filters.contains(&t.data) {
                        filters.push(t.data);
                    }
                }
                scan.filters = filters;
                Ok(Transformed::new_transformed(
                    LogicalPlan::TableScan(scan),
                    changed,
                ))
            }
            other => Ok(Transformed::no(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{LargeStringArray, StringArray, StringViewArray};
    use datafusion::arrow::datatypes::Field;
    use datafusion::prelude::{col, lit};

    /// Values whose lower case is tricky: the Kelvin sign lowers to ASCII `k`, `İ` to
    /// two characters, `ẞ` to `ß`; and long values (not inline in a view).
    const VALUES: &[&str] = &[
        "Bob@Example.com",
        "bob@example.com",
        "bob@example.co",
        "\u{212A}im",
        "kim",
        "Kim",
        "İstanbul",
        "i\u{307}stanbul",
        "STRAẞE",
        "straße",
        "a-long-value-beyond-twelve-bytes@example.com",
        "A-LONG-VALUE-BEYOND-TWELVE-BYTES@EXAMPLE.COM",
        "",
    ];

    fn eq_fold(values: ArrayRef, needle: &str) -> Vec<Option<bool>> {
        let n = values.len();
        let args = ScalarFunctionArgs {
            number_rows: n,
            arg_fields: vec![
                Field::new("v", values.data_type().clone(), true).into(),
                Field::new("n", DataType::Utf8, false).into(),
            ],
            args: vec![
                ColumnarValue::Array(values),
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(needle.to_owned()))),
            ],
            return_field: Field::new("f", DataType::Boolean, true).into(),
            config_options: Default::default(),
        };
        let out = eq_fold_udf().invoke_with_args(args).unwrap();
        let ColumnarValue::Array(a) = out else {
            panic!("an array")
        };
        a.as_boolean().iter().collect()
    }

    #[test]
    fn eq_fold_answers_as_lower_does_for_every_string_type() {
        let mut with_null: Vec<Option<&str>> = VALUES.iter().map(|v| Some(*v)).collect();
        with_null.push(None);
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(with_null.clone())),
            Arc::new(LargeStringArray::from(with_null.clone())),
            Arc::new(StringViewArray::from(with_null.clone())),
        ];
        // Every value's own lower case as the needle, and one that nothing lowers to.
        let mut needles: Vec<String> = VALUES.iter().map(|v| v.to_lowercase()).collect();
        needles.push("nobody".into());
        for needle in &needles {
            let want: Vec<Option<bool>> = with_null
                .iter()
                .map(|v| v.map(|v| v.to_lowercase() == *needle))
                .collect();
            for a in &arrays {
                assert_eq!(
                    eq_fold(a.clone(), needle),
                    want,
                    "{needle:?} in {}",
                    a.data_type()
                );
            }
        }
        // ASCII-only data takes the length shortcut: the Kelvin sign must not.
        assert!(folds_to("\u{212A}im", "kim"));
        assert!(!folds_to("KIMM", "kim"));
    }

    #[test]
    fn only_lower_equals_a_lower_case_constant_is_rewritten() {
        let lower = datafusion::functions::expr_fn::lower;
        let e = lower(col("a")).eq(lit("bob"));
        let t = rewrite(e).unwrap();
        assert!(t.transformed);
        assert_eq!(t.data.to_string(), "eq_fold(a, Utf8(\"bob\"))");
        let e = lit("bob").eq(lower(col("a"))).and(col("b").eq(lit("x")));
        assert!(rewrite(e).unwrap().transformed);
        // Never true as written; and not `lower`.
        assert!(!rewrite(lower(col("a")).eq(lit("Bob"))).unwrap().transformed);
        assert!(!rewrite(col("a").eq(lit("bob"))).unwrap().transformed);
        assert!(
            !rewrite(lower(col("a")).not_eq(lit("bob")))
                .unwrap()
                .transformed
        );
    }
}
