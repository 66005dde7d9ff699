//! How the server treats its clients (the configuration file's `[server]`): the time limits
//! and the connection cap that keep slow or idle clients from holding the process's file
//! descriptors, and the token a Prometheus scraper shows. Addresses and TLS files are
//! `pgforce run` flags; these are the settings an operator tunes once per deployment.

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Seconds a client has to send a request's headers (default 10), counted from the
    /// moment the connection waits for them: a new connection, or a kept-alive one after
    /// its last answer. The connection is then closed.
    #[serde(default = "default_header_read_timeout_seconds")]
    pub header_read_timeout_seconds: u64,
    /// Seconds a request has from its headers to its answer (default 60), reading its
    /// body included; it is then answered `503` with `{"id": "request_timeout"}`.
    #[serde(default = "default_request_timeout_seconds")]
    pub request_timeout_seconds: u64,
    /// Connections open at once on each listener (default 512). Beyond it, new clients
    /// wait in the system's queue until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// When set, `/metrics` answers only requests that carry it as
    /// `Authorization: Bearer <token>`; they also learn why `/readyz` fails.
    #[serde(default)]
    pub metrics_token: Option<SecretString>,
    /// Salesforce calls (record counts in views, describes) one API token's requests may
    /// cause per hour (default 600): the org's daily API allocation is the sync's, and a
    /// token polling views cannot spend it. Past it, views show the last counts known and
    /// describes answer `429`.
    #[serde(default = "default_salesforce_calls_per_token_hour")]
    pub salesforce_calls_per_token_hour: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout_seconds: default_header_read_timeout_seconds(),
            request_timeout_seconds: default_request_timeout_seconds(),
            max_connections: default_max_connections(),
            metrics_token: None,
            salesforce_calls_per_token_hour: default_salesforce_calls_per_token_hour(),
        }
    }
}

fn default_header_read_timeout_seconds() -> u64 {
    10
}

fn default_request_timeout_seconds() -> u64 {
    60
}

fn default_max_connections() -> usize {
    512
}

fn default_salesforce_calls_per_token_hour() -> u32 {
    pgforce_sync::DEFAULT_CALLS_PER_TOKEN_HOUR
}

impl ServerConfig {
    /// Refuses settings that would serve nobody; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            (
                "header_read_timeout_seconds",
                self.header_read_timeout_seconds,
            ),
            ("request_timeout_seconds", self.request_timeout_seconds),
        ] {
            if value == 0 {
                return Err(format!("[server] {name}: must be at least 1 second"));
            }
        }
        if self.max_connections == 0 {
            return Err("[server] max_connections: must be at least 1".to_owned());
        }
        if self.salesforce_calls_per_token_hour == 0 {
            return Err(
                "[server] salesforce_calls_per_token_hour: must be at least 1 (views and describes need a call now and then)"
                    .to_owned(),
            );
        }
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|token| token.expose_secret().trim().is_empty())
        {
            return Err(
                "[server] metrics_token: is empty; set a token or remove the setting".to_owned(),
            );
        }
        Ok(())
    }

    pub(crate) fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_seconds)
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_and_an_empty_token_are_refused_by_name() {
        let zero_headers = ServerConfig {
            header_read_timeout_seconds: 0,
            ..ServerConfig::default()
        };
        assert!(
            zero_headers
                .validate()
                .is_err_and(|e| e.contains("header_read_timeout_seconds"))
        );
        let no_connections = ServerConfig {
            max_connections: 0,
            ..ServerConfig::default()
        };
        assert!(
            no_connections
                .validate()
                .is_err_and(|e| e.contains("max_connections"))
        );
        let empty_token = ServerConfig {
            metrics_token: Some(SecretString::from(" ")),
            ..ServerConfig::default()
        };
        assert!(
            empty_token
                .validate()
                .is_err_and(|e| e.contains("metrics_token"))
        );
        assert!(ServerConfig::default().validate().is_ok());
    }
}
