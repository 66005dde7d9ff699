//! `pgforce.creates_in_flight`: plain creates a writer is sending, saved before each call
//! leaves.
//!
//! A create without an upsert field cannot be sent twice safely. A writer that dies
//! mid-call (a kill, a freeze past its lease) leaves its rows PENDING while Salesforce may
//! still be running the call: the writer that comes next and checks at once finds nothing
//! and sends the records again. So each wave of plain creates is saved here first, with
//! the moment after which Salesforce can no longer be running it (the client's request
//! timeout plus a margin); the next writer leaves those rows PENDING until then, and only
//! then checks them. The writer that saved a wave never waits on its own entries: it knows
//! which of its calls were answered (its timeouts it holds in memory).
//!
//! The entries are also the only creates a resume looks for in Salesforce: a PENDING create
//! no entry names was claimed but never sent (its writer died first), so it goes back to
//! NEW unchecked. That keeps a restart cheap however much the dead writer had claimed, and
//! never adopts a record someone else created with the same values. Entries are kept until
//! their moment has passed and none of their rows is PENDING any more.

use std::time::Duration;

use tokio_postgres::GenericClient;

use super::log_table;
use crate::Ident;
use crate::error::{Context as _, Result};
use crate::states::LogState;

/// Saves a wave of plain creates `holder` is about to send, settled after `hold`.
pub async fn save(
    client: &impl GenericClient,
    schema: &Ident,
    holder: &str,
    log_ids: &[i32],
    hold: Duration,
) -> Result<()> {
    let millis = i64::try_from(hold.as_millis()).unwrap_or(i64::MAX);
    client
        .execute(
            "insert into pgforce.creates_in_flight (schema_name, holder, log_ids, settle_after)
             values ($1, $2, $3, now() + make_interval(secs => $4::bigint / 1000.0))",
            &[&schema.as_str(), &holder, &log_ids, &millis],
        )
        .await
        .context(|| format!("saving the creates in flight of {schema}"))
        .map(|_| ())
}

/// Forgets the entries of `schema` whose moment has passed and whose rows are all settled
/// (none PENDING); returns how many.
pub async fn forget_settled(client: &impl GenericClient, schema: &Ident) -> Result<u64> {
    let log = log_table(schema);
    client
        .execute(
            &format!(
                "delete from pgforce.creates_in_flight f
                 where f.schema_name = $1 and f.settle_after <= now()
                   and not exists (select 1 from {log} l where l.id = any(f.log_ids) and l.state = $2)"
            ),
            &[&schema.as_str(), &LogState::Pending.as_str()],
        )
        .await
        .context(|| format!("forgetting settled creates in flight of {schema}"))
}

/// The PENDING creates other holders were sending that Salesforce may still be running,
/// each with how long until it can no longer be; forgets entries already settled.
pub async fn unsettled(
    client: &impl GenericClient,
    schema: &Ident,
    holder: &str,
) -> Result<Vec<(i32, Duration)>> {
    forget_settled(client, schema).await?;
    let log = log_table(schema);
    let rows = client
        .query(
            &format!(
                "select l.id, max(extract(epoch from f.settle_after - now()))::float8
                 from pgforce.creates_in_flight f
                 join {log} l on l.id = any(f.log_ids) and l.state = $3
                 where f.schema_name = $1 and f.holder <> $2 and f.settle_after > now()
                 group by l.id order by l.id"
            ),
            &[&schema.as_str(), &holder, &LogState::Pending.as_str()],
        )
        .await
        .context(|| format!("reading the creates in flight of {schema}"))?;
    Ok(rows
        .iter()
        .map(|row| {
            let seconds: f64 = row.get(1);
            (row.get(0), Duration::from_secs_f64(seconds.max(0.0)))
        })
        .collect())
}
