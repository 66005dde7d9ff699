//! The OAuth web-server flow, for orgs where a person must consent: pgforce sends the
//! person to Salesforce's consent page and, when Salesforce sends them back with a code,
//! exchanges it (with the PKCE verifier it kept) for a refresh token — then creates the
//! connection, or renews the credentials of an existing one, exactly as the API's create
//! and change do (checked against the org, secrets sealed under the operator's key).
//!
//! Key concepts:
//! - **Browser binding.** The `state` alone would let anyone who holds it finish a consent
//!   in any browser (login CSRF: an attacker's code finished by a victim, or the reverse).
//!   So starting a consent yields a one-time *ticket* for pgforce's own start URL; opening
//!   it gives that browser a random cookie and only then sends it to Salesforce. The
//!   callback accepts the `state` only with the same cookie. The catalog keeps SHA-256
//!   hashes of the ticket and the cookie, never the values.
//! - **Same org.** A renewal must come from the org the connection syncs: the token answer
//!   names the org that consented (`id`), and pgforce records each connection's org when it
//!   learns it (creation's check, each consent).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pgforce_salesforce::SecretString;
use pgforce_store::ConnectionId;
use pgforce_store::catalog::authorizations::{self, Authorization};
use pgforce_store::catalog::connections;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret as _;
use serde_json::{Map, Value, json};

use super::Admin;
use crate::config::{AuthKind, ConnectionConfig};
use crate::error::{Error, Result};
use crate::secrets::{self, Owner, Sealed};

/// Who the audit trail names for what the callback does (a browser, not a token: the
/// entry names the token that asked for the consent as `requested_by`).
const CONSENT_ACTOR: &str = "oauth-consent";
/// The audit trail's action for a finished consent.
const AUTHORIZED_ACTION: &str = "connection.authorized";
/// The audit trail's action for a renewal refused because another org consented.
const REFUSED_ACTION: &str = "connection.authorize_refused";

/// What a finished consent did.
#[derive(Debug, Clone)]
pub struct Authorized {
    /// The connection created or renewed.
    pub connection: ConnectionId,
    /// Where the person asked to go next.
    pub next_url: Option<String>,
    /// The name of the API token that asked for the consent.
    pub requested_by: Option<String>,
    /// The org the person consented in, when Salesforce named it.
    pub org_id: Option<String>,
}

/// Who asks for a consent, and where the person goes on the way back.
#[derive(Debug, Clone)]
pub struct ConsentRequest {
    /// pgforce's callback, where Salesforce sends the person back.
    pub redirect_uri: String,
    /// Where to send the person once it is done (a path on pgforce, checked by the caller).
    pub next_url: Option<String>,
    /// The name of the API token that asks.
    pub requested_by: String,
}

/// A start ticket opened by a browser.
#[derive(Debug)]
pub struct OpenedConsent {
    /// Salesforce's consent page, where the browser goes next.
    pub consent_url: String,
    /// The cookie value the browser must show at the callback.
    pub browser_secret: String,
}

/// `n` random bytes as base64url.
fn random(n: usize) -> Result<String> {
    let mut bytes = vec![0_u8; n];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Document {
            problem: "the system's random generator failed".to_owned(),
        })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of a secret, as the catalog keeps it.
fn hash(secret: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

/// PKCE's S256 challenge of a verifier.
fn challenge(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Whether the browser at the callback is the one that opened the start ticket.
fn same_browser(bound: Option<&[u8]>, presented: Option<&str>) -> bool {
    match (bound, presented) {
        // Hashes are compared, not secrets: how long the comparison takes tells an attacker
        // nothing about a cookie value that would match.
        (Some(bound), Some(presented)) => bound == hash(presented).as_slice(),
        _ => false,
    }
}

impl Admin {
    /// Starts the consent for a connection to create (`config` without a refresh token,
    /// `auth = "refresh_token"`); returns the one-time ticket of pgforce's start URL.
    pub async fn authorize_new_connection(
        &self,
        config: ConnectionConfig,
        request: ConsentRequest,
    ) -> Result<String> {
        let pg = self.engine.session().await?;
        self.engine.admissible_new_connection(&pg, &config).await?;
        let key = self.engine.sealing_key(&config.name)?;
        let settings = serde_json::to_string(&config).map_err(|e| Error::Connection {
            connection: config.name.clone(),
            problem: format!("settings: {e}"),
        })?;
        let state = random(32)?;
        let sealed = secrets::seal(&key, Owner::Consent(&state), &config)?;
        self.start_consent(
            &config,
            Authorization {
                state,
                connection: None,
                settings: Some(settings),
                sealed_secrets: Some((sealed.key, sealed.bytes)),
                code_verifier: random(48)?,
                redirect_uri: request.redirect_uri,
                login_url: None,
                next_url: request.next_url,
                requested_by: Some(request.requested_by),
                browser_hash: None,
            },
        )
        .await
    }

    /// Starts the consent renewing an API-created connection's credentials, at its own
    /// login URL or at `login_url` (which the connection then keeps); returns the one-time
    /// ticket of pgforce's start URL.
    pub async fn authorize_connection(
        &self,
        id: ConnectionId,
        request: ConsentRequest,
        login_url: Option<String>,
    ) -> Result<String> {
        let pg = self.engine.session().await?;
        let row = self.engine.connection_row(&pg, id).await?;
        let refuse = |problem: &str| Error::Connection {
            connection: row.name.clone(),
            problem: problem.to_owned(),
        };
        if row.sealed_secrets.is_none() {
            return Err(refuse(
                "it is declared in a configuration file; change it there",
            ));
        }
        let mut config = self.engine.configuration(&row).ok_or_else(|| {
            refuse("this pgforce cannot open its secrets (no secret key, or another one)")
        })?;
        if let Some(url) = &login_url {
            config.login_url.clone_from(url);
            config.check(self.engine.allowed_hosts())?;
        }
        self.start_consent(
            &config,
            Authorization {
                state: random(32)?,
                connection: Some(id),
                settings: None,
                sealed_secrets: None,
                code_verifier: random(48)?,
                redirect_uri: request.redirect_uri,
                login_url,
                next_url: request.next_url,
                requested_by: Some(request.requested_by),
                browser_hash: None,
            },
        )
        .await
    }

    async fn start_consent(
        &self,
        config: &ConnectionConfig,
        pending: Authorization,
    ) -> Result<String> {
        let consent_url = pgforce_salesforce::authorize_url(
            &config.login_url,
            &config.client_id,
            &pending.redirect_uri,
            &pending.state,
            &challenge(&pending.code_verifier),
        );
        let ticket = random(32)?;
        let pg = self.engine.session().await?;
        authorizations::save(&*pg, &pending, &hash(&ticket), &consent_url)
            .await
            .map_err(Error::catalog)?;
        Ok(ticket)
    }

    /// Opens a start ticket for the browser that presents it: the ticket is spent and the
    /// consent bound to a new random cookie; returns Salesforce's consent page and the
    /// cookie's value.
    pub async fn open_consent(&self, ticket: &str) -> Result<OpenedConsent> {
        let browser_secret = random(32)?;
        let pg = self.engine.session().await?;
        let consent_url = authorizations::open(&*pg, &hash(ticket), &hash(&browser_secret))
            .await
            .map_err(Error::catalog)?
            .ok_or_else(|| Error::NotFound {
                what: "no consent to start with this link (it was opened already, or is over an hour old)"
                    .to_owned(),
            })?;
        Ok(OpenedConsent {
            consent_url,
            browser_secret,
        })
    }

    /// The settings of the connection a consent creates or renews.
    async fn consent_configuration(&self, pending: &Authorization) -> Result<ConnectionConfig> {
        match (&pending.connection, &pending.settings) {
            (Some(id), _) => {
                let pg = self.engine.session().await?;
                let row = self.engine.connection_row(&pg, *id).await?;
                let mut config =
                    self.engine
                        .configuration(&row)
                        .ok_or_else(|| {
                            Error::Connection {
                    connection: row.name.clone(),
                    problem: "this pgforce cannot open its secrets (no secret key, or another one)"
                        .to_owned(),
                }
                        })?;
                if let Some(url) = &pending.login_url {
                    config.login_url.clone_from(url);
                }
                Ok(config)
            }
            (None, Some(settings)) => {
                let mut config: ConnectionConfig =
                    serde_json::from_str(settings).map_err(|e| Error::Document {
                        problem: format!("the consent's settings are not a connection: {e}"),
                    })?;
                let key = self
                    .engine
                    .shared
                    .options
                    .secret_keys
                    .as_ref()
                    .ok_or_else(|| Error::Connection {
                        connection: config.name.clone(),
                        problem: "this pgforce has no secret key to open the consent's secrets"
                            .to_owned(),
                    })?;
                if let Some(sealed) = &pending.sealed_secrets {
                    let (owner, sealed) = (Owner::Consent(&pending.state), Sealed::of(sealed));
                    secrets::unseal_into(key, owner, &sealed, &mut config)?;
                }
                Ok(config)
            }
            (None, None) => Err(Error::Document {
                problem: "the consent names neither a connection nor settings".to_owned(),
            }),
        }
    }

    /// Finishes a consent Salesforce sent back with `code` and `state`, in the browser
    /// whose consent cookie is `browser` (the one that opened the start ticket): exchanges
    /// the code for a refresh token, then creates or renews the connection (or revokes the
    /// token when that fails). The consent is used up whatever the outcome.
    pub async fn complete_authorization(
        &self,
        state: &str,
        code: &str,
        browser: Option<&str>,
    ) -> Result<Authorized> {
        let pg = self.engine.session().await?;
        let pending = authorizations::take(&*pg, state)
            .await
            .map_err(Error::catalog)?
            .ok_or_else(|| Error::NotFound {
                what:
                    "no consent in progress with this state (it was used, or is over an hour old)"
                        .to_owned(),
            })?;
        drop(pg);
        let config = self.consent_configuration(&pending).await?;
        if !same_browser(pending.browser_hash.as_deref(), browser) {
            return Err(Error::Connection {
                connection: config.name.clone(),
                problem: "this browser did not start the consent (its consent cookie is missing or different); the consent is cancelled: start a new one and open its link in the browser that consents".to_owned(),
            });
        }
        // Only the login URL and the trusted CA of the settings matter for the exchange;
        // the code and client secret go to an allowed host only.
        config.check(self.engine.allowed_hosts())?;
        let mut client_config = pgforce_salesforce::ClientConfig::new(
            config.login_url.clone(),
            pgforce_salesforce::Credentials::AccessToken {
                instance_url: config.login_url.clone(),
                access_token: SecretString::from(String::new()),
            },
        );
        client_config.allowed_hosts = self.engine.allowed_hosts().clone();
        client_config.extra_root_certificate_pem = config.extra_ca()?;
        let client_secret = config
            .client_secret
            .as_ref()
            .map(|s| s.expose_secret().to_owned());
        let grant = pgforce_salesforce::exchange_authorization_code(
            &client_config,
            &config.client_id,
            client_secret.as_deref(),
            code,
            &pending.redirect_uri,
            &pending.code_verifier,
        )
        .await
        .map_err(|e| Error::Connection {
            connection: config.name.clone(),
            problem: format!(
                "Salesforce refused the authorization code: {}",
                crate::error::chain(&e)
            ),
        })?;
        let org_id = grant.org_id().map(str::to_owned);
        let name = config.name.clone();
        let applied = self
            .apply_consent(&pending, config, &grant.refresh_token, org_id.as_deref())
            .await;
        let connection = match applied {
            Ok(connection) => connection,
            Err(error) => {
                // pgforce keeps no token it was given for a consent that failed here: it is
                // revoked, so it is no use to anyone.
                if let Err(revoke) =
                    pgforce_salesforce::revoke_token(&client_config, &grant.refresh_token).await
                {
                    tracing::warn!(connection = %name, error = %crate::error::chain(&revoke), "could not revoke the refresh token of a failed consent");
                }
                return Err(error);
            }
        };
        if let Some(org_id) = &org_id {
            let pg = self.engine.session().await?;
            connections::set_org_id(&*pg, connection, org_id)
                .await
                .map_err(Error::catalog)?;
        }
        let detail = json!({ "requested_by": pending.requested_by, "org_id": org_id });
        self.audit_consent(AUTHORIZED_ACTION, &format!("connection {name}"), &detail)
            .await;
        Ok(Authorized {
            connection,
            next_url: pending.next_url,
            requested_by: pending.requested_by,
            org_id,
        })
    }

    /// Creates the connection a consent was for, or renews the one it names (refused when
    /// consented in another org), with the refresh token the consent gave.
    async fn apply_consent(
        &self,
        pending: &Authorization,
        mut config: ConnectionConfig,
        refresh_token: &SecretString,
        org_id: Option<&str>,
    ) -> Result<ConnectionId> {
        match pending.connection {
            Some(id) => {
                self.refuse_another_org(id, &config.name, pending, org_id)
                    .await?;
                let mut patch = Map::new();
                patch.insert("auth".to_owned(), Value::String("refresh_token".to_owned()));
                patch.insert(
                    "refresh_token".to_owned(),
                    Value::String(refresh_token.expose_secret().to_owned()),
                );
                if let Some(url) = pending.login_url.clone() {
                    patch.insert("login_url".to_owned(), Value::String(url));
                }
                self.engine.update_connection(id, &patch).await?;
                Ok(id)
            }
            None => {
                config.auth = AuthKind::RefreshToken;
                config.refresh_token = Some(refresh_token.clone());
                self.engine.create_connection(config).await
            }
        }
    }

    /// Refuses (and records in the audit trail) a renewal of connection `id` consented in
    /// another org than the one it syncs; a connection whose org is not known yet takes
    /// the consent's.
    async fn refuse_another_org(
        &self,
        id: ConnectionId,
        name: &str,
        pending: &Authorization,
        consented: Option<&str>,
    ) -> Result<()> {
        let pg = self.engine.session().await?;
        let Some(expected) = connections::org_id(&*pg, id)
            .await
            .map_err(Error::catalog)?
        else {
            return Ok(());
        };
        drop(pg);
        if consented.is_some_and(|org| pgforce_salesforce::same_org(org, &expected)) {
            return Ok(());
        }
        let given = consented.unwrap_or("an org Salesforce did not name");
        let problem = format!(
            "the consent was given in org {given}, but the connection syncs org {expected}: nothing changed; consent as a user of org {expected}"
        );
        let detail = json!({
            "requested_by": pending.requested_by,
            "connection_org_id": expected,
            "consented_org_id": consented,
        });
        self.audit_consent(REFUSED_ACTION, &format!("connection {name}"), &detail)
            .await;
        Err(Error::Connection {
            connection: name.to_owned(),
            problem,
        })
    }

    /// Records what the callback did in the audit trail; a failure to record is logged,
    /// not returned (the consent's outcome stands).
    async fn audit_consent(&self, action: &str, target: &str, detail: &Value) {
        if let Err(error) = self
            .audit(CONSENT_ACTOR, action, target, None, Some(detail))
            .await
        {
            tracing::error!(action, target, error = %error.chain(), "could not record a consent in the audit trail");
        }
    }
}
