//! An External Data Source of type OData 4.0, as an admin sets it up in Setup: where the
//! producer is, how to log in, and the adapter options that change the requests sent.
//!
//! Salesforce keeps these options in the source's `customConfiguration`; the control API
//! takes the same names (`inlineCountEnabled`, `pagination`, `searchEnabled`, `timeout`) plus
//! the emulator's settings for behaviour the documentation leaves open (`clientPageSize`,
//! `noCountPageSize`, `keyRead`), so a test can pin each reading.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The largest connection timeout Salesforce lets an admin set, in seconds.
pub const MAX_TIMEOUT_SECONDS: u64 = 120;
/// Rows per page asked for when Request Row Counts is on and the query's LIMIT is not
/// smaller (the documentation's "202 items").
pub const DEFAULT_CLIENT_PAGE_SIZE: u64 = 202;
/// Rows per page asked for when Request Row Counts is off (the documentation's "2000 items
/// are returned in each result set").
pub const DEFAULT_NO_COUNT_PAGE_SIZE: u64 = 2000;

/// Who drives paging: Salesforce with `$top`/`$skip`, or the producer with next links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Pagination {
    #[default]
    Client,
    Server,
}

/// How a record is read by its External ID (`GET /sobjects/X__x/{ExternalId}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyRead {
    /// `<set>?$select=…&$filter=<key> eq <value>&$top=1`, as the adapter's logged filters
    /// suggest.
    #[default]
    Filter,
    /// `<set>(<value>)?$select=…`, the OData key predicate.
    KeyPredicate,
}

/// An External Data Source as the control API takes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataSource {
    /// The source's developer name, unique in the org (case-insensitive).
    pub name: String,
    /// The service root URL; entity sets and `$metadata` are resolved against it.
    pub endpoint: String,
    /// Password Authentication with a Named Principal (HTTP Basic); anonymous when absent.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// "Request Row Counts": `$count=true` on every query (and `COUNT()` allowed).
    #[serde(default = "yes")]
    pub inline_count_enabled: bool,
    #[serde(default)]
    pub pagination: Pagination,
    /// "Enable Search"; stored and described (the objects' `searchable`), SOSL is not emulated.
    #[serde(default = "yes")]
    pub search_enabled: bool,
    /// "Connection Timeout" in seconds, at most 120.
    #[serde(default = "max_timeout")]
    pub timeout: u64,
    /// "Writable External Objects".
    #[serde(default)]
    pub writable: bool,
    /// "High Data Volume": no ID mapping, so external records carry no Salesforce `Id`.
    #[serde(default)]
    pub no_id_mapping: bool,
    /// Client-driven page size with Request Row Counts on (UNCONFIRMED reading: 202).
    #[serde(default = "client_page_size")]
    pub client_page_size: u64,
    /// Client-driven page size with Request Row Counts off (2,000).
    #[serde(default = "no_count_page_size")]
    pub no_count_page_size: u64,
    /// How a record is read by External ID (UNCONFIRMED; `FILTER` by default).
    #[serde(default)]
    pub key_read: KeyRead,
    /// A root certificate (PEM) to trust for this endpoint besides the public Web PKI roots,
    /// for producers with a private CA (Salesforce takes certificates in Setup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// The HTTP client for a source with its own root certificate, built by
    /// [`DataSource::prepare`].
    #[serde(skip)]
    pub client: Option<reqwest::Client>,
}

fn yes() -> bool {
    true
}

fn max_timeout() -> u64 {
    MAX_TIMEOUT_SECONDS
}

fn client_page_size() -> u64 {
    DEFAULT_CLIENT_PAGE_SIZE
}

fn no_count_page_size() -> u64 {
    DEFAULT_NO_COUNT_PAGE_SIZE
}

impl DataSource {
    /// Checks the settings an admin could not save in Setup, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        let valid_name = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && self.name.starts_with(|c: char| c.is_ascii_alphabetic());
        if !valid_name {
            return Err(format!(
                "name {:?}: a developer name starts with a letter and holds only letters, digits and underscores",
                self.name
            ));
        }
        let url = reqwest::Url::parse(&self.endpoint)
            .map_err(|e| format!("endpoint {:?}: not a URL ({e})", self.endpoint))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "endpoint {:?}: the scheme must be http or https",
                self.endpoint
            ));
        }
        if self.timeout == 0 || self.timeout > MAX_TIMEOUT_SECONDS {
            return Err(format!(
                "timeout {}: the connection timeout is 1 to {MAX_TIMEOUT_SECONDS} seconds",
                self.timeout
            ));
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(
                "username and password: Password Authentication needs both, anonymous neither"
                    .to_owned(),
            );
        }
        for (setting, value) in [
            ("clientPageSize", self.client_page_size),
            ("noCountPageSize", self.no_count_page_size),
        ] {
            if value == 0 || value > DEFAULT_NO_COUNT_PAGE_SIZE {
                return Err(format!(
                    "{setting} {value}: a page holds 1 to {DEFAULT_NO_COUNT_PAGE_SIZE} rows"
                ));
            }
        }
        Ok(())
    }

    /// Builds the source's own HTTP client when it trusts an extra root certificate.
    pub fn prepare(&mut self) -> Result<(), String> {
        let Some(pem) = &self.ca_pem else {
            return Ok(());
        };
        let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|e| format!("caPem: not PEM certificates ({e})"))?;
        if certificates.is_empty() {
            return Err("caPem: holds no PEM certificate".to_owned());
        }
        let client = certificates
            .into_iter()
            .fold(super::callout::builder(), |b, c| b.add_root_certificate(c))
            .build()
            .map_err(|e| format!("caPem: the HTTP client could not be built ({e})"))?;
        self.client = Some(client);
        Ok(())
    }

    /// The service root with a trailing slash, so relative paths resolve under it.
    pub fn service_root(&self) -> String {
        if self.endpoint.ends_with('/') {
            self.endpoint.clone()
        } else {
            format!("{}/", self.endpoint)
        }
    }

    /// The connection timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }

    /// Rows per client-driven page for these settings.
    pub fn client_page(&self) -> u64 {
        if self.inline_count_enabled {
            self.client_page_size
        } else {
            self.no_count_page_size
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(json: &str) -> DataSource {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_follow_a_new_odata_4_source() {
        let s = source(r#"{"name":"Archive","endpoint":"http://h/odata/v4/x"}"#);
        assert!(s.inline_count_enabled);
        assert_eq!(s.pagination, Pagination::Client);
        assert_eq!(s.timeout, 120);
        assert_eq!(s.client_page(), 202);
        assert_eq!(s.service_root(), "http://h/odata/v4/x/");
        s.validate().unwrap();
    }

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        let s = source(r#"{"name":"A","endpoint":"http://h/","timeout":121}"#);
        assert!(s.validate().unwrap_err().starts_with("timeout 121"));
        let s = source(r#"{"name":"A","endpoint":"ftp://h/"}"#);
        assert!(s.validate().unwrap_err().contains("scheme"));
        let s = source(r#"{"name":"A","endpoint":"http://h/","username":"u"}"#);
        assert!(s.validate().unwrap_err().contains("password"));
        let s = source(r#"{"name":"1A","endpoint":"http://h/"}"#);
        assert!(s.validate().unwrap_err().starts_with("name"));
    }
}
