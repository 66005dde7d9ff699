//! The emulator's TLS identity: a throwaway certificate authority and a server certificate
//! it signs for `localhost`, `127.0.0.1` and `::1`.
//!
//! A CA plus leaf (rather than one self-signed leaf) because rustls/webpki-based clients
//! refuse an end-entity certificate as its own trust anchor; clients trust the CA's PEM,
//! which `--cert-out` writes.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A generated TLS identity.
pub struct TlsIdentity {
    /// PEM of the CA certificate clients should trust.
    pub ca_pem: String,
    /// The server configuration to accept TLS connections with.
    pub server_config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

/// Why a TLS identity could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating the emulator's certificates failed")]
    Certificate(#[from] rcgen::Error),
    #[error("setting up TLS failed")]
    Rustls(#[from] rustls::Error),
}

/// Generates a fresh CA and server certificate.
pub fn generate() -> Result<TlsIdentity, TlsError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pgforce emulator CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut server_params = CertificateParams::new(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server_cert = server_params.signed_by(&server_key, &ca_cert, &ca_key)?;

    let chain = vec![
        CertificateDer::from(server_cert.der().to_vec()),
        CertificateDer::from(ca_cert.der().to_vec()),
    ];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsIdentity {
        ca_pem: ca_cert.pem(),
        server_config: Arc::new(config),
    })
}
