//! The pool of catalog sessions: bounded, nothing a borrower sets reaches the next one,
//! a session Postgres ended is replaced, and waiting past the timeout is an error that
//! says the pool is exhausted.

use std::time::Duration;

use pgforce_store::testing::TestDatabase;
use pgforce_store::{Pool, PoolOptions};

fn pool(db: &TestDatabase, size: usize, wait: Duration) -> Pool {
    Pool::new(&db.url, PoolOptions { size, wait }).unwrap()
}

async fn setting(session: &pgforce_store::Session, name: &str) -> String {
    session
        .query_one("select current_setting($1)", &[&name])
        .await
        .unwrap()
        .get(0)
}

/// The Postgres backend serving `session`.
async fn backend_pid(session: &pgforce_store::Session) -> i32 {
    session
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_borrowers_settings_and_listens_do_not_reach_the_next_borrower() {
    let db = TestDatabase::create().await;
    let pool = pool(&db, 1, Duration::from_secs(10));
    let first = pool.get().await.unwrap();
    let pid = backend_pid(&first).await;
    let default_timeout = setting(&first, "idle_in_transaction_session_timeout").await;
    first
        .batch_execute(
            "set search_path = nowhere; set idle_in_transaction_session_timeout = 1234; set xmlbinary = 'hex'; listen somewhere",
        )
        .await
        .unwrap();
    drop(first);

    let second = pool.get().await.unwrap();
    let again = backend_pid(&second).await;
    assert_eq!(again, pid, "the same session, lent again");
    assert_eq!(setting(&second, "search_path").await, "\"$user\", public");
    assert_eq!(
        setting(&second, "idle_in_transaction_session_timeout").await,
        default_timeout
    );
    assert_eq!(setting(&second, "xmlbinary").await, "base64");
    let listening: i64 = second
        .query_one("select count(*) from pg_listening_channels()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(listening, 0);
}

#[tokio::test]
async fn a_transaction_left_open_is_rolled_back_before_the_session_is_lent_again() {
    let db = TestDatabase::create().await;
    let pool = pool(&db, 1, Duration::from_secs(10));
    let mut first = pool.get().await.unwrap();
    let tx = first.transaction().await.unwrap();
    tx.batch_execute("create table left_open (id int)")
        .await
        .unwrap();
    drop(tx);
    drop(first);
    let second = pool.get().await.unwrap();
    let exists: bool = second
        .query_one("select to_regclass('left_open') is not null", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "the open transaction was rolled back");
    // A savepoint works only inside a transaction block.
    let outside = second.batch_execute("savepoint probe").await.unwrap_err();
    assert_eq!(
        outside.code().map(|code| code.code()),
        Some("25P01"),
        "the session is not inside a transaction: {outside}"
    );
}

#[tokio::test]
async fn a_session_postgres_terminated_is_replaced() {
    let db = TestDatabase::create().await;
    let pool = pool(&db, 1, Duration::from_secs(10));
    let first = pool.get().await.unwrap();
    let pid = backend_pid(&first).await;
    drop(first);
    let admin = db.client().await;
    admin
        .execute("select pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let second = pool.get().await.unwrap();
    let replaced = backend_pid(&second).await;
    assert_ne!(replaced, pid);
    assert_eq!(pool.open_sessions(), 1);
}

#[tokio::test]
async fn waiting_past_the_timeout_says_the_pool_is_exhausted() {
    let db = TestDatabase::create().await;
    let pool = pool(&db, 1, Duration::from_millis(300));
    let held = pool.get().await.unwrap();
    let error = pool.get().await.err().unwrap();
    assert!(error.is_pool_exhausted(), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("database pool is exhausted") && text.contains("pool_size"),
        "{text}"
    );
    drop(held);
    assert!(pool.get().await.is_ok());
}

#[test]
fn a_pool_of_no_sessions_is_refused() {
    let error = Pool::new(
        "postgres://localhost/x",
        PoolOptions {
            size: 0,
            wait: Duration::from_secs(1),
        },
    )
    .err()
    .unwrap();
    assert!(error.to_string().contains("at least 1"), "{error}");
}
