//! Recursive-descent parser: tokens → [`crate::ast`].

use crate::ast::*;
use crate::error::ParseError;
use crate::lexer::{is_keyword, Lexer, Tok, Token};

/// How deep parentheses, unary operators, calls and subqueries may nest (parser recursion).
const MAX_NESTING: usize = 100;
/// How deep the expression tree may get, counting chains of binary operators such as long
/// `OR` lists. Both limits turn input that would exhaust the stack (while parsing, printing,
/// walking or dropping the tree) into an error.
const MAX_EXPR_DEPTH: usize = 500;
/// What one subquery level counts against [`MAX_NESTING`] (at most 25 levels).
const SUBQUERY_WEIGHT: usize = 4;

/// Parses one or more `;`-separated statements. Empty statements (`;;`, a trailing `;`) are
/// skipped; text with no statement at all is an error.
pub fn parse_statements(input: &str) -> Result<Vec<Statement>, ParseError> {
    let mut p = Parser::new(input);
    let mut statements = Vec::new();
    loop {
        while p.peek()?.tok == Tok::Semicolon {
            p.bump()?;
        }
        if p.peek()?.tok == Tok::Eof {
            break;
        }
        statements.push(p.statement()?);
        let t = p.peek()?;
        match t.tok {
            Tok::Semicolon | Tok::Eof => {}
            _ => {
                return Err(p.error_at(
                    "invalid InfluxQL statement, expected ';' or end of input",
                    &t,
                ))
            }
        }
    }
    if statements.is_empty() {
        let t = p.peek()?;
        return Err(p.error_at(
            "invalid InfluxQL statement, expected SELECT, SHOW, EXPLAIN, CREATE, DELETE or DROP",
            &t,
        ));
    }
    Ok(statements)
}

/// Parses text that must hold exactly one statement (a trailing `;` is allowed).
pub fn parse_statement(input: &str) -> Result<Statement, ParseError> {
    let mut statements = parse_statements(input)?;
    if statements.len() != 1 {
        return Err(ParseError::new(
            "expected exactly one statement",
            0,
            format!("{} statements", statements.len()),
        ));
    }
    Ok(statements.remove(0))
}

/// Parses a standalone expression (a WHERE condition or a projection), for tools and tests.
pub fn parse_expr(input: &str) -> Result<Expr, ParseError> {
    let mut p = Parser::new(input);
    let (e, _) = p.expr(0)?;
    let t = p.peek()?;
    if t.tok != Tok::Eof {
        return Err(p.error_at("invalid expression, expected end of input", &t));
    }
    Ok(e)
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token>,
    /// Current nesting of subqueries and parenthesised expressions.
    depth: usize,
}

/// An expression plus the depth of its tree, tracked while building it.
type Sized_ = (Expr, usize);

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            lexer: Lexer::new(src),
            peeked: None,
            depth: 0,
        }
    }

    fn peek(&mut self) -> Result<Token, ParseError> {
        if let Some(t) = &self.peeked {
            return Ok(t.clone());
        }
        let t = self.lexer.next_token()?;
        self.peeked = Some(t.clone());
        Ok(t)
    }

    fn bump(&mut self) -> Result<Token, ParseError> {
        let t = self.peek()?;
        self.peeked = None;
        Ok(t)
    }

    fn error_at(&self, message: &str, t: &Token) -> ParseError {
        ParseError::new(message, t.start, t.tok.describe())
    }

    /// Consumes the keyword `kw` if it is next.
    fn eat_word(&mut self, kw: &str) -> Result<bool, ParseError> {
        if self.peek()?.tok.is_word(kw) {
            self.bump()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn expect_word(&mut self, kw: &str, message: &str) -> Result<(), ParseError> {
        let t = self.peek()?;
        if t.tok.is_word(kw) {
            self.bump()?;
            Ok(())
        } else {
            Err(self.error_at(message, &t))
        }
    }

    fn eat(&mut self, tok: &Tok) -> Result<bool, ParseError> {
        if &self.peek()?.tok == tok {
            self.bump()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn expect(&mut self, tok: &Tok, message: &str) -> Result<Token, ParseError> {
        let t = self.peek()?;
        if &t.tok == tok {
            self.bump()
        } else {
            Err(self.error_at(message, &t))
        }
    }

    fn enter(&mut self, t: &Token) -> Result<(), ParseError> {
        self.enter_weighted(t, 1)
    }

    fn enter_weighted(&mut self, t: &Token, weight: usize) -> Result<(), ParseError> {
        self.depth += weight;
        if self.depth > MAX_NESTING {
            return Err(self.error_at("statement is nested too deeply", t));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.leave_weighted(1)
    }

    fn leave_weighted(&mut self, weight: usize) {
        self.depth -= weight;
    }

    /// An identifier if one is next: a quoted identifier or a non-reserved word.
    fn try_ident(&mut self) -> Result<Option<Ident>, ParseError> {
        let t = self.peek()?;
        match t.tok {
            Tok::QuotedIdent(s) => {
                self.bump()?;
                Ok(Some(Ident(s)))
            }
            Tok::Word(w) if !is_keyword(&w) => {
                self.bump()?;
                Ok(Some(Ident(w)))
            }
            _ => Ok(None),
        }
    }

    fn ident(&mut self, message: &str) -> Result<Ident, ParseError> {
        match self.try_ident()? {
            Some(i) => Ok(i),
            None => {
                let t = self.peek()?;
                Err(self.error_at(message, &t))
            }
        }
    }

    /// Reads a regex if the next token is `/`.
    fn try_regex(&mut self) -> Result<Option<Regex>, ParseError> {
        let t = self.peek()?;
        if t.tok != Tok::Slash {
            return Ok(None);
        }
        self.peeked = None;
        let pattern = self.lexer.scan_regex(t.start)?;
        Ok(Some(Regex(pattern)))
    }

    fn unsigned(&mut self, message: &str) -> Result<u64, ParseError> {
        let t = self.peek()?;
        match t.tok {
            Tok::Integer(v) => {
                self.bump()?;
                Ok(v)
            }
            _ => Err(self.error_at(message, &t)),
        }
    }

    fn statement(&mut self) -> Result<Statement, ParseError> {
        let t = self.peek()?;
        let Tok::Word(w) = &t.tok else {
            return Err(self.error_at(
                "invalid InfluxQL statement, expected SELECT, SHOW, EXPLAIN, CREATE, DELETE or DROP",
                &t,
            ));
        };
        match w.to_ascii_uppercase().as_str() {
            "SELECT" => Ok(Statement::Select(Box::new(self.select()?))),
            "SHOW" => self.show(),
            "EXPLAIN" => self.explain(),
            "CREATE" => {
                self.bump()?;
                self.expect_word("DATABASE", "invalid CREATE statement, expected DATABASE")?;
                let name = self.ident("invalid CREATE DATABASE statement, expected identifier")?;
                Ok(Statement::CreateDatabase(name))
            }
            "DROP" => {
                self.bump()?;
                self.expect_word("MEASUREMENT", "invalid DROP statement, expected MEASUREMENT")?;
                let name =
                    self.ident("invalid DROP MEASUREMENT statement, expected identifier")?;
                Ok(Statement::DropMeasurement(name))
            }
            "DELETE" => self.delete(),
            _ => Err(self.error_at(
                "invalid InfluxQL statement, expected SELECT, SHOW, EXPLAIN, CREATE, DELETE or DROP",
                &t,
            )),
        }
    }

    fn explain(&mut self) -> Result<Statement, ParseError> {
        self.bump()?;
        let analyze = self.eat_word("ANALYZE")?;
        let verbose = self.eat_word("VERBOSE")?;
        let t = self.peek()?;
        if !t.tok.is_word("SELECT") {
            return Err(self.error_at("invalid EXPLAIN statement, expected SELECT", &t));
        }
        Ok(Statement::Explain(Explain {
            analyze,
            verbose,
            select: Box::new(self.select()?),
        }))
    }

    fn delete(&mut self) -> Result<Statement, ParseError> {
        self.bump()?;
        let from = if self.eat_word("FROM")? {
            Some(self.measurement_list()?)
        } else {
            None
        };
        let condition = self.where_clause()?;
        if from.is_none() && condition.is_none() {
            let t = self.peek()?;
            return Err(self.error_at("invalid DELETE statement, expected FROM or WHERE", &t));
        }
        Ok(Statement::Delete(Delete { from, condition }))
    }

    fn where_clause(&mut self) -> Result<Option<Expr>, ParseError> {
        if !self.eat_word("WHERE")? {
            return Ok(None);
        }
        let t = self.peek()?;
        if matches!(t.tok, Tok::Eof | Tok::Semicolon) {
            return Err(self.error_at("invalid WHERE clause, expected conditional expression", &t));
        }
        Ok(Some(self.expr(0)?.0))
    }

    fn limit_offset(&mut self) -> Result<(Option<u64>, Option<u64>), ParseError> {
        let limit = if self.eat_word("LIMIT")? {
            Some(self.unsigned("invalid LIMIT clause, expected unsigned integer")?)
        } else {
            None
        };
        let offset = if self.eat_word("OFFSET")? {
            Some(self.unsigned("invalid OFFSET clause, expected unsigned integer")?)
        } else {
            None
        };
        Ok((limit, offset))
    }

    #[recursive::recursive]
    fn select(&mut self) -> Result<SelectStatement, ParseError> {
        self.bump()?; // SELECT
        let mut fields = vec![self.field()?];
        while self.eat(&Tok::Comma)? {
            fields.push(self.field()?);
        }
        let t = self.peek()?;
        if t.tok.is_word("INTO") {
            return Err(self.error_at("invalid SELECT statement, INTO is not supported", &t));
        }
        self.expect_word("FROM", "invalid SELECT statement, expected FROM")?;
        let mut from = vec![self.measurement_selection()?];
        while self.eat(&Tok::Comma)? {
            from.push(self.measurement_selection()?);
        }
        let condition = self.where_clause()?;
        let group_by = if self.eat_word("GROUP")? {
            self.expect_word("BY", "invalid GROUP BY clause, expected BY")?;
            let mut dims = vec![self.dimension()?];
            while self.eat(&Tok::Comma)? {
                dims.push(self.dimension()?);
            }
            Some(dims)
        } else {
            None
        };
        let fill = self.fill()?;
        let order_by = if self.eat_word("ORDER")? {
            self.expect_word("BY", "invalid ORDER BY clause, expected BY")?;
            Some(self.order()?)
        } else {
            None
        };
        let (limit, offset) = self.limit_offset()?;
        let slimit = if self.eat_word("SLIMIT")? {
            Some(self.unsigned("invalid SLIMIT clause, expected unsigned integer")?)
        } else {
            None
        };
        let soffset = if self.eat_word("SOFFSET")? {
            Some(self.unsigned("invalid SOFFSET clause, expected unsigned integer")?)
        } else {
            None
        };
        let timezone = if self.peek()?.tok.is_word("tz") {
            self.bump()?;
            self.expect(&Tok::LParen, "invalid tz clause, expected (")?;
            let t = self.peek()?;
            let Tok::Str(zone) = t.tok else {
                return Err(self.error_at("invalid tz clause, expected string", &t));
            };
            self.bump()?;
            self.expect(&Tok::RParen, "invalid tz clause, expected )")?;
            Some(zone)
        } else {
            None
        };
        Ok(SelectStatement {
            fields,
            from,
            condition,
            group_by,
            fill,
            order_by,
            limit,
            offset,
            slimit,
            soffset,
            timezone,
        })
    }

    fn order(&mut self) -> Result<Order, ParseError> {
        let t = self.peek()?;
        let dir = |p: &mut Self| -> Result<Option<Order>, ParseError> {
            if p.eat_word("ASC")? {
                Ok(Some(Order::Ascending))
            } else if p.eat_word("DESC")? {
                Ok(Some(Order::Descending))
            } else {
                Ok(None)
            }
        };
        if matches!(&t.tok, Tok::Word(w) | Tok::QuotedIdent(w) if w.eq_ignore_ascii_case("time")) {
            self.bump()?;
            return Ok(dir(self)?.unwrap_or(Order::Ascending));
        }
        match dir(self)? {
            Some(o) => Ok(o),
            None => Err(self.error_at("invalid ORDER BY, expected ASC, DESC or TIME", &t)),
        }
    }

    fn fill(&mut self) -> Result<Option<Fill>, ParseError> {
        if !self.peek()?.tok.is_word("fill") {
            return Ok(None);
        }
        self.bump()?;
        self.expect(&Tok::LParen, "invalid FILL clause, expected (")?;
        const MSG: &str = "invalid FILL clause, expected NULL, NONE, PREVIOUS, LINEAR, or a number";
        let t = self.bump()?;
        let fill = match &t.tok {
            Tok::Word(w) => match w.to_ascii_lowercase().as_str() {
                "null" => Fill::Null,
                "none" => Fill::None,
                "previous" => Fill::Previous,
                "linear" => Fill::Linear,
                _ => return Err(self.error_at(MSG, &t)),
            },
            Tok::Integer(_) | Tok::Float(_) | Tok::Minus | Tok::Plus => {
                let negative = t.tok == Tok::Minus;
                let num = if matches!(t.tok, Tok::Minus | Tok::Plus) {
                    self.bump()?
                } else {
                    t.clone()
                };
                match (num.tok, negative) {
                    (Tok::Integer(v), false) => {
                        Fill::Value(i64::try_from(v).map_or(Number::Unsigned(v), Number::Integer))
                    }
                    (Tok::Integer(v), true) => match negate_unsigned(v) {
                        Some(n) => Fill::Value(Number::Integer(n)),
                        None => return Err(self.error_at("integer out of range", &t)),
                    },
                    (Tok::Float(v), neg) => Fill::Value(Number::Float(if neg { -v } else { v })),
                    _ => return Err(self.error_at(MSG, &t)),
                }
            }
            _ => return Err(self.error_at(MSG, &t)),
        };
        self.expect(&Tok::RParen, "invalid FILL clause, expected )")?;
        Ok(Some(fill))
    }

    fn dimension(&mut self) -> Result<Dimension, ParseError> {
        if self.eat(&Tok::Star)? {
            return Ok(Dimension::Wildcard);
        }
        if let Some(r) = self.try_regex()? {
            return Ok(Dimension::Regex(r));
        }
        let t = self.peek()?;
        if t.tok.is_word("time") {
            self.bump()?;
            if self.eat(&Tok::LParen)? {
                let (interval, _) = self.expr(0)?;
                let offset = if self.eat(&Tok::Comma)? {
                    Some(self.expr(0)?.0)
                } else {
                    None
                };
                self.expect(&Tok::RParen, "invalid TIME call, expected ')'")?;
                return Ok(Dimension::Time { interval, offset });
            }
            return Ok(Dimension::Tag(Ident("time".into())));
        }
        match self.try_ident()? {
            Some(id) => {
                // `GROUP BY host::tag` is accepted by InfluxDB; the cast adds nothing here.
                if self.eat(&Tok::DoubleColon)? {
                    let t = self.bump()?;
                    if !t.tok.is_word("tag") {
                        return Err(self.error_at("invalid GROUP BY clause, expected TAG", &t));
                    }
                }
                Ok(Dimension::Tag(id))
            }
            None => Err(self.error_at(
                "invalid GROUP BY clause, expected wildcard, TIME, identifier or regular expression",
                &t,
            )),
        }
    }

    fn measurement_selection(&mut self) -> Result<MeasurementSelection, ParseError> {
        let t = self.peek()?;
        if t.tok == Tok::LParen {
            self.bump()?;
            // A subquery level costs far more stack than a parenthesis.
            self.enter_weighted(&t, SUBQUERY_WEIGHT)?;
            let inner = self.peek()?;
            if !inner.tok.is_word("SELECT") {
                return Err(self.error_at("invalid subquery, expected SELECT", &inner));
            }
            let s = self.select()?;
            self.expect(&Tok::RParen, "invalid subquery, expected )")?;
            self.leave_weighted(SUBQUERY_WEIGHT);
            return Ok(MeasurementSelection::Subquery(Box::new(s)));
        }
        Ok(MeasurementSelection::Name(self.qualified_measurement(
            "invalid FROM clause, expected identifier, regular expression or subquery",
        )?))
    }

    fn measurement_list(&mut self) -> Result<Vec<QualifiedMeasurement>, ParseError> {
        const MSG: &str = "invalid FROM clause, expected identifier or regular expression";
        let mut list = vec![self.qualified_measurement(MSG)?];
        while self.eat(&Tok::Comma)? {
            list.push(self.qualified_measurement(MSG)?);
        }
        Ok(list)
    }

    /// `name`, `/re/`, `rp.name`, `db.rp.name`, `db..name`.
    fn qualified_measurement(&mut self, message: &str) -> Result<QualifiedMeasurement, ParseError> {
        // Up to three segments; `None` marks the empty retention policy in `db..m`.
        let mut segments: Vec<Option<Ident>> = Vec::new();
        loop {
            if let Some(r) = self.try_regex()? {
                let (database, retention_policy) = split_qualifiers(segments);
                return Ok(QualifiedMeasurement {
                    database,
                    retention_policy,
                    name: MeasurementName::Regex(r),
                });
            }
            let t = self.peek()?;
            if segments.len() == 1 && t.tok == Tok::Dot && segments[0].is_some() {
                // `db..m`: the retention policy is empty.
                self.bump()?;
                segments.push(None);
                continue;
            }
            let id = self.ident(message)?;
            segments.push(Some(id));
            if segments.len() < 3 && self.peek()?.tok == Tok::Dot {
                self.bump()?;
                continue;
            }
            let name = segments.pop().flatten().expect("just pushed");
            let (database, retention_policy) = split_qualifiers(segments);
            return Ok(QualifiedMeasurement {
                database,
                retention_policy,
                name: MeasurementName::Name(name),
            });
        }
    }

    fn field(&mut self) -> Result<Field, ParseError> {
        let t = self.peek()?;
        if matches!(t.tok, Tok::Eof | Tok::Semicolon) || t.tok.is_word("FROM") {
            return Err(self.error_at("invalid SELECT statement, expected field", &t));
        }
        let (expr, _) = self.expr(0)?;
        let alias = if self.eat_word("AS")? {
            Some(self.ident("invalid field alias, expected identifier")?)
        } else {
            None
        };
        Ok(Field { expr, alias })
    }

    fn binary_op(&mut self) -> Result<Option<BinaryOp>, ParseError> {
        let t = self.peek()?;
        Ok(Some(match t.tok {
            Tok::Plus => BinaryOp::Add,
            Tok::Minus => BinaryOp::Sub,
            Tok::Star => BinaryOp::Mul,
            Tok::Slash => BinaryOp::Div,
            Tok::Percent => BinaryOp::Mod,
            Tok::Amp => BinaryOp::BitAnd,
            Tok::Pipe => BinaryOp::BitOr,
            Tok::Caret => BinaryOp::BitXor,
            Tok::Eq => BinaryOp::Eq,
            Tok::NotEq => BinaryOp::NotEq,
            Tok::Lt => BinaryOp::Lt,
            Tok::LtEq => BinaryOp::LtEq,
            Tok::Gt => BinaryOp::Gt,
            Tok::GtEq => BinaryOp::GtEq,
            Tok::EqRegex => BinaryOp::EqRegex,
            Tok::NotEqRegex => BinaryOp::NotEqRegex,
            Tok::Word(ref w) if w.eq_ignore_ascii_case("AND") => BinaryOp::And,
            Tok::Word(ref w) if w.eq_ignore_ascii_case("OR") => BinaryOp::Or,
            _ => return Ok(None),
        }))
    }

    /// Precedence climbing over left-associative binary operators.
    // `recursive` moves to a fresh stack segment when this one runs low: the nesting limits
    // bound the tree, this bounds the parser's own frames whatever their size.
    #[recursive::recursive]
    fn expr(&mut self, min_prec: u8) -> Result<Sized_, ParseError> {
        let (mut lhs, mut depth) = self.unary()?;
        loop {
            let t = self.peek()?;
            let Some(op) = self.binary_op()? else { break };
            if op.precedence() <= min_prec {
                break;
            }
            self.bump()?;
            let (rhs, rdepth) = self.expr(op.precedence())?;
            depth = depth.max(rdepth) + 1;
            if depth > MAX_EXPR_DEPTH {
                return Err(self.error_at("expression is nested too deeply", &t));
            }
            lhs = Expr::binary(lhs, op, rhs);
        }
        Ok((lhs, depth))
    }

    fn unary(&mut self) -> Result<Sized_, ParseError> {
        let t = self.peek()?;
        match t.tok {
            Tok::Minus => {
                self.bump()?;
                self.enter(&t)?;
                let (e, d) = self.unary()?;
                self.leave();
                Ok(match e {
                    Expr::Literal(Literal::Integer(v)) => match v.checked_neg() {
                        Some(n) => (Expr::Literal(Literal::Integer(n)), d),
                        None => return Err(self.error_at("integer out of range", &t)),
                    },
                    Expr::Literal(Literal::Unsigned(v)) => match negate_unsigned(v) {
                        Some(n) => (Expr::Literal(Literal::Integer(n)), d),
                        None => return Err(self.error_at("integer out of range", &t)),
                    },
                    Expr::Literal(Literal::Float(v)) => (Expr::Literal(Literal::Float(-v)), d),
                    Expr::Literal(Literal::Duration(v)) => match v.checked_neg() {
                        Some(n) => (Expr::Literal(Literal::Duration(n)), d),
                        None => return Err(self.error_at("duration out of range", &t)),
                    },
                    e => (
                        Expr::Unary {
                            op: UnaryOp::Minus,
                            expr: Box::new(e),
                        },
                        d + 1,
                    ),
                })
            }
            Tok::Plus => {
                self.bump()?;
                self.enter(&t)?;
                let r = self.unary();
                self.leave();
                r
            }
            _ => self.operand(),
        }
    }

    fn operand(&mut self) -> Result<Sized_, ParseError> {
        let t = self.peek()?;
        let leaf = |e: Expr| Ok((e, 1));
        match t.tok.clone() {
            Tok::LParen => {
                self.bump()?;
                self.enter(&t)?;
                let (e, d) = self.expr(0)?;
                self.expect(&Tok::RParen, "invalid expression, expected )")?;
                self.leave();
                Ok((Expr::Nested(Box::new(e)), d + 1))
            }
            Tok::Star => {
                self.bump()?;
                let kind = if self.eat(&Tok::DoubleColon)? {
                    let k = self.bump()?;
                    if k.tok.is_word("field") {
                        Some(WildcardType::Field)
                    } else if k.tok.is_word("tag") {
                        Some(WildcardType::Tag)
                    } else {
                        return Err(self.error_at(
                            "invalid wildcard type specifier, expected TAG or FIELD",
                            &k,
                        ));
                    }
                } else {
                    None
                };
                leaf(Expr::Wildcard(kind))
            }
            Tok::Slash => {
                let r = self.try_regex()?.expect("peeked a slash");
                leaf(Expr::Regex(r))
            }
            Tok::Integer(v) => {
                self.bump()?;
                leaf(Expr::Literal(
                    i64::try_from(v).map_or(Literal::Unsigned(v), Literal::Integer),
                ))
            }
            Tok::Float(v) => {
                self.bump()?;
                leaf(Expr::Literal(Literal::Float(v)))
            }
            Tok::Duration(v) => {
                self.bump()?;
                leaf(Expr::Literal(Literal::Duration(v)))
            }
            Tok::Str(s) => {
                self.bump()?;
                leaf(Expr::Literal(Literal::String(s)))
            }
            Tok::BindParam(p) => {
                self.bump()?;
                leaf(Expr::BindParam(p))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => {
                self.bump()?;
                leaf(Expr::Literal(Literal::Boolean(true)))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => {
                self.bump()?;
                leaf(Expr::Literal(Literal::Boolean(false)))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("DISTINCT") => {
                self.bump()?;
                if self.peek()?.tok == Tok::LParen {
                    return self.call("distinct", &t);
                }
                let id = self.ident("invalid DISTINCT expression, expected identifier")?;
                leaf(Expr::Distinct(id))
            }
            Tok::Word(w) if !is_keyword(&w) => {
                self.bump()?;
                if self.peek()?.tok == Tok::LParen {
                    return self.call(&w, &t);
                }
                self.var_ref(Ident(w))
            }
            Tok::QuotedIdent(s) => {
                self.bump()?;
                self.var_ref(Ident(s))
            }
            _ => Err(self.error_at(
                "invalid expression, expected identifier, literal, function call, regular expression, bound parameter or (",
                &t,
            )),
        }
    }

    fn var_ref(&mut self, name: Ident) -> Result<Sized_, ParseError> {
        let data_type = if self.eat(&Tok::DoubleColon)? {
            let t = self.bump()?;
            let ty = match &t.tok {
                Tok::Word(w) => DataType::from_name(w),
                _ => None,
            };
            match ty {
                Some(ty) => Some(ty),
                None => {
                    return Err(self.error_at(
                        "invalid data type for tag or field reference, expected float, integer, unsigned, string, boolean, field, tag",
                        &t,
                    ))
                }
            }
        } else {
            None
        };
        Ok((Expr::VarRef { name, data_type }, 1))
    }

    fn call(&mut self, name: &str, name_tok: &Token) -> Result<Sized_, ParseError> {
        self.bump()?; // (
        self.enter(name_tok)?;
        let mut args = Vec::new();
        let mut depth = 1;
        if !self.eat(&Tok::RParen)? {
            loop {
                let (a, d) = self.expr(0)?;
                depth = depth.max(d + 1);
                args.push(a);
                if self.eat(&Tok::Comma)? {
                    continue;
                }
                let t = self.peek()?;
                if t.tok == Tok::RParen {
                    self.bump()?;
                    break;
                }
                return Err(self.error_at("invalid function call, expected ',' or ')'", &t));
            }
        }
        self.leave();
        Ok((Expr::call(name, args), depth))
    }

    fn show(&mut self) -> Result<Statement, ParseError> {
        self.bump()?; // SHOW
        let t = self.peek()?;
        let word = match &t.tok {
            Tok::Word(w) => w.to_ascii_uppercase(),
            _ => String::new(),
        };
        match word.as_str() {
            "DATABASES" => {
                self.bump()?;
                Ok(Statement::ShowDatabases)
            }
            "RETENTION" => {
                self.bump()?;
                self.expect_word(
                    "POLICIES",
                    "invalid SHOW RETENTION POLICIES statement, expected POLICIES",
                )?;
                let database = self.on_database()?;
                Ok(Statement::ShowRetentionPolicies(ShowRetentionPolicies { database }))
            }
            "MEASUREMENTS" => {
                self.bump()?;
                self.show_measurements()
            }
            "TAG" => {
                self.bump()?;
                let t = self.peek()?;
                if self.eat_word("KEYS")? {
                    let database = self.on_database()?;
                    let from = self.show_from()?;
                    let condition = self.where_clause()?;
                    let (limit, offset) = self.limit_offset()?;
                    Ok(Statement::ShowTagKeys(ShowTagKeys {
                        database,
                        from,
                        condition,
                        limit,
                        offset,
                    }))
                } else if self.eat_word("VALUES")? {
                    self.show_tag_values()
                } else {
                    Err(self.error_at("invalid SHOW TAG statement, expected KEYS or VALUES", &t))
                }
            }
            "FIELD" => {
                self.bump()?;
                self.expect_word("KEYS", "invalid SHOW FIELD statement, expected KEYS")?;
                let database = self.on_database()?;
                let from = self.show_from()?;
                let (limit, offset) = self.limit_offset()?;
                Ok(Statement::ShowFieldKeys(ShowFieldKeys {
                    database,
                    from,
                    limit,
                    offset,
                }))
            }
            _ => Err(self.error_at(
                "invalid SHOW statement, expected DATABASES, FIELD KEYS, MEASUREMENTS, TAG KEYS, TAG VALUES, or RETENTION POLICIES following SHOW",
                &t,
            )),
        }
    }

    fn on_database(&mut self) -> Result<Option<Ident>, ParseError> {
        if !self.eat_word("ON")? {
            return Ok(None);
        }
        Ok(Some(self.ident("invalid ON clause, expected identifier")?))
    }

    fn show_from(&mut self) -> Result<Option<Vec<QualifiedMeasurement>>, ParseError> {
        if !self.eat_word("FROM")? {
            return Ok(None);
        }
        Ok(Some(self.measurement_list()?))
    }

    fn show_measurements(&mut self) -> Result<Statement, ParseError> {
        let on = if self.eat_word("ON")? {
            const MSG: &str = "invalid ON clause, expected wildcard or identifier";
            if self.eat(&Tok::Star)? {
                if self.eat(&Tok::Dot)? {
                    self.expect(&Tok::Star, "invalid ON clause, expected wildcard")?;
                    Some(OnClause::AllDatabasesAndRetentionPolicies)
                } else {
                    Some(OnClause::AllDatabases)
                }
            } else {
                let db = self.ident(MSG)?;
                if self.eat(&Tok::Dot)? {
                    let rp = self.ident(MSG)?;
                    Some(OnClause::DatabaseRetentionPolicy(db, rp))
                } else {
                    Some(OnClause::Database(db))
                }
            }
        } else {
            None
        };
        let with_measurement = if self.eat_word("WITH")? {
            self.expect_word("MEASUREMENT", "invalid WITH clause, expected MEASUREMENT")?;
            let t = self.bump()?;
            const MSG: &str = "expected identifier or regular expression";
            match t.tok {
                Tok::Eq => Some(WithMeasurement::Equals(self.qualified_measurement(MSG)?)),
                Tok::EqRegex => {
                    let m = self.qualified_measurement(MSG)?;
                    if !matches!(m.name, MeasurementName::Regex(_)) {
                        return Err(self.error_at("expected regular expression", &t));
                    }
                    Some(WithMeasurement::Regex(m))
                }
                _ => return Err(self.error_at("expected = or =~", &t)),
            }
        } else {
            None
        };
        let condition = self.where_clause()?;
        let (limit, offset) = self.limit_offset()?;
        Ok(Statement::ShowMeasurements(ShowMeasurements {
            on,
            with_measurement,
            condition,
            limit,
            offset,
        }))
    }

    fn show_tag_values(&mut self) -> Result<Statement, ParseError> {
        let database = self.on_database()?;
        let from = self.show_from()?;
        self.expect_word(
            "WITH",
            "invalid SHOW TAG VALUES statement, expected WITH KEY",
        )?;
        self.expect_word(
            "KEY",
            "invalid SHOW TAG VALUES statement, expected WITH KEY",
        )?;
        let t = self.bump()?;
        const MSG: &str = "invalid WITH KEY clause, expected identifier";
        const RE: &str = "invalid WITH KEY clause, expected regular expression";
        let with_key = match t.tok {
            Tok::Eq => WithKey::Eq(self.ident(MSG)?),
            Tok::NotEq => WithKey::NotEq(self.ident(MSG)?),
            Tok::EqRegex | Tok::NotEqRegex => {
                let Some(r) = self.try_regex()? else {
                    let next = self.peek()?;
                    return Err(self.error_at(RE, &next));
                };
                if t.tok == Tok::EqRegex {
                    WithKey::EqRegex(r)
                } else {
                    WithKey::NotEqRegex(r)
                }
            }
            Tok::Word(ref w) if w.eq_ignore_ascii_case("IN") => {
                self.expect(&Tok::LParen, "invalid IN clause, expected (")?;
                let mut keys = vec![self.ident(MSG)?];
                while self.eat(&Tok::Comma)? {
                    keys.push(self.ident(MSG)?);
                }
                self.expect(&Tok::RParen, "invalid IN clause, expected )")?;
                WithKey::In(keys)
            }
            _ => {
                return Err(
                    self.error_at("invalid WITH KEY clause, expected =, !=, =~, !~ or IN", &t)
                )
            }
        };
        let condition = self.where_clause()?;
        let (limit, offset) = self.limit_offset()?;
        Ok(Statement::ShowTagValues(ShowTagValues {
            database,
            from,
            with_key,
            condition,
            limit,
            offset,
        }))
    }
}

/// `[a, b]` → (db a, rp b); `[a]` → rp a (InfluxQL reads `x.m` as retention policy `x`).
fn split_qualifiers(mut segments: Vec<Option<Ident>>) -> (Option<Ident>, Option<Ident>) {
    match segments.len() {
        0 => (None, None),
        1 => (None, segments.pop().flatten()),
        _ => {
            let rp = segments.pop().flatten();
            (segments.pop().flatten(), rp)
        }
    }
}

fn negate_unsigned(v: u64) -> Option<i64> {
    if v == 1u64 << 63 {
        Some(i64::MIN)
    } else {
        i64::try_from(v).ok().map(|n| -n)
    }
}
