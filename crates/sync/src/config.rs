//! What to sync, as it is declared: connections and their mappings.
//!
//! These are the shapes of a configuration file's `[[connection]]` and
//! `[[connection.mapping]]`, of run-time additions, and (serialised, secrets left out) of
//! the `settings` the catalog keeps for each connection and mapping. Every field's doc
//! comment is the reference text for that setting. Unknown keys are errors, so a typo
//! never silently changes behaviour.

use std::time::Duration;

use pgforce_salesforce::{AllowedHosts, ClientConfig, Credentials, SecretString};
use pgforce_store::Access;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::mapping::MappingSpec;

// Every default a setting falls back to, in one place (the modules that use them re-export
// the ones they always had).

/// Seconds between a reader's schema checks, unless configured otherwise.
pub const DEFAULT_SCHEMA_CHECK_SECONDS: u64 = 600;

/// Catalog sessions the engine's pool keeps, unless configured otherwise.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// Salesforce calls an API token's requests may cause per hour, unless configured
/// otherwise (see `call_budget`).
pub const DEFAULT_CALLS_PER_TOKEN_HOUR: u32 = 600;

/// Heroku Connect's threshold for reading through the Bulk API.
pub const DEFAULT_BULK_THRESHOLD: u64 = 10_000;

/// Heroku Connect-like default for writing a run through the Bulk API.
pub const DEFAULT_BULK_WRITE_THRESHOLD: u64 = 2_000;

/// How far before its cursor a poll reads again, unless the connection says otherwise.
pub const DEFAULT_POLL_OVERLAP: Duration = Duration::from_secs(10);

/// A webhook notifications are delivered to (the configuration file's `[[webhook]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST each notification (JSON).
    pub url: String,
    /// The key of each delivery's HMAC-SHA256 signature (`X-Pgforce-Signature:
    /// t=<unix seconds>,v1=<hex>`, the tag of `"<t>.<body>"`); never empty. Write
    /// `${ENV_VAR}` to keep it out of the file.
    pub secret: SecretString,
}

impl WebhookConfig {
    /// Refuses a webhook whose deliveries anyone could sign: an empty or blank secret
    /// (often an environment variable set to nothing), naming the webhook.
    pub fn check(&self) -> Result<()> {
        use secrecy::ExposeSecret as _;
        if self.secret.expose_secret().trim().is_empty() {
            return Err(Error::Document {
                problem: format!(
                    "[[webhook]] {}: secret is empty; its deliveries would be signed with a key anyone knows",
                    self.url
                ),
            });
        }
        Ok(())
    }
}

/// What may leave this process (the configuration file's `[security]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Hosts besides Salesforce's own (`https://login.salesforce.com`,
    /// `https://test.salesforce.com`, `https://*.my.salesforce.com`, `https://*.salesforce.com`,
    /// `https://*.force.com`, `https://*.cloudforce.com`, `https://*.salesforce-setup.com`)
    /// that a connection's `login_url`, the token endpoint's `instance_url` and
    /// `pubsub_endpoint` may name: `host`, `host:port` or `*.domain`, each without a port
    /// for any port (default none). Listed hosts may be reached over plain HTTP (an
    /// emulator on loopback); Salesforce's only over HTTPS. Credentials, signed assertions
    /// and access tokens are sent nowhere else, whoever asks.
    #[serde(default)]
    pub allowed_login_hosts: Vec<String>,
}

impl SecurityConfig {
    /// The hosts connections may log in to, or which entry is not a host.
    pub fn allowed_hosts(&self) -> Result<AllowedHosts> {
        AllowedHosts::with_extra(&self.allowed_login_hosts).map_err(|problem| Error::Document {
            problem: format!("[security] allowed_login_hosts: {problem}"),
        })
    }
}

/// How the engine runs in this process (the configuration file's `[engine]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Seconds a worker's lease lasts without renewal (default 15). A standby process
    /// takes a dead one's work over after this long; a holder renews it about seven times
    /// per lifetime and stops working when it could not for this long.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
    /// Seconds every worker has to stop on SIGTERM or Ctrl-C (default 30); work still
    /// running then is abandoned, never half-recorded, and resumed by the next start.
    #[serde(default = "default_shutdown_seconds")]
    pub shutdown_seconds: u64,
    /// Days `pgforce.sync_events` keeps events (default 31, as the trigger-log archive);
    /// a running engine deletes older ones at start and every hour.
    #[serde(default = "default_events_retention_days")]
    pub events_retention_days: u64,
    /// Seconds between a reader's checks of its object's schema (default 600): fields
    /// Salesforce widened widen their columns, a mapped field deleted or hidden puts its
    /// mapping in `SCHEMA_CHANGED`. Readers also check when they start, after a read that
    /// rejected records, and when a read fails on a field.
    #[serde(default = "default_schema_check_seconds")]
    pub schema_check_seconds: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            lease_seconds: default_lease_seconds(),
            shutdown_seconds: default_shutdown_seconds(),
            events_retention_days: default_events_retention_days(),
            schema_check_seconds: default_schema_check_seconds(),
        }
    }
}

fn default_request_timeout_seconds() -> u64 {
    120
}

fn default_lease_seconds() -> u64 {
    15
}

fn default_shutdown_seconds() -> u64 {
    30
}

fn default_events_retention_days() -> u64 {
    31
}

fn default_schema_check_seconds() -> u64 {
    DEFAULT_SCHEMA_CHECK_SECONDS
}

/// How a connection logs in to Salesforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// OAuth username-password flow (`username`, `password`, `client_id`, `client_secret`).
    Password,
    /// OAuth refresh-token flow (`refresh_token`, `client_id`, optional `client_secret`).
    RefreshToken,
    /// OAuth JWT bearer flow (`username`, `client_id`, `private_key_file`).
    Jwt,
    /// OAuth client-credentials flow (`client_id`, `client_secret`).
    ClientCredentials,
}

/// How writes are grouped (used by the writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteAlgorithm {
    /// Every change in capture order.
    #[default]
    Ordered,
    /// Changes per record collapsed to their net effect.
    Merged,
}

/// What ordered writes do when Salesforce refuses an insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInsertFailure {
    /// Hold back only the later changes of that record; everything else keeps flowing.
    #[default]
    HoldDependents,
    /// Stop the whole queue until the failed insert is fixed (Heroku Connect's behaviour).
    BlockQueue,
}

/// One `[[connection]]`. Serialised (for the catalog's `settings`), its secrets and
/// mappings are left out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// A name for the connection, unique in the catalog.
    pub name: String,
    /// Postgres schema holding this org's tables (default `salesforce`).
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Where to log in: `https://login.salesforce.com`, `https://test.salesforce.com`, a My
    /// Domain, or a host `[security] allowed_login_hosts` lists (an emulator).
    pub login_url: String,
    /// Login flow.
    pub auth: AuthKind,
    /// Salesforce username (password and JWT flows).
    #[serde(default)]
    pub username: Option<String>,
    /// Password, with the security token appended if the org needs one.
    #[serde(default, skip_serializing)]
    pub password: Option<SecretString>,
    /// Consumer key of the connected app.
    pub client_id: String,
    /// Consumer secret of the connected app.
    #[serde(default, skip_serializing)]
    pub client_secret: Option<SecretString>,
    /// Refresh token (refresh-token flow).
    #[serde(default, skip_serializing)]
    pub refresh_token: Option<SecretString>,
    /// PEM file of the connected app's private key (JWT flow; configuration files only).
    #[serde(default)]
    pub private_key_file: Option<String>,
    /// The connected app's private key itself, as PEM text (JWT flow): how the management
    /// API takes it, sealed like the other secrets.
    #[serde(default, skip_serializing)]
    pub private_key: Option<SecretString>,
    /// PEM file of an extra certificate authority to trust (the emulator's; configuration
    /// files only).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// An extra certificate authority to trust, as PEM text: how the management API takes
    /// it, sealed with the secrets.
    #[serde(default, skip_serializing)]
    pub ca_certificate: Option<String>,
    /// REST API version, written `NN.N` (default 62.0).
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Records per REST query page (200–2,000; default: Salesforce's, 2,000).
    #[serde(default)]
    pub query_batch_size: Option<u32>,
    /// Seconds a Salesforce call may take before the client stops waiting (10–600; default
    /// 120). A create let go of this way, or left by a writer that died mid-call, is
    /// checked only this long again plus 10 s later, so it is never sent twice.
    #[serde(default = "default_request_timeout_seconds")]
    pub request_timeout_seconds: u64,
    /// How the writer groups changes.
    #[serde(default)]
    pub write_algorithm: WriteAlgorithm,
    /// What ordered writes do when an insert is refused (default: hold back its record only).
    #[serde(default)]
    pub on_insert_failure: OnInsertFailure,
    /// Under ordered writes, runs of at least this many changes of one table and action go
    /// as one Bulk API ingest job (default 2,000).
    #[serde(default = "default_bulk_write_threshold")]
    pub bulk_write_threshold: u64,
    /// Seconds a processed trigger-log row stays in `_trigger_log` before it moves to
    /// `_trigger_log_archive` (default 600).
    #[serde(default = "default_archive_after_seconds")]
    pub archive_after_seconds: u64,
    /// Days `_trigger_log_archive` keeps rows (default 31, as Heroku Connect).
    #[serde(default = "default_archive_retention_days")]
    pub archive_retention_days: u64,
    /// Seconds before its cursor each poll reads again, so a record committed after a
    /// later one but stamped before it is not missed (default 10; 0 turns it off).
    #[serde(default = "default_poll_overlap_seconds")]
    pub poll_overlap_seconds: u64,
    /// How Salesforce's changes reach pgforce besides polling: `auto` (the Pub/Sub API,
    /// else the Streaming API), `pubsub`, `cometd`, or `off` (polling only).
    #[serde(default)]
    pub change_events: ChangeEvents,
    /// Store what change events carry straight into read-only mappings' tables, without
    /// reading the records (default false: events only make the mapping read at once).
    #[serde(default)]
    pub apply_events: bool,
    /// The Pub/Sub API's `host:port` (default `api.pubsub.salesforce.com:7443`): a
    /// Salesforce host, or one `[security] allowed_login_hosts` lists.
    #[serde(default = "default_pubsub_endpoint")]
    pub pubsub_endpoint: String,
    /// The objects to sync.
    #[serde(default, rename = "mapping", skip_serializing)]
    pub mappings: Vec<MappingConfig>,
}

/// One `[[connection.mapping]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// The object's API name.
    pub object: String,
    /// `read_only` or `read_write`.
    pub access: Access,
    /// Fields to sync; `Id`, `SystemModstamp` and `IsDeleted` are always read.
    pub fields: Vec<String>,
    /// Seconds between polls (default 600, as Heroku Connect; any value ≥ 1).
    #[serde(default = "default_polling_seconds")]
    pub polling_seconds: u64,
    /// An External ID field to match and upsert by.
    #[serde(default)]
    pub upsert_field: Option<String>,
    /// API calls this mapping may use per day (default 30,000).
    #[serde(default = "default_max_daily_api_calls")]
    pub max_daily_api_calls: u64,
    /// Loads and polls of more records than this use Bulk API 2.0 (default 10,000).
    #[serde(default = "default_bulk_threshold")]
    pub bulk_threshold: u64,
}

fn default_schema() -> String {
    "salesforce".to_owned()
}

fn default_api_version() -> String {
    pgforce_salesforce::DEFAULT_API_VERSION.to_owned()
}

fn default_archive_after_seconds() -> u64 {
    600
}

fn default_archive_retention_days() -> u64 {
    31
}

fn default_pubsub_endpoint() -> String {
    DEFAULT_PUBSUB_ENDPOINT.to_owned()
}

/// Where Salesforce serves the Pub/Sub API.
pub const DEFAULT_PUBSUB_ENDPOINT: &str = "api.pubsub.salesforce.com:7443";

/// The client id pgforce names in `Sforce-Call-Options`, which Salesforce copies into
/// change events' `changeOrigin`: how pgforce tells its own writes from others'.
pub const CALL_OPTIONS_CLIENT: &str = "pgforce";

/// How Salesforce's changes reach pgforce besides polling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeEvents {
    /// The Pub/Sub API; the Streaming API (CometD) when Pub/Sub cannot be reached.
    #[default]
    Auto,
    /// The Pub/Sub API only.
    Pubsub,
    /// The Streaming API (CometD) only.
    Cometd,
    /// No events: mappings are polled only.
    Off,
}

fn default_poll_overlap_seconds() -> u64 {
    DEFAULT_POLL_OVERLAP.as_secs()
}

fn default_polling_seconds() -> u64 {
    600
}

fn default_bulk_write_threshold() -> u64 {
    DEFAULT_BULK_WRITE_THRESHOLD
}

fn default_bulk_threshold() -> u64 {
    DEFAULT_BULK_THRESHOLD
}

fn default_max_daily_api_calls() -> u64 {
    30_000
}

/// Settings that name a file on the server: the configuration file may use them, the
/// management API may not (with the setting that takes the content instead).
pub const SERVER_FILE_SETTINGS: [(&str, &str); 2] = [
    ("private_key_file", "private_key"),
    ("ca_file", "ca_certificate"),
];

/// Why `schema` cannot hold a connection's tables, if it cannot: pgforce's catalog and
/// Postgres's own schemas are refused.
pub fn schema_problem(schema: &str) -> Option<String> {
    let lower = schema.to_ascii_lowercase();
    if lower == "pgforce" {
        Some("\"pgforce\" holds pgforce's catalog; choose another schema".to_owned())
    } else if lower == "information_schema" || lower.starts_with("pg_") {
        Some(format!(
            "{schema:?} is PostgreSQL's (information_schema and names starting pg_ are reserved); choose another schema"
        ))
    } else {
        None
    }
}

/// Whether `version` is a Salesforce API version as Salesforce writes it (`NN.N`).
fn is_api_version(version: &str) -> bool {
    let bytes = version.as_bytes();
    bytes.len() == 4
        && bytes[0].is_ascii_digit()
        && bytes[1].is_ascii_digit()
        && bytes[2] == b'.'
        && bytes[3].is_ascii_digit()
}

impl ConnectionConfig {
    fn problem(&self, problem: String) -> Error {
        Error::Connection {
            connection: self.name.clone(),
            problem,
        }
    }

    /// Checks the settings that decide where secrets go and what is named in SQL and URLs:
    /// `login_url` and `pubsub_endpoint` on Salesforce's hosts or `allowed`, `schema` not
    /// pgforce's nor PostgreSQL's, `api_version` as `NN.N`, a key or CA given once. The
    /// error names the setting.
    pub fn check(&self, allowed: &AllowedHosts) -> Result<()> {
        allowed
            .check_url("login_url", &self.login_url)
            .map_err(|e| self.problem(e.to_string()))?;
        allowed
            .check_endpoint("pubsub_endpoint", &self.pubsub_endpoint)
            .map_err(|e| self.problem(e.to_string()))?;
        if let Some(problem) = schema_problem(&self.schema) {
            return Err(self.problem(format!("schema: {problem}")));
        }
        if !is_api_version(&self.api_version) {
            return Err(self.problem(format!(
                "api_version: {:?} is not a Salesforce API version (write NN.N, such as {})",
                self.api_version,
                pgforce_salesforce::DEFAULT_API_VERSION
            )));
        }
        for (content, file, both) in [
            (
                "private_key",
                "private_key_file",
                self.private_key.is_some() && self.private_key_file.is_some(),
            ),
            (
                "ca_certificate",
                "ca_file",
                self.ca_certificate.is_some() && self.ca_file.is_some(),
            ),
        ] {
            if both {
                return Err(self.problem(format!("give {content} or {file}, not both")));
            }
        }
        Ok(())
    }

    /// Refuses settings that name a file on the server: through the management API, a
    /// key or certificate is sent as its content.
    pub fn refuse_server_files(&self) -> Result<()> {
        for (file, set) in [
            ("private_key_file", self.private_key_file.is_some()),
            ("ca_file", self.ca_file.is_some()),
        ] {
            if set {
                return Err(self.problem(server_file_problem(file)));
            }
        }
        Ok(())
    }

    /// The client configuration for logging in to Salesforce's hosts or `allowed`, or what
    /// is missing for the chosen login flow.
    pub fn client_config(&self, allowed: &AllowedHosts) -> Result<ClientConfig> {
        let need = |value: &Option<SecretString>, key: &str| {
            value
                .clone()
                .ok_or_else(|| self.problem(format!("auth = {:?} needs {key}", self.auth)))
        };
        let username = || {
            self.username
                .clone()
                .ok_or_else(|| self.problem(format!("auth = {:?} needs username", self.auth)))
        };
        let credentials = match self.auth {
            AuthKind::Password => Credentials::Password {
                client_id: self.client_id.clone(),
                client_secret: need(&self.client_secret, "client_secret")?,
                username: username()?,
                password: need(&self.password, "password")?,
            },
            AuthKind::RefreshToken => Credentials::RefreshToken {
                client_id: self.client_id.clone(),
                client_secret: self.client_secret.clone(),
                refresh_token: need(&self.refresh_token, "refresh_token")?,
            },
            AuthKind::Jwt => {
                let pem = match (&self.private_key, &self.private_key_file) {
                    (Some(pem), _) => pem.clone(),
                    (None, Some(file)) => std::fs::read_to_string(file)
                        .map(SecretString::from)
                        .map_err(|e| {
                            self.problem(format!("reading private_key_file {file}: {e}"))
                        })?,
                    (None, None) => {
                        return Err(self.problem(
                            "auth = \"jwt\" needs private_key (or private_key_file in a configuration file)"
                                .to_owned(),
                        ));
                    }
                };
                Credentials::JwtBearer {
                    client_id: self.client_id.clone(),
                    username: username()?,
                    private_key_pem: pem,
                    audience: None,
                }
            }
            AuthKind::ClientCredentials => Credentials::ClientCredentials {
                client_id: self.client_id.clone(),
                client_secret: need(&self.client_secret, "client_secret")?,
            },
        };
        self.check(allowed)?;
        let mut config = ClientConfig::new(self.login_url.clone(), credentials);
        config.allowed_hosts = allowed.clone();
        config.api_version = self.api_version.clone();
        if let Some(size) = self.query_batch_size {
            if !(200..=2000).contains(&size) {
                return Err(self.problem(format!(
                    "query_batch_size must be between 200 and 2000 (Salesforce's range), got {size}"
                )));
            }
            config.query_batch_size = Some(size);
        }
        if !(10..=600).contains(&self.request_timeout_seconds) {
            return Err(self.problem(format!(
                "request_timeout_seconds must be between 10 and 600, got {}",
                self.request_timeout_seconds
            )));
        }
        config.request_timeout = Duration::from_secs(self.request_timeout_seconds);
        config.call_options_client = Some(CALL_OPTIONS_CLIENT.to_owned());
        config.extra_root_certificate_pem = self.extra_ca()?;
        Ok(config)
    }

    /// The extra certificate authority to trust, from `ca_certificate` or `ca_file`.
    pub(crate) fn extra_ca(&self) -> Result<Option<String>> {
        match (&self.ca_certificate, &self.ca_file) {
            (Some(pem), _) => Ok(Some(pem.clone())),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map(Some)
                .map_err(|e| self.problem(format!("reading ca_file {file}: {e}"))),
            (None, None) => Ok(None),
        }
    }

    /// How the connection's writer groups changes.
    pub(crate) fn write_policy(&self) -> WritePolicy {
        WritePolicy {
            algorithm: self.write_algorithm,
            on_insert_failure: self.on_insert_failure,
            bulk_threshold: self.bulk_write_threshold,
        }
    }

    /// How long processed trigger-log rows stay live, and the archive keeps them.
    pub(crate) fn archive_policy(&self) -> ArchivePolicy {
        ArchivePolicy {
            after: Duration::from_secs(self.archive_after_seconds),
            retention: Duration::from_secs(self.archive_retention_days.saturating_mul(86_400)),
        }
    }
}

/// How a connection's writes are grouped and what a refused insert stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WritePolicy {
    /// Ordered or merged.
    pub algorithm: WriteAlgorithm,
    /// Under ordered writes: hold back the record, or block the queue.
    pub on_insert_failure: OnInsertFailure,
    /// Under ordered writes, runs of at least this many changes of one table and action
    /// go as one Bulk API ingest job (`u64::MAX`: never).
    pub bulk_threshold: u64,
}

/// How long processed trigger-log rows stay live, and the archive keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchivePolicy {
    /// Processed rows move to the archive after this long.
    pub after: Duration,
    /// The archive keeps rows this long.
    pub retention: Duration,
}

impl Default for ArchivePolicy {
    fn default() -> Self {
        Self {
            after: Duration::from_secs(600),
            retention: Duration::from_secs(31 * 86_400),
        }
    }
}

impl Default for WritePolicy {
    fn default() -> Self {
        Self {
            algorithm: WriteAlgorithm::default(),
            on_insert_failure: OnInsertFailure::default(),
            bulk_threshold: DEFAULT_BULK_WRITE_THRESHOLD,
        }
    }
}

/// What the management API answers a setting that names a server file.
pub fn server_file_problem(setting: &str) -> String {
    let content = SERVER_FILE_SETTINGS
        .iter()
        .find(|(file, _)| *file == setting)
        .map_or("its content", |(_, content)| content);
    format!(
        "{setting}: the API takes no file paths on the server; send the PEM text itself as {content}"
    )
}

impl MappingConfig {
    /// The mapping spec, or why the settings are invalid.
    pub fn spec(&self, connection: &str) -> Result<MappingSpec> {
        if self.object.contains('.') || pgforce_salesforce::soql::name(&self.object).is_err() {
            return Err(Error::config(
                &self.object,
                format!(
                    "connection {connection}: object {:?} is not a valid Salesforce name (letters, digits and single underscores)",
                    self.object
                ),
            ));
        }
        if self.polling_seconds == 0 {
            return Err(Error::config(
                &self.object,
                format!("connection {connection}: polling_seconds must be at least 1"),
            ));
        }
        Ok(MappingSpec {
            object: self.object.clone(),
            fields: self.fields.clone(),
            access: self.access,
            upsert_field: self.upsert_field.clone(),
            polling_seconds: self.polling_seconds,
            max_daily_api_calls: self.max_daily_api_calls,
            bulk_threshold: self.bulk_threshold,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(settings: serde_json::Value) -> ConnectionConfig {
        let mut base = serde_json::json!({
            "name": "main", "login_url": "https://acme.my.salesforce.com", "auth": "password",
            "username": "u", "password": "p", "client_id": "c", "client_secret": "s",
        });
        if let (Some(base), Some(extra)) = (base.as_object_mut(), settings.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(base).unwrap_or_else(|e| panic!("{e}"))
    }

    fn problem(settings: serde_json::Value) -> String {
        connection(settings)
            .check(&AllowedHosts::salesforce())
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn reserved_schemas_are_refused_and_others_pass() {
        for schema in [
            "pgforce",
            "PGFORCE",
            "pg_catalog",
            "Pg_x",
            "information_schema",
        ] {
            assert!(schema_problem(schema).is_some(), "{schema}");
        }
        for schema in ["salesforce", "acme", "pgx", "my_pg_schema", "pgforce2"] {
            assert_eq!(schema_problem(schema), None, "{schema}");
        }
    }

    #[test]
    fn api_versions_are_written_nn_dot_n() {
        for version in ["62.0", "20.0", "66.0"] {
            assert!(is_api_version(version), "{version}");
        }
        for version in [
            "62",
            "v62.0",
            "62.00",
            "162.0",
            "6.0",
            "62.0/../x",
            "",
            "ab.c",
        ] {
            assert!(!is_api_version(version), "{version}");
        }
    }

    #[test]
    fn the_check_names_the_setting_it_refuses() {
        assert_eq!(problem(serde_json::json!({})), "");
        let cases = [
            (
                serde_json::json!({"login_url": "http://10.0.0.1:80"}),
                "login_url: http://10.0.0.1:80 is not",
            ),
            (
                serde_json::json!({"pubsub_endpoint": "10.0.0.1:7443"}),
                "pubsub_endpoint: https://10.0.0.1:7443 is not",
            ),
            (
                serde_json::json!({"schema": "pg_temp"}),
                "schema: \"pg_temp\" is PostgreSQL's",
            ),
            (
                serde_json::json!({"api_version": "62"}),
                "api_version: \"62\" is not a Salesforce API version",
            ),
            (
                serde_json::json!({"private_key": "k", "private_key_file": "f"}),
                "give private_key or private_key_file, not both",
            ),
        ];
        for (settings, expected) in cases {
            let said = problem(settings.clone());
            assert!(said.contains(expected), "{settings}: {said}");
        }
    }

    #[test]
    fn server_file_settings_are_refused_naming_the_content_setting() {
        let said = connection(serde_json::json!({"ca_file": "/dev/zero"}))
            .refuse_server_files()
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(
            said.contains("ca_file: the API takes no file paths")
                && said.contains("ca_certificate"),
            "{said}"
        );
    }
}
