//! HTTPS for the server: the certificate and key from PEM files (as `--tls-cert` /
//! `--tls-key` name them), and the handshake each connection runs in its own task.
//!
//! The handshake never runs in the accept loop: a client that connects and says nothing
//! would hold every other client back. Each connection's task has a fixed time to finish
//! its handshake; once its client has sent something, it takes one of a bounded number of
//! handshake slots, so a flood of hellos cannot take every core.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client has to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes running at once on one listener; more wait for a slot.
const CONCURRENT_HANDSHAKES: usize = 64;

/// Reads a certificate chain and its private key; the error names the file and the problem.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("reading the TLS certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("reading the TLS certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("reading the TLS private key {}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| format!("the TLS certificate and key do not make a server identity: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The TLS side of one listener, shared by its connections' tasks.
#[derive(Clone)]
pub struct Handshakes {
    acceptor: TlsAcceptor,
    /// Slots for handshakes in progress: a task takes one when its client's first bytes
    /// arrive and gives it back when the handshake ends (or times out), before serving HTTP.
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Handshakes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshakes")
            .field("free_slots", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

impl Handshakes {
    /// Handshakes with `config`.
    pub fn new(config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            acceptor: TlsAcceptor::from(config),
            slots: Arc::new(Semaphore::new(CONCURRENT_HANDSHAKES)),
        }
    }

    /// The connection after its handshake; `None` (logged at debug) when the client
    /// failed or did not finish within the time limit.
    pub async fn complete(
        &self,
        stream: TcpStream,
        address: SocketAddr,
    ) -> Option<TlsStream<TcpStream>> {
        let handshake = async {
            // A client that sends nothing holds no slot, only its own task.
            stream.readable().await?;
            // The semaphore is never closed, so acquiring cannot fail.
            let _slot = self.slots.acquire().await.map_err(std::io::Error::other)?;
            self.acceptor.accept(stream).await
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(error)) => {
                tracing::debug!(%address, error = %error, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(%address, "TLS handshake timed out");
                None
            }
        }
    }
}
