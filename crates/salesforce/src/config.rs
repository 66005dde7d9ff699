//! How a [`crate::Client`] connects: login URL, credentials, API version, transport limits,
//! retries and call budget.

use std::time::Duration;

use secrecy::SecretString;

use crate::hosts::AllowedHosts;
use crate::retry::RetryPolicy;

/// The API version used when none is configured.
pub const DEFAULT_API_VERSION: &str = "62.0";
/// Salesforce's production login URL.
pub const PRODUCTION_LOGIN_URL: &str = "https://login.salesforce.com";
/// Salesforce's sandbox login URL.
pub const SANDBOX_LOGIN_URL: &str = "https://test.salesforce.com";

/// How the client obtains an access token.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// OAuth username-password flow. `password` includes the security token when the org
    /// requires one.
    Password {
        /// Consumer key of the connected app.
        client_id: String,
        /// Consumer secret of the connected app.
        client_secret: SecretString,
        /// Salesforce username.
        username: String,
        /// Password, with the security token appended when the org needs one.
        password: SecretString,
    },
    /// OAuth refresh-token flow. The client secret is optional when the connected app does
    /// not require it.
    RefreshToken {
        /// Consumer key of the connected app.
        client_id: String,
        /// Consumer secret of the connected app.
        client_secret: Option<SecretString>,
        /// The refresh token.
        refresh_token: SecretString,
    },
    /// OAuth JWT bearer flow: an RS256 assertion signed with the connected app's key.
    JwtBearer {
        /// Consumer key of the connected app.
        client_id: String,
        /// Salesforce username.
        username: String,
        /// PEM of the RSA private key whose certificate is uploaded to the connected app.
        private_key_pem: SecretString,
        /// The `aud` claim; by default the production or sandbox login URL, as the login
        /// URL suggests.
        audience: Option<String>,
    },
    /// OAuth client-credentials flow (needs a My Domain login URL on real orgs).
    ClientCredentials {
        /// Consumer key of the connected app.
        client_id: String,
        /// Consumer secret of the connected app.
        client_secret: SecretString,
    },
    /// A session obtained elsewhere; it cannot be refreshed when it expires.
    AccessToken {
        /// Base URL of the org's instance.
        instance_url: String,
        /// The access token.
        access_token: SecretString,
    },
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where to log in: production, sandbox, a My Domain, or the emulator.
    pub login_url: String,
    /// How to log in.
    pub credentials: Credentials,
    /// REST API version, e.g. `62.0`.
    pub api_version: String,
    /// Time allowed for one HTTP request, including reading the answer.
    pub request_timeout: Duration,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Calls in flight at once; further calls wait.
    pub max_concurrency: usize,
    /// Backoff and attempt limits for retryable failures.
    pub retry: RetryPolicy,
    /// Records per query page asked for (`Sforce-Query-Options: batchSize`), 200–2000.
    pub query_batch_size: Option<u32>,
    /// Stop making calls once the org reports this many API requests used today.
    pub daily_call_budget: Option<u64>,
    /// An extra root certificate (PEM) to trust, such as the emulator's CA.
    pub extra_root_certificate_pem: Option<String>,
    /// The client id every call names in `Sforce-Call-Options` (`client=<id>`), which
    /// Salesforce copies into change events' `changeOrigin`, so the caller can tell its
    /// own changes from others'. None sends no such header.
    pub call_options_client: Option<String>,
    /// The hosts the login URL, the token endpoint's `instance_url` and the Pub/Sub
    /// endpoint may name (default: Salesforce's own, over HTTPS).
    pub allowed_hosts: AllowedHosts,
}

impl ClientConfig {
    /// A configuration with defaults for everything but where and how to log in.
    pub fn new(login_url: impl Into<String>, credentials: Credentials) -> Self {
        Self {
            login_url: login_url.into(),
            credentials,
            api_version: DEFAULT_API_VERSION.to_owned(),
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            max_concurrency: 8,
            retry: RetryPolicy::default(),
            query_batch_size: None,
            daily_call_budget: None,
            extra_root_certificate_pem: None,
            call_options_client: None,
            allowed_hosts: AllowedHosts::salesforce(),
        }
    }
}
