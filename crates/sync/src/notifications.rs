//! Notifications: what an operator should hear about, raised by the events module beside
//! the event's log line, stored in the catalog (one unacknowledged notification per type
//! and subject), listed and acknowledged through the management API, and delivered to the
//! configured webhooks.
//!
//! Delivery is at least once: a notification is claimed for a minute (so two processes
//! do not both send it), POSTed as JSON to every webhook with a timestamped HMAC-SHA256
//! signature under the webhook's secret (`X-Pgforce-Signature: t=<unix seconds>,v1=<hex>`,
//! the tag of `"<t>.<body>"`, as Stripe signs: the time is signed with the body, so a
//! receiver that refuses old timestamps refuses replays), marked delivered when every
//! webhook answered 2xx, and otherwise tried again after 2, 4, 8 … seconds (at most an
//! hour), up to [`MAX_ATTEMPTS`] times. Each attempt is signed afresh, with its own time.

use std::time::Duration;

use pgforce_store::Session;
use pgforce_store::catalog::notifications::{self, About, Notification};
use ring::hmac;
use secrecy::ExposeSecret as _;
use serde_json::json;
use tokio::sync::watch;

use crate::config::WebhookConfig;

/// Event types, as the API lists them.
pub(crate) mod kind {
    /// A mapping stopped and waits for an operator.
    pub const MAPPING_ERROR: &str = "mapping-error";
    /// A mapped field was deleted or hidden in Salesforce.
    pub const SCHEMA_CHANGED: &str = "schema-changed";
    /// The org's API allocation or credentials paused a connection.
    pub const CONNECTION_PAUSED: &str = "connection-paused";
    /// Salesforce refused changes the writer sent.
    pub const WRITE_ERRORS: &str = "write-errors";
    /// The org has used most of its daily API allocation.
    pub const API_LIMIT_NEAR: &str = "api-limit-near";
    /// The catalog's database did not answer.
    pub const POSTGRES_UNREACHABLE: &str = "postgres-unreachable";
}

/// Share of the org's daily allocation past which `api-limit-near` is raised.
const API_LIMIT_NEAR_SHARE: f64 = 0.9;

/// Deliveries tried before a notification is given up (its last error stays).
pub const MAX_ATTEMPTS: i32 = 12;

/// How long a claimed notification is left to the process that claimed it.
const CLAIM_SECONDS: f64 = 60.0;

/// How often due notifications and the org's allocation are looked at.
const EVERY: Duration = Duration::from_secs(1);

/// Stores a notification (when a catalog session is at hand). A failure is logged: the
/// event it comes with is logged and recorded already.
pub(crate) async fn raise(
    pg: Option<&Session>,
    about: About<'_>,
    event_type: &str,
    subject: &str,
    message: &str,
) {
    let Some(pg) = pg else {
        return;
    };
    match notifications::raise(pg, about, event_type, subject, message).await {
        Ok(true) => tracing::info!(event_type, subject, "notification raised"),
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(event_type, subject, error = %crate::error::chain(&error), "could not store a notification");
        }
    }
}

/// The org's API usage as each connection's Salesforce client last saw it.
pub(crate) type ApiUsageSource =
    std::sync::Arc<dyn Fn() -> Vec<(String, pgforce_salesforce::ApiUsage)> + Send + Sync>;

/// Watches the orgs' API allocation (as `api_usage` reports it) and delivers the
/// notifications stored in the catalog at `database_url` to `webhooks`, until `shutdown`
/// turns true. It opens its own session each round, so it works while the engine's pool
/// is lent out.
pub(crate) async fn run(
    database_url: String,
    api_usage: ApiUsageSource,
    webhooks: Vec<WebhookConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let mut outage = Outage::default();
    loop {
        match pgforce_store::connect(&database_url).await {
            Ok(pg) => {
                outage.over(&pg).await;
                watch_api_allocation(api_usage(), &pg).await;
                if !webhooks.is_empty() {
                    deliver_due(&http, &webhooks, &pg).await;
                }
            }
            Err(error) => {
                let error = crate::error::chain(&error);
                outage.continues(&http, &webhooks, &error).await;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// How long the catalog's database must stay unreachable before webhooks hear of it.
const OUTAGE_GRACE: Duration = Duration::from_secs(5);

/// The catalog's database being unreachable. Nothing can be stored then, so the webhooks
/// are told directly (until one delivery went through); once it answers again, a stored
/// `postgres-unreachable` notification per connection records how long it lasted.
#[derive(Debug, Default)]
struct Outage {
    since: Option<(std::time::Instant, String)>,
    told: bool,
}

impl Outage {
    async fn continues(&mut self, http: &reqwest::Client, webhooks: &[WebhookConfig], error: &str) {
        let (since, _) = self
            .since
            .get_or_insert_with(|| (std::time::Instant::now(), error.to_owned()));
        if self.told || since.elapsed() < OUTAGE_GRACE || webhooks.is_empty() {
            return;
        }
        let message = format!(
            "pgforce cannot reach its catalog database: {error}; nothing syncs until it answers again"
        );
        let notification = Notification {
            id: 0,
            connection: String::new(),
            created_at: String::new(),
            event_type: kind::POSTGRES_UNREACHABLE.to_owned(),
            subject: "catalog".to_owned(),
            message,
            acknowledged: false,
            delivery_attempts: 0,
        };
        match deliver(http, webhooks, &notification).await {
            Ok(()) => self.told = true,
            Err(problem) => {
                tracing::warn!(error = %problem, "could not tell the webhooks the catalog is unreachable");
            }
        }
    }

    async fn over(&mut self, pg: &Session) {
        let Some((since, error)) = self.since.take() else {
            return;
        };
        self.told = false;
        if since.elapsed() < OUTAGE_GRACE {
            return;
        }
        let message = format!(
            "the catalog database was unreachable for {} s: {error}",
            since.elapsed().as_secs()
        );
        match pgforce_store::catalog::connections::list(pg).await {
            Ok(connections) => {
                for connection in connections {
                    let subject = format!("connection {}", connection.name);
                    raise(
                        Some(pg),
                        About::Connection(&connection.name),
                        kind::POSTGRES_UNREACHABLE,
                        &subject,
                        &message,
                    )
                    .await;
                }
            }
            Err(error) => {
                tracing::warn!(error = %crate::error::chain(&error), "could not record the catalog's outage");
            }
        }
    }
}

/// Raises `api-limit-near` for each connection whose org reported using most of its
/// allocation.
async fn watch_api_allocation(usage: Vec<(String, pgforce_salesforce::ApiUsage)>, pg: &Session) {
    for (connection, usage) in usage {
        if usage.limit > 0 && usage.used as f64 >= API_LIMIT_NEAR_SHARE * usage.limit as f64 {
            let message = format!(
                "the org has used {} of its {} daily API requests; at the limit, pgforce pauses the connection until requests are available again",
                usage.used, usage.limit
            );
            let subject = format!("connection {connection}");
            raise(
                Some(pg),
                About::Connection(&connection),
                kind::API_LIMIT_NEAR,
                &subject,
                &message,
            )
            .await;
        }
    }
}

/// Delivers the notifications due now.
async fn deliver_due(http: &reqwest::Client, webhooks: &[WebhookConfig], pg: &Session) {
    let due = match notifications::claim_due(pg, 50, CLAIM_SECONDS).await {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(error = %crate::error::chain(&error), "could not read notifications to deliver");
            return;
        }
    };
    for notification in due {
        let outcome = deliver(http, webhooks, &notification).await;
        let recorded = match &outcome {
            Ok(()) => notifications::delivered(pg, notification.id).await,
            Err(problem) => {
                let attempts = notification.delivery_attempts + 1;
                let retry_in = (attempts < MAX_ATTEMPTS).then(|| 2_f64.powi(attempts).min(3600.0));
                tracing::warn!(notification = notification.id, attempts, error = %problem, "webhook delivery failed");
                notifications::delivery_failed(pg, notification.id, problem, retry_in).await
            }
        };
        if let Err(error) = recorded {
            tracing::warn!(notification = notification.id, error = %crate::error::chain(&error), "could not record a webhook delivery");
        }
    }
}

/// The JSON body a webhook receives.
pub(crate) fn body(notification: &Notification) -> String {
    json!({
        "id": notification.id,
        "connection": notification.connection,
        "created_at": notification.created_at,
        "event_type": notification.event_type,
        "subject": notification.subject,
        "message": notification.message,
    })
    .to_string()
}

/// The header that carries a delivery's signature.
const SIGNATURE_HEADER: &str = "x-pgforce-signature";

/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>" under secret>`.
pub(crate) fn signature(secret: &str, timestamp: u64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = hmac::Context::with_key(&key);
    signed.update(timestamp.to_string().as_bytes());
    signed.update(b".");
    signed.update(body.as_bytes());
    let hex: String = signed
        .sign()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

/// Seconds since the Unix epoch, as signatures carry them.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// POSTs one notification to every webhook; the error names each that did not take it.
async fn deliver(
    http: &reqwest::Client,
    webhooks: &[WebhookConfig],
    notification: &Notification,
) -> Result<(), String> {
    let body = body(notification);
    let timestamp = unix_now();
    let mut problems = Vec::new();
    for webhook in webhooks {
        let answer = http
            .post(&webhook.url)
            .header("content-type", "application/json")
            .header("x-pgforce-event", &notification.event_type)
            .header("x-pgforce-delivery", notification.id.to_string())
            .header(
                SIGNATURE_HEADER,
                signature(webhook.secret.expose_secret(), timestamp, &body),
            )
            .body(body.clone())
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                problems.push(format!("{} answered {}", webhook.url, response.status()));
            }
            Err(error) => {
                problems.push(format!("{}: {}", webhook.url, crate::error::chain(&error)));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_carry_their_time_and_sign_it_with_the_body() {
        // The expected tag computed apart, with Python's hmac over b"1700000000.<body>".
        let signed = signature("Jefe", 1_700_000_000, "what do ya want for nothing?");
        assert_eq!(
            signed,
            "t=1700000000,v1=1cdd0650c8be1cb0974b1788d458b1e781206cfef59b85faafc582d2e182c57e"
        );
        assert_ne!(
            signed,
            signature("Jefe", 1_700_000_001, "what do ya want for nothing?"),
            "another time, another signature"
        );
    }
}
