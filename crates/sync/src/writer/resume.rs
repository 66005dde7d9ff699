//! Settling rows left PENDING by a writer that stopped mid-pass (a crash, a kill, a lost
//! database connection, or a create whose answer was lost).
//!
//! Updates and deletes are idempotent: they go back to NEW and are sent again. Inserts
//! with an upsert field are idempotent too (they are sent as upserts). A plain create may
//! already have happened when a wave saved it in flight before sending it
//! (`pgforce_store::trigger_log::in_flight`): before sending it again, pgforce looks in
//! Salesforce for a record created since the row was claimed whose writable mapped values
//! equal the row's, and no row of the table already owns. If one is found, its Id is
//! written back and the log row becomes SUCCESS, so no record is created twice. A create
//! that was claimed but never sent goes back to NEW unchecked: a writer killed with ten
//! thousand rows claimed costs its successor one update, not a search through every record
//! created since.
//!
//! Rows of a paused mapping's table are left PENDING until it runs again: its creates can
//! be checked only then (and a bulk job of that table is read only then).

use std::collections::HashSet;

use futures_util::TryStreamExt as _;
use pgforce_salesforce::Client as Salesforce;
use pgforce_salesforce::rest::Record;
use pgforce_store::catalog::leases::Fence;
use pgforce_store::ddl::PgType;
use pgforce_store::trigger_log::resume::{self as store_resume, LeftAlone};
use pgforce_store::{Ident, Session as Postgres};
use serde_json::Value;

use super::log_error;
use super::send::record_for;
use crate::error::{CURSOR_RESTARTS, Error, Result};
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
pub(crate) const CLOCK_MARGIN_SECONDS: f64 = 300.0;

/// Settles the PENDING rows of the connection's trigger log but those `left` names (a
/// paused mapping's, creates Salesforce may still be running) and those of bulk jobs not
/// read yet. Call it only while holding the connection's writer lease (its `fence`).
pub async fn resume_pending(
    sf: &Salesforce,
    pg: &mut Postgres,
    schema: &Ident,
    mappings: &[Mapping],
    left: LeftAlone<'_>,
    fence: Option<&Fence>,
) -> Result<ResumeOutcome> {
    let mut outcome = ResumeOutcome::default();
    for mapping in mappings.iter().filter(|m| m.upsert_column.is_none()) {
        let store = |e| Error::store(&mapping.object, e);
        let pending = pending_creates(pg, schema, mapping).await?;
        if pending.is_empty() {
            continue;
        }
        let since = pending.iter().map(|(_, claimed)| claimed).min().cloned();
        let candidates = candidates(sf, mapping, &pending, since.as_deref().unwrap_or("")).await?;
        let ids: Vec<&str> = candidates
            .iter()
            .filter_map(|r| r.get("Id")?.as_str())
            .collect();
        let mut taken: HashSet<String> =
            store_resume::owned_sfids(pg, schema, &mapping.table, &ids)
                .await
                .map_err(store)?;
        // Adopted together, in one transaction per mapping.
        let mut adopted = Vec::new();
        for (change, _) in &pending {
            let wanted = record_for(mapping, change);
            let found = candidates.iter().find_map(|record| {
                let id = record.get("Id")?.as_str()?;
                (!taken.contains(id) && same_values(mapping, &wanted, record)).then_some(id)
            });
            if let Some(sfid) = found {
                taken.insert(sfid.to_owned());
                adopted.push(store_resume::Found {
                    log_id: stored(change.log_id),
                    record_id: stored(change.record_id),
                    sfid,
                });
            }
        }
        store_resume::adopt(pg, schema, &mapping.table, &adopted, fence)
            .await
            .map_err(store)?;
        outcome.found += adopted.len() as u64;
    }
    outcome.requeued = store_resume::requeue_pending(pg, schema, left, fence)
        .await
        .map_err(log_error)?;
    Ok(outcome)
}

fn stored(id: i64) -> i32 {
    i32::try_from(id).unwrap_or(i32::MAX)
}

/// PENDING inserts of a mapping whose row has no `sfid`, as changes, with when they were
/// claimed minus the clock margin (ISO 8601, UTC).
async fn pending_creates(
    pg: &Postgres,
    schema: &Ident,
    mapping: &Mapping,
) -> Result<Vec<(Change, String)>> {
    let rows = store_resume::pending_creates(pg, schema, &mapping.table, CLOCK_MARGIN_SECONDS)
        .await
        .map_err(|e| Error::store(&mapping.object, e))?;
    let mut pending = Vec::with_capacity(rows.len());
    for row in rows {
        let pairs = pgforce_store::hstore::parse(row.values.as_deref().unwrap_or_default())
            .map_err(|e| {
                Error::config(
                    &mapping.object,
                    format!("trigger log row {}: {e}", row.log_id),
                )
            })?;
        pending.push((
            Change {
                log_id: i64::from(row.log_id),
                table: mapping.table.as_str().to_owned(),
                action: Action::Insert,
                record_id: i64::from(row.record_id),
                sfid: None,
                values: pairs.into_iter().collect(),
            },
            row.claimed_before,
        ));
    }
    Ok(pending)
}

/// The most characters of values one query's `IN` list holds (SOQL statements are sent in
/// a URL; this keeps each well under its limits).
const MAX_FILTER_CHARS: usize = 3_500;

/// The records that may be the pending creates: those created since `since`, and — when
/// a filterable text field holds a value in every one of them — holding one of their
/// values in that field. A few short queries of a page each, instead of reading every
/// record the org created since the oldest claim (thousands of pages on a busy org, and
/// a cursor that the reader's own paging may release midway).
pub(crate) async fn candidates(
    sf: &Salesforce,
    mapping: &Mapping,
    pending: &[(Change, String)],
    since: &str,
) -> Result<Vec<Record>> {
    let Some((field, values)) = narrowing_field(mapping, pending) else {
        return created_since(sf, mapping, since, "").await;
    };
    let mut found = Vec::new();
    let mut chunk: Vec<String> = Vec::new();
    let mut chars = 0;
    for value in values {
        if chars + value.len() > MAX_FILTER_CHARS && !chunk.is_empty() {
            let filter = format!(" AND {field} IN ({})", chunk.join(", "));
            found.extend(created_since(sf, mapping, since, &filter).await?);
            (chunk, chars) = (Vec::new(), 0);
        }
        chars += value.len() + 2;
        chunk.push(value);
    }
    if !chunk.is_empty() {
        let filter = format!(" AND {field} IN ({})", chunk.join(", "));
        found.extend(created_since(sf, mapping, since, &filter).await?);
    }
    Ok(found)
}

/// The createable, filterable text field that tells the pending creates apart best (the
/// most distinct values) among those every one of them fills, with those values as SOQL
/// literals; `None` when no field qualifies.
fn narrowing_field(
    mapping: &Mapping,
    pending: &[(Change, String)],
) -> Option<(String, Vec<String>)> {
    let wanted: Vec<Record> = pending
        .iter()
        .map(|(change, _)| record_for(mapping, change))
        .collect();
    mapping
        .fields
        .iter()
        .filter(|f| {
            f.createable
                && f.filterable
                && f.api_name != "Id"
                && matches!(f.pg_type, PgType::Text | PgType::Varchar(_))
        })
        .filter_map(|field| {
            let mut values = Vec::with_capacity(wanted.len());
            for record in &wanted {
                match record.get(&field.api_name) {
                    Some(Value::String(value)) if !value.trim().is_empty() => {
                        values.push(pgforce_salesforce::soql::quote(value.trim()));
                    }
                    _ => return None,
                }
            }
            values.sort();
            values.dedup();
            Some((field.api_name.clone(), values))
        })
        .max_by_key(|(_, values)| values.len())
}

/// Records of the mapping's object created since `since` (already moved back by the
/// clock margin) that `filter` (SOQL added to the `WHERE`, empty for none) keeps. A
/// query whose cursor Salesforce released midway (the reader's paging shares the user's
/// few open cursors) is read again from the start, a few times more than a poll would:
/// the creates it looks for must be checked soon, before anyone edits their records (an
/// edited record no longer carries the values sent, and is not found).
async fn created_since(
    sf: &Salesforce,
    mapping: &Mapping,
    since: &str,
    filter: &str,
) -> Result<Vec<Record>> {
    let soql = format!(
        "SELECT {} FROM {} WHERE CreatedDate >= {since}{filter} ORDER BY CreatedDate",
        mapping.select_list(),
        mapping.object
    );
    let mut restarts = 0;
    loop {
        match sf
            .query(&soql)
            .try_collect()
            .await
            .map_err(|source| Error::salesforce(&mapping.object, source))
        {
            Err(error) if error.is_cursor_released() && restarts < 3 * CURSOR_RESTARTS => {
                restarts += 1;
                tracing::warn!(object = %mapping.object, error = %error.chain(), "Salesforce released the query's cursor while looking for creates in doubt; reading again");
            }
            result => return result,
        }
    }
}

/// Whether a Salesforce record carries every value a create would have sent. Dates and
/// datetimes are compared by their leading digits (Salesforce adds a time-zone suffix and
/// milliseconds); numbers by value.
pub(crate) fn same_values(mapping: &Mapping, wanted: &Record, record: &Record) -> bool {
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
