//! Parse errors and the line error reported to the client.

/// Maximum number of characters of input quoted by most error messages.
const MAX_CONTEXT_CHARS: usize = 10;

/// Why a line could not be parsed. `Display` gives the exact message of the reference server.
///
/// Variants that quote the input hold the quoted text exactly as it appears in the message:
/// the constructors apply the reference's truncation rule (see [`ParseError::context`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("Invalid measurement was provided")]
    MeasurementInvalid,

    #[error("No fields were provided")]
    FieldSetMissing,

    #[error("Unable to parse integer value `{0}`")]
    IntegerValueInvalid(String),

    #[error("Unable to parse unsigned integer value `{0}`")]
    UIntegerValueInvalid(String),

    /// Kept for completeness: the float grammar only admits text `f64::from_str` accepts.
    #[error("Unable to parse floating-point value `{0}`")]
    FloatValueInvalid(String),

    #[error("Unable to parse timestamp value `{0}`")]
    TimestampValueInvalid(String),

    #[error("Measurements, tag keys and values, and field keys may not end with a backslash")]
    EndsWithBackslash,

    #[error("String is greater than 64KB")]
    StringTooLarge,

    /// Holds the truncated trailing content.
    #[error("Could not parse entire line. Found trailing content: `{0}`")]
    TrailingContent(String),

    /// Holds the truncated tag set (everything after the measurement's comma).
    #[error("Tag set malformed: could not find equals sign in `{0}`")]
    TagSetMalformed(String),

    /// Holds the *whole* rest of the line (the reference does not truncate this one);
    /// empty means end of input.
    #[error("Expected at least one space character, got {}", quoted_or_end(.0))]
    ExpectedSpace(String),

    /// Holds the truncated rest of the line; empty means end of input.
    #[error("Expected tag key, got {}", quoted_or_end(.0))]
    ExpectedTagKey(String),

    /// Holds the truncated rest of the line; empty means end of input.
    #[error("Expected tag value, got {}", quoted_or_end(.0))]
    ExpectedTagValue(String),

    /// Deliberate deviation: the reference accepts repeated tag keys (and then corrupts the
    /// buffered chunk); this parser rejects them with the message the reference library
    /// already has for it.
    #[error("Must not contain duplicate tags, but `{0}` was repeated")]
    DuplicateTag(String),
}

impl ParseError {
    /// The reference's context rule: text longer than 10 **bytes** is cut to its first 10
    /// **characters** followed by `...` (so 6 two-byte characters come out as all 6 plus `...`).
    pub fn context(input: &str) -> String {
        if input.len() > MAX_CONTEXT_CHARS {
            let cut = input
                .char_indices()
                .nth(MAX_CONTEXT_CHARS)
                .map_or(input.len(), |(i, _)| i);
            format!("{}...", &input[..cut])
        } else {
            input.to_string()
        }
    }
}

fn quoted_or_end(s: &str) -> String {
    if s.is_empty() {
        "end of input".to_string()
    } else {
        format!("`{s}`")
    }
}

/// A line of the body that was rejected by the parser.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LineError {
    /// 1-based index among the body's non-blank, non-comment lines.
    pub line_number: usize,
    /// The offending line's own full text (not truncated; a `\r` before its terminating `\n`
    /// is removed, as the reference does when it shows a line).
    pub original_line: String,
    /// The exact error message (see [`ParseError`]).
    pub message: String,
}
