//! Where a dashboard form was posted from. Browsers name the page that posted a form in
//! `Origin` (and, failing that, `Referer`); a foreign site that makes a logged-in
//! person's browser post to pgforce (cross-site request forgery), or logs them in to the
//! attacker's session (login CSRF), names itself there. Every dashboard POST whose
//! `Origin` or `Referer` names another origin than the request's own is refused with 403.
//! A login that names neither is refused too (it has no session whose form token could
//! vouch for it); other posts without them still need the session's form token.
//!
//! The request's own origin is its scheme and `Host`, or `PGFORCE_PUBLIC_URL`'s when a
//! proxy serves pgforce under that address.

use axum::extract::Request;
use axum::http::header::{HOST, ORIGIN, REFERER};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Scheme;
use crate::problem::Problem;

/// What a request's headers say about where it was posted from.
#[derive(Debug, PartialEq, Eq)]
enum Posted {
    /// From one of this server's own origins.
    Here,
    /// From another origin, as the header names it.
    Elsewhere(String),
    /// Neither `Origin` nor `Referer` was sent.
    Unsaid,
}

/// The origin (`scheme://host[:port]`, lower-cased, without the scheme's default port) of
/// an `Origin` or `Referer` value.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if scheme.is_empty() || host.is_empty() {
        return None;
    }
    Some(origin(scheme, host))
}

/// `scheme://host[:port]`, lower-cased, the default port of `http` (80) or `https` (443)
/// left out as browsers leave it out of `Origin`.
fn origin(scheme: &str, host: &str) -> String {
    let (scheme, host) = (scheme.to_ascii_lowercase(), host.to_ascii_lowercase());
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => "",
    };
    let host = match host.strip_suffix(default_port) {
        Some(bare) if !default_port.is_empty() => bare.to_owned(),
        _ => host,
    };
    format!("{scheme}://{host}")
}

/// Where the request says it was posted from, against the server's own origins.
fn posted_from(origin: Option<&str>, referer: Option<&str>, own: &[String]) -> Posted {
    let Some(named) = origin.or(referer) else {
        return Posted::Unsaid;
    };
    match origin_of(named.trim()) {
        Some(found) if own.contains(&found) => Posted::Here,
        // `Origin: null` (an opaque origin: a sandboxed frame, a data: page) is foreign.
        _ => Posted::Elsewhere(named.to_owned()),
    }
}

/// The origins this request may come from: its scheme and host, and the public URL's.
fn own_origins(headers: &HeaderMap, scheme: Scheme) -> Vec<String> {
    let mut own = Vec::new();
    if let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) {
        own.push(origin(scheme.0, host));
    }
    if let Some(public) = std::env::var("PGFORCE_PUBLIC_URL")
        .ok()
        .and_then(|url| origin_of(&url))
    {
        own.push(public);
    }
    own
}

/// Lets a dashboard POST through only from this server's own pages (see the module doc);
/// `login_path` is the one refused when it names no origin at all.
pub(super) async fn guard(login_path: &'static str, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let scheme = request
        .extensions()
        .get::<Scheme>()
        .copied()
        .unwrap_or(Scheme("http"));
    let headers = request.headers();
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let verdict = posted_from(
        header(ORIGIN),
        header(REFERER),
        &own_origins(headers, scheme),
    );
    let refusal = match verdict {
        Posted::Here => None,
        Posted::Elsewhere(named) => Some(format!(
            "this form was posted from {named:?}, not from pgforce's own pages"
        )),
        Posted::Unsaid if request.uri().path() == login_path => Some(
            "a login must say where it was posted from (Origin or Referer): log in from pgforce's own login page"
                .to_owned(),
        ),
        Posted::Unsaid => None,
    };
    match refusal {
        Some(message) => {
            tracing::debug!(
                path = request.uri().path(),
                "dashboard post from another origin refused"
            );
            Problem::new(StatusCode::FORBIDDEN, "forbidden", message).into_response()
        }
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> Vec<String> {
        vec!["http://127.0.0.1:8780".to_owned()]
    }

    #[test]
    fn the_origin_decides_and_the_referer_stands_in_for_it() {
        assert_eq!(
            posted_from(Some("http://127.0.0.1:8780"), None, &own()),
            Posted::Here
        );
        assert_eq!(
            posted_from(
                Some("HTTP://127.0.0.1:8780"),
                Some("https://evil.example/x"),
                &own()
            ),
            Posted::Here,
            "Origin wins over Referer and is compared without case"
        );
        assert_eq!(
            posted_from(
                None,
                Some("http://127.0.0.1:8780/dashboard/login?x=1"),
                &own()
            ),
            Posted::Here
        );
        assert_eq!(
            posted_from(
                None,
                Some("http://127.0.0.1:8780.evil.example/dashboard"),
                &own()
            ),
            Posted::Elsewhere("http://127.0.0.1:8780.evil.example/dashboard".to_owned())
        );
        assert_eq!(
            posted_from(Some("null"), None, &own()),
            Posted::Elsewhere("null".to_owned())
        );
        assert_eq!(
            posted_from(Some("https://127.0.0.1:8780"), None, &own()),
            Posted::Elsewhere("https://127.0.0.1:8780".to_owned()),
            "another scheme is another origin"
        );
        assert_eq!(posted_from(None, None, &own()), Posted::Unsaid);
    }

    #[test]
    fn default_ports_are_left_out_on_both_sides() {
        let own = vec![origin("https", "pgforce.example.com:443")];
        assert_eq!(
            posted_from(Some("https://pgforce.example.com"), None, &own),
            Posted::Here
        );
        assert_eq!(
            posted_from(Some("https://pgforce.example.com:8443"), None, &own),
            Posted::Elsewhere("https://pgforce.example.com:8443".to_owned())
        );
        assert_eq!(origin("http", "127.0.0.1:8780"), "http://127.0.0.1:8780");
    }
}
