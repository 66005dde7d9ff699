//! The headers every answer carries, so a browser treats pgforce's pages and JSON as
//! what they are: nothing framed (clickjacking), nothing sniffed into another type,
//! nothing cached (answers hold tokens, secrets' presence, the audit trail), no referrer
//! leaking a callback's code to another site (`same-origin`: pgforce's own pages still
//! name their origin when they post a form, which the dashboard checks; `no-referrer`
//! would make browsers send `Origin: null`), and — under TLS only, where it can be kept —
//! HSTS.
//!
//! The dashboard runs no script and styles itself from one stylesheet of its own
//! (`/dashboard/style.css`), so its policy allows only that stylesheet and forms posted
//! to this server; JSON answers need nothing at all.

use axum::Router;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;

/// Loads nothing but this server's stylesheet; posts forms only here; never framed.
const POLICY: &str = "default-src 'none'; style-src 'self'; form-action 'self'; \
                      frame-ancestors 'none'; base-uri 'none'";

/// A year, in seconds: browsers then reach this host over HTTPS only.
const HSTS: &str = "max-age=31536000";

/// `router` with the headers added to each answer; `tls` adds HSTS.
pub(crate) fn add_to(router: Router, tls: bool) -> Router {
    router.layer(axum::middleware::map_response(
        move |mut response: Response| async move {
            secure(response.headers_mut(), tls);
            response
        },
    ))
}

fn secure(headers: &mut HeaderMap, tls: bool) {
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if tls {
        headers.insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_is_sent_only_under_tls() {
        let mut plain = HeaderMap::new();
        secure(&mut plain, false);
        assert!(!plain.contains_key(STRICT_TRANSPORT_SECURITY));
        assert_eq!(plain[X_CONTENT_TYPE_OPTIONS], "nosniff");
        let mut tls = HeaderMap::new();
        secure(&mut tls, true);
        assert_eq!(tls[STRICT_TRANSPORT_SECURITY], HSTS);
    }
}
