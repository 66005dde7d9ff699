//! The rustls side of a Postgres connection: certificates, verification, the handshake.
//!
//! tokio-postgres asks a [`MakeTlsConnect`] for a connector per host and runs the
//! handshake only after the server has agreed to TLS. [`Tls`] builds the rustls client
//! configuration at that moment, from the files named in the connection string, as libpq
//! does: a prefer session to a server without TLS never reads them, and a rotated
//! certificate is picked up by the next connection. Files are read on the blocking pool.
//!
//! Server verification follows libpq's `sslmode`:
//! - `verify-full`: chain to the root certificates and host name (rustls's WebPKI verifier);
//! - `verify-ca`, and `require`/`prefer`/`allow` when a root certificate is available:
//!   chain only ([`ChainOnly`] with roots);
//! - otherwise no certificate check ([`ChainOnly`] without roots); the handshake signatures
//!   are still verified, so the session is encrypted, just not authenticated.
//!
//! The stream and its channel binding data (`tls-server-end-point`, for
//! SCRAM-SHA-256-PLUS) come from `tokio-postgres-rustls`.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    VerifierBuilderError, WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor,
};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::conninfo::{Problem, RootCert, SslMode, TlsOptions, TlsVersion};

/// The ALPN protocol PostgreSQL 17 requires for direct TLS (`sslnegotiation=direct`);
/// libpq sends it on every TLS connection, older servers ignore it.
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// libpq's default file locations under the home directory.
const DEFAULT_ROOT_CERT: &str = ".postgresql/root.crt";
const DEFAULT_CERT: &str = ".postgresql/postgresql.crt";
const DEFAULT_KEY: &str = ".postgresql/postgresql.key";

/// The TLS stream of a session.
pub(crate) type TlsStream<S> = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;

/// Why TLS could not be set up or the handshake failed. File errors name the file and
/// the option it came from; nothing here holds a password.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// `verify-ca`/`verify-full` without a root certificate.
    #[error(
        "root certificate file \"{}\" does not exist; set sslrootcert to a CA file, use sslrootcert=system, or use sslmode=require to skip server certificate verification",
        path.display()
    )]
    RootCertMissing { path: PathBuf },
    /// A certificate or key file that could not be read.
    #[error("could not read {option} file \"{}\"", path.display())]
    Read {
        option: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file that is not the PEM it should be.
    #[error("{option} file \"{}\" is not valid PEM", path.display())]
    Pem {
        option: &'static str,
        path: PathBuf,
        #[source]
        source: pem::Error,
    },
    /// A certificate file without certificates.
    #[error("{option} file \"{}\" holds no PEM certificate", path.display())]
    NoCertificate { option: &'static str, path: PathBuf },
    /// A root certificate rustls cannot use.
    #[error("sslrootcert file \"{}\" holds a certificate that cannot be used", path.display())]
    BadRootCert {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    /// A key file without a PKCS#8, PKCS#1 or SEC1 private key.
    #[error(
        "sslkey file \"{}\" holds no private key (expected PEM PKCS#8, PKCS#1 or SEC1)",
        path.display()
    )]
    NoKey { path: PathBuf },
    /// A client certificate without its key.
    #[error(
        "certificate present, but not private key file \"{}\" (set sslkey)",
        key.display()
    )]
    KeyMissing { key: PathBuf },
    /// A key file others can read (libpq refuses those as well).
    #[error(
        "private key file \"{}\" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
        path.display()
    )]
    KeyPermissions { path: PathBuf },
    /// `sslrootcert=system` found no usable certificate.
    #[error("sslrootcert=system: no trusted root certificate could be loaded from the system")]
    SystemRoots {
        #[source]
        source: Option<rustls_native_certs::Error>,
    },
    /// rustls refused the configuration (for example a key that does not match the
    /// certificate).
    #[error("building the TLS client configuration")]
    Config {
        #[source]
        source: rustls::Error,
    },
    /// rustls could not build the `verify-full` verifier from the roots.
    #[error("building the server certificate verifier")]
    Verifier {
        #[source]
        source: VerifierBuilderError,
    },
    /// The blocking task that reads the files ended without an answer.
    #[error("loading TLS certificates was interrupted")]
    Interrupted,
    /// The server's certificate did not pass verification.
    #[error("server certificate for \"{host}\" rejected")]
    CertificateRejected {
        host: String,
        #[source]
        source: rustls::Error,
    },
    /// Any other handshake failure (protocol, I/O).
    #[error("TLS handshake with \"{host}\" failed")]
    Handshake {
        host: String,
        #[source]
        source: io::Error,
    },
}

/// Hands tokio-postgres a connector that sets TLS up per the connection's options.
#[derive(Clone, Debug)]
pub(super) struct Tls {
    options: Arc<TlsOptions>,
    /// An option that cannot be honoured: every connection attempt fails with it.
    refusal: Option<Problem>,
}

impl Tls {
    pub(super) fn new(options: TlsOptions, refusal: Option<Problem>) -> Self {
        Self {
            options: Arc::new(options),
            refusal,
        }
    }
}

impl<S> MakeTlsConnect<S> for Tls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = Handshake;
    type Error = Problem;

    /// tokio-postgres calls this for every connection attempt, whatever the mode.
    fn make_tls_connect(&mut self, host: &str) -> Result<Handshake, Problem> {
        if let Some(problem) = &self.refusal {
            return Err(problem.clone());
        }
        Ok(Handshake {
            options: Arc::clone(&self.options),
            host: host.to_owned(),
        })
    }
}

/// One TLS handshake with one host.
#[derive(Debug)]
pub(super) struct Handshake {
    options: Arc<TlsOptions>,
    /// The host name as written in the connection string: checked by `verify-full` and
    /// sent as SNI.
    host: String,
}

impl<S> TlsConnect<S> for Handshake
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsStream<S>, TlsError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let options = Arc::clone(&self.options);
            let config = tokio::task::spawn_blocking(move || client_config(&options))
                .await
                .map_err(|_| TlsError::Interrupted)??;
            let mut make = MakeRustlsConnect::new(config);
            let Ok(connect) = MakeTlsConnect::<S>::make_tls_connect(&mut make, &self.host);
            connect
                .connect(stream)
                .await
                .map_err(|source| handshake_error(self.host, source))
        })
    }
}

/// Separates certificate verification failures (with rustls's reason) from the rest.
fn handshake_error(host: String, error: io::Error) -> TlsError {
    let is_certificate = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|inner| matches!(inner, rustls::Error::InvalidCertificate(_)));
    if !is_certificate {
        return TlsError::Handshake {
            host,
            source: error,
        };
    }
    match error
        .into_inner()
        .map(|inner| inner.downcast::<rustls::Error>())
    {
        Some(Ok(source)) => TlsError::CertificateRejected {
            host,
            source: *source,
        },
        // Checked above; kept total rather than asserting.
        Some(Err(_)) | None => TlsError::Handshake {
            host,
            source: io::Error::other("certificate verification failed"),
        },
    }
}

/// Builds the rustls configuration for one handshake. Blocking: reads files.
fn client_config(options: &TlsOptions) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = protocol_versions(options);
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|source| TlsError::Config { source })?;
    let algorithms = provider.signature_verification_algorithms;
    let builder = match (options.mode, root_certificates(options)?) {
        (SslMode::VerifyFull, Some(roots)) => {
            let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|source| TlsError::Verifier { source })?;
            builder.with_webpki_verifier(verifier)
        }
        (_, roots) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly { roots, algorithms })),
    };
    let mut config = match client_certificate(options)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|source| TlsError::Config { source })?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    config.enable_sni = options.sni;
    Ok(config)
}

/// The versions rustls speaks (1.2 and 1.3) within libpq's min/max bounds. The bounds
/// were checked when the connection string was read; should they exclude both, rustls
/// refuses the empty list.
fn protocol_versions(options: &TlsOptions) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let max = options.max_version.unwrap_or(TlsVersion::Tls1_3);
    [
        (TlsVersion::Tls1_2, &rustls::version::TLS12),
        (TlsVersion::Tls1_3, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(version, _)| (options.min_version..=max).contains(version))
    .map(|(_, supported)| supported)
    .collect()
}

/// The roots to verify the server against, or `None` for no verification.
fn root_certificates(options: &TlsOptions) -> Result<Option<Arc<RootCertStore>>, TlsError> {
    let path = match &options.root_cert {
        RootCert::System => return system_roots().map(Some),
        RootCert::File(path) => path.clone(),
        RootCert::Default => match home_file(DEFAULT_ROOT_CERT) {
            Some(path) if path.exists() => path,
            missing if options.mode.verifies() => {
                return Err(TlsError::RootCertMissing {
                    path: missing.unwrap_or_else(|| PathBuf::from("~").join(DEFAULT_ROOT_CERT)),
                });
            }
            _ => return Ok(None),
        },
    };
    let mut roots = RootCertStore::empty();
    for certificate in certificates("sslrootcert", &path)? {
        roots
            .add(certificate)
            .map_err(|source| TlsError::BadRootCert {
                path: path.clone(),
                source,
            })?;
    }
    Ok(Some(Arc::new(roots)))
}

fn system_roots() -> Result<Arc<RootCertStore>, TlsError> {
    let mut found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(TlsError::SystemRoots {
            source: found.errors.pop(),
        });
    }
    Ok(Arc::new(roots))
}

/// The client certificate chain and key, when one is configured (or libpq's default
/// `~/.postgresql/postgresql.crt` exists).
fn client_certificate(
    options: &TlsOptions,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TlsError> {
    if !options.send_client_cert {
        return Ok(None);
    }
    let cert = match &options.cert {
        Some(path) => path.clone(),
        None => match home_file(DEFAULT_CERT) {
            Some(path) if path.exists() => path,
            _ => return Ok(None),
        },
    };
    let chain = certificates("sslcert", &cert)?;
    let key = match &options.key {
        Some(path) => path.clone(),
        None => home_file(DEFAULT_KEY).unwrap_or_else(|| PathBuf::from(DEFAULT_KEY)),
    };
    if !key.exists() {
        return Err(TlsError::KeyMissing { key });
    }
    check_key_permissions(&key)?;
    let bytes = read("sslkey", &key)?;
    let key_der = PrivateKeyDer::from_pem_slice(&bytes).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsError::NoKey { path: key.clone() },
        source => TlsError::Pem {
            option: "sslkey",
            path: key.clone(),
            source,
        },
    })?;
    Ok(Some((chain, key_der)))
}

/// libpq's rule: a key owned by the user may not be readable by group or others; one owned
/// by root may be group-readable. (libpq checks only files owned by the current user or
/// root; without `geteuid` here, every non-root owner gets the user rule.)
#[cfg(unix)]
fn check_key_permissions(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::MetadataExt as _;

    let metadata = std::fs::metadata(path).map_err(|source| TlsError::Read {
        option: "sslkey",
        path: path.to_owned(),
        source,
    })?;
    let forbidden = match metadata.uid() {
        0 => 0o037,
        _ => 0o077,
    };
    match metadata.mode() & forbidden {
        0 => Ok(()),
        _ => Err(TlsError::KeyPermissions {
            path: path.to_owned(),
        }),
    }
}

#[cfg(not(unix))]
fn check_key_permissions(_path: &Path) -> Result<(), TlsError> {
    Ok(())
}

/// Every certificate in a PEM file; at least one.
fn certificates(
    option: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(option, path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            option,
            path: path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            option,
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn read(option: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        option,
        path: path.to_owned(),
        source,
    })
}

/// A file under the home directory, as libpq finds it (`HOME`, then the user database).
fn home_file(relative: &str) -> Option<PathBuf> {
    std::env::home_dir().map(|home| home.join(relative))
}

/// `verify-ca`, and weaker modes with a root certificate: the chain must lead to one of
/// the roots; the name in the certificate is not compared with the host. Without roots
/// (`require`/`prefer`/`allow` with no root certificate) any certificate is accepted, as
/// libpq does. Either way the handshake signatures are checked against it.
#[derive(Debug)]
struct ChainOnly {
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let certificate = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &certificate,
                roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
