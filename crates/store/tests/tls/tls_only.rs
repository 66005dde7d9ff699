//! The verification modes, client certificates, channel binding and LISTEN against a
//! private server that accepts only TLS over TCP, with certificates the test issued.

use std::time::Duration;

use pgforce_store::notify::Listener;

use super::server::{CERT_USER, SCRAM_PASSWORD, SCRAM_USER, SERVER_NAME, TlsServer};
use super::{chain, session_uses_tls};

/// How long a notification may take before the test fails.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn verify_full_with_the_servers_ca_connects() {
    let server = TlsServer::start().await;
    let ca = server.ca.display();
    // URL form, by the name in the certificate.
    let client =
        pgforce_store::connect(&server.url(&format!("sslmode=verify-full&sslrootcert={ca}")))
            .await
            .unwrap();
    assert!(session_uses_tls(&client).await);
}

#[tokio::test]
async fn verify_full_with_a_wrong_host_name_fails_naming_the_name() {
    let server = TlsServer::start().await;
    let ca = server.ca.display();
    let error = pgforce_store::connect(&server.conninfo(
        "wrong.test",
        &format!("sslmode=verify-full sslrootcert={ca}"),
    ))
    .await
    .unwrap_err();
    let text = chain(&error);
    assert!(
        text.starts_with("connecting to PostgreSQL at wrong.test:"),
        "{text}"
    );
    assert!(
        text.contains("server certificate for \"wrong.test\" rejected"),
        "{text}"
    );
    assert!(
        text.contains("certificate not valid for name \"wrong.test\""),
        "rustls's reason: {text}"
    );
}

#[tokio::test]
async fn verify_ca_with_the_right_ca_ignores_the_host_name() {
    let server = TlsServer::start().await;
    let ca = server.ca.display();
    let client = pgforce_store::connect(
        &server.conninfo("wrong.test", &format!("sslmode=verify-ca sslrootcert={ca}")),
    )
    .await
    .unwrap();
    assert!(session_uses_tls(&client).await);
}

#[tokio::test]
async fn verify_ca_with_another_ca_fails() {
    let server = TlsServer::start().await;
    let other = server.other_ca.display();
    let error = pgforce_store::connect(&server.conninfo(
        SERVER_NAME,
        &format!("sslmode=verify-ca sslrootcert={other}"),
    ))
    .await
    .unwrap_err();
    let text = chain(&error);
    assert!(
        text.contains("server certificate for \"localhost\" rejected"),
        "{text}"
    );
    assert!(text.contains("UnknownIssuer"), "{text}");
}

#[tokio::test]
async fn require_checks_nothing_without_a_root_certificate_and_the_chain_with_one() {
    let server = TlsServer::start().await;
    let client = pgforce_store::connect(&server.conninfo("wrong.test", "sslmode=require"))
        .await
        .unwrap();
    assert!(session_uses_tls(&client).await);
    let other = server.other_ca.display();
    let error = pgforce_store::connect(
        &server.conninfo(SERVER_NAME, &format!("sslmode=require sslrootcert={other}")),
    )
    .await
    .unwrap_err();
    assert!(chain(&error).contains("UnknownIssuer"), "{}", chain(&error));
}

#[tokio::test]
async fn disable_is_refused_by_a_tls_only_server_in_its_own_words() {
    let server = TlsServer::start().await;
    let error = pgforce_store::connect(&server.conninfo(SERVER_NAME, "sslmode=disable"))
        .await
        .unwrap_err();
    assert_eq!(error.sqlstate(), Some("28000"), "{}", chain(&error));
    let text = chain(&error);
    assert!(text.contains("no pg_hba.conf entry"), "{text}");
    assert!(text.contains("no encryption"), "{text}");
}

#[tokio::test]
async fn allow_retries_with_tls_when_the_plain_session_is_refused() {
    let server = TlsServer::start().await;
    let client = pgforce_store::connect(&server.conninfo(SERVER_NAME, "sslmode=allow"))
        .await
        .unwrap();
    assert!(session_uses_tls(&client).await);
}

#[tokio::test]
async fn a_client_certificate_authenticates_where_the_server_requires_one() {
    let server = TlsServer::start().await;
    let (ca, cert, key) = (
        server.ca.display(),
        server.client_cert.display(),
        server.client_key.display(),
    );
    let with_certificate = server
        .conninfo(
            SERVER_NAME,
            &format!("sslmode=verify-full sslrootcert={ca} sslcert={cert} sslkey={key}"),
        )
        .replace("user=postgres", &format!("user={CERT_USER}"));
    let client = pgforce_store::connect(&with_certificate).await.unwrap();
    let user: String = client
        .query_one("select current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, CERT_USER);

    let without = server
        .conninfo(
            SERVER_NAME,
            &format!("sslmode=verify-full sslrootcert={ca}"),
        )
        .replace("user=postgres", &format!("user={CERT_USER}"));
    let error = pgforce_store::connect(&without).await.unwrap_err();
    assert_eq!(error.sqlstate(), Some("28000"), "{}", chain(&error));
}

#[tokio::test]
async fn a_client_key_others_can_read_is_refused_as_libpq_does() {
    use std::os::unix::fs::PermissionsExt as _;

    let server = TlsServer::start().await;
    std::fs::set_permissions(&server.client_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (cert, key) = (server.client_cert.display(), server.client_key.display());
    let error = pgforce_store::connect(&server.conninfo(
        SERVER_NAME,
        &format!("sslmode=require sslcert={cert} sslkey={key}"),
    ))
    .await
    .unwrap_err();
    let text = chain(&error);
    assert!(
        text.contains(&format!(
            "private key file \"{key}\" has group or world access"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn scram_uses_channel_binding_over_tls() {
    let server = TlsServer::start().await;
    // channel_binding=require succeeds only with SCRAM-SHA-256-PLUS, which needs the
    // server certificate's hash from the TLS layer.
    let conninfo = server
        .conninfo(SERVER_NAME, "sslmode=require channel_binding=require")
        .replace(
            "user=postgres",
            &format!("user={SCRAM_USER} password={SCRAM_PASSWORD}"),
        );
    let client = pgforce_store::connect(&conninfo).await.unwrap();
    assert!(session_uses_tls(&client).await);
}

#[tokio::test]
async fn connection_errors_never_show_the_password() {
    let server = TlsServer::start().await;
    let ca = server.ca.display();
    let conninfo = server
        .conninfo(
            "wrong.test",
            &format!("sslmode=verify-full sslrootcert={ca}"),
        )
        .replace(
            "user=postgres",
            &format!("user={SCRAM_USER} password={SCRAM_PASSWORD}"),
        );
    let error = pgforce_store::connect(&conninfo).await.unwrap_err();
    for text in [chain(&error), format!("{error:?}")] {
        assert!(!text.contains(SCRAM_PASSWORD), "{text}");
    }
}

#[tokio::test]
async fn unix_socket_sessions_never_try_tls_as_in_libpq() {
    let server = TlsServer::start().await;
    let client = pgforce_store::connect(&server.socket_conninfo("sslmode=verify-full"))
        .await
        .unwrap();
    assert!(!session_uses_tls(&client).await);
}

#[tokio::test]
async fn a_listen_session_over_tls_receives_notifications() {
    let server = TlsServer::start().await;
    let ca = server.ca.display();
    let url = server.url(&format!("sslmode=verify-full&sslrootcert={ca}"));
    // The server takes no plain TCP sessions, so the listening session is a TLS one.
    let mut listener = Listener::listen(&url, "pgforce_tls_test").await.unwrap();
    let client = pgforce_store::connect(&url).await.unwrap();
    client
        .batch_execute("notify pgforce_tls_test, 'ping'")
        .await
        .unwrap();
    let woken = tokio::time::timeout(NOTIFY_TIMEOUT, listener.notified())
        .await
        .expect("the notification arrives within the timeout");
    assert!(woken, "the listening session is still open");
}

#[tokio::test]
async fn hostaddr_without_a_host_name_still_uses_tls() {
    let server = TlsServer::start().await;
    let ca = server.ca.display();
    for mode in ["prefer", "require", "verify-ca"] {
        let conninfo = format!(
            "hostaddr=127.0.0.1 port={} user=postgres dbname=postgres sslmode={mode} sslrootcert={ca}",
            server.port
        );
        let client = pgforce_store::connect(&conninfo).await.unwrap();
        assert!(session_uses_tls(&client).await, "sslmode={mode}");
    }
}

#[tokio::test]
async fn pooled_sessions_keep_verify_full_and_name_a_wrong_host() {
    let server = TlsServer::start().await;
    let ca = server.ca.display();
    let options = pgforce_store::PoolOptions {
        size: 1,
        wait: Duration::from_secs(10),
    };
    let url = server.url(&format!("sslmode=verify-full&sslrootcert={ca}"));
    let pool = pgforce_store::Pool::new(&url, options).unwrap();
    let session = pool.get().await.unwrap();
    assert!(session_uses_tls(&session).await);

    let wrong = server.conninfo(
        "wrong.test",
        &format!("sslmode=verify-full sslrootcert={ca}"),
    );
    let pool = pgforce_store::Pool::new(&wrong, options).unwrap();
    let error = pool.get().await.err().unwrap();
    let text = chain(&error);
    assert!(
        text.starts_with("connecting to PostgreSQL at wrong.test:")
            && text.contains("sslmode=verify-full"),
        "{text}"
    );
    assert!(
        text.contains("server certificate for \"wrong.test\" rejected"),
        "{text}"
    );
}
