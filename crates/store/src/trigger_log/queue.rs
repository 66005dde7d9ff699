//! What waits in a connection's trigger log: counts and the changes the writer is stuck on
//! (for `pgforce status`), unsent changes of one table (for reconcile), and sending rows
//! again.

use tokio_postgres::GenericClient;

use super::log_table;
use crate::Ident;
use crate::error::{Context as _, Result};
use crate::states::{LogAction, LogState};

/// Rows of the trigger log by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Waiting to be sent.
    pub new: u64,
    /// Being sent.
    pub pending: u64,
    /// Held back behind a refused insert.
    pub held: u64,
    /// Refused by Salesforce.
    pub failed: u64,
    /// Whole seconds since the oldest change not sent yet (NEW, PENDING or HELD) was
    /// captured: how far the writer lags.
    pub oldest_unsent_seconds: Option<u64>,
}

/// Counts the rows waiting or stuck.
pub async fn counts(client: &impl GenericClient, schema: &Ident) -> Result<QueueCounts> {
    let log = log_table(schema);
    let row = client
        .query_one(
            &format!(
                "select count(*) filter (where state = $1), count(*) filter (where state = $2),
                        count(*) filter (where state = $3), count(*) filter (where state = $4),
                        floor(extract(epoch from now() - min(created_at) filter (where state in ($1, $2, $3))))::bigint
                 from {log}"
            ),
            &[
                &LogState::New.as_str(),
                &LogState::Pending.as_str(),
                &LogState::Held.as_str(),
                &LogState::Failed.as_str(),
            ],
        )
        .await
        .context(|| format!("counting the rows of {log}"))?;
    let count = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or_default();
    Ok(QueueCounts {
        new: count(0),
        pending: count(1),
        held: count(2),
        failed: count(3),
        oldest_unsent_seconds: row
            .get::<_, Option<i64>>(4)
            .map(|s| u64::try_from(s).unwrap_or_default()),
    })
}

/// A change the writer cannot send as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckChange {
    /// The log row's id.
    pub log_id: i32,
    /// FAILED or HELD.
    pub state: LogState,
    /// The mapped table.
    pub table: String,
    /// The mapped row's id.
    pub record_id: Option<i32>,
    /// What was captured.
    pub action: String,
    /// Salesforce's (or pgforce's) reason.
    pub message: String,
}

/// The first `limit` FAILED or HELD rows, oldest first.
pub async fn stuck(
    client: &impl GenericClient,
    schema: &Ident,
    limit: i64,
) -> Result<Vec<StuckChange>> {
    let log = log_table(schema);
    let rows = client
        .query(
            &format!(
                "select id, state::text, table_name::text, record_id, action::text, coalesce(sf_message, '')
                 from {log} where state = any($2) order by id limit $1"
            ),
            &[
                &limit,
                &LogState::texts(&[LogState::Failed, LogState::Held]),
            ],
        )
        .await
        .context(|| format!("reading the failed rows of {log}"))?;
    Ok(rows
        .iter()
        .map(|row| StuckChange {
            log_id: row.get(0),
            state: LogState::parse(row.get(1)),
            table: row.get(2),
            record_id: row.get(3),
            action: row.get(4),
            message: row.get(5),
        })
        .collect())
}

/// How many changes of `table` have not reached Salesforce (NEW, PENDING, HELD, FAILED).
pub async fn unsent_count(
    client: &impl GenericClient,
    schema: &Ident,
    table: &Ident,
) -> Result<u64> {
    let log = log_table(schema);
    let row = client
        .query_one(
            &format!("select count(*) from {log} where table_name = $1 and state = any($2)"),
            &[&table.as_str(), &LogState::texts(&LogState::UNSENT)],
        )
        .await
        .context(|| format!("counting unsent changes of {schema}.{table}"))?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or_default())
}

/// The rows of `table` whose insert is queued or failed (not lost: unsent).
pub async fn unsent_inserts(
    client: &impl GenericClient,
    schema: &Ident,
    table: &Ident,
) -> Result<Vec<i32>> {
    let log = log_table(schema);
    let rows = client
        .query(
            &format!(
                "select distinct record_id from {log}
                 where table_name = $1 and action = $2 and state = any($3) and record_id is not null"
            ),
            &[
                &table.as_str(),
                &LogAction::Insert.as_str(),
                &LogState::texts(&LogState::UNSENT),
            ],
        )
        .await
        .context(|| format!("reading queued inserts of {schema}.{table}"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Sets the FAILED changes of `table` back to NEW; returns how many.
pub async fn requeue_failed(
    client: &impl GenericClient,
    schema: &Ident,
    table: &Ident,
) -> Result<u64> {
    let log = log_table(schema);
    client
        .execute(
            &format!(
                "update {log} set state = $2, updated_at = now() where table_name = $1 and state = $3"
            ),
            &[
                &table.as_str(),
                &LogState::New.as_str(),
                &LogState::Failed.as_str(),
            ],
        )
        .await
        .context(|| format!("queueing failed changes of {schema}.{table} again"))
}

/// Queues the rows `ids` of `table` that have no `sfid` as inserts, as Heroku Connect's
/// `hc_capture_insert_from_row` does; returns how many.
pub async fn capture_inserts(
    client: &impl GenericClient,
    schema: &Ident,
    table: &Ident,
    ids: &[i32],
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    client
        .execute(
            &format!(
                "select {schema}.hc_capture_insert_from_row(hstore(t.*), $1) from {schema}.{table} t
                 where t.id = any($2) and t.sfid is null"
            ),
            &[&table.as_str(), &ids],
        )
        .await
        .context(|| format!("queueing rows of {schema}.{table} that never reached Salesforce"))
}

/// Sets the unsent changes of `table` aside (IGNORED, with `reason`), when its mapping is
/// removed and nothing will send them; returns how many.
pub async fn set_aside(
    client: &impl GenericClient,
    schema: &Ident,
    table: &Ident,
    reason: &str,
) -> Result<u64> {
    let log = log_table(schema);
    client
        .execute(
            &format!(
                "update {log} set state = $2, sf_message = $3, processed_at = now(), updated_at = now()
                 where table_name = $1 and state = any($4)"
            ),
            &[
                &table.as_str(),
                &LogState::Ignored.as_str(),
                &reason,
                &LogState::texts(&[LogState::New, LogState::Held, LogState::Pending]),
            ],
        )
        .await
        .context(|| format!("setting aside unsent changes of {schema}.{table}"))
}

/// A change Salesforce refused, as the management API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedWrite {
    /// The log row's id.
    pub log_id: i64,
    /// The mapped table.
    pub table: String,
    /// The mapped row's id.
    pub record_id: Option<i32>,
    /// Salesforce's reason (`CODE: message`).
    pub message: String,
    /// When the change was captured (UTC, ISO 8601).
    pub created_at: String,
}

/// FAILED changes captured in the last `hours` (of `table` only, when given), newest
/// first, at most `limit`.
pub async fn failed_since(
    client: &impl GenericClient,
    schema: &Ident,
    table: Option<&str>,
    hours: f64,
    limit: i64,
) -> Result<Vec<FailedWrite>> {
    let log = log_table(schema);
    let rows = client
        .query(
            &format!(
                "select id::bigint, table_name::text, record_id, coalesce(sf_message, ''),
                        to_char(created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
                 from {log}
                 where state = $1 and created_at > now() - make_interval(secs => $2::float8 * 3600)
                   and ($3::text is null or table_name = $3)
                 order by id desc limit $4"
            ),
            &[&LogState::Failed.as_str(), &hours, &table, &limit],
        )
        .await
        .context(|| format!("listing the failed changes of {log}"))?;
    Ok(rows
        .iter()
        .map(|row| FailedWrite {
            log_id: row.get(0),
            table: row.get(1),
            record_id: row.get(2),
            message: row.get(3),
            created_at: row.get(4),
        })
        .collect())
}

/// Per mapped table: changes not sent yet (NEW, PENDING, HELD) and changes refused
/// (FAILED), as Heroku Connect's mapping `counts` give them.
pub async fn unsent_and_failed_by_table(
    client: &impl GenericClient,
    schema: &Ident,
) -> Result<std::collections::HashMap<String, (u64, u64)>> {
    let log = log_table(schema);
    let rows = client
        .query(
            &format!(
                "select table_name::text, count(*) filter (where state = any($1)),
                        count(*) filter (where state = $2)
                 from {log} group by table_name"
            ),
            &[
                &LogState::texts(&[LogState::New, LogState::Pending, LogState::Held]),
                &LogState::Failed.as_str(),
            ],
        )
        .await
        .context(|| format!("counting unsent and failed changes in {log}"))?;
    let count = |row: &tokio_postgres::Row, i: usize| {
        u64::try_from(row.get::<_, i64>(i)).unwrap_or_default()
    };
    Ok(rows
        .iter()
        .map(|row| (row.get(0), (count(row, 1), count(row, 2))))
        .collect())
}

/// What an operator decided for a change Salesforce refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedDecision {
    /// Send it again (NEW): a re-queued insert goes with the row's current values, and
    /// the changes held behind it follow.
    Retry,
    /// Give it up (IGNORED): the changes held behind it are released.
    Ignore,
}

/// Applies `decision` to the FAILED change `log_id`, noting `who` decided in its
/// message; `false` when `log_id` is not a FAILED change of this log.
pub async fn decide_failed(
    client: &impl GenericClient,
    schema: &Ident,
    log_id: i64,
    decision: FailedDecision,
    who: &str,
) -> Result<bool> {
    let log = log_table(schema);
    let (state, verb) = match decision {
        FailedDecision::Retry => (LogState::New, "sent again"),
        FailedDecision::Ignore => (LogState::Ignored, "ignored"),
    };
    let id = i32::try_from(log_id).unwrap_or(i32::MAX);
    let changed = client
        .execute(
            &format!(
                "update {log} set state = $2, updated_at = now(),
                     sf_message = 'pgforce: ' || $4 || ' by ' || $5 || ' after: ' || coalesce(sf_message, '')
                 where id = $1 and state = $3"
            ),
            &[&id, &state.as_str(), &LogState::Failed.as_str(), &verb, &who],
        )
        .await
        .context(|| format!("setting failed change {log_id} of {log} {state}"))?;
    if changed > 0 && decision == FailedDecision::Retry {
        // Wake the writer now rather than at its next safety-net poll.
        let channel = crate::ddl::trigger_log_channel(schema);
        client
            .execute("select pg_notify($1, 'ping')", &[&channel])
            .await
            .context(|| format!("waking the writer of {log}"))?;
    }
    Ok(changed > 0)
}
