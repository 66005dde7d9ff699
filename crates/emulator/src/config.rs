//! How an emulator is set up: credentials, limits, session lifetime, faults.
//!
//! Every setting has the default a new user needs to point a client at the emulator without
//! reading anything else (`admin@example.com` / `pgforce`, consumer key and secret `pgforce`).

use std::time::Duration;

use crate::faults::FaultConfig;
use crate::org::SchemaFile;

/// Default username of the org's administrator.
pub const DEFAULT_USERNAME: &str = "admin@example.com";
/// Default password of the org's administrator.
pub const DEFAULT_PASSWORD: &str = "pgforce";
/// Default consumer key (OAuth `client_id`) of the connected app.
pub const DEFAULT_CLIENT_ID: &str = "pgforce";
/// Default consumer secret (OAuth `client_secret`) of the connected app.
pub const DEFAULT_CLIENT_SECRET: &str = "pgforce";
/// Default refresh token the org accepts from the start.
pub const DEFAULT_REFRESH_TOKEN: &str = "pgforce-refresh-token";
/// Default number the org's Id is minted from (`00D000000000001AAA`-like).
pub const DEFAULT_ORG_NUMBER: u64 = 1;
/// The newest API version the emulator serves, and the one it advertises.
pub const LATEST_API_VERSION: &str = "66.0";
/// The Pub/Sub API's port, as Salesforce's (`api.pubsub.salesforce.com:7443`).
pub const DEFAULT_PUBSUB_PORT: u16 = 7443;
/// How long an idle Pub/Sub subscription waits before a keepalive, as Salesforce (270 s).
pub const DEFAULT_PUBSUB_KEEPALIVE: Duration = Duration::from_secs(270);

/// Emulator settings.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The administrator's username (also the only user that can log in).
    pub username: String,
    /// The administrator's password.
    pub password: String,
    /// Security token appended to the password by clients that send one (SOAP login); empty
    /// means the password alone is accepted, and so is the password followed by any token.
    pub security_token: String,
    /// Consumer key of the connected app.
    pub client_id: String,
    /// Consumer secret of the connected app.
    pub client_secret: String,
    /// A refresh token valid from the start (more can be minted through the control API).
    pub refresh_token: String,
    /// The number the org's Id (`00D…`) is minted from: emulators with different numbers
    /// are different orgs, as two Salesforce orgs behind one login page are (a consent
    /// given in one names its org in the token answer's `id`).
    pub org_number: u64,
    /// PEM of the public key or certificate that verifies JWT bearer assertions; without one,
    /// assertions are checked for issuer, subject, audience and expiry only.
    pub jwt_public_key_pem: Option<String>,
    /// How long an access token stays valid.
    pub session_lifetime: Duration,
    /// The org's daily API request allocation.
    pub daily_api_limit: u64,
    /// The URL clients are told to use (`instance_url`, SOAP `serverUrl`); by default the
    /// scheme, host and port the login request came in on.
    pub public_url: Option<String>,
    /// Custom objects and fields on top of the standard objects.
    pub schema_files: Vec<SchemaFile>,
    /// Faults and latency in force from the start.
    pub faults: FaultConfig,
    /// How long a CometD `/meta/connect` is held open when no event arrives (Salesforce:
    /// 110 seconds; tests shorten it).
    pub cometd_timeout: Duration,
    /// How long a CometD client may take to reconnect after a connect was answered before
    /// the server forgets it and its subscriptions (Salesforce: 40 seconds).
    pub cometd_client_expiry: Duration,
    /// How long an idle Pub/Sub subscription waits before it is sent an empty
    /// `FetchResponse` (keepalive); tests shorten it.
    pub pubsub_keepalive: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            username: DEFAULT_USERNAME.to_owned(),
            password: DEFAULT_PASSWORD.to_owned(),
            security_token: String::new(),
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
            refresh_token: DEFAULT_REFRESH_TOKEN.to_owned(),
            org_number: DEFAULT_ORG_NUMBER,
            jwt_public_key_pem: None,
            session_lifetime: Duration::from_secs(2 * 3600),
            daily_api_limit: 100_000,
            public_url: None,
            schema_files: Vec::new(),
            faults: FaultConfig::default(),
            cometd_timeout: Duration::from_secs(110),
            cometd_client_expiry: Duration::from_secs(40),
            pubsub_keepalive: DEFAULT_PUBSUB_KEEPALIVE,
        }
    }
}
