//! The audit trail: who changed what, with the configuration before and after, and the
//! attempts refused. Secrets never reach it: values under [`SECRET_KEYS`] are replaced by
//! [`REDACTED`] at any depth, whoever writes the entry.

use pgforce_store::ConnectionId;
use pgforce_store::catalog::audit::{self, AuditEntry};
use serde_json::{Value, json};

use super::Admin;
use crate::error::{Error, Result};

/// Keys whose values are secrets wherever they appear in a document the audit trail
/// records: their values are replaced by [`REDACTED`], so no caller can write one there.
const SECRET_KEYS: [&str; 6] = [
    "password",
    "client_secret",
    "refresh_token",
    "private_key",
    "access_token",
    "secret",
];

/// What the audit trail shows in place of a secret.
const REDACTED: &str = "[redacted]";

/// `value` with the values of [`SECRET_KEYS`] replaced, at any depth.
fn redacted(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, inner)| {
                    let shown = if SECRET_KEYS.contains(&key.as_str()) && !inner.is_null() {
                        Value::String(REDACTED.to_owned())
                    } else {
                        redacted(inner)
                    };
                    (key.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

impl Admin {
    /// Appends to the audit trail: `actor` (a token's name, or `cli`) did `action` to
    /// `target`, with the configuration before and after (never secrets).
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        before: Option<&Value>,
        after: Option<&Value>,
    ) -> Result<()> {
        let pg = self.engine.session().await?;
        let (before, after) = (
            before.map(|v| redacted(v).to_string()),
            after.map(|v| redacted(v).to_string()),
        );
        audit::record(
            &*pg,
            actor,
            action,
            target,
            before.as_deref(),
            after.as_deref(),
        )
        .await
        .map_err(Error::catalog)
    }

    /// Records a refused attempt in the audit trail: `actor` (a live token's name) tried
    /// `action` on `target`; `detail` (a JSON object) says what was asked and why it was
    /// refused. Repeats within a minute are counted in the entry's `attempts`, not added.
    pub async fn audit_refusal(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &Value,
    ) -> Result<()> {
        let pg = self.engine.session().await?;
        audit::record_refusal(&*pg, actor, action, target, &redacted(detail).to_string())
            .await
            .map_err(Error::catalog)
    }

    /// A connection's settings as the catalog keeps them: everything but its secrets
    /// (login URL, flow, username, client id, API version, schema, Pub/Sub endpoint, …),
    /// for the audit trail's before and after.
    pub async fn connection_settings(&self, id: ConnectionId) -> Result<Value> {
        let pg = self.engine.session().await?;
        let row = self.engine.connection_row(&pg, id).await?;
        let mut settings = row
            .settings
            .as_deref()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        settings["schema"] = json!(row.schema);
        Ok(redacted(&settings))
    }

    /// The newest `limit` entries of the audit trail, newest first.
    pub async fn audit_trail(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        let pg = self.engine.session().await?;
        audit::list(&*pg, limit).await.map_err(Error::catalog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth_and_other_values_kept() {
        let document = json!({
            "login_url": "https://login.salesforce.com",
            "password": "hunter2",
            "refresh_token": null,
            "asked": {"client_secret": "s", "api_version": "61.0"},
            "changed": ["password", "api_version"],
            "list": [{"private_key": "-----BEGIN"}],
        });
        assert_eq!(
            redacted(&document),
            json!({
                "login_url": "https://login.salesforce.com",
                "password": "[redacted]",
                "refresh_token": null,
                "asked": {"client_secret": "[redacted]", "api_version": "61.0"},
                "changed": ["password", "api_version"],
                "list": [{"private_key": "[redacted]"}],
            })
        );
    }
}
