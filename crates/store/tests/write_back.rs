//! Recording a create while the reader is storing the same new record: the reader read it
//! back before the writer learnt its Id and inserted a row of its own, not yet committed
//! when the writer writes the Id back. The writer must wait for it, fold it into the app's
//! row and succeed, not fail on the sfid's unique index.

use std::time::Duration;

use pgforce_store::trigger_log::outcomes::{self, Recording};
use pgforce_store::{Access, Ident, LogAction};

use crate::support::database_with_account;

#[tokio::test]
async fn a_create_recorded_while_the_reader_stores_its_read_back_row_folds_it() {
    let (db, mut writer) = database_with_account(Access::ReadWrite).await;
    writer
        .batch_execute("insert into salesforce.account (name) values ('Made')")
        .await
        .unwrap();
    let app_row: i32 = writer
        .query_one("select id from salesforce.account", &[])
        .await
        .unwrap()
        .get(0);

    // The reader's page: the new record inserted as a row of its own, not committed yet.
    let mut reader = db.client().await;
    let page = reader.transaction().await.unwrap();
    page.batch_execute(
        "insert into salesforce.account (sfid, name, description) values ('001000000000001AAA', 'Made', 'set by Salesforce')",
    )
    .await
    .unwrap();

    let (schema, table) = (
        Ident::new("salesforce").unwrap(),
        Ident::new("account").unwrap(),
    );
    let mut recording = Recording::default();
    recording.written(
        i64::from(app_row),
        LogAction::Insert,
        Some("001000000000001AAA"),
    );
    let recorded = tokio::spawn(async move {
        outcomes::record(&mut writer, &schema, &table, &recording, None).await
    });
    // The writer is now waiting on the reader's row; the reader commits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    page.commit().await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), recorded)
        .await
        .expect("the recording finishes")
        .unwrap();
    assert!(outcome.is_ok(), "{outcome:?}");

    let rows = db
        .client()
        .await
        .query(
            "select id, sfid::text, description from salesforce.account",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one row for the record");
    assert_eq!(rows[0].get::<_, i32>(0), app_row, "the app's row kept it");
    assert_eq!(
        rows[0].get::<_, Option<String>>(1).as_deref(),
        Some("001000000000001AAA")
    );
    assert_eq!(
        rows[0].get::<_, Option<String>>(2).as_deref(),
        Some("set by Salesforce"),
        "what the reader read reached the app's row"
    );
}
