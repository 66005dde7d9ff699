//! Settling rows left PENDING by a writer that stopped mid-pass (a crash, a kill, a lost
//! database connection, or a create whose answer was lost).
//!
//! Updates and deletes are idempotent: they go back to NEW and are sent again. Inserts
//! with an upsert field are idempotent too (they are sent as upserts). A plain create may
//! already have happened when a wave saved it in flight before sending it
//! (`pgforce_store::trigger_log::in_flight`): before sending it again, pgforce looks in
//! Salesforce for a record created since the row was claimed whose writable mapped values
//! equal the row's, and no row of the table already owns. If one is found, its Id is
//! written back and the log row becomes SUCCESS, so no record is created twice. A record a
//! user edited before the look is found by the call that made it: when another create of
//! the same call is found, the records made at that moment by that user are its
//! (`made_by_the_same_call`). A create
//! that was claimed but never sent goes back to NEW unchecked: a writer killed with ten
//! thousand rows claimed costs its successor one update, not a search through every record
//! created since.
//!
//! Rows of a paused mapping's table are left PENDING until it runs again: its creates can
//! be checked only then (and a bulk job of that table is read only then).

use std::collections::{BTreeSet, HashSet};

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
        let since = pending.iter().map(|d| &d.claimed_before).min().cloned();
        let changes: Vec<&Change> = pending.iter().map(|doubt| &doubt.change).collect();
        let candidates = candidates(sf, mapping, &changes, since.as_deref().unwrap_or("")).await?;
        let mut taken = owned(pg, schema, mapping, &candidates).await?;
        // Adopted together, in one transaction per mapping.
        let mut adopted: Vec<(&Doubt, Record)> = Vec::new();
        let mut unmatched: Vec<&Doubt> = Vec::new();
        for doubt in &pending {
            let wanted = record_for(mapping, &doubt.change);
            let found = candidates.iter().find(|record| {
                record_id(record).is_some_and(|id| !taken.contains(id))
                    && same_values(mapping, &wanted, record)
            });
            match found {
                Some(record) => {
                    taken.extend(record_id(record).map(str::to_owned));
                    adopted.push((doubt, record.clone()));
                }
                None => unmatched.push(doubt),
            }
        }
        let edited =
            made_by_the_same_call(sf, pg, schema, mapping, &adopted, &unmatched, &mut taken)
                .await?;
        adopted.extend(edited);
        let found: Vec<store_resume::Found<'_>> = adopted
            .iter()
            .filter_map(|(doubt, record)| {
                Some(store_resume::Found {
                    log_id: stored(doubt.change.log_id),
                    record_id: stored(doubt.change.record_id),
                    sfid: record_id(record)?,
                })
            })
            .collect();
        store_resume::adopt(pg, schema, &mapping.table, &found, fence)
            .await
            .map_err(store)?;
        outcome.found += found.len() as u64;
    }
    outcome.requeued = store_resume::requeue_pending(pg, schema, left, fence)
        .await
        .map_err(log_error)?;
    Ok(outcome)
}

/// A PENDING create that may have reached Salesforce, with when it was claimed (less the
/// clock margin) and the wave (call) that last sent it.
#[derive(Debug)]
struct Doubt {
    change: Change,
    claimed_before: String,
    wave: i64,
}

fn record_id(record: &Record) -> Option<&str> {
    record.get("Id")?.as_str()
}

/// The Ids among `records` that a row of the mapping's table already owns.
async fn owned(
    pg: &Postgres,
    schema: &Ident,
    mapping: &Mapping,
    records: &[Record],
) -> Result<HashSet<String>> {
    let ids: Vec<&str> = records.iter().filter_map(record_id).collect();
    store_resume::owned_sfids(pg, schema, &mapping.table, &ids)
        .await
        .map_err(|e| Error::store(&mapping.object, e))
}

/// Creates in doubt whose values no record carries any more, yet that their call made:
/// users edit the org while a create waits to be checked (until Salesforce can no longer
/// be running its call), and an edited record no longer carries the values sent.
///
/// A wave is one call: when one of its creates was found, the call ran, and each of its
/// other creates was either made too or refused on its own. The records the call made
/// share its moment and its user, so they are read back by those (one short query per
/// wave with creates missing) and, among the ones no row owns, given to the missing
/// creates: first to the create sharing the most sent values with a record (at least
/// one), then — when as many records as creates are left — in the order the call sent
/// them, which is the order Salesforce made them in. A create left without one was
/// refused, and is sent again. A wave none of whose creates is found proves nothing (its
/// call may never have arrived): its creates are sent again, as before.
async fn made_by_the_same_call<'d>(
    sf: &Salesforce,
    pg: &Postgres,
    schema: &Ident,
    mapping: &Mapping,
    adopted: &[(&'d Doubt, Record)],
    unmatched: &[&'d Doubt],
    taken: &mut HashSet<String>,
) -> Result<Vec<(&'d Doubt, Record)>> {
    let mut found = Vec::new();
    let waves: BTreeSet<i64> = unmatched.iter().map(|d| d.wave).collect();
    for wave in waves {
        let made: Vec<&Record> = adopted
            .iter()
            .filter(|(doubt, _)| doubt.wave == wave)
            .map(|(_, record)| record)
            .collect();
        let Some(call) = CallTrace::of(&made) else {
            continue;
        };
        let made_then = format!(
            "CreatedDate >= {} AND CreatedDate < {} AND CreatedById = {}",
            pgforce_salesforce::soql::datetime_literal(call.first - 1_000),
            pgforce_salesforce::soql::datetime_literal(call.last + 2_000),
            pgforce_salesforce::soql::quote(&call.user),
        );
        let made_then = query_with_restarts(sf, mapping, &made_then).await?;
        let owned = owned(pg, schema, mapping, &made_then).await?;
        let mut spare: Vec<Record> = made_then
            .into_iter()
            .filter(|r| record_id(r).is_some_and(|id| !taken.contains(id) && !owned.contains(id)))
            .collect();
        let mut missing: Vec<&Doubt> = unmatched
            .iter()
            .copied()
            .filter(|d| d.wave == wave)
            .collect();
        // The most alike first, as long as they share a sent value.
        missing.retain(|doubt| {
            let wanted = record_for(mapping, &doubt.change);
            let best = spare
                .iter()
                .enumerate()
                .map(|(i, record)| (shared_values(mapping, &wanted, record), i))
                .filter(|(shared, _)| *shared > 0)
                .max_by_key(|(shared, i)| (*shared, std::cmp::Reverse(*i)));
            match best {
                Some((_, i)) => {
                    found.push((*doubt, spare.remove(i)));
                    false
                }
                None => true,
            }
        });
        if missing.len() == spare.len() {
            found.extend(missing.into_iter().zip(spare));
        }
    }
    for (_, record) in &found {
        taken.extend(record_id(record).map(str::to_owned));
    }
    Ok(found)
}

/// When and by whom a call made the records found of it.
struct CallTrace {
    /// The earliest and latest `CreatedDate`, in epoch milliseconds.
    first: i64,
    last: i64,
    /// `CreatedById`.
    user: String,
}

impl CallTrace {
    fn of(made: &[&Record]) -> Option<Self> {
        let mut trace: Option<Self> = None;
        for record in made {
            let at = record
                .get("CreatedDate")
                .and_then(Value::as_str)
                .and_then(pgforce_salesforce::soql::datetime_millis)?;
            let user = record.get("CreatedById").and_then(Value::as_str)?;
            match &mut trace {
                Some(trace) if trace.user == user => {
                    trace.first = trace.first.min(at);
                    trace.last = trace.last.max(at);
                }
                // One call has one user: records of several are not one call's.
                Some(_) => return None,
                None => {
                    trace = Some(Self {
                        first: at,
                        last: at,
                        user: user.to_owned(),
                    });
                }
            }
        }
        trace
    }
}

fn stored(id: i64) -> i32 {
    i32::try_from(id).unwrap_or(i32::MAX)
}

/// PENDING inserts of a mapping whose row has no `sfid`, as changes, with when they were
/// claimed minus the clock margin (ISO 8601, UTC).
async fn pending_creates(pg: &Postgres, schema: &Ident, mapping: &Mapping) -> Result<Vec<Doubt>> {
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
        pending.push(Doubt {
            change: Change {
                log_id: i64::from(row.log_id),
                table: mapping.table.as_str().to_owned(),
                action: Action::Insert,
                record_id: i64::from(row.record_id),
                sfid: None,
                values: pairs.into_iter().collect(),
            },
            claimed_before: row.claimed_before,
            wave: row.wave,
        });
    }
    Ok(pending)
}

/// The most characters of values one query's `IN` list holds (SOQL statements are sent in
/// a URL; this keeps each well under its limits).
const MAX_FILTER_CHARS: usize = 3_500;

/// The records that may be the pending creates: those created since `since` that carry,
/// in every createable, filterable text field all of the creates fill, one of their
/// values. Every such field narrows the search (a record made by a create carries all of
/// its values), so the answer is a page or so, not every record the org created since the
/// oldest claim: thousands of pages on a busy org when one field repeats across creates
/// (the same e-mail in many bursts), read through a cursor the reader's own paging may
/// release midway. The creates are split so that each query's lists stay short.
pub(crate) async fn candidates(
    sf: &Salesforce,
    mapping: &Mapping,
    pending: &[&Change],
    since: &str,
) -> Result<Vec<Record>> {
    let (fields, literals) = narrowing_fields(mapping, pending);
    if fields.is_empty() {
        return created_since(sf, mapping, since, "").await;
    }
    let mut found = Vec::new();
    let mut chunk: Vec<&Vec<String>> = Vec::new();
    let mut chars = 0;
    for create in &literals {
        let size: usize = create.iter().map(|literal| literal.len() + 2).sum();
        if chars + size > MAX_FILTER_CHARS && !chunk.is_empty() {
            let filter = in_lists(&fields, &chunk);
            found.extend(created_since(sf, mapping, since, &filter).await?);
            (chunk, chars) = (Vec::new(), 0);
        }
        chars += size;
        chunk.push(create);
    }
    if !chunk.is_empty() {
        let filter = in_lists(&fields, &chunk);
        found.extend(created_since(sf, mapping, since, &filter).await?);
    }
    Ok(found)
}

/// ` AND <field> IN (<values>)` for each field, with the values `creates` hold in it.
fn in_lists(fields: &[&str], creates: &[&Vec<String>]) -> String {
    let mut filter = String::new();
    for (i, field) in fields.iter().enumerate() {
        let mut values: Vec<&str> = creates.iter().map(|c| c[i].as_str()).collect();
        values.sort_unstable();
        values.dedup();
        filter.push_str(&format!(" AND {field} IN ({})", values.join(", ")));
    }
    filter
}

/// The createable, filterable text fields every pending create fills, and per create its
/// values in them as SOQL literals (in the fields' order); no fields when none qualifies.
fn narrowing_fields<'m>(
    mapping: &'m Mapping,
    pending: &[&Change],
) -> (Vec<&'m str>, Vec<Vec<String>>) {
    let wanted: Vec<Record> = pending
        .iter()
        .map(|change| record_for(mapping, change))
        .collect();
    let filled = |field: &str, record: &Record| match record.get(field) {
        Some(Value::String(value)) if !value.trim().is_empty() => {
            Some(pgforce_salesforce::soql::quote(value.trim()))
        }
        _ => None,
    };
    let fields: Vec<&str> = mapping
        .fields
        .iter()
        .filter(|f| {
            f.createable
                && f.filterable
                && f.api_name != "Id"
                && matches!(f.pg_type, PgType::Text | PgType::Varchar(_))
        })
        .map(|f| f.api_name.as_str())
        .filter(|field| wanted.iter().all(|record| filled(field, record).is_some()))
        .collect();
    let literals = wanted
        .iter()
        .map(|record| {
            fields
                .iter()
                .filter_map(|field| filled(field, record))
                .collect()
        })
        .collect();
    (fields, literals)
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
    query_with_restarts(sf, mapping, &format!("CreatedDate >= {since}{filter}")).await
}

/// The mapping's fields and when and by whom each record was made (`CreatedDate`,
/// `CreatedById`), of the records `condition` (SOQL) keeps, oldest first. A query whose
/// cursor Salesforce released midway (the reader's paging shares the user's few open
/// cursors) is read again from the start, a few times more than a poll would: the creates
/// it looks for must be checked soon.
async fn query_with_restarts(
    sf: &Salesforce,
    mapping: &Mapping,
    condition: &str,
) -> Result<Vec<Record>> {
    let mut fields = mapping.select_list();
    for provenance in ["CreatedDate", "CreatedById"] {
        if !mapping
            .fields
            .iter()
            .any(|f| f.api_name.eq_ignore_ascii_case(provenance))
        {
            fields.push_str(", ");
            fields.push_str(provenance);
        }
    }
    let soql = format!(
        "SELECT {fields} FROM {} WHERE {condition} ORDER BY CreatedDate, Id",
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
    let (equal, compared) = compare(mapping, wanted, record);
    compared > 0 && equal == compared
}

/// How many of the non-null values a create would have sent a record still carries: the
/// evidence that an edited record is the one a create made.
fn shared_values(mapping: &Mapping, wanted: &Record, record: &Record) -> usize {
    let sent: Record = wanted
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    compare(mapping, &sent, record).0
}

/// `(equal, compared)`: of the mapped fields `wanted` has a value for, how many `record`
/// holds the same value in.
fn compare(mapping: &Mapping, wanted: &Record, record: &Record) -> (usize, usize) {
    let (mut equal_count, mut compared) = (0, 0);
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
        compared += 1;
        equal_count += usize::from(equal);
    }
    (equal_count, compared)
}
