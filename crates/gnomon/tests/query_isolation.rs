//! Queries on different databases at the same time each see only their own database.

mod common;

use common::Server;

#[test]
fn concurrent_queries_on_different_databases_see_only_their_own_tables() {
    let srv = Server::start(&[]);
    let databases: Vec<(String, Vec<String>)> = (0..4)
        .map(|d| {
            let db = common::unique_name(&format!("iso{d}"));
            let tables: Vec<String> = (0..3).map(|t| format!("d{d}_t{t}")).collect();
            let body: String = tables.iter().map(|t| format!("{t} v=1 1\n")).collect();
            srv.write_ok(&db, body, "precision=s");
            (db, tables)
        })
        .collect();
    std::thread::scope(|scope| {
        for (db, tables) in &databases {
            let srv = &srv;
            scope.spawn(move || {
                for _ in 0..50 {
                    assert_eq!(&srv.tables(db), tables, "tables of {db}");
                    let rows = srv.sql(db, &format!("SELECT count(*) AS c FROM {}", tables[0]));
                    assert_eq!(rows[0]["c"], 1, "{db}");
                }
            });
        }
    });
}
