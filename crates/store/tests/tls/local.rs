//! TLS against the local server (`DATABASE_URL`), which must have `ssl = on`.
//!
//! Its certificate is the machine's (on Debian the snakeoil one), so these tests check
//! that sessions are encrypted or plain as the mode says, and how errors read; the
//! verification modes are tested against a private server (`tls_only`).

use pgforce_store::testing::server_url;
use tokio_postgres::Config;

use super::{chain, session_uses_tls};

/// The local server URL with `parameters` added to its query.
fn url_with(parameters: &str) -> String {
    let url = server_url();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{parameters}")
}

/// Fails loudly, saying how to fix it, when the local server does not offer TLS: these
/// tests would otherwise prove nothing.
async fn require_local_tls() {
    let client = pgforce_store::connect(&url_with("sslmode=disable"))
        .await
        .expect("the local PostgreSQL answers (scripts/ensure-postgres.sh starts it)");
    let ssl: String = client.query_one("show ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "the PostgreSQL server at DATABASE_URL has ssl = off, so the TLS tests cannot run. \
         Enable it with a certificate, for example on Debian: \
         `make-ssl-cert generate-default-snakeoil` (ssl-cert package), then as superuser \
         `alter system set ssl_cert_file = '/etc/ssl/certs/ssl-cert-snakeoil.pem'; \
         alter system set ssl_key_file = '/etc/ssl/private/ssl-cert-snakeoil.key'; \
         alter system set ssl = on; select pg_reload_conf();`"
    );
}

#[tokio::test]
async fn require_encrypts_the_session() {
    require_local_tls().await;
    let client = pgforce_store::connect(&url_with("sslmode=require"))
        .await
        .unwrap();
    assert!(session_uses_tls(&client).await);
}

#[tokio::test]
async fn disable_keeps_the_session_plain() {
    require_local_tls().await;
    let client = pgforce_store::connect(&url_with("sslmode=disable"))
        .await
        .unwrap();
    assert!(!session_uses_tls(&client).await);
}

#[tokio::test]
async fn prefer_and_the_default_use_tls_when_the_server_offers_it() {
    require_local_tls().await;
    for url in [url_with("sslmode=prefer"), server_url()] {
        let client = pgforce_store::connect(&url).await.unwrap();
        assert!(session_uses_tls(&client).await, "sslmode=prefer (default)");
    }
}

#[tokio::test]
async fn keyword_value_strings_carry_the_mode() {
    require_local_tls().await;
    let config: Config = server_url().parse().unwrap();
    let mut conninfo = String::new();
    if let Some(tokio_postgres::config::Host::Tcp(host)) = config.get_hosts().first() {
        conninfo.push_str(&format!("host={host} "));
    }
    if let Some(port) = config.get_ports().first() {
        conninfo.push_str(&format!("port={port} "));
    }
    if let Some(user) = config.get_user() {
        conninfo.push_str(&format!("user={user} "));
    }
    if let Some(password) = config.get_password() {
        let password = String::from_utf8_lossy(password).replace('\\', "\\\\");
        conninfo.push_str(&format!("password='{}' ", password.replace('\'', "\\'")));
    }
    if let Some(dbname) = config.get_dbname() {
        conninfo.push_str(&format!("dbname={dbname} "));
    }
    for (mode, encrypted) in [("require", true), ("disable", false)] {
        let client = pgforce_store::connect(&format!("{conninfo}sslmode={mode}"))
            .await
            .unwrap();
        assert_eq!(session_uses_tls(&client).await, encrypted, "sslmode={mode}");
    }
}

#[tokio::test]
async fn prefer_falls_back_to_plain_when_the_handshake_fails() {
    require_local_tls().await;
    // With a root certificate, prefer verifies the chain (as libpq); one that did not issue
    // the server's certificate fails the handshake, and prefer retries without TLS.
    let unrelated_ca = UnrelatedCa::write();
    let path = unrelated_ca.0.display();
    let client = pgforce_store::connect(&url_with(&format!("sslmode=prefer&sslrootcert={path}")))
        .await
        .unwrap();
    assert!(!session_uses_tls(&client).await);
    let error = pgforce_store::connect(&url_with(&format!("sslmode=require&sslrootcert={path}")))
        .await
        .unwrap_err();
    let text = chain(&error);
    assert!(text.contains("server certificate for"), "{text}");
    assert!(text.contains("invalid peer certificate"), "{text}");
}

/// A CA certificate file that issued nothing, removed when dropped.
struct UnrelatedCa(std::path::PathBuf);

impl UnrelatedCa {
    fn write() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let certificate = params.self_signed(&key).unwrap();
        let path = std::env::temp_dir().join(format!(
            "pgforce-tls-unrelated-ca-{}.crt",
            std::process::id()
        ));
        std::fs::write(&path, certificate.pem()).unwrap();
        Self(path)
    }
}

impl Drop for UnrelatedCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn an_unreadable_root_certificate_is_named() {
    require_local_tls().await;
    let error = pgforce_store::connect(&url_with(
        "sslmode=verify-full&sslrootcert=/nonexistent/pgforce-root.crt",
    ))
    .await
    .unwrap_err();
    let text = chain(&error);
    assert!(
        text.contains("could not read sslrootcert file \"/nonexistent/pgforce-root.crt\""),
        "{text}"
    );
    assert!(text.contains("No such file or directory"), "{text}");
}

#[tokio::test]
async fn an_unknown_sslmode_is_named() {
    let error = pgforce_store::connect(&url_with("sslmode=verify-fool"))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid sslmode value: \"verify-fool\" (expected disable, allow, prefer, require, verify-ca or verify-full)"
    );
}

#[tokio::test]
async fn an_unsupported_option_is_named() {
    let error = pgforce_store::connect(&url_with("sslcrl=/etc/crl.pem"))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "connection option sslcrl is not supported by pgforce (see docs/postgres-tls.md)"
    );
}

#[tokio::test]
async fn protocol_version_bounds_pick_the_tls_version() {
    require_local_tls().await;
    for (bounds, expected) in [
        ("ssl_max_protocol_version=TLSv1.2", "TLSv1.2"),
        ("ssl_min_protocol_version=TLSv1.3", "TLSv1.3"),
    ] {
        let client = pgforce_store::connect(&url_with(&format!("sslmode=require&{bounds}")))
            .await
            .unwrap();
        let version: String = client
            .query_one(
                "select version from pg_stat_ssl where pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(version, expected, "{bounds}");
    }
}
