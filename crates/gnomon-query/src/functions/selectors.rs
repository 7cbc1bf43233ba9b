//! `selector_first`, `selector_last`, `selector_min` and `selector_max`: aggregates that pick
//! one point of a group and return both its value and its time, as InfluxDB 3 Core's
//! selectors do — `selector_max(usage, time)['time']` answers "when was the peak".
//!
//! Each returns a struct `{value, time}`. Rows whose value or time is null are skipped.
//! `first`/`last` pick the earliest/latest time; `min`/`max` the smallest/largest value, the
//! earliest time among equal values.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::make_comparator;
use arrow::array::{Array, ArrayRef, AsArray, StructArray};
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Field, Fields, TimeUnit, TimestampNanosecondType};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

/// Which point of the group a selector keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Selection {
    First,
    Last,
    Min,
    Max,
}

impl Selection {
    fn name(self) -> &'static str {
        match self {
            Selection::First => "selector_first",
            Selection::Last => "selector_last",
            Selection::Min => "selector_min",
            Selection::Max => "selector_max",
        }
    }

    /// Whether a candidate `(value, time)` replaces the current pick, given how the candidate's
    /// value compares with the pick's (`value_cmp`) and the two times.
    fn replaces(self, value_cmp: Ordering, time: i64, current_time: i64) -> bool {
        match self {
            Selection::First => time < current_time,
            Selection::Last => time > current_time,
            Selection::Min => value_cmp.then(time.cmp(&current_time)) == Ordering::Less,
            Selection::Max => {
                value_cmp == Ordering::Greater
                    || (value_cmp == Ordering::Equal && time < current_time)
            }
        }
    }

    /// Whether picking needs value comparisons at all.
    fn compares_values(self) -> bool {
        matches!(self, Selection::Min | Selection::Max)
    }
}

/// All four selectors.
pub fn all() -> Vec<AggregateUDF> {
    [
        Selection::First,
        Selection::Last,
        Selection::Min,
        Selection::Max,
    ]
    .into_iter()
    .map(|s| AggregateUDF::from(Selector::new(s)))
    .collect()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Selector {
    selection: Selection,
    signature: Signature,
}

impl Selector {
    fn new(selection: Selection) -> Self {
        Self {
            selection,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

/// The struct a selector returns.
fn output_fields(value_type: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("value", value_type.clone(), true),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
    ])
}

impl AggregateUDFImpl for Selector {
    fn name(&self) -> &str {
        self.selection.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [value, DataType::Timestamp(TimeUnit::Nanosecond, _)] => {
                if self.selection.compares_values() && !comparable(value) {
                    return plan_err!(
                        "{} does not support values of type {value}",
                        self.selection.name()
                    );
                }
                Ok(DataType::Struct(output_fields(value)))
            }
            [_, other] => plan_err!(
                "{}: the second argument must be a timestamp such as the `time` column, got {other}",
                self.selection.name()
            ),
            _ => plan_err!(
                "{} takes two arguments: a value and its time, e.g. {}(usage, time)",
                self.selection.name(),
                self.selection.name()
            ),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let DataType::Struct(fields) = args.return_field.data_type() else {
            return plan_err!("{}: unexpected return type", self.selection.name());
        };
        let value_type = fields[0].data_type().clone();
        Ok(Box::new(SelectorAccumulator {
            selection: self.selection,
            value: ScalarValue::try_from(&value_type)?,
            time: None,
            value_type,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<arrow::datatypes::FieldRef>> {
        let DataType::Struct(fields) = args.return_field.data_type() else {
            return plan_err!("{}: unexpected return type", self.selection.name());
        };
        Ok(fields
            .iter()
            .map(|f| {
                Arc::new(Field::new(
                    format!("{}[{}]", args.name, f.name()),
                    f.data_type().clone(),
                    true,
                ))
            })
            .collect())
    }
}

/// Types whose values can be ordered for `min`/`max`.
fn comparable(t: &DataType) -> bool {
    t.is_numeric()
        || matches!(
            t,
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Boolean
                | DataType::Timestamp(..)
        )
        || matches!(t, DataType::Dictionary(_, v) if comparable(v))
}

#[derive(Debug)]
struct SelectorAccumulator {
    selection: Selection,
    value_type: DataType,
    /// The pick so far (null until `time` is set).
    value: ScalarValue,
    time: Option<i64>,
}

impl SelectorAccumulator {
    /// Considers every row of `values`/`times` (both the input and the merged states have
    /// this shape).
    fn consider(&mut self, values: &ArrayRef, times: &ArrayRef) -> Result<()> {
        let times = times.as_primitive::<TimestampNanosecondType>();
        let value_order = if self.selection.compares_values() {
            Some(make_comparator(
                values.as_ref(),
                values.as_ref(),
                SortOptions::default(),
            )?)
        } else {
            None
        };
        // The best row of this batch first: one ScalarValue per batch, not per row.
        let mut best: Option<usize> = None;
        for row in 0..values.len() {
            if values.is_null(row) || times.is_null(row) {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => {
                    let cmp = value_order
                        .as_ref()
                        .map_or(Ordering::Equal, |order| order(row, b));
                    self.selection
                        .replaces(cmp, times.value(row), times.value(b))
                }
            };
            if better {
                best = Some(row);
            }
        }
        let Some(row) = best else { return Ok(()) };
        let candidate = ScalarValue::try_from_array(values, row)?;
        let candidate_time = times.value(row);
        let better = match self.time {
            None => true,
            Some(current_time) => {
                let cmp = if self.selection.compares_values() {
                    candidate
                        .partial_cmp(&self.value)
                        .unwrap_or(Ordering::Equal)
                } else {
                    Ordering::Equal
                };
                self.selection.replaces(cmp, candidate_time, current_time)
            }
        };
        if better {
            self.value = candidate;
            self.time = Some(candidate_time);
        }
        Ok(())
    }
}

impl Accumulator for SelectorAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.consider(&values[0], &values[1])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.consider(&states[0], &states[1])
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            self.value.clone(),
            ScalarValue::TimestampNanosecond(self.time, None),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let value = self.value.to_array()?;
        let time = ScalarValue::TimestampNanosecond(self.time, None).to_array()?;
        let array = StructArray::try_new(output_fields(&self.value_type), vec![value, time], None)?;
        Ok(ScalarValue::Struct(Arc::new(array)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.value.size() - std::mem::size_of_val(&self.value)
    }
}
