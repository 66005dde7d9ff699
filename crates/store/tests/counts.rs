//! Counting many tables at once: one `count(*)` per table in a few statements, exact, each
//! answer given to its own table whatever the order or the names.

use pgforce_store::Ident;
use pgforce_store::table::rows;
use pgforce_store::testing::TestDatabase;

#[tokio::test]
async fn many_tables_are_counted_exactly_in_a_few_statements() {
    let db = TestDatabase::create().await;
    let pg = db.client().await;
    pg.batch_execute("create schema counted").await.unwrap();
    // 450 tables (three statements' worth), table i holding i % 7 rows.
    let mut tables = Vec::new();
    for i in 0..450 {
        let name = format!("t{i}");
        pg.batch_execute(&format!(
            "create table counted.{name} (id int); insert into counted.{name} select generate_series(1, {})",
            i % 7
        ))
        .await
        .unwrap();
        tables.push((Ident::new("counted").unwrap(), Ident::new(&name).unwrap()));
    }
    tables.reverse();
    let counted = rows::counts(&pg, &tables).await.unwrap();
    assert_eq!(counted.len(), 450);
    for i in 0..450_u64 {
        assert_eq!(
            counted.get(&("counted".to_owned(), format!("t{i}"))),
            Some(&(i % 7)),
            "t{i}"
        );
    }
    let missing = [(
        Ident::new("counted").unwrap(),
        Ident::new("nowhere").unwrap(),
    )];
    let error = rows::counts(&pg, &missing).await.unwrap_err();
    assert!(
        error.to_string().contains("counting the rows of 1 tables"),
        "{error}"
    );
}
