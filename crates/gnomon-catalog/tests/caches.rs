//! Cache definitions in the catalog: defaults, every validation error, deletion, and that they
//! survive a reload from the log and from a checkpoint.

use std::sync::Arc;

use gnomon_catalog::{
    Catalog, CatalogError, ColumnKind, DistinctCacheRequest, FieldType, LastCacheRequest, Limits,
    StatusClass, CHECKPOINT_INTERVAL,
};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;

async fn open(store: &Arc<dyn ObjectStore>) -> Arc<Catalog> {
    Catalog::load_or_create(Arc::clone(store), Path::from("n"), Limits::default())
        .await
        .unwrap()
}

/// `foo.cpu(region, host tags; usage float; load int; note string; up bool)`.
async fn setup() -> (Arc<dyn ObjectStore>, Arc<Catalog>) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let catalog = open(&store).await;
    let mut txn = catalog.begin().await;
    let db = txn.database_or_create("foo").unwrap();
    txn.create_table(
        db,
        "cpu",
        &["region", "host"],
        &[
            ("usage", FieldType::Float),
            ("load", FieldType::Integer),
            ("note", FieldType::String),
            ("up", FieldType::Boolean),
        ],
    )
    .unwrap();
    txn.commit().await.unwrap();
    (store, catalog)
}

fn names(catalog: &Catalog, ids: &[u32]) -> Vec<String> {
    let snap = catalog.snapshot();
    let table = snap.database("foo").unwrap().table("cpu").unwrap().clone();
    ids.iter()
        .map(|id| table.column_by_id(*id).unwrap().name.to_string())
        .collect()
}

#[tokio::test]
async fn last_cache_defaults() {
    let (_store, catalog) = setup().await;
    let mut txn = catalog.begin().await;
    let def = txn
        .create_last_cache("foo", "cpu", LastCacheRequest::default())
        .unwrap();
    txn.commit().await.unwrap();
    assert_eq!(def.name, "cpu_region_host_last_cache");
    assert_eq!(names(&catalog, &def.key_columns), ["region", "host"]);
    assert_eq!(def.value_columns, None);
    assert_eq!(def.count, 1);
    assert_eq!(def.ttl_seconds, 14_400);

    // "All non-key columns" follows the table's current schema.
    let snap = catalog.snapshot();
    let table = snap.database("foo").unwrap().table("cpu").unwrap();
    assert_eq!(
        names(&catalog, &def.value_column_ids(table)),
        ["usage", "load", "note", "up"]
    );
    assert_eq!(table.last_caches().len(), 1);
}

#[tokio::test]
async fn last_cache_explicit_settings_and_name() {
    let (_store, catalog) = setup().await;
    let mut txn = catalog.begin().await;
    let def = txn
        .create_last_cache(
            "foo",
            "cpu",
            LastCacheRequest {
                key_columns: Some(vec!["host".into(), "load".into(), "up".into()]),
                value_columns: Some(vec!["usage".into(), "time".into(), "host".into()]),
                count: Some(10),
                ttl_seconds: Some(60),
                ..Default::default()
            },
        )
        .unwrap();
    // Default name from the key columns; time and key columns dropped from the values.
    assert_eq!(def.name, "cpu_host_load_up_last_cache");
    assert_eq!(
        names(&catalog, def.value_columns.as_ref().unwrap()),
        ["usage"]
    );
    assert_eq!((def.count, def.ttl_seconds), (10, 60));

    let empty = txn
        .create_last_cache(
            "foo",
            "cpu",
            LastCacheRequest {
                key_columns: Some(vec![]),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(empty.name, "cpu__last_cache");
}

fn err_of(r: Result<impl std::fmt::Debug, CatalogError>) -> (StatusClass, String) {
    let e = r.expect_err("must fail");
    (e.status_class(), e.to_string())
}

#[tokio::test]
async fn last_cache_errors() {
    let (_store, catalog) = setup().await;
    let mut txn = catalog.begin().await;
    let req = |f: fn(&mut LastCacheRequest)| {
        let mut r = LastCacheRequest::default();
        f(&mut r);
        r
    };
    let cases: Vec<(&str, &str, LastCacheRequest, StatusClass, &str)> = vec![
        (
            "nope",
            "cpu",
            req(|_| {}),
            StatusClass::NotFound,
            "Database not found nope",
        ),
        (
            "foo",
            "nope",
            req(|_| {}),
            StatusClass::NotFound,
            "Table nope not in DB schema for foo",
        ),
        (
            "foo",
            "cpu",
            req(|r| r.key_columns = Some(vec!["missing".into()])),
            StatusClass::BadRequest,
            "invalid configuration provided: invalid key column provided: missing",
        ),
        (
            "foo",
            "cpu",
            req(|r| r.key_columns = Some(vec!["usage".into()])),
            StatusClass::BadRequest,
            "only uint64, int64, bool, tag, and string columns are supported in the last cache",
        ),
        (
            "foo",
            "cpu",
            req(|r| r.key_columns = Some(vec!["time".into()])),
            StatusClass::BadRequest,
            "only uint64, int64, bool, tag, and string columns are supported in the last cache",
        ),
        (
            "foo",
            "cpu",
            req(|r| r.value_columns = Some(vec!["missing".into()])),
            StatusClass::BadRequest,
            "invalid configuration provided: invalid value column provided: missing",
        ),
        (
            "foo",
            "cpu",
            req(|r| r.count = Some(0)),
            StatusClass::BadRequest,
            "invalid configuration provided: last cache count must be between 1 and 10, got 0",
        ),
        (
            "foo",
            "cpu",
            req(|r| r.count = Some(11)),
            StatusClass::BadRequest,
            "invalid configuration provided: last cache count must be between 1 and 10, got 11",
        ),
    ];
    for (db, table, request, class, message) in cases {
        let (c, m) = err_of(txn.create_last_cache(db, table, request));
        assert_eq!((c, m.as_str()), (class, message));
    }
    assert!(
        !txn.has_changes(),
        "failed creations must not record anything"
    );

    txn.create_last_cache("foo", "cpu", req(|r| r.name = Some("lc".into())))
        .unwrap();
    let (c, m) = err_of(txn.create_last_cache("foo", "cpu", req(|r| r.name = Some("lc".into()))));
    assert_eq!(c, StatusClass::Conflict);
    assert_eq!(m, "attempted to create a resource that already exists");
}

#[tokio::test]
async fn distinct_cache_defaults_and_errors() {
    let (_store, catalog) = setup().await;
    let mut txn = catalog.begin().await;
    let def = txn
        .create_distinct_cache(
            "foo",
            "cpu",
            DistinctCacheRequest {
                columns: vec!["region".into(), "host".into(), "note".into()],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(def.name, "cpu_region_host_note_distinct_cache");
    assert_eq!(names(&catalog, &def.columns), ["region", "host", "note"]);
    assert_eq!(
        (def.max_cardinality, def.max_age_seconds),
        (100_000, 86_400)
    );

    let req = |cols: &[&str]| DistinctCacheRequest {
        columns: cols.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    };
    let cases: Vec<(DistinctCacheRequest, StatusClass, &str)> = vec![
        (
            req(&[]),
            StatusClass::BadRequest,
            "invalid configuration provided: no columns provided when creating distinct cache",
        ),
        (
            req(&["missing"]),
            StatusClass::BadRequest,
            "invalid configuration provided: invalid column provided: missing",
        ),
        (
            req(&["load"]),
            StatusClass::BadRequest,
            "only tag and string columns are supported in the distinct cache",
        ),
        (
            DistinctCacheRequest {
                max_cardinality: Some(0),
                ..req(&["host"])
            },
            StatusClass::BadRequest,
            "invalid configuration provided: max cardinality must be greater than 0",
        ),
        (
            DistinctCacheRequest {
                name: Some("__auto__".into()),
                ..req(&["host"])
            },
            StatusClass::BadRequest,
            "invalid configuration provided: the distinct cache name '__auto__' is reserved",
        ),
        (
            req(&["region", "host", "note"]),
            StatusClass::Conflict,
            "attempted to create a resource that already exists",
        ),
    ];
    for (request, class, message) in cases {
        let (c, m) = err_of(txn.create_distinct_cache("foo", "cpu", request));
        assert_eq!((c, m.as_str()), (class, message));
    }
}

#[tokio::test]
async fn delete_caches() {
    let (_store, catalog) = setup().await;
    let mut txn = catalog.begin().await;
    txn.create_last_cache(
        "foo",
        "cpu",
        LastCacheRequest {
            name: Some("a".into()),
            ..Default::default()
        },
    )
    .unwrap();
    txn.create_distinct_cache(
        "foo",
        "cpu",
        DistinctCacheRequest {
            name: Some("a".into()),
            columns: vec!["host".into()],
            ..Default::default()
        },
    )
    .unwrap();
    txn.commit().await.unwrap();

    let mut txn = catalog.begin().await;
    txn.delete_last_cache("foo", "cpu", "a").unwrap();
    let (c, m) = err_of(txn.delete_last_cache("foo", "cpu", "a"));
    assert_eq!(
        (c, m.as_str()),
        (
            StatusClass::NotFound,
            "the requested resource was not found: a"
        )
    );
    txn.commit().await.unwrap();
    let snap = catalog.snapshot();
    let table = snap.database("foo").unwrap().table("cpu").unwrap();
    assert!(table.last_caches().is_empty());
    assert_eq!(
        table.distinct_caches().len(),
        1,
        "the other kind is untouched"
    );

    let mut txn = catalog.begin().await;
    txn.delete_distinct_cache("foo", "cpu", "a").unwrap();
    assert!(txn.delete_distinct_cache("foo", "cpu", "a").is_err());
    txn.commit().await.unwrap();

    // A new cache never gets a deleted cache's id.
    let mut txn = catalog.begin().await;
    let def = txn
        .create_last_cache("foo", "cpu", LastCacheRequest::default())
        .unwrap();
    assert_eq!(def.id, 2);
}

#[tokio::test]
async fn definitions_survive_reload_from_log_and_checkpoint() {
    let (store, catalog) = setup().await;
    let mut txn = catalog.begin().await;
    txn.create_last_cache(
        "foo",
        "cpu",
        LastCacheRequest {
            key_columns: Some(vec!["host".into()]),
            value_columns: Some(vec!["usage".into()]),
            count: Some(3),
            ttl_seconds: Some(600),
            name: Some("lc".into()),
        },
    )
    .unwrap();
    txn.create_distinct_cache(
        "foo",
        "cpu",
        DistinctCacheRequest {
            name: Some("dc".into()),
            columns: vec!["region".into()],
            max_cardinality: Some(50),
            max_age_seconds: Some(120),
        },
    )
    .unwrap();
    txn.commit().await.unwrap();
    let snap = catalog.snapshot();
    assert_eq!(*open(&store).await.snapshot(), *snap, "from the log");

    // Enough commits to write a checkpoint, then load from it.
    for i in 0..CHECKPOINT_INTERVAL {
        let mut txn = catalog.begin().await;
        let db = txn.database_or_create("foo").unwrap();
        let t = txn.table_or_create(db, "cpu").unwrap();
        txn.column_or_create(db, t, &format!("c{i}"), ColumnKind::Tag)
            .unwrap();
        txn.commit().await.unwrap();
    }
    let snap = catalog.snapshot();
    let reloaded = open(&store).await.snapshot();
    assert_eq!(*reloaded, *snap, "from the checkpoint");
    let table = reloaded
        .database("foo")
        .unwrap()
        .table("cpu")
        .unwrap()
        .clone();
    assert_eq!(table.last_cache("lc").unwrap().count, 3);
    assert_eq!(table.distinct_cache("dc").unwrap().max_cardinality, 50);
    assert_eq!(table.next_cache_id(), 2);
}
