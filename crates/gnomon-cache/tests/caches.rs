//! The caches' behaviour with explicit clocks: what a last cache keeps (newest rows per key,
//! `count`, out-of-order rows, merges at equal times, ttl), how filters narrow lookups, and
//! the distinct cache's hierarchy, age and cardinality limits. Also the manager following
//! the catalog.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type, TimestampNanosecondType};
use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;
use gnomon_cache::{CacheManager, ColumnFilter, DistinctCache, KeyValue, LastCache};
use gnomon_catalog::{
    Catalog, DistinctCacheRequest, FieldType, LastCacheRequest, Limits, TableSchema,
};
use gnomon_write_buffer::batch::{BatchColumn, ColumnData, TableBatch, WriteBatch};
use object_store::memory::InMemory;
use object_store::path::Path;

/// `foo.cpu(region, host; usage float, load int)` and its catalog.
async fn catalog() -> Arc<Catalog> {
    let catalog = Catalog::load_or_create(
        Arc::new(InMemory::new()),
        Path::from("n"),
        Limits::default(),
    )
    .await
    .unwrap();
    let mut txn = catalog.begin().await;
    let db = txn.database_or_create("foo").unwrap();
    txn.create_table(
        db,
        "cpu",
        &["region", "host"],
        &[("usage", FieldType::Float), ("load", FieldType::Integer)],
    )
    .unwrap();
    txn.commit().await.unwrap();
    catalog
}

fn table(catalog: &Catalog) -> Arc<TableSchema> {
    catalog
        .snapshot()
        .database("foo")
        .unwrap()
        .table("cpu")
        .unwrap()
        .clone()
}

fn col(table: &TableSchema, name: &str) -> u32 {
    table.column(name).unwrap().id
}

/// Rows `(region, host, time, usage, load)`; `None` load is null.
fn rows(table: &TableSchema, rows: &[(&str, &str, i64, f64, Option<i64>)]) -> TableBatch {
    let tag = |idx: usize| {
        let mut dictionary: Vec<String> = Vec::new();
        let keys = rows
            .iter()
            .map(|r| {
                let v = if idx == 0 { r.0 } else { r.1 };
                match dictionary.iter().position(|d| d == v) {
                    Some(p) => p as u32,
                    None => {
                        dictionary.push(v.to_string());
                        (dictionary.len() - 1) as u32
                    }
                }
            })
            .collect();
        ColumnData::Tag { dictionary, keys }
    };
    TableBatch {
        table_id: table.id,
        time: rows.iter().map(|r| r.2).collect(),
        columns: vec![
            BatchColumn {
                column_id: col(table, "region"),
                data: tag(0),
            },
            BatchColumn {
                column_id: col(table, "host"),
                data: tag(1),
            },
            BatchColumn {
                column_id: col(table, "usage"),
                data: ColumnData::Float {
                    values: rows.iter().map(|r| r.3).collect(),
                    valid: None,
                },
            },
            BatchColumn {
                column_id: col(table, "load"),
                data: ColumnData::Integer {
                    values: rows.iter().map(|r| r.4.unwrap_or(0)).collect(),
                    valid: Some(rows.iter().map(|r| r.4.is_some()).collect()),
                },
            },
        ],
    }
}

/// Every row of `batch` as strings, columns joined by `|`.
fn render(batch: &RecordBatch) -> Vec<String> {
    (0..batch.num_rows())
        .map(|row| {
            batch
                .columns()
                .iter()
                .map(|c| {
                    if c.is_null(row) {
                        "null".to_string()
                    } else {
                        array_value_to_string(c, row).unwrap()
                    }
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn last_cache(request: LastCacheRequest) -> (Arc<Catalog>, LastCache) {
    let catalog = catalog().await;
    let mut txn = catalog.begin().await;
    let def = txn.create_last_cache("foo", "cpu", request).unwrap();
    txn.commit().await.unwrap();
    (catalog, LastCache::new(def))
}

#[tokio::test]
async fn last_cache_keeps_newest_row_per_key() {
    let (catalog, mut cache) = last_cache(LastCacheRequest::default()).await;
    let t = table(&catalog);
    let now = Instant::now();
    cache.push(
        &rows(
            &t,
            &[("us", "a", 10, 1.0, Some(1)), ("us", "b", 10, 2.0, None)],
        ),
        &t,
        now,
    );
    cache.push(
        &rows(
            &t,
            &[
                ("us", "a", 5, 9.0, Some(9)),  // older than cached: ignored
                ("us", "a", 20, 3.0, None),    // newer: replaces, load null
                ("us", "b", 10, 4.0, Some(4)), // same time: merged into the cached row
                ("eu", "a", 1, 5.0, Some(5)),  // another key
            ],
        ),
        &t,
        now,
    );
    let schema = cache.schema(&t);
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["region", "host", "time", "usage", "load"]);
    let batch = cache.to_record_batch(&t, &[], now).unwrap();
    assert_eq!(
        sorted(render(&batch)),
        [
            "eu|a|1970-01-01T00:00:00.000000001|5.0|5",
            "us|a|1970-01-01T00:00:00.000000020|3.0|null",
            "us|b|1970-01-01T00:00:00.000000010|4.0|4",
        ]
    );
    assert_eq!(cache.key_count(), 3);
}

#[tokio::test]
async fn last_cache_count_filters_and_ttl() {
    let (catalog, mut cache) = last_cache(LastCacheRequest {
        key_columns: Some(vec!["host".into()]),
        value_columns: Some(vec!["usage".into()]),
        count: Some(2),
        ttl_seconds: Some(60),
        ..Default::default()
    })
    .await;
    let t = table(&catalog);
    let start = Instant::now();
    cache.push(
        &rows(&t, &[("us", "a", 1, 1.0, None), ("us", "a", 2, 2.0, None)]),
        &t,
        start,
    );
    let later = start + Duration::from_secs(30);
    cache.push(
        &rows(&t, &[("us", "a", 3, 3.0, None), ("us", "b", 3, 4.0, None)]),
        &t,
        later,
    );
    let all = cache.to_record_batch(&t, &[], later).unwrap();
    assert_eq!(all.num_columns(), 3, "host, time, usage");
    let usage: Vec<f64> = sorted(render(&all))
        .iter()
        .map(|r| r.rsplit('|').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(usage, [2.0, 3.0, 4.0], "the 2 newest of a, and b");

    let host = col(&t, "host");
    let only_b = ColumnFilter {
        column: host,
        negated: false,
        values: vec![KeyValue::Str("b".into())],
    };
    let not_b = ColumnFilter {
        negated: true,
        ..only_b.clone()
    };
    let b = cache
        .to_record_batch(&t, std::slice::from_ref(&only_b), later)
        .unwrap();
    assert_eq!(b.num_rows(), 1);
    assert_eq!(b.column(2).as_primitive::<Float64Type>().value(0), 4.0);
    assert_eq!(
        cache
            .to_record_batch(&t, &[not_b], later)
            .unwrap()
            .num_rows(),
        2
    );
    // A filter on a non-key column is left to the engine.
    let on_usage = ColumnFilter {
        column: col(&t, "usage"),
        ..only_b
    };
    assert_eq!(
        cache
            .to_record_batch(&t, &[on_usage], later)
            .unwrap()
            .num_rows(),
        3
    );

    // ttl counts from insertion: the row inserted at `start` expires first.
    let expired_first = start + Duration::from_secs(61);
    let batch = cache.to_record_batch(&t, &[], expired_first).unwrap();
    assert_eq!(
        batch.num_rows(),
        2,
        "row from {start:?} hidden even before eviction"
    );
    cache.evict(expired_first);
    assert_eq!(cache.key_count(), 2);
    cache.evict(later + Duration::from_secs(61));
    assert_eq!(cache.key_count(), 0);
    let times = cache.to_record_batch(&t, &[], later).unwrap();
    assert_eq!(
        times
            .column(1)
            .as_primitive::<TimestampNanosecondType>()
            .len(),
        0
    );
}

#[tokio::test]
async fn last_cache_without_keys_and_with_int_key() {
    let (catalog, mut cache) = last_cache(LastCacheRequest {
        key_columns: Some(vec!["load".into()]),
        ..Default::default()
    })
    .await;
    let t = table(&catalog);
    let now = Instant::now();
    cache.push(
        &rows(
            &t,
            &[("us", "a", 1, 1.0, Some(7)), ("us", "b", 2, 2.0, None)],
        ),
        &t,
        now,
    );
    let f = ColumnFilter {
        column: col(&t, "load"),
        negated: false,
        values: vec![KeyValue::Int(7)],
    };
    let batch = cache.to_record_batch(&t, &[f], now).unwrap();
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(0), 7);
    // A row without the key is kept under a null key.
    assert_eq!(cache.to_record_batch(&t, &[], now).unwrap().num_rows(), 2);
}

async fn distinct(max_cardinality: u64, max_age: u64) -> (Arc<Catalog>, DistinctCache) {
    let catalog = catalog().await;
    let mut txn = catalog.begin().await;
    let def = txn
        .create_distinct_cache(
            "foo",
            "cpu",
            DistinctCacheRequest {
                columns: vec!["region".into(), "host".into()],
                max_cardinality: Some(max_cardinality),
                max_age_seconds: Some(max_age),
                ..Default::default()
            },
        )
        .unwrap();
    txn.commit().await.unwrap();
    (catalog, DistinctCache::new(def))
}

const S: i64 = 1_000_000_000;

#[tokio::test]
async fn distinct_cache_hierarchy_and_filters() {
    let (catalog, mut cache) = distinct(100, 3600).await;
    let t = table(&catalog);
    let now = 10_000 * S;
    cache.push(
        &rows(
            &t,
            &[
                ("us", "b", now, 0.0, None),
                ("us", "a", now, 0.0, None),
                ("eu", "c", now, 0.0, None),
                ("us", "a", now - S, 0.0, None),
                ("ca", "z", now - 7200 * S, 0.0, None), // older than max_age: never cached
            ],
        ),
        now,
    );
    assert_eq!(cache.cardinality(), 3);
    let batch = cache.to_record_batch(&t, &[], now).unwrap();
    assert_eq!(
        render(&batch),
        ["eu|c", "us|a", "us|b"],
        "sorted by region, then host"
    );
    let f = ColumnFilter {
        column: col(&t, "host"),
        negated: true,
        values: vec![KeyValue::Str("a".into())],
    };
    assert_eq!(
        render(&cache.to_record_batch(&t, &[f], now).unwrap()),
        ["eu|c", "us|b"]
    );

    // Age is data time: an hour later everything has expired, for queries and eviction.
    let later = now + 3601 * S;
    assert_eq!(cache.to_record_batch(&t, &[], later).unwrap().num_rows(), 0);
    cache.evict(later);
    assert_eq!(cache.cardinality(), 0);
}

#[tokio::test]
async fn distinct_cache_cardinality_drops_least_recently_seen() {
    let (catalog, mut cache) = distinct(3, 3600).await;
    let t = table(&catalog);
    let now = 10_000 * S;
    let hosts = ["h1", "h2", "h3", "h4", "h5"];
    for (i, h) in hosts.iter().enumerate() {
        cache.push(
            &rows(&t, &[("r", h, now - 100 * S + i as i64 * S, 0.0, None)]),
            now,
        );
    }
    // h1 seen again: now the most recent.
    cache.push(&rows(&t, &[("r", "h1", now, 0.0, None)]), now);
    assert_eq!(cache.cardinality(), 5);
    cache.evict(now);
    assert_eq!(cache.cardinality(), 3);
    assert_eq!(
        render(&cache.to_record_batch(&t, &[], now).unwrap()),
        ["r|h1", "r|h4", "r|h5"]
    );
}

#[tokio::test]
async fn manager_follows_the_catalog() {
    let catalog = catalog().await;
    let manager = CacheManager::new(Arc::clone(&catalog));
    let t = table(&catalog);
    let db = catalog.snapshot().database("foo").unwrap().id;
    let batch = |time| WriteBatch {
        db_id: db,
        tables: vec![rows(&t, &[("us", "a", time, 1.0, None)])],
    };

    // Before the cache exists, writes are not cached (no backfill).
    manager.apply(&batch(1), Instant::now(), 0);
    let mut txn = catalog.begin().await;
    let def = txn
        .create_last_cache("foo", "cpu", LastCacheRequest::default())
        .unwrap();
    txn.commit().await.unwrap();
    let cache = manager
        .last_cache(db, t.id, def.id)
        .expect("synced on lookup");
    assert_eq!(cache.lock().key_count(), 0);
    manager.apply(&batch(2), Instant::now(), 0);
    assert_eq!(cache.lock().key_count(), 1);

    // Unrelated catalog changes keep the cached data.
    let mut txn = catalog.begin().await;
    txn.database_or_create("other").unwrap();
    txn.commit().await.unwrap();
    let again = manager.last_cache(db, t.id, def.id).unwrap();
    assert!(Arc::ptr_eq(&cache, &again));

    // Deleting the definition (or the table) drops the cache.
    let mut txn = catalog.begin().await;
    txn.delete_last_cache("foo", "cpu", &def.name).unwrap();
    txn.commit().await.unwrap();
    assert!(manager.last_cache(db, t.id, def.id).is_none());
}
