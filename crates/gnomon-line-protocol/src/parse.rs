//! The line grammar (LINE_PROTOCOL.md §1, §3, §4, §5): one line's text → a [`Line`].
//!
//! A hand-written single pass over the bytes. It reproduces the reference parser (a `nom`
//! combinator parser) decision for decision, including where a failure is "soft" (the
//! alternative / list / optional part is skipped and parsing goes on, like `nom::Err::Error`)
//! or "hard" (the line is rejected with that message at once, like `nom::Err::Failure`):
//!
//! * hard: ends-with-backslash, element longer than 64 KiB, integer / unsigned / timestamp out
//!   of range, and every tag-set error;
//! * soft: an element or value that does not start where one is expected. A soft failure of
//!   the first field becomes `No fields were provided`; of a later field it ends the field
//!   list, and the rest of the line is then reported as trailing content.
//!
//! All delimiters are ASCII, so every index the scanner stops at is a char boundary.

use std::borrow::Cow;

use memchr::{memchr, memchr2};

use crate::{FieldSet, FieldValue, Line, ParseError, TagSet};

/// Longest measurement, tag key, tag value, field key or string value, in bytes after
/// unescaping (exactly this many is accepted).
pub const MAX_ELEMENT_LEN: usize = 65_536;

// Byte classes, one bit per question the scanner asks. A lookup table keeps each inner loop
// to one load + test per byte whatever the size of the delimiter set.
/// Ends a measurement: space, tab, newline, NUL, comma, backslash (escape start).
const END_MEASUREMENT: u8 = 1 << 0;
/// Ends a tag key or a field key: space, tab, newline, `=`, backslash.
const END_KEY: u8 = 1 << 1;
/// Ends a tag value: space, tab, newline, comma, backslash.
const END_TAG_VALUE: u8 = 1 << 2;
/// Characters a backslash escapes in a measurement: comma, space, backslash.
const ESC_MEASUREMENT: u8 = 1 << 3;
/// Characters a backslash escapes in tag keys, tag values and field keys: comma, `=`, space,
/// backslash.
const ESC_KEY_OR_VALUE: u8 = 1 << 4;
/// Characters a backslash escapes in a string field value: double quote, backslash.
const ESC_STRING: u8 = 1 << 5;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b' ' as usize] =
        END_MEASUREMENT | END_KEY | END_TAG_VALUE | ESC_MEASUREMENT | ESC_KEY_OR_VALUE;
    t[b'\t' as usize] = END_MEASUREMENT | END_KEY | END_TAG_VALUE;
    t[b'\n' as usize] = END_MEASUREMENT | END_KEY | END_TAG_VALUE;
    t[0] = END_MEASUREMENT;
    t[b',' as usize] = END_MEASUREMENT | END_TAG_VALUE | ESC_MEASUREMENT | ESC_KEY_OR_VALUE;
    t[b'=' as usize] = END_KEY | ESC_KEY_OR_VALUE;
    t[b'\\' as usize] =
        END_MEASUREMENT | END_KEY | END_TAG_VALUE | ESC_MEASUREMENT | ESC_KEY_OR_VALUE | ESC_STRING;
    t[b'"' as usize] = ESC_STRING;
    t
};

/// How one kind of escapable element is delimited and escaped.
#[derive(Clone, Copy)]
struct ElementKind {
    end: u8,
    escapes: u8,
}

const MEASUREMENT: ElementKind = ElementKind {
    end: END_MEASUREMENT,
    escapes: ESC_MEASUREMENT,
};
const KEY: ElementKind = ElementKind {
    end: END_KEY,
    escapes: ESC_KEY_OR_VALUE,
};
const TAG_VALUE: ElementKind = ElementKind {
    end: END_TAG_VALUE,
    escapes: ESC_KEY_OR_VALUE,
};

/// A failure while parsing a part of the line. Kept small (positions instead of strings) so
/// that results travel in registers; turned into a [`ParseError`] only on the error path.
#[derive(Debug, Clone, Copy)]
enum Fail {
    /// Nothing of the expected kind starts here (`nom::Err::Error`): the caller decides.
    Soft,
    // The rest are hard (`nom::Err::Failure`): the line is rejected with this error.
    EndsWithBackslash,
    TooLarge,
    /// Integer out of range; the text is `s[.0...1]`.
    Integer(usize, usize),
    UInteger(usize, usize),
    Float(usize, usize),
}

impl Fail {
    /// The error of a hard failure (`Soft` has no message of its own; callers map it first).
    #[cold]
    fn into_error(self, s: &str) -> ParseError {
        match self {
            Fail::Soft => unreachable!("soft failures are resolved by the caller"),
            Fail::EndsWithBackslash => ParseError::EndsWithBackslash,
            Fail::TooLarge => ParseError::StringTooLarge,
            Fail::Integer(a, b) => ParseError::IntegerValueInvalid(s[a..b].to_string()),
            Fail::UInteger(a, b) => ParseError::UIntegerValueInvalid(s[a..b].to_string()),
            Fail::Float(a, b) => ParseError::FloatValueInvalid(s[a..b].to_string()),
        }
    }
}

#[inline]
fn class(b: u8) -> u8 {
    CLASS[b as usize]
}

/// Length of the UTF-8 sequence starting with lead byte `b`.
#[inline]
fn utf8_len(b: u8) -> usize {
    match b {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Where a scanned element ends, and whether unescaping has to copy it.
#[derive(Debug, Clone, Copy)]
struct Span {
    end: usize,
    escaped: bool,
}

/// Scans a measurement / tag key / tag value / field key starting at `start`.
///
/// Escapes recognised by `kind` lose their backslash. A backslash before any other character
/// is kept together with that character, whatever it is (even a delimiter such as a tab or a
/// newline), as the reference does; a backslash at the very end of the text is kept alone.
/// Fails `Soft` if the element is empty.
#[inline(always)]
fn element(b: &[u8], start: usize, kind: ElementKind) -> Result<Span, Fail> {
    let mut p = start;
    let mut removed = 0usize;
    // Index just past the last unit that unescaped to a backslash, to detect "ends with a
    // backslash" without a second look at the value.
    let mut backslash_end = usize::MAX;
    loop {
        while p < b.len() && class(b[p]) & kind.end == 0 {
            p += 1;
        }
        if p < b.len() && b[p] == b'\\' {
            match b.get(p + 1) {
                Some(&c) if class(c) & kind.escapes != 0 => {
                    removed += 1;
                    p += 2;
                    if c == b'\\' {
                        backslash_end = p;
                    }
                }
                Some(&c) => p += 1 + utf8_len(c),
                None => {
                    p += 1;
                    backslash_end = p;
                }
            }
        } else {
            break;
        }
    }
    if p == start {
        return Err(Fail::Soft);
    }
    if backslash_end == p {
        return Err(Fail::EndsWithBackslash);
    }
    if p - start - removed > MAX_ELEMENT_LEN {
        return Err(Fail::TooLarge);
    }
    Ok(Span {
        end: p,
        escaped: removed > 0,
    })
}

/// The unescaped text of an element scanned from `start`: borrowed unless an escape has to
/// be removed.
#[inline(always)]
fn text(s: &str, start: usize, span: Span, escapes: u8) -> Cow<'_, str> {
    let raw = &s[start..span.end];
    if span.escaped {
        Cow::Owned(unescape(raw, escapes))
    } else {
        Cow::Borrowed(raw)
    }
}

/// Removes the backslash of every escape sequence whose second character is in `escapes`
/// (a class bit). Other backslashes stay.
#[cold]
fn unescape(raw: &str, escapes: u8) -> String {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut copied_to = 0;
    let mut i = 0;
    while let Some(off) = memchr(b'\\', &b[i..]) {
        let j = i + off;
        match b.get(j + 1) {
            Some(&c) if class(c) & escapes != 0 => {
                out.push_str(&raw[copied_to..j]);
                copied_to = j + 1; // keep the escaped character
                i = j + 2; // and never treat it as the start of another escape
            }
            // A literal backslash; the next character is not a backslash (that would have been
            // an escape), so scanning on from it is safe.
            _ => i = j + 1,
        }
    }
    out.push_str(&raw[copied_to..]);
    out
}

/// Index of the first byte at or after `i` that is not an ASCII digit.
#[inline]
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// Index of the first byte at or after `i` that is not a space.
#[inline]
fn spaces_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    i
}

/// Value of a run of ASCII digits (any number of leading zeros), `None` on u64 overflow;
/// the same results as `u64::from_str` on digits-only text.
#[inline]
fn parse_digits(d: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for &c in d {
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(v)
}

/// Signed value of `-`? + `digits`, `None` outside i64.
#[inline]
fn parse_signed(negative: bool, digits: &[u8]) -> Option<i64> {
    let v = parse_digits(digits)?;
    if negative {
        // 2^63 is i64::MIN's magnitude: `as` then `wrapping_neg` maps it onto i64::MIN.
        (v <= 1 << 63).then(|| (v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// Numeric field value at `p` (which holds `-` or a digit). Tries, like the reference:
/// integer (`-?digits` + `i`), unsigned (`digits` + `u`), float (`-?digits`, optional
/// `.digits`, optional exponent `[eE][+-]?digits`; longest match).
#[inline]
fn number(s: &str, p: usize) -> Result<(FieldValue<'_>, usize), Fail> {
    let b = s.as_bytes();
    let negative = b[p] == b'-';
    let ds = p + usize::from(negative);
    let de = digits_end(b, ds);
    if de == ds {
        // A lone `-`: not a number, and strings/booleans don't start with `-` either.
        return Err(Fail::Soft);
    }
    match b.get(de) {
        Some(b'i') => match parse_signed(negative, &b[ds..de]) {
            Some(v) => Ok((FieldValue::Integer(v), de + 1)),
            None => Err(Fail::Integer(p, de)),
        },
        // `-1u` is no unsigned: it falls through to the float `-1` (leaving `u` behind).
        Some(b'u') if !negative => match parse_digits(&b[ds..de]) {
            Some(v) => Ok((FieldValue::UInteger(v), de + 1)),
            None => Err(Fail::UInteger(ds, de)),
        },
        _ => {
            let mut e = de;
            if b.get(e) == Some(&b'.') && b.get(e + 1).is_some_and(u8::is_ascii_digit) {
                e = digits_end(b, e + 2);
            }
            if matches!(b.get(e), Some(b'e' | b'E')) {
                let mut k = e + 1;
                if matches!(b.get(k), Some(b'+' | b'-')) {
                    k += 1;
                }
                let ke = digits_end(b, k);
                if ke > k {
                    e = ke;
                }
            }
            let value = if e == de && de - ds <= 19 {
                // Integral and at most 19 digits: fits a u64, and `u64 as f64` rounds to
                // nearest-even exactly like the correctly rounded decimal parser would.
                // (`-(0.0)` is -0.0, as `"-0".parse::<f64>()` gives.)
                let m = parse_digits(&b[ds..de]).unwrap_or(0) as f64;
                if negative {
                    -m
                } else {
                    m
                }
            } else {
                // Correctly rounded; overflow gives ±inf, which is accepted.
                s[p..e].parse::<f64>().map_err(|_| Fail::Float(p, e))?
            };
            Ok((FieldValue::Float(value), e))
        }
    }
}

/// String field value whose opening quote is at `p`. `\"` and `\\` lose their backslash, any
/// other backslash is literal. Unterminated → soft.
#[inline]
fn string_value(s: &str, p: usize) -> Result<(FieldValue<'_>, usize), Fail> {
    let b = s.as_bytes();
    let start = p + 1;
    let mut i = start;
    let mut removed = 0usize;
    let end = loop {
        let Some(off) = memchr2(b'"', b'\\', &b[i..]) else {
            return Err(Fail::Soft);
        };
        let j = i + off;
        if b[j] == b'"' {
            break j;
        }
        if matches!(b.get(j + 1), Some(b'"' | b'\\')) {
            removed += 1;
            i = j + 2;
        } else {
            i = j + 1;
        }
    };
    if end - start - removed > MAX_ELEMENT_LEN {
        return Err(Fail::TooLarge);
    }
    let span = Span {
        end,
        escaped: removed > 0,
    };
    Ok((
        FieldValue::String(text(s, start, span, ESC_STRING)),
        end + 1,
    ))
}

/// Field value at `p`, in the reference's order: integer, unsigned, float, string, boolean.
/// A boolean is the longest of its spellings that is a *prefix* here (`tru` is `t` + `ru`).
#[inline]
fn field_value(s: &str, p: usize) -> Result<(FieldValue<'_>, usize), Fail> {
    let b = s.as_bytes();
    let rest = &b[p.min(b.len())..];
    let boolean = |v: bool, long: usize| Ok((FieldValue::Boolean(v), p + long));
    match rest.first() {
        Some(b'-' | b'0'..=b'9') => number(s, p),
        Some(b'"') => string_value(s, p),
        Some(b't') => boolean(true, if rest.starts_with(b"true") { 4 } else { 1 }),
        Some(b'T') => boolean(
            true,
            if rest.starts_with(b"True") || rest.starts_with(b"TRUE") {
                4
            } else {
                1
            },
        ),
        Some(b'f') => boolean(false, if rest.starts_with(b"false") { 5 } else { 1 }),
        Some(b'F') => boolean(
            false,
            if rest.starts_with(b"False") || rest.starts_with(b"FALSE") {
                5
            } else {
                1
            },
        ),
        _ => Err(Fail::Soft),
    }
}

/// Parses one `key=value` field at `p` and appends it to `fields`; returns its end.
#[inline(always)]
fn field<'a>(s: &'a str, p: usize, fields: &mut FieldSet<'a>) -> Result<usize, Fail> {
    let key = element(s.as_bytes(), p, KEY)?;
    if s.as_bytes().get(key.end) != Some(&b'=') {
        return Err(Fail::Soft);
    }
    let (value, end) = field_value(s, key.end + 1)?;
    fields.push((text(s, p, key, KEY.escapes), value));
    Ok(end)
}

/// Parses one line. `s` starts at the line's first non-blank character and holds no line
/// terminator. `tag_hint`/`field_hint` are capacity hints (the previous line's counts).
pub(crate) fn parse_line<'a>(
    s: &'a str,
    raw: &'a str,
    line_number: usize,
    tag_hint: usize,
    field_hint: usize,
) -> Result<Line<'a>, ParseError> {
    let b = s.as_bytes();

    // Measurement.
    let measurement = match element(b, 0, MEASUREMENT) {
        Ok(span) => span,
        Err(Fail::Soft) => return Err(ParseError::MeasurementInvalid),
        Err(f) => return Err(f.into_error(s)),
    };
    let mut p = measurement.end;
    let measurement = text(s, 0, measurement, MEASUREMENT.escapes);

    // Tag set: a comma after the measurement commits to at least one `key=value`, and every
    // error inside the tag set is hard.
    let mut tags = TagSet::new();
    if b.get(p) == Some(&b',') {
        tags.reserve(tag_hint.max(1));
        let set_start = p + 1;
        p = set_start;
        loop {
            let key = match element(b, p, KEY) {
                Ok(span) => span,
                Err(Fail::Soft) => {
                    return Err(ParseError::ExpectedTagKey(ParseError::context(&s[p..])))
                }
                Err(f) => return Err(f.into_error(s)),
            };
            if b.get(key.end) != Some(&b'=') {
                return Err(ParseError::TagSetMalformed(ParseError::context(
                    &s[set_start..],
                )));
            }
            let vs = key.end + 1;
            let value = match element(b, vs, TAG_VALUE) {
                Ok(span) => span,
                Err(Fail::Soft) => {
                    return Err(ParseError::ExpectedTagValue(ParseError::context(&s[vs..])))
                }
                Err(f) => return Err(f.into_error(s)),
            };
            tags.push((
                text(s, p, key, KEY.escapes),
                text(s, vs, value, TAG_VALUE.escapes),
            ));
            p = value.end;
            if b.get(p) == Some(&b',') {
                p += 1;
            } else {
                break;
            }
        }
    }

    // One or more spaces (tabs are no separator).
    if b.get(p) != Some(&b' ') {
        return Err(ParseError::ExpectedSpace(s[p..].to_string()));
    }
    p = spaces_end(b, p);

    // Field set.
    let mut fields = FieldSet::with_capacity(field_hint.max(1));
    p = match field(s, p, &mut fields) {
        Ok(end) => end,
        Err(Fail::Soft) => return Err(ParseError::FieldSetMissing),
        Err(f) => return Err(f.into_error(s)),
    };
    if b.get(p) == Some(&b',') {
        match field(s, p + 1, &mut fields) {
            Ok(end) => {
                p = end;
                while b.get(p) == Some(&b',') {
                    match field(s, p + 1, &mut fields) {
                        Ok(end) => p = end,
                        // Leaves the comma in place: it becomes trailing content.
                        Err(Fail::Soft) => break,
                        Err(f) => return Err(f.into_error(s)),
                    }
                }
            }
            // Reference quirk (nom `separated_list1` handing over to `separated_list` after
            // the first element): when the *second* field fails softly, its comma has already
            // been consumed. So `m f=1,` is accepted and `m f=1,g=x` reports `g=x`.
            Err(Fail::Soft) => p += 1,
            Err(f) => return Err(f.into_error(s)),
        }
    }

    // Optional timestamp, then optional trailing spaces (allowed only after a timestamp).
    let mut timestamp = None;
    if b.get(p) == Some(&b' ') {
        let q = spaces_end(b, p);
        let negative = b.get(q) == Some(&b'-');
        let ds = q + usize::from(negative);
        let de = digits_end(b, ds);
        if de > ds {
            match parse_signed(negative, &b[ds..de]) {
                Some(ts) => timestamp = Some(ts),
                None => return Err(ParseError::TimestampValueInvalid(s[q..de].to_string())),
            }
            p = spaces_end(b, de);
        }
    }

    if p != b.len() {
        return Err(ParseError::TrailingContent(ParseError::context(&s[p..])));
    }

    // Deliberate deviation: checked only once the line parsed, so every line the reference
    // rejects gets the reference's message.
    if let Some(key) = duplicate_tag(&tags) {
        return Err(ParseError::DuplicateTag(key.to_string()));
    }

    Ok(Line {
        measurement,
        tags,
        fields,
        timestamp,
        line_number,
        raw,
    })
}

/// The first tag key (in line order) that repeats an earlier one.
fn duplicate_tag<'t>(tags: &'t [(Cow<'_, str>, Cow<'_, str>)]) -> Option<&'t str> {
    const SMALL: usize = 64;
    if tags.len() < 2 {
        return None;
    }
    if tags.len() > SMALL {
        let mut seen = std::collections::HashSet::with_capacity(tags.len());
        return tags
            .iter()
            .find(|(k, _)| !seen.insert(k.as_ref()))
            .map(|(k, _)| k.as_ref());
    }
    // Pairwise, but on 32-bit signatures (length and three sample bytes): equal keys have
    // equal signatures, and typical distinct keys differ in them, so strings are compared
    // only when it matters. Keys are never empty.
    let mut sigs = [0u32; SMALL];
    for ((k, _), sig) in tags.iter().zip(&mut sigs) {
        let b = k.as_bytes();
        *sig = (b.len() as u32).wrapping_mul(0x9E37_79B9)
            ^ u32::from(b[0])
            ^ u32::from(b[b.len() / 2]) << 8
            ^ u32::from(b[b.len() - 1]) << 16;
    }
    for j in 1..tags.len() {
        for i in 0..j {
            if sigs[i] == sigs[j] && tags[i].0 == tags[j].0 {
                return Some(&tags[j].0);
            }
        }
    }
    None
}
