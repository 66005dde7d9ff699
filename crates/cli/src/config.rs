//! The configuration file: `[database]`, `[engine]`, `[server]`, `[security]` and
//! `[[connection]]` with their mappings.
//!
//! String values may name environment variables as `${NAME}` (so secrets stay out of the
//! file); `DATABASE_URL` in the environment overrides `database.url`. Unknown keys, a
//! missing variable or a malformed file are errors that name the key and the file.

use std::path::Path;

use anyhow::{Context, bail};
use pgforce_sync::config::ConnectionConfig;
use pgforce_sync::{Engine, EngineOptions};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the catalog and the synced tables live.
    pub database: DatabaseConfig,
    /// How the engine runs in this process.
    #[serde(default)]
    pub engine: pgforce_sync::config::RuntimeConfig,
    /// How `pgforce run`'s HTTP server treats its clients.
    #[serde(default)]
    pub server: pgforce_server::ServerConfig,
    /// Where secrets may be sent besides Salesforce's own hosts.
    #[serde(default)]
    pub security: pgforce_sync::config::SecurityConfig,
    /// The orgs to sync.
    #[serde(default, rename = "connection")]
    pub connections: Vec<ConnectionConfig>,
    /// Where notifications are delivered.
    #[serde(default, rename = "webhook")]
    pub webhooks: Vec<pgforce_sync::config::WebhookConfig>,
}

/// `[database]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Postgres connection URL or keyword/value string; shown only through
    /// [`pgforce_store::redact_conninfo`], which hides its password.
    pub url: String,
    /// The most sessions pgforce keeps open on this database for API requests, metric
    /// scrapes and commands (at least 1). Readers, writers, subscribers and their leases
    /// open their own sessions besides; a request that finds every pooled session busy
    /// waits up to 10 seconds, then fails (503 from the API).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

fn default_pool_size() -> usize {
    pgforce_sync::DEFAULT_POOL_SIZE
}

impl DatabaseConfig {
    /// Refuses settings that cannot work, naming them.
    fn validate(&self) -> anyhow::Result<()> {
        if self.pool_size == 0 {
            bail!("[database] pool_size must be at least 1, got 0");
        }
        Ok(())
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &pgforce_store::redact_conninfo(&self.url))
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// Replaces `${NAME}` in every string of a TOML document.
fn interpolate(value: &mut toml::Value, path: &str) -> anyhow::Result<()> {
    match value {
        toml::Value::String(text) => {
            let mut out = String::with_capacity(text.len());
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                let end = after
                    .find('}')
                    .with_context(|| format!("{path}: unterminated ${{ in value"))?;
                let name = &after[..end];
                let value = std::env::var(name)
                    .with_context(|| format!("{path}: environment variable {name} is not set"))?;
                out.push_str(&value);
                rest = &after[end + 1..];
            }
            out.push_str(rest);
            *text = out;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &format!("{path}[{i}]"))?;
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                let inner = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                interpolate(item, &inner)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Reads, interpolates and checks a configuration file.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let mut document: toml::Value = toml::from_str(&text)
        .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
    interpolate(&mut document, "").with_context(|| format!("config file {}", path.display()))?;
    let mut config: Config = document
        .try_into()
        .with_context(|| format!("config file {}", path.display()))?;
    if let Ok(url) = std::env::var("DATABASE_URL") {
        config.database.url = url;
    }
    config
        .database
        .validate()
        .with_context(|| format!("config file {}", path.display()))?;
    config
        .server
        .validate()
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("config file {}", path.display()))?;
    for webhook in &config.webhooks {
        webhook
            .check()
            .with_context(|| format!("config file {}", path.display()))?;
    }
    if config.connections.is_empty() {
        bail!("config file {}: no [[connection]] to sync", path.display());
    }
    let allowed = config
        .security
        .allowed_hosts()
        .with_context(|| format!("config file {}", path.display()))?;
    for connection in &config.connections {
        connection
            .check(&allowed)
            .with_context(|| format!("config file {}", path.display()))?;
    }
    Ok(config)
}

/// The engine on the configuration's database, with its connections declared and run as
/// its `[engine]` says; `load_progress` shows loads (progress bars).
pub async fn open_engine(
    config: &Config,
    load_progress: Option<pgforce_sync::LoadProgress>,
) -> anyhow::Result<Engine> {
    let options = EngineOptions {
        load_progress,
        webhooks: config.webhooks.clone(),
        secret_keys: secret_keys()?,
        allowed_hosts: config.security.allowed_hosts()?,
        pool_size: config.database.pool_size,
        calls_per_token_hour: config.server.salesforce_calls_per_token_hour,
        ..EngineOptions::from_config(&config.engine)
    };
    Engine::open(&config.database.url, config.connections.clone(), options)
        .await
        .with_context(|| {
            format!(
                "opening the catalog at {}",
                pgforce_store::redact_conninfo(&config.database.url)
            )
        })
}

/// The keys that seal and open connection secrets: `PGFORCE_SECRET_KEY`, or the file
/// `PGFORCE_SECRET_KEY_FILE` names, each holding one key (base64) or several separated by
/// commas or whitespace, the sealing one first; none when neither is set.
pub fn secret_keys() -> anyhow::Result<Option<pgforce_sync::SecretKeys>> {
    let text = match (
        std::env::var("PGFORCE_SECRET_KEY"),
        std::env::var("PGFORCE_SECRET_KEY_FILE"),
    ) {
        (Ok(text), _) => text,
        (Err(_), Ok(path)) => std::fs::read_to_string(&path).with_context(|| {
            format!("reading the secret key file {path} (PGFORCE_SECRET_KEY_FILE)")
        })?,
        (Err(_), Err(_)) => return Ok(None),
    };
    pgforce_sync::SecretKeys::parse(&text)
        .map(Some)
        .context("the secret key (PGFORCE_SECRET_KEY or PGFORCE_SECRET_KEY_FILE)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_interpolated_and_missing_ones_named() {
        let mut value: toml::Value =
            toml::from_str("a = \"x-${PATH}-y\"\nb = [\"${PGFORCE_SURELY_UNSET}\"]").unwrap();
        let error = interpolate(&mut value, "").unwrap_err().to_string();
        assert!(
            error.contains("b[0]") && error.contains("PGFORCE_SURELY_UNSET"),
            "{error}"
        );
        let mut value: toml::Value = toml::from_str("a = \"x-${PATH}-y\"").unwrap();
        interpolate(&mut value, "").unwrap();
        assert_eq!(
            value["a"].as_str().unwrap(),
            format!("x-{}-y", std::env::var("PATH").unwrap())
        );
    }

    #[test]
    fn a_pool_of_no_sessions_is_refused_naming_the_setting() {
        let path = std::env::temp_dir().join(format!("pgforce-pool-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[database]\nurl = \"postgres://db/app\"\npool_size = 0\n",
        )
        .unwrap();
        let error = format!("{:#}", load(&path).unwrap_err());
        std::fs::remove_file(&path).unwrap();
        assert!(
            error.contains("[database] pool_size must be at least 1")
                && error.contains(&path.display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn a_webhook_with_a_blank_secret_is_refused_naming_it() {
        let path =
            std::env::temp_dir().join(format!("pgforce-webhook-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "[database]\nurl = \"postgres://db/app\"\n[[webhook]]\nurl = \"https://hooks.example.com/a\"\nsecret = \"  \"\n",
        )
        .unwrap();
        let error = format!("{:#}", load(&path).unwrap_err());
        std::fs::remove_file(&path).unwrap();
        assert!(
            error.contains("https://hooks.example.com/a") && error.contains("secret is empty"),
            "{error}"
        );
    }

    #[test]
    fn the_pool_size_defaults_to_a_few_sessions() {
        let config: DatabaseConfig = toml::from_str("url = \"postgres://db/app\"").unwrap();
        assert_eq!(config.pool_size, pgforce_sync::DEFAULT_POOL_SIZE);
    }

    #[test]
    fn debug_output_hides_the_database_password() {
        let database = DatabaseConfig {
            url: "host=db user=app password='s3 cret'".to_owned(),
            pool_size: 4,
        };
        let shown = format!("{database:?}");
        assert!(shown.contains("password=***"), "{shown}");
        assert!(!shown.contains("s3 cret"), "{shown}");
    }

    #[test]
    fn the_example_config_is_valid_and_says_what_it_shows() {
        let text = include_str!("../../../pgforce.example.toml");
        let mut document: toml::Value = toml::from_str(text).unwrap();
        // The example names secrets as ${VARIABLES}; any value will do here.
        fn fill(value: &mut toml::Value) {
            match value {
                toml::Value::String(s) if s.starts_with("${") => *s = "x".to_owned(),
                toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| fill(v)),
                toml::Value::Array(a) => a.iter_mut().for_each(fill),
                _ => {}
            }
        }
        fill(&mut document);
        let config: Config = document.try_into().unwrap();
        let connection = &config.connections[0];
        assert_eq!(
            connection.write_algorithm,
            pgforce_sync::config::WriteAlgorithm::Ordered
        );
        assert_eq!(connection.archive_retention_days, 31);
        assert_eq!(
            config.engine,
            pgforce_sync::config::RuntimeConfig::default()
        );
        assert_eq!(
            connection.mappings[0].access,
            pgforce_sync::Access::ReadWrite
        );
    }
}
