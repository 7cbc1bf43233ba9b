//! `tz(time[, 'Zone/Name'])`: the same instants, shown in a time zone — InfluxDB 3 Core's way
//! of asking for local timestamps (`AT TIME ZONE` works as well, through DataFusion).
//! Without a zone the result is labelled UTC.

use std::str::FromStr;
use std::sync::Arc;

use arrow::array::timezone::Tz;
use arrow::array::AsArray;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit, TimestampNanosecondType};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

pub fn tz() -> ScalarUDF {
    ScalarUDF::from(TzFunction {
        signature: Signature::one_of(
            vec![
                datafusion::logical_expr::TypeSignature::Any(1),
                datafusion::logical_expr::TypeSignature::Any(2),
            ],
            Volatility::Immutable,
        ),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TzFunction {
    signature: Signature,
}

/// The zone named by the second argument (`UTC` when absent), checked.
fn zone(arg: Option<&ScalarValue>) -> Result<Arc<str>> {
    let name = match arg {
        None => return Ok(Arc::from("UTC")),
        Some(ScalarValue::Utf8(Some(s)))
        | Some(ScalarValue::LargeUtf8(Some(s)))
        | Some(ScalarValue::Utf8View(Some(s))) => s.as_str(),
        Some(other) => {
            return plan_err!(
                "tz: the time zone must be a string literal such as 'Europe/Paris', got {other}"
            )
        }
    };
    match Tz::from_str(name) {
        Ok(_) => Ok(Arc::from(name)),
        Err(_) => plan_err!(
            "tz: unknown time zone '{name}': use an IANA name such as 'America/New_York' or an offset such as '+02:00'"
        ),
    }
}

impl ScalarUDFImpl for TzFunction {
    fn name(&self) -> &str {
        "tz"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        // Decided by `return_field_from_args`, which sees the zone literal.
        Ok(DataType::Timestamp(
            TimeUnit::Nanosecond,
            Some(Arc::from("UTC")),
        ))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        match args.arg_fields.first().map(|f| f.data_type()) {
            Some(DataType::Timestamp(..)) => {}
            Some(other) => {
                return plan_err!("tz: the first argument must be a timestamp, got {other}")
            }
            None => return plan_err!("tz takes a timestamp and an optional time zone"),
        }
        if args.arg_fields.len() == 2 && args.scalar_arguments.get(1).copied().flatten().is_none() {
            return plan_err!("tz: the time zone must be a constant string");
        }
        let zone = zone(args.scalar_arguments.get(1).copied().flatten())?;
        Ok(Arc::new(Field::new(
            self.name(),
            DataType::Timestamp(TimeUnit::Nanosecond, Some(zone)),
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let DataType::Timestamp(_, Some(zone)) = args.return_field.data_type() else {
            return exec_err!(
                "tz: unexpected return type {}",
                args.return_field.data_type()
            );
        };
        let zone = Arc::clone(zone);
        // The same instants with a zone attached — not arrow's cast, which would read a
        // zone-less timestamp as wall-clock time in the zone.
        match &args.args[0] {
            ColumnarValue::Array(a) => {
                let input_zone = match a.data_type() {
                    DataType::Timestamp(_, z) => z.clone(),
                    other => return exec_err!("tz: expected a timestamp, got {other}"),
                };
                let nanos = cast(a, &DataType::Timestamp(TimeUnit::Nanosecond, input_zone))?;
                let nanos = nanos
                    .as_primitive::<TimestampNanosecondType>()
                    .clone()
                    .with_timezone(zone);
                Ok(ColumnarValue::Array(Arc::new(nanos)))
            }
            ColumnarValue::Scalar(s) => {
                let nanos = match s.data_type() {
                    DataType::Timestamp(_, z) => {
                        s.cast_to(&DataType::Timestamp(TimeUnit::Nanosecond, z))?
                    }
                    other => return exec_err!("tz: expected a timestamp, got {other}"),
                };
                let ScalarValue::TimestampNanosecond(v, _) = nanos else {
                    return exec_err!("tz: expected a timestamp");
                };
                Ok(ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(
                    v,
                    Some(zone),
                )))
            }
        }
    }
}
