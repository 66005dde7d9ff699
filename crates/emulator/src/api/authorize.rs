//! The OAuth 2.0 web-server flow's authorization endpoint: where a person logs in and
//! consents, as on Salesforce's own login page.
//!
//! `GET /services/oauth2/authorize?response_type=code&client_id=…&redirect_uri=…&state=…`
//! (with `code_challenge` and `code_challenge_method=S256` for PKCE) shows a login and
//! consent page; posting it back with the right username and password redirects to
//! `redirect_uri?code=…&state=…`, and with `Deny` to
//! `redirect_uri?error=access_denied&error_description=end-user+denied+authorization`. A
//! wrong connected app is an error page (there is nowhere safe to redirect). The code is
//! exchanged once, within 15 minutes, at the token endpoint (`grant_type=
//! authorization_code`, see `oauth`), which checks the redirect URI and the PKCE verifier.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::oauth::authenticate;
use crate::sessions::AuthorizationCode;
use crate::state::Shared;

/// The request's parameters that travel through the consent page.
#[derive(Debug, Clone, Default)]
struct Request {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    code_challenge: Option<String>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!(
            "<!doctype html><title>Authorization error</title><h1>error</h1><p id=\"error\">{}</p>",
            escape(message)
        )),
    )
        .into_response()
}

/// Checks what the connected app asked for; the error page's message otherwise.
fn request(shared: &Shared, params: &HashMap<String, String>) -> Result<Request, String> {
    if params.get("response_type").map(String::as_str) != Some("code") {
        return Err("unsupported_response_type: response type not supported".to_owned());
    }
    let client_id = params.get("client_id").cloned().unwrap_or_default();
    if client_id != shared.config.client_id {
        return Err("invalid_client_id: client identifier invalid".to_owned());
    }
    let redirect_uri = params.get("redirect_uri").cloned().unwrap_or_default();
    if !(redirect_uri.starts_with("https://") || redirect_uri.starts_with("http://")) {
        return Err("redirect_uri_mismatch: redirect_uri must match configuration".to_owned());
    }
    let code_challenge = params.get("code_challenge").cloned();
    if code_challenge.is_some()
        && params.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return Err("invalid_request: code_challenge_method must be S256".to_owned());
    }
    Ok(Request {
        client_id,
        redirect_uri,
        state: params.get("state").cloned(),
        code_challenge,
    })
}

fn consent_page(request: &Request, problem: Option<&str>) -> Response {
    let hidden = |name: &str, value: &str| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(value)
        )
    };
    let mut fields = hidden("response_type", "code")
        + &hidden("client_id", &request.client_id)
        + &hidden("redirect_uri", &request.redirect_uri);
    if let Some(state) = &request.state {
        fields += &hidden("state", state);
    }
    if let Some(challenge) = &request.code_challenge {
        fields += &hidden("code_challenge", challenge);
        fields += &hidden("code_challenge_method", "S256");
    }
    let problem = problem.map_or_else(String::new, |p| {
        format!("<p id=\"error\">{}</p>", escape(p))
    });
    Html(format!(
        "<!doctype html><title>Login | Salesforce</title><h1>Allow access?</h1>{problem}
         <form method=\"post\" action=\"/services/oauth2/authorize\">{fields}
         <label>Username <input name=\"username\" id=\"username\"></label>
         <label>Password <input type=\"password\" name=\"password\" id=\"password\"></label>
         <button type=\"submit\" name=\"decision\" value=\"allow\" id=\"allow\">Allow</button>
         <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button></form>"
    ))
    .into_response()
}

fn redirect(to: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

/// `redirect_uri` with these query parameters added.
fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    let joiner = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{joiner}{query}")
}

/// `GET /services/oauth2/authorize`: the login and consent page.
pub async fn page(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let params: HashMap<String, String> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    match request(&shared, &params) {
        Ok(request) => consent_page(&request, None),
        Err(message) => error_page(&message),
    }
}

/// `POST /services/oauth2/authorize`: the person's answer.
pub async fn answer(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let params: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let request = match request(&shared, &params) {
        Ok(request) => request,
        Err(message) => return error_page(&message),
    };
    let state = request.state.clone().unwrap_or_default();
    if params.get("decision").map(String::as_str) == Some("deny") {
        return redirect(with_query(
            &request.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "end-user denied authorization"),
                ("state", &state),
            ],
        ));
    }
    let username = params
        .get("username")
        .map(String::as_str)
        .unwrap_or_default();
    let password = params
        .get("password")
        .map(String::as_str)
        .unwrap_or_default();
    let Some(user) = authenticate(&shared, username, password) else {
        return consent_page(
            &request,
            Some(
                "Please check your username and password. If you still can't log in, contact your Salesforce administrator.",
            ),
        );
    };
    let code = shared.sessions().mint_code(AuthorizationCode {
        client_id: request.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        user,
        expires_at: std::time::Instant::now(),
    });
    redirect(with_query(
        &request.redirect_uri,
        &[("code", &code), ("state", &state)],
    ))
}
