//! Fuzz-style test: random text (random bytes made valid UTF-8, random Unicode, grammar-heavy
//! soup, mutated valid lines and bodies) must never make the parser panic, and the results
//! must keep their invariants. `FUZZ_CASES` (default 100000) and `FUZZ_SEED` tune it.

mod common;

use common::Rng;
use gnomon_line_protocol::{parse_lines, Precision};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Parses `body` fully and checks the invariants of every result.
fn check(body: &str) {
    let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len() + 1;
    let mut expected_number = 0;
    for result in parse_lines(body) {
        expected_number += 1;
        match result {
            Ok(line) => {
                assert_eq!(line.line_number, expected_number, "{body:?}");
                assert!(!line.measurement.is_empty(), "{body:?}");
                assert!(!line.fields.is_empty(), "{body:?}");
                assert!(line
                    .tags
                    .iter()
                    .all(|(k, v)| !k.is_empty() && !v.is_empty()));
                assert!(range.contains(&(line.raw.as_ptr() as usize)), "{body:?}");
                assert!(!line.raw.contains('\n') || line.raw.contains(['\\', '"']));
                if let Some(ts) = line.timestamp {
                    for p in [
                        Precision::Auto,
                        Precision::Second,
                        Precision::Millisecond,
                        Precision::Microsecond,
                        Precision::Nanosecond,
                    ] {
                        let _ = p.to_nanos(ts);
                        let _ = p.default_time(ts);
                    }
                }
            }
            Err(e) => {
                assert_eq!(e.line_number, expected_number, "{body:?}");
                assert!(!e.message.is_empty());
                assert!(body.contains(e.original_line.as_str()), "{body:?}");
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(env_or("FUZZ_SEED", 1));
    for _ in 0..env_or("FUZZ_CASES", 100_000) {
        let n = rng.below(64);
        // Bias towards ASCII so that the grammar is reached.
        let bytes: Vec<u8> = (0..n)
            .map(|_| {
                let b = rng.next_u64() as u8;
                if rng.chance(3, 4) {
                    b & 0x7f
                } else {
                    b
                }
            })
            .collect();
        check(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn random_unicode_never_panics() {
    let mut rng = Rng::new(env_or("FUZZ_SEED", 2));
    for _ in 0..env_or("FUZZ_CASES", 100_000) {
        let n = rng.below(48);
        let s: String = (0..n)
            .map(|_| match rng.below(4) {
                0 => char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('\u{fffd}'),
                1 => char::from_u32(0x80 + rng.below(0x800) as u32).unwrap_or('é'),
                _ => rng.pick(&[
                    ' ', ',', '=', '"', '\\', '\n', '\t', '#', 'a', '1', 'i', '.',
                ]),
            })
            .collect();
        check(&s);
    }
}

#[test]
fn mutated_and_generated_bodies_never_panic() {
    let mut rng = Rng::new(env_or("FUZZ_SEED", 3));
    for _ in 0..env_or("FUZZ_CASES", 100_000) {
        let body = match rng.below(3) {
            0 => common::mutated(&mut rng),
            1 => common::soup(&mut rng),
            _ => common::body(&mut rng),
        };
        check(&body);
    }
    for case in common::NASTY {
        check(case);
    }
}

#[test]
fn huge_inputs_never_panic() {
    // Long runs of the characters that drive the scanner's loops, and the 64 KiB boundaries.
    for c in [
        " ", "\\", "\\\\", "\"", ",", "=", "\n", "\t", "1", "é", "\\\n", "a=\"",
    ] {
        let run = c.repeat(70_000);
        check(&run);
        check(&format!("m {run}"));
        check(&format!("m,{run}"));
        check(&format!("m f={run}"));
        check(&format!("m f=\"{run}"));
        check(&format!("m f=1 {run}"));
    }
    check(&format!("m f={}i", "9".repeat(100_000)));
    check(&format!("m f=1 {}", "9".repeat(100_000)));
    check(&format!("m f={}", "9".repeat(100_000)));
    check(&format!(
        "m f=1.{}e{}",
        "9".repeat(50_000),
        "9".repeat(50_000)
    ));
}

#[test]
fn precision_never_panics() {
    let mut rng = Rng::new(env_or("FUZZ_SEED", 4));
    let mut values = vec![i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX, i64::MAX - 1];
    values.extend((0..100_000).map(|_| rng.next_u64() as i64 >> rng.below(64)));
    for ts in values {
        for p in [
            Precision::Auto,
            Precision::Second,
            Precision::Millisecond,
            Precision::Microsecond,
            Precision::Nanosecond,
        ] {
            if let Ok(ns) = p.to_nanos(ts) {
                assert_eq!(ns / p.resolve(ts).to_nanos(1).unwrap(), ts);
            }
            let t = p.default_time(ts);
            assert!(t.unsigned_abs() <= ts.unsigned_abs() && (t == 0 || t.signum() == ts.signum()));
        }
    }
}
