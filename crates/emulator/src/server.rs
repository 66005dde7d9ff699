//! Serving the emulator over HTTP and HTTPS until shut down.
//!
//! Connections are served by hyper directly (not `axum::serve`) for two reasons: each
//! request must know which listener it came in on, so that `instance_url` keeps the
//! client's scheme and port; and fault injection must be able to drop a connection without
//! answering, which a handler signals with [`DropConnection`] and the connection loop
//! turns into a closed socket.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::api::context::ConnectionInfo;
use crate::header_case::SalesforceHeaderCase;
use crate::state::Shared;

/// Response extension: close the connection instead of sending this response.
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

#[derive(Debug, thiserror::Error)]
#[error("connection dropped by fault injection")]
struct DroppedByFault;

/// The listeners to serve on: plain HTTP, HTTPS, or both.
#[derive(Debug, Default)]
pub struct Listeners {
    pub http: Option<TcpListener>,
    pub https: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
}

/// Serves until `shutdown` completes, then stops the workload and closes connections.
pub async fn run(shared: Arc<Shared>, listeners: Listeners, shutdown: impl Future<Output = ()>) {
    let app = crate::app(Arc::clone(&shared));
    let tls = listeners
        .https
        .as_ref()
        .map(|(_, config)| tokio_rustls::TlsAcceptor::from(Arc::clone(config)));
    // Connection tasks live here, so shutdown can end them; none is detached.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(listeners.http.as_ref()) => {
                if let Ok((stream, _)) = accepted {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(stream, app.clone(), ConnectionInfo { scheme: "http" }));
                }
            }
            accepted = accept(listeners.https.as_ref().map(|(l, _)| l)) => {
                if let (Ok((stream, _)), Some(tls)) = (accepted, tls.clone()) {
                    let _ = stream.set_nodelay(true);
                    let app = app.clone();
                    connections.spawn(async move {
                        if let Ok(stream) = tls.accept(stream).await {
                            serve_connection(stream, app, ConnectionInfo { scheme: "https" }).await;
                        }
                    });
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    shared.workload.stop().await;
    connections.shutdown().await;
}

async fn accept(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

async fn serve_connection<S>(stream: S, app: Router, info: ConnectionInfo)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(info);
        let app = app.clone();
        async move {
            let response = app
                .oneshot(request.map(Body::new))
                .await
                .unwrap_or_else(|never| match never {});
            if response.extensions().get::<DropConnection>().is_some() {
                return Err(DroppedByFault);
            }
            Ok(response)
        }
    });
    let _ = http1::Builder::new()
        .keep_alive(true)
        // Salesforce writes `Content-Type`, `Sforce-Locator` and the like, not lower case.
        .title_case_headers(true)
        .serve_connection(TokioIo::new(SalesforceHeaderCase::new(stream)), service)
        .await;
}
