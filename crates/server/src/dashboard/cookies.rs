//! The dashboard's two cookies: the session (after login) and the login form's token
//! (before it), named and scoped by how the browser reaches pgforce.
//!
//! Over TLS (this server's own, or a proxy's that `PGFORCE_PUBLIC_URL` names with
//! `https://`) they are `Secure` and carry the `__Host-` prefix, which browsers accept
//! only with `Secure`, `Path=/` and no `Domain`: a sibling subdomain cannot plant or
//! overwrite them. On plain HTTP (development on loopback) a browser would refuse a
//! `Secure` cookie, so they keep plain names, scoped to `/dashboard`. Both are `HttpOnly`
//! and `SameSite=Strict`.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use axum::http::request::Parts;

use crate::Scheme;

/// The session cookie's name on plain HTTP.
const SESSION: &str = "pgforce_session";
/// The session cookie's name over TLS.
const SECURE_SESSION: &str = "__Host-pgforce_session";
/// The login form token's cookie name on plain HTTP.
const LOGIN: &str = "pgforce_login";
/// The login form token's cookie name over TLS.
const SECURE_LOGIN: &str = "__Host-pgforce_login";

/// How long a session cookie lasts (as the session: 12 hours).
const SESSION_SECONDS: u32 = 43_200;
/// How long a login form may stay open before its token cookie is gone.
const LOGIN_SECONDS: u32 = 3_600;

/// The cookies of one request, as its transport decides them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cookies {
    secure: bool,
}

impl Cookies {
    /// Cookies for a browser that reaches pgforce over TLS (`secure`) or plain HTTP.
    pub(super) fn new(secure: bool) -> Self {
        Self { secure }
    }

    fn session_name(self) -> &'static str {
        if self.secure { SECURE_SESSION } else { SESSION }
    }

    fn login_name(self) -> &'static str {
        if self.secure { SECURE_LOGIN } else { LOGIN }
    }

    fn attributes(self) -> &'static str {
        if self.secure {
            "Path=/; Secure; HttpOnly; SameSite=Strict"
        } else {
            "Path=/dashboard; HttpOnly; SameSite=Strict"
        }
    }

    /// The session's secret the request carries, if any.
    pub(super) fn session(self, headers: &HeaderMap) -> Option<String> {
        find(headers, self.session_name())
    }

    /// The login form's token the request carries, if any.
    pub(super) fn login_token(self, headers: &HeaderMap) -> Option<String> {
        find(headers, self.login_name())
    }

    /// `Set-Cookie` opening a session.
    pub(super) fn set_session(self, secret: &str) -> String {
        self.set(self.session_name(), secret, SESSION_SECONDS)
    }

    /// `Set-Cookie` ending the session.
    pub(super) fn clear_session(self) -> String {
        self.set(self.session_name(), "", 0)
    }

    /// `Set-Cookie` holding the login form's token.
    pub(super) fn set_login_token(self, token: &str) -> String {
        self.set(self.login_name(), token, LOGIN_SECONDS)
    }

    /// `Set-Cookie` dropping the login form's token (once logged in).
    pub(super) fn clear_login_token(self) -> String {
        self.set(self.login_name(), "", 0)
    }

    fn set(self, name: &str, value: &str, max_age: u32) -> String {
        format!("{name}={value}; {}; Max-Age={max_age}", self.attributes())
    }
}

/// The value of cookie `name` among the request's cookies.
fn find(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.to_owned())
        })
}

/// Handlers take the request's cookies as its transport decides them.
impl<S: Send + Sync> FromRequestParts<S> for Cookies {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let scheme = parts
            .extensions
            .get::<Scheme>()
            .copied()
            .unwrap_or(Scheme("http"));
        Ok(Self::new(scheme.browsers_use_tls()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookies(text: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, text.parse().unwrap_or_else(|_| unreachable!()));
        headers
    }

    #[test]
    fn over_tls_the_session_cookie_is_secure_host_prefixed_and_scoped_to_the_root() {
        let tls = Cookies::new(true);
        assert_eq!(
            tls.set_session("abc"),
            "__Host-pgforce_session=abc; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=43200"
        );
        assert_eq!(
            tls.clear_session(),
            "__Host-pgforce_session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"
        );
        let plain = Cookies::new(false);
        assert_eq!(
            plain.set_session("abc"),
            "pgforce_session=abc; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=43200"
        );
    }

    #[test]
    fn each_transport_reads_its_own_cookie_among_others() {
        let headers = with_cookies("a=1; pgforce_session=plain; __Host-pgforce_session=tls; b=2");
        assert_eq!(
            Cookies::new(false).session(&headers).as_deref(),
            Some("plain")
        );
        assert_eq!(Cookies::new(true).session(&headers).as_deref(), Some("tls"));
        let headers = with_cookies("xpgforce_session=no");
        assert_eq!(Cookies::new(false).session(&headers), None);
    }
}
