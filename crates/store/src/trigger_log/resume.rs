//! Settling rows left PENDING by a writer that stopped mid-pass: the reads and writes the
//! writer's resume step needs (which creates may already be in Salesforce, adopting one,
//! returning the rest to NEW). Rows of a paused mapping, of a bulk job not read yet, and
//! creates Salesforce may still be running stay PENDING: returning them to NEW would send
//! creates nobody checked.

use std::collections::HashSet;

use tokio_postgres::{Client, GenericClient};

use super::log_table;
use crate::Ident;
use crate::catalog::leases::Fence;
use crate::error::{Context as _, Result};
use crate::own_write::OwnWrite;
use crate::states::{LastOp, LogAction, LogState};

/// A PENDING insert whose row has no `sfid` yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCreate {
    /// The log row's id.
    pub log_id: i32,
    /// The mapped row's id.
    pub record_id: i32,
    /// The captured values (hstore text).
    pub values: Option<String>,
    /// When it was claimed, moved back by the margin (`2024-01-01T10:00:00Z`, UTC).
    pub claimed_before: String,
    /// The wave (call) that last sent it: the latest `creates_in_flight` entry naming it.
    /// Creates of one wave went in one call, so they were all made or all refused
    /// together, but for the records Salesforce refused on their own.
    pub wave: i64,
}

/// PENDING inserts of `table` whose row has no `sfid` and that may have reached Salesforce
/// (a wave saved them in flight: see [`super::in_flight`]), oldest first, with when they
/// were claimed minus `margin_seconds`.
pub async fn pending_creates(
    client: &impl GenericClient,
    schema: &Ident,
    table: &Ident,
    margin_seconds: f64,
) -> Result<Vec<PendingCreate>> {
    let log = log_table(schema);
    let rows = client
        .query(
            &format!(
                "select l.id, l.record_id, l.\"values\",
                        to_char((l.updated_at - make_interval(secs => $2)) at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                        w.wave
                 from {log} l
                 join {schema}.{table} t on t.id = l.record_id and t.sfid is null
                 cross join lateral (select max(f.id) as wave from pgforce.creates_in_flight f
                                     where f.schema_name = $5 and l.id = any(f.log_ids)) w
                 where l.state = $3 and l.action = $4 and l.table_name = $1
                   and w.wave is not null
                 order by l.id"
            ),
            &[
                &table.as_str(),
                &margin_seconds,
                &LogState::Pending.as_str(),
                &LogAction::Insert.as_str(),
                &schema.as_str(),
            ],
        )
        .await
        .context(|| format!("reading pending inserts of {schema}.{table}"))?;
    Ok(rows
        .iter()
        .map(|row| PendingCreate {
            log_id: row.get(0),
            record_id: row.get(1),
            values: row.get(2),
            claimed_before: row.get(3),
            wave: row.get(4),
        })
        .collect())
}

/// Which of `sfids` a row of `table` already owns through an app insert. A row the reader
/// added for one of them (it read the record back before the Id was written back) does not
/// count: adopting the record removes that duplicate row.
pub async fn owned_sfids(
    client: &impl GenericClient,
    schema: &Ident,
    table: &Ident,
    sfids: &[&str],
) -> Result<HashSet<String>> {
    let log = log_table(schema);
    let rows = client
        .query(
            &format!(
                "select t.sfid::text from {schema}.{table} t where t.sfid = any($1) and (
                     exists (select 1 from {log} l
                             where l.table_name = $2 and l.record_id = t.id and l.action = $3)
                     or exists (select 1 from {schema}._trigger_log_archive l
                                where l.table_name = $2 and l.record_id = t.id and l.action = $3))"
            ),
            &[&sfids, &table.as_str(), &LogAction::Insert.as_str()],
        )
        .await
        .context(|| format!("checking which records rows of {schema}.{table} own"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A create found in Salesforce: its log row, its mapped row and the record's Id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found<'a> {
    /// The log row's id.
    pub log_id: i32,
    /// The mapped row's id.
    pub record_id: i32,
    /// The record's Id.
    pub sfid: &'a str,
}

/// Writes found records' Ids back to their rows and marks their creates SUCCESS, all in one
/// transaction (committed only while the lease behind `fence` holds).
pub async fn adopt(
    client: &mut Client,
    schema: &Ident,
    table: &Ident,
    found: &[Found<'_>],
    fence: Option<&Fence>,
) -> Result<()> {
    if found.is_empty() {
        return Ok(());
    }
    // The reader may be storing one of these records right now (see outcomes::record).
    for attempt in 1.. {
        match adopt_once(client, schema, table, found, fence).await {
            Err(error)
                if attempt < super::outcomes::RECORD_ATTEMPTS
                    && super::outcomes::met_a_read_back_row(&error) =>
            {
                tracing::info!(table = %table, attempt, "a found record was stored by the reader while its Id was written back; writing again to fold its row");
            }
            outcome => return outcome,
        }
    }
    unreachable!("the attempts above end in a return")
}

async fn adopt_once(
    client: &mut Client,
    schema: &Ident,
    table: &Ident,
    found: &[Found<'_>],
    fence: Option<&Fence>,
) -> Result<()> {
    let log_ids: Vec<i32> = found.iter().map(|f| f.log_id).collect();
    let record_ids: Vec<i32> = found.iter().map(|f| f.record_id).collect();
    let sfids: Vec<String> = found.iter().map(|f| f.sfid.to_owned()).collect();
    let log = log_table(schema);
    let tx = OwnWrite::on_table(schema, table)
        .fenced(fence)
        .begin(client)
        .await?;
    super::outcomes::fold_read_back(&tx, schema, table, &record_ids, &sfids).await?;
    tx.execute(
        &format!(
            "update {schema}.{table} t set sfid = u.sfid, _hc_lastop = $3, _hc_err = null
             from unnest($1::int[], $2::text[]) u(id, sfid) where t.id = u.id"
        ),
        &[&record_ids, &sfids, &LastOp::Inserted.as_str()],
    )
    .await
    .context(|| format!("writing back found records' Ids to {schema}.{table}"))?;
    tx.execute(
        &format!(
            "update {log} l set state = $3, sfid = u.sfid, processed_at = now(), updated_at = now(),
                 sf_message = 'pgforce: created before a restart; found in Salesforce, not sent again'
             from unnest($1::int[], $2::text[]) u(id, sfid) where l.id = u.id"
        ),
        &[&log_ids, &sfids, &LogState::Success.as_str()],
    )
    .await
    .context(|| format!("marking found creates SUCCESS in {log}"))?;
    tx.commit(&format!("found creates of {schema}.{table}"))
        .await
}

/// PENDING rows a resume leaves alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeftAlone<'a> {
    /// Tables whose mapping is paused: their rows wait for it to run again (a create among
    /// them is checked only then).
    pub tables: &'a [&'a str],
    /// Creates Salesforce may still be running: they are checked once it cannot be.
    pub log_ids: &'a [i32],
}

/// Returns the PENDING rows to NEW (committed only while the lease behind `fence`
/// holds), except those `left` names and those of bulk jobs not recorded yet
/// (`pgforce.writer_jobs`: their results are read, never sent again); returns how many.
pub async fn requeue_pending(
    client: &mut Client,
    schema: &Ident,
    left: LeftAlone<'_>,
    fence: Option<&Fence>,
) -> Result<u64> {
    let log = log_table(schema);
    let tx = OwnWrite::untabled().fenced(fence).begin(client).await?;
    let requeued = tx
        .execute(
            &format!(
                "update {log} l set state = $1, updated_at = now()
                 where l.state = $2 and not (l.table_name = any($3)) and not (l.id = any($4))
                   and not exists (select 1 from pgforce.writer_jobs j
                                   where j.schema_name = $5 and l.id = any(j.log_ids))"
            ),
            &[
                &LogState::New.as_str(),
                &LogState::Pending.as_str(),
                &left.tables,
                &left.log_ids,
                &schema.as_str(),
            ],
        )
        .await
        .context(|| format!("returning pending rows of {log} to NEW"))?;
    tx.commit(&format!("pending rows of {log} returned to NEW"))
        .await?;
    Ok(requeued)
}
