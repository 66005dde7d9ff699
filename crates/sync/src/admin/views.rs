//! Connections and mappings as the management API shows them, answered by id.
//!
//! A route reads the rows it returns and nothing else: pausing one connection of a
//! thousand reads that connection's row, not every connection's mappings. What costs more
//! than a catalog read is kept for a stated time ([`crate::fresh`]) and charged to the
//! caller ([`crate::call_budget`]):
//! - a table's rows are counted exactly when Postgres estimates fewer than
//!   [`EXACT_COUNT_BELOW`]; larger tables are counted at most every [`ROW_COUNT_FRESH`];
//! - an object's Salesforce record count (one API call) is asked at most every
//!   [`SALESFORCE_COUNT_FRESH`] per mapping, and only for views with mappings;
//! - the pooled session is given back before any Salesforce call, so a slow org holds no
//!   catalog session.

use std::collections::HashMap;
use std::time::Duration;

use pgforce_store::catalog::connections::{self, ConnectionRow};
use pgforce_store::catalog::mappings::{self, MappingRow};
use pgforce_store::table::rows;
use pgforce_store::trigger_log::queue;
use pgforce_store::{Access, ConnectionId, ConnectionState, Ident, MappingId, MappingState};
use serde_json::{Map, Value};

use super::Admin;
use crate::call_budget::Viewer;
use crate::error::{Error, Result};

/// Tables Postgres estimates smaller than this are counted exactly at every view.
pub const EXACT_COUNT_BELOW: u64 = 100_000;

/// How long the count of a larger table is shown before it is counted again.
pub const ROW_COUNT_FRESH: Duration = Duration::from_secs(60);

/// How long a Salesforce record count is shown before it is asked again.
pub const SALESFORCE_COUNT_FRESH: Duration = Duration::from_secs(30);

/// A connection as the API shows it.
#[derive(Debug, Clone)]
pub struct ConnectionView {
    /// Its catalog id.
    pub id: ConnectionId,
    /// Its name (also its app name).
    pub name: String,
    /// Its Postgres schema.
    pub schema: String,
    /// Its state.
    pub state: ConnectionState,
    /// Whether an operator paused it.
    pub paused: bool,
    /// Why it is paused or in error.
    pub last_error: Option<String>,
    /// The Salesforce API version it uses.
    pub api_version: String,
    /// Whether it writes every change in order (`ordered`, Heroku Connect's
    /// `poll_db_no_merge` feature) rather than merged.
    pub ordered_writes: bool,
    /// Its mappings, when asked for ([`Depth::WithMappings`]).
    pub mappings: Vec<MappingView>,
}

/// A mapping as the API shows it.
#[derive(Debug, Clone)]
pub struct MappingView {
    /// Its catalog id.
    pub id: MappingId,
    /// Its connection's id.
    pub connection: ConnectionId,
    /// The object's API name.
    pub object: String,
    /// Its table.
    pub table: String,
    /// Read-only or read-write.
    pub access: Access,
    /// Its state.
    pub state: MappingState,
    /// Whether it or its connection is paused.
    pub paused: bool,
    /// Its last error.
    pub last_error: Option<String>,
    /// Heroku Connect's `config` object (`access`, `fields`, `sf_polling_seconds`, …).
    pub config: Map<String, Value>,
    /// Rows in its table (see [`EXACT_COUNT_BELOW`] and [`ROW_COUNT_FRESH`]).
    pub rows: Option<u64>,
    /// Records of its object in Salesforce (see [`SALESFORCE_COUNT_FRESH`]), when this
    /// process can log in to the org.
    pub salesforce_count: Option<u64>,
    /// Changes captured and not sent yet.
    pub pending: u64,
    /// Changes Salesforce refused.
    pub errors: u64,
}

/// How much of a connection a view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The connection's own settings and state: one catalog read, no count.
    Connection,
    /// With its mappings, their counts included.
    WithMappings,
}

impl Admin {
    /// Every connection, with its mappings at [`Depth::WithMappings`].
    pub async fn connection_views(
        &self,
        depth: Depth,
        viewer: Viewer<'_>,
    ) -> Result<Vec<ConnectionView>> {
        let rows = {
            let pg = self.engine.session().await?;
            connections::list(&*pg).await.map_err(Error::catalog)?
        };
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
            views.push(self.view_of(row, depth, viewer).await?);
        }
        Ok(views)
    }

    /// The connection with id `id`.
    pub async fn connection_view(
        &self,
        id: ConnectionId,
        depth: Depth,
        viewer: Viewer<'_>,
    ) -> Result<ConnectionView> {
        let row = {
            let pg = self.engine.session().await?;
            self.engine.connection_row(&pg, id).await?
        };
        self.view_of(row, depth, viewer).await
    }

    /// The mapping with id `id`, counted.
    pub async fn mapping_view(&self, id: MappingId, viewer: Viewer<'_>) -> Result<MappingView> {
        let (connection, mapping) = {
            let pg = self.engine.session().await?;
            let mapping = mappings::get(&*pg, id)
                .await
                .map_err(Error::catalog)?
                .ok_or_else(|| Error::NotFound {
                    what: format!("no mapping with id {id}"),
                })?;
            (
                self.engine.connection_row(&pg, mapping.connection).await?,
                mapping,
            )
        };
        let mut views = self.mapping_views(&connection, vec![mapping]).await?;
        self.count_in_salesforce(&connection, &mut views, viewer)
            .await;
        views.pop().ok_or_else(|| Error::NotFound {
            what: format!("no mapping with id {id}"),
        })
    }

    /// The connection `row` as a view.
    async fn view_of(
        &self,
        row: ConnectionRow,
        depth: Depth,
        viewer: Viewer<'_>,
    ) -> Result<ConnectionView> {
        let mappings = match depth {
            Depth::Connection => Vec::new(),
            Depth::WithMappings => {
                let listed = {
                    let pg = self.engine.session().await?;
                    mappings::list(&*pg, Some(row.id))
                        .await
                        .map_err(Error::catalog)?
                };
                let mut views = self.mapping_views(&row, listed).await?;
                self.count_in_salesforce(&row, &mut views, viewer).await;
                views
            }
        };
        let settings = row
            .settings
            .as_deref()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .unwrap_or_default();
        let api_version = settings["api_version"].as_str().map_or_else(
            || pgforce_salesforce::DEFAULT_API_VERSION.to_owned(),
            str::to_owned,
        );
        let ordered_writes = settings["write_algorithm"]
            .as_str()
            .is_none_or(|a| a == "ordered");
        Ok(ConnectionView {
            id: row.id,
            name: row.name,
            schema: row.schema,
            state: row.state,
            paused: row.paused,
            last_error: row.last_error,
            api_version,
            ordered_writes,
            mappings,
        })
    }

    /// Views of `listed` (mappings of `connection`), with their Postgres counts and no
    /// Salesforce count yet.
    async fn mapping_views(
        &self,
        connection: &ConnectionRow,
        listed: Vec<MappingRow>,
    ) -> Result<Vec<MappingView>> {
        let configs = self.engine.export(&connection.name).await?;
        let schema = Ident::new(&connection.schema).map_err(Error::catalog)?;
        let pg = self.engine.session().await?;
        let queues = queue::unsent_and_failed_by_table(&*pg, &schema)
            .await
            .unwrap_or_default();
        let counted = self.row_counts(&pg, &connection.schema, &listed).await;
        let mut views = Vec::with_capacity(listed.len());
        for row in listed {
            let config = configs["mappings"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["object_name"].as_str() == Some(row.object.as_str()))
                .and_then(|m| m["config"].as_object().cloned())
                .unwrap_or_default();
            let rows = counted.get(&row.id).copied();
            let (pending, errors) = queues.get(&row.table).copied().unwrap_or_default();
            views.push(MappingView {
                id: row.id,
                connection: connection.id,
                object: row.object,
                table: row.table,
                access: row.access,
                state: row.state,
                paused: row.paused || connection.paused,
                last_error: row.last_error,
                config,
                rows,
                salesforce_count: None,
                pending,
                errors,
            });
        }
        Ok(views)
    }

    /// Rows in the tables of `listed` (mappings of one connection, in `schema`), by
    /// mapping: exact when Postgres estimates a table smaller than [`EXACT_COUNT_BELOW`],
    /// else kept for [`ROW_COUNT_FRESH`]. One estimate read and a few counting statements,
    /// whatever the number of mappings; a table that is missing has no count.
    async fn row_counts(
        &self,
        pg: &pgforce_store::Session,
        schema: &str,
        listed: &[MappingRow],
    ) -> HashMap<MappingId, u64> {
        let Ok(schema_ident) = Ident::new(schema) else {
            return HashMap::new();
        };
        let key = |table: &str| (schema.to_owned(), table.to_owned());
        let tables: Vec<(String, String)> = listed.iter().map(|m| key(&m.table)).collect();
        let estimates = rows::estimates(pg, &tables).await.unwrap_or_default();
        let kept = &self.engine.shared.views.row_counts;
        let mut counted = HashMap::with_capacity(listed.len());
        let mut to_count = Vec::new();
        for mapping in listed {
            let Some(&estimate) = estimates.get(&key(&mapping.table)) else {
                continue;
            };
            let large = estimate >= EXACT_COUNT_BELOW;
            match (large, kept.fresh(&mapping.id)) {
                (true, Some(count)) => {
                    counted.insert(mapping.id, count);
                }
                _ => {
                    if let Ok(table) = Ident::new(&mapping.table) {
                        to_count.push((mapping.id, large, table));
                    }
                }
            }
        }
        let idents: Vec<(Ident, Ident)> = to_count
            .iter()
            .map(|(_, _, table)| (schema_ident.clone(), table.clone()))
            .collect();
        let exact = rows::counts(pg, &idents).await.unwrap_or_default();
        for (mapping, large, table) in to_count {
            if let Some(&count) = exact.get(&key(table.as_str())) {
                if large {
                    kept.keep(mapping, count);
                }
                counted.insert(mapping, count);
            }
        }
        counted
    }

    /// Fills the Salesforce record counts of `views`, asking Salesforce only for those not
    /// asked within [`SALESFORCE_COUNT_FRESH`] and while `viewer`'s budget lasts (past it,
    /// the last count known is shown).
    async fn count_in_salesforce(
        &self,
        connection: &ConnectionRow,
        views: &mut [MappingView],
        viewer: Viewer<'_>,
    ) {
        let counts = &self.engine.shared.views.salesforce_counts;
        for view in views {
            view.salesforce_count = match counts.fresh(&view.id) {
                Some(count) => Some(count),
                None if self.engine.shared.views.budget.spend(viewer) => {
                    let count = self
                        .salesforce_count(
                            std::slice::from_ref(connection),
                            &connection.name,
                            &view.object,
                        )
                        .await;
                    if let Some(count) = count {
                        counts.keep(view.id, count);
                    }
                    count.or_else(|| counts.last(&view.id))
                }
                None => counts.last(&view.id),
            };
        }
    }
}

/// What the views keep between requests, shared by an engine's clones.
#[derive(Debug)]
pub(crate) struct Kept {
    /// Salesforce record counts, by mapping.
    salesforce_counts: crate::fresh::Fresh<MappingId, u64>,
    /// Exact row counts of large tables, by mapping.
    row_counts: crate::fresh::Fresh<MappingId, u64>,
    /// Describes as the `schemas` route shows them, by connection and object.
    pub(crate) describes: crate::fresh::Fresh<(ConnectionId, String), Value>,
    /// Salesforce calls each token may still cause this hour.
    pub(crate) budget: crate::call_budget::CallBudget,
}

/// How long a describe is shown before it is asked again.
pub const DESCRIBE_FRESH: Duration = Duration::from_secs(60);

impl Kept {
    pub(crate) fn new(calls_per_token_hour: u32) -> Self {
        Self {
            salesforce_counts: crate::fresh::Fresh::new(SALESFORCE_COUNT_FRESH),
            row_counts: crate::fresh::Fresh::new(ROW_COUNT_FRESH),
            describes: crate::fresh::Fresh::new(DESCRIBE_FRESH),
            budget: crate::call_budget::CallBudget::new(calls_per_token_hour),
        }
    }
}
