//! The OAuth 2.0 token endpoint and its companions (revoke, userinfo, identity URL).
//!
//! Grants: password, refresh_token, client_credentials, the JWT bearer flow and the
//! web-server flow's authorization_code (codes come from `authorize`). Answers and
//! errors have Salesforce's shapes: `issued_at` in epoch milliseconds as a string, no
//! `expires_in`, and `{"error", "error_description"}` with HTTP 400 on failure.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::context::{ConnectionInfo, base_url, bearer_token};
use super::rest::json_response;
use crate::datetime;
use crate::error::ApiError;
use crate::org::RecordRef;
use crate::state::Shared;

const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// `invalid_grant` for a wrong password, and for any grant of a user whose access is revoked.
const AUTHENTICATION_FAILURE: &str = "authentication failure";
/// `invalid_grant` for a refresh token that is no longer valid.
const EXPIRED_TOKEN: &str = "expired access/refresh token";
/// `invalid_grant` for a JWT whose user may not use the connected app.
const NOT_APPROVED: &str = "user hasn't approved this consumer";
/// Audiences Salesforce accepts in a JWT assertion besides the org's own URL.
const JWT_AUDIENCES: [&str; 2] = [
    "https://login.salesforce.com",
    "https://test.salesforce.com",
];

fn oauth_error(error: &str, description: &str) -> Response {
    let mut response = json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "error": error, "error_description": description }),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The identity URL of a user: `<base>/id/<org id>/<user id>`.
fn identity_url(base: &str, org_id: &str, user_id: &str) -> String {
    format!("{base}/id/{org_id}/{user_id}")
}

/// A token response for a user, with Salesforce's keys; while the user's credentials are
/// revoked, `invalid_grant` with the description Salesforce gives for the grant.
fn token_response(shared: &Shared, base: &str, user: RecordRef, refused: &str) -> Response {
    let (org_id, user_id) = {
        let org = shared.org();
        (org.org_id(), user.id18(org.schema()))
    };
    let Some(token) = shared.sessions().issue(&org_id[..15], user) else {
        return oauth_error("invalid_grant", refused);
    };
    let id = identity_url(base, &org_id, &user_id);
    let issued_at = datetime::now_millis().to_string();
    // Salesforce signs `id` + `issued_at` with the consumer secret (HMAC-SHA256, base64).
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        shared.config.client_secret.as_bytes(),
    );
    let signature =
        BASE64.encode(ring::hmac::sign(&key, format!("{id}{issued_at}").as_bytes()).as_ref());
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "instance_url": base,
            "id": id,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": signature,
        }),
    )
}

/// Client credentials from the body or an `Authorization: Basic` header.
fn client_credentials(
    form: &HashMap<String, String>,
    headers: &HeaderMap,
) -> (Option<String>, Option<String>) {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| BASE64.decode(b.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(i, s)| (i.to_owned(), s.to_owned()))
        });
    match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (
            form.get("client_id").cloned(),
            form.get("client_secret").cloned(),
        ),
    }
}

/// `POST /services/oauth2/token`.
pub async fn token(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<ConnectionInfo>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(form) = serde_urlencoded::from_bytes::<HashMap<String, String>>(&body) else {
        return oauth_error("invalid_request", "request body is not form-urlencoded");
    };
    let base = base_url(&shared, &headers, connection);
    let config = &shared.config;
    let (client_id, client_secret) = client_credentials(&form, &headers);
    let grant = form
        .get("grant_type")
        .map(String::as_str)
        .unwrap_or_default();
    let client_ok = client_id.as_deref() == Some(config.client_id.as_str());
    let secret_ok = client_secret.as_deref() == Some(config.client_secret.as_str());
    match grant {
        "password" => {
            if !client_ok {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if !secret_ok {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            let username = form.get("username").map(String::as_str).unwrap_or_default();
            let password = form.get("password").map(String::as_str).unwrap_or_default();
            match authenticate(&shared, username, password) {
                Some(user) => token_response(&shared, &base, user, AUTHENTICATION_FAILURE),
                None => oauth_error("invalid_grant", AUTHENTICATION_FAILURE),
            }
        }
        "refresh_token" => {
            if !client_ok {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if client_secret.is_some() && !secret_ok {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            let refresh = form
                .get("refresh_token")
                .map(String::as_str)
                .unwrap_or_default();
            if !shared.sessions().is_refresh_token(refresh) {
                return oauth_error("invalid_grant", EXPIRED_TOKEN);
            }
            let admin = shared.org().admin();
            token_response(&shared, &base, admin, EXPIRED_TOKEN)
        }
        "client_credentials" => {
            if !client_ok || !secret_ok {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            let admin = shared.org().admin();
            token_response(&shared, &base, admin, AUTHENTICATION_FAILURE)
        }
        "authorization_code" => {
            if !client_ok {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            let code = form.get("code").map(String::as_str).unwrap_or_default();
            let Some(issued) = shared.sessions().take_code(code) else {
                return oauth_error("invalid_grant", "invalid authorization code");
            };
            if client_id.as_deref() != Some(issued.client_id.as_str()) {
                return oauth_error("invalid_grant", "invalid authorization code");
            }
            if form.get("redirect_uri") != Some(&issued.redirect_uri) {
                return oauth_error("invalid_grant", "redirect_uri must match configuration");
            }
            match (&issued.code_challenge, form.get("code_verifier")) {
                (Some(challenge), Some(verifier)) if pkce_s256(verifier) == *challenge => {}
                (Some(_), _) => return oauth_error("invalid_grant", "invalid code verifier"),
                (None, _) if !secret_ok => {
                    return oauth_error("invalid_client", "invalid client credentials");
                }
                (None, _) => {}
            }
            if client_secret.is_some() && !secret_ok {
                return oauth_error("invalid_client", "invalid client credentials");
            }
            with_refresh_token(
                &shared,
                token_response(&shared, &base, issued.user, AUTHENTICATION_FAILURE),
            )
            .await
        }
        JWT_BEARER_GRANT => {
            let assertion = form
                .get("assertion")
                .map(String::as_str)
                .unwrap_or_default();
            match verify_jwt(&shared, &base, assertion) {
                Ok(user) => token_response(&shared, &base, user, NOT_APPROVED),
                Err(description) => oauth_error("invalid_grant", &description),
            }
        }
        _ => oauth_error("unsupported_grant_type", "grant type not supported"),
    }
}

/// PKCE's S256: base64url (no padding) of the verifier's SHA-256.
fn pkce_s256(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// A successful token response with a new refresh token added (the web-server flow's
/// answer); errors pass through.
async fn with_refresh_token(shared: &Shared, response: Response) -> Response {
    if response.status() != StatusCode::OK {
        return response;
    }
    let Ok(bytes) = axum::body::to_bytes(response.into_body(), 1 << 20).await else {
        return oauth_error("server_error", "could not build the token response");
    };
    let Ok(mut answer) = serde_json::from_slice::<Json>(&bytes) else {
        return oauth_error("server_error", "could not build the token response");
    };
    answer["refresh_token"] = Json::String(shared.sessions().mint_refresh_token());
    json_response(StatusCode::OK, &answer)
}

/// Checks a username and password (with the security token appended when one is set).
pub fn authenticate(shared: &Shared, username: &str, password: &str) -> Option<RecordRef> {
    let config = &shared.config;
    let expected = format!("{}{}", config.password, config.security_token);
    if password != expected || !username.eq_ignore_ascii_case(&config.username) {
        return None;
    }
    shared.org().user_by_username(username)
}

#[derive(Debug, Deserialize)]
struct JwtClaims {
    iss: String,
    sub: String,
}

fn verify_jwt(shared: &Shared, base: &str, assertion: &str) -> Result<RecordRef, String> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let mut validation = Validation::new(Algorithm::RS256);
    let mut audiences: Vec<String> = JWT_AUDIENCES.iter().map(|a| (*a).to_owned()).collect();
    audiences.push(base.to_owned());
    validation.set_audience(&audiences);
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    let key = match &shared.config.jwt_public_key_pem {
        Some(pem) => DecodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| format!("invalid assertion: {e}"))?,
        None => {
            validation.insecure_disable_signature_validation();
            DecodingKey::from_secret(&[])
        }
    };
    let data = jsonwebtoken::decode::<JwtClaims>(assertion, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidAudience => "Audience validation failed".to_owned(),
            ErrorKind::ExpiredSignature => "expired authorization code".to_owned(),
            _ => format!("invalid assertion: {e}"),
        }
    })?;
    if data.claims.iss != shared.config.client_id {
        return Err("invalid_client_id: client identifier invalid".to_owned());
    }
    if !data
        .claims
        .sub
        .eq_ignore_ascii_case(&shared.config.username)
    {
        return Err(NOT_APPROVED.to_owned());
    }
    shared
        .org()
        .user_by_username(&data.claims.sub)
        .ok_or_else(|| NOT_APPROVED.to_owned())
}

/// `POST /services/oauth2/revoke`.
pub async fn revoke(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let token = form.get("token").map(String::as_str).unwrap_or_default();
    if shared.sessions().revoke(token) {
        StatusCode::OK.into_response()
    } else {
        oauth_error("unsupported_token_type", "this token type is not supported")
    }
}

fn identity_body(shared: &Shared, base: &str, user: RecordRef) -> Json {
    let org = shared.org();
    let user_id = user.id18(org.schema());
    let org_id = org.org_id();
    let text = |f: &str| org.text_of(user, f);
    json!({
        "id": identity_url(base, &org_id, &user_id),
        "user_id": user_id,
        "organization_id": org_id,
        "username": text("Username"),
        "preferred_username": text("Username"),
        "display_name": text("Name"),
        "email": text("Email"),
        "active": true,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 0,
        "urls": {
            "rest": format!("{base}/services/data/v{{version}}/"),
            "sobjects": format!("{base}/services/data/v{{version}}/sobjects/"),
            "query": format!("{base}/services/data/v{{version}}/query/"),
            "partner": format!("{base}/services/Soap/u/{{version}}/{}", &org_id[..15]),
        },
    })
}

fn session_user(shared: &Shared, headers: &HeaderMap) -> Result<RecordRef, ApiError> {
    bearer_token(headers)
        .and_then(|t| shared.sessions().check(t))
        .map(|s| s.user)
        .ok_or_else(ApiError::invalid_session)
}

/// `GET /services/oauth2/userinfo`.
pub async fn userinfo(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<ConnectionInfo>,
    headers: HeaderMap,
) -> Response {
    match session_user(&shared, &headers) {
        Ok(user) => {
            let base = base_url(&shared, &headers, connection);
            json_response(StatusCode::OK, &identity_body(&shared, &base, user))
        }
        Err(error) => error.into_response(),
    }
}

/// `GET /id/{org}/{user}`: the identity URL of a token response.
pub async fn identity(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<ConnectionInfo>,
    Path((_org, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let caller = match session_user(&shared, &headers) {
        Ok(user) => user,
        Err(error) => return error.into_response(),
    };
    let named = shared.org().resolve_id(&user).ok();
    if named != Some(caller) {
        return ApiError::new(StatusCode::FORBIDDEN, "FORBIDDEN", "Bad_Id").into_response();
    }
    let base = base_url(&shared, &headers, connection);
    json_response(StatusCode::OK, &identity_body(&shared, &base, caller))
}
