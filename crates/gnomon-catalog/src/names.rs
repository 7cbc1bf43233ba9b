//! Name rules for databases, tables and columns, and the names given to soft-deleted resources.

use std::time::{SystemTime, UNIX_EPOCH};

use unicode_segmentation::UnicodeSegmentation;

/// Longest database name accepted by the v3 rules, in bytes (API.md §2.1).
pub const MAX_DATABASE_NAME_LENGTH: usize = 511;

/// The database the server keeps for itself. Created with the catalog; never counts toward
/// the database limit; cannot be deleted; users cannot create `_`-prefixed databases because
/// the v3 name rules require a leading letter or digit.
pub const INTERNAL_DB_NAME: &str = "_internal";

/// Retention of [`INTERNAL_DB_NAME`] (7 days, like Core).
pub const INTERNAL_DB_RETENTION_NS: i64 = 7 * 24 * 3600 * 1_000_000_000;

/// Every table has this column, of kind [`crate::ColumnKind::Time`].
pub const TIME_COLUMN_NAME: &str = "time";

/// Reserved by the query engine for deduplication; never a user column.
pub const CHUNK_ORDER_COLUMN_NAME: &str = "__chunk_order";

const RP_SEPARATOR: char = '/';

/// Why a name was refused. The database variants carry the reference's exact messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("db name cannot be empty")]
    DbEmpty,
    #[error("db name too long: max {MAX_DATABASE_NAME_LENGTH}")]
    DbTooLong,
    #[error("db name did not start with a number or letter")]
    DbInvalidStart,
    #[error(
        "invalid character in database or rp name: must be ASCII, containing only letters, \
         numbers, underscores, or hyphens"
    )]
    DbInvalidChar,
    #[error(
        "db name with invalid retention policy, if providing a retention policy name, must be \
         of form '<db_name>/<rp_name>'"
    )]
    DbInvalidRetentionPolicy,
    #[error("table name cannot be empty")]
    TableEmpty,
    #[error("invalid table name {name:?}: names must not contain control characters")]
    TableControlChar { name: String },
    #[error("column name cannot be empty")]
    ColumnEmpty,
    #[error("invalid column name {name:?}: names must not contain control characters")]
    ColumnControlChar { name: String },
}

impl NameError {
    /// Database-name errors are answered with a JSON body, the others with plain text.
    pub fn is_database(&self) -> bool {
        matches!(
            self,
            NameError::DbEmpty
                | NameError::DbTooLong
                | NameError::DbInvalidStart
                | NameError::DbInvalidChar
                | NameError::DbInvalidRetentionPolicy
        )
    }
}

/// Checks the v3 database-name rules (API.md §2.1), reporting the first rule broken in the
/// same order as the reference: emptiness, length, then character by character.
///
/// The walk is over grapheme clusters, like the reference, so that a multi-byte cluster in
/// first position is an invalid character rather than an invalid start.
pub fn validate_database_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::DbEmpty);
    }
    if name.len() > MAX_DATABASE_NAME_LENGTH {
        return Err(NameError::DbTooLong);
    }
    let mut first = true;
    let mut separator_seen = false;
    let mut last = None;
    for grapheme in name.graphemes(true) {
        if grapheme.len() > 1 {
            return Err(NameError::DbInvalidChar);
        }
        let c = grapheme.as_bytes()[0] as char;
        if first {
            if !c.is_ascii_alphanumeric() {
                return Err(NameError::DbInvalidStart);
            }
            first = false;
        } else if c == RP_SEPARATOR {
            if separator_seen {
                return Err(NameError::DbInvalidRetentionPolicy);
            }
            separator_seen = true;
        } else if !(c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(NameError::DbInvalidChar);
        }
        last = Some(c);
    }
    if last == Some(RP_SEPARATOR) {
        return Err(NameError::DbInvalidRetentionPolicy);
    }
    Ok(())
}

/// Table names must be non-empty and free of control characters.
///
/// Control characters are refused (a deliberate difference from the reference, which takes
/// any byte but NUL from line protocol) because a name containing them cannot be shown
/// faithfully in CSV/pretty output, logs or `SHOW MEASUREMENTS`, and in practice only comes
/// from mangled input such as stray `\r`.
pub fn validate_table_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::TableEmpty);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::TableControlChar { name: name.into() });
    }
    Ok(())
}

/// Column names follow the table-name rules (see [`validate_table_name`]).
pub fn validate_column_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::ColumnEmpty);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ColumnControlChar { name: name.into() });
    }
    Ok(())
}

/// Nanoseconds since the Unix epoch (negative before it), saturating at the i64 range.
pub(crate) fn system_time_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos())
            .map(|n| -n)
            .unwrap_or(i64::MIN),
    }
}

/// `YYYYMMDDTHHMMSS` of `t` in UTC, the suffix soft deletion appends.
pub fn deletion_timestamp(t: SystemTime) -> String {
    let ns = system_time_ns(t);
    chrono::DateTime::from_timestamp(ns.div_euclid(1_000_000_000), 0)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%S")
        .to_string()
}

/// The name a soft-deleted resource gets: `<name>-<YYYYMMDDTHHMMSS>`, or with `-<id>` appended
/// when that is taken (two deletions of the same name within a second), and a counter after
/// that in the unlikely case a user already created that name too.
pub(crate) fn deleted_name(
    name: &str,
    now: SystemTime,
    id: u32,
    taken: impl Fn(&str) -> bool,
) -> String {
    let base = format!("{name}-{}", deletion_timestamp(now));
    if !taken(&base) {
        return base;
    }
    let with_id = format!("{base}-{id}");
    if !taken(&with_id) {
        return with_id;
    }
    (1u64..)
        .map(|n| format!("{with_id}-{n}"))
        .find(|candidate| !taken(candidate))
        .expect("an unbounded counter always finds a free name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn db_names_accepted() {
        for name in [
            "a",
            "1",
            "foo",
            "Foo-Bar_9",
            "db/rp",
            "db/rp-1_x",
            &"a".repeat(MAX_DATABASE_NAME_LENGTH),
        ] {
            assert_eq!(validate_database_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn db_names_refused_with_first_broken_rule() {
        use NameError::*;
        let too_long = "a".repeat(MAX_DATABASE_NAME_LENGTH + 1);
        let cases: &[(&str, NameError)] = &[
            ("", DbEmpty),
            (&too_long, DbTooLong),
            ("-", DbInvalidStart),
            ("_internal", DbInvalidStart),
            ("_a/b/c", DbInvalidStart),
            ("/a", DbInvalidStart),
            ("a.b", DbInvalidChar),
            ("héllo", DbInvalidChar),
            ("é", DbInvalidChar),
            ("a b", DbInvalidChar),
            ("bad#name", DbInvalidChar),
            ("a.b/", DbInvalidChar),
            ("x/", DbInvalidRetentionPolicy),
            ("a//b", DbInvalidRetentionPolicy),
            ("a/b/c", DbInvalidRetentionPolicy),
        ];
        for (name, expected) in cases {
            assert_eq!(
                validate_database_name(name).as_ref(),
                Err(expected),
                "{name}"
            );
        }
    }

    #[test]
    fn db_name_messages_are_exact() {
        assert_eq!(NameError::DbEmpty.to_string(), "db name cannot be empty");
        assert_eq!(
            NameError::DbTooLong.to_string(),
            "db name too long: max 511"
        );
        assert_eq!(
            NameError::DbInvalidStart.to_string(),
            "db name did not start with a number or letter"
        );
        assert_eq!(
            NameError::DbInvalidChar.to_string(),
            "invalid character in database or rp name: must be ASCII, containing only letters, \
             numbers, underscores, or hyphens"
        );
        assert_eq!(
            NameError::DbInvalidRetentionPolicy.to_string(),
            "db name with invalid retention policy, if providing a retention policy name, must \
             be of form '<db_name>/<rp_name>'"
        );
    }

    #[test]
    fn table_and_column_names() {
        assert_eq!(validate_table_name("cpu"), Ok(()));
        assert_eq!(validate_table_name("a b,c=\"d\" é"), Ok(()));
        assert_eq!(validate_table_name(""), Err(NameError::TableEmpty));
        assert_eq!(
            validate_table_name("m\r").unwrap_err().to_string(),
            "invalid table name \"m\\r\": names must not contain control characters"
        );
        assert_eq!(validate_column_name(""), Err(NameError::ColumnEmpty));
        assert_eq!(
            validate_column_name("a\tb").unwrap_err().to_string(),
            "invalid column name \"a\\tb\": names must not contain control characters"
        );
    }

    #[test]
    fn deletion_timestamps_are_utc() {
        let t = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(deletion_timestamp(UNIX_EPOCH), "19700101T000000");
        // 2024-02-29T13:45:07Z (leap day)
        assert_eq!(deletion_timestamp(t(1_709_214_307)), "20240229T134507");
        // 2000-03-01T00:00:00Z
        assert_eq!(deletion_timestamp(t(951_868_800)), "20000301T000000");
        // 1969-12-31T23:59:59Z
        assert_eq!(
            deletion_timestamp(UNIX_EPOCH - Duration::from_secs(1)),
            "19691231T235959"
        );
    }

    #[test]
    fn deleted_names_avoid_collisions() {
        let now = UNIX_EPOCH;
        assert_eq!(
            deleted_name("foo", now, 7, |_| false),
            "foo-19700101T000000"
        );
        assert_eq!(
            deleted_name("foo", now, 7, |n| n == "foo-19700101T000000"),
            "foo-19700101T000000-7"
        );
        assert_eq!(
            deleted_name("foo", now, 7, |n| n.len() < "foo-19700101T000000-7-1".len()),
            "foo-19700101T000000-7-1"
        );
    }
}
