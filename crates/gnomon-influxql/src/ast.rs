//! The typed syntax tree. Every node's `Display` prints InfluxQL that parses back to an equal
//! node (the round-trip property the tests check), not necessarily the text it came from.

use std::fmt::{self, Display, Formatter, Write};

use crate::duration::format_duration;
use crate::lexer::is_keyword;

/// An identifier: measurement, field, tag, database, alias... Stored unquoted and unescaped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(pub String);

impl Ident {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Display for Ident {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_ident(f, &self.0)
    }
}

/// Whether `s` can be written without double quotes and still read back as an identifier.
fn is_plain_ident(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !is_keyword(s)
        && !s.eq_ignore_ascii_case("true")
        && !s.eq_ignore_ascii_case("false")
}

fn write_ident(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    if is_plain_ident(s) {
        return f.write_str(s);
    }
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

fn write_string(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('\'')?;
    for c in s.chars() {
        match c {
            '\'' => f.write_str("\\'")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('\'')
}

/// A regular expression literal `/.../`; the pattern has `\/` already turned into `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Regex(pub String);

impl Display for Regex {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_char('/')?;
        for c in self.0.chars() {
            if c == '/' {
                f.write_str("\\/")?;
            } else {
                f.write_char(c)?;
            }
        }
        f.write_char('/')
    }
}

/// One query text: statements separated by `;`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub statements: Vec<Statement>,
}

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, s) in self.statements.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            Display::fmt(s, f)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Select(Box<SelectStatement>),
    ShowDatabases,
    ShowRetentionPolicies(ShowRetentionPolicies),
    ShowMeasurements(ShowMeasurements),
    ShowTagKeys(ShowTagKeys),
    ShowTagValues(ShowTagValues),
    ShowFieldKeys(ShowFieldKeys),
    Explain(Explain),
    /// Parsed so the server can answer "not implemented" rather than a syntax error.
    CreateDatabase(Ident),
    /// Parsed so the server can answer "not implemented" rather than a syntax error.
    Delete(Delete),
    /// Parsed so the server can answer "not implemented" rather than a syntax error.
    DropMeasurement(Ident),
}

impl Display for Statement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Statement::Select(s) => Display::fmt(s, f),
            Statement::ShowDatabases => f.write_str("SHOW DATABASES"),
            Statement::ShowRetentionPolicies(s) => Display::fmt(s, f),
            Statement::ShowMeasurements(s) => Display::fmt(s, f),
            Statement::ShowTagKeys(s) => Display::fmt(s, f),
            Statement::ShowTagValues(s) => Display::fmt(s, f),
            Statement::ShowFieldKeys(s) => Display::fmt(s, f),
            Statement::Explain(s) => Display::fmt(s, f),
            Statement::CreateDatabase(name) => write!(f, "CREATE DATABASE {name}"),
            Statement::Delete(d) => Display::fmt(d, f),
            Statement::DropMeasurement(name) => write!(f, "DROP MEASUREMENT {name}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Explain {
    pub analyze: bool,
    pub verbose: bool,
    pub select: Box<SelectStatement>,
}

impl Display for Explain {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("EXPLAIN ")?;
        if self.analyze {
            f.write_str("ANALYZE ")?;
        }
        if self.verbose {
            f.write_str("VERBOSE ")?;
        }
        Display::fmt(&self.select, f)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Delete {
    pub from: Option<Vec<QualifiedMeasurement>>,
    pub condition: Option<Expr>,
}

impl Display for Delete {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("DELETE")?;
        if let Some(from) = &self.from {
            write!(f, " FROM {}", List(from))?;
        }
        if let Some(c) = &self.condition {
            write!(f, " WHERE {c}")?;
        }
        Ok(())
    }
}

/// Comma-separated display of a slice.
struct List<'a, T>(&'a [T]);

impl<T: Display> Display for List<'_, T> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            Display::fmt(item, f)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fill {
    Null,
    None,
    Previous,
    Linear,
    Value(Number),
}

impl Display for Fill {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Fill::Null => f.write_str("fill(null)"),
            Fill::None => f.write_str("fill(none)"),
            Fill::Previous => f.write_str("fill(previous)"),
            Fill::Linear => f.write_str("fill(linear)"),
            Fill::Value(n) => write!(f, "fill({n})"),
        }
    }
}

/// A numeric literal as it may appear in `fill(...)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Integer(i64),
    Unsigned(u64),
    Float(f64),
}

impl Display for Number {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Number::Integer(v) => write!(f, "{v}"),
            Number::Unsigned(v) => write!(f, "{v}"),
            Number::Float(v) => write_float(f, *v),
        }
    }
}

fn write_float(f: &mut Formatter<'_>, v: f64) -> fmt::Result {
    // Rust prints integral floats without a fraction ("3"), which would read back as an integer.
    let s = v.to_string();
    f.write_str(&s)?;
    if !s.contains(['.', 'e', 'N', 'i']) {
        f.write_str(".0")?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct SelectStatement {
    pub fields: Vec<Field>,
    pub from: Vec<MeasurementSelection>,
    pub condition: Option<Expr>,
    pub group_by: Option<Vec<Dimension>>,
    pub fill: Option<Fill>,
    pub order_by: Option<Order>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub slimit: Option<u64>,
    pub soffset: Option<u64>,
    /// The IANA zone name from `tz('...')`, unvalidated.
    pub timezone: Option<String>,
}

impl Display for SelectStatement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "SELECT {} FROM {}", List(&self.fields), List(&self.from))?;
        if let Some(c) = &self.condition {
            write!(f, " WHERE {c}")?;
        }
        if let Some(g) = &self.group_by {
            write!(f, " GROUP BY {}", List(g))?;
        }
        if let Some(fill) = &self.fill {
            write!(f, " {fill}")?;
        }
        match self.order_by {
            Some(Order::Ascending) => f.write_str(" ORDER BY time ASC")?,
            Some(Order::Descending) => f.write_str(" ORDER BY time DESC")?,
            None => {}
        }
        for (kw, v) in [
            ("LIMIT", self.limit),
            ("OFFSET", self.offset),
            ("SLIMIT", self.slimit),
            ("SOFFSET", self.soffset),
        ] {
            if let Some(v) = v {
                write!(f, " {kw} {v}")?;
            }
        }
        if let Some(tz) = &self.timezone {
            f.write_str(" tz(")?;
            write_string(f, tz)?;
            f.write_char(')')?;
        }
        Ok(())
    }
}

/// One projection: an expression and its optional `AS` alias.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub expr: Expr,
    pub alias: Option<Ident>,
}

impl Display for Field {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        Display::fmt(&self.expr, f)?;
        if let Some(a) = &self.alias {
            write!(f, " AS {a}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum MeasurementSelection {
    Name(QualifiedMeasurement),
    Subquery(Box<SelectStatement>),
}

impl Display for MeasurementSelection {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MeasurementSelection::Name(n) => Display::fmt(n, f),
            MeasurementSelection::Subquery(s) => write!(f, "({s})"),
        }
    }
}

/// `[db.[rp].]name` where name is an identifier or a regex.
#[derive(Debug, Clone, PartialEq)]
pub struct QualifiedMeasurement {
    pub database: Option<Ident>,
    pub retention_policy: Option<Ident>,
    pub name: MeasurementName,
}

impl QualifiedMeasurement {
    pub fn name(name: impl Into<String>) -> Self {
        Self {
            database: None,
            retention_policy: None,
            name: MeasurementName::Name(Ident::new(name)),
        }
    }
}

impl Display for QualifiedMeasurement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match (&self.database, &self.retention_policy) {
            (Some(db), Some(rp)) => write!(f, "{db}.{rp}.")?,
            (Some(db), None) => write!(f, "{db}..")?,
            (None, Some(rp)) => write!(f, "{rp}.")?,
            (None, None) => {}
        }
        Display::fmt(&self.name, f)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum MeasurementName {
    Name(Ident),
    Regex(Regex),
}

impl Display for MeasurementName {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MeasurementName::Name(n) => Display::fmt(n, f),
            MeasurementName::Regex(r) => Display::fmt(r, f),
        }
    }
}

/// One `GROUP BY` element.
#[derive(Debug, Clone, PartialEq)]
pub enum Dimension {
    /// `time(interval[, offset])`; checked to be durations by [`crate::semantic`].
    Time {
        interval: Expr,
        offset: Option<Expr>,
    },
    Tag(Ident),
    Regex(Regex),
    Wildcard,
}

impl Display for Dimension {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Dimension::Time {
                interval,
                offset: Some(o),
            } => write!(f, "time({interval}, {o})"),
            Dimension::Time { interval, .. } => write!(f, "time({interval})"),
            Dimension::Tag(t) => Display::fmt(t, f),
            Dimension::Regex(r) => Display::fmt(r, f),
            Dimension::Wildcard => f.write_char('*'),
        }
    }
}

/// The `::type` suffix of a variable reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Float,
    Integer,
    Unsigned,
    String,
    Boolean,
    Field,
    Tag,
}

impl DataType {
    pub(crate) fn from_name(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "float" => Self::Float,
            "integer" => Self::Integer,
            "unsigned" => Self::Unsigned,
            "string" => Self::String,
            "boolean" => Self::Boolean,
            "field" => Self::Field,
            "tag" => Self::Tag,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Float => "float",
            Self::Integer => "integer",
            Self::Unsigned => "unsigned",
            Self::String => "string",
            Self::Boolean => "boolean",
            Self::Field => "field",
            Self::Tag => "tag",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WildcardType {
    Field,
    Tag,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Integer(i64),
    /// Integers above `i64::MAX`.
    Unsigned(u64),
    Float(f64),
    String(String),
    Boolean(bool),
    /// Nanoseconds.
    Duration(i64),
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Integer(v) => write!(f, "{v}"),
            Literal::Unsigned(v) => write!(f, "{v}"),
            Literal::Float(v) => write_float(f, *v),
            Literal::String(s) => write_string(f, s),
            Literal::Boolean(b) => f.write_str(if *b { "true" } else { "false" }),
            Literal::Duration(ns) => f.write_str(&format_duration(*ns)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Minus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitAnd,
    BitOr,
    BitXor,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    EqRegex,
    NotEqRegex,
    And,
    Or,
}

impl BinaryOp {
    /// Binding strength, as in InfluxQL 1.x: OR < AND < comparisons < additive < multiplicative.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq
            | BinaryOp::NotEq
            | BinaryOp::Lt
            | BinaryOp::LtEq
            | BinaryOp::Gt
            | BinaryOp::GtEq
            | BinaryOp::EqRegex
            | BinaryOp::NotEqRegex => 4,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::BitOr | BinaryOp::BitXor => 5,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod | BinaryOp::BitAnd => 6,
        }
    }

    pub fn is_comparison(self) -> bool {
        self.precedence() == 4
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::BitAnd => "&",
            BinaryOp::BitOr => "|",
            BinaryOp::BitXor => "^",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::EqRegex => "=~",
            BinaryOp::NotEqRegex => "!~",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
        }
    }
}

impl Display for BinaryOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Expressions of projections, conditions and call arguments share one type, as in InfluxQL
/// 1.x; which forms are allowed where is checked by [`crate::semantic`].
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    VarRef {
        name: Ident,
        data_type: Option<DataType>,
    },
    Wildcard(Option<WildcardType>),
    Regex(Regex),
    Literal(Literal),
    /// `$name`, replaced by [`crate::semantic::bind_parameters`].
    BindParam(String),
    /// A function call; `name` is lower-cased.
    Call {
        name: String,
        args: Vec<Expr>,
    },
    /// `DISTINCT field` (the keyword form, same meaning as `distinct(field)`).
    Distinct(Ident),
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    Binary {
        lhs: Box<Expr>,
        op: BinaryOp,
        rhs: Box<Expr>,
    },
    /// Parentheses, kept so that printing needs no precedence logic.
    Nested(Box<Expr>),
}

impl Expr {
    pub fn var(name: impl Into<String>) -> Self {
        Expr::VarRef {
            name: Ident::new(name),
            data_type: None,
        }
    }

    pub fn binary(lhs: Expr, op: BinaryOp, rhs: Expr) -> Self {
        Expr::Binary {
            lhs: Box::new(lhs),
            op,
            rhs: Box::new(rhs),
        }
    }

    pub fn call(name: &str, args: Vec<Expr>) -> Self {
        Expr::Call {
            name: name.to_ascii_lowercase(),
            args,
        }
    }

    /// The expression with any number of enclosing parentheses removed.
    pub fn unnested(&self) -> &Expr {
        let mut e = self;
        while let Expr::Nested(inner) = e {
            e = inner;
        }
        e
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::VarRef { name, data_type } => {
                Display::fmt(name, f)?;
                if let Some(t) = data_type {
                    write!(f, "::{}", t.as_str())?;
                }
                Ok(())
            }
            Expr::Wildcard(None) => f.write_char('*'),
            Expr::Wildcard(Some(WildcardType::Field)) => f.write_str("*::field"),
            Expr::Wildcard(Some(WildcardType::Tag)) => f.write_str("*::tag"),
            Expr::Regex(r) => Display::fmt(r, f),
            Expr::Literal(l) => Display::fmt(l, f),
            Expr::BindParam(name) => {
                f.write_char('$')?;
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    f.write_str(name)
                } else {
                    // Keywords are fine after `$`; only the character set matters here.
                    f.write_char('"')?;
                    for c in name.chars() {
                        match c {
                            '"' => f.write_str("\\\"")?,
                            '\\' => f.write_str("\\\\")?,
                            '\n' => f.write_str("\\n")?,
                            c => f.write_char(c)?,
                        }
                    }
                    f.write_char('"')
                }
            }
            Expr::Call { name, args } => write!(f, "{name}({})", List(args)),
            Expr::Distinct(id) => write!(f, "DISTINCT {id}"),
            Expr::Unary {
                op: UnaryOp::Minus,
                expr,
            } => write!(f, "-{expr}"),
            Expr::Binary { lhs, op, rhs } => write!(f, "{lhs} {op} {rhs}"),
            Expr::Nested(e) => write!(f, "({e})"),
        }
    }
}

/// `ON` target of `SHOW MEASUREMENTS`, which alone accepts wildcards.
#[derive(Debug, Clone, PartialEq)]
pub enum OnClause {
    Database(Ident),
    DatabaseRetentionPolicy(Ident, Ident),
    /// `ON *`
    AllDatabases,
    /// `ON *.*`
    AllDatabasesAndRetentionPolicies,
}

impl Display for OnClause {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            OnClause::Database(db) => write!(f, "ON {db}"),
            OnClause::DatabaseRetentionPolicy(db, rp) => write!(f, "ON {db}.{rp}"),
            OnClause::AllDatabases => f.write_str("ON *"),
            OnClause::AllDatabasesAndRetentionPolicies => f.write_str("ON *.*"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShowRetentionPolicies {
    pub database: Option<Ident>,
}

impl Display for ShowRetentionPolicies {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SHOW RETENTION POLICIES")?;
        if let Some(db) = &self.database {
            write!(f, " ON {db}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum WithMeasurement {
    Equals(QualifiedMeasurement),
    Regex(QualifiedMeasurement),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShowMeasurements {
    pub on: Option<OnClause>,
    pub with_measurement: Option<WithMeasurement>,
    pub condition: Option<Expr>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

fn write_limit_offset(
    f: &mut Formatter<'_>,
    limit: Option<u64>,
    offset: Option<u64>,
) -> fmt::Result {
    if let Some(l) = limit {
        write!(f, " LIMIT {l}")?;
    }
    if let Some(o) = offset {
        write!(f, " OFFSET {o}")?;
    }
    Ok(())
}

impl Display for ShowMeasurements {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SHOW MEASUREMENTS")?;
        if let Some(on) = &self.on {
            write!(f, " {on}")?;
        }
        match &self.with_measurement {
            Some(WithMeasurement::Equals(m)) => write!(f, " WITH MEASUREMENT = {m}")?,
            Some(WithMeasurement::Regex(m)) => write!(f, " WITH MEASUREMENT =~ {m}")?,
            None => {}
        }
        if let Some(c) = &self.condition {
            write!(f, " WHERE {c}")?;
        }
        write_limit_offset(f, self.limit, self.offset)
    }
}

fn write_on_from(
    f: &mut Formatter<'_>,
    database: &Option<Ident>,
    from: &Option<Vec<QualifiedMeasurement>>,
) -> fmt::Result {
    if let Some(db) = database {
        write!(f, " ON {db}")?;
    }
    if let Some(from) = from {
        write!(f, " FROM {}", List(from))?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShowTagKeys {
    pub database: Option<Ident>,
    pub from: Option<Vec<QualifiedMeasurement>>,
    pub condition: Option<Expr>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

impl Display for ShowTagKeys {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SHOW TAG KEYS")?;
        write_on_from(f, &self.database, &self.from)?;
        if let Some(c) = &self.condition {
            write!(f, " WHERE {c}")?;
        }
        write_limit_offset(f, self.limit, self.offset)
    }
}

/// The required `WITH KEY` part of `SHOW TAG VALUES`.
#[derive(Debug, Clone, PartialEq)]
pub enum WithKey {
    Eq(Ident),
    NotEq(Ident),
    EqRegex(Regex),
    NotEqRegex(Regex),
    In(Vec<Ident>),
}

impl Display for WithKey {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            WithKey::Eq(k) => write!(f, "WITH KEY = {k}"),
            WithKey::NotEq(k) => write!(f, "WITH KEY != {k}"),
            WithKey::EqRegex(r) => write!(f, "WITH KEY =~ {r}"),
            WithKey::NotEqRegex(r) => write!(f, "WITH KEY !~ {r}"),
            WithKey::In(keys) => write!(f, "WITH KEY IN ({})", List(keys)),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShowTagValues {
    pub database: Option<Ident>,
    pub from: Option<Vec<QualifiedMeasurement>>,
    pub with_key: WithKey,
    pub condition: Option<Expr>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

impl Display for ShowTagValues {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SHOW TAG VALUES")?;
        write_on_from(f, &self.database, &self.from)?;
        write!(f, " {}", self.with_key)?;
        if let Some(c) = &self.condition {
            write!(f, " WHERE {c}")?;
        }
        write_limit_offset(f, self.limit, self.offset)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShowFieldKeys {
    pub database: Option<Ident>,
    pub from: Option<Vec<QualifiedMeasurement>>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

impl Display for ShowFieldKeys {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("SHOW FIELD KEYS")?;
        write_on_from(f, &self.database, &self.from)?;
        write_limit_offset(f, self.limit, self.offset)
    }
}
