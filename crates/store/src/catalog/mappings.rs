//! `pgforce.mappings`: one row per synced object of a connection.
//!
//! A mapping's `settings` are its configuration as JSON (fields, access, polling…); an
//! imported mapping also keeps its Heroku Connect `config` object verbatim, so exporting
//! gives back exactly what was imported. `origin` says who declared it: the configuration
//! file (re-applied at every start), an import, or an operator at run time. The `state`,
//! `last_error`, `activity` and counts are what its reader reports; `paused` and
//! `reload_requested_at` are what an operator asks for.

use tokio_postgres::GenericClient;

use crate::error::{Context as _, Error, Result};
use crate::ids::{ConnectionId, MappingId};
use crate::states::{Access, MappingState};

/// Who declared a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A configuration file; applied again at every start, removed when the file drops it.
    Config,
    /// A Heroku Connect mapping document.
    Import,
    /// An operator while pgforce runs (command line or API).
    Runtime,
}

impl Origin {
    /// The text stored in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Import => "import",
            Self::Runtime => "runtime",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "config" => Some(Self::Config),
            "import" => Some(Self::Import),
            "runtime" => Some(Self::Runtime),
            _ => None,
        }
    }
}

/// A mapping as the catalog holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingRow {
    /// Its id.
    pub id: MappingId,
    /// Its connection.
    pub connection: ConnectionId,
    /// The object's API name.
    pub object: String,
    /// Its table in the connection's schema.
    pub table: String,
    /// Read-only or read-write.
    pub access: Access,
    /// Its settings (JSON text), when declared by this version.
    pub settings: Option<String>,
    /// The Heroku Connect `config` object it was imported with (JSON text).
    pub imported_config: Option<String>,
    /// Who declared it.
    pub origin: Origin,
    /// Whether an operator paused it.
    pub paused: bool,
    /// What its reader last reported.
    pub state: MappingState,
    /// Why it is in an error state, or what it could not store.
    pub last_error: Option<String>,
    /// Whether a reload was asked for and not done yet.
    pub reload_requested: bool,
    /// Grows with every change of its settings, pause or reload request.
    pub revision: i64,
}

const COLUMNS: &str =
    "m.id, m.connection_id, m.object_name, m.table_name, m.access, m.settings::text,
    case when m.config <> '{}'::jsonb then m.config::text end, m.origin, m.paused, m.state,
    m.last_error, m.reload_requested_at is not null, m.revision";

fn from_row(row: &tokio_postgres::Row) -> Result<MappingRow> {
    let id = MappingId::from(row.get::<_, i64>(0));
    let access: &str = row.get(4);
    let origin: &str = row.get(7);
    Ok(MappingRow {
        id,
        connection: ConnectionId::from(row.get::<_, i64>(1)),
        object: row.get(2),
        table: row.get(3),
        access: Access::parse(access).ok_or_else(|| Error::Catalog {
            what: format!("mapping {id}: unknown access {access:?}"),
        })?,
        settings: row.get(5),
        imported_config: row.get(6),
        origin: Origin::parse(origin).ok_or_else(|| Error::Catalog {
            what: format!("mapping {id}: unknown origin {origin:?}"),
        })?,
        paused: row.get(8),
        state: MappingState::parse(row.get(9)),
        last_error: row.get(10),
        reload_requested: row.get(11),
        revision: row.get(12),
    })
}

/// A mapping to register or update.
#[derive(Debug, Clone, Copy)]
pub struct Declaration<'a> {
    /// Its connection.
    pub connection: ConnectionId,
    /// The object's API name.
    pub object: &'a str,
    /// Its table.
    pub table: &'a str,
    /// Read-only or read-write.
    pub access: Access,
    /// Its settings (JSON text).
    pub settings: &'a str,
    /// Who declares it.
    pub origin: Origin,
    /// The Heroku Connect `config` object of an import (JSON text).
    pub imported_config: Option<&'a str>,
}

/// Registers a mapping or updates it (by connection and object); returns its id.
pub async fn declare(client: &impl GenericClient, mapping: &Declaration<'_>) -> Result<MappingId> {
    let imported = mapping.imported_config.unwrap_or("{}");
    let row = client
        .query_one(
            "insert into pgforce.mappings (connection_id, object_name, table_name, access, settings, origin, config)
             values ($1, $2, $3, $4, $5::text::jsonb, $6, $7::text::jsonb)
             on conflict (connection_id, object_name) do update set table_name = excluded.table_name,
                 access = excluded.access, settings = excluded.settings, origin = excluded.origin,
                 config = excluded.config, updated_at = now()
             returning id",
            &[
                &mapping.connection.get(),
                &mapping.object,
                &mapping.table,
                &mapping.access.as_str(),
                &mapping.settings,
                &mapping.origin.as_str(),
                &imported,
            ],
        )
        .await
        .context(|| format!("registering mapping {}", mapping.object))?;
    Ok(MappingId::from(row.get::<_, i64>(0)))
}

/// Every mapping (of one connection, or of all), by connection and object.
pub async fn list(
    client: &impl GenericClient,
    connection: Option<ConnectionId>,
) -> Result<Vec<MappingRow>> {
    let rows = client
        .query(
            &format!(
                "select {COLUMNS} from pgforce.mappings m
                 where $1::bigint is null or m.connection_id = $1
                 order by m.connection_id, m.object_name"
            ),
            &[&connection.map(ConnectionId::get)],
        )
        .await
        .context(|| "reading the mappings".to_owned())?;
    rows.iter().map(from_row).collect()
}

/// The mapping of `object` (any case) in the connection named `connection`.
pub async fn find(
    client: &impl GenericClient,
    connection: &str,
    object: &str,
) -> Result<Option<MappingRow>> {
    let row = client
        .query_opt(
            &format!(
                "select {COLUMNS} from pgforce.mappings m
                 join pgforce.connections c on c.id = m.connection_id
                 where c.name = $1 and lower(m.object_name) = lower($2)"
            ),
            &[&connection, &object],
        )
        .await
        .context(|| format!("reading mapping {object} of connection {connection}"))?;
    row.as_ref().map(from_row).transpose()
}

/// The mapping with id `id`, if there is one.
pub async fn get(client: &impl GenericClient, id: MappingId) -> Result<Option<MappingRow>> {
    let row = client
        .query_opt(
            &format!("select {COLUMNS} from pgforce.mappings m where m.id = $1"),
            &[&id.get()],
        )
        .await
        .context(|| format!("reading mapping {id}"))?;
    row.as_ref().map(from_row).transpose()
}

/// Pauses or resumes a mapping; `false` when there is no such mapping.
pub async fn set_paused(
    client: &impl GenericClient,
    mapping: MappingId,
    paused: bool,
) -> Result<bool> {
    client
        .execute(
            "update pgforce.mappings set paused = $2, updated_at = now() where id = $1",
            &[&mapping.get(), &paused],
        )
        .await
        .context(|| format!("pausing or resuming mapping {mapping}"))
        .map(|n| n == 1)
}

/// Asks the mapping's reader to load it again; `false` when there is no such mapping.
pub async fn request_reload(client: &impl GenericClient, mapping: MappingId) -> Result<bool> {
    client
        .execute(
            "update pgforce.mappings set reload_requested_at = clock_timestamp(), state = $2,
                 last_error = null, activity = null, updated_at = now()
             where id = $1",
            &[&mapping.get(), &MappingState::ReloadTable.as_str()],
        )
        .await
        .context(|| format!("asking for a reload of mapping {mapping}"))
        .map(|n| n == 1)
}

/// Whether a reload of the mapping was asked for and not done yet.
pub async fn reload_requested(client: &impl GenericClient, mapping: MappingId) -> Result<bool> {
    client
        .query_opt(
            "select 1 from pgforce.mappings where id = $1 and reload_requested_at is not null",
            &[&mapping.get()],
        )
        .await
        .context(|| format!("reading the reload request of mapping {mapping}"))
        .map(|row| row.is_some())
}

/// Marks a requested reload done. Call inside the load's transaction.
pub async fn finish_reload(client: &impl GenericClient, mapping: MappingId) -> Result<()> {
    client
        .execute(
            "update pgforce.mappings set reload_requested_at = null where id = $1",
            &[&mapping.get()],
        )
        .await
        .context(|| format!("marking the reload of mapping {mapping} done"))
        .map(|_| ())
}

/// Removes a mapping from the catalog with its cursor and events; `false` when there was
/// no such mapping.
pub async fn remove(client: &impl GenericClient, mapping: MappingId) -> Result<bool> {
    client
        .execute(
            "delete from pgforce.mappings where id = $1",
            &[&mapping.get()],
        )
        .await
        .context(|| format!("removing mapping {mapping}"))
        .map(|n| n == 1)
}

/// Sets a mapping's state (Heroku Connect's names) and, optionally, its last error.
pub async fn set_state(
    client: &impl GenericClient,
    mapping: MappingId,
    state: &MappingState,
    error: Option<&str>,
) -> Result<()> {
    client
        .execute(
            "update pgforce.mappings set state = $2, last_error = $3, activity = null, updated_at = now(),
                 last_sync_at = case when $2 = $4 then now() else last_sync_at end
             where id = $1",
            &[
                &mapping.get(),
                &state.as_str(),
                &error,
                &MappingState::DataSynced.as_str(),
            ],
        )
        .await
        .context(|| format!("setting the state of mapping {mapping}"))
        .map(|_| ())
}

/// Shows an error on the mapping without changing its state (a failure being retried).
pub async fn set_error(
    client: &impl GenericClient,
    mapping: MappingId,
    error: Option<&str>,
) -> Result<()> {
    client
        .execute(
            "update pgforce.mappings set last_error = $2, updated_at = now()
             where id = $1 and last_error is distinct from $2",
            &[&mapping.get(), &error],
        )
        .await
        .context(|| format!("setting the last error of mapping {mapping}"))
        .map(|_| ())
}

/// Says what the mapping is doing that takes a while (a running Bulk API job); the next
/// state change clears it.
pub async fn set_activity(
    client: &impl GenericClient,
    mapping: MappingId,
    activity: &str,
) -> Result<()> {
    client
        .execute(
            "update pgforce.mappings set activity = $2, updated_at = now() where id = $1",
            &[&mapping.get(), &activity],
        )
        .await
        .context(|| format!("setting the activity of mapping {mapping}"))
        .map(|_| ())
}

/// Keeps what the last reconcile found (JSON text of counts), stamped with the time.
pub async fn record_drift(
    client: &impl GenericClient,
    mapping: MappingId,
    summary_json: &str,
) -> Result<()> {
    client
        .execute(
            "update pgforce.mappings set drift = $2::text::jsonb || jsonb_build_object('checked_at', now())
             where id = $1",
            &[&mapping.get(), &summary_json],
        )
        .await
        .context(|| format!("recording the drift of mapping {mapping}"))
        .map(|_| ())
}
