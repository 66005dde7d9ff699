//! Refusals in the audit trail: repeats of one token's refusal are counted in one entry for
//! a minute, then a new entry starts; other tokens, actions and targets have their own.

use pgforce_store::catalog::audit;
use pgforce_store::testing::TestDatabase;

/// `(actor, target, attempts)` of every `access.denied` entry, oldest first.
async fn refusals(client: &tokio_postgres::Client) -> Vec<(String, String, i64)> {
    client
        .query(
            "select actor, target, (after->>'attempts')::bigint from pgforce.audit_log
             where action = 'access.denied' order by id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn repeated_refusals_count_in_one_entry_for_a_minute_then_start_another() {
    let db = TestDatabase::create().await;
    let client = db.client().await;
    let detail = r#"{"role": "view", "needs": "manage"}"#;
    for _ in 0..3 {
        audit::record_refusal(&client, "ops", "access.denied", "GET /api/v3/audit", detail)
            .await
            .unwrap();
    }
    audit::record_refusal(
        &client,
        "other",
        "access.denied",
        "GET /api/v3/audit",
        detail,
    )
    .await
    .unwrap();
    audit::record_refusal(
        &client,
        "ops",
        "access.denied",
        "POST /api/v3/connections",
        detail,
    )
    .await
    .unwrap();
    assert_eq!(
        refusals(&client).await,
        [
            ("ops".to_owned(), "GET /api/v3/audit".to_owned(), 3),
            ("other".to_owned(), "GET /api/v3/audit".to_owned(), 1),
            ("ops".to_owned(), "POST /api/v3/connections".to_owned(), 1),
        ]
    );
    let kept: String = client
        .query_one(
            "select after->>'needs' from pgforce.audit_log where actor = 'ops' order by id limit 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, "manage", "the detail stays beside the count");

    // A minute later, the same refusal starts a new entry.
    client
        .execute(
            "update pgforce.audit_log set at = at - interval '61 seconds'",
            &[],
        )
        .await
        .unwrap();
    audit::record_refusal(&client, "ops", "access.denied", "GET /api/v3/audit", detail)
        .await
        .unwrap();
    let now = refusals(&client).await;
    assert_eq!(now.len(), 4, "{now:?}");
    assert_eq!(
        now[3],
        ("ops".to_owned(), "GET /api/v3/audit".to_owned(), 1)
    );
}
