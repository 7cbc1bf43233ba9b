//! Splitting a body into lines (LINE_PROTOCOL.md §2).
//!
//! The rule is the reference's `split_lines` (itself a port of Go's `scanLine`): a `\n` ends
//! the line unless it is escaped by a backslash or inside a double-quoted string, where
//! "inside a string" is tracked by a small heuristic: after the first unescaped space, count
//! the unquoted `=` and `,`; an unescaped `"` toggles quoting only while `=` outnumber `,`.
//! This heuristic and the real grammar disagree in odd cases (e.g. `m a,b=1,c="x<LF>y"`
//! splits, and a line's *leading* space already starts the "field" state), so it is kept
//! exactly as it is rather than folded into the parser.

use memchr::{memchr, memchr3};

/// Returns the index of the `\n` that ends the line starting at `start`, or `b.len()`.
#[inline]
pub(crate) fn line_end(b: &[u8], start: usize) -> usize {
    // Fast path: if neither a backslash nor a quote comes before the next newline, the
    // heuristic's state cannot change and that newline ends the line.
    match memchr3(b'\n', b'"', b'\\', &b[start..]) {
        None => b.len(),
        Some(off) if b[start + off] == b'\n' => start + off,
        Some(_) => line_end_slow(b, start),
    }
}

/// The reference's state machine, byte by byte. (It works on chars; skipping only the first
/// byte of an escaped multi-byte char is equivalent, as continuation bytes are never ASCII.)
#[cold]
fn line_end_slow(b: &[u8], start: usize) -> usize {
    let mut in_escape = false;
    let mut fields = false;
    let mut quoted = false;
    let mut equals = 0usize;
    let mut commas = 0usize;
    for (i, &c) in b.iter().enumerate().skip(start) {
        if in_escape {
            in_escape = false;
        } else if c == b'\\' {
            in_escape = true;
        } else if c == b' ' {
            fields = true;
        } else if fields && !quoted && c == b'=' {
            equals += 1;
        } else if fields && !quoted && c == b',' {
            commas += 1;
        } else if fields && c == b'"' && equals > commas {
            quoted = !quoted;
        } else if c == b'\n' && !quoted {
            return i;
        }
    }
    b.len()
}

/// Where a line's content starts: after leading spaces, tabs and newlines, skipping comment
/// lines. `None` if the line is blank or a comment.
///
/// A `#` comment runs to the next `\n` *inside this line* (there is one only if it was
/// escaped or quoted), and what follows it is content again, as in the reference.
#[inline]
pub(crate) fn content_start(line: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        while i < line.len() && matches!(line[i], b' ' | b'\t' | b'\n') {
            i += 1;
        }
        if i == line.len() {
            return None;
        }
        if line[i] != b'#' {
            return Some(i);
        }
        i = memchr(b'\n', &line[i..]).map_or(line.len(), |off| i + off);
    }
}
