//! Oracle test: this parser against `influxdb-line-protocol` 2.0.0 (crates.io), the reference
//! server's own parser, on generated and hand-written bodies.
//!
//! Both must agree, line by line, on the number of lines, on accept/reject, and on every
//! parsed value (measurement, tags, fields with float bit-equality, timestamp). Error messages
//! are compared too; the crates.io release is older than the parser inside the reference
//! server that LINE_PROTOCOL.md describes, so its messages differ in ways listed in
//! [`equivalent_message`], which checks that the *content* still agrees.
//!
//! Deliberate differences, filtered explicitly (each is counted and reported):
//! * duplicate tag keys: rejected here (`Must not contain duplicate tags, ...`), accepted by
//!   the reference (which then corrupts data; LINE_PROTOCOL.md §6);
//! * elements over 65,536 bytes: `String is greater than 64KB` here, as in the reference
//!   server (LINE_PROTOCOL.md §3); crates.io 2.0.0 predates that limit.
//!
//! `ORACLE_CASES` (default 60000) sets the number of generated bodies; `ORACLE_SEED` the seed.

mod common;

use common::Rng;
use gnomon_line_protocol::{self as ours, FieldValue, ParseError};
use influxdb_line_protocol::{self as reference, Error as RefError, FieldValue as RefValue};

const DUPLICATE_TAGS: &str = "Must not contain duplicate tags, but `";
const TOO_LARGE: &str = "String is greater than 64KB";

#[derive(Default, Debug)]
struct Stats {
    bodies: usize,
    lines: usize,
    both_accepted: usize,
    both_rejected: usize,
    message_exact: usize,
    message_equivalent: usize,
    /// Of `message_equivalent`: 2.0.0's `'…'` value quoting vs the server's backticks.
    equivalent_value_quoting: usize,
    /// Of `message_equivalent`: trailing content quoted whole vs the 10-character rule.
    equivalent_trailing_context: usize,
    /// Of `message_equivalent`: `Tag Set Malformed` vs the specific tag-set messages.
    equivalent_tag_set: usize,
    /// Of `message_equivalent`: generic nom error vs the specific tag / space messages.
    equivalent_generic: usize,
    deliberate_duplicate_tags: usize,
    deliberate_too_large: usize,
}

fn compare_body(body: &str, stats: &mut Stats) -> Result<(), String> {
    stats.bodies += 1;
    let mine: Vec<_> = ours::parse_lines(body).collect();
    let theirs: Vec<_> = reference::parse_lines(body).collect();
    if mine.len() != theirs.len() {
        return Err(format!(
            "line count differs: ours {} reference {}",
            mine.len(),
            theirs.len()
        ));
    }
    for (i, (m, t)) in mine.iter().zip(&theirs).enumerate() {
        stats.lines += 1;
        let n = i + 1;
        match (m, t) {
            (Ok(m), Ok(t)) => {
                stats.both_accepted += 1;
                if m.line_number != n {
                    return Err(format!("line {n}: line_number {}", m.line_number));
                }
                compare_values(m, t).map_err(|e| format!("line {n}: {e}"))?;
            }
            (Err(m), Err(t)) => {
                stats.both_rejected += 1;
                if m.line_number != n {
                    return Err(format!("line {n}: error line_number {}", m.line_number));
                }
                let theirs_text = t.to_string();
                if m.message == theirs_text {
                    stats.message_exact += 1;
                } else if m.message == TOO_LARGE {
                    // The reference rejected the line for something the 64 KiB check (which
                    // it lacks) comes before.
                    stats.deliberate_too_large += 1;
                } else if equivalent_message(&m.message, t) {
                    stats.message_equivalent += 1;
                    match t {
                        RefError::CannotParseEntireLine { .. } => {
                            stats.equivalent_trailing_context += 1
                        }
                        RefError::TagSetMalformed => stats.equivalent_tag_set += 1,
                        RefError::GenericParsingError { .. } => stats.equivalent_generic += 1,
                        _ => stats.equivalent_value_quoting += 1,
                    }
                } else {
                    return Err(format!(
                        "line {n}: messages differ:\n  ours:      {:?}\n  reference: {theirs_text:?} ({t:?})",
                        m.message
                    ));
                }
            }
            (Err(m), Ok(t)) if m.message.starts_with(DUPLICATE_TAGS) => {
                let keys: Vec<&str> = t
                    .series
                    .tag_set
                    .iter()
                    .flatten()
                    .map(|(k, _)| k.as_str())
                    .collect();
                let repeated = (1..keys.len()).any(|j| keys[..j].contains(&keys[j]));
                if !repeated {
                    return Err(format!("line {n}: duplicate-tag error but no duplicate"));
                }
                stats.deliberate_duplicate_tags += 1;
            }
            (Err(m), Ok(t)) if m.message == TOO_LARGE => {
                if !has_oversized_element(t) {
                    return Err(format!("line {n}: 64KB error but nothing that large"));
                }
                stats.deliberate_too_large += 1;
            }
            (Err(m), Ok(t)) => {
                return Err(format!(
                    "line {n}: we reject ({:?}), reference accepts {t:?}",
                    m.message
                ))
            }
            (Ok(m), Err(t)) => {
                return Err(format!(
                    "line {n}: we accept {m:?}, reference rejects ({t})"
                ))
            }
        }
    }
    Ok(())
}

fn has_oversized_element(t: &reference::ParsedLine<'_>) -> bool {
    let big = |s: &str| s.len() > ours::MAX_ELEMENT_LEN;
    big(&t.series.measurement)
        || t.series
            .tag_set
            .iter()
            .flatten()
            .any(|(k, v)| big(k) || big(v))
        || t.field_set
            .iter()
            .any(|(k, v)| big(k) || matches!(v, RefValue::String(s) if big(s)))
}

fn compare_values(m: &ours::Line<'_>, t: &reference::ParsedLine<'_>) -> Result<(), String> {
    if m.measurement != t.series.measurement.as_str() {
        return Err(format!(
            "measurement {:?} vs {:?}",
            m.measurement, t.series.measurement
        ));
    }
    let their_tags: Vec<(&str, &str)> = t
        .series
        .tag_set
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let my_tags: Vec<(&str, &str)> = m.tags.iter().map(|(k, v)| (&**k, &**v)).collect();
    if my_tags != their_tags {
        return Err(format!("tags {my_tags:?} vs {their_tags:?}"));
    }
    if m.fields.len() != t.field_set.len() {
        return Err(format!("fields {:?} vs {:?}", m.fields, t.field_set));
    }
    for ((mk, mv), (tk, tv)) in m.fields.iter().zip(&t.field_set) {
        if mk != tk.as_str() {
            return Err(format!("field key {mk:?} vs {tk:?}"));
        }
        let same = match (mv, tv) {
            (FieldValue::Integer(a), RefValue::I64(b)) => a == b,
            (FieldValue::UInteger(a), RefValue::U64(b)) => a == b,
            // Bit equality: distinguishes -0.0 from 0.0; the grammar admits no NaN.
            (FieldValue::Float(a), RefValue::F64(b)) => a.to_bits() == b.to_bits() && !a.is_nan(),
            (FieldValue::String(a), RefValue::String(b)) => a == b.as_str(),
            (FieldValue::Boolean(a), RefValue::Boolean(b)) => a == b,
            _ => false,
        };
        if !same {
            return Err(format!("field {mk:?}: {mv:?} vs {tv:?}"));
        }
    }
    if m.timestamp != t.timestamp {
        return Err(format!("timestamp {:?} vs {:?}", m.timestamp, t.timestamp));
    }
    Ok(())
}

/// Messages of crates.io 2.0.0 that differ in form from the reference server's, and the rule
/// that makes them correspond:
/// * values are quoted `'…'` there and `` `…` `` in the server;
/// * trailing content is quoted whole there; the server applies the 10-character rule;
/// * tag-set errors: 2.0.0 says `Tag Set Malformed` when the first tag fails, and a generic
///   nom error when a later tag fails or the space after the series is missing; the server
///   has the specific `Expected tag key/value`, `Tag set malformed: could not find equals
///   sign`, and `Expected at least one space character` messages.
fn equivalent_message(mine: &str, theirs: &RefError) -> bool {
    let tag_or_space = |m: &str| {
        m.starts_with("Expected tag key, got ")
            || m.starts_with("Expected tag value, got ")
            || m.starts_with("Tag set malformed: could not find equals sign in `")
            || m.starts_with("Expected at least one space character, got ")
    };
    match theirs {
        RefError::CannotParseEntireLine { trailing_content } => {
            mine == ParseError::TrailingContent(ParseError::context(trailing_content)).to_string()
        }
        RefError::IntegerValueInvalid { value, .. } => {
            mine == ParseError::IntegerValueInvalid(value.clone()).to_string()
        }
        RefError::UIntegerValueInvalid { value, .. } => {
            mine == ParseError::UIntegerValueInvalid(value.clone()).to_string()
        }
        RefError::TimestampValueInvalid { value, .. } => {
            mine == ParseError::TimestampValueInvalid(value.clone()).to_string()
        }
        RefError::TagSetMalformed => {
            mine.starts_with("Expected tag key, got ")
                || mine.starts_with("Expected tag value, got ")
                || mine.starts_with("Tag set malformed: could not find equals sign in `")
        }
        RefError::GenericParsingError { .. } => tag_or_space(mine),
        _ => false,
    }
}

fn run(label: &str, bodies: impl Iterator<Item = String>, stats: &mut Stats) {
    let mut failures = Vec::new();
    for body in bodies {
        if let Err(e) = compare_body(&body, stats) {
            failures.push(format!("{label}: body {body:?}\n  {e}"));
        }
    }
    if !failures.is_empty() {
        let n = failures.len();
        failures.truncate(20);
        panic!("{n} disagreements, first ones:\n{}", failures.join("\n"));
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn hand_written_cases_agree() {
    let mut stats = Stats::default();
    let mut bodies: Vec<String> = common::NASTY.iter().map(|s| s.to_string()).collect();
    // Each case also as part of a multi-line body with blank/comment lines and CRLF.
    bodies.push(common::NASTY.join("\n"));
    bodies.push(common::NASTY.join("\n\n# c\n"));
    bodies.push(common::NASTY.join("\r\n"));
    // Around the 64 KiB limit, for every element kind.
    let max = "x".repeat(ours::MAX_ELEMENT_LEN);
    let over = "x".repeat(ours::MAX_ELEMENT_LEN + 1);
    for s in [&max, &over] {
        bodies.push(format!("{s} f=1"));
        bodies.push(format!("m,{s}=v f=1"));
        bodies.push(format!("m,t={s} f=1"));
        bodies.push(format!("m {s}=1"));
        bodies.push(format!("m f=\"{s}\""));
        bodies.push(format!("m f=\"{s}\" x"));
    }
    bodies.push(format!("{} f=1", "\\,".repeat(ours::MAX_ELEMENT_LEN)));
    run("hand-written", bodies.into_iter(), &mut stats);
    eprintln!("hand-written: {stats:#?}");
    assert!(stats.both_accepted > 50 && stats.both_rejected > 50);
    assert!(stats.deliberate_duplicate_tags >= 1 && stats.deliberate_too_large >= 5);
}

#[test]
fn generated_bodies_agree() {
    let cases = env_or("ORACLE_CASES", 60_000);
    let seed = env_or("ORACLE_SEED", 0x006e_6f6d_6f6e);
    let mut rng = Rng::new(seed);
    let mut stats = Stats::default();
    let bodies = (0..cases).map(|_| common::body(&mut rng));
    run("generated", bodies, &mut stats);
    eprintln!("generated (seed {seed:#x}): {stats:#?}");
    // The generator must exercise both outcomes and the deliberate differences.
    assert!(stats.both_accepted > cases as usize / 10, "{stats:?}");
    assert!(stats.both_rejected > cases as usize / 10, "{stats:?}");
    assert!(stats.deliberate_duplicate_tags > 0, "{stats:?}");
}

#[test]
fn generated_lines_one_per_body_agree() {
    // Single lines without surrounding noise: a bigger share of them parses, so this checks
    // values more than messages.
    let cases = env_or("ORACLE_CASES", 60_000);
    let mut rng = Rng::new(env_or("ORACLE_SEED", 0x006e_6f6d_6f6e) ^ 0xabcdef);
    let mut stats = Stats::default();
    let bodies = (0..cases).map(|_| common::line(&mut rng));
    run("single lines", bodies, &mut stats);
    eprintln!("single lines: {stats:#?}");
}
