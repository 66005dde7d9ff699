//! Connections and mappings as the management API shows them: catalog rows with their
//! live states, Heroku Connect's mapping `config` objects and `counts`, and the failed
//! writes of the last day; plus the API's tokens and audit trail. Secrets never appear
//! here.

use pgforce_store::catalog::audit::{self, AuditEntry};
use pgforce_store::catalog::notifications::{self, Filter, Notification};
use pgforce_store::catalog::tokens::{self, Role, TokenRow};
use pgforce_store::catalog::{connections, mappings};

use crate::SecretKey;
use crate::config::{ConnectionConfig, SERVER_FILE_SETTINGS, server_file_problem};
use crate::secrets;
use pgforce_store::table::rows;
use pgforce_store::trigger_log::queue::{self, FailedDecision, FailedWrite};
use pgforce_store::{
    Access, ConnectionId, ConnectionState, Ident, MappingId, MappingState, Session,
};
use serde_json::{Map, Value, json};

use super::Engine;
use super::setup::{Declaring, name_taken};
use crate::error::{Error, Result};

/// Keys whose values are secrets wherever they appear in a document the audit trail
/// records: their values are replaced by [`REDACTED`], so no caller can write one there.
const SECRET_KEYS: [&str; 6] = [
    "password",
    "client_secret",
    "refresh_token",
    "private_key",
    "access_token",
    "secret",
];

/// What the audit trail shows in place of a secret.
const REDACTED: &str = "[redacted]";

/// `value` with the values of [`SECRET_KEYS`] replaced, at any depth.
fn redacted(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, inner)| {
                    let shown = if SECRET_KEYS.contains(&key.as_str()) && !inner.is_null() {
                        Value::String(REDACTED.to_owned())
                    } else {
                        redacted(inner)
                    };
                    (key.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

/// How far back the failed-writes lists look, as Heroku Connect's (hours).
const FAILED_WRITES_HOURS: f64 = 24.0;

/// How long the API shows a Salesforce record count before counting again.
pub(super) const SALESFORCE_COUNT_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// At most this many failed writes are listed.
const FAILED_WRITES_SHOWN: i64 = 1000;

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
    /// Its mappings, when asked for (`deep`).
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
    /// Rows in its table.
    pub rows: Option<u64>,
    /// Records of its object in Salesforce (counted at most every 30 s), when this process
    /// can log in to the org.
    pub salesforce_count: Option<u64>,
    /// Changes captured and not sent yet.
    pub pending: u64,
    /// Changes Salesforce refused.
    pub errors: u64,
}

impl Engine {
    /// Every connection, with its mappings when `deep`.
    pub async fn connection_views(&self, deep: bool) -> Result<Vec<ConnectionView>> {
        let pg = self.session().await?;
        let rows = connections::list(&*pg).await.map_err(Error::catalog)?;
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
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
            let mappings = if deep {
                self.mapping_views(&pg, &row).await?
            } else {
                Vec::new()
            };
            views.push(ConnectionView {
                id: row.id,
                name: row.name,
                schema: row.schema,
                state: row.state,
                paused: row.paused,
                last_error: row.last_error,
                api_version,
                ordered_writes,
                mappings,
            });
        }
        Ok(views)
    }

    /// One connection, with its mappings.
    pub async fn connection_view(&self, id: ConnectionId) -> Result<ConnectionView> {
        self.connection_views(true)
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| Error::NotFound {
                what: format!("no connection with id {id}"),
            })
    }

    /// One mapping.
    pub async fn mapping_view(&self, id: MappingId) -> Result<MappingView> {
        self.connection_views(true)
            .await?
            .into_iter()
            .flat_map(|c| c.mappings)
            .find(|m| m.id == id)
            .ok_or_else(|| Error::NotFound {
                what: format!("no mapping with id {id}"),
            })
    }

    async fn mapping_views(
        &self,
        pg: &Session,
        connection: &connections::ConnectionRow,
    ) -> Result<Vec<MappingView>> {
        let schema = Ident::new(&connection.schema).map_err(Error::catalog)?;
        let configs = self.export(&connection.name).await?;
        let queues = queue::unsent_and_failed_by_table(pg, &schema)
            .await
            .unwrap_or_default();
        let mut views = Vec::new();
        for row in mappings::list(pg, Some(connection.id))
            .await
            .map_err(Error::catalog)?
        {
            let config = configs["mappings"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["object_name"].as_str() == Some(row.object.as_str()))
                .and_then(|m| m["config"].as_object().cloned())
                .unwrap_or_default();
            let rows = match Ident::new(&row.table) {
                Ok(table) => rows::count(pg, &schema, &table).await.ok(),
                Err(_) => None,
            };
            let (pending, errors) = queues.get(&row.table).copied().unwrap_or_default();
            let salesforce_count = self
                .cached_salesforce_count(connection, row.id, &row.object)
                .await;
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
                salesforce_count,
                pending,
                errors,
            });
        }
        Ok(views)
    }

    /// A mapping's Salesforce record count, counted again when the last is older than
    /// [`SALESFORCE_COUNT_TTL`].
    async fn cached_salesforce_count(
        &self,
        connection: &connections::ConnectionRow,
        mapping: MappingId,
        object: &str,
    ) -> Option<u64> {
        let cached = self
            .shared
            .salesforce_counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&mapping)
            .copied();
        if let Some((at, count)) = cached
            && at.elapsed() < SALESFORCE_COUNT_TTL
        {
            return Some(count);
        }
        let count = self
            .salesforce_count(std::slice::from_ref(connection), &connection.name, object)
            .await?;
        self.shared
            .salesforce_counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(mapping, (std::time::Instant::now(), count));
        Some(count)
    }

    /// Changes Salesforce refused in the last 24 hours: a connection's, or one mapping's.
    pub async fn failed_writes(
        &self,
        connection: ConnectionId,
        mapping: Option<MappingId>,
    ) -> Result<Vec<FailedWrite>> {
        let view = self.connection_view(connection).await?;
        let table = match mapping {
            Some(id) => Some(
                view.mappings
                    .iter()
                    .find(|m| m.id == id)
                    .map(|m| m.table.clone())
                    .ok_or_else(|| Error::NotFound {
                        what: format!("no mapping with id {id}"),
                    })?,
            ),
            None => None,
        };
        let schema = Ident::new(&view.schema).map_err(Error::catalog)?;
        let pg = self.session().await?;
        queue::failed_since(
            &*pg,
            &schema,
            table.as_deref(),
            FAILED_WRITES_HOURS,
            FAILED_WRITES_SHOWN,
        )
        .await
        .map_err(Error::catalog)
    }

    /// Creates an API token; returns it (only its hash is kept).
    pub async fn create_token(
        &self,
        name: &str,
        role: Role,
        expires_in_days: Option<u32>,
    ) -> Result<String> {
        let pg = self.session().await?;
        tokens::create(&*pg, name, role, expires_in_days)
            .await
            .map_err(Error::catalog)
    }

    /// The live token `presented` is, if any.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<TokenRow>> {
        let pg = self.session().await?;
        tokens::authenticate(&*pg, presented)
            .await
            .map_err(Error::catalog)
    }

    /// Every API token (never the tokens themselves).
    pub async fn tokens(&self) -> Result<Vec<TokenRow>> {
        let pg = self.session().await?;
        tokens::list(&*pg).await.map_err(Error::catalog)
    }

    /// Revokes the token named `name`; `false` when no live token has that name.
    pub async fn revoke_token(&self, name: &str) -> Result<bool> {
        let pg = self.session().await?;
        tokens::revoke(&*pg, name).await.map_err(Error::catalog)
    }

    /// Appends to the audit trail: `actor` (a token's name, or `cli`) did `action` to
    /// `target`, with the configuration before and after (never secrets).
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        before: Option<&Value>,
        after: Option<&Value>,
    ) -> Result<()> {
        let pg = self.session().await?;
        let (before, after) = (
            before.map(|v| redacted(v).to_string()),
            after.map(|v| redacted(v).to_string()),
        );
        audit::record(
            &*pg,
            actor,
            action,
            target,
            before.as_deref(),
            after.as_deref(),
        )
        .await
        .map_err(Error::catalog)
    }

    /// Records a refused attempt in the audit trail: `actor` (a live token's name) tried
    /// `action` on `target`; `detail` (a JSON object) says what was asked and why it was
    /// refused. Repeats within a minute are counted in the entry's `attempts`, not added.
    pub async fn audit_refusal(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &Value,
    ) -> Result<()> {
        let pg = self.session().await?;
        audit::record_refusal(&*pg, actor, action, target, &redacted(detail).to_string())
            .await
            .map_err(Error::catalog)
    }

    /// A connection's settings as the catalog keeps them: everything but its secrets
    /// (login URL, flow, username, client id, API version, schema, Pub/Sub endpoint, …),
    /// for the audit trail's before and after.
    pub async fn connection_settings(&self, id: ConnectionId) -> Result<Value> {
        let pg = self.session().await?;
        let row = self.connection_row(&pg, id).await?;
        let mut settings = row
            .settings
            .as_deref()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        settings["schema"] = json!(row.schema);
        Ok(redacted(&settings))
    }

    /// The newest `limit` entries of the audit trail, newest first.
    pub async fn audit_trail(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        let pg = self.session().await?;
        audit::list(&*pg, limit).await.map_err(Error::catalog)
    }

    /// An object's describe as Heroku Connect's `schemas/{Object}` shows it: name, label
    /// and fields (name, label, type, length, required, createable, updateable, unique,
    /// external id, references), asked of the connection's org now.
    pub async fn describe_object(&self, connection: ConnectionId, object: &str) -> Result<Value> {
        let view = self.connection_view(connection).await?;
        let pg = self.session().await?;
        let (_, live) = self.live_connection(&pg, &view.name).await?;
        let describe = live
            .salesforce
            .describe(object)
            .await
            .map_err(|e| Error::salesforce(object, e))?;
        let fields: Vec<Value> = describe
            .fields
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "label": f.label,
                    "type": f.field_type.as_str(),
                    "length": f.length,
                    "required": !f.nillable && f.createable && !f.defaulted_on_create,
                    "createable": f.createable,
                    "updateable": f.updateable,
                    "unique": f.unique,
                    "external_id": f.external_id,
                    "reference_to": f.reference_to,
                })
            })
            .collect();
        Ok(json!({
            "name": describe.object.name,
            "label": describe.object.label,
            "fields": fields,
        }))
    }

    /// Heroku Connect's "recover": resumes the connection and every one of its mappings
    /// (a mapping stopped by an error starts again).
    pub async fn restart_connection(&self, connection: ConnectionId) -> Result<()> {
        let view = self.connection_view(connection).await?;
        self.resume_connection(&view.name).await?;
        for mapping in &view.mappings {
            self.resume_mapping(&view.name, &mapping.object).await?;
        }
        Ok(())
    }

    /// Sends a failed write of `connection` again, or ignores it, noting `who` decided.
    pub async fn decide_failed_write(
        &self,
        connection: ConnectionId,
        log_id: i64,
        decision: FailedDecision,
        who: &str,
    ) -> Result<()> {
        let view = self.connection_view(connection).await?;
        let schema = Ident::new(&view.schema).map_err(Error::catalog)?;
        let pg = self.session().await?;
        let decided = queue::decide_failed(&*pg, &schema, log_id, decision, who)
            .await
            .map_err(Error::catalog)?;
        if decided {
            Ok(())
        } else {
            Err(Error::NotFound {
                what: format!("connection {} has no failed write {log_id}", view.name),
            })
        }
    }

    /// A connection's notifications, newest first, at most `limit`.
    pub async fn notifications(
        &self,
        connection: ConnectionId,
        filter: &Filter,
        limit: i64,
    ) -> Result<Vec<Notification>> {
        let view = self.connection_view(connection).await?;
        let pg = self.session().await?;
        notifications::list(&*pg, &view.name, filter, limit)
            .await
            .map_err(Error::catalog)
    }

    /// Acknowledges a connection's notifications; returns how many.
    pub async fn acknowledge_notifications(
        &self,
        connection: ConnectionId,
        filter: &Filter,
    ) -> Result<u64> {
        let view = self.connection_view(connection).await?;
        let pg = self.session().await?;
        notifications::acknowledge(&*pg, &view.name, filter)
            .await
            .map_err(Error::catalog)
    }

    /// Creates a connection through the API. A name that exists is a conflict, whatever
    /// declared it; a setting naming a server file, a login URL or Pub/Sub endpoint off
    /// Salesforce's hosts and the configuration's `[security] allowed_login_hosts`, a
    /// reserved schema or a malformed API version are refused before anything is sent.
    /// Its credentials are then checked against the org (nothing is registered if it
    /// refuses them), and its secrets kept sealed under this engine's key, written with
    /// its row, so every process holding the key can run it.
    pub async fn create_connection(&self, config: ConnectionConfig) -> Result<ConnectionId> {
        let mut pg = self.session().await?;
        self.admissible_new_connection(&pg, &config).await?;
        let key = self.sealing_key(&config.name)?;
        let salesforce = self.client(&config)?;
        salesforce
            .describe_global()
            .await
            .map_err(|e| Error::Connection {
                connection: config.name.clone(),
                problem: format!(
                    "Salesforce refused the credentials: {}",
                    crate::error::chain(&e)
                ),
            })?;
        let sealed = secrets::seal(&key, &config)?;
        let new = Declaring::New {
            key: key.fingerprint(),
            sealed: &sealed,
        };
        self.apply_connection(&mut pg, &config, new).await?;
        self.remember(config.clone());
        connections::find(&*pg, &config.name)
            .await
            .map_err(Error::catalog)?
            .map(|row| row.id)
            .ok_or_else(|| Error::NotFound {
                what: format!("connection {} vanished from the catalog", config.name),
            })
    }

    /// Refuses what no API caller may create: a name that exists (a conflict), settings
    /// naming server files, and settings [`ConnectionConfig::check`] refuses.
    pub(super) async fn admissible_new_connection(
        &self,
        pg: &Session,
        config: &ConnectionConfig,
    ) -> Result<()> {
        if connections::find(pg, &config.name)
            .await
            .map_err(Error::catalog)?
            .is_some()
        {
            return Err(name_taken(&config.name));
        }
        config.refuse_server_files()?;
        config.check(self.allowed_hosts())
    }

    /// The key secrets are sealed with, or why connections cannot be created here.
    pub(super) fn sealing_key(&self, connection: &str) -> Result<SecretKey> {
        self.shared.options.secret_key.clone().ok_or_else(|| Error::Connection {
            connection: connection.to_owned(),
            problem: "this pgforce has no secret key to keep credentials with (set PGFORCE_SECRET_KEY or PGFORCE_SECRET_KEY_FILE; `pgforce key generate` writes one)".to_owned(),
        })
    }

    /// Seals every kept connection secret under `new` instead of this engine's key;
    /// returns how many connections were re-sealed. Nothing changes unless every one opens
    /// with the current key.
    pub async fn rotate_secret_key(&self, new: &SecretKey) -> Result<usize> {
        let Some(old) = &self.shared.options.secret_key else {
            return Err(Error::Document {
                problem: "rotating needs the current key too (PGFORCE_SECRET_KEY or PGFORCE_SECRET_KEY_FILE)".to_owned(),
            });
        };
        let mut pg = self.session().await?;
        let rows = connections::list(&*pg).await.map_err(Error::catalog)?;
        let mut resealed = Vec::new();
        for row in &rows {
            let Some((fingerprint, sealed)) = &row.sealed_secrets else {
                continue;
            };
            if fingerprint != old.fingerprint() {
                return Err(Error::Document {
                    problem: format!(
                        "connection {}'s secrets were sealed under key {fingerprint}, not the current key {}",
                        row.name,
                        old.fingerprint()
                    ),
                });
            }
            let plain = old.open(sealed)?;
            resealed.push((row.name.clone(), new.seal(&plain)?));
        }
        connections::reseal_all(&mut pg, new.fingerprint(), &resealed)
            .await
            .map_err(Error::catalog)?;
        Ok(resealed.len())
    }

    /// Changes a connection created through the API: its credentials, login URL, flow or
    /// API version (`patch` holds the settings to change, by their configuration names).
    /// The org must accept the result before anything is kept; running engines restart
    /// the connection's workers with it. A connection declared in a configuration file is
    /// changed there, and its name and schema never change.
    pub async fn update_connection(
        &self,
        id: ConnectionId,
        patch: &Map<String, Value>,
    ) -> Result<()> {
        const CHANGEABLE: [&str; 10] = [
            "login_url",
            "auth",
            "username",
            "password",
            "client_id",
            "client_secret",
            "refresh_token",
            "private_key",
            "ca_certificate",
            "api_version",
        ];
        let pg = self.session().await?;
        let row = self.connection_row(&pg, id).await?;
        let refuse = |problem: String| Error::Connection {
            connection: row.name.clone(),
            problem,
        };
        if row.sealed_secrets.is_none() {
            return Err(refuse(
                "it is declared in a configuration file; change it there".to_owned(),
            ));
        }
        // Heroku Connect's `db_key` and `schema_name` (its `connect:db:set`): pgforce syncs
        // into the one database of its configuration, into a schema fixed at creation, so
        // only their current values are taken (and change nothing).
        let mut patch = patch.clone();
        for (key, current) in [
            ("db_key", "DATABASE_URL"),
            ("schema_name", row.schema.as_str()),
        ] {
            match patch.remove(key) {
                None => {}
                Some(Value::String(value)) if value == current => {}
                Some(other) => {
                    return Err(refuse(format!(
                        "{key} cannot change from {current:?} (asked: {other}): pgforce syncs into the database of its configuration, and a connection's schema is fixed when it is created"
                    )));
                }
            }
        }
        if let Some((file, _)) = SERVER_FILE_SETTINGS
            .iter()
            .find(|(file, _)| patch.contains_key(*file))
        {
            return Err(refuse(server_file_problem(file)));
        }
        if let Some(key) = patch.keys().find(|k| !CHANGEABLE.contains(&k.as_str())) {
            return Err(refuse(format!(
                "{key} cannot be changed (changeable: {})",
                CHANGEABLE.join(", ")
            )));
        }
        let patch = &patch;
        let current = self.configuration(&row).ok_or_else(|| {
            refuse(
                "this pgforce cannot open its secrets (no secret key, or another one)".to_owned(),
            )
        })?;
        let mut settings = match serde_json::to_value(&current) {
            Ok(Value::Object(settings)) => settings,
            _ => Map::new(),
        };
        for (name, secret) in secrets::exposed(&current) {
            settings.insert(name.to_owned(), Value::String(secret));
        }
        for (name, value) in patch {
            settings.insert(name.clone(), value.clone());
        }
        // A key or CA sent as content replaces one a file named (kept from before the API
        // took content only).
        for (file, content) in SERVER_FILE_SETTINGS {
            if patch.contains_key(content) {
                settings.remove(file);
            }
        }
        let changed: ConnectionConfig = serde_json::from_value(Value::Object(settings))
            .map_err(|e| refuse(format!("settings: {e}")))?;
        changed.check(self.allowed_hosts())?;
        let key = self.shared.options.secret_key.clone().ok_or_else(|| {
            refuse("this pgforce has no secret key to keep credentials with".to_owned())
        })?;
        self.client(&changed)?
            .describe_global()
            .await
            .map_err(|e| {
                refuse(format!(
                    "Salesforce refused the credentials: {}",
                    crate::error::chain(&e)
                ))
            })?;
        let sealed = secrets::seal(&key, &changed)?;
        let name = changed.name.clone();
        self.add_connection(changed).await?;
        connections::save_secrets(&*pg, &name, key.fingerprint(), &sealed)
            .await
            .map_err(Error::catalog)
    }

    /// Opens a dashboard session for `token` (12 hours); returns the cookie's secret and
    /// the session's form token.
    pub async fn open_dashboard_session(&self, token: &TokenRow) -> Result<(String, String)> {
        let pg = self.session().await?;
        tokens::open_session(&*pg, token.id, 12)
            .await
            .map_err(Error::catalog)
    }

    /// The live dashboard session `secret` names: its token and form token.
    pub async fn dashboard_session(&self, secret: &str) -> Result<Option<(TokenRow, String)>> {
        let pg = self.session().await?;
        tokens::session(&*pg, secret).await.map_err(Error::catalog)
    }

    /// Ends a dashboard session.
    pub async fn close_dashboard_session(&self, secret: &str) -> Result<()> {
        let pg = self.session().await?;
        tokens::close_session(&*pg, secret)
            .await
            .map_err(Error::catalog)
    }

    /// Records read and written per `bucket_minutes` over the last `hours`, oldest first:
    /// `(minutes ago the slice starts, read, written)`.
    pub async fn activity(&self, hours: u32, bucket_minutes: u32) -> Result<Vec<(i64, i64, i64)>> {
        let pg = self.session().await?;
        pgforce_store::catalog::events::activity(&*pg, hours, bucket_minutes)
            .await
            .map_err(Error::catalog)
    }

    /// A connection's catalog row, by id.
    pub(super) async fn connection_row(
        &self,
        pg: &Session,
        id: ConnectionId,
    ) -> Result<connections::ConnectionRow> {
        connections::list(pg)
            .await
            .map_err(Error::catalog)?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| Error::NotFound {
                what: format!("no connection with id {id}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth_and_other_values_kept() {
        let document = json!({
            "login_url": "https://login.salesforce.com",
            "password": "hunter2",
            "refresh_token": null,
            "asked": {"client_secret": "s", "api_version": "61.0"},
            "changed": ["password", "api_version"],
            "list": [{"private_key": "-----BEGIN"}],
        });
        assert_eq!(
            redacted(&document),
            json!({
                "login_url": "https://login.salesforce.com",
                "password": "[redacted]",
                "refresh_token": null,
                "asked": {"client_secret": "[redacted]", "api_version": "61.0"},
                "changed": ["password", "api_version"],
                "list": [{"private_key": "[redacted]"}],
            })
        );
    }
}
