//! OData services (Heroku External Objects) as operators manage them and as the OData
//! endpoint checks its callers: enable, revoke, reset credentials, publish and unpublish
//! relations, settings, the service as the API shows it, and [`Admin::odata_authenticate`].
//!
//! Entity sets are described again on every request (`pgforce_store::odata::describe`,
//! one pg_catalog query on the session that serves the request) rather than cached: an
//! `alter table` of a published relation shows in the next request, and the query costs
//! far less than the request's own statement. The grant only names the published
//! relations; the endpoint describes the one it was asked for.

use std::time::Duration;

use pgforce_store::catalog::odata::{self, Counted, ResourceRow, ServiceRow, Settings};
use pgforce_store::odata::RelationKind;
use pgforce_store::{ConnectionId, PooledSession};

use super::Admin;
use crate::error::{Error, Result};

/// Schemas that are never published: pgforce's catalog and Postgres's own.
const FORBIDDEN_SCHEMAS: [&str; 3] = ["pgforce", "pg_catalog", "information_schema"];

/// A relation a service knows, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ODataResource {
    /// Its catalog id.
    pub id: i64,
    /// Its schema.
    pub schema_name: String,
    /// Its table or view.
    pub table_name: String,
    /// Whether it is published.
    pub exported: bool,
    /// `table` or `view` while it can be served; `None` when it cannot.
    pub kind: Option<&'static str>,
    /// Why it cannot be served now (dropped, no primary key, …).
    pub problem: Option<String>,
}

impl ODataResource {
    /// Whether it can be served now.
    pub fn is_valid(&self) -> bool {
        self.problem.is_none()
    }

    /// Its entity set's name (`<schema>$<table>`, as Heroku External Objects names it).
    pub fn entity_set(&self) -> String {
        format!("{}${}", self.schema_name, self.table_name)
    }
}

/// An OData service as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ODataService {
    /// Its catalog id.
    pub id: i64,
    /// Its URL segment.
    pub slug: String,
    /// Its connection.
    pub connection: ConnectionId,
    /// Whether it answers.
    pub enabled: bool,
    /// Whether entity sets take writes.
    pub writable: bool,
    /// Whether `$search` is accepted.
    pub search_enabled: bool,
    /// Requests per hour at most.
    pub hourly_request_limit: i32,
    /// Requests answered this hour.
    pub current_hourly_api_usage: i64,
    /// Each request's statement timeout, in milliseconds.
    pub statement_timeout_ms: i32,
    /// The current credential's user, if it has one.
    pub user: Option<String>,
    /// The relations it knows.
    pub resources: Vec<ODataResource>,
}

/// A credential just made: the password is shown this once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ODataCredentials {
    /// The user name.
    pub user: String,
    /// The password (kept nowhere).
    pub password: String,
}

/// What a caller of the OData endpoint may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ODataAccess {
    /// Serve it.
    Granted(ODataGrant),
    /// No service has that slug.
    NotFound,
    /// The user name and password are not a live credential of the service.
    Unauthorized,
    /// The service is disabled (revoked, or never enabled).
    Disabled,
    /// The service answered its hourly limit already.
    RateLimited {
        /// Seconds until the next hour.
        retry_after: u64,
    },
}

/// A request the endpoint serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ODataGrant {
    /// The service's id.
    pub service: i64,
    /// Whether entity sets take writes.
    pub writable: bool,
    /// Whether `$search` is accepted.
    pub search_enabled: bool,
    /// Statement timeout of the request's transaction.
    pub statement_timeout: Duration,
    /// The published relations, `(schema, table)`, by schema and name.
    pub published: Vec<(String, String)>,
}

/// Whether the relation may be published at all; the error says why not.
fn publishable(schema: &str, table: &str) -> Result<()> {
    if FORBIDDEN_SCHEMAS.contains(&schema) || schema.starts_with("pg_") {
        return Err(refusal(
            schema,
            table,
            &format!("schema {schema} is pgforce's or Postgres's own"),
        ));
    }
    if schema.is_empty() || table.is_empty() {
        return Err(refusal(schema, table, "name a relation as schema.table"));
    }
    Ok(())
}

/// Why `schema.table` is not published, naming it once.
fn refusal(schema: &str, table: &str, reason: &str) -> Error {
    let relation = format!("{schema}.{table}");
    let problem = if reason.contains(&relation) {
        reason.to_owned()
    } else {
        format!("{relation} cannot be published: {reason}")
    };
    Error::Document { problem }
}

fn kind_name(kind: &RelationKind) -> &'static str {
    match kind {
        RelationKind::Table => "table",
        RelationKind::View => "view",
    }
}

/// Whether `schema.table` can be served now: its kind, or why not.
async fn check(
    pg: &PooledSession,
    schema: &str,
    table: &str,
) -> std::result::Result<&'static str, String> {
    publishable(schema, table).map_err(|e| e.to_string())?;
    match pgforce_store::odata::describe(&**pg, schema, table).await {
        Ok(Some(set)) => Ok(kind_name(&set.kind)),
        Ok(None) => Err(format!("no table or view named {schema}.{table}")),
        Err(error) => Err(crate::error::chain(&error)),
    }
}

impl Admin {
    /// A session of the engine's pool for one OData request (given back when dropped).
    pub async fn odata_session(&self) -> Result<PooledSession> {
        self.engine.session().await
    }

    async fn odata_row(&self, pg: &PooledSession, id: i64) -> Result<ServiceRow> {
        odata::by_id(&**pg, id)
            .await
            .map_err(Error::catalog)?
            .ok_or_else(|| Error::NotFound {
                what: format!("no OData service with id {id}"),
            })
    }

    async fn odata_view(&self, pg: &PooledSession, row: ServiceRow) -> Result<ODataService> {
        let usage = odata::current_usage(&**pg, row.id)
            .await
            .map_err(Error::catalog)?;
        let user = odata::current_user(&**pg, row.id)
            .await
            .map_err(Error::catalog)?;
        let mut resources = Vec::new();
        for ResourceRow {
            id,
            schema_name,
            table_name,
            exported,
        } in odata::resources(&**pg, row.id)
            .await
            .map_err(Error::catalog)?
        {
            let checked = check(pg, &schema_name, &table_name).await;
            resources.push(ODataResource {
                id,
                kind: checked.as_ref().ok().copied(),
                problem: checked.err(),
                schema_name,
                table_name,
                exported,
            });
        }
        Ok(ODataService {
            id: row.id,
            slug: row.slug,
            connection: row.connection_id,
            enabled: row.enabled,
            writable: row.writable,
            search_enabled: row.search_enabled,
            hourly_request_limit: row.hourly_request_limit,
            current_hourly_api_usage: usage,
            statement_timeout_ms: row.statement_timeout_ms,
            user: if row.enabled { user } else { None },
            resources,
        })
    }

    /// The OData service of a connection (made, disabled, if it has none yet).
    pub async fn odata_service_of(&self, connection: ConnectionId) -> Result<ODataService> {
        let pg = self.engine.session().await?;
        self.engine.connection_row(&pg, connection).await?;
        let row = odata::ensure(&*pg, connection)
            .await
            .map_err(Error::catalog)?;
        self.odata_view(&pg, row).await
    }

    /// The OData service of the connection named `name` (made, disabled, if it has none).
    pub async fn odata_service_named(&self, name: &str) -> Result<ODataService> {
        let pg = self.engine.session().await?;
        let connection = pgforce_store::catalog::connections::find(&*pg, name)
            .await
            .map_err(Error::catalog)?
            .ok_or_else(|| Error::NotFound {
                what: format!("no connection named {name}"),
            })?;
        let row = odata::ensure(&*pg, connection.id)
            .await
            .map_err(Error::catalog)?;
        self.odata_view(&pg, row).await
    }

    /// The id and slug of every connection's OData service, `(connection, id, slug)`,
    /// making the missing ones (disabled).
    pub async fn odata_service_ids(&self) -> Result<Vec<(ConnectionId, i64, String)>> {
        let pg = self.engine.session().await?;
        let connections = pgforce_store::catalog::connections::list(&*pg)
            .await
            .map_err(Error::catalog)?;
        let mut ids = Vec::new();
        for connection in connections {
            let row = odata::ensure(&*pg, connection.id)
                .await
                .map_err(Error::catalog)?;
            ids.push((connection.id, row.id, row.slug));
        }
        Ok(ids)
    }

    /// Every connection's OData service.
    pub async fn odata_services(&self) -> Result<Vec<ODataService>> {
        let ids = self.odata_service_ids().await?;
        let pg = self.engine.session().await?;
        let mut services = Vec::new();
        for (_, id, _) in ids {
            let row = self.odata_row(&pg, id).await?;
            services.push(self.odata_view(&pg, row).await?);
        }
        Ok(services)
    }

    /// The OData service with this id.
    pub async fn odata_service(&self, id: i64) -> Result<ODataService> {
        let pg = self.engine.session().await?;
        let row = self.odata_row(&pg, id).await?;
        self.odata_view(&pg, row).await
    }

    /// Enables the service. A disabled service gets a new credential, returned (shown
    /// this once); an enabled one is left as it is (`None`).
    pub async fn odata_enable(&self, id: i64) -> Result<Option<ODataCredentials>> {
        let mut pg = self.engine.session().await?;
        let row = self.odata_row(&pg, id).await?;
        if row.enabled {
            return Ok(None);
        }
        let tx = pg.transaction().await.map_err(|source| Error::Store {
            what: format!("OData service {id}"),
            source: pgforce_store::Error::Postgres {
                context: "starting a transaction".to_owned(),
                source,
            },
        })?;
        odata::enable(&tx, id).await.map_err(Error::catalog)?;
        let (user, password) = odata::new_credential(&tx, id)
            .await
            .map_err(Error::catalog)?;
        tx.commit().await.map_err(|source| Error::Store {
            what: format!("OData service {id}"),
            source: pgforce_store::Error::Postgres {
                context: "enabling the service".to_owned(),
                source,
            },
        })?;
        Ok(Some(ODataCredentials { user, password }))
    }

    /// Disables the service and ends every credential at once.
    pub async fn odata_revoke(&self, id: i64) -> Result<()> {
        let pg = self.engine.session().await?;
        self.odata_row(&pg, id).await?;
        odata::revoke(&*pg, id).await.map_err(Error::catalog)
    }

    /// Makes a new credential (shown this once); the previous one keeps working for the
    /// service's overlap (10 minutes unless changed). Refused on a disabled service.
    pub async fn odata_reset(&self, id: i64) -> Result<ODataCredentials> {
        let pg = self.engine.session().await?;
        let row = self.odata_row(&pg, id).await?;
        if !row.enabled {
            return Err(Error::Conflict {
                what: format!(
                    "OData service {id} is disabled: enable it to get credentials (PATCH with {{\"enabled\": true}})"
                ),
            });
        }
        let (user, password) = odata::new_credential(&*pg, id)
            .await
            .map_err(Error::catalog)?;
        Ok(ODataCredentials { user, password })
    }

    /// Changes the service's settings; the error names a value out of range.
    pub async fn odata_settings(&self, id: i64, settings: Settings) -> Result<()> {
        let checks = [
            (
                "api_hourly_rate_limit",
                settings.hourly_request_limit,
                1,
                i32::MAX,
            ),
            (
                "statement_timeout",
                settings.statement_timeout_ms,
                100,
                120_000,
            ),
            (
                "credential_overlap_seconds",
                settings.credential_overlap_seconds,
                0,
                i32::MAX,
            ),
        ];
        for (name, value, low, high) in checks {
            if let Some(value) = value
                && !(low..=high).contains(&value)
            {
                return Err(Error::Document {
                    problem: format!(
                        "OData service {id}: {name} {value} is out of range ({low} to {high})"
                    ),
                });
            }
        }
        let pg = self.engine.session().await?;
        self.odata_row(&pg, id).await?;
        odata::update_settings(&*pg, id, settings)
            .await
            .map_err(Error::catalog)
    }

    /// Publishes `schema.table` as an entity set, once it is found publishable: any
    /// schema but pgforce's and Postgres's own; a table needs a primary key, a view a
    /// column named `id`.
    pub async fn odata_publish(&self, id: i64, schema: &str, table: &str) -> Result<ODataResource> {
        let pg = self.engine.session().await?;
        self.odata_row(&pg, id).await?;
        let kind = check(&pg, schema, table)
            .await
            .map_err(|reason| refusal(schema, table, &reason))?;
        let row = odata::publish(&*pg, id, schema, table)
            .await
            .map_err(Error::catalog)?;
        Ok(ODataResource {
            id: row.id,
            schema_name: row.schema_name,
            table_name: row.table_name,
            exported: row.exported,
            kind: Some(kind),
            problem: None,
        })
    }

    /// Stops publishing `schema.table`; not found when it was not published.
    pub async fn odata_unpublish(&self, id: i64, schema: &str, table: &str) -> Result<()> {
        let pg = self.engine.session().await?;
        self.odata_row(&pg, id).await?;
        if odata::unpublish(&*pg, id, schema, table)
            .await
            .map_err(Error::catalog)?
        {
            Ok(())
        } else {
            Err(Error::NotFound {
                what: format!("OData service {id} does not publish {schema}.{table}"),
            })
        }
    }

    /// Checks a caller of the OData endpoint: the service at `slug`, its state, the
    /// credential, and the hourly limit (a granted request is counted; refused ones are
    /// not).
    pub async fn odata_authenticate(
        &self,
        slug: &str,
        user: &str,
        password: &str,
    ) -> Result<ODataAccess> {
        let pg = self.engine.session().await?;
        let Some(row) = odata::by_slug(&*pg, slug).await.map_err(Error::catalog)? else {
            return Ok(ODataAccess::NotFound);
        };
        if !row.enabled {
            return Ok(ODataAccess::Disabled);
        }
        if !odata::verify(&*pg, row.id, user, password)
            .await
            .map_err(Error::catalog)?
        {
            return Ok(ODataAccess::Unauthorized);
        }
        match odata::count_request(&*pg, row.id, i64::from(row.hourly_request_limit))
            .await
            .map_err(Error::catalog)?
        {
            Counted::Over { retry_after } => return Ok(ODataAccess::RateLimited { retry_after }),
            Counted::Within(_) => {}
        }
        let published = odata::resources(&*pg, row.id)
            .await
            .map_err(Error::catalog)?
            .into_iter()
            .filter(|r| r.exported)
            .map(|r| (r.schema_name, r.table_name))
            .collect();
        Ok(ODataAccess::Granted(ODataGrant {
            service: row.id,
            writable: row.writable,
            search_enabled: row.search_enabled,
            statement_timeout: Duration::from_millis(
                u64::try_from(row.statement_timeout_ms).unwrap_or(30_000),
            ),
            published,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_and_system_schemas_are_refused_and_others_allowed() {
        for schema in ["pgforce", "pg_catalog", "information_schema", "pg_toast"] {
            let error = publishable(schema, "t").unwrap_err().to_string();
            assert!(error.contains(schema), "{error}");
        }
        assert!(publishable("salesforce", "account").is_ok());
        assert!(publishable("archive", "case").is_ok());
    }
}
