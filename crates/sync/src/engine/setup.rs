//! Declarations into the catalog, and catalog rows into mappings ready to run.
//!
//! Key concepts:
//! - **Fail fast on declarations.** [`Engine::apply`] logs in, describes every mapped
//!   object and resolves every mapping of every declared connection before it writes
//!   anything, so a wrong object or field stops `pgforce run` at once with the mapping and
//!   field named. A field the mapping synced before and the org no longer lists (deleted,
//!   or hidden by field-level security) is a schema change, not a wrong field: that
//!   mapping waits in `SCHEMA_CHANGED` and the others start.
//! - **One way to register a mapping** ([`Engine::register`]): its table created or
//!   completed, its catalog row written; when fields were added the cursor is forgotten
//!   so the next read fills the new columns in place. Declarations, imports and run-time
//!   additions all go through it.
//! - **The file is the declaration.** Mappings the configuration file declared before
//!   and no longer does are removed from the catalog at the next start (their tables
//!   stay); imported and run-time mappings are left alone.

use pgforce_salesforce::{ApiErrorCode, Client};
use pgforce_store::catalog::connections::{self, ConnectionRow};
use pgforce_store::catalog::cursors;
use pgforce_store::catalog::mappings::{self, Declaration, MappingRow, Origin};
use pgforce_store::ddl::{
    TableChange, create_mapped_table, detach_mapped_table, ensure_connection_schema,
};
use pgforce_store::trigger_log::queue;
use pgforce_store::{ConnectionId, Ident, MappingId, MappingState, Session};

use super::Engine;
use crate::config::{ConnectionConfig, MappingConfig};
use crate::error::{Error, Result};
use crate::hc_json;
use crate::mapping::Mapping;
use crate::reader::schema;

/// What [`Engine::apply`] registered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Connections declared.
    pub connections: usize,
    /// Mappings they have (declared and imported).
    pub mappings: usize,
}

/// A connection this process can run: its catalog id and schema, its configuration with
/// secrets, and its Salesforce client.
#[derive(Debug, Clone)]
pub(crate) struct LiveConnection {
    pub id: ConnectionId,
    pub schema: Ident,
    pub config: ConnectionConfig,
    pub salesforce: Client,
}

impl LiveConnection {
    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }
}

/// How a connection's catalog row is written.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Declaring<'a> {
    /// Declared (a configuration file) or changed: registered, or updated by name.
    Upsert,
    /// Created through the API: a new row with its sealed secrets, or a conflict when the
    /// name is taken (nothing of the existing connection changes).
    New {
        /// Its id, taken beforehand (its secrets are sealed bound to it).
        id: ConnectionId,
        /// The fingerprint of the key that sealed `sealed`.
        key: &'a str,
        /// The sealed secrets.
        sealed: &'a [u8],
    },
}

/// A resolved mapping to register, with what its catalog row keeps.
pub(crate) struct Registration<'a> {
    pub connection: ConnectionId,
    pub schema: &'a Ident,
    pub mapping: &'a Mapping,
    pub config: &'a MappingConfig,
    pub origin: Origin,
    /// The Heroku Connect `config` object of an import (JSON text).
    pub imported_config: Option<&'a str>,
}

/// A mapping checked against the org, with its catalog row.
#[derive(Debug, Clone)]
pub(crate) struct LiveMapping {
    pub row: MappingRow,
    pub mapping: Mapping,
}

fn catalog_error(source: pgforce_store::Error) -> Error {
    Error::catalog(source)
}

impl Engine {
    /// Applies every declared connection to the catalog: checks it against its org,
    /// creates its schema and tables, registers its mappings. Idempotent.
    pub async fn apply(&self) -> Result<Applied> {
        let mut pg = self.session().await?;
        let mut applied = Applied::default();
        for config in self.declared() {
            applied.mappings += self
                .apply_connection(&mut pg, &config, Declaring::Upsert)
                .await?;
            applied.connections += 1;
        }
        Ok(applied)
    }

    /// Whether every declared connection is in the catalog already: it was applied and
    /// ran before, so an org that refuses it now is a passing condition to wait out, not
    /// a wrong declaration.
    pub async fn knows_declared_connections(&self) -> Result<bool> {
        let pg = self.session().await?;
        for config in self.declared() {
            if connections::find(&*pg, &config.name)
                .await
                .map_err(catalog_error)?
                .is_none()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Applies one declared connection (and the mappings imported into it); returns how
    /// many mappings it has.
    pub(crate) async fn apply_connection(
        &self,
        pg: &mut Session,
        config: &ConnectionConfig,
        declaring: Declaring<'_>,
    ) -> Result<usize> {
        let salesforce = self.client(config)?;
        let schema = schema_of(config)?;
        let existing = match connections::find(&*pg, &config.name)
            .await
            .map_err(catalog_error)?
        {
            Some(_) if matches!(declaring, Declaring::New { .. }) => {
                return Err(name_taken(&config.name));
            }
            Some(row) => mappings::list(&*pg, Some(row.id))
                .await
                .map_err(catalog_error)?,
            None => Vec::new(),
        };
        // The file's own mapping of an object wins over an imported one.
        let mut wanted: Vec<(MappingConfig, Origin, Option<String>)> = config
            .mappings
            .iter()
            .map(|m| (m.clone(), Origin::Config, None))
            .collect();
        for row in existing.iter().filter(|r| r.origin != Origin::Config) {
            if wanted
                .iter()
                .any(|(m, _, _)| m.object.eq_ignore_ascii_case(&row.object))
            {
                continue;
            }
            wanted.push((settings_of(row)?, row.origin, row.imported_config.clone()));
        }
        let mut resolved = Vec::with_capacity(wanted.len());
        // Mappings whose synced fields are gone from the org: they stay as they are and
        // wait in SCHEMA_CHANGED (the supervisor resumes them), the others start.
        let mut waiting: Vec<String> = Vec::new();
        for (mapping_config, origin, imported) in wanted {
            let mapping = match resolve(&salesforce, &config.name, &mapping_config).await {
                Ok(mapping) => mapping,
                Err(error) => {
                    let row = existing
                        .iter()
                        .find(|r| r.object.eq_ignore_ascii_case(&mapping_config.object));
                    let Some(row) = row else {
                        return Err(error);
                    };
                    let Some(problem) =
                        schema::gone_from_org(pg, &schema, &row.table, &error).await
                    else {
                        return Err(error);
                    };
                    tracing::error!(connection = %config.name, object = %row.object, error = %problem, "mapping waits for its fields (SCHEMA_CHANGED)");
                    mappings::set_state(&*pg, row.id, &MappingState::SchemaChanged, Some(&problem))
                        .await
                        .map_err(catalog_error)?;
                    waiting.push(row.object.clone());
                    continue;
                }
            };
            resolved.push((mapping, mapping_config, origin, imported));
        }
        ensure_connection_schema(&*pg, &schema)
            .await
            .map_err(catalog_error)?;
        let settings = settings_json(config);
        let refused = |e: pgforce_store::Error| Error::Connection {
            connection: config.name.clone(),
            problem: e.to_string(),
        };
        let connection = match declaring {
            Declaring::Upsert => {
                connections::declare(&*pg, &config.name, schema.as_str(), &settings)
                    .await
                    .map_err(refused)?
            }
            Declaring::New { id, key, sealed } => connections::create(
                &*pg,
                id,
                &config.name,
                schema.as_str(),
                &settings,
                (key, sealed),
            )
            .await
            .map_err(refused)?
            .ok_or_else(|| name_taken(&config.name))?,
        };
        for (mapping, mapping_config, origin, imported) in &resolved {
            let registration = Registration {
                connection,
                schema: &schema,
                mapping,
                config: mapping_config,
                origin: *origin,
                imported_config: imported.as_deref(),
            };
            self.register(pg, &registration).await?;
        }
        for row in existing.iter().filter(|r| r.origin == Origin::Config) {
            if !resolved
                .iter()
                .any(|(m, _, _, _)| m.object.eq_ignore_ascii_case(&row.object))
                && !waiting.contains(&row.object)
            {
                tracing::info!(connection = %config.name, object = %row.object, "mapping no longer in the configuration file: removed from the catalog (its table stays)");
                remove_mapping(pg, &schema, row).await?;
            }
        }
        Ok(resolved.len() + waiting.len())
    }

    /// Registers a resolved mapping of a connection: creates or completes its table and
    /// writes its catalog row; when columns were added, forgets the cursor (keeping the
    /// rows) so the next read fills them in place.
    pub(crate) async fn register(
        &self,
        pg: &mut Session,
        registration: &Registration<'_>,
    ) -> Result<MappingId> {
        let Registration {
            connection,
            schema,
            mapping,
            config,
            origin,
            imported_config,
        } = *registration;
        let store = |e| Error::store(&mapping.object, e);
        let change = create_mapped_table(pg, &mapping.table_spec(schema))
            .await
            .map_err(store)?;
        let settings = serde_json::to_string(config).unwrap_or_default();
        let id = mappings::declare(
            &*pg,
            &Declaration {
                connection,
                object: &mapping.object,
                table: mapping.table.as_str(),
                access: mapping.spec.access,
                settings: &settings,
                origin,
                imported_config,
            },
        )
        .await
        .map_err(store)?;
        if let TableChange::Altered(added) = &change
            && !added.is_empty()
        {
            let names: Vec<&str> = added.iter().map(Ident::as_str).collect();
            tracing::info!(object = %mapping.object, columns = %names.join(", "), "fields added; back-filling");
            cursors::clear(&*pg, id).await.map_err(store)?;
            mappings::set_state(&*pg, id, &MappingState::Resync, None)
                .await
                .map_err(store)?;
        }
        Ok(id)
    }

    /// The connection named `name` as this process can run it.
    pub(crate) async fn live_connection(
        &self,
        pg: &Session,
        name: &str,
    ) -> Result<(ConnectionRow, LiveConnection)> {
        let row = connections::find(pg, name)
            .await
            .map_err(catalog_error)?
            .ok_or_else(|| Error::NotFound {
                what: format!(
                    "connection {name} is not in the catalog (has `pgforce run` set it up?)"
                ),
            })?;
        let live = self.live(&row)?.ok_or_else(|| Error::Connection {
            connection: name.to_owned(),
            problem: "this process has no credentials for it".to_owned(),
        })?;
        Ok((row, live))
    }

    /// A catalog connection as this process can run it; `None` without credentials here.
    pub(crate) fn live(&self, row: &ConnectionRow) -> Result<Option<LiveConnection>> {
        let Some(config) = self.configuration(row) else {
            return Ok(None);
        };
        Ok(Some(LiveConnection {
            id: row.id,
            schema: schema_of(&config)?,
            salesforce: self.client(&config)?,
            config,
        }))
    }

    /// A catalog mapping checked against the org.
    pub(crate) async fn live_mapping(
        &self,
        connection: &LiveConnection,
        row: &MappingRow,
    ) -> Result<LiveMapping> {
        let config = settings_of(row)?;
        let mapping = resolve(&connection.salesforce, connection.name(), &config).await?;
        Ok(LiveMapping {
            row: row.clone(),
            mapping,
        })
    }
}

/// A connection of this name exists: creating another is a conflict, never a change.
pub(crate) fn name_taken(name: &str) -> Error {
    Error::Conflict {
        what: format!(
            "a connection named {name} exists already; names are unique (choose another, or change that one)"
        ),
    }
}

/// The connection's schema as an identifier.
pub(crate) fn schema_of(config: &ConnectionConfig) -> Result<Ident> {
    Ident::new(&config.schema).map_err(|e| Error::Connection {
        connection: config.name.clone(),
        problem: format!("schema: {e}"),
    })
}

/// What the catalog keeps of a connection: its settings without secrets or mappings.
fn settings_json(config: &ConnectionConfig) -> String {
    serde_json::to_string(config).unwrap_or_default()
}

/// A mapping row's settings: its own, or (rows imported before settings were kept) those
/// its Heroku Connect document states.
pub(crate) fn settings_of(row: &MappingRow) -> Result<MappingConfig> {
    if let Some(settings) = &row.settings {
        return serde_json::from_str(settings).map_err(|e| {
            Error::config(
                &row.object,
                format!("the catalog's settings are unreadable: {e}"),
            )
        });
    }
    let document = row.imported_config.as_deref().ok_or_else(|| {
        Error::config(
            &row.object,
            "the catalog holds no settings for this mapping",
        )
    })?;
    let config: serde_json::Value = serde_json::from_str(document).map_err(|e| {
        Error::config(
            &row.object,
            format!("imported configuration is not JSON: {e}"),
        )
    })?;
    let config = config
        .as_object()
        .ok_or_else(|| Error::config(&row.object, "imported configuration is not an object"))?;
    hc_json::mapping_config(&row.object, config)
}

/// Checks a mapping's settings against the org (describe).
pub(crate) async fn resolve(
    salesforce: &Client,
    connection: &str,
    config: &MappingConfig,
) -> Result<Mapping> {
    let spec = config.spec(connection)?;
    let describe = salesforce
        .describe(&config.object)
        .await
        .map_err(|source| match source.code() {
            Some(ApiErrorCode::NotFound) => Error::config(
                &config.object,
                format!("object {} does not exist in the org", config.object),
            ),
            _ => Error::salesforce(&config.object, source),
        })?;
    Mapping::resolve(spec, &describe)
}

/// Removes a mapping: its table stops capturing changes and keeps its rows, its unsent
/// changes are set aside (nothing will send them), its catalog row goes.
pub(crate) async fn remove_mapping(pg: &Session, schema: &Ident, row: &MappingRow) -> Result<()> {
    let store = |e| Error::store(&row.object, e);
    let table = Ident::new(&row.table).map_err(store)?;
    detach_mapped_table(pg, schema, &table)
        .await
        .map_err(store)?;
    queue::set_aside(pg, schema, &table, "pgforce: the mapping was removed")
        .await
        .map_err(store)?;
    mappings::remove(pg, row.id).await.map_err(store)?;
    Ok(())
}
