//! The audit trail: one row per change made through the management API or to its tokens,
//! naming the token (or `cli`), the action, the target and the configuration before and
//! after (JSON, secrets never included: callers pass the API's own views).
//!
//! Refused attempts by a known token (a role too low, a connection change refused) are
//! recorded too, but aggregated: the same token refused the same action on the same target
//! within [`REFUSAL_WINDOW`] of the entry adds one to its `attempts` rather than a row, so
//! a script hammering a route it may not use adds at most one row a minute per route.
//! Anonymous refusals (`401`) are not recorded at all: anyone can make them.

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

/// How long one refusal entry gathers the same token's repeated refusals (a Postgres
/// interval).
pub const REFUSAL_WINDOW: &str = "1 minute";

/// Records a refused attempt: `actor` tried `action` on `target`, `detail` (a JSON object
/// as text) saying what was asked and why it was refused. Repeats within
/// [`REFUSAL_WINDOW`] of the first count in its `attempts` instead of adding rows.
pub async fn record_refusal(
    client: &impl GenericClient,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<()> {
    let what = || format!("recording a refused {action} of {target} in the audit trail");
    let counted = client
        .execute(
            "update pgforce.audit_log
             set after = jsonb_set(after, '{attempts}',
                                   to_jsonb(coalesce((after->>'attempts')::bigint, 1) + 1))
             where id = (select id from pgforce.audit_log
                         where actor = $1 and action = $2 and target = $3
                           and at > now() - $4::text::interval
                         order by id desc limit 1)",
            &[&actor, &action, &target, &REFUSAL_WINDOW],
        )
        .await
        .context(what)?;
    if counted == 0 {
        client
            .execute(
                "insert into pgforce.audit_log (actor, action, target, after)
                 values ($1, $2, $3, $4::text::jsonb || '{\"attempts\": 1}'::jsonb)",
                &[&actor, &action, &target, &detail],
            )
            .await
            .context(what)?;
    }
    Ok(())
}
