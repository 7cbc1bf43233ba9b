//! Behaviour of the catalog through its public API: persistence round trips, every error with
//! its exact message, limits, savepoints, concurrency, checkpoints and corruption detection.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gnomon_catalog::{
    Catalog, CatalogError, CatalogSnapshot, ColumnKind, DbId, FieldType, LimitError, Limits,
    NameError, StatusClass, TableId, CHECKPOINT_INTERVAL, INTERNAL_DB_NAME,
    INTERNAL_DB_RETENTION_NS,
};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

const FLOAT: ColumnKind = ColumnKind::Field(FieldType::Float);
const INT: ColumnKind = ColumnKind::Field(FieldType::Integer);

fn mem() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

fn prefix() -> Path {
    Path::from("node0")
}

fn entry_path(seq: u64) -> Path {
    Path::from(format!("node0/catalog/log/{seq:020}.json").as_str())
}

fn checkpoint_path() -> Path {
    Path::from("node0/catalog/checkpoint.json")
}

async fn open_with(store: &Arc<dyn ObjectStore>, limits: Limits) -> Arc<Catalog> {
    Catalog::load_or_create(Arc::clone(store), prefix(), limits)
        .await
        .expect("catalog loads")
}

async fn open(store: &Arc<dyn ObjectStore>) -> Arc<Catalog> {
    open_with(store, Limits::default()).await
}

async fn load_err(store: &Arc<dyn ObjectStore>) -> CatalogError {
    Catalog::load_or_create(Arc::clone(store), prefix(), Limits::default())
        .await
        .expect_err("load must fail")
}

async fn read(store: &Arc<dyn ObjectStore>, path: &Path) -> Vec<u8> {
    store
        .get(path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

async fn write(store: &Arc<dyn ObjectStore>, path: &Path, bytes: Vec<u8>) {
    store.put(path, PutPayload::from(bytes)).await.unwrap();
}

async fn exists(store: &Arc<dyn ObjectStore>, path: &Path) -> bool {
    store.head(path).await.is_ok()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// 2024-05-06T07:08:09Z
const DELETE_TIME: u64 = 1_714_979_289;

/// Creates a database, table and columns in one committed transaction.
async fn create_cpu(catalog: &Catalog, db: &str) -> (DbId, TableId) {
    let mut txn = catalog.begin().await;
    let db_id = txn.database_or_create(db).unwrap();
    let t = txn.table_or_create(db_id, "cpu").unwrap();
    txn.column_or_create(db_id, t, "host", ColumnKind::Tag)
        .unwrap();
    txn.column_or_create(db_id, t, "usage", FLOAT).unwrap();
    txn.commit().await.unwrap();
    (db_id, t)
}

/// A catalog with every kind of thing in it: all column kinds, retention, soft-deleted
/// database and table, a recreated name.
async fn populate(catalog: &Catalog) {
    let mut txn = catalog.begin().await;
    let foo_db = txn.create_database("foo", Some(3_600_000_000_000)).unwrap();
    let bar_db = txn.database_or_create("bar/rp").unwrap();
    let cpu = txn
        .create_table(
            foo_db,
            "cpu",
            &["region", "host"],
            &[
                ("f", FieldType::Float),
                ("i", FieldType::Integer),
                ("u", FieldType::UInteger),
                ("s", FieldType::String),
                ("b", FieldType::Boolean),
            ],
        )
        .unwrap();
    txn.column_or_create(foo_db, cpu, "zone", ColumnKind::Tag)
        .unwrap();
    let mem = txn.table_or_create(bar_db, "mem").unwrap();
    txn.column_or_create(bar_db, mem, "free", INT).unwrap();
    txn.table_or_create(bar_db, "disk").unwrap();
    txn.commit().await.unwrap();

    let mut txn = catalog.begin().await;
    txn.soft_delete_table(bar_db, "disk", at(DELETE_TIME))
        .unwrap();
    txn.create_database("gone", None).unwrap();
    txn.soft_delete_database("gone", at(DELETE_TIME)).unwrap();
    txn.commit().await.unwrap();

    let mut txn = catalog.begin().await;
    txn.create_database("gone", None).unwrap();
    txn.commit().await.unwrap();
}

fn db_names(snap: &CatalogSnapshot) -> Vec<(String, bool)> {
    snap.databases()
        .map(|d| (d.name.to_string(), d.deleted()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// creation and round trips
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn new_catalog_has_internal_db_and_is_persisted() {
    let store = mem();
    let catalog = open(&store).await;
    let snap = catalog.snapshot();
    assert!(!snap.uuid().is_nil());
    assert_eq!(catalog.uuid(), snap.uuid());
    assert_eq!(snap.sequence(), 1);
    let internal = snap.database(INTERNAL_DB_NAME).expect("_internal exists");
    assert!(internal.is_internal());
    assert!(!internal.deleted());
    assert_eq!(
        internal.retention_period_ns(),
        Some(INTERNAL_DB_RETENTION_NS)
    );
    assert_eq!(snap.user_database_count(), 0);
    assert!(exists(&store, &entry_path(1)).await);

    // Reopening keeps the uuid and writes nothing more.
    let again = open(&store).await;
    assert_eq!(again.snapshot().uuid(), snap.uuid());
    assert_eq!(again.snapshot().sequence(), 1);
    assert!(!exists(&store, &entry_path(2)).await);
}

#[tokio::test]
async fn round_trip_in_memory() {
    let store = mem();
    let catalog = open(&store).await;
    populate(&catalog).await;
    let before = catalog.snapshot();
    let after = open(&store).await.snapshot();
    assert_eq!(*before, *after);
    assert_eq!(after.sequence(), 4);
}

#[tokio::test]
async fn round_trip_local_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let catalog = open(&store).await;
    populate(&catalog).await;
    let before = catalog.snapshot();
    drop(catalog);

    // A fresh store object on the same directory, as after a restart.
    let store2: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let after = open(&store2).await.snapshot();
    assert_eq!(*before, *after);
    assert!(dir
        .path()
        .join("node0/catalog/log/00000000000000000004.json")
        .is_file());
}

#[tokio::test]
async fn schema_shape_ids_and_series_key() {
    let store = mem();
    let catalog = open(&store).await;
    populate(&catalog).await;
    let snap = catalog.snapshot();

    assert_eq!(
        db_names(&snap),
        vec![
            ("_internal".into(), false),
            ("bar/rp".into(), false),
            ("foo".into(), false),
            ("gone".into(), false),
            ("gone-20240506T070809".into(), true),
        ]
    );
    let foo_db = snap.database("foo").unwrap();
    assert_eq!(foo_db.retention_period_ns(), Some(3_600_000_000_000));
    let cpu = foo_db.table("cpu").unwrap();
    let cols: Vec<(u32, &str, ColumnKind)> = cpu
        .columns()
        .iter()
        .map(|c| (c.id, &*c.name, c.kind))
        .collect();
    assert_eq!(
        cols,
        vec![
            (0, "time", ColumnKind::Time),
            (1, "region", ColumnKind::Tag),
            (2, "host", ColumnKind::Tag),
            (3, "f", FLOAT),
            (4, "i", INT),
            (5, "u", ColumnKind::Field(FieldType::UInteger)),
            (6, "s", ColumnKind::Field(FieldType::String)),
            (7, "b", ColumnKind::Field(FieldType::Boolean)),
            (8, "zone", ColumnKind::Tag),
        ]
    );
    assert_eq!(cpu.series_key(), &[1, 2, 8]);
    assert_eq!(cpu.tag_and_field_count(), 8);
    assert_eq!(cpu.column_by_id(4).unwrap().name.as_ref(), "i");
    assert!(cpu.column_by_id(9).is_none());
    assert_eq!(cpu.time_column().unwrap().id, 0);

    let bar_db = snap.database("bar/rp").unwrap();
    assert_eq!(
        bar_db.tables().map(|t| &*t.name).collect::<Vec<_>>(),
        vec!["mem"]
    );
    assert_eq!(
        bar_db
            .all_tables()
            .map(|t| (&*t.name, t.deleted()))
            .collect::<Vec<_>>(),
        vec![("disk-20240506T070809", true), ("mem", false)]
    );
    assert!(bar_db.table("disk").is_none());
    assert_eq!(bar_db.table_count(), 1);
    let ids: Vec<DbId> = snap.databases().map(|d| d.id).collect();
    assert_eq!(ids, vec![0, 2, 1, 4, 3]);
    assert_eq!(
        snap.database_by_id(3).unwrap().name.as_ref(),
        "gone-20240506T070809"
    );
}

#[test]
fn iox_names() {
    assert_eq!(ColumnKind::Tag.iox_name(), "iox::column_type::tag");
    assert_eq!(ColumnKind::Time.iox_name(), "iox::column_type::timestamp");
    let fields: Vec<&str> = FieldType::ALL
        .iter()
        .map(|t| ColumnKind::Field(*t).iox_name())
        .collect();
    assert_eq!(
        fields,
        vec![
            "iox::column_type::field::float",
            "iox::column_type::field::integer",
            "iox::column_type::field::uinteger",
            "iox::column_type::field::string",
            "iox::column_type::field::boolean",
        ]
    );
}

#[tokio::test]
async fn ids_are_never_reused() {
    let store = mem();
    let catalog = open(&store).await;
    let (db, t1) = create_cpu(&catalog, "foo").await;

    let mut txn = catalog.begin().await;
    txn.soft_delete_table(db, "cpu", at(DELETE_TIME)).unwrap();
    let t2 = txn.table_or_create(db, "cpu").unwrap();
    txn.soft_delete_database("foo", at(DELETE_TIME)).unwrap();
    let db2 = txn.database_or_create("foo").unwrap();
    txn.commit().await.unwrap();
    assert_ne!(t1, t2);
    assert_ne!(db, db2);

    // After a reload the counters continue where they were.
    let catalog = open(&store).await;
    let mut txn = catalog.begin().await;
    let db3 = txn.database_or_create("other").unwrap();
    assert!(db3 > db2);
    let t3 = txn.table_or_create(db, "x");
    // `db` is deleted: writing to it by id is refused.
    assert!(matches!(t3, Err(CatalogError::DatabaseDeleted { .. })));
}

#[tokio::test]
async fn no_changes_means_no_write() {
    let store = mem();
    let catalog = open(&store).await;
    create_cpu(&catalog, "foo").await;
    let seq = catalog.snapshot().sequence();

    let mut txn = catalog.begin().await;
    let db = txn.database_or_create("foo").unwrap();
    let t = txn.table_or_create(db, "cpu").unwrap();
    txn.column_or_create(db, t, "usage", FLOAT).unwrap();
    assert!(!txn.has_changes());
    let snap = txn.commit().await.unwrap();
    assert_eq!(snap.sequence(), seq);
    assert!(!exists(&store, &entry_path(seq + 1)).await);
}

#[tokio::test]
async fn uncommitted_changes_are_invisible_and_dropped() {
    let store = mem();
    let catalog = open(&store).await;
    let before = catalog.snapshot();
    {
        let mut txn = catalog.begin().await;
        txn.database_or_create("foo").unwrap();
        assert!(txn.has_changes());
        assert!(txn.state().database("foo").is_some());
        assert!(catalog.snapshot().database("foo").is_none());
    }
    assert_eq!(*catalog.snapshot(), *before);
    // A snapshot taken earlier stays as it was after a commit.
    create_cpu(&catalog, "foo").await;
    assert!(before.database("foo").is_none());
    assert!(catalog.snapshot().database("foo").is_some());
}

// ---------------------------------------------------------------------------------------------
// errors and their messages
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn database_name_errors() {
    let store = mem();
    let catalog = open(&store).await;
    let mut txn = catalog.begin().await;
    let long = "a".repeat(512);
    let cases = [
        ("", "db name cannot be empty"),
        (long.as_str(), "db name too long: max 511"),
        ("_internal", "db name did not start with a number or letter"),
        ("_foo", "db name did not start with a number or letter"),
        (
            "a b",
            "invalid character in database or rp name: must be ASCII, containing only letters, \
             numbers, underscores, or hyphens",
        ),
        (
            "a/b/c",
            "db name with invalid retention policy, if providing a retention policy name, must \
             be of form '<db_name>/<rp_name>'",
        ),
    ];
    for (name, message) in cases {
        for err in [
            txn.database_or_create(name).unwrap_err(),
            txn.create_database(name, None).unwrap_err(),
        ] {
            assert_eq!(err.to_string(), message, "{name:?}");
            assert_eq!(err.status_class(), StatusClass::BadRequest);
            assert!(err.uses_json_body());
            assert!(matches!(err, CatalogError::InvalidName(ref e) if e.is_database()));
        }
    }
    assert!(!txn.has_changes());
}

#[tokio::test]
async fn already_exists_and_not_found() {
    let store = mem();
    let catalog = open(&store).await;
    let (db, _) = create_cpu(&catalog, "foo").await;
    let mut txn = catalog.begin().await;

    let err = txn.create_database("foo", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "attempted to create a resource that already exists"
    );
    assert_eq!(err.status_class(), StatusClass::Conflict);

    let err = txn.create_table(db, "cpu", &[], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "attempted to create a resource that already exists"
    );

    let err = txn
        .soft_delete_database("nope", at(DELETE_TIME))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the requested resource was not found: nope"
    );
    assert_eq!(err.status_class(), StatusClass::NotFound);

    let err = txn
        .soft_delete_table(db, "nope", at(DELETE_TIME))
        .unwrap_err();
    assert_eq!(err.to_string(), "Table nope not in DB schema for foo");
    assert_eq!(err.status_class(), StatusClass::NotFound);

    let err = txn.table_or_create(99, "cpu").unwrap_err();
    assert_eq!(err.to_string(), "Database not found with id 99");
    assert_eq!(err.status_class(), StatusClass::NotFound);

    let err = txn.column_or_create(db, 42, "x", FLOAT).unwrap_err();
    assert_eq!(err.to_string(), "Table with id 42 not in DB schema for foo");

    let err = txn.set_retention_period("nope", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the requested resource was not found: nope"
    );
}

#[tokio::test]
async fn column_type_conflicts() {
    let store = mem();
    let catalog = open(&store).await;
    let (db, t) = create_cpu(&catalog, "foo").await;
    let mut txn = catalog.begin().await;
    txn.savepoint();

    let cases = [
        (
            "usage",
            INT,
            "invalid column type for column 'usage', expected iox::column_type::field::float, \
             got iox::column_type::field::integer",
        ),
        (
            "usage",
            ColumnKind::Field(FieldType::UInteger),
            "invalid column type for column 'usage', expected iox::column_type::field::float, \
             got iox::column_type::field::uinteger",
        ),
        (
            "usage",
            ColumnKind::Tag,
            "invalid column type for column 'usage', expected iox::column_type::field::float, \
             got iox::column_type::tag",
        ),
        (
            "host",
            ColumnKind::Field(FieldType::String),
            "invalid column type for column 'host', expected iox::column_type::tag, got \
             iox::column_type::field::string",
        ),
        (
            "time",
            ColumnKind::Field(FieldType::Boolean),
            "invalid column type for column 'time', expected iox::column_type::timestamp, got \
             iox::column_type::field::boolean",
        ),
        (
            "time",
            ColumnKind::Tag,
            "invalid column type for column 'time', expected iox::column_type::timestamp, got \
             iox::column_type::tag",
        ),
    ];
    for (name, kind, message) in cases {
        let err = txn.column_or_create(db, t, name, kind).unwrap_err();
        assert_eq!(err.to_string(), message);
        assert_eq!(err.status_class(), StatusClass::BadRequest);
        assert!(!err.uses_json_body());
    }

    // Within one line: a tag then a field of the same name.
    let t2 = txn.table_or_create(db, "m").unwrap();
    txn.column_or_create(db, t2, "t", ColumnKind::Tag).unwrap();
    let err = txn.column_or_create(db, t2, "t", FLOAT).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid column type for column 't', expected iox::column_type::tag, got \
         iox::column_type::field::float"
    );
}

#[tokio::test]
async fn reserved_columns() {
    let store = mem();
    let catalog = open(&store).await;
    let (db, existing) = create_cpu(&catalog, "foo").await;
    let mut txn = catalog.begin().await;

    // `time` on a table created by the current line → reserved.
    txn.savepoint();
    let t = txn.table_or_create(db, "new").unwrap();
    for kind in [ColumnKind::Tag, FLOAT] {
        let err = txn.column_or_create(db, t, "time", kind).unwrap_err();
        assert_eq!(err.to_string(), "'time' is a reserved column");
        assert_eq!(err.status_class(), StatusClass::BadRequest);
    }
    // `__chunk_order` is reserved everywhere, with the same message.
    for table in [t, existing] {
        let err = txn
            .column_or_create(db, table, "__chunk_order", FLOAT)
            .unwrap_err();
        assert_eq!(err.to_string(), "'time' is a reserved column");
    }
    // The next line sees the table as existing: a type conflict with the timestamp.
    txn.savepoint();
    let err = txn.column_or_create(db, t, "time", FLOAT).unwrap_err();
    assert!(matches!(err, CatalogError::ColumnTypeConflict { .. }));
    // `time` as the timestamp resolves to column 0.
    assert_eq!(
        txn.column_or_create(db, t, "time", ColumnKind::Time)
            .unwrap(),
        0
    );
    // Only `time` can be a timestamp.
    let err = txn
        .column_or_create(db, t, "ts", ColumnKind::Time)
        .unwrap_err();
    assert_eq!(err.status_class(), StatusClass::BadRequest);

    // create_table with a reserved tag or field.
    let err = txn.create_table(db, "t1", &["time"], &[]).unwrap_err();
    assert_eq!(err.to_string(), "'time' is a reserved column");
    let err = txn
        .create_table(db, "t2", &[], &[("__chunk_order", FieldType::Float)])
        .unwrap_err();
    assert_eq!(err.to_string(), "'time' is a reserved column");
    assert!(txn.state().database("foo").unwrap().table("t1").is_none());
}

#[tokio::test]
async fn table_and_column_name_rules() {
    let store = mem();
    let catalog = open(&store).await;
    let (db, t) = create_cpu(&catalog, "foo").await;
    let mut txn = catalog.begin().await;
    let err = txn.table_or_create(db, "").unwrap_err();
    assert_eq!(err.to_string(), "table name cannot be empty");
    assert!(!err.uses_json_body());
    let err = txn.table_or_create(db, "cpu\r").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid table name \"cpu\\r\": names must not contain control characters"
    );
    let err = txn.column_or_create(db, t, "", FLOAT).unwrap_err();
    assert_eq!(err.to_string(), "column name cannot be empty");
    let err = txn.column_or_create(db, t, "a\u{1}", FLOAT).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid column name \"a\\u{1}\": names must not contain control characters"
    );
    assert!(matches!(
        err,
        CatalogError::InvalidName(NameError::ColumnControlChar { .. })
    ));
    // Anything else goes, as in line protocol.
    for name in ["a b", "a,b", "\"m\"", "é", "a=b"] {
        let t = txn.table_or_create(db, name).unwrap();
        txn.column_or_create(db, t, name, ColumnKind::Tag).unwrap();
    }
}

#[tokio::test]
async fn create_table_semantics() {
    let store = mem();
    let catalog = open(&store).await;
    let mut txn = catalog.begin().await;
    let db = txn.create_database("foo", None).unwrap();

    // Duplicate tags merge; a duplicate field of the same type merges.
    let t = txn
        .create_table(
            db,
            "bar",
            &["t1", "t2", "t1"],
            &[("f1", FieldType::UInteger), ("f1", FieldType::UInteger)],
        )
        .unwrap();
    let table = txn
        .state()
        .database_by_id(db)
        .unwrap()
        .table_by_id(t)
        .unwrap();
    let names: Vec<&str> = table.columns().iter().map(|c| &*c.name).collect();
    assert_eq!(names, vec!["time", "t1", "t2", "f1"]);

    // A field named like a tag, or a field repeated with another type: conflict, and the
    // table is not created at all.
    let before = txn.state().clone();
    let err = txn
        .create_table(db, "baz", &["t"], &[("t", FieldType::Float)])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid column type for column 't', expected iox::column_type::tag, got \
         iox::column_type::field::float"
    );
    let err = txn
        .create_table(
            db,
            "baz",
            &[],
            &[("f", FieldType::Float), ("f", FieldType::Integer)],
        )
        .unwrap_err();
    assert!(matches!(err, CatalogError::ColumnTypeConflict { .. }));
    assert_eq!(*txn.state(), before);

    // Empty tags and fields are fine.
    txn.create_table(db, "empty", &[], &[]).unwrap();
    txn.commit().await.unwrap();
    let snap = catalog.snapshot();
    let empty = snap.database("foo").unwrap().table("empty").unwrap();
    assert_eq!(empty.columns().len(), 1);
    assert_eq!(empty.tag_and_field_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// soft deletion
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn soft_delete_database_renames_and_frees_the_name() {
    let store = mem();
    let catalog = open(&store).await;
    let (db, _) = create_cpu(&catalog, "foo").await;

    let mut txn = catalog.begin().await;
    txn.soft_delete_database("foo", at(DELETE_TIME)).unwrap();
    assert!(txn.state().database("foo").is_none());
    let deleted = txn.state().database_by_id(db).unwrap();
    assert_eq!(deleted.name.as_ref(), "foo-20240506T070809");
    assert!(deleted.deleted());
    assert_eq!(
        deleted.deleted_at_ns(),
        Some(DELETE_TIME as i64 * 1_000_000_000)
    );
    assert_eq!(deleted.hard_delete_time_ns(), None);

    // Deleting the original name again: it is gone.
    let err = txn
        .soft_delete_database("foo", at(DELETE_TIME))
        .unwrap_err();
    assert_eq!(err.to_string(), "the requested resource was not found: foo");

    // Recreate and delete within the same second: the id is appended.
    let db2 = txn.database_or_create("foo").unwrap();
    txn.soft_delete_database("foo", at(DELETE_TIME)).unwrap();
    assert_eq!(
        txn.state().database_by_id(db2).unwrap().name.as_ref(),
        format!("foo-20240506T070809-{db2}")
    );

    // The renamed database: same hard-delete time → already deleted; another → updated.
    let err = txn
        .soft_delete_database("foo-20240506T070809", at(DELETE_TIME))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "attempted to modify resource that was already deleted: foo-20240506T070809"
    );
    assert_eq!(err.status_class(), StatusClass::Conflict);
    txn.soft_delete_database_with_hard_delete("foo-20240506T070809", at(DELETE_TIME), Some(5))
        .unwrap();
    assert_eq!(
        txn.state()
            .database_by_id(db)
            .unwrap()
            .hard_delete_time_ns(),
        Some(5)
    );

    // Writing to the renamed name is refused; creating it says it exists.
    let err = txn.database_or_create("foo-20240506T070809").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot write to soft-deleted database 'foo-20240506T070809' - it is marked for deletion"
    );
    assert_eq!(err.status_class(), StatusClass::BadRequest);
    let err = txn
        .create_database("foo-20240506T070809", None)
        .unwrap_err();
    assert!(matches!(err, CatalogError::AlreadyExists { .. }));

    // _internal cannot be deleted.
    let err = txn
        .soft_delete_database(INTERNAL_DB_NAME, at(DELETE_TIME))
        .unwrap_err();
    assert_eq!(err.to_string(), "cannot delete internal db");
    assert_eq!(err.status_class(), StatusClass::Internal);
    txn.commit().await.unwrap();

    // Listing: sorted by name, deleted ones flagged.
    assert_eq!(
        db_names(&catalog.snapshot()),
        vec![
            ("_internal".into(), false),
            ("foo-20240506T070809".into(), true),
            (format!("foo-20240506T070809-{db2}"), true),
        ]
    );
    assert_eq!(*open(&store).await.snapshot(), *catalog.snapshot());
}

#[tokio::test]
async fn soft_delete_table() {
    let store = mem();
    let catalog = open(&store).await;
    let (db, t) = create_cpu(&catalog, "foo").await;
    let mut txn = catalog.begin().await;
    txn.soft_delete_table(db, "cpu", at(DELETE_TIME)).unwrap();
    let database = txn.state().database_by_id(db).unwrap();
    assert!(database.table("cpu").is_none());
    let table = database.table_by_id(t).unwrap();
    assert_eq!(table.name.as_ref(), "cpu-20240506T070809");
    assert!(table.deleted());

    // Writes to the renamed table are refused; the original name makes a new table.
    let err = txn.table_or_create(db, "cpu-20240506T070809").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot write to soft-deleted table 'cpu-20240506T070809' in database 'foo' - it is \
         marked for deletion"
    );
    let err = txn.column_or_create(db, t, "x", FLOAT).unwrap_err();
    assert!(matches!(err, CatalogError::TableDeleted { .. }));
    let t2 = txn.table_or_create(db, "cpu").unwrap();
    assert_ne!(t, t2);

    let err = txn
        .soft_delete_table(db, "cpu-20240506T070809", at(DELETE_TIME))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "attempted to modify resource that was already deleted: cpu-20240506T070809"
    );
    txn.soft_delete_table_with_hard_delete(db, "cpu-20240506T070809", at(1), Some(7))
        .unwrap();

    // Same second again → `-<id>` suffix.
    txn.soft_delete_table(db, "cpu", at(DELETE_TIME)).unwrap();
    let names: Vec<String> = txn
        .state()
        .database_by_id(db)
        .unwrap()
        .all_tables()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(
        names,
        vec![
            "cpu-20240506T070809".to_string(),
            format!("cpu-20240506T070809-{t2}")
        ]
    );

    // In a deleted database the table is "not found".
    txn.soft_delete_database("foo", at(DELETE_TIME)).unwrap();
    let err = txn
        .soft_delete_table(db, "cpu", at(DELETE_TIME))
        .unwrap_err();
    assert_eq!(err.status_class(), StatusClass::NotFound);
    txn.commit().await.unwrap();
    assert_eq!(*open(&store).await.snapshot(), *catalog.snapshot());
}

#[tokio::test]
async fn retention_period() {
    let store = mem();
    let catalog = open(&store).await;
    let mut txn = catalog.begin().await;
    txn.create_database("foo", None).unwrap();
    let err = txn.create_database("bar", Some(0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration provided: retention period must be positive, got 0ns"
    );
    assert_eq!(err.status_class(), StatusClass::BadRequest);
    txn.set_retention_period("foo", Some(10)).unwrap();
    txn.commit().await.unwrap();
    assert_eq!(
        catalog
            .snapshot()
            .database("foo")
            .unwrap()
            .retention_period_ns(),
        Some(10)
    );

    let mut txn = catalog.begin().await;
    txn.set_retention_period("foo", Some(10)).unwrap();
    assert!(!txn.has_changes());
    txn.set_retention_period("foo", None).unwrap();
    txn.commit().await.unwrap();
    let reloaded = open(&store).await.snapshot();
    assert_eq!(
        reloaded.database("foo").unwrap().retention_period_ns(),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// limits
// ---------------------------------------------------------------------------------------------

fn small_limits() -> Limits {
    Limits {
        max_databases: 2,
        max_tables: 3,
        max_columns_per_table: 3,
        max_tag_columns_per_table: 2,
    }
}

#[tokio::test]
async fn database_limit_and_soft_delete_frees_room() {
    let store = mem();
    let catalog = open_with(&store, small_limits()).await;
    let mut txn = catalog.begin().await;
    txn.create_database("a", None).unwrap();
    txn.database_or_create("b").unwrap();
    for err in [
        txn.database_or_create("c").unwrap_err(),
        txn.create_database("c", None).unwrap_err(),
    ] {
        assert_eq!(
            err.to_string(),
            "Adding a new database would exceed limit of 2 databases: attempted to create \
             database 'c' but already have 2 database(s) (limit: 2); delete a database or raise \
             --num-database-limit"
        );
        assert!(err
            .to_string()
            .starts_with("Adding a new database would exceed limit of"));
        assert_eq!(err.status_class(), StatusClass::Unprocessable);
        assert!(err.uses_json_body());
        assert!(matches!(
            err,
            CatalogError::LimitExceeded(LimitError::Databases {
                count: 2,
                limit: 2,
                ..
            })
        ));
    }
    // Existing databases still resolve at the limit.
    txn.database_or_create("a").unwrap();
    // Soft delete frees the room in the same transaction.
    txn.soft_delete_database("a", at(DELETE_TIME)).unwrap();
    txn.database_or_create("c").unwrap();
    txn.commit().await.unwrap();
    // `_internal` plus two user databases plus one deleted.
    assert_eq!(catalog.snapshot().user_database_count(), 2);
    assert_eq!(catalog.snapshot().databases().count(), 4);
}

#[tokio::test]
async fn table_limit_spans_databases_and_frees_on_delete() {
    let store = mem();
    let catalog = open_with(&store, small_limits()).await;
    let mut txn = catalog.begin().await;
    let a = txn.database_or_create("a").unwrap();
    let b = txn.database_or_create("b").unwrap();
    txn.table_or_create(a, "t1").unwrap();
    txn.table_or_create(a, "t2").unwrap();
    txn.table_or_create(b, "t3").unwrap();
    let err = txn.table_or_create(b, "cpu").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Update to schema would exceed number of tables limit: attempted to create table 'cpu' \
         in database 'b' but already have 3 table(s) (limit: 3); delete a table or raise \
         --num-table-limit"
    );
    assert_eq!(err.status_class(), StatusClass::Unprocessable);
    let err = txn.create_table(b, "cpu", &["x"], &[]).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("Update to schema would exceed number of tables limit"));

    // `_internal` does not count and is not limited.
    let internal = txn.state().database(INTERNAL_DB_NAME).unwrap().id;
    txn.table_or_create(internal, "tokens").unwrap();

    // Deleting a table frees one slot at once...
    txn.soft_delete_table(a, "t1", at(DELETE_TIME)).unwrap();
    txn.table_or_create(b, "cpu").unwrap();
    assert!(txn.table_or_create(b, "mem").is_err());
    // ...and deleting a database frees all of its tables.
    txn.soft_delete_database("a", at(DELETE_TIME)).unwrap();
    txn.table_or_create(b, "mem").unwrap();
    assert_eq!(txn.state().user_table_count(), 3);
    txn.commit().await.unwrap();
}

#[tokio::test]
async fn column_limits() {
    let store = mem();
    let catalog = open_with(&store, small_limits()).await;
    let mut txn = catalog.begin().await;
    let db = txn.database_or_create("foo").unwrap();
    let t = txn.table_or_create(db, "cpu").unwrap();
    txn.column_or_create(db, t, "t1", ColumnKind::Tag).unwrap();
    txn.column_or_create(db, t, "t2", ColumnKind::Tag).unwrap();
    let err = txn
        .column_or_create(db, t, "t3", ColumnKind::Tag)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Update to schema would exceed number of tag columns per table limit of 2 columns: \
         attempted to add tag column 't3' to table 'cpu' in database 'foo' but it already has \
         2 tag column(s) (limit: 2); write fewer distinct tag keys"
    );
    assert_eq!(err.status_class(), StatusClass::Unprocessable);
    // `time` is not counted: two tags + one field fit the limit of 3.
    txn.column_or_create(db, t, "f1", FLOAT).unwrap();
    let err = txn.column_or_create(db, t, "f2", FLOAT).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Update to schema would exceed number of columns per table limit of 3 columns: \
         attempted to add column 'f2' to table 'cpu' in database 'foo' but it already has 3 \
         tag and field column(s) (limit: 3); write fewer distinct tag and field keys or raise \
         --num-total-columns-per-table-limit"
    );
    assert!(err.uses_json_body());
    // Existing columns still resolve at the limit.
    assert_eq!(txn.column_or_create(db, t, "f1", FLOAT).unwrap(), 3);
    let err = txn
        .create_table(
            db,
            "wide",
            &["a", "b"],
            &[("c", FieldType::Float), ("d", FieldType::Float)],
        )
        .unwrap_err();
    assert!(matches!(
        err,
        CatalogError::LimitExceeded(LimitError::Columns {
            count: 3,
            limit: 3,
            ..
        })
    ));
    assert!(txn.state().database("foo").unwrap().table("wide").is_none());
}

#[tokio::test]
async fn limits_are_not_enforced_on_load() {
    let store = mem();
    let catalog = open(&store).await;
    create_cpu(&catalog, "a").await;
    create_cpu(&catalog, "b").await;
    let before = catalog.snapshot();
    let tight = Limits {
        max_databases: 1,
        max_tables: 1,
        max_columns_per_table: 1,
        max_tag_columns_per_table: 1,
    };
    let catalog = open_with(&store, tight).await;
    assert_eq!(*catalog.snapshot(), *before);
    let mut txn = catalog.begin().await;
    assert!(txn.database_or_create("c").is_err());
}

// ---------------------------------------------------------------------------------------------
// savepoints
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn savepoint_rollback_undoes_one_line() {
    let store = mem();
    let catalog = open(&store).await;
    let (db, cpu) = create_cpu(&catalog, "foo").await;
    let mut txn = catalog.begin().await;

    // Line 1: accepted, adds a column.
    txn.savepoint();
    txn.column_or_create(db, cpu, "a", ColumnKind::Tag).unwrap();
    let after_line_1 = txn.state().clone();

    // Line 2: creates a table and columns, then fails.
    let sp = txn.savepoint();
    let mem = txn.table_or_create(db, "mem").unwrap();
    txn.column_or_create(db, mem, "x", FLOAT).unwrap();
    txn.column_or_create(db, cpu, "b", INT).unwrap();
    assert!(txn.column_or_create(db, mem, "x", INT).is_err());
    txn.rollback_to(sp);
    assert_eq!(*txn.state(), after_line_1);
    // A stale savepoint (past the current point) changes nothing.
    let stale = {
        let sp2 = txn.savepoint();
        txn.column_or_create(db, cpu, "tmp", FLOAT).unwrap();
        let later = txn.savepoint();
        txn.rollback_to(sp2);
        later
    };
    txn.rollback_to(stale);
    assert_eq!(*txn.state(), after_line_1);

    // Line 3: the ids freed by the rollback were never published, so they are handed out again.
    txn.savepoint();
    let mem2 = txn.table_or_create(db, "mem").unwrap();
    assert_eq!(mem2, mem);
    txn.column_or_create(db, mem2, "x", INT).unwrap();
    txn.commit().await.unwrap();

    let snap = open(&store).await.snapshot();
    let foo_db = snap.database("foo").unwrap();
    let cpu_cols: Vec<&str> = foo_db
        .table("cpu")
        .unwrap()
        .columns()
        .iter()
        .map(|c| &*c.name)
        .collect();
    assert_eq!(cpu_cols, vec!["time", "host", "usage", "a"]);
    assert_eq!(foo_db.table("mem").unwrap().column("x").unwrap().kind, INT);
}

#[tokio::test]
async fn rollback_to_start_drops_everything() {
    let store = mem();
    let catalog = open(&store).await;
    let before = catalog.snapshot();
    let mut txn = catalog.begin().await;
    let sp = txn.savepoint();
    let db = txn.database_or_create("foo").unwrap();
    txn.create_table(db, "cpu", &["h"], &[("v", FieldType::Float)])
        .unwrap();
    txn.rollback_to(sp);
    assert!(!txn.has_changes());
    assert_eq!(*txn.state(), *before);
    txn.commit().await.unwrap();
    assert_eq!(catalog.snapshot().sequence(), before.sequence());
}

// ---------------------------------------------------------------------------------------------
// concurrency
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creators_of_the_same_schema_all_succeed() {
    let store = mem();
    let catalog = open(&store).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let catalog = Arc::clone(&catalog);
            tokio::spawn(async move {
                let mut txn = catalog.begin().await;
                let db = txn.database_or_create("foo")?;
                let t = txn.table_or_create(db, "cpu")?;
                let h = txn.column_or_create(db, t, "host", ColumnKind::Tag)?;
                let c = txn.column_or_create(db, t, "usage", FLOAT)?;
                txn.commit().await?;
                Ok::<_, CatalogError>((db, t, h, c))
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap().unwrap());
    }
    assert!(results.iter().all(|r| *r == results[0]));
    let snap = catalog.snapshot();
    // One commit made the schema; the other 15 had nothing to write.
    assert_eq!(snap.sequence(), 2);
    let cpu = snap.database("foo").unwrap().table("cpu").unwrap();
    assert_eq!(cpu.columns().len(), 3);
    assert_eq!(*open(&store).await.snapshot(), *snap);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conflicting_types_exactly_one_wins() {
    let store = mem();
    let catalog = open(&store).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let catalog = Arc::clone(&catalog);
            let ty = FieldType::ALL[i % FieldType::ALL.len()];
            tokio::spawn(async move {
                let mut txn = catalog.begin().await;
                let db = txn.database_or_create("foo")?;
                let t = txn.table_or_create(db, "cpu")?;
                txn.column_or_create(db, t, "v", ColumnKind::Field(ty))?;
                txn.commit().await?;
                Ok::<_, CatalogError>(ty)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(ty) => winners.push(ty),
            Err(CatalogError::ColumnTypeConflict { .. }) => conflicts += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    // Two tasks per type: the winning type's pair both succeed, every other task conflicts.
    assert_eq!(winners.len(), 2);
    assert_eq!(winners[0], winners[1]);
    assert_eq!(conflicts, 8);
    let snap = catalog.snapshot();
    let column = snap
        .database("foo")
        .and_then(|d| d.table("cpu"))
        .and_then(|t| t.column("v"))
        .map(|c| c.kind);
    assert_eq!(column, Some(ColumnKind::Field(winners[0])));
}

#[tokio::test]
async fn two_catalogs_on_one_store_do_not_overwrite_each_other() {
    let store = mem();
    let a = open(&store).await;
    let b = open(&store).await;
    create_cpu(&a, "from_a").await;
    let entry_2 = read(&store, &entry_path(2)).await;

    // B is stale: its entry 2 is refused, nothing is published, the entry is untouched.
    let mut txn = b.begin().await;
    txn.database_or_create("from_b").unwrap();
    let err = txn.commit().await.unwrap_err();
    assert_eq!(err.status_class(), StatusClass::Internal);
    assert!(b.snapshot().database("from_b").is_none());
    assert_eq!(read(&store, &entry_path(2)).await, entry_2);

    // The next transaction reloads first, sees A's work and commits after it.
    let mut txn = b.begin().await;
    assert!(txn.state().database("from_a").is_some());
    txn.database_or_create("from_b").unwrap();
    let snap = txn.commit().await.unwrap();
    assert_eq!(snap.sequence(), 3);
    let reloaded = open(&store).await.snapshot();
    assert!(reloaded.database("from_a").is_some());
    assert!(reloaded.database("from_b").is_some());
}

// ---------------------------------------------------------------------------------------------
// checkpoints, replay and corruption
// ---------------------------------------------------------------------------------------------

/// Commits `n` transactions, each adding one column.
async fn many_commits(catalog: &Catalog, n: usize) {
    for i in 0..n {
        let mut txn = catalog.begin().await;
        let db = txn.database_or_create("foo").unwrap();
        let t = txn.table_or_create(db, &format!("t{}", i % 7)).unwrap();
        txn.column_or_create(db, t, &format!("c{i}"), FLOAT)
            .unwrap();
        txn.commit().await.unwrap();
    }
}

#[tokio::test]
async fn checkpoint_then_log_replay() {
    let store = mem();
    let catalog = open(&store).await;
    assert!(!exists(&store, &checkpoint_path()).await);
    many_commits(&catalog, 250).await;
    let snap = catalog.snapshot();
    assert_eq!(snap.sequence(), 251);

    // The checkpoint was last written at sequence 200 and starts with its checksum.
    let checkpoint = String::from_utf8(read(&store, &checkpoint_path()).await).unwrap();
    assert!(checkpoint.starts_with("{\"crc32\":"), "{checkpoint}");
    assert!(checkpoint.contains("\"sequence\":200,"));

    // Loading = checkpoint + entries 201..=251.
    assert_eq!(*open(&store).await.snapshot(), *snap);

    // Without the checkpoint the full log rebuilds the same state, and a new checkpoint is
    // written because that took more than CHECKPOINT_INTERVAL entries.
    store.delete(&checkpoint_path()).await.unwrap();
    assert_eq!(*open(&store).await.snapshot(), *snap);
    let checkpoint = String::from_utf8(read(&store, &checkpoint_path()).await).unwrap();
    assert!(checkpoint.contains("\"sequence\":251,"));

    // With the checkpoint covering everything, old entries are not needed.
    for seq in 1..=251 {
        store.delete(&entry_path(seq)).await.unwrap();
    }
    assert_eq!(*open(&store).await.snapshot(), *snap);
    assert_eq!(CHECKPOINT_INTERVAL, 100);
}

#[tokio::test]
async fn log_entry_format() {
    let store = mem();
    let catalog = open(&store).await;
    create_cpu(&catalog, "foo").await;
    let text = String::from_utf8(read(&store, &entry_path(2)).await).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let body = &value["body"];
    assert_eq!(body["version"], 1);
    assert_eq!(body["sequence"], 2);
    assert_eq!(body["catalog_uuid"], catalog.uuid().to_string());
    let ops: Vec<&str> = body["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["op"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        vec![
            "create_database",
            "create_table",
            "create_column",
            "create_column",
            "create_column"
        ]
    );
    assert_eq!(body["ops"][4]["kind"], "float");
    // The checksum covers the body's bytes exactly as written.
    let start = text.find("\"body\":").unwrap() + "\"body\":".len();
    let raw_body = &text[start..text.trim_end().len() - 1];
    assert_eq!(
        value["crc32"].as_u64().unwrap(),
        u64::from(crc32fast::hash(raw_body.as_bytes()))
    );
}

#[tokio::test]
async fn corrupted_log_entry_is_detected() {
    let store = mem();
    let catalog = open(&store).await;
    create_cpu(&catalog, "foo").await;
    create_cpu(&catalog, "bar").await;

    let original = read(&store, &entry_path(2)).await;
    let text = String::from_utf8(original.clone()).unwrap();
    write(
        &store,
        &entry_path(2),
        text.replace("\"usage\"", "\"usagf\"").into_bytes(),
    )
    .await;
    let err = load_err(&store).await;
    assert!(matches!(err, CatalogError::Corrupt { .. }));
    assert_eq!(err.status_class(), StatusClass::Internal);
    let message = err.to_string();
    assert!(
        message.starts_with(
            "catalog is corrupt: node0/catalog/log/00000000000000000002.json: checksum mismatch"
        ),
        "{message}"
    );

    // Truncated (e.g. a torn write on a store without atomic puts).
    write(
        &store,
        &entry_path(2),
        original[..original.len() / 2].to_vec(),
    )
    .await;
    let message = load_err(&store).await.to_string();
    assert!(
        message.starts_with(
            "catalog is corrupt: node0/catalog/log/00000000000000000002.json: not a checksummed \
             catalog object"
        ),
        "{message}"
    );

    // Restored, it loads again.
    write(&store, &entry_path(2), original).await;
    open(&store).await;
}

#[tokio::test]
async fn missing_log_entry_is_detected() {
    let store = mem();
    let catalog = open(&store).await;
    create_cpu(&catalog, "foo").await;
    create_cpu(&catalog, "bar").await;
    store.delete(&entry_path(2)).await.unwrap();
    let message = load_err(&store).await.to_string();
    assert_eq!(
        message,
        "catalog is corrupt: node0/catalog/log/00000000000000000002.json: missing catalog log \
         entry 2 (the next one present is 3)"
    );
}

#[tokio::test]
async fn misplaced_or_foreign_entries_are_detected() {
    let store = mem();
    let catalog = open(&store).await;
    create_cpu(&catalog, "foo").await;

    // An entry stored under the wrong sequence.
    let entry_2 = read(&store, &entry_path(2)).await;
    write(&store, &entry_path(3), entry_2).await;
    let message = load_err(&store).await.to_string();
    assert!(
        message.contains("00000000000000000003.json: entry says it is sequence 2"),
        "{message}"
    );
    store.delete(&entry_path(3)).await.unwrap();

    // An entry of another catalog.
    let other_store = mem();
    let other = open(&other_store).await;
    create_cpu(&other, "x").await;
    create_cpu(&other, "y").await;
    write(
        &store,
        &entry_path(3),
        read(&other_store, &entry_path(3)).await,
    )
    .await;
    let message = load_err(&store).await.to_string();
    assert!(
        message.contains(&format!("entry belongs to catalog {}", other.uuid())),
        "{message}"
    );
}

#[tokio::test]
async fn corrupted_checkpoint_is_detected() {
    let store = mem();
    let catalog = open(&store).await;
    many_commits(&catalog, 99).await;
    let text = String::from_utf8(read(&store, &checkpoint_path()).await).unwrap();
    write(
        &store,
        &checkpoint_path(),
        text.replace("\"c5\"", "\"c6\"").into_bytes(),
    )
    .await;
    let message = load_err(&store).await.to_string();
    assert!(
        message.starts_with("catalog is corrupt: node0/catalog/checkpoint.json: checksum mismatch"),
        "{message}"
    );
}

#[tokio::test]
async fn stray_objects_in_the_log_directory_are_ignored() {
    let store = mem();
    let catalog = open(&store).await;
    create_cpu(&catalog, "foo").await;
    let snap = catalog.snapshot();
    write(
        &store,
        &Path::from("node0/catalog/log/00000000000000000003.json#1"),
        b"x".to_vec(),
    )
    .await;
    write(
        &store,
        &Path::from("node0/catalog/log/README"),
        b"x".to_vec(),
    )
    .await;
    assert_eq!(*open(&store).await.snapshot(), *snap);
}

#[tokio::test]
async fn catalogs_under_different_prefixes_are_independent() {
    let store = mem();
    let a = open(&store).await;
    let b = Catalog::load_or_create(Arc::clone(&store), Path::from("node1"), Limits::default())
        .await
        .unwrap();
    assert_ne!(a.uuid(), b.uuid());
    create_cpu(&a, "foo").await;
    let b = Catalog::load_or_create(Arc::clone(&store), Path::from("node1"), Limits::default())
        .await
        .unwrap();
    assert!(b.snapshot().database("foo").is_none());
}

// ---------------------------------------------------------------------------------------------
// failing object store
// ---------------------------------------------------------------------------------------------

mod flaky {
    use std::fmt;
    use std::ops::Range;

    use async_trait::async_trait;
    use bytes::Bytes;
    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
        PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
    };
    use parking_lot::Mutex;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Fail {
        Never,
        /// Puts fail without writing.
        Before,
        /// Puts write, then report failure (a timeout after the request landed).
        After,
        /// Only checkpoint puts fail.
        Checkpoint,
    }

    /// An in-memory store whose puts can be made to fail.
    #[derive(Debug)]
    pub struct FlakyStore {
        inner: InMemory,
        pub fail: Mutex<Fail>,
    }

    impl FlakyStore {
        pub fn new() -> Self {
            FlakyStore {
                inner: InMemory::new(),
                fail: Mutex::new(Fail::Never),
            }
        }
    }

    impl fmt::Display for FlakyStore {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("FlakyStore")
        }
    }

    fn injected() -> object_store::Error {
        object_store::Error::Generic {
            store: "FlakyStore",
            source: "injected failure".into(),
        }
    }

    #[async_trait]
    impl ObjectStore for FlakyStore {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> Result<PutResult> {
            let fail = *self.fail.lock();
            match fail {
                Fail::Never => self.inner.put_opts(location, payload, opts).await,
                Fail::Before => Err(injected()),
                Fail::After => {
                    self.inner.put_opts(location, payload, opts).await?;
                    Err(injected())
                }
                Fail::Checkpoint if location.as_ref().ends_with("checkpoint.json") => {
                    Err(injected())
                }
                Fail::Checkpoint => self.inner.put_opts(location, payload, opts).await,
            }
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }

        async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
            self.inner.get_opts(location, options).await
        }

        async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
            self.inner.get_ranges(location, ranges).await
        }

        fn delete_stream(
            &self,
            locations: BoxStream<'static, Result<Path>>,
        ) -> BoxStream<'static, Result<Path>> {
            self.inner.delete_stream(locations)
        }

        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            self.inner.list(prefix)
        }

        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }
}

#[tokio::test]
async fn failed_commit_publishes_nothing() {
    let flaky = Arc::new(flaky::FlakyStore::new());
    let store: Arc<dyn ObjectStore> = Arc::clone(&flaky) as _;
    let catalog = open(&store).await;
    let before = catalog.snapshot();

    *flaky.fail.lock() = flaky::Fail::Before;
    let mut txn = catalog.begin().await;
    txn.database_or_create("foo").unwrap();
    let err = txn.commit().await.unwrap_err();
    assert!(matches!(err, CatalogError::Storage { .. }), "{err}");
    assert_eq!(err.status_class(), StatusClass::Internal);
    assert!(err
        .to_string()
        .starts_with("catalog storage error: writing node0/catalog/log/00000000000000000002.json"));
    assert_eq!(*catalog.snapshot(), *before);

    // The store recovers; the next transaction starts from the last good state.
    *flaky.fail.lock() = flaky::Fail::Never;
    let mut txn = catalog.begin().await;
    assert!(txn.state().database("foo").is_none());
    txn.database_or_create("bar").unwrap();
    assert_eq!(txn.commit().await.unwrap().sequence(), 2);
}

#[tokio::test]
async fn commit_that_landed_despite_an_error_is_picked_up() {
    let flaky = Arc::new(flaky::FlakyStore::new());
    let store: Arc<dyn ObjectStore> = Arc::clone(&flaky) as _;
    let catalog = open(&store).await;

    *flaky.fail.lock() = flaky::Fail::After;
    let mut txn = catalog.begin().await;
    txn.database_or_create("foo").unwrap();
    assert!(txn.commit().await.is_err());
    assert!(catalog.snapshot().database("foo").is_none());

    // The entry is durable, so the next transaction reloads it rather than reusing its
    // sequence (which would fail forever) or its ids.
    *flaky.fail.lock() = flaky::Fail::Never;
    let mut txn = catalog.begin().await;
    let foo_db = txn
        .state()
        .database("foo")
        .expect("landed entry reloaded")
        .id;
    let bar_db = txn.database_or_create("bar").unwrap();
    assert_ne!(foo_db, bar_db);
    assert_eq!(txn.commit().await.unwrap().sequence(), 3);
    assert_eq!(*open(&store).await.snapshot(), *catalog.snapshot());
}

#[tokio::test]
async fn failed_checkpoint_does_not_fail_the_commit() {
    let flaky = Arc::new(flaky::FlakyStore::new());
    let store: Arc<dyn ObjectStore> = Arc::clone(&flaky) as _;
    let catalog = open(&store).await;
    many_commits(&catalog, 98).await;
    assert_eq!(catalog.snapshot().sequence(), 99);

    *flaky.fail.lock() = flaky::Fail::Checkpoint;
    create_cpu(&catalog, "bar").await;
    assert_eq!(catalog.snapshot().sequence(), 100);
    assert!(!exists(&store, &checkpoint_path()).await);

    // Loading replays the whole log instead, and writes the checkpoint once it can.
    *flaky.fail.lock() = flaky::Fail::Never;
    assert_eq!(*open(&store).await.snapshot(), *catalog.snapshot());
    assert!(exists(&store, &checkpoint_path()).await);
}
