//! Unit tests: every row of LINE_PROTOCOL.md §9 and the rules of §1–§5, with exact messages.

use std::borrow::Cow;

use super::*;

/// Parses a body that must hold exactly one line, which must be accepted.
#[track_caller]
fn ok(body: &str) -> Line<'_> {
    let mut all: Vec<_> = parse_lines(body).collect();
    assert_eq!(all.len(), 1, "expected one line in {body:?}, got {all:?}");
    match all.pop().unwrap() {
        Ok(line) => line,
        Err(e) => panic!("{body:?} was rejected: {}", e.message),
    }
}

/// Parses a body that must hold exactly one line, which must be rejected; returns the message.
#[track_caller]
fn err(body: &str) -> String {
    let mut all: Vec<_> = parse_lines(body).collect();
    assert_eq!(all.len(), 1, "expected one line in {body:?}, got {all:?}");
    match all.pop().unwrap() {
        Ok(line) => panic!("{body:?} was accepted: {line:?}"),
        Err(e) => e.message,
    }
}

fn trailing(content: &str) -> String {
    format!("Could not parse entire line. Found trailing content: `{content}`")
}

const NO_FIELDS: &str = "No fields were provided";
const ENDS_WITH_BACKSLASH: &str =
    "Measurements, tag keys and values, and field keys may not end with a backslash";
const TOO_LARGE: &str = "String is greater than 64KB";

fn tags<'a>(line: &'a Line<'_>) -> Vec<(&'a str, &'a str)> {
    line.tags
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect()
}

fn field_keys<'a>(line: &'a Line<'_>) -> Vec<&'a str> {
    line.fields.iter().map(|(k, _)| k.as_ref()).collect()
}

// ---------------------------------------------------------------- §9, row by row

#[test]
fn s9_bare_number_is_float_and_time_is_now() {
    let l = ok("m f=1");
    assert_eq!(l.measurement, "m");
    assert_eq!(l.fields, vec![(Cow::Borrowed("f"), FieldValue::Float(1.0))]);
    assert_eq!(l.timestamp, None);
    let now = 1_700_000_000_123_456_789;
    assert_eq!(Precision::Auto.default_time(now), now);
    assert_eq!(Precision::Nanosecond.default_time(now), now);
}

#[test]
fn s9_integer_and_unsigned_suffixes() {
    assert_eq!(ok("m f=1i").fields[0].1, FieldValue::Integer(1));
    assert_eq!(ok("m f=1u").fields[0].1, FieldValue::UInteger(1));
}

#[test]
fn s9_small_timestamp_is_seconds_with_auto() {
    let l = ok("m f=1 123");
    assert_eq!(l.timestamp, Some(123));
    assert_eq!(Precision::Auto.to_nanos(123), Ok(123_000_000_000));
}

#[test]
fn s9_small_timestamp_with_precision_ns() {
    let ts = ok("m f=1 123").timestamp.unwrap();
    assert_eq!(Precision::Nanosecond.to_nanos(ts), Ok(123));
}

#[test]
fn s9_negative_timestamp_accepted() {
    let ts = ok("m f=1 -1").timestamp.unwrap();
    assert_eq!(ts, -1);
    assert_eq!(Precision::Nanosecond.to_nanos(ts), Ok(-1));
    assert_eq!(Precision::Auto.to_nanos(ts), Ok(-1_000_000_000));
    assert_eq!(Precision::Second.to_nanos(ts), Ok(-1_000_000_000));
}

#[test]
fn s9_decimal_timestamp() {
    assert_eq!(err("m f=1 1.0"), trailing(".0"));
}

#[test]
fn s9_two_timestamps() {
    assert_eq!(err("m f=1 1 2"), trailing("2"));
}

#[test]
fn s9_trailing_space_without_timestamp() {
    assert_eq!(err("m f=1 "), trailing(" "));
}

#[test]
fn s9_trailing_spaces_after_timestamp() {
    assert_eq!(ok("m f=1 123   ").timestamp, Some(123));
}

#[test]
fn s9_multiple_spaces_and_leading_trailing_blanks() {
    let l = ok("  measurement  a=1i  123  ");
    assert_eq!(l.measurement, "measurement");
    assert_eq!(l.fields[0].1, FieldValue::Integer(1));
    assert_eq!(l.timestamp, Some(123));
    assert_eq!(l.raw, "  measurement  a=1i  123  ");
}

#[test]
fn s9_tab_is_no_separator() {
    assert_eq!(
        err("m\tf=1"),
        "Expected at least one space character, got `\tf=1`"
    );
}

#[test]
fn s9_crlf_body() {
    assert_eq!(err("m f=1\r"), trailing("\r"));
    let all: Vec<_> = parse_lines("m f=1\r\nm g=2\r\n").collect();
    assert_eq!(all.len(), 2);
    for (i, r) in all.iter().enumerate() {
        let e = r.as_ref().unwrap_err();
        assert_eq!(e.message, trailing("\r"));
        assert_eq!(e.line_number, i + 1);
    }
    // The shown line loses the `\r` of its `\r\n`, as in the reference.
    assert_eq!(all[0].as_ref().unwrap_err().original_line, "m f=1");
    // A line of just `\r`: `\r` is a measurement character, then nothing follows.
    assert_eq!(
        err("\r"),
        "Expected at least one space character, got end of input"
    );
}

#[test]
fn s9_measurement_only() {
    assert_eq!(
        err("m"),
        "Expected at least one space character, got end of input"
    );
}

#[test]
fn s9_no_fields() {
    for body in ["foo 1234", "m f= 1", "m f=.5", "m f=NaN"] {
        assert_eq!(err(body), NO_FIELDS, "{body}");
    }
}

#[test]
fn s9_empty_measurement() {
    assert_eq!(err(",t=1 f=1"), "Invalid measurement was provided");
}

#[test]
fn s9_comma_without_tag() {
    assert_eq!(err("m, f=1"), "Expected tag key, got ` f=1`");
}

#[test]
fn s9_tag_without_value() {
    assert_eq!(err("m,t= f=1"), "Expected tag value, got ` f=1`");
}

#[test]
fn s9_tag_without_equals() {
    assert_eq!(
        err("m,t=a,b f=1"),
        "Tag set malformed: could not find equals sign in `t=a,b f=1`"
    );
}

#[test]
fn s9_equals_in_tag_value() {
    assert_eq!(tags(&ok("m,t=a=b f=1")), vec![("t", "a=b")]);
}

#[test]
fn s9_comma_in_tag_key() {
    assert_eq!(tags(&ok("m,a,b=1 f=1")), vec![("a,b", "1")]);
}

#[test]
fn s9_comma_in_field_key() {
    let l = ok("m a,b=1");
    assert_eq!(field_keys(&l), vec!["a,b"]);
    assert_eq!(l.fields[0].1, FieldValue::Float(1.0));
}

#[test]
fn s9_escaped_space_and_comma_in_measurement() {
    assert_eq!(ok("m\\ x f=1").measurement, "m x");
    assert_eq!(ok("m\\,x f=1").measurement, "m,x");
}

#[test]
fn s9_escaped_space_swallows_the_separator() {
    assert_eq!(
        err("m\\ f=1"),
        "Expected at least one space character, got end of input"
    );
}

#[test]
fn s9_measurement_unescaping_to_trailing_backslash() {
    assert_eq!(err("m\\\\ f=1"), ENDS_WITH_BACKSLASH);
}

#[test]
fn s9_quotes_in_measurement_are_literal() {
    assert_eq!(ok("\"m\" f=1").measurement, "\"m\"");
}

#[test]
fn s9_quotes_do_not_protect_tag_values() {
    assert_eq!(err("m,t=\"a b\" f=1"), NO_FIELDS);
}

#[test]
fn s9_escaped_quote_in_string() {
    assert_eq!(
        ok(r#"m f="a\"b""#).fields[0].1,
        FieldValue::String(Cow::Borrowed("a\"b"))
    );
}

#[test]
fn s9_backslash_n_in_string_is_literal() {
    let l = ok(r#"m f="a\nb""#);
    assert_eq!(l.fields[0].1, FieldValue::String(Cow::Borrowed("a\\nb")));
    // Nothing was removed, so it is borrowed.
    assert!(matches!(
        l.fields[0].1,
        FieldValue::String(Cow::Borrowed(_))
    ));
}

#[test]
fn s9_real_newline_inside_string() {
    let l = ok("m f=\"x\ny\" 5");
    assert_eq!(l.fields[0].1, FieldValue::String(Cow::Borrowed("x\ny")));
    assert_eq!(l.timestamp, Some(5));
    assert_eq!(l.raw, "m f=\"x\ny\" 5");
}

#[test]
fn s9_empty_string() {
    assert_eq!(
        ok(r#"m f="""#).fields[0].1,
        FieldValue::String(Cow::Borrowed(""))
    );
}

#[test]
fn s9_integer_overflow() {
    assert_eq!(
        err("m f=9223372036854775808i"),
        "Unable to parse integer value `9223372036854775808`"
    );
}

#[test]
fn s9_max_unsigned() {
    assert_eq!(
        ok("m f=18446744073709551615u").fields[0].1,
        FieldValue::UInteger(u64::MAX)
    );
}

#[test]
fn s9_negative_unsigned() {
    assert_eq!(err("m f=-1u"), trailing("u"));
}

#[test]
fn s9_float_with_integer_suffix() {
    assert_eq!(err("m f=1.5e3i"), trailing("i"));
}

#[test]
fn s9_exponents() {
    assert_eq!(ok("m f=1E5").fields[0].1, FieldValue::Float(100000.0));
    assert_eq!(ok("m f=1e+5").fields[0].1, FieldValue::Float(100000.0));
    assert_eq!(ok("m f=-1.0e+3").fields[0].1, FieldValue::Float(-1000.0));
}

#[test]
fn s9_partial_boolean() {
    assert_eq!(err("m f=tru"), trailing("ru"));
}

#[test]
fn s9_booleans() {
    let l = ok("m f=t,g=F,h=TRUE");
    assert_eq!(
        l.fields.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
        vec![
            FieldValue::Boolean(true),
            FieldValue::Boolean(false),
            FieldValue::Boolean(true)
        ]
    );
}

#[test]
fn s9_trailing_comma_after_first_field_quirk() {
    let l = ok("m f=1,");
    assert_eq!(field_keys(&l), vec!["f"]);
}

#[test]
fn s9_trailing_comma_after_later_field() {
    assert_eq!(err("m f=1,g=2,"), trailing(","));
}

#[test]
fn s9_duplicate_field_is_left_to_the_validator() {
    let l = ok("m f=1,f=2");
    assert_eq!(field_keys(&l), vec!["f", "f"]);
    assert_eq!(l.fields[1].1, FieldValue::Float(2.0));
}

#[test]
fn s9_duplicate_tags_rejected_deliberately() {
    assert_eq!(
        err("m,t=1,t=2 f=1"),
        "Must not contain duplicate tags, but `t` was repeated"
    );
}

#[test]
fn s9_field_named_like_a_tag_is_left_to_the_validator() {
    let l = ok("m,t=v f=1i,t=2");
    assert_eq!(tags(&l), vec![("t", "v")]);
    assert_eq!(field_keys(&l), vec!["f", "t"]);
}

#[test]
fn s9_reserved_time_column_is_left_to_the_validator() {
    assert_eq!(field_keys(&ok("m time=1")), vec!["time"]);
}

#[test]
fn s9_column_type_conflict_is_left_to_the_validator() {
    let all: Vec<_> = parse_lines("cpu f=1.5\ncpu f=1i").collect();
    assert_eq!(all[0].as_ref().unwrap().fields[0].1, FieldValue::Float(1.5));
    assert_eq!(all[1].as_ref().unwrap().fields[0].1, FieldValue::Integer(1));
}

#[test]
fn s9_timestamp_overflow() {
    assert_eq!(
        err("m f=1 99999999999999999999"),
        "Unable to parse timestamp value `99999999999999999999`"
    );
}

#[test]
fn s9_timestamp_out_of_range_for_precision() {
    let ts = ok("m f=1 9223372036854775807").timestamp.unwrap();
    assert_eq!(
        Precision::Second.to_nanos(ts),
        Err("timestamp, 9223372036854775807, out of range for precision: Second".to_string())
    );
}

#[test]
fn s9_comments_and_blank_lines_ignored_and_not_counted() {
    let body = "# comment\n\n   \n\t\nm f=1\n  # indented comment\nm g=\n";
    let all: Vec<_> = parse_lines(body).collect();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].as_ref().unwrap().line_number, 1);
    let e = all[1].as_ref().unwrap_err();
    assert_eq!(e.line_number, 2);
    assert_eq!(e.message, NO_FIELDS);
    // Deviation 2: the offending line's own text, not the body's 2nd line.
    assert_eq!(e.original_line, "m g=");
    assert_eq!(parse_lines("# only\n\n \t \n").count(), 0);
    assert_eq!(parse_lines("").count(), 0);
}

#[test]
fn s9_string_over_64kb() {
    let big = "x".repeat(MAX_ELEMENT_LEN + 1);
    assert_eq!(err(&format!("m f=\"{big}\"")), TOO_LARGE);
    let max = "x".repeat(MAX_ELEMENT_LEN);
    let body = format!("m f=\"{max}\"");
    assert!(matches!(&ok(&body).fields[0].1, FieldValue::String(s) if s.len() == MAX_ELEMENT_LEN));
}

#[test]
fn s9_unicode_names() {
    let l = ok("ẞ,ü=ö ä=1");
    assert_eq!(l.measurement, "ẞ");
    assert_eq!(tags(&l), vec![("ü", "ö")]);
    assert_eq!(field_keys(&l), vec!["ä"]);
}

// ---------------------------------------------------------------- §1 / §2 line shape and splitting

#[test]
fn lines_split_on_newline_only() {
    let all: Vec<_> = parse_lines("a f=1\nb f=2\n\nc f=3").collect();
    let ms: Vec<_> = all
        .iter()
        .map(|r| r.as_ref().unwrap().measurement.to_string())
        .collect();
    assert_eq!(ms, ["a", "b", "c"]);
    let ns: Vec<_> = all
        .iter()
        .map(|r| r.as_ref().unwrap().line_number)
        .collect();
    assert_eq!(ns, [1, 2, 3]);
}

#[test]
fn escaped_newline_does_not_split() {
    // The measurement keeps backslash + newline (an unknown escape is literal).
    let l = ok("m\\\nx f=1");
    assert_eq!(l.measurement, "m\\\nx");
    assert_eq!(l.raw, "m\\\nx f=1");
}

#[test]
fn quote_tracking_rules_of_the_splitter() {
    // Quotes in the measurement or tags do not start a string for the splitter.
    let all: Vec<_> = parse_lines("m,t=\"a f=1\nm g=2").collect();
    assert_eq!(all.len(), 2);
    // `\"` inside a string does not toggle; the newline after it is inside the string.
    let l = ok("m f=\"a\\\"\nb\"");
    assert_eq!(l.fields[0].1, FieldValue::String(Cow::Borrowed("a\"\nb")));
    // The splitter only toggles while `=` outnumber `,` after the first space: with a comma
    // in a field key the quote is not seen and the newline splits.
    let all: Vec<_> = parse_lines("m a,b=1,c=\"x\ny\"").collect();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|r| r.is_err()));
}

#[test]
fn comment_continued_by_escaped_newline() {
    // The comment ends at the (escaped) newline inside the line; what follows is content.
    let l = ok("# note \\\nm f=1");
    assert_eq!(l.measurement, "m");
    assert_eq!(l.line_number, 1);
}

#[test]
fn hash_later_in_line_is_content() {
    assert_eq!(err("m f=1 #c"), trailing(" #c"));
    assert_eq!(ok("#m,t=1 f=1\nm f=1").measurement, "m");
    assert_eq!(ok("m,t=#1 f=1").tags[0].1, "#1");
}

#[test]
fn leading_tabs_and_spaces_skipped() {
    let l = ok(" \t m f=1");
    assert_eq!(l.measurement, "m");
    assert_eq!(l.raw, " \t m f=1");
}

#[test]
fn raw_keeps_carriage_return() {
    let all: Vec<_> = parse_lines("m f=1 5\r\nm f=1 5").collect();
    assert_eq!(all[0].as_ref().unwrap_err().original_line, "m f=1 5");
    // A `\r` not followed by `\n` (end of body) stays in the shown line.
    assert_eq!(err("m f=1 5\r"), trailing("\r"));
    assert_eq!(
        parse_lines("m f=1 5\r")
            .next()
            .unwrap()
            .unwrap_err()
            .original_line,
        "m f=1 5\r"
    );
    let l = ok("m f=\"a\r\"");
    assert_eq!(l.fields[0].1, FieldValue::String(Cow::Borrowed("a\r")));
}

#[test]
fn spec_section_7_example() {
    let body = "cpu,host=b val=2 155\ncpu,host=a val= 123\ncpu,host=b val=5 199";
    let r: Vec<_> = parse_lines(body).collect();
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].as_ref().unwrap().timestamp, Some(155));
    assert_eq!(
        r[1].as_ref().unwrap_err(),
        &LineError {
            line_number: 2,
            original_line: "cpu,host=a val= 123".into(),
            message: NO_FIELDS.into(),
        }
    );
    assert_eq!(r[2].as_ref().unwrap().fields[0].1, FieldValue::Float(5.0));
}

#[test]
fn bad_line_does_not_stop_iteration() {
    let r: Vec<_> = parse_lines(",t=1 f=1\nm f=1\nbad\nm g=1").collect();
    assert_eq!(r.len(), 4);
    assert!(r[0].is_err() && r[1].is_ok() && r[2].is_err() && r[3].is_ok());
    assert_eq!(r[2].as_ref().unwrap_err().original_line, "bad");
    assert_eq!(r[3].as_ref().unwrap().line_number, 4);
}

#[test]
fn original_line_is_the_offending_line_even_after_quoted_newline() {
    let body = "m f=\"a\nb\"\n\n# c\nbad f=\n";
    let r: Vec<_> = parse_lines(body).collect();
    let e = r[1].as_ref().unwrap_err();
    assert_eq!((e.line_number, e.original_line.as_str()), (2, "bad f="));
}

#[test]
fn at_least_one_field_required() {
    assert_eq!(err("m "), NO_FIELDS);
    assert_eq!(err("m,t=1 "), NO_FIELDS);
}

#[test]
fn names_are_case_sensitive() {
    let l = ok("M F=1,f=2");
    assert_eq!(l.measurement, "M");
    assert_eq!(field_keys(&l), vec!["F", "f"]);
}

// ---------------------------------------------------------------- §3 elements and escapes

#[test]
fn measurement_escapes() {
    assert_eq!(ok("a\\\\b f=1").measurement, "a\\b");
    // `=` is no escape in a measurement: both characters stay.
    assert_eq!(ok("a\\=b f=1").measurement, "a\\=b");
    assert_eq!(ok("a=b f=1").measurement, "a=b");
    // Unknown escape: kept literally, even before a tab.
    assert_eq!(ok("a\\tb f=1").measurement, "a\\tb");
    assert_eq!(ok("a\\\tb f=1").measurement, "a\\\tb");
    assert_eq!(ok("a\\é f=1").measurement, "a\\é");
}

#[test]
fn tag_escapes() {
    let l = ok(r"m,a\,b\=c\ d\\e=v\,w\=x\ y\\z\q f=1");
    assert_eq!(tags(&l), vec![("a,b=c d\\e", "v,w=x y\\z\\q")]);
}

#[test]
fn field_key_escapes() {
    let l = ok(r"m a\,b\=c\ d\\e\q=1");
    assert_eq!(field_keys(&l), vec!["a,b=c d\\e\\q"]);
}

#[test]
fn string_escapes() {
    let l = ok(r#"m f="a\\b\"c\d,e=f g""#);
    assert_eq!(
        l.fields[0].1,
        FieldValue::String(Cow::Owned("a\\b\"c\\d,e=f g".into()))
    );
    // A string may end with an (escaped) backslash.
    assert_eq!(
        ok(r#"m f="a\\""#).fields[0].1,
        FieldValue::String("a\\".into())
    );
    // Unterminated string.
    assert_eq!(err(r#"m f="abc"#), NO_FIELDS);
    assert_eq!(err(r#"m f="abc\""#), NO_FIELDS);
    assert_eq!(err(r#"m f=1,g="abc"#), trailing("g=\"abc"));
    // Tab and newline are plain content.
    assert_eq!(
        ok("m f=\"a\tb\"").fields[0].1,
        FieldValue::String("a\tb".into())
    );
}

#[test]
fn zero_copy_unless_escaped() {
    let l = ok(r#"m,t=v f=1,s="x""#);
    assert!(matches!(l.measurement, Cow::Borrowed(_)));
    assert!(matches!(l.tags[0].0, Cow::Borrowed(_)));
    assert!(matches!(l.tags[0].1, Cow::Borrowed(_)));
    assert!(matches!(l.fields[0].0, Cow::Borrowed(_)));
    let l = ok(r"m\ x,t\ k=v\ w f\ k=1 1");
    assert!(matches!(l.measurement, Cow::Owned(_)));
    assert!(matches!(l.tags[0].0, Cow::Owned(_)));
    assert!(matches!(l.tags[0].1, Cow::Owned(_)));
    assert!(matches!(l.fields[0].0, Cow::Owned(_)));
    // A literal (unknown-escape) backslash needs no copy.
    assert!(matches!(ok(r"m\q f=1").measurement, Cow::Borrowed(r"m\q")));
}

#[test]
fn ends_with_backslash_everywhere() {
    for body in [
        "m\\",
        "m\\\\",
        "m,t\\\\=v f=1",
        "m,t=v\\\\ f=1",
        "m,t=v\\",
        "m f\\\\=1",
        "m f=1,g\\\\=1",
        "m f=1,g\\",
    ] {
        assert_eq!(err(body), ENDS_WITH_BACKSLASH, "{body:?}");
    }
    // A trailing backslash inside a string value is fine when escaped.
    assert!(parse_lines(r#"m f="\\""#).next().unwrap().is_ok());
}

#[test]
fn element_length_limit() {
    let max = "x".repeat(MAX_ELEMENT_LEN);
    let over = "x".repeat(MAX_ELEMENT_LEN + 1);
    for make in [
        |s: &str| format!("{s} f=1"),
        |s: &str| format!("m,{s}=v f=1"),
        |s: &str| format!("m,t={s} f=1"),
        |s: &str| format!("m {s}=1"),
        |s: &str| format!("m f=\"{s}\""),
    ] {
        assert!(ok(&make(&max)).line_number == 1);
        assert_eq!(err(&make(&over)), TOO_LARGE);
    }
    // The limit applies after unescaping: 65,536 escaped commas are accepted.
    let escaped = "\\,".repeat(MAX_ELEMENT_LEN);
    assert_eq!(
        ok(&format!("{escaped} f=1")).measurement.len(),
        MAX_ELEMENT_LEN
    );
    let escaped = "\\\"".repeat(MAX_ELEMENT_LEN);
    ok(&format!("m f=\"{escaped}\""));
}

#[test]
fn nul_bytes() {
    // NUL ends a measurement (then a space is expected) ...
    assert_eq!(
        err("m\0 f=1"),
        "Expected at least one space character, got `\0 f=1`"
    );
    assert_eq!(err("\0m f=1"), "Invalid measurement was provided");
    // ... but is an ordinary character elsewhere.
    let l = ok("m,t\0=v\0 f\0=\"\0\"");
    assert_eq!(tags(&l), vec![("t\0", "v\0")]);
}

#[test]
fn tag_set_errors() {
    assert_eq!(
        err("J,#"),
        "Tag set malformed: could not find equals sign in `#`"
    );
    assert_eq!(
        err(&format!("J,{}", "a".repeat(200))),
        "Tag set malformed: could not find equals sign in `aaaaaaaaaa...`"
    );
    assert_eq!(err("J,"), "Expected tag key, got end of input");
    assert_eq!(
        err(&format!("testmeasure, {}=1i", "b".repeat(200))),
        "Expected tag key, got ` bbbbbbbbb...`"
    );
    assert_eq!(err("0,,="), "Expected tag value, got end of input");
    assert_eq!(
        err("testmeasure,foo=,baz= bar=1i"),
        "Expected tag value, got `,baz= bar=...`"
    );
    assert_eq!(
        err("metrics,bananas=,platanos=great value=1.000000 1725629157696678000"),
        "Expected tag value, got `,platanos=...`"
    );
    assert_eq!(
        err("m,t=1,uuuuuuuuuuuuuuuuuuuuu v=1"),
        "Tag set malformed: could not find equals sign in `t=1,uuuuuu...`"
    );
    assert_eq!(err("m,=v f=1"), "Expected tag key, got `=v f=1`");
    // A tab ending a tag value, in a tag key, starting a tag key.
    assert_eq!(
        err("m,t=v\tf=1"),
        "Expected at least one space character, got `\tf=1`"
    );
    assert_eq!(
        err("m,t\tk=v f=1"),
        "Tag set malformed: could not find equals sign in `t\tk=v f=1`"
    );
    assert_eq!(err("m,\tk=v f=1"), "Expected tag key, got `\tk=v f=1`");
    assert_eq!(err("m,t=v,"), "Expected tag key, got end of input");
}

// ---------------------------------------------------------------- §4 field values

#[test]
fn integers() {
    fn v(b: &str) -> FieldValue<'_> {
        ok(b).fields[0].1.clone()
    }
    assert_eq!(
        v("m f=-9223372036854775808i"),
        FieldValue::Integer(i64::MIN)
    );
    assert_eq!(v("m f=9223372036854775807i"), FieldValue::Integer(i64::MAX));
    assert_eq!(v("m f=01i"), FieldValue::Integer(1));
    assert_eq!(v("m f=-0i"), FieldValue::Integer(0));
    assert_eq!(
        v("m f=0000000000000000000000000000042i"),
        FieldValue::Integer(42)
    );
    assert_eq!(
        err("m f=-9223372036854775809i"),
        "Unable to parse integer value `-9223372036854775809`"
    );
    assert_eq!(
        err("m f=66666666666666666666666666666666666666666666668i"),
        "Unable to parse integer value `66666666666666666666666666666666666666666666668`"
    );
    assert_eq!(err("m f=+1i"), NO_FIELDS);
    assert_eq!(err("m f=1.0i"), trailing("i"));
    assert_eq!(err("m f=1e3i"), trailing("i"));
    assert_eq!(err("m f=1i2"), trailing("2"));
    assert_eq!(err("m f=1ii"), trailing("i"));
    assert_eq!(err("m f=-i"), NO_FIELDS);
    // Out of range in a later field is reported as such, not as trailing content.
    assert_eq!(
        err("m f=1,g=9223372036854775808i"),
        "Unable to parse integer value `9223372036854775808`"
    );
}

#[test]
fn unsigned() {
    assert_eq!(ok("m f=0u").fields[0].1, FieldValue::UInteger(0));
    assert_eq!(ok("m f=007u").fields[0].1, FieldValue::UInteger(7));
    assert_eq!(
        err("m f=18446744073709551616u"),
        "Unable to parse unsigned integer value `18446744073709551616`"
    );
    assert_eq!(err("m f=1.5u"), trailing("u"));
}

#[test]
fn floats() {
    let v = |b: &str| match ok(b).fields[0].1 {
        FieldValue::Float(f) => f,
        ref other => panic!("{other:?}"),
    };
    assert_eq!(v("m f=1.5"), 1.5);
    assert_eq!(v("m f=-1.234e-3"), -1.234e-3);
    assert_eq!(v("m f=1.5e3"), 1500.0);
    assert_eq!(v("m f=00.5"), 0.5);
    assert_eq!(v("m f=123456789012345678"), 123456789012345678.0);
    assert_eq!(v("m f=0.1"), 0.1);
    assert!(v("m f=-0").is_sign_negative() && v("m f=-0") == 0.0);
    assert!(v("m f=-0.0").is_sign_negative());
    assert_eq!(v("m f=1e400"), f64::INFINITY);
    assert_eq!(v("m f=-1e400"), f64::NEG_INFINITY);
    assert_eq!(v(&format!("m f={}", "9".repeat(400))), f64::INFINITY);
    assert_eq!(v("m f=1e-400"), 0.0);
    assert_eq!(err("m f=.5"), NO_FIELDS);
    assert_eq!(err("m f=-.5"), NO_FIELDS);
    assert_eq!(err("m f=1."), trailing("."));
    assert_eq!(err("m f=1.e5"), trailing(".e5"));
    assert_eq!(err("m f=+1"), NO_FIELDS);
    assert_eq!(err("m f=inf"), NO_FIELDS);
    assert_eq!(err("m f=0x10"), trailing("x10"));
    assert_eq!(err("m f=1e"), trailing("e"));
    assert_eq!(err("m f=1e+"), trailing("e+"));
    assert_eq!(err("m f=1.5e"), trailing("e"));
    assert_eq!(err("m f=1.5.5"), trailing(".5"));
    assert_eq!(err("m f=1_000"), trailing("_000"));
}

#[test]
fn booleans_all_spellings() {
    for (text, value) in [
        ("t", true),
        ("T", true),
        ("true", true),
        ("True", true),
        ("TRUE", true),
        ("f", false),
        ("F", false),
        ("false", false),
        ("False", false),
        ("FALSE", false),
    ] {
        assert_eq!(
            ok(&format!("m x={text}")).fields[0].1,
            FieldValue::Boolean(value),
            "{text}"
        );
    }
    assert_eq!(err("m f=yes"), NO_FIELDS);
    assert_eq!(err("m f=t1"), trailing("1"));
    assert_eq!(err("m f=tRUE"), trailing("RUE"));
    assert_eq!(err("m f=FAlse"), trailing("Alse"));
    assert_eq!(err("m f=truee"), trailing("e"));
}

#[test]
fn later_field_failures_are_trailing_content() {
    assert_eq!(err("m f=1,g=x"), trailing("g=x"));
    assert_eq!(err("m f=1,g=2,h=x"), trailing(",h=x"));
    assert_eq!(err("testmeasure,foo=f bar=1i,baz="), trailing("baz="));
    let l = ok("m f=1,,g=2");
    assert_eq!(field_keys(&l), vec!["f", ",g"]);
    // Consequence of the quirk: the comma is consumed, then a timestamp may follow.
    assert_eq!(ok("m f=1, 123").timestamp, Some(123));
    assert_eq!(err("m f=1,g=2, 123"), trailing(", 123"));
}

#[test]
fn error_context_truncation() {
    assert_eq!(err("zz v=1 abcdefghi"), trailing(" abcdefghi"));
    assert_eq!(err("zz v=1 abcdefghij"), trailing(" abcdefghi..."));
    assert_eq!(err("zz v=1 5 abcdefghijklmnop"), trailing("abcdefghij..."));
    // More than 10 bytes → first 10 characters + `...`.
    assert_eq!(err("zz v=1 ééééééééééé"), trailing(" ééééééééé..."));
    assert_eq!(err("zz v=1 5 éééééé"), trailing("éééééé..."));
    assert_eq!(err("zz v=1 5 ééééé"), trailing("ééééé"));
    // The missing-space message quotes everything.
    assert_eq!(
        err("zz\tabcdefghijklmnop v=1"),
        "Expected at least one space character, got `\tabcdefghijklmnop v=1`"
    );
}

// ---------------------------------------------------------------- §5 timestamps and precision

#[test]
fn timestamps() {
    assert_eq!(ok("m f=1 0").timestamp, Some(0));
    assert_eq!(ok("m f=1 -0").timestamp, Some(0));
    assert_eq!(ok("m f=1 -9223372036854775808").timestamp, Some(i64::MIN));
    assert_eq!(
        err("m f=1 -9223372036854775809"),
        "Unable to parse timestamp value `-9223372036854775809`"
    );
    assert_eq!(err("m f=1 +5"), trailing(" +5"));
    assert_eq!(err("m f=1 -"), trailing(" -"));
    assert_eq!(err("m f=1 5x"), trailing("x"));
    assert_eq!(err("m f=1\t5"), trailing("\t5"));
    assert_eq!(ok("m f=1i    5").timestamp, Some(5));
}

#[test]
fn precision_parameter_values() {
    use Precision::*;
    for (s, p) in [
        ("auto", Auto),
        ("second", Second),
        ("s", Second),
        ("millisecond", Millisecond),
        ("ms", Millisecond),
        ("microsecond", Microsecond),
        ("us", Microsecond),
        ("u", Microsecond),
        ("nanosecond", Nanosecond),
        ("ns", Nanosecond),
        ("n", Nanosecond),
    ] {
        assert_eq!(Precision::parse_v3(s), Some(p), "{s}");
        assert_eq!(Precision::parse_v1(s), (p != Auto).then_some(p), "{s}");
    }
    for s in [
        "",
        "h",
        "m",
        "S",
        "NS",
        "Auto",
        "seconds",
        "nanoseconds",
        " s",
    ] {
        assert_eq!(Precision::parse_v3(s), None, "{s}");
        assert_eq!(Precision::parse_v1(s), None, "{s}");
    }
}

#[test]
fn auto_detection_thresholds() {
    let auto = |ts: i64| Precision::Auto.to_nanos(ts).unwrap();
    assert_eq!(auto(0), 0);
    assert_eq!(auto(4_999_999_999), 4_999_999_999_000_000_000);
    assert_eq!(auto(-4_999_999_999), -4_999_999_999_000_000_000);
    assert_eq!(auto(5_000_000_000), 5_000_000_000_000_000); // ms
    assert_eq!(auto(1_000_000_000_123), 1_000_000_000_123_000_000); // ms
    assert_eq!(auto(4_999_999_999_999), 4_999_999_999_999_000_000); // ms
    assert_eq!(auto(5_000_000_000_000), 5_000_000_000_000_000); // us
    assert_eq!(auto(4_999_999_999_999_999), 4_999_999_999_999_999_000); // us
    assert_eq!(auto(5_000_000_000_000_000), 5_000_000_000_000_000); // ns
    assert_eq!(auto(-5_000_000_000_000_000), -5_000_000_000_000_000); // ns
    assert_eq!(auto(i64::MAX), i64::MAX);
    // Deviation 3: |i64::MIN| is a nanosecond magnitude.
    assert_eq!(auto(i64::MIN), i64::MIN);
    assert_eq!(Precision::Auto.resolve(1_708_976_567), Precision::Second);
    assert_eq!(
        Precision::Auto.resolve(1_708_976_567_000),
        Precision::Millisecond
    );
    assert_eq!(
        Precision::Auto.resolve(1_708_976_567_000_000),
        Precision::Microsecond
    );
    assert_eq!(
        Precision::Auto.resolve(1_708_976_567_000_000_000),
        Precision::Nanosecond
    );
}

#[test]
fn explicit_precisions_and_overflow_messages() {
    use Precision::*;
    assert_eq!(Second.to_nanos(2), Ok(2_000_000_000));
    assert_eq!(Millisecond.to_nanos(2), Ok(2_000_000));
    assert_eq!(Microsecond.to_nanos(2), Ok(2_000));
    assert_eq!(Nanosecond.to_nanos(i64::MIN), Ok(i64::MIN));
    assert_eq!(
        Second.to_nanos(9_223_372_036),
        Ok(9_223_372_036_000_000_000)
    );
    for (p, ts) in [
        (Second, 9_223_372_037),
        (Second, -9_223_372_037),
        (Millisecond, 9_223_372_036_855),
        (Microsecond, -9_223_372_036_854_776),
    ] {
        assert_eq!(
            p.to_nanos(ts),
            Err(format!(
                "timestamp, {ts}, out of range for precision: {}",
                p.name()
            ))
        );
    }
    assert_eq!(
        Millisecond.to_nanos(i64::MAX),
        Err("timestamp, 9223372036854775807, out of range for precision: Millisecond".into())
    );
    assert_eq!(
        Microsecond.to_nanos(i64::MIN),
        Err("timestamp, -9223372036854775808, out of range for precision: Microsecond".into())
    );
}

#[test]
fn default_time_truncation() {
    use Precision::*;
    let now = 1_700_000_123_456_789_012;
    assert_eq!(Auto.default_time(now), now);
    assert_eq!(Nanosecond.default_time(now), now);
    assert_eq!(Microsecond.default_time(now), 1_700_000_123_456_789_000);
    assert_eq!(Millisecond.default_time(now), 1_700_000_123_456_000_000);
    assert_eq!(Second.default_time(now), 1_700_000_123_000_000_000);
    assert_eq!(Second.default_time(0), 0);
    assert_eq!(Second.default_time(999_999_999), 0);
    // Toward zero (only matters for a clock before 1970), never overflowing.
    assert_eq!(Second.default_time(-1), 0);
    assert_eq!(Second.default_time(i64::MIN), -9_223_372_036_000_000_000);
}

// ---------------------------------------------------------------- deviations

#[test]
fn duplicate_tags_after_unescaping() {
    assert_eq!(
        err(r"m,a\,b=1,a,b=2 f=1"),
        "Must not contain duplicate tags, but `a,b` was repeated"
    );
    // Other errors of the line win: the reference rejects it, so keep its message.
    assert_eq!(err("m,t=1,t=2 f=1 x"), trailing(" x"));
    // Many tags (hash-set path) and a full signature collision (exact path).
    let many: String = (0..100).map(|i| format!(",k{i}=v")).collect();
    assert!(ok(&format!("m{many} f=1")).tags.len() == 100);
    assert_eq!(
        err(&format!("m{many},k42=w f=1")),
        "Must not contain duplicate tags, but `k42` was repeated"
    );
    let l = ok("m,ab=1,ab_=2,aab=3,abb=4 f=1");
    assert_eq!(l.tags.len(), 4);
    assert_eq!(
        err("m,x=1,y=2,z=3,y=4 f=1"),
        "Must not contain duplicate tags, but `y` was repeated"
    );
}

#[test]
fn line_error_display_is_the_message() {
    let e = parse_lines("m").next().unwrap().unwrap_err();
    assert_eq!(e.to_string(), e.message);
    assert_eq!(
        ParseError::ExpectedTagKey(String::new()).to_string(),
        "Expected tag key, got end of input"
    );
}

#[test]
fn public_line_cutting_matches_the_parser() {
    let body = b"m f=1\n\n# c\nm s=\"a\nb\"\nm f=2";
    let mut pos = 0;
    let mut lines = Vec::new();
    while let Some(end) = crate::line_end(body, pos) {
        lines.push(&body[pos..end]);
        pos = end + 1;
    }
    assert_eq!(&body[pos..], b"m f=2");
    assert_eq!(lines, vec![&b"m f=1"[..], b"", b"# c", b"m s=\"a\nb\""]);
    let points: Vec<_> = lines.iter().filter(|l| crate::is_point_line(l)).collect();
    assert_eq!(points.len(), 2);
    let parsed = crate::parse_lines(std::str::from_utf8(body).unwrap()).count();
    assert_eq!(parsed, points.len() + 1);
}
