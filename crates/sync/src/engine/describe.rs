//! Connections and mappings as the management API shows them: catalog rows with their
//! live states, Heroku Connect's mapping `config` objects and `counts`, and the failed
//! writes of the last day; plus the API's tokens and audit trail. Secrets never appear
//! here.

use pgforce_store::catalog::audit::{self, AuditEntry};
use pgforce_store::catalog::notifications::{self, Filter, Notification};
use pgforce_store::catalog::tokens::{self, Role, TokenRow};
use pgforce_store::catalog::{connections, mappings};

use crate::SecretKeys;
use crate::config::{ConnectionConfig, SERVER_FILE_SETTINGS, server_file_problem};
use crate::secrets;
use pgforce_store::trigger_log::queue::{self, FailedDecision, FailedWrite};
use pgforce_store::{ConnectionId, Ident, MappingId, Session};
use serde_json::{Map, Value, json};

use super::Engine;
use super::setup::{Declaring, name_taken};
use crate::call_budget::Viewer;
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

/// At most this many failed writes are listed.
const FAILED_WRITES_SHOWN: i64 = 1000;

impl Engine {
    /// Changes Salesforce refused in the last 24 hours: a connection's, or one mapping's.
    pub async fn failed_writes(
        &self,
        connection: ConnectionId,
        mapping: Option<MappingId>,
    ) -> Result<Vec<FailedWrite>> {
        let pg = self.session().await?;
        let row = self.connection_row(&pg, connection).await?;
        let table = match mapping {
            Some(id) => Some(
                mappings::get(&*pg, id)
                    .await
                    .map_err(Error::catalog)?
                    .filter(|m| m.connection == connection)
                    .map(|m| m.table)
                    .ok_or_else(|| Error::NotFound {
                        what: format!("no mapping with id {id} in connection {}", row.name),
                    })?,
            ),
            None => None,
        };
        let schema = Ident::new(&row.schema).map_err(Error::catalog)?;
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
    /// Kept for [`super::views::DESCRIBE_FRESH`]; asking anew is charged to `viewer`.
    pub async fn describe_object(
        &self,
        connection: ConnectionId,
        object: &str,
        viewer: Viewer<'_>,
    ) -> Result<Value> {
        let key = (connection, object.to_owned());
        if let Some(shown) = self.shared.views.describes.fresh(&key) {
            return Ok(shown);
        }
        let live = {
            let pg = self.session().await?;
            let row = self.connection_row(&pg, connection).await?;
            self.live(&row)?.ok_or_else(|| Error::Connection {
                connection: row.name.clone(),
                problem: "this process has no credentials for it".to_owned(),
            })?
        };
        if !self.shared.views.budget.spend(viewer) {
            return Err(Error::Exhausted {
                what: "this token's Salesforce calls for the hour (describes and counts it asked for); try again later".to_owned(),
            });
        }
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
        let shown = json!({
            "name": describe.object.name,
            "label": describe.object.label,
            "fields": fields,
        });
        self.shared.views.describes.keep(key, shown.clone());
        Ok(shown)
    }

    /// Heroku Connect's "recover": resumes the connection and every one of its mappings
    /// (a mapping stopped by an error starts again).
    pub async fn restart_connection(&self, connection: ConnectionId) -> Result<()> {
        let (row, listed) = {
            let pg = self.session().await?;
            let row = self.connection_row(&pg, connection).await?;
            let listed = mappings::list(&*pg, Some(connection))
                .await
                .map_err(Error::catalog)?;
            (row, listed)
        };
        self.resume_connection(&row.name).await?;
        for mapping in &listed {
            self.resume_mapping(&row.name, &mapping.object).await?;
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
        let pg = self.session().await?;
        let view = self.connection_row(&pg, connection).await?;
        let schema = Ident::new(&view.schema).map_err(Error::catalog)?;
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
        let pg = self.session().await?;
        let view = self.connection_row(&pg, connection).await?;
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
        let pg = self.session().await?;
        let view = self.connection_row(&pg, connection).await?;
        notifications::acknowledge(&*pg, &view.name, filter)
            .await
            .map_err(Error::catalog)
    }

    /// Creates a connection through the API. A name that exists is a conflict, whatever
    /// declared it; a setting naming a server file, a login URL or Pub/Sub endpoint off
    /// Salesforce's hosts and the configuration's `[security] allowed_login_hosts`, a
    /// reserved schema or a malformed API version are refused before anything is sent.
    /// Its credentials are then checked against the org (nothing is registered if it
    /// refuses them; the org that answered is recorded with it), and its secrets kept
    /// sealed under this engine's key, written with its row, so every process holding the
    /// key can run it.
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
        let id = connections::reserve_id(&*pg)
            .await
            .map_err(Error::catalog)?;
        // The login that answered names the org; renewals by consent must come from it.
        let org_id = salesforce
            .session()
            .await
            .ok()
            .and_then(|session| session.org_id().map(str::to_owned));
        let sealed = secrets::seal(&key, secrets::Owner::Connection(id), &config)?;
        let new = Declaring::New {
            id,
            key: &sealed.key,
            sealed: &sealed.bytes,
        };
        self.apply_connection(&mut pg, &config, new).await?;
        self.remember(config);
        if let Some(org_id) = &org_id {
            connections::set_org_id(&*pg, id, org_id)
                .await
                .map_err(Error::catalog)?;
        }
        Ok(id)
    }

    /// Refuses what no API caller may create: a name that exists (a conflict), settings
    /// naming server files, and settings [`ConnectionConfig::check`] refuses.
    pub(crate) async fn admissible_new_connection(
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

    /// The keys secrets are sealed with (the first) and opened with, or why connections
    /// cannot be created here.
    pub(crate) fn sealing_key(&self, connection: &str) -> Result<SecretKeys> {
        self.shared.options.secret_keys.clone().ok_or_else(|| Error::Connection {
            connection: connection.to_owned(),
            problem: "this pgforce has no secret key to keep credentials with (set PGFORCE_SECRET_KEY or PGFORCE_SECRET_KEY_FILE; `pgforce key generate` writes one)".to_owned(),
        })
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
        let key = self.shared.options.secret_keys.clone().ok_or_else(|| {
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
        let sealed = secrets::seal(&key, secrets::Owner::Connection(row.id), &changed)?;
        let name = changed.name.clone();
        self.add_connection(changed).await?;
        connections::save_secrets(&*pg, &name, &sealed.key, &sealed.bytes)
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
