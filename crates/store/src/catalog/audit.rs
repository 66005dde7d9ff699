//! The audit trail: one row per change made through the management API or to its tokens,
//! naming the token (or `cli`), the action, the target and the configuration before and
//! after (JSON, secrets never included: callers pass the API's own views).

use tokio_postgres::GenericClient;

use crate::error::{Context as _, Result};

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its id (grows with time).
    pub id: i64,
    /// When (UTC, ISO 8601).
    pub at: String,
    /// The token's name, or `cli`.
    pub actor: String,
    /// What was done (`connection.pause`, `mapping.delete`, …).
    pub action: String,
    /// To what (`connection main`, `mapping main/Account`, `token ops`).
    pub target: String,
    /// The configuration before, as JSON text.
    pub before: Option<String>,
    /// The configuration after, as JSON text.
    pub after: Option<String>,
}

/// Appends an entry; `before` and `after` are JSON texts.
pub async fn record(
    client: &impl GenericClient,
    actor: &str,
    action: &str,
    target: &str,
    before: Option<&str>,
    after: Option<&str>,
) -> Result<()> {
    client
        .execute(
            "insert into pgforce.audit_log (actor, action, target, before, after)
             values ($1, $2, $3, $4::text::jsonb, $5::text::jsonb)",
            &[&actor, &action, &target, &before, &after],
        )
        .await
        .context(|| format!("recording {action} of {target} in the audit trail"))?;
    Ok(())
}

/// The newest `limit` entries, newest first.
pub async fn list(client: &impl GenericClient, limit: i64) -> Result<Vec<AuditEntry>> {
    let rows = client
        .query(
            "select id, to_char(at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                    actor, action, target, before::text, after::text
             from pgforce.audit_log order by id desc limit $1",
            &[&limit],
        )
        .await
        .context(|| "reading the audit trail".to_owned())?;
    Ok(rows
        .iter()
        .map(|row| AuditEntry {
            id: row.get(0),
            at: row.get(1),
            actor: row.get(2),
            action: row.get(3),
            target: row.get(4),
            before: row.get(5),
            after: row.get(6),
        })
        .collect())
}
