//! Settling rows left PENDING by a writer that stopped mid-pass (a crash, a kill, a lost
//! database connection, or a create whose answer was lost).
//!
//! Updates and deletes are idempotent: they go back to NEW and are sent again. Inserts
//! with an upsert field are idempotent too (they are sent as upserts). A plain create may
//! already have happened: before sending it again, pgforce looks in Salesforce for a
//! record it created since the row was claimed whose writable mapped values equal the
//! row's, and no row of the table already owns. If one is found, its Id is written back
//! and the log row becomes SUCCESS, so no record is created twice.

use std::collections::HashSet;

use futures_util::TryStreamExt as _;
use pgforce_salesforce::Client as Salesforce;
use pgforce_salesforce::rest::Record;
use pgforce_store::Ident;
use pgforce_store::ddl::PgType;
use serde_json::Value;
use tokio_postgres::Client as Postgres;

use super::pg_error;
use super::send::record_for;
use crate::error::{Error, Result};
use crate::mapping::Mapping;
use crate::plan::{Action, Change};

/// What [`resume_pending`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResumeOutcome {
    /// Rows returned to NEW, to be sent again.
    pub requeued: u64,
    /// Creates found already done in Salesforce (sfid written back, SUCCESS).
    pub found: u64,
}

/// Margin for clock differences between Postgres and Salesforce.
const CLOCK_MARGIN_SECONDS: f64 = 300.0;

/// Settles every PENDING row of the connection's trigger log. Call it only while holding
/// the connection's writer lease, before the first pass.
pub async fn resume_pending(
    sf: &Salesforce,
    pg: &mut Postgres,
    schema: &Ident,
    mappings: &[Mapping],
) -> Result<ResumeOutcome> {
    let mut outcome = ResumeOutcome::default();
    for mapping in mappings.iter().filter(|m| m.upsert_column.is_none()) {
        let pending = pending_creates(pg, schema, mapping).await?;
        if pending.is_empty() {
            continue;
        }
        let since = pending.iter().map(|(_, claimed)| claimed).min().cloned();
        let candidates = created_since(sf, mapping, since.as_deref().unwrap_or("")).await?;
        let owned = owned_sfids(pg, schema, mapping, &candidates).await?;
        let mut taken: HashSet<String> = owned;
        for (change, _) in &pending {
            let wanted = record_for(mapping, change);
            let found = candidates.iter().find_map(|record| {
                let id = record.get("Id")?.as_str()?;
                (!taken.contains(id) && same_values(mapping, &wanted, record)).then_some(id)
            });
            if let Some(sfid) = found {
                taken.insert(sfid.to_owned());
                adopt(pg, schema, mapping, change, sfid).await?;
                outcome.found += 1;
            }
        }
    }
    outcome.requeued = pg
        .execute(
            &format!(
                "update {schema}._trigger_log set state = 'NEW', updated_at = now() where state = 'PENDING'"
            ),
            &[],
        )
        .await
        .map_err(pg_error("returning pending trigger log rows to NEW"))?;
    Ok(outcome)
}

/// PENDING inserts of a mapping whose row has no `sfid`, with when they were claimed
/// minus the clock margin (ISO 8601, UTC).
async fn pending_creates(
    pg: &Postgres,
    schema: &Ident,
    mapping: &Mapping,
) -> Result<Vec<(Change, String)>> {
    let table = &mapping.table;
    let rows = pg
        .query(
            &format!(
                "select l.id, l.record_id, l.\"values\",
                        to_char((l.updated_at - make_interval(secs => $2)) at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                 from {schema}._trigger_log l
                 join {schema}.{table} t on t.id = l.record_id and t.sfid is null
                 where l.state = 'PENDING' and l.action = 'INSERT' and l.table_name = $1
                 order by l.id"
            ),
            &[&table.as_str(), &CLOCK_MARGIN_SECONDS],
        )
        .await
        .map_err(pg_error("reading pending inserts"))?;
    let mut pending = Vec::with_capacity(rows.len());
    for row in rows {
        let values: Option<String> = row.get(2);
        let pairs =
            pgforce_store::hstore::parse(values.as_deref().unwrap_or_default()).map_err(|e| {
                Error::Config {
                    object: mapping.object.clone(),
                    problem: format!("trigger log row {}: {e}", row.get::<_, i32>(0)),
                }
            })?;
        pending.push((
            Change {
                log_id: i64::from(row.get::<_, i32>(0)),
                table: table.as_str().to_owned(),
                action: Action::Insert,
                record_id: i64::from(row.get::<_, i32>(1)),
                sfid: None,
                values: pairs.into_iter().collect(),
            },
            row.get(3),
        ));
    }
    Ok(pending)
}

/// Records of the mapping's object changed since `since` (already moved back by the
/// clock margin).
async fn created_since(sf: &Salesforce, mapping: &Mapping, since: &str) -> Result<Vec<Record>> {
    let soql = format!(
        "SELECT {} FROM {} WHERE SystemModstamp >= {since} ORDER BY SystemModstamp",
        mapping.select_list(),
        mapping.object
    );
    sf.query(&soql)
        .try_collect()
        .await
        .map_err(|source| Error::Salesforce {
            object: mapping.object.clone(),
            source: Box::new(source),
        })
}

/// Which of the candidates' Ids an app-inserted row already has. A row the reader added
/// for one of them (it read the record back before the Id was written back) does not
/// count: adopting the record removes that duplicate row.
async fn owned_sfids(
    pg: &Postgres,
    schema: &Ident,
    mapping: &Mapping,
    candidates: &[Record],
) -> Result<HashSet<String>> {
    let ids: Vec<&str> = candidates
        .iter()
        .filter_map(|r| r.get("Id")?.as_str())
        .collect();
    let table = &mapping.table;
    let rows = pg
        .query(
            &format!(
                "select t.sfid::text from {schema}.{table} t where t.sfid = any($1) and (
                     exists (select 1 from {schema}._trigger_log l
                             where l.table_name = $2 and l.record_id = t.id and l.action = 'INSERT')
                     or exists (select 1 from {schema}._trigger_log_archive l
                                where l.table_name = $2 and l.record_id = t.id and l.action = 'INSERT'))"
            ),
            &[&ids, &table.as_str()],
        )
        .await
        .map_err(pg_error("checking which records rows own"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Whether a Salesforce record carries every value a create would have sent. Dates and
/// datetimes are compared by their leading digits (Salesforce adds a time-zone suffix and
/// milliseconds); numbers by value.
fn same_values(mapping: &Mapping, wanted: &Record, record: &Record) -> bool {
    let mut compared = 0;
    for field in &mapping.fields {
        let Some(want) = wanted.get(&field.api_name) else {
            continue;
        };
        let have = record.get(&field.api_name).unwrap_or(&Value::Null);
        let equal = match (want, have) {
            (Value::Null, Value::Null) => true,
            // Checkboxes are never null in Salesforce: an unset one reads false.
            (Value::Null, Value::Bool(b)) | (Value::Bool(b), Value::Null) => !b,
            (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
            (Value::String(a), Value::String(b))
                if matches!(field.pg_type, PgType::Timestamp | PgType::Date) =>
            {
                let digits = |s: &str| -> String {
                    s.chars().filter(char::is_ascii_digit).take(14).collect()
                };
                digits(a) == digits(b)
            }
            (Value::String(a), Value::String(b)) => a.trim() == b.trim(),
            (Value::String(a), Value::Null) => a.trim().is_empty(),
            (a, b) => a == b,
        };
        if !equal {
            return false;
        }
        compared += 1;
    }
    compared > 0
}

/// Writes a found record's Id back and marks the create done.
async fn adopt(
    pg: &mut Postgres,
    schema: &Ident,
    mapping: &Mapping,
    change: &Change,
    sfid: &str,
) -> Result<()> {
    let table = &mapping.table;
    let record_id = i32::try_from(change.record_id).unwrap_or(i32::MAX);
    let log_id = i32::try_from(change.log_id).unwrap_or(i32::MAX);
    let tx = pg
        .transaction()
        .await
        .map_err(pg_error("starting to adopt a record"))?;
    tx.batch_execute("set local xmlbinary = 'hex'")
        .await
        .map_err(pg_error("marking the session as pgforce's"))?;
    pgforce_store::sync_lock::lock_table(&tx, schema, table)
        .await
        .map_err(|source| Error::Store {
            object: mapping.object.clone(),
            source,
        })?;
    tx.execute(
        &format!("delete from {schema}.{table} where sfid = $2 and id <> $1"),
        &[&record_id, &sfid],
    )
    .await
    .map_err(pg_error("removing a row read back before its write-back"))?;
    tx.execute(
        &format!("update {schema}.{table} set sfid = $2, _hc_lastop = 'INSERTED', _hc_err = null where id = $1"),
        &[&record_id, &sfid],
    )
    .await
    .map_err(pg_error("writing back a found record's Id"))?;
    tx.execute(
        &format!(
            "update {schema}._trigger_log set state = 'SUCCESS', sfid = $2, processed_at = now(), updated_at = now(),
                 sf_message = 'pgforce: created before a restart; found in Salesforce, not sent again'
             where id = $1"
        ),
        &[&log_id, &sfid],
    )
    .await
    .map_err(pg_error("marking a found create SUCCESS"))?;
    tx.commit()
        .await
        .map_err(pg_error("committing a found create"))?;
    Ok(())
}
