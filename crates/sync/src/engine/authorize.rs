//! The OAuth web-server flow, for orgs where a person must consent: pgforce sends the
//! person to Salesforce's consent page and, when Salesforce sends them back with a code,
//! exchanges it (with the PKCE verifier it kept) for a refresh token — then creates the
//! connection, or renews the credentials of an existing one, exactly as the API's create
//! and change do (checked against the org, secrets sealed under the operator's key).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pgforce_salesforce::SecretString;
use pgforce_store::ConnectionId;
use pgforce_store::catalog::authorizations::{self, Authorization};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::ExposeSecret as _;
use serde_json::{Map, Value};

use super::Engine;
use crate::config::{AuthKind, ConnectionConfig};
use crate::error::{Error, Result};
use crate::secrets::{self, Owner, Sealed};

/// What a finished consent did.
#[derive(Debug, Clone)]
pub struct Authorized {
    /// The connection created or renewed.
    pub connection: ConnectionId,
    /// Where the person asked to go next.
    pub next_url: Option<String>,
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

/// PKCE's S256 challenge of a verifier.
fn challenge(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

impl Engine {
    /// Starts the consent for a connection to create (`config` without a refresh token,
    /// `auth = "refresh_token"`); returns the URL to send the person to.
    pub async fn authorize_new_connection(
        &self,
        config: ConnectionConfig,
        redirect_uri: &str,
        next_url: Option<String>,
    ) -> Result<String> {
        let pg = self.session().await?;
        self.admissible_new_connection(&pg, &config).await?;
        let key = self.sealing_key(&config.name)?;
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
                redirect_uri: redirect_uri.to_owned(),
                login_url: None,
                next_url,
            },
        )
        .await
    }

    /// Starts the consent renewing an API-created connection's credentials, at its own
    /// login URL or at `login_url` (which the connection then keeps); returns the URL to
    /// send the person to.
    pub async fn authorize_connection(
        &self,
        id: ConnectionId,
        redirect_uri: &str,
        next_url: Option<String>,
        login_url: Option<String>,
    ) -> Result<String> {
        let pg = self.session().await?;
        let row = self.connection_row(&pg, id).await?;
        let refuse = |problem: &str| Error::Connection {
            connection: row.name.clone(),
            problem: problem.to_owned(),
        };
        if row.sealed_secrets.is_none() {
            return Err(refuse(
                "it is declared in a configuration file; change it there",
            ));
        }
        let mut config = self.configuration(&row).ok_or_else(|| {
            refuse("this pgforce cannot open its secrets (no secret key, or another one)")
        })?;
        if let Some(url) = &login_url {
            config.login_url.clone_from(url);
            config.check(self.allowed_hosts())?;
        }
        self.start_consent(
            &config,
            Authorization {
                state: random(32)?,
                connection: Some(id),
                settings: None,
                sealed_secrets: None,
                code_verifier: random(48)?,
                redirect_uri: redirect_uri.to_owned(),
                login_url,
                next_url,
            },
        )
        .await
    }

    async fn start_consent(
        &self,
        config: &ConnectionConfig,
        pending: Authorization,
    ) -> Result<String> {
        let url = pgforce_salesforce::authorize_url(
            &config.login_url,
            &config.client_id,
            &pending.redirect_uri,
            &pending.state,
            &challenge(&pending.code_verifier),
        );
        let pg = self.session().await?;
        authorizations::save(&*pg, &pending)
            .await
            .map_err(Error::catalog)?;
        Ok(url)
    }

    /// Finishes a consent Salesforce sent back with `code` and `state`: exchanges the code
    /// for a refresh token, then creates or renews the connection.
    pub async fn complete_authorization(&self, state: &str, code: &str) -> Result<Authorized> {
        let pg = self.session().await?;
        let pending = authorizations::take(&*pg, state)
            .await
            .map_err(Error::catalog)?
            .ok_or_else(|| Error::NotFound {
                what:
                    "no consent in progress with this state (it was used, or is over an hour old)"
                        .to_owned(),
            })?;
        let mut config =
            match (&pending.connection, &pending.settings) {
                (Some(id), _) => {
                    let row = self.connection_row(&pg, *id).await?;
                    let mut config = self.configuration(&row).ok_or_else(|| Error::Connection {
                        connection: row.name.clone(),
                        problem:
                            "this pgforce cannot open its secrets (no secret key, or another one)"
                                .to_owned(),
                    })?;
                    if let Some(url) = &pending.login_url {
                        config.login_url.clone_from(url);
                    }
                    config
                }
                (None, Some(settings)) => {
                    let mut config: ConnectionConfig =
                        serde_json::from_str(settings).map_err(|e| Error::Document {
                            problem: format!("the consent's settings are not a connection: {e}"),
                        })?;
                    let key = self.shared.options.secret_keys.as_ref().ok_or_else(|| {
                        Error::Connection {
                            connection: config.name.clone(),
                            problem: "this pgforce has no secret key to open the consent's secrets"
                                .to_owned(),
                        }
                    })?;
                    if let Some(sealed) = &pending.sealed_secrets {
                        let (owner, sealed) = (Owner::Consent(&pending.state), Sealed::of(sealed));
                        secrets::unseal_into(key, owner, &sealed, &mut config)?;
                    }
                    config
                }
                (None, None) => {
                    return Err(Error::Document {
                        problem: "the consent names neither a connection nor settings".to_owned(),
                    });
                }
            };
        // Only the login URL and the trusted CA of the settings matter for the exchange;
        // the code and client secret go to an allowed host only.
        config.check(self.allowed_hosts())?;
        let mut client_config = pgforce_salesforce::ClientConfig::new(
            config.login_url.clone(),
            pgforce_salesforce::Credentials::AccessToken {
                instance_url: config.login_url.clone(),
                access_token: SecretString::from(String::new()),
            },
        );
        client_config.allowed_hosts = self.allowed_hosts().clone();
        client_config.extra_root_certificate_pem = config.extra_ca()?;
        let client_secret = config
            .client_secret
            .as_ref()
            .map(|s| s.expose_secret().to_owned());
        let refresh_token = pgforce_salesforce::exchange_authorization_code(
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
        let connection = match pending.connection {
            Some(id) => {
                let mut patch = Map::new();
                patch.insert("auth".to_owned(), Value::String("refresh_token".to_owned()));
                patch.insert(
                    "refresh_token".to_owned(),
                    Value::String(refresh_token.expose_secret().to_owned()),
                );
                if let Some(url) = pending.login_url {
                    patch.insert("login_url".to_owned(), Value::String(url));
                }
                self.update_connection(id, &patch).await?;
                id
            }
            None => {
                config.auth = AuthKind::RefreshToken;
                config.refresh_token = Some(refresh_token);
                self.create_connection(config).await?
            }
        };
        Ok(Authorized {
            connection,
            next_url: pending.next_url,
        })
    }
}
