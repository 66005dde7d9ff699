//! Accepting Pub/Sub connections and serving the generated tonic service on them.
//!
//! The TLS handshake uses the HTTPS listener's identity with ALPN `h2`; each connection is
//! then served by hyper's HTTP/2 server with the tonic [`PubSubServer`] behind the
//! authentication interceptor ([`service::authenticate`]), so the status of every call
//! travels as gRPC trailers, with Salesforce's own code in the `error-code` trailer when
//! there is one ([`status`], [`replay_id_corrupted`]). Connections live in a `JoinSet`
//! owned by [`serve`], so shutdown ends them all; a subscription runs inside its response
//! stream, so it ends with its connection.

use std::future::Future;
use std::sync::Arc;

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use pgforce_pubsub_proto::pub_sub_server::PubSubServer;
use pgforce_pubsub_proto::{REPLAY_ID_CORRUPTED, metadata};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Status};

use super::service::{self, PubSub};
use crate::state::Shared;

/// A status with a message; an `rpcId:` suffix is added as Salesforce does.
pub fn status(code: Code, message: impl Into<String>) -> Status {
    Status::new(code, format!("{} rpcId: {}", message.into(), rpc_id()))
}

/// An invalid or expired replay id: INVALID_ARGUMENT with Salesforce's code in the
/// `error-code` trailer.
pub fn replay_id_corrupted(message: &str) -> Status {
    let mut status = status(Code::InvalidArgument, message);
    status.metadata_mut().insert(
        metadata::ERROR_CODE,
        MetadataValue::from_static(REPLAY_ID_CORRUPTED),
    );
    status
}

/// An id for one call, as Salesforce puts in `rpc_id` and error messages.
pub fn rpc_id() -> String {
    crate::uuid::random()
}

/// Serves Pub/Sub on `listener` until `shutdown` completes.
pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    // Same identity as the HTTPS listener, but gRPC needs HTTP/2.
    let mut config = (*tls).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let sessions = Arc::clone(&shared);
    let service =
        PubSubServer::with_interceptor(PubSub::new(shared), move |request: Request<()>| {
            service::authenticate(&sessions, request.metadata())?;
            Ok(request)
        });
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(service.clone());
                connections.spawn(async move {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}
