//! Processing-engine trigger definitions (ENGINE.md §3, §4): what a trigger runs, when, and
//! with which settings. Running them is the engine's business; the catalog only stores them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The longest `every:` period accepted: humantime's year (365.25 days), as the reference.
const MAX_EVERY: Duration = Duration::from_secs(31_557_600);

const EXPECTED_FORMS: &str = "expect one of the following forms: 'table:<TABLE_NAME>', \
    'all_tables', 'cron:<CRON_EXPRESSION>', 'every:<DURATION>', or 'request:<PATH>'";

/// A trigger specification string that could not be parsed. The message is the reference's:
/// `failed to parse trigger from <spec>[: <context>]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to parse trigger from {spec}{}", context.as_ref().map(|c| format!(": {c}")).unwrap_or_default())]
pub struct TriggerSpecError {
    /// The spec as given, trimmed.
    pub spec: String,
    pub context: Option<String>,
}

/// Parsed trigger specification. Its serde form (serde_json) is exactly the JSON the
/// reference shows in `system.processing_engine_triggers.trigger_specification`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerSpecification {
    SingleTableWalWrite {
        table_name: String,
    },
    AllTablesWalWrite,
    /// The cron expression (seconds first), without `cron:`.
    Schedule {
        schedule: String,
    },
    RequestPath {
        path: String,
    },
    Every {
        duration: Duration,
    },
}

impl TriggerSpecification {
    /// Parses `table:cpu`, `all_tables`, `every:10s`, `cron:*/5 * * * * *`, `request:hello`.
    /// The whole string and the part after the prefix are trimmed; prefixes are
    /// case-sensitive.
    pub fn parse(spec: &str) -> Result<Self, TriggerSpecError> {
        let spec = spec.trim();
        let err = |context: Option<String>| TriggerSpecError {
            spec: spec.to_string(),
            context,
        };
        if spec == "all_tables" {
            return Ok(TriggerSpecification::AllTablesWalWrite);
        }
        if let Some(table) = spec.strip_prefix("table:") {
            let table = table.trim();
            if table.is_empty() {
                return Err(err(Some("table name is empty".into())));
            }
            return Ok(TriggerSpecification::SingleTableWalWrite {
                table_name: table.to_string(),
            });
        }
        if let Some(expr) = spec.strip_prefix("cron:") {
            let expr = expr.trim();
            if expr.is_empty() {
                return Err(err(Some("cron expression is empty".into())));
            }
            validate_cron(expr).map_err(|e| err(Some(e)))?;
            return Ok(TriggerSpecification::Schedule {
                schedule: expr.to_string(),
            });
        }
        if let Some(text) = spec.strip_prefix("every:") {
            let duration = humantime::parse_duration(text.trim())
                .map_err(|_| err(Some("couldn't parse to duration".into())))?;
            if duration > MAX_EVERY {
                return Err(err(Some(
                    "don't support every schedules of over 1 year".into(),
                )));
            }
            // A zero period would fire continuously (and divides by zero when aligning).
            if duration.is_zero() {
                return Err(err(Some("every duration must be greater than 0".into())));
            }
            return Ok(TriggerSpecification::Every { duration });
        }
        if let Some(path) = spec.strip_prefix("request:") {
            let path = path.trim();
            if path.is_empty() {
                return Err(err(Some("request path is empty".into())));
            }
            return Ok(TriggerSpecification::RequestPath {
                path: path.to_string(),
            });
        }
        Err(err(Some(EXPECTED_FORMS.into())))
    }

    pub fn plugin_type(&self) -> PluginType {
        match self {
            TriggerSpecification::SingleTableWalWrite { .. }
            | TriggerSpecification::AllTablesWalWrite => PluginType::WalRows,
            TriggerSpecification::Schedule { .. } | TriggerSpecification::Every { .. } => {
                PluginType::Schedule
            }
            TriggerSpecification::RequestPath { .. } => PluginType::Request,
        }
    }

    /// The JSON text of the serde form (for the system table).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a trigger specification always serializes")
    }
}

/// Checks a seconds-first cron expression with the `cron` crate, which is also what the
/// engine schedules with.
///
/// ENGINE.md §3 makes the classic 5-field crontab form invalid. The crate refuses it too, but
/// with a generic parse error; counting the fields first tells the user what is wrong.
pub fn validate_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if !expr.starts_with('@') && !(6..=7).contains(&fields) {
        return Err(format!(
            "invalid cron expression: expected 6 or 7 fields (seconds first), got {fields}"
        ));
    }
    cron::Schedule::from_str(expr)
        .map(|_| ())
        .map_err(|e| format!("invalid cron expression: {e}"))
}

/// Which entry function a trigger calls, by the kind of event that fires it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PluginType {
    WalRows,
    Schedule,
    Request,
}

impl fmt::Display for PluginType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginType::WalRows => "WalRows",
            PluginType::Schedule => "Schedule",
            PluginType::Request => "Request",
        })
    }
}

/// The names `--restrict-plugin-triggers-to` takes: `wal` (alias `wal_flush`), `schedule`,
/// `request`.
impl FromStr for PluginType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "wal" | "wal_flush" => Ok(PluginType::WalRows),
            "schedule" => Ok(PluginType::Schedule),
            "request" => Ok(PluginType::Request),
            other => Err(format!(
                "invalid plugin trigger type '{other}': expected wal, wal_flush, schedule or request"
            )),
        }
    }
}

/// What the engine does when a plugin invocation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorBehavior {
    #[default]
    Log,
    Retry,
    Disable,
}

impl ErrorBehavior {
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorBehavior::Log => "log",
            ErrorBehavior::Retry => "retry",
            ErrorBehavior::Disable => "disable",
        }
    }
}

impl fmt::Display for ErrorBehavior {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorBehavior {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "log" => Ok(ErrorBehavior::Log),
            "retry" => Ok(ErrorBehavior::Retry),
            "disable" => Ok(ErrorBehavior::Disable),
            other => Err(format!(
                "invalid error behavior '{other}': expected log, retry or disable"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TriggerSettings {
    pub run_async: bool,
    pub error_behavior: ErrorBehavior,
}

/// A trigger as stored in the catalog, one per name within a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerDefinition {
    pub name: String,
    pub plugin_filename: String,
    pub specification: TriggerSpecification,
    pub settings: TriggerSettings,
    pub arguments: Option<BTreeMap<String, String>>,
    pub disabled: bool,
}
