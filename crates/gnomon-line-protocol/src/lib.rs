//! InfluxDB line protocol for Gnomon: request body text → typed lines, and timestamp
//! precision handling.
//!
//! This crate owns
//! * splitting a body into lines, skipping blank and `#` comment lines, and numbering the
//!   rest ([`parse_lines`]);
//! * the grammar of a line: measurement, tags, fields, timestamp, escapes, value types, the
//!   64 KiB element limit, and the exact error message for every malformed line
//!   ([`Line`], [`LineError`], [`ParseError`]);
//! * the `precision` parameter and the conversion of timestamps to nanoseconds
//!   ([`Precision`]).
//!
//! It must not reach into anything else: no catalog or schema (column types, reserved names,
//! duplicate *field* keys, table/column limits are the write validator's job), no clock (the
//! caller passes "now" to [`Precision::default_time`]), no I/O, no HTTP or JSON shapes (the
//! server truncates `original_line` and builds the response). It depends on nothing in the
//! workspace.
//!
//! The behaviour is LINE_PROTOCOL.md §1–§5 and §9, which describe the reference server
//! (InfluxDB 3 Core, whose parser is the `influxdb_line_protocol` crate). `tests/oracle.rs`
//! checks this parser against that crate on generated and hand-written input.
//!
//! Parsing is zero-copy: every name and string value is a [`Cow::Borrowed`] slice of the body
//! unless an escape sequence had to be removed.
//!
//! # Deliberate deviations from the reference
//!
//! 1. **Duplicate tag keys are rejected** (`` Must not contain duplicate tags, but `<key>` was
//!    repeated ``). The reference accepts `m,t=1,t=2 f=1` and then writes two values into one
//!    row's tag column, corrupting the buffered chunk (LINE_PROTOCOL.md §6). The check runs
//!    after the line has otherwise parsed, so a line the reference rejects for another reason
//!    keeps the reference's message. Duplicate *field* keys are kept in [`Line::fields`]; the
//!    validator rejects them.
//! 2. **[`LineError::original_line`] is the offending line's own text.** The reference shows
//!    the N-th `\n`-separated line of the body, with N counted among non-blank, non-comment
//!    lines, so it shows a different line whenever blank or comment lines (or a line
//!    continued by an escaped or quoted newline) come before; and it truncates to 20 bytes.
//!    Here it is never truncated (the server applies its own cap). Like the reference's, it
//!    has the `\r` of a `\r\n` terminator removed.
//! 3. **`auto` precision of `i64::MIN`** is nanoseconds, as the spec's magnitude rule says;
//!    the reference computes `|ts|` with `i64::abs`, which wraps in release builds, and then
//!    reports an overflow for `Auto` (or panics in debug builds).
//!
//! Points where the spec's prose is less precise than the reference, and the reference was
//! followed: `Expected at least one space character, got `…`` quotes the *whole* rest of the
//! line (the reference does not apply its 10-character rule there); the 10-character rule
//! cuts text longer than 10 *bytes* to 10 *characters*.

#![forbid(unsafe_code)]

use std::borrow::Cow;

mod error;
mod parse;
mod precision;
mod split;

pub use error::{LineError, ParseError};
pub use parse::MAX_ELEMENT_LEN;
pub use precision::Precision;

/// Where the line starting at byte `start` of `body` ends: the index of its terminating `\n`,
/// or `None` when it runs to the end of `body` (so more input may still belong to it). Uses
/// the same rule as [`parse_lines`], so a client cutting a large body into requests at these
/// points never splits a line (an escaped or quoted newline does not end one).
pub fn line_end(body: &[u8], start: usize) -> Option<usize> {
    let end = split::line_end(body, start);
    (end < body.len()).then_some(end)
}

/// Whether a line (as cut by [`line_end`]) holds a point, i.e. is neither blank nor a `#`
/// comment: exactly the lines that [`Line::line_number`] counts.
pub fn is_point_line(line: &[u8]) -> bool {
    split::content_start(line).is_some()
}

/// A field value, typed by its syntax: `1i` integer, `1u` unsigned, `1` / `1.5` / `1e3` float,
/// `"s"` string, `t`/`true`/... boolean.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Float(f64),
    Integer(i64),
    UInteger(u64),
    /// Unescaped; borrowed from the body when it contained no `\"` or `\\`.
    String(Cow<'a, str>),
    Boolean(bool),
}

/// Tags of a line, in line order (unescaped key, unescaped value). Duplicates are rejected.
pub type TagSet<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;
/// Fields of a line, in line order (unescaped key, value). May hold duplicate keys.
pub type FieldSet<'a> = Vec<(Cow<'a, str>, FieldValue<'a>)>;

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    /// Unescaped measurement name.
    pub measurement: Cow<'a, str>,
    pub tags: TagSet<'a>,
    /// At least one field.
    pub fields: FieldSet<'a>,
    /// The timestamp as written, no precision applied (see [`Precision::to_nanos`]).
    pub timestamp: Option<i64>,
    /// 1-based index among the body's non-blank, non-comment lines.
    pub line_number: usize,
    /// This line's text: no terminating `\n`, but a `\r` before it is part of the line.
    pub raw: &'a str,
}

/// Iterator over the lines of a body; see [`parse_lines`].
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    body: &'a str,
    pos: usize,
    line_number: usize,
    /// Capacity hints: the previous line's tag and field counts (lines of a batch usually
    /// share a shape, so this saves the vectors' regrowth).
    tag_hint: usize,
    field_hint: usize,
}

/// Parses a request body: yields one result per line, skipping blank lines (only spaces and
/// tabs) and `#` comment lines, which are also not counted in `line_number`. A bad line does
/// not stop the iteration.
pub fn parse_lines(body: &str) -> Lines<'_> {
    Lines {
        body,
        pos: 0,
        line_number: 0,
        tag_hint: 0,
        field_hint: 0,
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<Line<'a>, LineError>;

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.body.as_bytes();
        loop {
            // An empty last line (after a final `\n`, or an empty body) would be blank anyway.
            if self.pos >= bytes.len() {
                return None;
            }
            let start = self.pos;
            let end = split::line_end(bytes, start);
            self.pos = end + 1;
            let raw = &self.body[start..end];
            let Some(content) = split::content_start(raw.as_bytes()) else {
                continue;
            };
            self.line_number += 1;
            return Some(
                match parse::parse_line(
                    &raw[content..],
                    raw,
                    self.line_number,
                    self.tag_hint,
                    self.field_hint,
                ) {
                    Ok(line) => {
                        self.tag_hint = line.tags.len();
                        self.field_hint = line.fields.len();
                        Ok(line)
                    }
                    Err(e) => Err(LineError {
                        line_number: self.line_number,
                        original_line: shown_line(raw, end < bytes.len()).to_string(),
                        message: e.to_string(),
                    }),
                },
            );
        }
    }
}

impl std::iter::FusedIterator for Lines<'_> {}

/// A line as shown in an error: without the `\r` of a `\r\n` terminator (`str::lines` rules).
fn shown_line(raw: &str, newline_terminated: bool) -> &str {
    if newline_terminated {
        raw.strip_suffix('\r').unwrap_or(raw)
    } else {
        raw
    }
}

#[cfg(test)]
mod tests;
