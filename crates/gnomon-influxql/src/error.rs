use std::fmt;

/// A syntax error: what the parser expected and the byte offset where it gave up.
///
/// `Display` follows the reference server's wording (`<message> at pos <n>`), because clients
/// and tests match on it; [`ParseError::line_col`] gives a human-friendly location as well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    message: String,
    pos: usize,
    found: String,
}

impl ParseError {
    pub(crate) fn new(message: impl Into<String>, pos: usize, found: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            pos,
            found: found.into(),
        }
    }

    /// What went wrong, without the position (e.g. `invalid LIMIT clause, expected unsigned integer`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Byte offset into the query text.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// A short description of the token found at [`ParseError::pos`] (`EOF`, `identifier "x"`, ...).
    pub fn found(&self) -> &str {
        &self.found
    }

    /// 1-based line and character (counted in Unicode scalar values) of [`ParseError::pos`].
    pub fn line_col(&self, input: &str) -> (usize, usize) {
        let pos = self.pos.min(input.len());
        let mut line = 1;
        let mut col = 1;
        for (i, c) in input.char_indices() {
            if i >= pos {
                break;
            }
            if c == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
        }
        (line, col)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at pos {}", self.message, self.pos)
    }
}

impl std::error::Error for ParseError {}
