//! pgforce's HTTP side, served by `pgforce run` from the same process as the workers.
//!
//! It answers process supervisors and monitoring — `/healthz`, `/readyz` and `/metrics`
//! (`probes`), on the public listener or on a private one of their own — and the
//! management API under `/api/v3` (`api`), where every route asks for a token with a role
//! (`auth`), the dashboard for people (`dashboard`, under `/dashboard`), and the browser's
//! end of the OAuth consent flow (`oauth`, under `/oauth`), and the OData 4.0 services
//! Salesforce Connect reads external objects from (`odata`, under `/odata/v4`, HTTP Basic). Every answer
//! that is not a success is JSON `{"id": "<code>", "message": "…"}` (`problem`), never a
//! stack trace or an upstream body.
//!
//! The server faces the internet (the OAuth callback must be reachable from an org
//! administrator's browser): `listener` caps open connections and closes slow ones, `tls`
//! handshakes in each connection's own task, `request_timeout` bounds each request, and
//! `secure_headers` marks every answer for browsers. [`ServerConfig`] holds the limits.
//!
//! Binding is separate from serving ([`Server::bind`], then [`Server::serve`]) so a
//! command can report a taken port before it starts any work, and tests can ask for port
//! 0 and read the address chosen.

mod api;
mod auth;
mod config;
mod dashboard;
mod listener;
mod oauth;
mod odata;
mod probes;
mod problem;
mod request_timeout;
mod secure_headers;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use pgforce_sync::Engine;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use crate::config::ServerConfig;
use crate::probes::Probes;
use crate::problem::Problem;
use crate::tls::Handshakes;

/// Bound listeners, ready to serve (over TLS once [`Server::with_tls`] gave them a
/// certificate).
#[derive(Debug)]
pub struct Server {
    /// The API, the dashboard, the OAuth callback, and the probes unless `private` takes
    /// them.
    public: TcpListener,
    /// `/healthz`, `/readyz` and `/metrics` alone (`--metrics-listen`).
    private: Option<TcpListener>,
    tls: Option<Arc<rustls::ServerConfig>>,
    settings: ServerConfig,
}

/// Why the server could not start.
#[derive(Debug)]
pub struct BindError {
    address: String,
    flag: &'static str,
    source: std::io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let off = if self.flag == "--listen" {
            ", or --listen off"
        } else {
            ""
        };
        write!(
            f,
            "could not listen on {}: {}; pass {} with a free address{off}",
            self.address, self.source, self.flag
        )
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

async fn bind(address: &str, flag: &'static str) -> Result<TcpListener, BindError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| BindError {
            address: address.to_owned(),
            flag,
            source,
        })
}

impl Server {
    /// Binds `address` (`host:port`; port 0 picks a free one), as `--listen` names it.
    pub async fn bind(address: &str) -> Result<Self, BindError> {
        Ok(Self {
            public: bind(address, "--listen").await?,
            private: None,
            tls: None,
            settings: ServerConfig::default(),
        })
    }

    /// Also binds `address` (`--metrics-listen`), a private listener that serves the
    /// probes and metrics in place of the public one.
    pub async fn with_metrics_listener(mut self, address: &str) -> Result<Self, BindError> {
        self.private = Some(bind(address, "--metrics-listen").await?);
        Ok(self)
    }

    /// Serves with these limits and scrape token (the defaults otherwise).
    pub fn with_settings(mut self, settings: ServerConfig) -> Self {
        self.settings = settings;
        self
    }

    /// Serves HTTPS on every listener with the PEM certificate chain and key in these
    /// files; the error names the file and what is wrong with it.
    pub fn with_tls(
        mut self,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<Self, String> {
        self.tls = Some(Arc::new(tls::server_config(cert, key)?));
        Ok(self)
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The public address bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.public.local_addr()
    }

    /// The private address bound, if any.
    pub fn metrics_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.private.as_ref().map(TcpListener::local_addr)
    }

    /// Serves `engine` until `shutdown` turns true; requests in progress then finish.
    pub async fn serve(self, engine: Engine, shutdown: watch::Receiver<bool>) {
        let scheme = Scheme(self.scheme());
        let Self {
            public,
            private,
            tls,
            settings,
        } = self;
        if tls.is_none() {
            warn_if_plain_http_leaves_the_machine(&public);
        }
        let handshakes = tls.map(Handshakes::new);
        let probes = Probes::new(engine.clone(), settings.metrics_token.clone());
        let secured = |router: Router| {
            let router = request_timeout::add_to(router, settings.request_timeout());
            secure_headers::add_to(router, handshakes.is_some())
        };
        let (public_probes, private_probes) = match private {
            Some(private) => (None, Some((private, probes))),
            None => (Some(probes), None),
        };
        let public_app = secured(public_router(engine, scheme, public_probes));
        let serving_public = listener::serve(
            public,
            handshakes.clone(),
            public_app,
            &settings,
            shutdown.clone(),
        );
        match private_probes {
            Some((private, probes)) => {
                let private_app = secured(private_router(probes));
                let serving_private =
                    listener::serve(private, handshakes, private_app, &settings, shutdown);
                tokio::join!(serving_public, serving_private);
            }
            None => serving_public.await,
        }
    }
}

/// Tokens, session cookies and consent codes would cross the network in clear.
fn warn_if_plain_http_leaves_the_machine(listener: &TcpListener) {
    if let Ok(address) = listener.local_addr()
        && !address.ip().is_loopback()
    {
        tracing::warn!(
            %address,
            "serving plain HTTP on a non-loopback address: tokens and session cookies cross the network in clear; pass --tls-cert and --tls-key, or serve behind a TLS proxy"
        );
    }
}

/// The private listener's routes: the probes and metrics, nothing else.
fn private_router(probes: Probes) -> Router {
    Router::new()
        .route("/healthz", get(probes::healthz))
        .merge(probes.router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// The public listener's routes; the probes too when no private listener takes them.
fn public_router(engine: Engine, scheme: Scheme, probes: Option<Probes>) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(probes::healthz))
        .route("/api/openapi.json", get(openapi))
        .merge(oauth::router())
        .merge(api::router(&engine))
        .merge(odata::router())
        .merge(dashboard::router());
    if let Some(probes) = probes {
        router = router.merge(probes.router());
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::Extension(scheme))
        .with_state(engine)
}

/// How this server is reached (`http` or `https`), for the addresses it hands out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scheme(pub &'static str);

impl Scheme {
    /// Whether browsers reach pgforce over TLS: it serves HTTPS itself, or
    /// `PGFORCE_PUBLIC_URL` names an `https://` proxy in front. Cookies are then `Secure`
    /// and `__Host-` prefixed.
    pub(crate) fn browsers_use_tls(self) -> bool {
        self.0 == "https"
            || std::env::var("PGFORCE_PUBLIC_URL")
                .is_ok_and(|url| url.to_ascii_lowercase().starts_with("https://"))
    }
}

/// The management API's OpenAPI document (open, like the health checks).
async fn openapi() -> axum::Json<serde_json::Value> {
    axum::Json(api::openapi::document())
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

async fn not_found(uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such resource: {}", uri.path()),
    )
}
