//! Turns query text into tokens on demand. The parser drives it one token at a time because
//! `/` means division or the start of a regex depending on where the parser is.

use crate::duration::parse_duration;
use crate::error::ParseError;

/// InfluxQL's reserved words; they are identifiers only when double-quoted.
const KEYWORDS: &[&str] = &[
    "ALL",
    "ALTER",
    "ANALYZE",
    "AND",
    "ANY",
    "AS",
    "ASC",
    "BEGIN",
    "BY",
    "CARDINALITY",
    "CREATE",
    "CONTINUOUS",
    "DATABASE",
    "DATABASES",
    "DEFAULT",
    "DELETE",
    "DESC",
    "DESTINATIONS",
    "DIAGNOSTICS",
    "DISTINCT",
    "DROP",
    "DURATION",
    "END",
    "EVERY",
    "EXACT",
    "EXPLAIN",
    "FIELD",
    "FOR",
    "FROM",
    "GRANT",
    "GRANTS",
    "GROUP",
    "GROUPS",
    "IN",
    "INF",
    "INSERT",
    "INTO",
    "KEY",
    "KEYS",
    "KILL",
    "LIMIT",
    "MEASUREMENT",
    "MEASUREMENTS",
    "NAME",
    "OFFSET",
    "OR",
    "ON",
    "ORDER",
    "PASSWORD",
    "POLICY",
    "POLICIES",
    "PRIVILEGES",
    "QUERIES",
    "QUERY",
    "READ",
    "REPLICATION",
    "RESAMPLE",
    "RETENTION",
    "REVOKE",
    "SELECT",
    "SERIES",
    "SET",
    "SHOW",
    "SHARD",
    "SHARDS",
    "SLIMIT",
    "SOFFSET",
    "STATS",
    "SUBSCRIPTION",
    "SUBSCRIPTIONS",
    "TAG",
    "TO",
    "USER",
    "USERS",
    "VALUES",
    "WHERE",
    "WITH",
    "WRITE",
];

/// Whether `s` is a reserved word (case-insensitive).
pub fn is_keyword(s: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(s))
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// An unquoted word: keyword or identifier, the parser decides.
    Word(String),
    QuotedIdent(String),
    Str(String),
    Integer(u64),
    Float(f64),
    /// Nanoseconds.
    Duration(i64),
    BindParam(String),
    Star,
    Comma,
    LParen,
    RParen,
    Dot,
    Semicolon,
    DoubleColon,
    Plus,
    Minus,
    Slash,
    Percent,
    Amp,
    Pipe,
    Caret,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    EqRegex,
    NotEqRegex,
    Eof,
}

impl Tok {
    /// How the token is named in error details.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("identifier {w}"),
            Tok::QuotedIdent(w) => format!("identifier \"{w}\""),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Integer(v) => format!("integer {v}"),
            Tok::Float(v) => format!("number {v}"),
            Tok::Duration(_) => "duration".to_string(),
            Tok::BindParam(p) => format!("bound parameter ${p}"),
            Tok::Eof => "EOF".to_string(),
            other => format!("'{}'", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::Star => "*",
            Tok::Comma => ",",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Dot => ".",
            Tok::Semicolon => ";",
            Tok::DoubleColon => "::",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Amp => "&",
            Tok::Pipe => "|",
            Tok::Caret => "^",
            Tok::Eq => "=",
            Tok::NotEq => "!=",
            Tok::Lt => "<",
            Tok::LtEq => "<=",
            Tok::Gt => ">",
            Tok::GtEq => ">=",
            Tok::EqRegex => "=~",
            Tok::NotEqRegex => "!~",
            _ => "?",
        }
    }

    /// Whether this is the unquoted word `kw` (case-insensitive).
    pub(crate) fn is_word(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset of the first character.
    pub start: usize,
}

pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Self { src, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn err(&self, message: &str, pos: usize) -> ParseError {
        let found = self.src[pos..]
            .chars()
            .next()
            .map(|c| format!("'{c}'"))
            .unwrap_or_else(|| "EOF".to_string());
        ParseError::new(message, pos, found)
    }

    /// Skips whitespace and `--` / `/* */` comments.
    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with("--") {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else if let Some(body) = trimmed.strip_prefix("/*") {
                match body.find("*/") {
                    Some(end) => self.pos += 2 + end + 2,
                    None => return Err(self.err("unterminated comment", self.pos)),
                }
            } else {
                return Ok(());
            }
        }
    }

    pub(crate) fn next_token(&mut self) -> Result<Token, ParseError> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(c) = self.peek_char() else {
            return Ok(Token {
                tok: Tok::Eof,
                start,
            });
        };
        let tok = match c {
            c if is_ident_start(c) => {
                let len = self
                    .rest()
                    .find(|c| !is_ident_char(c))
                    .unwrap_or(self.rest().len());
                let w = self.rest()[..len].to_string();
                self.pos += len;
                Tok::Word(w)
            }
            '"' => Tok::QuotedIdent(self.scan_quoted('"')?),
            '\'' => Tok::Str(self.scan_quoted('\'')?),
            '0'..='9' => self.scan_number()?,
            '.' if self.rest()[1..].starts_with(|c: char| c.is_ascii_digit()) => {
                self.scan_number()?
            }
            '$' => {
                self.pos += 1;
                match self.peek_char() {
                    Some('"') => Tok::BindParam(self.scan_quoted('"')?),
                    Some(c) if is_ident_char(c) => {
                        let len = self
                            .rest()
                            .find(|c| !is_ident_char(c))
                            .unwrap_or(self.rest().len());
                        let name = self.rest()[..len].to_string();
                        self.pos += len;
                        Tok::BindParam(name)
                    }
                    _ => {
                        return Err(
                            self.err("invalid bound parameter, expected identifier", self.pos)
                        )
                    }
                }
            }
            _ => {
                let two = self.rest().get(..2).unwrap_or("");
                let (tok, len) = match two {
                    "::" => (Tok::DoubleColon, 2),
                    "!=" => (Tok::NotEq, 2),
                    "<>" => (Tok::NotEq, 2),
                    "<=" => (Tok::LtEq, 2),
                    ">=" => (Tok::GtEq, 2),
                    "=~" => (Tok::EqRegex, 2),
                    "!~" => (Tok::NotEqRegex, 2),
                    _ => {
                        let t = match c {
                            '*' => Tok::Star,
                            ',' => Tok::Comma,
                            '(' => Tok::LParen,
                            ')' => Tok::RParen,
                            '.' => Tok::Dot,
                            ';' => Tok::Semicolon,
                            '+' => Tok::Plus,
                            '-' => Tok::Minus,
                            '/' => Tok::Slash,
                            '%' => Tok::Percent,
                            '&' => Tok::Amp,
                            '|' => Tok::Pipe,
                            '^' => Tok::Caret,
                            '=' => Tok::Eq,
                            '<' => Tok::Lt,
                            '>' => Tok::Gt,
                            _ => return Err(self.err("invalid character", start)),
                        };
                        (t, 1)
                    }
                };
                self.pos += len;
                tok
            }
        };
        Ok(Token { tok, start })
    }

    /// Reads a quoted string or identifier starting at the opening quote.
    fn scan_quoted(&mut self, quote: char) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek_char() else {
                let what = if quote == '\'' {
                    "unterminated string literal"
                } else {
                    "unterminated quoted identifier"
                };
                return Err(self.err(what, start));
            };
            self.pos += c.len_utf8();
            match c {
                c if c == quote => return Ok(out),
                '\\' => {
                    let Some(e) = self.peek_char() else { continue };
                    let esc_pos = self.pos - 1;
                    self.pos += e.len_utf8();
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        '\\' => out.push('\\'),
                        '\'' => out.push('\''),
                        '"' => out.push('"'),
                        _ => return Err(self.err("invalid escape sequence", esc_pos)),
                    }
                }
                c => out.push(c),
            }
        }
    }

    /// Integer, float (`1.5`, `.5`) or duration (`10s`, `1h30m`).
    fn scan_number(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        let rest = self.rest();
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let after = &rest[int_len..];
        let frac_len =
            if after.starts_with('.') && after[1..].starts_with(|c: char| c.is_ascii_digit()) {
                1 + after[1..].bytes().take_while(u8::is_ascii_digit).count()
            } else {
                0
            };
        if frac_len > 0 {
            let text = &rest[..int_len + frac_len];
            self.pos += text.len();
            let v: f64 = text
                .parse()
                .map_err(|_| self.err("invalid number", start))?;
            return Ok(Tok::Float(v));
        }
        let word_len = after
            .find(|c: char| !(is_ident_char(c) || c == 'µ'))
            .unwrap_or(after.len());
        if word_len > 0 {
            let text = &rest[..int_len + word_len];
            self.pos += text.len();
            return parse_duration(text)
                .map(Tok::Duration)
                .ok_or_else(|| ParseError::new("invalid duration", start, format!("'{text}'")));
        }
        let text = &rest[..int_len];
        self.pos += int_len;
        text.parse::<u64>()
            .map(Tok::Integer)
            .map_err(|_| ParseError::new("unable to parse integer", start, text.to_string()))
    }

    /// Reads a regex whose opening `/` is at `start`; `\/` stands for `/`, other escapes are
    /// passed through to the regex engine untouched.
    pub(crate) fn scan_regex(&mut self, start: usize) -> Result<String, ParseError> {
        self.pos = start + 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek_char() else {
                return Err(self.err("unterminated regex literal", start));
            };
            self.pos += c.len_utf8();
            match c {
                '/' => return Ok(out),
                '\\' => match self.peek_char() {
                    Some('/') => {
                        self.pos += 1;
                        out.push('/');
                    }
                    Some(e) => {
                        self.pos += e.len_utf8();
                        out.push('\\');
                        out.push(e);
                    }
                    None => return Err(self.err("unterminated regex literal", start)),
                },
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        let mut l = Lexer::new(s);
        let mut out = vec![];
        loop {
            let t = l.next_token().unwrap();
            if t.tok == Tok::Eof {
                return out;
            }
            out.push(t.tok);
        }
    }

    #[test]
    fn lexes_operators_and_literals() {
        assert_eq!(
            toks("a::tag >= 1.5 <> 'x\\'y' =~ != !~ 10s 7 .5"),
            vec![
                Tok::Word("a".into()),
                Tok::DoubleColon,
                Tok::Word("tag".into()),
                Tok::GtEq,
                Tok::Float(1.5),
                Tok::NotEq,
                Tok::Str("x'y".into()),
                Tok::EqRegex,
                Tok::NotEq,
                Tok::NotEqRegex,
                Tok::Duration(10_000_000_000),
                Tok::Integer(7),
                Tok::Float(0.5),
            ]
        );
    }

    #[test]
    fn skips_comments() {
        assert_eq!(
            toks("a -- comment\n/* block */ b"),
            vec![Tok::Word("a".into()), Tok::Word("b".into())]
        );
    }

    #[test]
    fn quoted_identifier_escapes() {
        assert_eq!(
            toks(r#""a\"b\\c""#),
            vec![Tok::QuotedIdent("a\"b\\c".into())]
        );
    }

    #[test]
    fn bind_params() {
        assert_eq!(
            toks(r#"$host $"odd name""#),
            vec![
                Tok::BindParam("host".into()),
                Tok::BindParam("odd name".into())
            ]
        );
    }

    #[test]
    fn regex_escaped_slash() {
        let mut l = Lexer::new(r"/a\/b\d/ x");
        assert_eq!(l.scan_regex(0).unwrap(), r"a/b\d");
        assert_eq!(l.next_token().unwrap().tok, Tok::Word("x".into()));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = Lexer::new("  'abc").next_token().unwrap_err();
        assert_eq!(e.to_string(), "unterminated string literal at pos 2");
        let e = Lexer::new("10min").next_token().unwrap_err();
        assert_eq!(e.pos(), 0);
        assert_eq!(e.message(), "invalid duration");
        let e = Lexer::new("99999999999999999999999")
            .next_token()
            .unwrap_err();
        assert_eq!(e.message(), "unable to parse integer");
        let e = Lexer::new("a ?")
            .next_token()
            .and_then(|_| Lexer::new(" ?").next_token());
        assert_eq!(e.unwrap_err().pos(), 1);
    }
}
