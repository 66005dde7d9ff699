//! Capture, status and loop prevention behave as Heroku Connect's (reference §4–§5).

use futures_util::StreamExt as _;
use pgforce_store::Access;
use pgforce_store::Ident;
use pgforce_store::ddl::trigger_log_channel;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::support::database_with_account;

/// `(action, state, record_id, sfid, old, values)` of every log row, in id order.
async fn log(
    client: &Client,
) -> Vec<(
    String,
    String,
    i32,
    Option<String>,
    Option<String>,
    Option<String>,
)> {
    client
        .query("select action::text, state::text, record_id, sfid::text, old, \"values\" from salesforce._trigger_log order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

async fn lastop(client: &Client, id: i32) -> Option<String> {
    client
        .query_one(
            "select _hc_lastop::text from salesforce.account where id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn app_writes_are_captured_with_heroku_connect_payloads() {
    let (_db, client) = database_with_account(Access::ReadWrite).await;
    let id: i32 = client
        .query_one(
            "insert into salesforce.account (name, annualrevenue) values ('Acme', 10) returning id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(lastop(&client, id).await.as_deref(), Some("PENDING"));
    client
        .execute(
            "update salesforce.account set name = 'Acme 2' where id = $1",
            &[&id],
        )
        .await
        .unwrap();
    client
        .execute(
            "update salesforce.account set name = 'Acme 2' where id = $1",
            &[&id],
        )
        .await
        .unwrap();
    client
        .execute(
            "update salesforce.account set sfid = '0018A0000000001AAA' where id = $1",
            &[&id],
        )
        .await
        .unwrap();
    client
        .execute("delete from salesforce.account where id = $1", &[&id])
        .await
        .unwrap();
    let rows = log(&client).await;
    assert_eq!(rows.len(), 5);
    let (action, state, record, _, old, values) = &rows[0];
    assert_eq!(
        (action.as_str(), state.as_str(), *record, old),
        ("INSERT", "NEW", id, &None)
    );
    let values = values.as_deref().unwrap();
    assert!(
        values.contains("\"name\"=>\"Acme\"")
            && values.contains("\"id\"=>")
            && values.contains("\"sfid\"=>NULL"),
        "{values}"
    );
    assert!(
        !values.contains("_hc_lastop") && !values.contains("_hc_err"),
        "HC columns are never in payloads"
    );
    assert_eq!(
        rows[1].5.as_deref(),
        Some("\"name\"=>\"Acme 2\""),
        "an update logs only what changed"
    );
    assert!(
        rows[1].4.as_deref().unwrap().contains("\"name\"=>\"Acme\""),
        "and the whole old row"
    );
    assert_eq!(
        (rows[2].1.as_str(), rows[2].5.as_deref()),
        ("IGNORE", Some("")),
        "an update that changes nothing is ignored"
    );
    assert_eq!(rows[4].0, "DELETE");
    assert_eq!(
        rows[4].3.as_deref(),
        Some("0018A0000000001AAA"),
        "deletes carry the sfid"
    );
    assert_eq!(rows[4].1, "NEW");
}

#[tokio::test]
async fn deleting_a_row_that_never_reached_salesforce_is_ignored() {
    let (_db, client) = database_with_account(Access::ReadWrite).await;
    client
        .execute(
            "insert into salesforce.account (name) values ('Draft')",
            &[],
        )
        .await
        .unwrap();
    client
        .execute("delete from salesforce.account", &[])
        .await
        .unwrap();
    let rows = log(&client).await;
    assert_eq!(
        (rows[1].0.as_str(), rows[1].1.as_str()),
        ("DELETE", "IGNORE")
    );
}

#[tokio::test]
async fn pgforce_writes_with_xmlbinary_hex_are_not_captured_and_mark_rows_synced() {
    let (_db, mut client) = database_with_account(Access::ReadWrite).await;
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("set local xmlbinary = 'hex'")
        .await
        .unwrap();
    let id: i32 = tx.query_one("insert into salesforce.account (sfid, name) values ('0018A0000000001AAA', 'From SF') returning id", &[]).await.unwrap().get(0);
    tx.execute(
        "update salesforce.account set _hc_lastop = 'FAILED', _hc_err = '{}' where id = $1",
        &[&id],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(
        log(&client).await.is_empty(),
        "nothing pgforce wrote was captured"
    );
    assert_eq!(
        lastop(&client, id).await.as_deref(),
        Some("FAILED"),
        "an outcome pgforce sets is kept"
    );
    client
        .batch_execute(
            "set xmlbinary = 'hex'; update salesforce.account set name = 'Again'; reset xmlbinary;",
        )
        .await
        .unwrap();
    assert_eq!(
        lastop(&client, id).await.as_deref(),
        Some("SYNCED"),
        "other pgforce writes mark the row synced"
    );
    client
        .execute("update salesforce.account set name = 'By the app'", &[])
        .await
        .unwrap();
    assert_eq!(lastop(&client, id).await.as_deref(), Some("PENDING"));
    assert_eq!(log(&client).await.len(), 1, "the app's write is captured");
}

#[tokio::test]
async fn read_only_tables_log_readonly() {
    let (_db, client) = database_with_account(Access::ReadOnly).await;
    client
        .execute(
            "insert into salesforce.account (name) values ('Local')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(log(&client).await[0].1, "READONLY");
}

#[tokio::test]
async fn every_capture_notifies_the_writer_channel() {
    let (db, client) = database_with_account(Access::ReadWrite).await;
    let (listener, mut connection) = tokio_postgres::connect(&db.url, NoTls).await.unwrap();
    let (sender, mut notifications) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = sender.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    let channel = trigger_log_channel(&Ident::new("salesforce").unwrap());
    listener
        .batch_execute(&format!("listen \"{channel}\""))
        .await
        .unwrap();
    client
        .execute("insert into salesforce.account (name) values ('Ping')", &[])
        .await
        .unwrap();
    let received = tokio::time::timeout(std::time::Duration::from_secs(10), notifications.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        received,
        ("salesforce.hc_trigger_log".to_owned(), "ping".to_owned())
    );
}

#[tokio::test]
async fn capture_helpers_requeue_rows_as_heroku_connect_users_do() {
    let (_db, client) = database_with_account(Access::ReadWrite).await;
    client.batch_execute("set xmlbinary = 'hex'; insert into salesforce.account (sfid, name, annualrevenue) values ('0018A0000000001AAA', 'Quiet', 5); reset xmlbinary;").await.unwrap();
    assert!(log(&client).await.is_empty());
    let insert_id: Option<i32> = client
        .query_one("select salesforce.hc_capture_insert_from_row(hstore(a.*), 'account', array['annualrevenue', 'id']) from salesforce.account a", &[])
        .await
        .unwrap()
        .get(0);
    let update_id: Option<i32> = client
        .query_one("select salesforce.hc_capture_update_from_row(hstore(a.*), 'account', array['name']) from salesforce.account a", &[])
        .await
        .unwrap()
        .get(0);
    assert!(insert_id.is_some() && update_id.is_some());
    let rows = log(&client).await;
    let inserted = rows[0].5.as_deref().unwrap();
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), ("INSERT", "NEW"));
    assert!(
        inserted.contains("\"id\"=>") && !inserted.contains("annualrevenue"),
        "id is never excluded: {inserted}"
    );
    assert_eq!(
        (
            rows[1].0.as_str(),
            rows[1].3.as_deref(),
            rows[1].5.as_deref()
        ),
        (
            "UPDATE",
            Some("0018A0000000001AAA"),
            Some("\"name\"=>\"Quiet\"")
        )
    );
    let none: Option<i32> = client
        .query_one(
            "select salesforce.hc_capture_insert_from_row('name=>x'::hstore, 'account')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(none, None, "a row without an id is not captured");
}

#[tokio::test]
async fn captured_payloads_parse_back_to_the_values_written() {
    let (_db, client) = database_with_account(Access::ReadWrite).await;
    let tricky = "Say \"hi\" \\ to\nO'Brien, => é";
    client
        .execute("insert into salesforce.account (name, description, annualrevenue) values ($1, null, 12.5)", &[&tricky])
        .await
        .unwrap();
    let values: String = client
        .query_one("select \"values\" from salesforce._trigger_log", &[])
        .await
        .unwrap()
        .get(0);
    let pairs = pgforce_store::hstore::parse(&values).unwrap();
    let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    assert_eq!(get("name"), Some(Some(tricky.to_owned())));
    assert_eq!(get("description"), Some(None), "NULL reads as null");
    assert_eq!(get("annualrevenue"), Some(Some("12.5".to_owned())));
    assert_eq!(get("sfid"), Some(None));
    assert!(get("id").is_some_and(|v| v.is_some()));
    assert_eq!(get("_hc_lastop"), None);
}

#[tokio::test]
async fn creates_in_flight_hold_only_pending_rows_of_other_holders_until_they_settle() {
    use std::time::Duration;

    use pgforce_store::trigger_log::in_flight;

    let (_db, client) = database_with_account(Access::ReadWrite).await;
    let schema = Ident::new("salesforce").unwrap();
    client
        .batch_execute(
            "insert into salesforce.account (name) values ('One'), ('Two'), ('Three');
             update salesforce._trigger_log set state = 'PENDING' where id <= 2;",
        )
        .await
        .unwrap();
    let ids: Vec<i32> = client
        .query("select id from salesforce._trigger_log order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    in_flight::save(&client, &schema, "dead", &ids, Duration::from_secs(60))
        .await
        .unwrap();
    in_flight::save(&client, &schema, "dead", &ids[..1], Duration::ZERO)
        .await
        .unwrap();

    // The NEW row is not in doubt; the holder's own entries are not consulted.
    let held = in_flight::unsettled(&client, &schema, "next")
        .await
        .unwrap();
    assert_eq!(held.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids[..2]);
    assert!(
        held.iter()
            .all(|(_, left)| *left > Duration::from_secs(50) && *left <= Duration::from_secs(60)),
        "{held:?}"
    );
    assert!(
        in_flight::unsettled(&client, &schema, "dead")
            .await
            .unwrap()
            .is_empty()
    );
    // The settled entry stays while its row is PENDING (a resume looks for that create in
    // Salesforce), and is forgotten once the row is settled; the other stays until its
    // moment.
    let entries = || async {
        client
            .query_one("select count(*) from pgforce.creates_in_flight", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(entries().await, 2);
    client
        .execute(
            "update salesforce._trigger_log set state = 'SUCCESS' where id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap();
    assert_eq!(
        in_flight::forget_settled(&client, &schema).await.unwrap(),
        1
    );
    assert_eq!(entries().await, 1);
}
