//! The engine's log: what plugins and the engine say about each trigger, kept in a bounded
//! in-memory ring behind `system.processing_engine_logs` (not persisted, like the reference).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }

    pub(crate) fn parse(level: &str) -> LogLevel {
        match level {
            "WARN" => LogLevel::Warn,
            "ERROR" => LogLevel::Error,
            _ => LogLevel::Info,
        }
    }
}

/// One row of `system.processing_engine_logs`.
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub event_time_ns: i64,
    pub trigger_name: Arc<str>,
    pub level: LogLevel,
    pub text: String,
}

/// The newest `capacity` records of every trigger of every database.
#[derive(Debug)]
pub struct LogRing {
    capacity: usize,
    records: Mutex<VecDeque<LogRecord>>,
}

impl LogRing {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            records: Mutex::new(VecDeque::new()),
        }
    }

    pub fn push(&self, trigger_name: &Arc<str>, level: LogLevel, text: String) {
        match level {
            LogLevel::Info => tracing::info!(trigger = %trigger_name, "{text}"),
            LogLevel::Warn => tracing::warn!(trigger = %trigger_name, "{text}"),
            LogLevel::Error => tracing::error!(trigger = %trigger_name, "{text}"),
        }
        let record = LogRecord {
            event_time_ns: now_ns(),
            trigger_name: Arc::clone(trigger_name),
            level,
            text,
        };
        let mut records = self.records.lock();
        if records.len() == self.capacity {
            records.pop_front();
        }
        records.push_back(record);
    }

    /// Oldest first.
    pub fn records(&self) -> Vec<LogRecord> {
        self.records.lock().iter().cloned().collect()
    }
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
