//! Timestamp precision: parsing the `precision` request parameter and converting a line's
//! timestamp to nanoseconds (LINE_PROTOCOL.md §5, API.md §2).

use std::fmt;

/// Unit of the timestamps written in a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Guess the unit of every timestamp from its magnitude (see [`Precision::to_nanos`]).
    /// Only offered by `/api/v3/write_lp`, where it is the default.
    Auto,
    Second,
    Millisecond,
    Microsecond,
    Nanosecond,
}

const NANOS_PER_SECOND: i64 = 1_000_000_000;

impl Precision {
    /// Parses the `precision` parameter of `/api/v3/write_lp`:
    /// `auto`, `second`|`s`, `millisecond`|`ms`, `microsecond`|`us`|`u`, `nanosecond`|`ns`|`n`.
    /// Case-sensitive, like the reference (serde lowercase names plus aliases).
    pub fn parse_v3(s: &str) -> Option<Precision> {
        match s {
            "auto" => Some(Precision::Auto),
            _ => Self::parse_v1(s),
        }
    }

    /// Parses the `precision` parameter of `/write` and `/api/v2/write`: `s`, `ms`, `us`, `u`,
    /// `ns`, `n` and the long lowercase names. `auto` is not accepted there, and neither are
    /// the InfluxDB 1.x units `h` and `m`.
    pub fn parse_v1(s: &str) -> Option<Precision> {
        match s {
            "s" | "second" => Some(Precision::Second),
            "ms" | "millisecond" => Some(Precision::Millisecond),
            "us" | "u" | "microsecond" => Some(Precision::Microsecond),
            "ns" | "n" | "nanosecond" => Some(Precision::Nanosecond),
            _ => None,
        }
    }

    /// The name used in error messages (`Second`, ..., `Auto`).
    pub fn name(self) -> &'static str {
        match self {
            Precision::Auto => "Auto",
            Precision::Second => "Second",
            Precision::Millisecond => "Millisecond",
            Precision::Microsecond => "Microsecond",
            Precision::Nanosecond => "Nanosecond",
        }
    }

    /// The unit a timestamp written with this precision is in. For [`Precision::Auto`] the unit
    /// is guessed per timestamp from `v = |ts| / 1e9` (integer division): `v < 5` seconds,
    /// `v < 5_000` milliseconds, `v < 5_000_000` microseconds, otherwise nanoseconds.
    /// Never returns `Auto`.
    pub fn resolve(self, ts: i64) -> Precision {
        match self {
            Precision::Auto => {
                // `unsigned_abs`: |i64::MIN| is a nanosecond-sized magnitude, as the spec's rule
                // says. (The reference's `i64::abs` wraps to a negative number in release builds
                // and would then call it seconds and report an overflow.)
                let v = ts.unsigned_abs() / NANOS_PER_SECOND as u64;
                if v < 5 {
                    Precision::Second
                } else if v < 5_000 {
                    Precision::Millisecond
                } else if v < 5_000_000 {
                    Precision::Microsecond
                } else {
                    Precision::Nanosecond
                }
            }
            p => p,
        }
    }

    /// Nanoseconds per unit. `Auto` has no single multiplier and yields `None`.
    fn multiplier(self) -> Option<i64> {
        match self {
            Precision::Auto => None,
            Precision::Second => Some(NANOS_PER_SECOND),
            Precision::Millisecond => Some(1_000_000),
            Precision::Microsecond => Some(1_000),
            Precision::Nanosecond => Some(1),
        }
    }

    /// Converts a line's explicit timestamp to nanoseconds since the epoch.
    ///
    /// Overflow of `ts × unit` is an error whose text is the exact line error message:
    /// `timestamp, <ts>, out of range for precision: <name>` where `<name>` is this
    /// precision's [`name`](Precision::name) (so `Auto` when auto-detection was requested).
    pub fn to_nanos(self, ts: i64) -> Result<i64, String> {
        let multiplier = self
            .resolve(ts)
            .multiplier()
            .expect("resolve never returns Auto");
        ts.checked_mul(multiplier).ok_or_else(|| {
            format!(
                "timestamp, {ts}, out of range for precision: {}",
                self.name()
            )
        })
    }

    /// The time given to a line written without a timestamp: `now_ns` truncated down to a
    /// multiple of the unit for `s`/`ms`/`us`; unchanged for `ns` and `auto`.
    ///
    /// Truncation is toward zero, as in the reference: for a real clock (`now_ns >= 0`) that
    /// is rounding down, and unlike flooring it cannot overflow for any input.
    pub fn default_time(self, now_ns: i64) -> i64 {
        match self.multiplier() {
            None | Some(1) => now_ns,
            Some(m) => now_ns / m * m,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
