//! Changing what is synced while pgforce runs: adding, changing, pausing, resuming and
//! removing connections and mappings, and reloading a mapping.
//!
//! Every operation writes the catalog, which notifies running engines (in this process
//! or another on the same catalog); their supervisors start, stop or restart the workers
//! concerned. Nothing here talks to a worker directly, so an operation works the same
//! whether a daemon runs or not.

use std::time::{Duration, Instant};

use pgforce_store::catalog::leases::{self, Fence, LeaseKeeper};
use pgforce_store::catalog::mappings::{self, MappingRow, Origin};
use pgforce_store::catalog::{connections, subscriptions};
use pgforce_store::ddl::detach_mapped_table;
use pgforce_store::table::rows;
use pgforce_store::{ConnectionId, Ident, MappingId, MappingState, Session};

use super::Engine;
use super::setup::{Declaring, Registration, remove_mapping, resolve};
use crate::config::{ConnectionConfig, MappingConfig};
use crate::error::{Error, Result};
use crate::reader::schema::{self, SchemaCheck};
use crate::reader::{LoadProgress, Target, initial_load};

/// How a reload is carried out.
#[derive(Clone)]
pub enum ReloadMode {
    /// Ask for it; the running reader of the mapping (wherever it runs) reloads it.
    Request,
    /// Reload now and wait: here when no running pgforce reads the mapping, else by the
    /// one that does.
    Now(Option<LoadProgress>),
}

impl std::fmt::Debug for ReloadMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Request => f.write_str("Request"),
            Self::Now(_) => f.write_str("Now"),
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// Asked for; a running reader will do it.
    Requested,
    /// Done: the table holds `rows` rows (loaded here, or by the running reader).
    Done {
        /// The object, as Salesforce spells it.
        object: String,
        /// Rows in the table after the load.
        rows: u64,
        /// Salesforce API calls the load took, when it ran here.
        api_calls: Option<u64>,
    },
}

/// How long a reload waits for a running pgforce to carry it out.
const RELOAD_WAIT: Duration = Duration::from_secs(3600);

fn catalog_error(source: pgforce_store::Error) -> Error {
    Error::catalog(source)
}

impl Engine {
    /// Adds a connection while pgforce runs (or changes it): checks its credentials and
    /// mappings against the org, registers it and its mappings, and keeps its secrets in
    /// this process, which then runs it.
    pub async fn add_connection(&self, config: ConnectionConfig) -> Result<ConnectionId> {
        let mut pg = self.session().await?;
        self.remember(config.clone());
        self.apply_connection(&mut pg, &config, Declaring::Upsert)
            .await?;
        connections::find(&*pg, &config.name)
            .await
            .map_err(catalog_error)?
            .map(|row| row.id)
            .ok_or_else(|| Error::NotFound {
                what: format!("connection {} vanished from the catalog", config.name),
            })
    }

    /// Adds a mapping to a connection, or changes it: checks it against the org, creates
    /// or completes its table, and registers it.
    pub async fn put_mapping(&self, connection: &str, mapping: MappingConfig) -> Result<MappingId> {
        let mut pg = self.session().await?;
        let (_, live) = self.live_connection(&pg, connection).await?;
        let resolved = resolve(&live.salesforce, connection, &mapping).await?;
        let registration = Registration {
            connection: live.id,
            schema: &live.schema,
            mapping: &resolved,
            config: &mapping,
            origin: Origin::Runtime,
            imported_config: None,
        };
        self.register(&mut pg, &registration).await
    }

    /// Pauses a mapping: its reader stops and its changes wait (they are not sent).
    pub async fn pause_mapping(&self, connection: &str, object: &str) -> Result<MappingId> {
        self.set_mapping_paused(connection, object, true).await
    }

    /// Resumes a paused mapping (and starts one stopped by an error again).
    pub async fn resume_mapping(&self, connection: &str, object: &str) -> Result<MappingId> {
        self.set_mapping_paused(connection, object, false).await
    }

    async fn set_mapping_paused(
        &self,
        connection: &str,
        object: &str,
        paused: bool,
    ) -> Result<MappingId> {
        let pg = self.session().await?;
        let row = self.mapping_row(&pg, connection, object).await?;
        mappings::set_paused(&*pg, row.id, paused)
            .await
            .map_err(catalog_error)?;
        if !paused && row.state == MappingState::SystemError {
            // Resuming asks for another try: the next start shows what happens then.
            mappings::set_state(&*pg, row.id, &MappingState::Initial, None)
                .await
                .map_err(catalog_error)?;
        }
        Ok(row.id)
    }

    /// Removes a mapping: its table stays with its rows but no longer captures changes;
    /// changes not sent yet are set IGNORED.
    pub async fn remove_mapping(&self, connection: &str, object: &str) -> Result<()> {
        let pg = self.session().await?;
        let connection_row = connections::find(&*pg, connection)
            .await
            .map_err(catalog_error)?
            .ok_or_else(|| not_in_catalog(connection))?;
        let row = self.mapping_row(&pg, connection, object).await?;
        let schema = Ident::new(&connection_row.schema).map_err(catalog_error)?;
        remove_mapping(&pg, &schema, &row).await
    }

    /// Pauses a connection: its readers and writer stop until it is resumed.
    pub async fn pause_connection(&self, connection: &str) -> Result<()> {
        self.set_connection_paused(connection, true).await
    }

    /// Resumes a paused connection.
    pub async fn resume_connection(&self, connection: &str) -> Result<()> {
        self.set_connection_paused(connection, false).await
    }

    async fn set_connection_paused(&self, connection: &str, paused: bool) -> Result<()> {
        let pg = self.session().await?;
        let row = connections::find(&*pg, connection)
            .await
            .map_err(catalog_error)?
            .ok_or_else(|| not_in_catalog(connection))?;
        connections::set_paused(&*pg, row.id, paused)
            .await
            .map_err(catalog_error)
            .map(|_| ())
    }

    /// Removes a connection and its mappings from the catalog; its tables stay with their
    /// rows but no longer capture changes.
    pub async fn remove_connection(&self, connection: &str) -> Result<()> {
        let pg = self.session().await?;
        let row = connections::find(&*pg, connection)
            .await
            .map_err(catalog_error)?
            .ok_or_else(|| not_in_catalog(connection))?;
        let schema = Ident::new(&row.schema).map_err(catalog_error)?;
        for mapping in mappings::list(&*pg, Some(row.id))
            .await
            .map_err(catalog_error)?
        {
            let table = Ident::new(&mapping.table).map_err(catalog_error)?;
            detach_mapped_table(&pg, &schema, &table)
                .await
                .map_err(|e| Error::store(&mapping.object, e))?;
        }
        connections::remove(&*pg, row.id)
            .await
            .map_err(catalog_error)?;
        self.shared
            .declared
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|c| c.name != connection);
        Ok(())
    }

    /// Forgets where a connection's change-event subscriber stands, for a connection whose
    /// org was replaced (a refreshed sandbox, the demo's new org): its stored replay id
    /// means nothing there, and the next subscription starts from the newest events. (A
    /// stale id is also caught when Salesforce refuses it; this avoids the detour.)
    pub async fn forget_change_event_position(&self, connection: &str) -> Result<()> {
        let pg = self.session().await?;
        let row = connections::find(&*pg, connection)
            .await
            .map_err(catalog_error)?
            .ok_or_else(|| Error::NotFound {
                what: format!("no connection named {connection}"),
            })?;
        subscriptions::forget(&*pg, row.id)
            .await
            .map_err(catalog_error)
    }

    /// Reloads a mapping: the table is emptied and loaded again from Salesforce, in one
    /// transaction with the cursor.
    pub async fn reload(
        &self,
        connection: &str,
        object: &str,
        mode: ReloadMode,
    ) -> Result<Reloaded> {
        let mut pg = self.session().await?;
        let row = self.mapping_row(&pg, connection, object).await?;
        mappings::request_reload(&*pg, row.id)
            .await
            .map_err(catalog_error)?;
        let ReloadMode::Now(progress) = mode else {
            return Ok(Reloaded::Requested);
        };
        let lease = leases::reader_lease(row.id);
        let holder = leases::holder_name();
        let timing = self.shared.options.lease;
        let fence = leases::acquire_or_take_over(&pg, &lease, &holder, timing.ttl)
            .await
            .map_err(catalog_error)?;
        let Some(fence) = fence else {
            tracing::info!(
                object,
                "a running pgforce reads this mapping; waiting for it to reload"
            );
            return self.await_reload(&pg, &row).await;
        };
        // Keep the lease while the load runs, however long it takes.
        let keeper = LeaseKeeper::start(
            &self.shared.database_url,
            &lease,
            &holder,
            timing.ttl,
            timing.heartbeat,
        );
        let result = self
            .load_here(&mut pg, connection, &row, &fence, progress)
            .await;
        keeper.release().await;
        result
    }

    async fn load_here(
        &self,
        pg: &mut Session,
        connection: &str,
        row: &MappingRow,
        fence: &Fence,
        progress: Option<LoadProgress>,
    ) -> Result<Reloaded> {
        let (_, live) = self.live_connection(pg, connection).await?;
        let mapping = self.live_mapping(&live, row).await?.mapping;
        // The table follows the object's schema first, as the reader would: columns
        // Salesforce widened are widened, so the records that need them are stored.
        let mapping = match schema::follow(pg, &live.schema, mapping).await? {
            SchemaCheck::Current {
                mapping,
                widened,
                refused,
            } => {
                if !widened.is_empty() {
                    tracing::info!(object = %mapping.object, columns = widened.len(), "columns widened as their fields were in Salesforce");
                }
                if let Some((_, error)) = refused {
                    tracing::warn!(object = %mapping.object, error = %crate::error::chain(&error), "columns not widened; records that need them are kept as rejected");
                }
                *mapping
            }
            SchemaCheck::Changed { problem } => return Err(Error::config(&row.object, problem)),
        };
        let target = Target {
            schema: &live.schema,
            mapping: &mapping,
            mapping_id: row.id,
            fence: Some(fence),
        };
        let report = |done: u64, finished: bool| {
            if let Some(progress) = &progress {
                progress(&mapping.object, done, finished);
            }
        };
        let outcome = initial_load(&live.salesforce, pg, &target, &mut |done| {
            report(done, false);
        })
        .await?;
        report(outcome.applied, true);
        Ok(Reloaded::Done {
            object: mapping.object,
            rows: outcome.applied,
            api_calls: Some(outcome.api_calls),
        })
    }

    /// Waits until the running reader has carried out the reload.
    async fn await_reload(&self, pg: &Session, row: &MappingRow) -> Result<Reloaded> {
        let started = Instant::now();
        while started.elapsed() < RELOAD_WAIT {
            let pending = mappings::reload_requested(pg, row.id)
                .await
                .map_err(catalog_error)?;
            if !pending {
                let schema = self.schema_of_mapping(pg, row).await?;
                let table = Ident::new(&row.table).map_err(catalog_error)?;
                let rows = rows::count(pg, &schema, &table)
                    .await
                    .map_err(|e| Error::store(&row.object, e))?;
                return Ok(Reloaded::Done {
                    object: row.object.clone(),
                    rows,
                    api_calls: None,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(Error::NotFound {
            what: format!("the reload of {} did not finish within an hour", row.object),
        })
    }

    async fn schema_of_mapping(&self, pg: &Session, row: &MappingRow) -> Result<Ident> {
        let connections = connections::list(pg).await.map_err(catalog_error)?;
        let connection = connections
            .iter()
            .find(|c| c.id == row.connection)
            .ok_or_else(|| Error::NotFound {
                what: format!("the connection of mapping {} is gone", row.object),
            })?;
        Ident::new(&connection.schema).map_err(catalog_error)
    }

    /// The catalog row of a connection's mapping of `object`.
    pub(crate) async fn mapping_row(
        &self,
        pg: &Session,
        connection: &str,
        object: &str,
    ) -> Result<MappingRow> {
        mappings::find(pg, connection, object)
            .await
            .map_err(catalog_error)?
            .ok_or_else(|| Error::NotFound {
                what: format!("connection {connection} has no mapping for {object}"),
            })
    }
}

fn not_in_catalog(connection: &str) -> Error {
    Error::NotFound {
        what: format!("connection {connection} is not in the catalog"),
    }
}
