//! The client: one pooled HTTPS connection pool, the session, and the loop every call goes
//! through — concurrency limit, budget check, send, refresh on an expired session, retry
//! with backoff when that is safe.
//!
//! Key concepts:
//! - **Session refresh is single-flight.** A call that gets 401 INVALID_SESSION_ID asks for
//!   a refresh naming the session generation it failed with; the first caller logs in again,
//!   the others find a newer generation and reuse it, so an expiry never stampedes the token
//!   endpoint. Each call refreshes at most once.
//! - **Retries never duplicate a write.** A call is retried after a failure only when it is
//!   idempotent (reads, updates, deletes, upserts by external id) or when the failure proves
//!   the request was not applied (connection refused, 503, UNABLE_TO_LOCK_ROW). A create
//!   that timed out is returned to the caller as `Error::Transport { maybe_applied: true }`:
//!   callers make creates safe by upserting on an external id, or by checking whether the
//!   record exists before resending.
//! - **A send guard** ([`Client::guarded`]) is asked immediately before each request
//!   leaves, after everything that could take time: a caller whose right to write may lapse
//!   (a writer's lease) makes a call that finds it lapsed fail as not sent, instead of
//!   sending late.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock, Semaphore};
use tracing::Instrument as _;

use crate::auth::{self, Session};
use crate::config::ClientConfig;
use crate::error::{ApiErrorCode, Error, RecordError, Result};
use crate::usage::{ApiUsage, LIMIT_INFO_HEADER, UsageTracker, parse_limit_info};

/// Whether resending a call after an ambiguous failure could apply it twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Safe to resend: reads, updates, deletes, upserts by external id.
    Idempotent,
    /// Resending could duplicate (creates): retried only when the failure proves the
    /// request was not applied.
    NotIdempotent,
}

/// One HTTP call to make.
#[derive(Debug)]
pub(crate) struct Call {
    pub method: Method,
    /// Path on the instance (`/services/data/v62.0/...`), or a full path Salesforce gave
    /// (`nextRecordsUrl`).
    pub path: String,
    pub query: Vec<(String, String)>,
    pub json: Option<serde_json::Value>,
    /// A non-JSON body and its content type (Bulk API CSV uploads).
    pub raw: Option<(Bytes, &'static str)>,
    /// What the call accepts back (`application/json` unless said otherwise).
    pub accept: &'static str,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub idempotency: Idempotency,
}

impl Call {
    /// A call with no body, query or extra headers.
    pub fn new(method: Method, path: String, idempotency: Idempotency) -> Self {
        Self {
            method,
            path,
            query: Vec::new(),
            json: None,
            raw: None,
            accept: "application/json",
            headers: Vec::new(),
            idempotency,
        }
    }
}

/// A successful answer, read whole (Salesforce bodies are one page at most).
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body parsed as `T`, or an UnexpectedResponse naming the call.
    pub fn json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::UnexpectedResponse {
            path: path.to_owned(),
            status: self.status.as_u16(),
            detail: format!(
                "the body is not the JSON expected ({e}): {}",
                snippet(&self.body)
            ),
        })
    }
}

/// Asked immediately before each request leaves: `Some(reason)` stops it (the call fails
/// as not sent, with the reason).
pub type SendGuard = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// A Salesforce API client. Cheap to clone; clones share the session and connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// What must hold for a request of this handle to leave.
    guard: Option<SendGuard>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("login_url", &self.inner.config.login_url)
            .finish_non_exhaustive()
    }
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    /// The current session; None until the first call logs in.
    session: RwLock<Option<Session>>,
    /// Held while logging in, so concurrent refreshes coalesce into one.
    login_lock: Mutex<()>,
    /// Bounds calls in flight.
    permits: Semaphore,
    usage: UsageTracker,
    logins: AtomicU64,
}

/// The first bytes of a body, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut short: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        short.push('…');
    }
    if short.trim().is_empty() {
        "(empty body)".to_owned()
    } else {
        short
    }
}

#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "errorCode")]
    error_code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: Vec<String>,
}

impl Client {
    /// Builds a client; no call is made until the first request. A login URL (or a given
    /// session's instance) outside [`ClientConfig::allowed_hosts`] is refused here.
    pub fn new(config: ClientConfig) -> Result<Self> {
        config
            .allowed_hosts
            .check_url("login_url", &config.login_url)?;
        if let crate::Credentials::AccessToken { instance_url, .. } = &config.credentials {
            config
                .allowed_hosts
                .check_url("instance_url", instance_url)?;
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(config.allowed_hosts.redirect_policy())
            .gzip(true)
            .tcp_nodelay(true)
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout);
        if let Some(pem) = &config.extra_root_certificate_pem {
            let certificate = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| {
                Error::Setup(format!("extra root certificate is not valid PEM: {e}"))
            })?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder.build().map_err(|e| Error::Setup(e.to_string()))?;
        let permits = Semaphore::new(config.max_concurrency.max(1));
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                session: RwLock::new(None),
                login_lock: Mutex::new(()),
                permits,
                usage: UsageTracker::default(),
                logins: AtomicU64::new(0),
            }),
            guard: None,
        })
    }

    /// A handle on the same session and pool whose requests leave only while `guard`
    /// lets them (it is asked immediately before each request is sent).
    pub fn guarded(&self, guard: SendGuard) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            guard: Some(guard),
        }
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The org's API usage as last reported by `Sforce-Limit-Info` (None before any call).
    pub fn api_usage(&self) -> Option<ApiUsage> {
        self.inner.usage.snapshot()
    }

    /// HTTP calls this client has sent to the data API (retries and refreshes included).
    pub fn calls_made(&self) -> u64 {
        self.inner.usage.calls()
    }

    /// Logins performed so far (the first one and every refresh).
    pub fn logins(&self) -> u64 {
        self.inner.logins.load(Ordering::Relaxed)
    }

    /// The HTTP client (pool, TLS roots), for the streaming transports, which manage
    /// their own long-lived requests.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// Drops the session of generation `stale` and logs in again (a streaming transport
    /// found the token refused).
    pub(crate) async fn renew_session(&self, stale: &Session) -> Result<Session> {
        self.login_after(stale.generation).await
    }

    /// `/services/data/vXX.X` for the configured version.
    pub(crate) fn data_path(&self, rest: &str) -> String {
        format!("/services/data/v{}{rest}", self.inner.config.api_version)
    }

    /// The current session, logging in first if there is none.
    pub async fn session(&self) -> Result<Session> {
        if let Some(session) = self.inner.session.read().await.clone() {
            return Ok(session);
        }
        self.login_after(0).await
    }

    /// Logs in again unless someone already replaced the session of generation `stale`.
    async fn login_after(&self, stale: u64) -> Result<Session> {
        let _guard = self.inner.login_lock.lock().await;
        if let Some(current) = self.inner.session.read().await.clone()
            && current.generation > stale
        {
            return Ok(current);
        }
        let session = auth::login(&self.inner.http, &self.inner.config, stale + 1).await?;
        self.inner.logins.fetch_add(1, Ordering::Relaxed);
        *self.inner.session.write().await = Some(session.clone());
        Ok(session)
    }

    /// Runs a call: budget, concurrency, refresh on expiry, retries when safe.
    pub(crate) async fn execute(&self, call: &Call) -> Result<Answer> {
        let started = Instant::now();
        let policy = self.inner.config.retry;
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            self.check_budget()?;
            let session = self.session().await?;
            let outcome = self.send_once(call, &session).await;
            let error = match outcome {
                Ok(answer) => return Ok(answer),
                Err(error) => error,
            };
            if error.code() == Some(&ApiErrorCode::InvalidSessionId) && !refreshed {
                refreshed = true;
                tracing::warn!(path = %call.path, "session expired; logging in again");
                self.login_after(session.generation).await?;
                continue;
            }
            let safe =
                call.idempotency == Idempotency::Idempotent || !error.may_have_been_applied();
            if error.is_retryable() && safe && policy.allows(attempt, started.elapsed()) {
                let wait = policy.backoff(attempt);
                tracing::warn!(path = %call.path, attempt, wait_ms = wait.as_millis() as u64, error = %error, "retrying salesforce call");
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(error);
        }
    }

    fn check_budget(&self) -> Result<()> {
        if let (Some(budget), Some(usage)) = (
            self.inner.config.daily_call_budget,
            self.inner.usage.snapshot(),
        ) && usage.used >= budget
        {
            return Err(Error::BudgetExhausted {
                used: usage.used,
                budget,
            });
        }
        Ok(())
    }

    async fn send_once(&self, call: &Call, session: &Session) -> Result<Answer> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Setup("client is closed".to_owned()))?;
        let span = tracing::debug_span!("salesforce_call", method = %call.method, path = %call.path, status = tracing::field::Empty, duration_ms = tracing::field::Empty);
        let started = Instant::now();
        let result = async {
            let url = if call.path.starts_with("http") {
                // A full URL Salesforce gave: the session's token goes only to allowed hosts.
                let origin = reqwest::Url::parse(&call.path)
                    .map(|url| url.origin().ascii_serialization())
                    .unwrap_or_default();
                self.inner
                    .config
                    .allowed_hosts
                    .check_url("a URL in Salesforce's answer", &origin)?;
                call.path.clone()
            } else {
                format!("{}{}", session.instance_url, call.path)
            };
            let mut request = self
                .inner
                .http
                .request(call.method.clone(), url)
                .bearer_auth(session.access_token.expose_secret())
                .header(reqwest::header::ACCEPT, call.accept);
            if !call.query.is_empty() {
                request = request.query(&call.query);
            }
            for (name, value) in &call.headers {
                request = request.header(name, value);
            }
            if let Some(client) = &self.inner.config.call_options_client {
                request = request.header("Sforce-Call-Options", format!("client={client}"));
            }
            if let Some(json) = &call.json {
                request = request.json(json);
            }
            if let Some((body, content_type)) = &call.raw {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, *content_type)
                    .body(body.clone());
            }
            self.inner.usage.count_call();
            let transport = |source: reqwest::Error, sent: bool| Error::Transport {
                method: call.method.to_string(),
                path: call.path.clone(),
                maybe_applied: sent && !source.is_connect(),
                source,
            };
            // The last moment before the request leaves: a caller's right to write is
            // checked here, after everything that could have taken time.
            if let Some(reason) = self.guard.as_ref().and_then(|guard| guard()) {
                return Err(Error::NotSent {
                    method: call.method.to_string(),
                    path: call.path.clone(),
                    reason,
                });
            }
            let response = request.send().await.map_err(|e| transport(e, true))?;
            let status = response.status();
            self.observe_headers(response.headers());
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(|e| transport(e, true))?;
            tracing::Span::current().record("status", status.as_u16());
            if status.is_success() || status == StatusCode::MULTIPLE_CHOICES {
                return Ok(Answer {
                    status,
                    headers,
                    body,
                });
            }
            Err(self.error_from(call, status, &body))
        }
        .instrument(span.clone())
        .await;
        span.record("duration_ms", started.elapsed().as_millis() as u64);
        result
    }

    fn observe_headers(&self, headers: &HeaderMap) {
        if let Some(usage) = headers
            .get(LIMIT_INFO_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_limit_info)
        {
            self.inner.usage.observe(usage);
        }
    }

    fn error_from(&self, call: &Call, status: StatusCode, body: &[u8]) -> Error {
        let parsed: Option<WireError> = serde_json::from_slice::<Vec<WireError>>(body)
            .ok()
            .and_then(|errors| errors.into_iter().next())
            .or_else(|| serde_json::from_slice::<WireError>(body).ok());
        let Some(wire) = parsed else {
            return Error::UnexpectedResponse {
                path: call.path.clone(),
                status: status.as_u16(),
                detail: snippet(body),
            };
        };
        let code = ApiErrorCode::parse(&wire.error_code);
        if code == ApiErrorCode::RequestLimitExceeded {
            return Error::RequestLimitExceeded {
                path: call.path.clone(),
                message: wire.message,
            };
        }
        Error::Api {
            method: call.method.to_string(),
            path: call.path.clone(),
            status: status.as_u16(),
            error: RecordError {
                code,
                message: wire.message,
                fields: wire.fields,
            },
        }
    }
}
