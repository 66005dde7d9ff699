//! One listener's connections, from accept to close: the place where a client that is slow
//! or silent on purpose is kept from holding others back or exhausting the process's file
//! descriptors.
//!
//! Served by hyper directly (not `axum::serve`, which has no header-read timeout nor
//! connection cap, and whose `Listener::accept` ran TLS handshakes one after another):
//! - at most [`ServerConfig::max_connections`] are open at once; the loop accepts the next
//!   only when one closes, so a client beyond the cap waits in the system's queue;
//! - each connection runs in its own task: the TLS handshake ([`Handshakes`]), then
//!   HTTP/1.1, whose headers must arrive within
//!   [`ServerConfig::header_read_timeout_seconds`] (idle kept-alive connections close too);
//! - the router carries the whole-request limit (`crate::request_timeout`);
//! - on shutdown the loop stops accepting, idle connections close, and requests in
//!   progress finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::ServerConfig;
use crate::tls::Handshakes;

/// Serves `app` on `tcp` (through `tls` when given) until `shutdown` turns true, then
/// waits for the requests in progress.
pub(crate) async fn serve(
    tcp: TcpListener,
    tls: Option<Handshakes>,
    app: Router,
    settings: &ServerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let header_read_timeout = settings.header_read_timeout();
    // One permit per open connection, held by its task until the socket closes.
    let open = Arc::new(Semaphore::new(settings.max_connections));
    // Connection tasks live here, so none is detached; finished ones are reaped as the
    // loop goes.
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&open).acquire_owned() => match permit {
                Ok(permit) => permit,
                // Never closed: nothing left to serve if it were.
                Err(_) => break,
            },
            () = stopped(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, address) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a client gone before its accept: wait a
                    // little rather than spin.
                    tracing::warn!(error = %error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        connections.spawn(connection(
            stream,
            address,
            tls.clone(),
            app.clone(),
            header_read_timeout,
            shutdown.clone(),
            permit,
        ));
    }
    while connections.join_next().await.is_some() {}
}

/// One connection, from handshake to close; `_permit` counts it as open until then.
async fn connection(
    stream: TcpStream,
    address: SocketAddr,
    tls: Option<Handshakes>,
    app: Router,
    header_read_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => http(stream, address, app, header_read_timeout, shutdown).await,
        Some(handshakes) => {
            let handshaken = tokio::select! {
                handshaken = handshakes.complete(stream, address) => handshaken,
                () = stopped(&mut shutdown) => None,
            };
            if let Some(stream) = handshaken {
                http(stream, address, app, header_read_timeout, shutdown).await;
            }
        }
    }
}

/// Serves HTTP/1.1 requests on `io` until the client closes, a limit closes it, or
/// shutdown lets the request in progress finish.
async fn http<S>(
    io: S,
    address: SocketAddr,
    app: Router,
    header_read_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    let served = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    tokio::pin!(served);
    let result = tokio::select! {
        result = served.as_mut() => result,
        () = stopped(&mut shutdown) => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%address, error = %error, "HTTP connection ended with an error");
    }
}

/// Returns once `shutdown` is true (at once if it already is), holding no borrow of it.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
