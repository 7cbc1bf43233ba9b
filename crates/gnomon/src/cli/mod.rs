//! Client commands that talk to a running server over HTTP, like the `influxdb3` CLI's:
//! `create`, `delete` and `show` of databases, tables and caches ([`manage`]), `query`
//! ([`query`]), `write` ([`write`]), and the processing-engine commands ([`engine`]:
//! triggers, plugin tests, package installs). Each module
//! here adds its commands; [`client`] holds the connection flags and the HTTP client they
//! share, and the error type that turns a server's refusal into a clear message and exit code.

pub mod client;
pub mod engine;
pub mod manage;
pub mod query;
pub mod write;
