//! Obtaining access tokens from the OAuth 2.0 token endpoint.
//!
//! Flows and their parameters follow Salesforce's OAuth documentation as summarised in the
//! project's `salesforce-api.md` §1: form-encoded `POST /services/oauth2/token`, a JSON
//! answer with `access_token` and `instance_url`, and `{"error", "error_description"}` on
//! failure. The JWT assertion's three-minute lifetime is what simple-salesforce uses.

use std::time::{SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::config::{ClientConfig, Credentials, PRODUCTION_LOGIN_URL, SANDBOX_LOGIN_URL};
use crate::error::{Error, Result};

/// The OAuth token endpoint's path on a login host.
const TOKEN_PATH: &str = "/services/oauth2/token";
/// The OAuth revocation endpoint's path on a login host.
const REVOKE_PATH: &str = "/services/oauth2/revoke";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime of a JWT assertion, in seconds.
const JWT_LIFETIME_SECONDS: u64 = 180;

/// A live session: the token and the instance it is for.
#[derive(Clone)]
pub struct Session {
    pub(crate) access_token: SecretString,
    /// Base URL of the org's instance, without a trailing slash.
    pub instance_url: String,
    /// Increases with every new token; lets concurrent callers tell a fresh token from the
    /// stale one they failed with.
    pub(crate) generation: u64,
    /// The org's 18-character Id, from the token answer's identity URL (`None` for a
    /// session built from a given access token).
    pub(crate) org_id: Option<String>,
}

impl Session {
    /// The access token, for handing to another HTTP client (benchmarks, tools). Never log it.
    pub fn bearer_token(&self) -> &str {
        self.access_token.expose_secret()
    }

    /// The Id of the org the session is for, when the token endpoint named it.
    pub fn org_id(&self) -> Option<&str> {
        self.org_id.as_deref()
    }
}

/// The org Id in an identity URL (`https://<login host>/id/<orgId18>/<userId18>`), the
/// way clients read it (jsforce's `parseIdUrl`): the second-to-last path segment.
pub fn org_id_of_identity_url(url: &str) -> Option<&str> {
    let mut segments = url.trim_end_matches('/').rsplit('/');
    let _user = segments.next()?;
    let org = segments.next()?;
    let marker = segments.next()?;
    (marker == "id" && (org.len() == 15 || org.len() == 18) && org.starts_with("00D"))
        .then_some(org)
}

/// Whether two org Ids name the same org (an 18-character Id is the 15-character one with
/// a case-checking suffix).
pub fn same_org(a: &str, b: &str) -> bool {
    a.get(..15).is_some() && a.get(..15) == b.get(..15)
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("instance_url", &self.instance_url)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    instance_url: String,
    /// The identity URL, naming the org and the user.
    #[serde(default)]
    id: Option<String>,
}

/// The answer to an authorization code's exchange.
#[derive(Deserialize)]
struct CodeExchange {
    refresh_token: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

/// What an authorization code was exchanged for: the refresh token the connection will
/// log in with, and who consented.
#[derive(Debug)]
pub struct CodeGrant {
    /// The refresh token (offline access).
    pub refresh_token: SecretString,
    /// The identity URL of the user who consented (`…/id/<orgId>/<userId>`), when the
    /// answer carried one (Salesforce's always does).
    pub identity_url: Option<String>,
}

impl CodeGrant {
    /// The Id of the org the person consented in, read from the identity URL.
    pub fn org_id(&self) -> Option<&str> {
        self.identity_url
            .as_deref()
            .and_then(org_id_of_identity_url)
    }
}

/// The web-server flow's authorization URL: where a person logs in and consents, coming
/// back to `redirect_uri` with a code and `state`. PKCE (`S256`) binds the code to
/// `code_challenge`.
pub fn authorize_url(
    login_url: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    code_challenge: &str,
) -> String {
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("state", state),
        ("code_challenge", code_challenge),
        ("code_challenge_method", "S256"),
        ("prompt", "login consent"),
    ])
    .unwrap_or_default();
    format!(
        "{}/services/oauth2/authorize?{query}",
        login_url.trim_end_matches('/')
    )
}

/// Exchanges an authorization code for the refresh token the connection will log in
/// with (`grant_type=authorization_code`, with the PKCE verifier), and the identity URL
/// naming the org the person consented in.
pub async fn exchange_authorization_code(
    config: &ClientConfig,
    client_id: &str,
    client_secret: Option<&str>,
    code: &str,
    redirect_uri: &str,
    code_verifier: &str,
) -> Result<CodeGrant> {
    let http = login_host_client(config)?;
    let login_url = config.login_url.trim_end_matches('/');
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", code_verifier),
    ];
    if let Some(secret) = client_secret {
        form.push(("client_secret", secret));
    }
    let path = TOKEN_PATH.to_owned();
    let (status, body) = post_token_form(&http, login_url, &form).await?;
    if (200..300).contains(&status) {
        let answer: CodeExchange =
            serde_json::from_slice(&body).map_err(|_| not_a_token_answer(login_url, status))?;
        let refresh_token = answer.refresh_token.map(SecretString::from).ok_or_else(|| {
            Error::UnexpectedResponse {
                path,
                status,
                detail: "no refresh_token: give the connected app the refresh_token (offline access) scope".to_owned(),
            }
        })?;
        return Ok(CodeGrant {
            refresh_token,
            identity_url: answer.id,
        });
    }
    Err(token_error(login_url, status, &body))
}

/// Revokes a token at the login host (`POST /services/oauth2/revoke`), as for a refresh
/// token pgforce was given but will not keep: it is then no use to anyone.
pub async fn revoke_token(config: &ClientConfig, token: &SecretString) -> Result<()> {
    let http = login_host_client(config)?;
    let login_url = config.login_url.trim_end_matches('/');
    let form = [("token", token.expose_secret())];
    let (status, body) = post_form(&http, login_url, REVOKE_PATH, &form).await?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(token_error(login_url, status, &body))
    }
}

/// An HTTP client for the configured login host (which must be an allowed one), trusting
/// the configured extra CA, following redirects to allowed hosts only.
fn login_host_client(config: &ClientConfig) -> Result<reqwest::Client> {
    config
        .allowed_hosts
        .check_url("login_url", &config.login_url)?;
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(config.allowed_hosts.redirect_policy())
        .timeout(config.request_timeout);
    if let Some(pem) = &config.extra_root_certificate_pem {
        let certificate = reqwest::Certificate::from_pem(pem.as_bytes())
            .map_err(|e| Error::Setup(format!("extra root certificate is not valid PEM: {e}")))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build().map_err(|e| Error::Setup(e.to_string()))
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: String,
}

#[derive(Serialize)]
struct JwtClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
}

/// The `aud` claim for a login URL: sandbox logins use the sandbox audience.
fn default_audience(login_url: &str) -> &'static str {
    if login_url.contains("test.salesforce.com") || login_url.contains(".sandbox.") {
        SANDBOX_LOGIN_URL
    } else {
        PRODUCTION_LOGIN_URL
    }
}

fn jwt_assertion(
    client_id: &str,
    username: &str,
    key_pem: &SecretString,
    audience: &str,
) -> Result<String> {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + JWT_LIFETIME_SECONDS;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.expose_secret().as_bytes())
        .map_err(Error::Jwt)?;
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    let claims = JwtClaims {
        iss: client_id,
        sub: username,
        aud: audience,
        exp,
    };
    jsonwebtoken::encode(&header, &claims, &key).map_err(Error::Jwt)
}

/// Logs in with the configured credentials and returns a session.
pub(crate) async fn login(
    http: &reqwest::Client,
    config: &ClientConfig,
    generation: u64,
) -> Result<Session> {
    let login_url = config.login_url.trim_end_matches('/');
    let form: Vec<(&str, String)> = match &config.credentials {
        Credentials::AccessToken {
            instance_url,
            access_token,
        } => {
            return Ok(Session {
                access_token: access_token.clone(),
                instance_url: instance_url.trim_end_matches('/').to_owned(),
                generation,
                org_id: None,
            });
        }
        Credentials::Password {
            client_id,
            client_secret,
            username,
            password,
        } => vec![
            ("grant_type", "password".to_owned()),
            ("client_id", client_id.clone()),
            ("client_secret", client_secret.expose_secret().to_owned()),
            ("username", username.clone()),
            ("password", password.expose_secret().to_owned()),
        ],
        Credentials::RefreshToken {
            client_id,
            client_secret,
            refresh_token,
        } => {
            let mut form = vec![
                ("grant_type", "refresh_token".to_owned()),
                ("client_id", client_id.clone()),
                ("refresh_token", refresh_token.expose_secret().to_owned()),
            ];
            if let Some(secret) = client_secret {
                form.push(("client_secret", secret.expose_secret().to_owned()));
            }
            form
        }
        Credentials::JwtBearer {
            client_id,
            username,
            private_key_pem,
            audience,
        } => {
            let audience = audience
                .as_deref()
                .unwrap_or_else(|| default_audience(login_url));
            vec![
                ("grant_type", JWT_BEARER_GRANT.to_owned()),
                (
                    "assertion",
                    jwt_assertion(client_id, username, private_key_pem, audience)?,
                ),
            ]
        }
        Credentials::ClientCredentials {
            client_id,
            client_secret,
        } => vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", client_id.clone()),
            ("client_secret", client_secret.expose_secret().to_owned()),
        ],
    };
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = post_token_form(http, login_url, &fields).await?;
    if (200..300).contains(&status) {
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| not_a_token_answer(login_url, status))?;
        // The instance is where every later call sends the access token: a token answer
        // naming a host outside the allowed ones is refused, never used.
        config
            .allowed_hosts
            .check_url("the token endpoint's instance_url", &token.instance_url)?;
        tracing::info!(login_url, "logged in to salesforce");
        return Ok(Session {
            access_token: SecretString::from(token.access_token),
            instance_url: token.instance_url.trim_end_matches('/').to_owned(),
            generation,
            org_id: token
                .id
                .as_deref()
                .and_then(org_id_of_identity_url)
                .map(str::to_owned),
        });
    }
    Err(token_error(login_url, status, &body))
}

/// POSTs a form to the token endpoint; returns the status and body.
async fn post_token_form(
    http: &reqwest::Client,
    login_url: &str,
    form: &[(&str, &str)],
) -> Result<(u16, bytes::Bytes)> {
    post_form(http, login_url, TOKEN_PATH, form).await
}

/// POSTs a form to an OAuth endpoint (`path`) of the login host; returns the status and
/// body.
async fn post_form(
    http: &reqwest::Client,
    login_url: &str,
    path: &str,
    form: &[(&str, &str)],
) -> Result<(u16, bytes::Bytes)> {
    let path = path.to_owned();
    let response = http
        .post(format!("{login_url}{path}"))
        .form(form)
        .send()
        .await
        .map_err(|source| Error::Transport {
            method: "POST".to_owned(),
            path: path.clone(),
            maybe_applied: !source.is_connect(),
            source,
        })?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|source| Error::Transport {
        method: "POST".to_owned(),
        path,
        maybe_applied: true,
        source,
    })?;
    Ok((status, body))
}

/// The error a refused token request comes to: Salesforce's OAuth error when it sent one;
/// else only the status and host, never the body (it may be anyone's page).
fn token_error(login_url: &str, status: u16, body: &[u8]) -> Error {
    match serde_json::from_slice::<TokenError>(body) {
        Ok(error) => Error::Auth {
            login_url: login_url.to_owned(),
            status,
            error: error.error,
            description: error.error_description,
        },
        Err(_) => not_a_token_answer(login_url, status),
    }
}

/// A token endpoint's answer that is not Salesforce's OAuth JSON: its status and host only.
fn not_a_token_answer(login_url: &str, status: u16) -> Error {
    Error::UnexpectedResponse {
        path: TOKEN_PATH.to_owned(),
        status,
        detail: format!(
            "the answer of {} is not Salesforce's OAuth token JSON",
            crate::hosts::host_of(login_url)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_logins_use_the_sandbox_audience() {
        assert_eq!(
            default_audience("https://test.salesforce.com"),
            SANDBOX_LOGIN_URL
        );
        assert_eq!(
            default_audience("https://acme--dev.sandbox.my.salesforce.com"),
            SANDBOX_LOGIN_URL
        );
        assert_eq!(
            default_audience("https://login.salesforce.com"),
            PRODUCTION_LOGIN_URL
        );
        assert_eq!(
            default_audience("https://acme.my.salesforce.com"),
            PRODUCTION_LOGIN_URL
        );
    }

    #[test]
    fn a_bad_private_key_is_a_jwt_error_not_a_panic() {
        let error = jwt_assertion(
            "id",
            "user",
            &SecretString::from("not a key"),
            PRODUCTION_LOGIN_URL,
        )
        .unwrap_err();
        assert!(matches!(error, Error::Jwt(_)));
    }

    #[test]
    fn the_org_id_is_read_from_the_identity_url() {
        let url = "https://login.salesforce.com/id/00D5e000000AbCdEAK/0055e000001XyZ1AAK";
        assert_eq!(org_id_of_identity_url(url), Some("00D5e000000AbCdEAK"));
        assert_eq!(
            org_id_of_identity_url("http://127.0.0.1:9/id/00D5e000000AbCd/0055e000001XyZ1"),
            Some("00D5e000000AbCd")
        );
        assert_eq!(
            org_id_of_identity_url("https://login.salesforce.com/0055e000001XyZ1AAK"),
            None
        );
        assert_eq!(
            org_id_of_identity_url("https://x/id/0015e000000AbCdEAK/0055e000001XyZ1AAK"),
            None,
            "an account Id is not an org Id"
        );
    }

    #[test]
    fn org_ids_of_15_and_18_characters_name_the_same_org() {
        assert!(same_org("00D5e000000AbCdEAK", "00D5e000000AbCd"));
        assert!(!same_org("00D5e000000AbCdEAK", "00D5e000000AbCeEAK"));
        assert!(!same_org("00D5e000000AbCdEAK", "00D5e000000abcdEAK"));
        assert!(!same_org("", ""));
    }
}
