//! Catalog rows the reader keeps: connections, mappings and read cursors.
//!
//! A cursor is the `(SystemModstamp, Id)` of the last record a mapping has applied. It is
//! written with [`save_cursor`] inside the same transaction as the rows it covers, so a
//! crash can neither lose a change nor apply one twice (the worker contract).

use tokio_postgres::{Client, GenericClient};

use crate::error::{Context as _, Result};

/// Where a mapping's reader stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadCursor {
    /// `SystemModstamp` of the last applied record, as a SOQL datetime literal
    /// (`2024-01-01T10:00:05.123Z`); Postgres stores it as `timestamptz`.
    pub system_modstamp: String,
    /// Its Id, ordering records that share the stamp.
    pub last_sfid: String,
}

/// Registers a connection (by name) and returns its id.
pub async fn ensure_connection(client: &Client, name: &str, schema: &str) -> Result<i64> {
    let row = client
        .query_one(
            "insert into pgforce.connections (name, schema_name) values ($1, $2)
             on conflict (name) do update set schema_name = excluded.schema_name, updated_at = now()
             returning id",
            &[&name, &schema],
        )
        .await
        .context(|| format!("registering connection {name}"))?;
    Ok(row.get(0))
}

/// Registers a mapping of a connection and returns its id.
pub async fn ensure_mapping(
    client: &Client,
    connection: i64,
    object: &str,
    table: &str,
    read_write: bool,
) -> Result<i64> {
    let access = if read_write {
        "read_write"
    } else {
        "read_only"
    };
    let row = client
        .query_one(
            "insert into pgforce.mappings (connection_id, object_name, table_name, access) values ($1, $2, $3, $4)
             on conflict (connection_id, object_name) do update set table_name = excluded.table_name,
                 access = excluded.access, updated_at = now()
             returning id",
            &[&connection, &object, &table, &access],
        )
        .await
        .context(|| format!("registering mapping {object}"))?;
    Ok(row.get(0))
}

/// Sets a mapping's state (Heroku Connect's names) and, optionally, its last error.
pub async fn set_mapping_state(
    client: &impl GenericClient,
    mapping: i64,
    state: &str,
    error: Option<&str>,
) -> Result<()> {
    client
        .execute(
            "update pgforce.mappings set state = $2, last_error = $3, activity = null, updated_at = now(),
                 last_sync_at = case when $2 = 'DATA_SYNCED' then now() else last_sync_at end
             where id = $1",
            &[&mapping, &state, &error],
        )
        .await
        .context(|| format!("setting the state of mapping {mapping}"))
        .map(|_| ())
}

/// Says what the mapping is doing that takes a while (a running Bulk API job); the next
/// state change clears it.
pub async fn set_mapping_activity(
    client: &impl GenericClient,
    mapping: i64,
    activity: &str,
) -> Result<()> {
    client
        .execute(
            "update pgforce.mappings set activity = $2, updated_at = now() where id = $1",
            &[&mapping, &activity],
        )
        .await
        .context(|| format!("setting the activity of mapping {mapping}"))
        .map(|_| ())
}

/// The mapping's cursor, if it has loaded anything.
pub async fn load_cursor(client: &impl GenericClient, mapping: i64) -> Result<Option<ReadCursor>> {
    let row = client
        .query_opt(
            "select to_char(system_modstamp at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), last_sfid
             from pgforce.read_cursors where mapping_id = $1 and system_modstamp is not null",
            &[&mapping],
        )
        .await
        .context(|| format!("reading the cursor of mapping {mapping}"))?;
    Ok(row.map(|r| ReadCursor {
        system_modstamp: r.get(0),
        last_sfid: r.get::<_, Option<String>>(1).unwrap_or_default(),
    }))
}

/// Moves the cursor. Call inside the transaction that applied the rows it covers.
pub async fn save_cursor(
    client: &impl GenericClient,
    mapping: i64,
    cursor: &ReadCursor,
) -> Result<()> {
    client
        .execute(
            "insert into pgforce.read_cursors (mapping_id, system_modstamp, last_sfid) values ($1, $2::text::timestamptz, $3)
             on conflict (mapping_id) do update set system_modstamp = excluded.system_modstamp,
                 last_sfid = excluded.last_sfid, updated_at = now()",
            &[&mapping, &cursor.system_modstamp, &cursor.last_sfid],
        )
        .await
        .context(|| format!("saving the cursor of mapping {mapping}"))
        .map(|_| ())
}

/// Forgets the cursor (before a reload).
pub async fn clear_cursor(client: &impl GenericClient, mapping: i64) -> Result<()> {
    client
        .execute(
            "delete from pgforce.read_cursors where mapping_id = $1",
            &[&mapping],
        )
        .await
        .context(|| format!("clearing the cursor of mapping {mapping}"))
        .map(|_| ())
}

/// Keeps a mapping's Heroku Connect `config` object (JSON text), as imported.
pub async fn save_mapping_config(
    client: &impl GenericClient,
    mapping: i64,
    config_json: &str,
) -> Result<()> {
    client
        .execute("update pgforce.mappings set config = $2::text::jsonb, updated_at = now() where id = $1", &[&mapping, &config_json])
        .await
        .context(|| format!("saving the imported configuration of mapping {mapping}"))
        .map(|_| ())
}

/// Keeps the `connection` block of an imported export document (JSON text).
pub async fn save_connection_document(
    client: &impl GenericClient,
    connection: &str,
    block_json: &str,
) -> Result<()> {
    client
        .execute(
            "update pgforce.connections set config = jsonb_set(config, '{hc_connection}', $2::text::jsonb), updated_at = now()
             where name = $1",
            &[&connection, &block_json],
        )
        .await
        .context(|| format!("saving the imported connection block of {connection}"))
        .map(|_| ())
}

/// The imported `connection` block of a connection (JSON text), if one was imported.
pub async fn connection_document(
    client: &impl GenericClient,
    connection: &str,
) -> Result<Option<String>> {
    let row = client
        .query_opt(
            "select (config -> 'hc_connection')::text from pgforce.connections where name = $1",
            &[&connection],
        )
        .await
        .context(|| format!("reading connection {connection}"))?;
    Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
}

/// `(object, config JSON text)` of every imported mapping of a connection.
pub async fn imported_mappings(
    client: &impl GenericClient,
    connection: &str,
) -> Result<Vec<(String, String)>> {
    let rows = client
        .query(
            "select m.object_name, m.config::text from pgforce.mappings m join pgforce.connections c on c.id = m.connection_id
             where c.name = $1 and m.config <> '{}'::jsonb order by m.object_name",
            &[&connection],
        )
        .await
        .context(|| format!("reading the imported mappings of {connection}"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// One load or poll, as the sync event log records it.
#[derive(Debug, Clone)]
pub struct SyncEvent<'a> {
    /// The mapping.
    pub mapping: i64,
    /// `load` or `poll`.
    pub kind: &'a str,
    /// `sf_to_pg` or `pg_to_sf`.
    pub direction: &'a str,
    /// Records applied.
    pub records: i64,
    /// Salesforce API calls used.
    pub api_calls: i64,
    /// How long it took.
    pub duration_ms: i64,
    /// `ok`, `rejected` (some records not stored) or `error`.
    pub outcome: &'a str,
    /// Details for the operator.
    pub message: Option<&'a str>,
}

/// Appends to the sync event log.
pub async fn record_event(client: &impl GenericClient, event: &SyncEvent<'_>) -> Result<()> {
    client
        .execute(
            "insert into pgforce.sync_events
                 (connection_id, mapping_id, kind, direction, records, api_calls, duration_ms, outcome, message)
             select connection_id, id, $2, $3, $4::bigint::integer, $5::bigint::integer, $6::bigint::integer, $7, $8
             from pgforce.mappings where id = $1",
            &[&event.mapping, &event.kind, &event.direction, &event.records, &event.api_calls, &event.duration_ms, &event.outcome, &event.message],
        )
        .await
        .context(|| format!("recording a sync event of mapping {}", event.mapping))
        .map(|_| ())
}
