//! The browser's side of the OAuth web-server flow: pgforce's one-time start URL and the
//! callback Salesforce sends the person back to.
//!
//! Neither route takes a token: a person's browser comes here, not automation. What makes
//! them safe is binding a consent to one browser (login CSRF otherwise lets an attacker's
//! consent be finished in a victim's browser, or the reverse): the API hands out
//! `/oauth/start/<ticket>`, which works once, gives the browser a random cookie
//! (HttpOnly, `SameSite=Lax` so the top-level GET back from Salesforce carries it,
//! `Secure` with the `__Host-` prefix over TLS) and sends it on (303) to Salesforce's
//! consent page; the callback accepts the consent's `state` only with that cookie. Where
//! the person goes at the end (`next`) is only ever a path on pgforce itself.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, COOKIE, HOST, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use pgforce_sync::Engine;
use serde_json::Value;

use crate::Scheme;
use crate::problem::Problem;

/// The start URL's path, followed by the ticket.
const START_PATH: &str = "/oauth/start";
/// The callback's path.
const CALLBACK_PATH: &str = "/oauth/callback";
/// The consent cookie's name over plain HTTP.
const COOKIE_NAME: &str = "pgforce_consent";
/// Its name over TLS: the `__Host-` prefix makes browsers refuse it unless it is
/// `Secure`, for `Path=/` and set by this host itself (not a sibling domain).
const SECURE_COOKIE_NAME: &str = "__Host-pgforce_consent";
/// How long the cookie lives: as long as a consent may wait.
const COOKIE_SECONDS: u32 = 3600;

/// The start and callback routes.
pub(crate) fn router() -> Router<Engine> {
    Router::new()
        .route(&format!("{START_PATH}/{{ticket}}"), get(start))
        .route(CALLBACK_PATH, get(callback))
}

/// How people's browsers reach this server: `PGFORCE_PUBLIC_URL` or, without it, the
/// request's own scheme and host.
pub(crate) fn public_base(headers: &HeaderMap, scheme: Scheme) -> String {
    let base = std::env::var("PGFORCE_PUBLIC_URL").unwrap_or_else(|_| {
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1:8780");
        format!("{}://{host}", scheme.0)
    });
    base.trim_end_matches('/').to_owned()
}

/// Where Salesforce sends a person back after the consent page.
pub(crate) fn callback_url(headers: &HeaderMap, scheme: Scheme) -> String {
    format!("{}{CALLBACK_PATH}", public_base(headers, scheme))
}

/// pgforce's start URL for a consent's ticket: what the person opens.
pub(crate) fn start_url(headers: &HeaderMap, scheme: Scheme, ticket: &str) -> String {
    format!("{}{START_PATH}/{ticket}", public_base(headers, scheme))
}

/// Whether browsers reach this server over TLS (here, or at a proxy in front of it).
fn cookie_name(scheme: Scheme) -> &'static str {
    if scheme.browsers_use_tls() {
        SECURE_COOKIE_NAME
    } else {
        COOKIE_NAME
    }
}

/// The `Set-Cookie` value binding the browser (`max_age` 0 clears it).
fn set_cookie(scheme: Scheme, value: &str, max_age: u32) -> String {
    let secure = if scheme.browsers_use_tls() {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        cookie_name(scheme)
    )
}

/// The consent cookie the browser sent, if any.
fn presented_cookie(headers: &HeaderMap, scheme: Scheme) -> Option<String> {
    let prefix = format!("{}=", cookie_name(scheme));
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(&prefix).map(str::to_owned))
}

/// Checks the `next` a consent request names: a path on pgforce itself (a single leading
/// `/`, no scheme, no host, no backslash, no control characters), or an error naming
/// `next`.
pub(crate) fn checked_next(next: Option<&Value>) -> Result<Option<String>, Problem> {
    let Some(next) = next else {
        return Ok(None);
    };
    let refuse = |shown: &str| {
        Problem::bad_request(format!(
            "next must be a path on pgforce itself, starting with a single / (such as /dashboard), not {shown}"
        ))
    };
    let Some(text) = next.as_str() else {
        return Err(refuse(&next.to_string()));
    };
    if is_local_path(text) {
        Ok(Some(text.to_owned()))
    } else {
        Err(refuse(&format!("{text:?}")))
    }
}

/// Whether `text` is a path on this server that no browser reads as another host.
fn is_local_path(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !text.contains('\\')
        && !text.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// The page a browser is shown (the text escaped).
fn page(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(CACHE_CONTROL, "no-store")],
        Html(format!(
            "<!doctype html><title>pgforce</title><h1>pgforce</h1><p id=\"outcome\">{}</p>",
            text.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        )),
    )
        .into_response()
}

/// `GET /oauth/start/<ticket>`: spends the ticket, gives this browser the consent cookie
/// and sends it to Salesforce's consent page.
async fn start(
    State(engine): State<Engine>,
    axum::Extension(scheme): axum::Extension<Scheme>,
    Path(ticket): Path<String>,
) -> Response {
    match engine.admin().open_consent(&ticket).await {
        Ok(opened) => (
            StatusCode::SEE_OTHER,
            [
                (LOCATION, opened.consent_url),
                (
                    SET_COOKIE,
                    set_cookie(scheme, &opened.browser_secret, COOKIE_SECONDS),
                ),
                (CACHE_CONTROL, "no-store".to_owned()),
            ],
        )
            .into_response(),
        Err(pgforce_sync::Error::NotFound { what }) => page(
            StatusCode::NOT_FOUND,
            &format!("{what}; ask for a new consent link"),
        ),
        Err(error) => {
            tracing::error!(error = %error.chain(), "could not start a consent");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The consent could not be started; see pgforce's log.",
            )
        }
    }
}

/// `GET /oauth/callback`: the end of the flow, in the browser that started it.
async fn callback(
    State(engine): State<Engine>,
    axum::Extension(scheme): axum::Extension<Scheme>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if let Some(error) = param("error") {
        let description = param("error_description").unwrap_or_default();
        return page(
            StatusCode::BAD_REQUEST,
            &format!("Salesforce did not authorize pgforce: {error}: {description}"),
        );
    }
    let (Some(state), Some(code)) = (param("state"), param("code")) else {
        return page(StatusCode::BAD_REQUEST, "the callback needs code and state");
    };
    let browser = presented_cookie(&headers, scheme);
    let mut answer = match engine
        .admin()
        .complete_authorization(&state, &code, browser.as_deref())
        .await
    {
        // Checked when the consent started; checked again, as the row could predate that.
        Ok(done) => match done.next_url.filter(|next| is_local_path(next)) {
            Some(next) => (StatusCode::SEE_OTHER, [(LOCATION, next)]).into_response(),
            None => page(
                StatusCode::OK,
                &format!(
                    "Connection {} is authorized; you can close this page.",
                    done.connection
                ),
            ),
        },
        Err(error) => page(
            StatusCode::BAD_REQUEST,
            &format!("The authorization failed: {}", error.chain()),
        ),
    };
    // The consent is used up either way: the browser no longer needs its cookie.
    if browser.is_some()
        && let Ok(clear) = set_cookie(scheme, "", 0).parse()
    {
        answer.headers_mut().append(SET_COOKIE, clear);
    }
    answer
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn next_is_only_a_path_on_pgforce() {
        for good in [
            "/",
            "/dashboard",
            "/dashboard?tab=connections#top",
            "/a/b//c",
        ] {
            assert_eq!(
                checked_next(Some(&json!(good))).ok().flatten().as_deref(),
                Some(good)
            );
        }
        for bad in [
            "https://evil.example.com/",
            "//evil.example.com",
            "/\\evil.example.com",
            "\\\\evil.example.com",
            "javascript:alert(1)",
            "dashboard",
            "",
            "/\tevil",
            "/ok\\..\\x",
            " /dashboard",
        ] {
            let problem = checked_next(Some(&json!(bad))).unwrap_err();
            assert!(
                format!("{problem:?}").contains("next must be a path"),
                "{bad:?}"
            );
        }
        assert!(checked_next(Some(&json!(42))).is_err());
        assert!(checked_next(None).unwrap().is_none());
    }

    #[test]
    fn the_consent_cookie_is_host_bound_and_secure_over_tls() {
        let tls = set_cookie(Scheme("https"), "v", 3600);
        assert!(
            tls.starts_with("__Host-pgforce_consent=v; Path=/; HttpOnly; SameSite=Lax")
                && tls.ends_with("; Secure"),
            "{tls}"
        );
        let plain = set_cookie(Scheme("http"), "v", 3600);
        if std::env::var("PGFORCE_PUBLIC_URL").is_err() {
            assert!(
                plain.starts_with("pgforce_consent=v; Path=/; HttpOnly; SameSite=Lax")
                    && !plain.contains("Secure"),
                "{plain}"
            );
        }
    }

    #[test]
    fn the_consent_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            "pgforce_session=x; pgforce_consent=abc; other=y"
                .parse()
                .unwrap(),
        );
        if std::env::var("PGFORCE_PUBLIC_URL").is_err() {
            assert_eq!(
                presented_cookie(&headers, Scheme("http")).as_deref(),
                Some("abc")
            );
        }
        assert_eq!(
            presented_cookie(&headers, Scheme("https")),
            None,
            "over TLS only the __Host- cookie counts"
        );
    }
}
