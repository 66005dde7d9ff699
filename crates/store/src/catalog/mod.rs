//! The `pgforce` catalog: what to sync and where it stands.
//!
//! The catalog is the source of truth for connections and mappings: configuration files
//! and imports are applied to it, and running engines follow it (every change of a
//! connection's or mapping's settings raises its `revision` and notifies
//! [`CATALOG_CHANNEL`]). One module per table: `audit` (who changed what through the
//! API), `authorizations` (OAuth consents in progress), `connections`, `mappings`, `cursors` (read
//! cursors), `events` (the sync event log), `leases`, `stale_creates` (records a writer
//! made after losing its lease), `rejected` (records a reader could not store), `tokens`
//! (management API tokens, kept as hashes), `archive` (archive jobs and their records), `notifications` (what operators should hear
//! about, and its delivery to webhooks), `validations` (diagnoses asked for through the
//! API), `odata` (OData services, their credentials, published relations and usage); `status` reads what `pgforce status` shows.
//!
//! Migrations are numbered SQL files embedded in the binary, applied in order inside one
//! transaction that holds an advisory lock, so several `pgforce run` processes starting
//! at once apply each migration exactly once. Applied files are never edited; a change is
//! a new file.

pub mod archive;
pub mod audit;
pub mod authorizations;
pub mod connections;
pub mod cursors;
pub mod events;
pub mod leases;
pub mod mappings;
pub mod notifications;
pub mod odata;
pub mod rejected;
pub mod stale_creates;
pub mod status;
pub mod subscriptions;
pub mod tokens;
pub mod validations;

use tokio_postgres::Client;

use crate::error::{Context as _, Result};

/// The channel on which the catalog announces changes of connections and mappings
/// (payload `connections:<id>` or `mappings:<id>`).
pub const CATALOG_CHANNEL: &str = "pgforce_catalog";

/// The channel on which a change-event subscriber asks the reader of a mapping to read
/// at once, wherever it runs (payload: the mapping's id).
pub const NUDGE_CHANNEL: &str = "pgforce_nudge";

/// `(version, SQL)` of every migration, in order.
const MIGRATIONS: [(i32, &str); 24] = [
    (1, include_str!("../../migrations/0001_catalog.sql")),
    (
        2,
        include_str!("../../migrations/0002_mapping_activity.sql"),
    ),
    (3, include_str!("../../migrations/0003_mapping_drift.sql")),
    (
        4,
        include_str!("../../migrations/0004_catalog_source_of_truth.sql"),
    ),
    (5, include_str!("../../migrations/0005_lease_tokens.sql")),
    (6, include_str!("../../migrations/0006_stale_creates.sql")),
    (7, include_str!("../../migrations/0007_writer_jobs.sql")),
    (
        8,
        include_str!("../../migrations/0008_rejected_records.sql"),
    ),
    (9, include_str!("../../migrations/0009_api_tokens.sql")),
    (10, include_str!("../../migrations/0010_audit_log.sql")),
    (11, include_str!("../../migrations/0011_notifications.sql")),
    (
        12,
        include_str!("../../migrations/0012_connection_secrets.sql"),
    ),
    (
        13,
        include_str!("../../migrations/0013_secrets_revise_connections.sql"),
    ),
    (14, include_str!("../../migrations/0014_validations.sql")),
    (
        15,
        include_str!("../../migrations/0015_dashboard_sessions.sql"),
    ),
    (16, include_str!("../../migrations/0016_authorizations.sql")),
    (17, include_str!("../../migrations/0017_change_events.sql")),
    (
        18,
        include_str!("../../migrations/0018_push_topic_events.sql"),
    ),
    (
        19,
        include_str!("../../migrations/0019_deleted_records.sql"),
    ),
    (
        20,
        include_str!("../../migrations/0020_creates_in_flight.sql"),
    ),
    (
        21,
        include_str!("../../migrations/0021_creates_in_flight_before_upgrade.sql"),
    ),
    (22, include_str!("../../migrations/0022_oauth_binding.sql")),
    (23, include_str!("../../migrations/0023_odata_services.sql")),
    (24, include_str!("../../migrations/0024_archive.sql")),
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

/// Checks that the catalog answers and holds every migration this version knows (for
/// readiness probes); the error says which is not so.
pub async fn check(client: &Client) -> Result<()> {
    // The last version, not the count: versions may skip a number another branch holds.
    let latest = MIGRATIONS.last().map_or(0, |(version, _)| *version);
    let applied: Option<i32> = client
        .query_one("select max(version) from pgforce.schema_migrations", &[])
        .await
        .context(|| "reading the catalog's migrations".to_owned())?
        .get(0);
    match applied {
        Some(version) if version >= latest => Ok(()),
        other => Err(crate::Error::Catalog {
            what: format!(
                "the catalog is at migration {} of {latest}: a newer pgforce must run first",
                other.unwrap_or(0)
            ),
        }),
    }
}
