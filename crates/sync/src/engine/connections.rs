//! Connections created and changed at run time through the API: checked against the org
//! before anything is kept, secrets sealed under the operator's key with their row; and
//! Heroku Connect's "recover".

use pgforce_store::catalog::{connections, mappings};
use pgforce_store::{ConnectionId, Session};
use serde_json::{Map, Value};

use crate::SecretKeys;
use crate::config::{ConnectionConfig, SERVER_FILE_SETTINGS, server_file_problem};
use crate::secrets;

use super::Engine;
use super::setup::{Declaring, name_taken};
use crate::error::{Error, Result};

/// How many of the tables already in a schema a refusal names.
const SCHEMA_HOLDINGS_NAMED: i64 = 5;

impl Engine {
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
        config.check(self.allowed_hosts())?;
        // Syncing over tables pgforce did not create is taking them over: something an
        // operator declares on purpose in the configuration file, never a side effect of
        // an API call that happens to name their schema. (A schema another connection has
        // is refused as such when the connection is registered.)
        let owned = connections::list(pg)
            .await
            .map_err(Error::catalog)?
            .iter()
            .any(|row| row.schema == config.schema);
        if owned {
            return Ok(());
        }
        let held = pgforce_store::ddl::relations_in(pg, &config.schema, SCHEMA_HOLDINGS_NAMED)
            .await
            .map_err(Error::catalog)?;
        if held.is_empty() {
            return Ok(());
        }
        Err(Error::Connection {
            connection: config.name.clone(),
            problem: format!(
                "schema_name: schema {} already holds tables pgforce did not create ({}); choose another schema, or declare the connection in the configuration file to take them over on purpose",
                config.schema,
                held.join(", ")
            ),
        })
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
}
