//! Predicates on cache columns that a lookup evaluates itself.

use gnomon_catalog::ColumnId;

use crate::value::KeyValue;

/// `column IN (values)` or `column NOT IN (values)`; `=` and `!=` are the one-value cases.
/// A null never matches either form, as in SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnFilter {
    pub column: ColumnId,
    pub negated: bool,
    pub values: Vec<KeyValue>,
}

impl ColumnFilter {
    pub fn matches(&self, value: &KeyValue) -> bool {
        if *value == KeyValue::Null {
            return false;
        }
        self.values.contains(value) != self.negated
    }
}

/// All filters on `column` (they are ANDed).
pub(crate) fn filters_on(filters: &[ColumnFilter], column: ColumnId) -> Vec<&ColumnFilter> {
    filters.iter().filter(|f| f.column == column).collect()
}

pub(crate) fn all_match(filters: &[&ColumnFilter], value: &KeyValue) -> bool {
    filters.iter().all(|f| f.matches(value))
}
