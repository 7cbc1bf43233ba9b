//! InfluxQL: the language of InfluxDB 1.x queries, as the v1 `/query` and v3
//! `/api/v3/query_influxql` endpoints accept it.
//!
//! This crate owns the text → typed syntax tree step ([`parse_statements`], [`ast`]) and the
//! meaning checks a planner needs before it builds anything ([`semantic`], [`time_range`]):
//! function classes, InfluxDB's validation errors, bound parameters, output column names,
//! `GROUP BY time()` windows and the query time range.
//!
//! The parser is hand-written (lexer + recursive descent) and has no dependency on DataFusion,
//! the catalog or HTTP, so it can be used alone (default features).
//!
//! The `plan` feature adds [`plan`] (a SELECT → DataFusion `LogicalPlan`, built with
//! `LogicalPlanBuilder`, never by rewriting into SQL), [`v1`] (planned rows → the v1
//! `/query` series shape and its JSON/CSV text) and the wall-clock time functions `tz()`
//! windows need across changes of UTC offset. Even then the crate sees tables only through
//! DataFusion's `SchemaProvider`: it must not reach into the catalog, the buffer or HTTP;
//! resolving which database a statement targets belongs to the caller.

pub mod ast;
mod duration;
mod error;
mod lexer;
mod parser;
#[cfg(feature = "plan")]
pub mod plan;
pub mod semantic;
pub mod time_range;
#[cfg(feature = "plan")]
pub mod v1;
#[cfg(feature = "plan")]
mod zone;

/// The zone type of `tz()` (callers need not depend on `chrono-tz` themselves).
pub use chrono_tz::Tz;
pub use duration::{format_duration, format_go_duration, parse_duration};
pub use error::ParseError;
pub use lexer::is_keyword;
pub use parser::{parse_expr, parse_statement, parse_statements};
