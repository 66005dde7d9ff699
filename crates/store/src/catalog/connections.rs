//! `pgforce.connections`: one row per Salesforce org synced into one Postgres schema.
//!
//! A connection's `settings` are its declared configuration as JSON (login URL, flow,
//! write policy…) without secrets, which stay with the process that declared them — or,
//! for a connection created through the management API, are kept sealed (encrypted by
//! the engine; this module only stores the bytes and the key's fingerprint). An
//! operator's pause is a column of its own, separate from the `state` the workers report,
//! so resuming knows what to return to.

use tokio_postgres::GenericClient;
use tokio_postgres::error::SqlState;

use crate::error::{Context as _, Error, Result};
use crate::ids::ConnectionId;
use crate::states::ConnectionState;

/// A connection as the catalog holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRow {
    /// Its id.
    pub id: ConnectionId,
    /// Its unique name.
    pub name: String,
    /// The Postgres schema its tables live in.
    pub schema: String,
    /// Its settings (JSON text, secrets excepted), when declared by this version.
    pub settings: Option<String>,
    /// Whether an operator paused it.
    pub paused: bool,
    /// What its workers last reported.
    pub state: ConnectionState,
    /// Why it is in an error or paused state.
    pub last_error: Option<String>,
    /// Grows with every change of its settings or pause.
    pub revision: i64,
    /// Its sealed secrets and the fingerprint of the key that sealed them, if kept here.
    pub sealed_secrets: Option<(String, Vec<u8>)>,
}

const COLUMNS: &str = "id, name, schema_name, settings::text, paused, state, last_error, revision, secrets_key, secrets";

fn from_row(row: &tokio_postgres::Row) -> ConnectionRow {
    ConnectionRow {
        id: ConnectionId::from(row.get::<_, i64>(0)),
        name: row.get(1),
        schema: row.get(2),
        settings: row.get(3),
        paused: row.get(4),
        state: ConnectionState::parse(row.get(5)),
        last_error: row.get(6),
        revision: row.get(7),
        sealed_secrets: row
            .get::<_, Option<String>>(8)
            .zip(row.get::<_, Option<Vec<u8>>>(9)),
    }
}

/// Registers a connection or updates its schema and settings (by name); returns its id.
/// A schema another connection already uses is refused, naming that connection.
pub async fn declare(
    client: &impl GenericClient,
    name: &str,
    schema: &str,
    settings_json: &str,
) -> Result<ConnectionId> {
    let declared = client
        .query_one(
            "insert into pgforce.connections (name, schema_name, settings) values ($1, $2, $3::text::jsonb)
             on conflict (name) do update set schema_name = excluded.schema_name,
                 settings = excluded.settings, updated_at = now()
             returning id",
            &[&name, &schema, &settings_json],
        )
        .await;
    match declared {
        Ok(row) => Ok(ConnectionId::from(row.get::<_, i64>(0))),
        Err(error) => Err(refused(client, error, name, schema).await),
    }
}

/// A new connection id, taken before the row is written (its secrets are sealed bound to
/// it). An id taken and never used leaves a gap, nothing else.
pub async fn reserve_id(client: &impl GenericClient) -> Result<ConnectionId> {
    client
        .query_one(
            "select nextval(pg_get_serial_sequence('pgforce.connections', 'id'))",
            &[],
        )
        .await
        .context(|| "taking a new connection id".to_owned())
        .map(|row| ConnectionId::from(row.get::<_, i64>(0)))
}

/// Registers a new connection `id` (from [`reserve_id`]) with its sealed secrets (`key`'s
/// fingerprint and the bytes) in one statement, so it never shows without them; `None`
/// when a connection of that name exists (it is left as it is). A schema another
/// connection uses is refused, naming that connection.
pub async fn create(
    client: &impl GenericClient,
    id: ConnectionId,
    name: &str,
    schema: &str,
    settings_json: &str,
    (key, sealed): (&str, &[u8]),
) -> Result<Option<ConnectionId>> {
    let created = client
        .query_opt(
            "insert into pgforce.connections (id, name, schema_name, settings, secrets_key, secrets)
             values ($1, $2, $3, $4::text::jsonb, $5, $6)
             on conflict (name) do nothing
             returning id",
            &[&id.get(), &name, &schema, &settings_json, &key, &sealed],
        )
        .await;
    match created {
        Ok(row) => Ok(row.map(|row| ConnectionId::from(row.get::<_, i64>(0)))),
        Err(error) => Err(refused(client, error, name, schema).await),
    }
}

/// Why registering connection `name` on `schema` failed: the schema's owner when another
/// connection has it, else the database's error.
async fn refused(
    client: &impl GenericClient,
    error: tokio_postgres::Error,
    name: &str,
    schema: &str,
) -> Error {
    if error.code() != Some(&SqlState::UNIQUE_VIOLATION) {
        return Error::Postgres {
            context: format!("registering connection {name}"),
            source: error,
        };
    }
    let owner = client
        .query_opt(
            "select name from pgforce.connections where schema_name = $1 and name <> $2",
            &[&schema, &name],
        )
        .await
        .context(|| format!("finding the connection that owns schema {schema}"));
    match owner {
        Ok(Some(owner)) => Error::SchemaTaken {
            schema: schema.to_owned(),
            owner: owner.get(0),
            name: name.to_owned(),
        },
        Ok(None) => Error::Postgres {
            context: format!("registering connection {name}"),
            source: error,
        },
        Err(lookup) => lookup,
    }
}

/// Every connection, by name.
pub async fn list(client: &impl GenericClient) -> Result<Vec<ConnectionRow>> {
    let rows = client
        .query(
            &format!("select {COLUMNS} from pgforce.connections order by name"),
            &[],
        )
        .await
        .context(|| "reading the connections".to_owned())?;
    Ok(rows.iter().map(from_row).collect())
}

/// The connection named `name`, if there is one.
pub async fn find(client: &impl GenericClient, name: &str) -> Result<Option<ConnectionRow>> {
    let row = client
        .query_opt(
            &format!("select {COLUMNS} from pgforce.connections where name = $1"),
            &[&name],
        )
        .await
        .context(|| format!("reading connection {name}"))?;
    Ok(row.as_ref().map(from_row))
}

/// The connection with id `id`, if there is one.
pub async fn get(client: &impl GenericClient, id: ConnectionId) -> Result<Option<ConnectionRow>> {
    let row = client
        .query_opt(
            &format!("select {COLUMNS} from pgforce.connections where id = $1"),
            &[&id.get()],
        )
        .await
        .context(|| format!("reading connection {id}"))?;
    Ok(row.as_ref().map(from_row))
}

/// Pauses or resumes a connection; `false` when there is no such connection.
pub async fn set_paused(
    client: &impl GenericClient,
    connection: ConnectionId,
    paused: bool,
) -> Result<bool> {
    let state = if paused {
        ConnectionState::Paused
    } else {
        ConnectionState::Idle
    };
    client
        .execute(
            "update pgforce.connections set paused = $2, state = $3, last_error = null, updated_at = now()
             where id = $1",
            &[&connection.get(), &paused, &state.as_str()],
        )
        .await
        .context(|| format!("pausing or resuming connection {connection}"))
        .map(|n| n == 1)
}

/// Sets what the connection's workers report, with the reason for error states.
pub async fn set_state(
    client: &impl GenericClient,
    connection: ConnectionId,
    state: &ConnectionState,
    error: Option<&str>,
) -> Result<()> {
    client
        .execute(
            "update pgforce.connections set state = $2, last_error = $3, updated_at = now()
             where id = $1 and (state, coalesce(last_error, '')) is distinct from ($2, coalesce($3, ''))",
            &[&connection.get(), &state.as_str(), &error],
        )
        .await
        .context(|| format!("setting the state of connection {connection}"))
        .map(|_| ())
}

/// Lifts a pause the engine set itself (an org-wide condition that has passed): back to
/// IDLE, unless an operator paused the connection or it is in another state meanwhile.
pub async fn lift_org_pause(client: &impl GenericClient, connection: ConnectionId) -> Result<()> {
    client
        .execute(
            "update pgforce.connections set state = $2, last_error = null, updated_at = now()
             where id = $1 and state = any($3)",
            &[
                &connection.get(),
                &ConnectionState::Idle.as_str(),
                &vec![
                    ConnectionState::PausedApiLimit.as_str(),
                    ConnectionState::PausedAuth.as_str(),
                ],
            ],
        )
        .await
        .context(|| format!("lifting the pause of connection {connection}"))
        .map(|_| ())
}

/// The Salesforce org (18-character Id) a connection's credentials were last seen to
/// belong to; `None` while pgforce has not learnt it.
pub async fn org_id(
    client: &impl GenericClient,
    connection: ConnectionId,
) -> Result<Option<String>> {
    let row = client
        .query_opt(
            "select org_id from pgforce.connections where id = $1",
            &[&connection.get()],
        )
        .await
        .context(|| format!("reading the org of connection {connection}"))?;
    Ok(row.and_then(|r| r.get(0)))
}

/// Records the Salesforce org a connection's credentials belong to.
pub async fn set_org_id(
    client: &impl GenericClient,
    connection: ConnectionId,
    org_id: &str,
) -> Result<()> {
    client
        .execute(
            "update pgforce.connections set org_id = $2 where id = $1",
            &[&connection.get(), &org_id],
        )
        .await
        .context(|| format!("recording the org of connection {connection}"))
        .map(|_| ())
}

/// Removes a connection and, with it, its mappings, cursors and events from the catalog
/// (its schema and tables stay). `false` when there was no such connection.
pub async fn remove(client: &impl GenericClient, connection: ConnectionId) -> Result<bool> {
    client
        .execute(
            "delete from pgforce.connections where id = $1",
            &[&connection.get()],
        )
        .await
        .context(|| format!("removing connection {connection}"))
        .map(|n| n == 1)
}

/// Keeps the `connection` block of an imported export document (JSON text).
pub async fn save_document(
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
pub async fn document(client: &impl GenericClient, connection: &str) -> Result<Option<String>> {
    let row = client
        .query_opt(
            "select (config -> 'hc_connection')::text from pgforce.connections where name = $1",
            &[&connection],
        )
        .await
        .context(|| format!("reading connection {connection}"))?;
    Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
}

/// Keeps a connection's sealed secrets and the fingerprint of the key that sealed them.
pub async fn save_secrets(
    client: &impl GenericClient,
    name: &str,
    key: &str,
    sealed: &[u8],
) -> Result<()> {
    let updated = client
        .execute(
            "update pgforce.connections set secrets = $2, secrets_key = $3 where name = $1",
            &[&name, &sealed, &key],
        )
        .await
        .context(|| format!("keeping the sealed secrets of connection {name}"))?;
    if updated == 0 {
        return Err(Error::Catalog {
            what: format!("connection {name} is not in the catalog"),
        });
    }
    Ok(())
}

/// Replaces the sealed secrets of `connection` with `new` if they are still `old` (both
/// as the fingerprint of the sealing key and the bytes): a compare-and-swap, so a change
/// made since `old` was read is never overwritten. `false` when they changed (read them
/// again) or the connection is gone.
pub async fn reseal(
    client: &impl GenericClient,
    connection: ConnectionId,
    old: (&str, &[u8]),
    new: (&str, &[u8]),
) -> Result<bool> {
    client
        .execute(
            "update pgforce.connections set secrets = $4, secrets_key = $5
             where id = $1 and secrets_key = $2 and secrets = $3",
            &[&connection.get(), &old.0, &old.1, &new.1, &new.0],
        )
        .await
        .context(|| format!("re-sealing the secrets of connection {connection}"))
        .map(|n| n == 1)
}
