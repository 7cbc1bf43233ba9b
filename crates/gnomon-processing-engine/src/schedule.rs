//! When schedule triggers fire: cron expressions (seconds first, UTC) and `every:` intervals
//! aligned to the epoch (ENGINE.md §3).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use gnomon_catalog::TriggerSpecification;

#[derive(Debug, Clone)]
pub(crate) enum Schedule {
    Cron(Box<cron::Schedule>),
    Every(Duration),
}

impl Schedule {
    pub(crate) fn parse_cron(expression: &str) -> Result<Self, String> {
        cron::Schedule::from_str(expression.trim())
            .map(|s| Schedule::Cron(Box::new(s)))
            .map_err(|e| format!("invalid cron syntax: {e}"))
    }

    pub(crate) fn of(spec: &TriggerSpecification) -> Option<Result<Self, String>> {
        match spec {
            TriggerSpecification::Schedule { schedule } => Some(Self::parse_cron(schedule)),
            TriggerSpecification::Every { duration } => Some(if duration.is_zero() {
                Err("every: duration must be positive".into())
            } else {
                Ok(Schedule::Every(*duration))
            }),
            _ => None,
        }
    }

    /// The first instant strictly after `after`.
    pub(crate) fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron(schedule) => schedule.after(&after).next(),
            Schedule::Every(duration) => {
                let step = (duration.as_millis() as i64).max(1);
                let now = after.timestamp_millis();
                let next = (now.div_euclid(step) + 1).checked_mul(step)?;
                Utc.timestamp_millis_opt(next).single()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_is_aligned_to_the_epoch() {
        let s = Schedule::Every(Duration::from_secs(10));
        let t = Utc.timestamp_millis_opt(1_000_003_456).unwrap();
        assert_eq!(s.next_after(t).unwrap().timestamp_millis(), 1_000_010_000);
        // Exactly on an instant: the next one, never the same.
        let on = Utc.timestamp_millis_opt(1_000_010_000).unwrap();
        assert_eq!(s.next_after(on).unwrap().timestamp_millis(), 1_000_020_000);
    }

    #[test]
    fn cron_has_a_seconds_field() {
        let s = Schedule::parse_cron("*/5 * * * * *").unwrap();
        let t = Utc.timestamp_opt(1_700_000_001, 0).unwrap();
        assert_eq!(s.next_after(t).unwrap().timestamp(), 1_700_000_005);
        let err = Schedule::parse_cron("* * * *").unwrap_err();
        assert!(err.starts_with("invalid cron syntax"), "{err}");
    }
}
