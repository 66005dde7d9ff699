//! `pgforce run`'s listener faces the internet: a client that never finishes its TLS
//! handshake, its headers or its body holds nobody else back and is closed after a time
//! limit; open connections are capped; metrics and readiness can move to a second, private
//! listener behind a scrape token; every answer carries security headers (HSTS under TLS);
//! plain HTTP on a non-loopback address is warned about at start.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pgforce_store::testing::TestDatabase;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Child;

use crate::run::{config_file, pgforce, seeded_org};
use crate::server::READ_WRITE_ACCOUNTS;

/// A `pgforce run` and the base URLs it printed, in order.
struct Daemon {
    child: Child,
    urls: Vec<String>,
}

impl Daemon {
    /// Starts `pgforce run --config config args…` and waits (bounded) until it printed
    /// `url_count` addresses (without their path).
    async fn start(config: &Path, args: &[&str], url_count: usize, stderr: Stdio) -> Self {
        let mut all = vec!["run", "--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut child = pgforce(&all)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let read = async {
            let mut urls = Vec::new();
            while urls.len() < url_count {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("pgforce run said where it serves");
                if let Some(url) = line
                    .split_whitespace()
                    .find(|w| w.starts_with("http://") || w.starts_with("https://"))
                {
                    let base = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                    urls.push(base);
                }
            }
            urls
        };
        let urls = tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .expect("pgforce run printed its addresses within a minute");
        // Keep reading stdout so the daemon never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, urls }
    }

    /// The `host:port` of the `index`th address printed.
    fn address(&self, index: usize) -> String {
        self.urls[index]
            .split("://")
            .nth(1)
            .unwrap()
            .trim_end_matches('/')
            .to_owned()
    }

    /// Stops it with SIGTERM; returns what it wrote on stderr, when piped.
    async fn stop(mut self) -> String {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            tokio::time::timeout(Duration::from_secs(20), pipe.read_to_string(&mut stderr))
                .await
                .expect("pgforce run closed stderr within 20 s of SIGTERM")
                .unwrap();
        }
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("pgforce run stopped within 20 s of SIGTERM")
            .unwrap();
        stderr
    }
}

/// A config file syncing Accounts of a small org, with `server` appended (a `[server]`
/// section, or nothing).
async fn config_with(server: &str) -> (TestDatabase, PathBuf, pgforce_emulator::testing::TestOrg) {
    let org = seeded_org(2).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, &format!("{READ_WRITE_ACCOUNTS}\n{server}"));
    (db, config, org)
}

/// A self-signed certificate for localhost and 127.0.0.1, written to PEM files in `dir`:
/// the certificate's PEM text, its path and its key's path.
pub fn tls_files(dir: &Path) -> (String, PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert.pem(), cert_path, key_path)
}

/// Reads what the server sends until it closes the connection (bounded by `within`):
/// `None` when it did not close in time.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut received)).await {
        Ok(_) => Some(String::from_utf8_lossy(&received).into_owned()),
        Err(_) => None,
    }
}

/// Sends a whole `GET path` on `stream` (kept alive) and reads its answer's head.
async fn get_keep_alive(stream: &mut TcpStream, path: &str) -> String {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buffer = vec![0_u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    String::from_utf8_lossy(&buffer[..read]).into_owned()
}

#[tokio::test]
async fn idle_tls_clients_hold_no_one_back_and_https_answers_carry_hsts() {
    let (db, config, _org) = config_with("").await;
    let dir = std::env::temp_dir().join(format!("{}-tls", db.name));
    let (cert, cert_path, key_path) = tls_files(&dir);
    let daemon = Daemon::start(
        &config,
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
        1,
        Stdio::inherit(),
    )
    .await;
    let address = daemon.address(0);

    // Three clients connect and never start their handshake.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let answer = trusting
        .get(format!("{}/healthz", daemon.urls[0]))
        .send()
        .await
        .expect("/healthz answers within 3 s while three handshakes stall");
    assert_eq!(answer.status().as_u16(), 200);
    let hsts = answer
        .headers()
        .get("strict-transport-security")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(hsts.starts_with("max-age="), "HSTS under TLS: {hsts:?}");

    drop(idle);
    daemon.stop().await;
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn unfinished_headers_and_idle_keep_alive_connections_are_closed_after_the_timeout() {
    let (_db, config, _org) = config_with("[server]\nheader_read_timeout_seconds = 1\n").await;
    let daemon = Daemon::start(&config, &[], 1, Stdio::inherit()).await;
    let address = daemon.address(0);

    // Headers that never end.
    let mut partial = TcpStream::connect(&address).await.unwrap();
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut partial, Duration::from_secs(10))
            .await
            .is_some(),
        "a request whose headers never end is closed"
    );

    // A kept-alive connection that asks nothing more.
    let mut kept = TcpStream::connect(&address).await.unwrap();
    let head = get_keep_alive(&mut kept, "/healthz").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        read_until_closed(&mut kept, Duration::from_secs(10))
            .await
            .is_some(),
        "an idle kept-alive connection is closed"
    );

    daemon.stop().await;
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_request_whose_body_never_arrives_is_answered_after_the_request_timeout() {
    let (_db, config, _org) = config_with("[server]\nrequest_timeout_seconds = 1\n").await;
    let daemon = Daemon::start(&config, &[], 1, Stdio::inherit()).await;

    let mut slow = TcpStream::connect(daemon.address(0)).await.unwrap();
    slow.write_all(
        b"POST /dashboard/login HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\nConnection: close\r\n\r\ntoken=abc",
    )
    .await
    .unwrap();
    let answer = read_until_closed(&mut slow, Duration::from_secs(10))
        .await
        .expect("the server answers and closes within 10 s");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("request_timeout_seconds"), "{answer}");

    daemon.stop().await;
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_connection_beyond_the_cap_waits_until_one_closes() {
    let (_db, config, _org) =
        config_with("[server]\nmax_connections = 2\nheader_read_timeout_seconds = 60\n").await;
    let daemon = Daemon::start(&config, &[], 1, Stdio::inherit()).await;
    let address = daemon.address(0);

    // Two connections served once and kept open fill the cap.
    let mut first = TcpStream::connect(&address).await.unwrap();
    let mut second = TcpStream::connect(&address).await.unwrap();
    for stream in [&mut first, &mut second] {
        let head = get_keep_alive(stream, "/healthz").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    let mut third = TcpStream::connect(&address).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = vec![0_u8; 4096];
    assert!(
        tokio::time::timeout(Duration::from_secs(1), third.read(&mut buffer))
            .await
            .is_err(),
        "the third connection is not served while two are open"
    );
    drop(first);
    let answer = read_until_closed(&mut third, Duration::from_secs(10))
        .await
        .expect("the third is served once one closes");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    drop(second);
    daemon.stop().await;
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn metrics_and_readiness_move_to_the_private_listener_behind_the_scrape_token() {
    let (db, config, _org) = config_with("[server]\nmetrics_token = \"scrape-secret\"\n").await;
    let daemon = Daemon::start(
        &config,
        &["--metrics-listen", "127.0.0.1:0"],
        2,
        Stdio::piped(),
    )
    .await;
    let (public, private) = (daemon.urls[0].clone(), daemon.urls[1].clone());
    assert_ne!(public, private);
    let http = reqwest::Client::new();
    let status = |path: String, token: Option<&'static str>| {
        let mut request = http.get(path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };

    // The public listener keeps the API and liveness, not metrics nor readiness.
    assert_eq!(status(format!("{public}/healthz"), None).await, 200);
    assert_eq!(
        status(format!("{public}/api/openapi.json"), None).await,
        200
    );
    assert_eq!(
        status(format!("{public}/metrics"), Some("scrape-secret")).await,
        404
    );
    assert_eq!(status(format!("{public}/readyz"), None).await, 404);

    // The private one serves the probes and metrics only; metrics need the token.
    assert_eq!(status(format!("{private}/healthz"), None).await, 200);
    assert_eq!(status(format!("{private}/readyz"), None).await, 200);
    assert_eq!(
        status(format!("{private}/api/openapi.json"), None).await,
        404
    );
    assert_eq!(
        status(format!("{private}/dashboard/login"), None).await,
        404
    );
    assert_eq!(status(format!("{private}/metrics"), None).await, 401);
    assert_eq!(
        status(format!("{private}/metrics"), Some("wrong")).await,
        401
    );
    let scraped = http
        .get(format!("{private}/metrics"))
        .bearer_auth("scrape-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status().as_u16(), 200);
    assert!(
        scraped
            .text()
            .await
            .unwrap()
            .contains("pgforce_mapping_state")
    );

    // The catalog goes away: anonymous callers learn only that it is not ready; the
    // scrape token's holder and the log get Postgres's reason.
    let admin = pgforce_store::testing::connect(&pgforce_store::testing::server_url()).await;
    admin
        .batch_execute(&format!("drop database \"{}\" with (force)", db.name))
        .await
        .unwrap();
    let anonymous = http.get(format!("{private}/readyz")).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 503);
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["id"], "not_ready");
    assert_eq!(body["message"], "not ready", "{body}");
    let detailed: serde_json::Value = http
        .get(format!("{private}/readyz"))
        .bearer_auth("scrape-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        detailed["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{detailed}"
    );
    let stderr = daemon.stop().await;
    assert!(
        stderr.contains("not ready") && stderr.contains("does not exist"),
        "the reason is logged: {stderr}"
    );
    let _ = std::fs::remove_file(config);
}

/// The value of header `name` in `response`, or "".
fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Checks the headers every answer carries over plain HTTP.
fn assert_secure_headers(response: &reqwest::Response) {
    let what = response.url().path().to_owned();
    let policy = header(response, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(
            policy.contains(directive),
            "{what}: {directive} in {policy:?}"
        );
    }
    assert_eq!(
        header(response, "x-content-type-options"),
        "nosniff",
        "{what}"
    );
    assert_eq!(header(response, "x-frame-options"), "DENY", "{what}");
    assert_eq!(header(response, "referrer-policy"), "same-origin", "{what}");
    assert_eq!(header(response, "cache-control"), "no-store", "{what}");
    assert_eq!(
        header(response, "strict-transport-security"),
        "",
        "{what}: no HSTS over plain HTTP"
    );
}

#[tokio::test]
async fn api_and_dashboard_answers_carry_security_headers() {
    let (_db, config, _org) = config_with("").await;
    let daemon = Daemon::start(&config, &[], 1, Stdio::piped()).await;
    let base = daemon.urls[0].clone();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let api = http
        .get(format!("{base}/api/v3/connections"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status().as_u16(), 401);
    assert_secure_headers(&api);
    let missing = http
        .get(format!("{base}/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    assert_secure_headers(&missing);
    let redirect = http.get(format!("{base}/dashboard")).send().await.unwrap();
    assert_eq!(redirect.status().as_u16(), 303);
    assert_secure_headers(&redirect);

    // The dashboard's page holds no inline style the policy would block: its stylesheet
    // is a file of its own.
    let login = http
        .get(format!("{base}/dashboard/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 200);
    assert_secure_headers(&login);
    let policy = header(&login, "content-security-policy");
    assert!(policy.contains("style-src 'self'"), "{policy}");
    let html = login.text().await.unwrap();
    assert!(!html.contains("<style"), "no inline style: {html}");
    assert!(!html.contains("<script"), "no script: {html}");
    assert!(html.contains("href=\"/dashboard/style.css\""), "{html}");
    let style = http
        .get(format!("{base}/dashboard/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(style.status().as_u16(), 200);
    assert!(header(&style, "content-type").starts_with("text/css"));
    assert!(style.text().await.unwrap().contains("border-collapse"));

    let stderr = daemon.stop().await;
    assert!(
        !stderr.contains("plain HTTP"),
        "no warning on loopback: {stderr}"
    );
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn plain_http_on_a_public_address_is_warned_about_at_start() {
    let (_db, config, _org) = config_with("").await;
    let daemon = Daemon::start(&config, &["--listen", "0.0.0.0:0"], 1, Stdio::piped()).await;
    let port = daemon.address(0).rsplit(':').next().unwrap().to_owned();
    let answer = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let stderr = daemon.stop().await;
    assert!(
        stderr.contains("plain HTTP")
            && stderr.contains("0.0.0.0")
            && stderr.contains("--tls-cert"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(config);
}
