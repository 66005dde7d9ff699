//! Answers Salesforce would never send — truncated JSON, HTML error pages, empty bodies —
//! must become clear errors, never panics. A small local server plays the broken org.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use pgforce_salesforce::{
    AllowedHosts, Client, ClientConfig, Credentials, Error, RetryPolicy, SecretString,
};
use tokio::net::TcpListener;

const HTML_PAGE: &str =
    "<html><head><title>Service Unavailable</title></head><body>Maintenance</body></html>";

async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

fn broken_org() -> Router {
    Router::new()
        .route(
            "/services/data/v62.0/query",
            get(|| async {
                (
                    [("content-type", "application/json")],
                    r#"{"totalSize":1,"done":tr"#,
                )
            }),
        )
        .route(
            "/services/data/v62.0/limits/",
            get(|| async { (StatusCode::BAD_GATEWAY, HTML_PAGE).into_response() }),
        )
        .route(
            "/services/data/v62.0/sobjects/",
            get(|| async { HTML_PAGE }),
        )
        .route(
            "/services/data/v62.0/sobjects/Account/describe",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
}

async fn client_for_broken_org() -> Client {
    // The token answer must name this server's own address as the instance.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let instance = base.clone();
    let router = broken_org().route(
        "/services/oauth2/token",
        post(move || {
            let body = format!(r#"{{"access_token":"00D!x","instance_url":"{instance}"}}"#);
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    let credentials = Credentials::ClientCredentials {
        client_id: "id".to_owned(),
        client_secret: SecretString::from("secret"),
    };
    let mut config = ClientConfig::new(base, credentials);
    config.allowed_hosts = crate::support::loopback();
    config.retry = RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        max_elapsed: Duration::from_secs(5),
    };
    Client::new(config).unwrap()
}

fn unexpected(error: &Error) -> (u16, &str) {
    match error {
        Error::UnexpectedResponse { status, detail, .. } => (*status, detail.as_str()),
        other => panic!("expected an unexpected-response error, got {other:?}"),
    }
}

#[tokio::test]
async fn truncated_json_is_a_clear_error() {
    let client = client_for_broken_org().await;
    let error = client
        .count("SELECT COUNT() FROM Account")
        .await
        .unwrap_err();
    let (status, detail) = unexpected(&error);
    assert_eq!(status, 200);
    assert!(
        detail.contains("not the JSON expected") && detail.contains(r#"{"totalSize":1"#),
        "{detail}"
    );
    assert!(
        !error.is_retryable(),
        "a malformed 200 is not fixed by asking again"
    );
}

#[tokio::test]
async fn html_error_pages_are_retryable_errors_that_quote_the_page() {
    let client = client_for_broken_org().await;
    let error = client.limits().await.unwrap_err();
    let (status, detail) = unexpected(&error);
    assert_eq!(status, 502);
    assert!(
        detail.contains("<title>Service Unavailable</title>"),
        "{detail}"
    );
    assert!(error.is_retryable());
    assert_eq!(client.calls_made(), 2, "retried up to max_attempts");
    let error = client.describe_global().await.unwrap_err();
    assert_eq!(unexpected(&error).0, 200);
    let error = client.describe("Account").await.unwrap_err();
    let (status, detail) = unexpected(&error);
    assert_eq!((status, detail), (500, "(empty body)"));
}

#[tokio::test]
async fn a_token_endpoint_answering_html_names_its_status_and_host_not_its_page() {
    let router = Router::new().route(
        "/services/oauth2/token",
        post(|| async { (StatusCode::BAD_GATEWAY, HTML_PAGE) }),
    );
    let base = serve(router).await;
    let credentials = Credentials::ClientCredentials {
        client_id: "id".to_owned(),
        client_secret: SecretString::from("s"),
    };
    let mut config = ClientConfig::new(base.clone(), credentials);
    config.allowed_hosts = crate::support::loopback();
    let client = Client::new(config).unwrap();
    let error = client.limits().await.unwrap_err();
    let (status, detail) = unexpected(&error);
    assert_eq!(status, 502);
    let host = base.trim_start_matches("http://");
    assert!(detail.contains(host), "names the host: {detail}");
    assert!(
        !detail.contains("Maintenance") && !detail.contains("<title>"),
        "a foreign answer's body is never echoed: {detail}"
    );
}

/// A server answering every request with `{}` that counts the requests it got.
async fn counting_server() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let router = Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { ([("content-type", "application/json")], "{}") }
    });
    (serve(router).await, hits)
}

#[tokio::test]
async fn a_token_answer_naming_a_foreign_instance_is_refused_and_the_instance_gets_nothing() {
    let (foreign, hits) = counting_server().await;
    let answer = format!(r#"{{"access_token":"00D!secret","instance_url":"{foreign}"}}"#);
    let router = Router::new().route(
        "/services/oauth2/token",
        post(move || {
            let answer = answer.clone();
            async move { ([("content-type", "application/json")], answer) }
        }),
    );
    let login = serve(router).await;
    let credentials = Credentials::ClientCredentials {
        client_id: "id".to_owned(),
        client_secret: SecretString::from("s"),
    };
    let mut config = ClientConfig::new(login.clone(), credentials);
    // Only the login host is the operator's; the instance it names is nobody's.
    config.allowed_hosts =
        AllowedHosts::with_extra(&[login.trim_start_matches("http://")]).unwrap();
    let error = Client::new(config).unwrap().limits().await.unwrap_err();
    match &error {
        Error::HostNotAllowed { what, problem } => {
            assert!(what.contains("instance_url"), "{error}");
            assert!(problem.contains("*.my.salesforce.com"), "{error}");
        }
        other => panic!("expected a refused instance, got {other:?}"),
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the token never left");
}

#[tokio::test]
async fn a_login_url_outside_the_allowed_hosts_is_refused_before_anything_is_sent() {
    let (foreign, hits) = counting_server().await;
    let credentials = Credentials::ClientCredentials {
        client_id: "id".to_owned(),
        client_secret: SecretString::from("s"),
    };
    let error = Client::new(ClientConfig::new(foreign, credentials))
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&error, Error::HostNotAllowed { what, .. } if what == "login_url"),
        "{error:?}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
