//! Processing-engine triggers in the catalog: specification parsing (every form and error
//! text, the JSON of the system table), the transaction rules, and persistence across a
//! reload from the log and from a checkpoint.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gnomon_catalog::{
    Catalog, CatalogError, ErrorBehavior, Limits, PluginType, StatusClass, TriggerDefinition,
    TriggerSettings, TriggerSpecification, CHECKPOINT_INTERVAL,
};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;

const FORMS: &str = "expect one of the following forms: 'table:<TABLE_NAME>', 'all_tables', \
    'cron:<CRON_EXPRESSION>', 'every:<DURATION>', or 'request:<PATH>'";

fn parse_err(spec: &str) -> String {
    TriggerSpecification::parse(spec).unwrap_err().to_string()
}

#[test]
fn parses_every_form() {
    use TriggerSpecification as S;
    assert_eq!(
        S::parse(" table:cpu ").unwrap(),
        S::SingleTableWalWrite {
            table_name: "cpu".into()
        }
    );
    assert_eq!(S::parse("all_tables").unwrap(), S::AllTablesWalWrite);
    assert_eq!(
        S::parse("every:10s").unwrap(),
        S::Every {
            duration: Duration::from_secs(10)
        }
    );
    assert_eq!(
        S::parse("every:1h 30m").unwrap(),
        S::Every {
            duration: Duration::from_secs(5400)
        }
    );
    assert_eq!(
        S::parse("cron:*/5 * * * * *").unwrap(),
        S::Schedule {
            schedule: "*/5 * * * * *".into()
        }
    );
    // 7 fields (with year) and the shorthands.
    assert!(S::parse("cron:0 0 12 * * MON-FRI 2030").is_ok());
    assert!(S::parse("cron:@hourly").is_ok());
    assert_eq!(
        S::parse("request:hello/world").unwrap(),
        S::RequestPath {
            path: "hello/world".into()
        }
    );
}

#[test]
fn plugin_types() {
    let ty = |s: &str| TriggerSpecification::parse(s).unwrap().plugin_type();
    assert_eq!(ty("table:cpu"), PluginType::WalRows);
    assert_eq!(ty("all_tables"), PluginType::WalRows);
    assert_eq!(ty("every:1m"), PluginType::Schedule);
    assert_eq!(ty("cron:0 * * * * *"), PluginType::Schedule);
    assert_eq!(ty("request:x"), PluginType::Request);
    assert_eq!(PluginType::WalRows.to_string(), "WalRows");
    assert_eq!(PluginType::Schedule.to_string(), "Schedule");
    assert_eq!(PluginType::Request.to_string(), "Request");
    assert_eq!("wal".parse::<PluginType>(), Ok(PluginType::WalRows));
    assert_eq!("wal_flush".parse::<PluginType>(), Ok(PluginType::WalRows));
    assert_eq!("schedule".parse::<PluginType>(), Ok(PluginType::Schedule));
    assert_eq!("request".parse::<PluginType>(), Ok(PluginType::Request));
    assert!("cron".parse::<PluginType>().is_err());
}

#[test]
fn error_behavior_names() {
    for (text, behavior) in [
        ("log", ErrorBehavior::Log),
        ("retry", ErrorBehavior::Retry),
        ("disable", ErrorBehavior::Disable),
    ] {
        assert_eq!(text.parse::<ErrorBehavior>(), Ok(behavior));
        assert_eq!(behavior.to_string(), text);
        assert_eq!(
            serde_json::to_string(&behavior).unwrap(),
            format!("\"{text}\"")
        );
    }
    assert!("Log".parse::<ErrorBehavior>().is_err());
    assert_eq!(ErrorBehavior::default(), ErrorBehavior::Log);
}

#[test]
fn error_texts() {
    assert_eq!(
        parse_err("table:"),
        "failed to parse trigger from table:: table name is empty"
    );
    assert_eq!(
        parse_err("every:soon"),
        "failed to parse trigger from every:soon: couldn't parse to duration"
    );
    assert_eq!(
        parse_err("every:2y"),
        "failed to parse trigger from every:2y: don't support every schedules of over 1 year"
    );
    assert!(TriggerSpecification::parse("every:1y").is_ok());
    assert_eq!(
        parse_err("  nope "),
        format!("failed to parse trigger from nope: {FORMS}")
    );
    // Prefixes are case-sensitive.
    assert_eq!(
        parse_err("Table:cpu"),
        format!("failed to parse trigger from Table:cpu: {FORMS}")
    );
    let cron = parse_err("cron:* * * * * nonsense");
    assert!(
        cron.starts_with("failed to parse trigger from cron:* * * * * nonsense: invalid cron"),
        "{cron}"
    );
    assert!(parse_err("request:").starts_with("failed to parse trigger from request:: "));
    assert!(parse_err("every:0s").starts_with("failed to parse trigger from every:0s: "));
}

#[test]
fn five_field_crontab_is_invalid() {
    let err = parse_err("cron:*/5 * * * *");
    assert!(
        err.starts_with("failed to parse trigger from cron:*/5 * * * *: invalid cron"),
        "{err}"
    );
}

#[test]
fn specification_json_forms() {
    let json = |s: &str| TriggerSpecification::parse(s).unwrap().to_json();
    assert_eq!(
        json("table:cpu"),
        r#"{"single_table_wal_write":{"table_name":"cpu"}}"#
    );
    assert_eq!(json("all_tables"), r#""all_tables_wal_write""#);
    assert_eq!(
        json("cron:*/5 * * * * *"),
        r#"{"schedule":{"schedule":"*/5 * * * * *"}}"#
    );
    assert_eq!(
        json("every:60s"),
        r#"{"every":{"duration":{"secs":60,"nanos":0}}}"#
    );
    assert_eq!(
        json("request:hello"),
        r#"{"request_path":{"path":"hello"}}"#
    );
    for spec in [
        "table:cpu",
        "all_tables",
        "every:1m",
        "cron:@daily",
        "request:a",
    ] {
        let parsed = TriggerSpecification::parse(spec).unwrap();
        let back: TriggerSpecification = serde_json::from_str(&parsed.to_json()).unwrap();
        assert_eq!(back, parsed);
    }
}

async fn open(store: &Arc<dyn ObjectStore>) -> Arc<Catalog> {
    Catalog::load_or_create(Arc::clone(store), Path::from("n"), Limits::default())
        .await
        .unwrap()
}

async fn setup() -> (Arc<dyn ObjectStore>, Arc<Catalog>) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let catalog = open(&store).await;
    let mut txn = catalog.begin().await;
    txn.database_or_create("foo").unwrap();
    txn.commit().await.unwrap();
    (store, catalog)
}

fn trigger(name: &str, spec: &str, disabled: bool) -> TriggerDefinition {
    TriggerDefinition {
        name: name.into(),
        plugin_filename: "plugin.py".into(),
        specification: TriggerSpecification::parse(spec).unwrap(),
        settings: TriggerSettings {
            run_async: true,
            error_behavior: ErrorBehavior::Retry,
        },
        arguments: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        disabled,
    }
}

async fn create(catalog: &Catalog, def: TriggerDefinition) -> Result<(), CatalogError> {
    let mut txn = catalog.begin().await;
    txn.create_trigger("foo", def)?;
    txn.commit().await.map(|_| ())
}

fn names(catalog: &Catalog) -> Vec<String> {
    catalog
        .snapshot()
        .database("foo")
        .unwrap()
        .triggers()
        .map(|t| t.name.clone())
        .collect()
}

#[tokio::test]
async fn create_lists_sorted_and_rejects_duplicates() {
    let (_store, catalog) = setup().await;
    create(&catalog, trigger("zeta", "all_tables", false))
        .await
        .unwrap();
    create(&catalog, trigger("alpha", "every:1m", true))
        .await
        .unwrap();
    assert_eq!(names(&catalog), ["alpha", "zeta"]);
    let snap = catalog.snapshot();
    let alpha = snap.database("foo").unwrap().trigger("alpha").unwrap();
    assert_eq!(**alpha, trigger("alpha", "every:1m", true));

    let err = create(&catalog, trigger("zeta", "table:cpu", false))
        .await
        .unwrap_err();
    assert!(matches!(err, CatalogError::AlreadyExists { ref name } if name == "zeta"));
    assert_eq!(err.status_class(), StatusClass::Conflict);
    // The failed create changed nothing.
    let snap = catalog.snapshot();
    let zeta = snap.database("foo").unwrap().trigger("zeta").unwrap();
    assert_eq!(zeta.specification, TriggerSpecification::AllTablesWalWrite);
}

#[tokio::test]
async fn create_errors() {
    let (_store, catalog) = setup().await;
    let mut txn = catalog.begin().await;
    let err = txn
        .create_trigger("nope", trigger("t", "all_tables", false))
        .unwrap_err();
    assert!(matches!(err, CatalogError::DatabaseNotFound { .. }));
    assert_eq!(err.to_string(), "Database not found nope");
    assert_eq!(err.status_class(), StatusClass::NotFound);

    let err = txn
        .create_trigger("_internal", trigger("t", "all_tables", false))
        .unwrap_err();
    assert!(matches!(err, CatalogError::CannotModifyInternal));
    assert_eq!(err.to_string(), "cannot modify internal db");
    assert_eq!(err.status_class(), StatusClass::Internal);

    let err = txn
        .create_trigger("foo", trigger("", "all_tables", false))
        .unwrap_err();
    assert_eq!(err.status_class(), StatusClass::BadRequest);
    assert!(!txn.has_changes());
}

#[tokio::test]
async fn delete_needs_force_while_enabled() {
    let (_store, catalog) = setup().await;
    create(&catalog, trigger("t", "all_tables", false))
        .await
        .unwrap();
    let mut txn = catalog.begin().await;
    let err = txn.delete_trigger("foo", "t", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Cannot delete running plugin t. Disable it first or use --force."
    );
    assert_eq!(err.status_class(), StatusClass::Internal);
    let err = txn.delete_trigger("foo", "other", true).unwrap_err();
    assert!(matches!(err, CatalogError::NotFound { .. }));
    assert_eq!(err.status_class(), StatusClass::NotFound);
    let err = txn.delete_trigger("nope", "t", true).unwrap_err();
    assert!(matches!(err, CatalogError::DatabaseNotFound { .. }));
    txn.delete_trigger("foo", "t", true).unwrap();
    txn.commit().await.unwrap();
    assert!(names(&catalog).is_empty());

    // A disabled trigger goes without force.
    create(&catalog, trigger("d", "all_tables", true))
        .await
        .unwrap();
    let mut txn = catalog.begin().await;
    txn.delete_trigger("foo", "d", false).unwrap();
    txn.commit().await.unwrap();
    assert!(names(&catalog).is_empty());
}

#[tokio::test]
async fn enable_disable_is_idempotent() {
    let (_store, catalog) = setup().await;
    create(&catalog, trigger("t", "all_tables", false))
        .await
        .unwrap();
    let mut txn = catalog.begin().await;
    txn.set_trigger_disabled("foo", "t", false).unwrap();
    assert!(!txn.has_changes(), "already enabled: nothing to record");
    txn.set_trigger_disabled("foo", "t", true).unwrap();
    assert!(txn.has_changes());
    txn.commit().await.unwrap();
    let disabled = |c: &Catalog| {
        c.snapshot()
            .database("foo")
            .unwrap()
            .trigger("t")
            .unwrap()
            .disabled
    };
    assert!(disabled(&catalog));

    let mut txn = catalog.begin().await;
    txn.set_trigger_disabled("foo", "t", true).unwrap();
    assert!(!txn.has_changes());
    let err = txn.set_trigger_disabled("foo", "x", true).unwrap_err();
    assert!(matches!(err, CatalogError::NotFound { .. }));
    let err = txn.set_trigger_disabled("nope", "t", true).unwrap_err();
    assert!(matches!(err, CatalogError::DatabaseNotFound { .. }));
    txn.set_trigger_disabled("foo", "t", false).unwrap();
    txn.commit().await.unwrap();
    assert!(!disabled(&catalog));
}

#[tokio::test]
async fn triggers_of_a_deleted_database_are_gone() {
    let (store, catalog) = setup().await;
    create(&catalog, trigger("t", "all_tables", false))
        .await
        .unwrap();
    let mut txn = catalog.begin().await;
    txn.soft_delete_database("foo", SystemTime::now()).unwrap();
    txn.commit().await.unwrap();

    let snap = catalog.snapshot();
    assert!(snap.database("foo").is_none());
    for db in snap.databases() {
        assert_eq!(db.triggers().count(), 0, "{} still shows triggers", db.name);
        assert!(db.trigger("t").is_none());
    }
    // A database re-created under the same name starts without triggers.
    let mut txn = catalog.begin().await;
    txn.database_or_create("foo").unwrap();
    txn.commit().await.unwrap();
    assert!(names(&catalog).is_empty());
    create(&catalog, trigger("t", "all_tables", false))
        .await
        .unwrap();
    drop(catalog);
    let reopened = open(&store).await;
    assert_eq!(names(&reopened), ["t"]);
}

#[tokio::test]
async fn survive_reload_from_log_and_checkpoint() {
    let (store, catalog) = setup().await;
    create(&catalog, trigger("a", "table:cpu", false))
        .await
        .unwrap();
    create(&catalog, trigger("b", "cron:0 */5 * * * *", false))
        .await
        .unwrap();
    create(&catalog, trigger("c", "request:hello", false))
        .await
        .unwrap();
    let mut txn = catalog.begin().await;
    txn.set_trigger_disabled("foo", "a", true).unwrap();
    txn.commit().await.unwrap();
    let mut txn = catalog.begin().await;
    txn.delete_trigger("foo", "c", true).unwrap();
    txn.commit().await.unwrap();
    let expected = catalog.snapshot();
    drop(catalog);

    // From the log.
    let reopened = open(&store).await;
    assert_eq!(names(&reopened), ["a", "b"]);
    let db = reopened.snapshot().database("foo").unwrap().clone();
    assert!(db.trigger("a").unwrap().disabled);
    assert!(!db.trigger("b").unwrap().disabled);
    assert_eq!(*db, **expected.database("foo").unwrap());

    // Through a checkpoint: commit until one is written, then reopen.
    while reopened.snapshot().sequence() % CHECKPOINT_INTERVAL != 0 {
        let mut txn = reopened.begin().await;
        let flip = !txn
            .state()
            .database("foo")
            .unwrap()
            .trigger("b")
            .unwrap()
            .disabled;
        txn.set_trigger_disabled("foo", "b", flip).unwrap();
        txn.commit().await.unwrap();
    }
    let expected = reopened.snapshot();
    drop(reopened);
    let from_checkpoint = open(&store).await;
    assert_eq!(
        **from_checkpoint.snapshot().database("foo").unwrap(),
        **expected.database("foo").unwrap()
    );
    assert_eq!(names(&from_checkpoint), ["a", "b"]);
}
