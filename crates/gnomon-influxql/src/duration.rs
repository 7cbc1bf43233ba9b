//! Duration literals: parsing `1h30m`-style text and formatting nanoseconds back.

/// Nanoseconds per unit, longest suffix first so `ms` wins over `m`.
const UNITS: &[(&str, i64)] = &[
    ("ns", 1),
    ("ms", 1_000_000),
    ("µ", 1_000),
    ("u", 1_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
    ("w", 604_800_000_000_000),
];

/// Parses one or more `<integer><unit>` fragments (`10s`, `1h30m`, `5µ`) into nanoseconds.
///
/// Returns `None` for anything else, including a missing unit and overflow of `i64`.
pub fn parse_duration(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, per) = UNITS.iter().find(|(u, _)| rest.starts_with(u))?;
        rest = &rest[unit.len()..];
        total = total.checked_add(n.checked_mul(*per)?)?;
    }
    Some(total)
}

/// Formats nanoseconds as an InfluxQL duration literal using the largest unit that divides it
/// exactly (`5400000000000` → `90m`), so that the text parses back to the same value.
pub fn format_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    for (unit, per) in [
        ("w", 604_800_000_000_000i64),
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("u", 1_000),
    ] {
        if ns % per == 0 {
            return format!("{}{unit}", ns / per);
        }
    }
    format!("{ns}ns")
}

/// Formats nanoseconds the way Go's `time.Duration.String` does (`720h0m0s`, `1.5s`, `0s`),
/// which is how InfluxDB reports retention-policy durations.
pub fn format_go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if u < 1_000_000_000 {
        // Sub-second values use the smallest unit that keeps an integer part.
        let (unit, per) = if u < 1_000 {
            ("ns", 1u64)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&format_fraction(u / per, u % per, per));
        out.push_str(unit);
        return out;
    }
    let secs_total = u / 1_000_000_000;
    let frac = u % 1_000_000_000;
    let hours = secs_total / 3600;
    let mins = (secs_total % 3600) / 60;
    let secs = secs_total % 60;
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || mins > 0 {
        out.push_str(&format!("{mins}m"));
    }
    out.push_str(&format_fraction(secs, frac, 1_000_000_000));
    out.push('s');
    out
}

fn format_fraction(int: u64, frac: u64, per: u64) -> String {
    if frac == 0 {
        return int.to_string();
    }
    let width = per.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("1ns"), Some(1));
        assert_eq!(parse_duration("2u"), Some(2_000));
        assert_eq!(parse_duration("2µ"), Some(2_000));
        assert_eq!(parse_duration("3ms"), Some(3_000_000));
        assert_eq!(parse_duration("4s"), Some(4_000_000_000));
        assert_eq!(parse_duration("5m"), Some(300_000_000_000));
        assert_eq!(parse_duration("6h"), Some(21_600_000_000_000));
        assert_eq!(parse_duration("1d"), Some(86_400_000_000_000));
        assert_eq!(parse_duration("1w"), Some(604_800_000_000_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000_000_000));
    }

    #[test]
    fn rejects_bad_durations() {
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("10min"), None);
        assert_eq!(parse_duration("99999999999w"), None);
    }

    #[test]
    fn formats_with_the_largest_exact_unit() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(5_400_000_000_000), "90m");
        assert_eq!(format_duration(604_800_000_000_000), "1w");
        assert_eq!(format_duration(-3_600_000_000_000), "-1h");
        assert_eq!(format_duration(1_500), "1500ns");
        assert_eq!(format_duration(2_000), "2u");
        for ns in [
            1,
            999,
            1_000_000,
            90_061_000_000_000,
            -7,
            i64::MAX,
            i64::MIN + 1,
        ] {
            assert_eq!(
                parse_duration(format_duration(ns).trim_start_matches('-')).map(|v| if ns < 0 {
                    -v
                } else {
                    v
                }),
                Some(ns)
            );
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go_duration(0), "0s");
        assert_eq!(format_go_duration(30 * 86_400_000_000_000), "720h0m0s");
        assert_eq!(format_go_duration(7 * 86_400_000_000_000), "168h0m0s");
        assert_eq!(format_go_duration(90_000_000_000), "1m30s");
        assert_eq!(format_go_duration(1_500_000_000), "1.5s");
        assert_eq!(format_go_duration(1_500_000), "1.5ms");
        assert_eq!(format_go_duration(2_000), "2µs");
        assert_eq!(format_go_duration(5), "5ns");
        assert_eq!(format_go_duration(-60_000_000_000), "-1m0s");
    }
}
