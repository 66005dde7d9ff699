//! The `pgforce` catalog schema and its migrations.
//!
//! Migrations are numbered SQL files embedded in the binary, applied in order inside one
//! transaction that holds an advisory lock, so several `pgforce run` processes starting
//! at once apply each migration exactly once. Applied files are never edited; a change is
//! a new file.

use tokio_postgres::Client;

use crate::error::{Context as _, Result};

/// `(version, SQL)` of every migration, in order.
const MIGRATIONS: [(i32, &str); 3] = [
    (1, include_str!("../migrations/0001_catalog.sql")),
    (2, include_str!("../migrations/0002_mapping_activity.sql")),
    (3, include_str!("../migrations/0003_mapping_drift.sql")),
];

/// Key of the advisory lock that serialises migrations ("pgforce" in ASCII).
const MIGRATION_LOCK: i64 = 0x0070_6766_6f72_6365;

/// Applies the migrations not yet applied; returns how many were.
pub async fn migrate(client: &mut Client) -> Result<usize> {
    let tx = client
        .transaction()
        .await
        .context(|| "starting the migration transaction".to_owned())?;
    tx.execute("select pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .context(|| "taking the migration lock".to_owned())?;
    tx.batch_execute(
        "create schema if not exists pgforce;
         create table if not exists pgforce.schema_migrations (
             version integer primary key,
             applied_at timestamptz not null default now()
         );",
    )
    .await
    .context(|| "creating the pgforce schema".to_owned())?;
    let mut applied = 0;
    for (version, sql) in MIGRATIONS {
        let done = tx
            .query_opt(
                "select 1 from pgforce.schema_migrations where version = $1",
                &[&version],
            )
            .await
            .context(|| format!("checking migration {version}"))?
            .is_some();
        if done {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .context(|| format!("applying catalog migration {version:04}"))?;
        tx.execute(
            "insert into pgforce.schema_migrations (version) values ($1)",
            &[&version],
        )
        .await
        .context(|| format!("recording migration {version}"))?;
        applied += 1;
    }
    tx.commit()
        .await
        .context(|| "committing the migrations".to_owned())?;
    if applied > 0 {
        tracing::info!(applied, "applied catalog migrations");
    }
    Ok(applied)
}
