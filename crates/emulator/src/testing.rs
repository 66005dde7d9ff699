//! Test support (feature `test-support`): an emulator on `127.0.0.1:0` for one test.
//!
//! Each [`TestOrg`] is a separate org with its own listeners, so tests run in parallel and
//! share nothing. Dropping it shuts the server down.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{Emulator, EmulatorConfig, Listeners, generate_tls_identity};

/// A running emulator for one test.
#[derive(Debug)]
pub struct TestOrg {
    pub emulator: Emulator,
    /// `http://127.0.0.1:<port>`.
    pub http_url: String,
    /// `https://localhost:<port>`.
    pub https_url: String,
    /// PEM of the CA that signed the HTTPS certificate.
    pub ca_pem: String,
    /// The Pub/Sub API's `host:port` (`localhost:<port>`, TLS with the same CA).
    pub pubsub_endpoint: String,
    /// Tells both servers to stop (HTTP(S) and Pub/Sub).
    shutdown: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

impl TestOrg {
    /// Starts an emulator with the default configuration.
    pub async fn start() -> Self {
        Self::start_with(EmulatorConfig::default()).await
    }

    /// Starts an emulator with a configuration.
    pub async fn start_with(config: EmulatorConfig) -> Self {
        let emulator = Emulator::new(config).expect("test configuration is valid");
        let identity = generate_tls_identity().expect("TLS identity can be generated");
        let http = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let https = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let http_addr: SocketAddr = http.local_addr().expect("bound listener has an address");
        let https_addr: SocketAddr = https.local_addr().expect("bound listener has an address");
        let pubsub = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let pubsub_addr: SocketAddr = pubsub.local_addr().expect("bound listener has an address");
        let (shutdown, stopped) = watch::channel(false);
        let tls = identity.server_config;
        let listeners = Listeners {
            http: Some(http),
            https: Some((https, std::sync::Arc::clone(&tls))),
        };
        let server = emulator.clone();
        let task = tokio::spawn(async move {
            let until_stopped = |mut stopped: watch::Receiver<bool>| async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            tokio::join!(
                server.run(listeners, until_stopped(stopped.clone())),
                server.run_pubsub(pubsub, tls, until_stopped(stopped)),
            );
        });
        Self {
            emulator,
            http_url: format!("http://{http_addr}"),
            https_url: format!("https://localhost:{}", https_addr.port()),
            ca_pem: identity.ca_pem,
            pubsub_endpoint: format!("localhost:{}", pubsub_addr.port()),
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Calls the control API (`/__emulator{path}`) and returns its JSON answer (null when
    /// empty). Panics when the call fails: it is for tests.
    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut request =
            reqwest::Client::new().request(method, format!("{}/__emulator{path}", self.http_url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the control API answers");
        let status = response.status();
        let text = response
            .text()
            .await
            .expect("the control API's answer is readable");
        assert!(status.is_success(), "control API {path}: {status}: {text}");
        if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).expect("the control API answers JSON")
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(true);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestOrg {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(true);
        }
    }
}
