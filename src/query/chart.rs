//! `timechart` fills its range: every bucket from the start of the query's time range (or
//! the archive's first event) to its end (or the archive's last event) gets a row, with 0
//! (counts) or null (other aggregates) where nothing happened, as Splunk's `timechart`
//! and Kusto's `make-series` do. A chart with gaps draws a lie.
//!
//! In the plan, after the aggregate `(time, [key], value)`:
//!
//! ```text
//! aggregate by [key]: array_agg(time) as time, array_agg(value) as value
//! project [key], bucket_times(time, value, …) as time, bucket_values(time, value, …) as value
//! unnest time, value              (the two lists have the same length: zipped)
//! sort time, [key]
//! ```
//!
//! The aggregate is computed once; the fill is two functions over its (small) output.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, ListArray, Scalar, TimestampMicrosecondArray, UInt32Array,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::{cast, is_not_null, take};
use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::lit;

/// At most this many buckets in a chart's range.
pub const MAX_BUCKETS: i64 = 100_000;

/// The bucket grid: `n` buckets of `step` µs from `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub first: i64,
    pub step: i64,
    pub n: i64,
}

impl Grid {
    /// The buckets covering `[start, end)`, aligned to multiples of `step` since the
    /// epoch (as `date_bin` aligns them).
    pub fn covering(start: i64, end: i64, step: i64) -> Grid {
        let first = start.div_euclid(step) * step;
        let n = if end > first {
            (end - first + step - 1) / step
        } else {
            0
        };
        Grid { first, step, n }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Part {
    Times,
    Values,
}

/// `bucket_times(times, values, first, step, n, default)` / `bucket_values(…)`: one row's
/// aggregated `(time, value)` pairs spread over the grid. Both functions use the same
/// grid — widened for a row whose times fall outside it, so no value is ever dropped —
/// so their lists have the same length and unnest side by side.
#[derive(Debug, PartialEq, Eq, Hash)]
struct BucketFill {
    part: Part,
    signature: Signature,
}

fn scalar_i64(arg: &ColumnarValue, name: &str) -> Result<i64> {
    match arg {
        ColumnarValue::Scalar(ScalarValue::Int64(Some(v))) => Ok(*v),
        _ => exec_err!("{name}: the grid must be constant integers"),
    }
}

fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

impl ScalarUDFImpl for BucketFill {
    fn name(&self) -> &str {
        match self.part {
            Part::Times => "bucket_times",
            Part::Values => "bucket_values",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let item = match self.part {
            Part::Times => time_type(),
            Part::Values => match &args[1] {
                DataType::List(f) => f.data_type().clone(),
                other => return exec_err!("bucket_values: expects a list, not {other}"),
            },
        };
        Ok(DataType::new_list(item, true))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let grid = Grid {
            first: scalar_i64(&args.args[2], name)?,
            step: scalar_i64(&args.args[3], name)?,
            n: scalar_i64(&args.args[4], name)?,
        };
        if grid.step <= 0 {
            return exec_err!("{name}: the step must be positive");
        }
        let times = args.args[0].to_array(args.number_rows)?;
        let values = args.args[1].to_array(args.number_rows)?;
        let (Some(times), Some(values)) = (times.as_list_opt::<i32>(), values.as_list_opt::<i32>())
        else {
            return exec_err!("{name}: expects lists");
        };
        let t = cast(
            times.values(),
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?;
        let t = t.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
        let (t_off, v_off) = (times.value_offsets(), values.value_offsets());
        let mut offsets = vec![0i32];
        let mut out_times: Vec<i64> = Vec::new();
        // For each output slot, the index into `values.values()` (null: nothing there).
        let mut picks: Vec<Option<u32>> = Vec::new();
        for row in 0..times.len() {
            let (a, b) = (t_off[row] as usize, t_off[row + 1] as usize);
            let v0 = v_off[row] as usize;
            let mut lo = grid.first;
            let mut hi = grid.first + grid.n * grid.step;
            for k in a..b {
                if t.is_valid(k) {
                    let bucket = t.value(k).div_euclid(grid.step) * grid.step;
                    lo = lo.min(bucket);
                    hi = hi.max(bucket + grid.step);
                }
            }
            let count = ((hi - lo) / grid.step).max(0) as usize;
            let base = picks.len();
            picks.resize(base + count, None);
            out_times.extend((0..count as i64).map(|i| lo + i * grid.step));
            for k in a..b {
                if t.is_valid(k) {
                    let slot = ((t.value(k) - lo).div_euclid(grid.step)) as usize;
                    picks[base + slot] = Some((v0 + (k - a)) as u32);
                }
            }
            offsets.push(picks.len() as i32);
        }
        let items: ArrayRef = match self.part {
            Part::Times => {
                Arc::new(TimestampMicrosecondArray::from(out_times).with_timezone("UTC"))
            }
            Part::Values => {
                let taken = take(values.values().as_ref(), &UInt32Array::from(picks), None)?;
                match &args.args[5] {
                    ColumnarValue::Scalar(d) if !d.is_null() => {
                        let d = d.cast_to(taken.data_type())?.to_array_of_size(1)?;
                        datafusion::arrow::compute::kernels::zip::zip(
                            &is_not_null(&taken)?,
                            &taken,
                            &Scalar::new(d),
                        )?
                    }
                    _ => taken,
                }
            }
        };
        let field = Arc::new(Field::new_list_field(items.data_type().clone(), true));
        let list = ListArray::try_new(field, OffsetBuffer::new(offsets.into()), items, None)?;
        Ok(ColumnarValue::Array(Arc::new(list)))
    }
}

fn udf(part: Part) -> ScalarUDF {
    ScalarUDF::new_from_impl(BucketFill {
        part,
        signature: Signature::any(6, Volatility::Immutable),
    })
}

pub fn bucket_times_udf() -> ScalarUDF {
    udf(Part::Times)
}

pub fn bucket_values_udf() -> ScalarUDF {
    udf(Part::Values)
}

/// `bucket_times(…)` or `bucket_values(…)` over the aggregated lists.
pub fn filled(values_part: bool, times: Expr, values: Expr, grid: Grid, default: Expr) -> Expr {
    let f = if values_part {
        bucket_values_udf()
    } else {
        bucket_times_udf()
    };
    f.call(vec![
        times,
        values,
        lit(grid.first),
        lit(grid.step),
        lit(grid.n),
        default,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::ListBuilder;
    use datafusion::arrow::array::builder::{Int64Builder, TimestampMicrosecondBuilder};
    use datafusion::config::ConfigOptions;

    fn call(
        part: Part,
        times: Vec<i64>,
        values: Vec<i64>,
        grid: Grid,
        default: ScalarValue,
    ) -> ListArray {
        let mut tb = ListBuilder::new(TimestampMicrosecondBuilder::new());
        tb.values().append_slice(&times);
        tb.append(true);
        let mut vb = ListBuilder::new(Int64Builder::new());
        vb.values().append_slice(&values);
        vb.append(true);
        let (t, v) = (tb.finish(), vb.finish());
        let f = udf(part);
        let arg_fields = vec![
            Arc::new(Field::new("t", t.data_type().clone(), true)),
            Arc::new(Field::new("v", v.data_type().clone(), true)),
        ];
        let ret = f
            .return_type(&[t.data_type().clone(), v.data_type().clone()])
            .unwrap();
        let out = f
            .invoke_with_args(ScalarFunctionArgs {
                args: vec![
                    ColumnarValue::Array(Arc::new(t)),
                    ColumnarValue::Array(Arc::new(v)),
                    ColumnarValue::Scalar(ScalarValue::Int64(Some(grid.first))),
                    ColumnarValue::Scalar(ScalarValue::Int64(Some(grid.step))),
                    ColumnarValue::Scalar(ScalarValue::Int64(Some(grid.n))),
                    ColumnarValue::Scalar(default),
                ],
                arg_fields,
                number_rows: 1,
                return_field: Arc::new(Field::new("r", ret, true)),
                config_options: Arc::new(ConfigOptions::default()),
            })
            .unwrap();
        let ColumnarValue::Array(a) = out else {
            panic!("an array")
        };
        a.as_list::<i32>().clone()
    }

    #[test]
    fn the_grid_covers_the_range() {
        assert_eq!(
            Grid::covering(25, 100, 10),
            Grid {
                first: 20,
                step: 10,
                n: 8
            }
        );
        assert_eq!(
            Grid::covering(-5, 10, 10),
            Grid {
                first: -10,
                step: 10,
                n: 2
            }
        );
        assert_eq!(Grid::covering(10, 10, 10).n, 0);
    }

    #[test]
    fn empty_buckets_get_the_default_and_nothing_is_dropped() {
        let grid = Grid {
            first: 0,
            step: 10,
            n: 4,
        };
        let v = call(
            Part::Values,
            vec![30, 10],
            vec![3, 1],
            grid,
            ScalarValue::Int64(Some(0)),
        );
        let got = v.value(0);
        let got = got.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        assert_eq!(got.values().to_vec(), vec![0, 1, 0, 3]);
        // A value outside the grid widens it (for this row) rather than vanish.
        let v = call(
            Part::Values,
            vec![50],
            vec![7],
            grid,
            ScalarValue::Int64(None),
        );
        let got = v.value(0);
        let got = got.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        assert_eq!(got.len(), 6);
        assert_eq!(got.null_count(), 5);
        assert_eq!(got.value(5), 7);
        let t = call(
            Part::Times,
            vec![50],
            vec![7],
            grid,
            ScalarValue::Int64(None),
        );
        let times = t.value(0);
        let times = times.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(times.values().to_vec(), vec![0, 10, 20, 30, 40, 50]);
    }
}
