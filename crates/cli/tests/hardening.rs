//! The server faces the internet: a running `pgforce run` deletes expired dashboard
//! sessions, consents and diagnoses.

use std::process::Stdio;

use pgforce_store::testing::TestDatabase;

use crate::run::{ACCOUNT_MAPPING, config_file, count, pgforce, seeded_org, stop, wait_for_count};

/// Adds a token named `name` expiring `expires` from now (`null`: never), revoked if
/// asked, with one dashboard session expiring `session_expires` from now.
async fn token_with_session(
    db: &TestDatabase,
    name: &str,
    expires: Option<&str>,
    revoked: bool,
    session_expires: &str,
) {
    db.client()
        .await
        .execute(
            "with t as (
                 insert into pgforce.api_tokens (name, role, token_sha256, expires_at, revoked_at)
                 values ($1, 'view', sha256($1::text::bytea), now() + $2::text::interval,
                         case when $3 then now() end)
                 returning id)
             insert into pgforce.dashboard_sessions (id_sha256, token_id, csrf, expires_at)
             select sha256(('session of ' || $1)::bytea), id, 'csrf', now() + $4::text::interval
             from t",
            &[&name, &expires, &revoked, &session_expires],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn run_deletes_expired_sessions_consents_and_diagnoses_and_keeps_live_ones() {
    let org = seeded_org(2).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNT_MAPPING);
    token_with_session(&db, "live", None, false, "1 hour").await;
    token_with_session(&db, "live-expired-session", None, false, "-1 minute").await;
    token_with_session(&db, "expired-token", Some("-1 minute"), false, "1 hour").await;
    token_with_session(&db, "revoked-token", None, true, "1 hour").await;
    let pg = db.client().await;
    pg.batch_execute(
        "insert into pgforce.authorizations (state, code_verifier, redirect_uri, created_at)
         values ('fresh', 'v', 'http://x/oauth/callback', now() - interval '10 minutes'),
                ('stale', 'v', 'http://x/oauth/callback', now() - interval '61 minutes');
         insert into pgforce.connections (name, schema_name) values ('elsewhere', 'elsewhere');
         insert into pgforce.validations (connection_id, result, created_at)
         select id, '{\"age\": \"fresh\"}'::jsonb, now() - interval '1 hour' from pgforce.connections
         union all
         select id, '{\"age\": \"stale\"}'::jsonb, now() - interval '25 hours' from pgforce.connections",
    )
    .await
    .unwrap();

    let daemon = pgforce(&["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(
        &db,
        "select count(*) from pgforce.authorizations where state = 'stale'",
        0,
    )
    .await;
    wait_for_count(&db, "select count(*) from pgforce.dashboard_sessions", 1).await;
    wait_for_count(
        &db,
        "select count(*) from pgforce.validations where result->>'age' = 'stale'",
        0,
    )
    .await;
    stop(daemon).await;

    let live_session = count(
        &db,
        "select count(*) from pgforce.dashboard_sessions s join pgforce.api_tokens t on t.id = s.token_id where t.name = 'live'",
    )
    .await;
    assert_eq!(live_session, 1, "a live token's live session stays");
    assert_eq!(
        count(
            &db,
            "select count(*) from pgforce.authorizations where state = 'fresh'"
        )
        .await,
        1,
        "a consent younger than an hour stays"
    );
    assert_eq!(
        count(
            &db,
            "select count(*) from pgforce.validations where result->>'age' = 'fresh'"
        )
        .await,
        1,
        "a diagnosis younger than a day stays"
    );
    assert_eq!(
        count(&db, "select count(*) from pgforce.api_tokens").await,
        4,
        "tokens themselves stay (listed, audited)"
    );
    let _ = std::fs::remove_file(config);
}
