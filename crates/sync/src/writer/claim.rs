//! Taking trigger-log rows to work on, as changes the planner understands.
//!
//! Before claiming, refused inserts hold back what depends on them (ordered writes only;
//! see `pgforce_store::trigger_log::claim`). A row set back to NEW after it was processed
//! (a re-queue) is an insert the user fixed: it is sent with the row's current values,
//! not the ones captured before the fix.

use std::collections::HashMap;

use pgforce_store::table::rows;
use pgforce_store::trigger_log::claim::{self as store_claim, ClaimRules, ClaimedRow};
use pgforce_store::{Ident, LogAction, Session as Postgres};

use super::{Pass, log_error};
use crate::error::{Error, Result};
use crate::mapping::Mapping;
use crate::plan::Change;

/// Claims up to `limit` NEW log rows, oldest first, marking them PENDING; returns them as
/// changes and how many rows were newly held back.
pub(super) async fn claim(
    pass: &Pass<'_>,
    pg: &mut Postgres,
    limit: i64,
) -> Result<(Vec<Change>, u64)> {
    let rules = ClaimRules {
        links: &pass.links,
        hold: pass.policy.hold_rule(),
        waiting: pass.waiting,
        limit,
    };
    let fence = pass.fence()?;
    let (rows, held) = store_claim::claim(pg, pass.schema, rules, fence.as_ref())
        .await
        .map_err(log_error)?;
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        changes.push(change_of(pg, pass, row).await?);
    }
    Ok((changes, held))
}

/// A claimed row as a change: its captured values, or a re-queued insert's current ones.
pub(super) async fn change_of(pg: &Postgres, pass: &Pass<'_>, row: ClaimedRow) -> Result<Change> {
    let mut values = row.values;
    if row.requeued
        && row.action == LogAction::Insert
        && let (Some(mapping), Some(record_id)) =
            (pass.by_table.get(row.table.as_str()), row.record_id)
        && let Some(current) = current_values(pg, pass.schema, mapping, record_id).await?
    {
        values = Some(current);
    }
    let pairs = pgforce_store::hstore::parse(values.as_deref().unwrap_or_default())
        .map_err(|e| Error::config(&row.table, format!("trigger log row {}: {e}", row.log_id)))?;
    Ok(Change {
        log_id: i64::from(row.log_id),
        table: row.table,
        action: row.action,
        record_id: i64::from(row.record_id.unwrap_or_default()),
        sfid: row.sfid,
        values: pairs.into_iter().collect(),
    })
}

/// A mapped row's current values as hstore text (bookkeeping columns left out).
pub(super) async fn current_values(
    pg: &Postgres,
    schema: &Ident,
    mapping: &Mapping,
    record_id: i32,
) -> Result<Option<String>> {
    rows::current_values(pg, schema, &mapping.table, record_id)
        .await
        .map_err(|e| Error::store(&mapping.object, e))
}

/// The rows' `sfid`s now (record id → sfid), for changes captured before their insert
/// was written. A row deleted since has none in its table; its insert's log row keeps
/// the Id (its record lives in Salesforce until the row's delete, queued later, is sent).
pub(super) async fn current_sfids(
    pg: &Postgres,
    schema: &Ident,
    mapping: &Mapping,
    record_ids: &[i32],
) -> Result<HashMap<i64, String>> {
    let store = |e| Error::store(&mapping.object, e);
    let mut sfids = rows::current_sfids(pg, schema, &mapping.table, record_ids)
        .await
        .map_err(store)?;
    let gone: Vec<i32> = record_ids
        .iter()
        .copied()
        .filter(|id| !sfids.contains_key(&i64::from(*id)))
        .collect();
    if !gone.is_empty() {
        let logged = store_claim::logged_sfids(pg, schema, mapping.table.as_str(), &gone)
            .await
            .map_err(store)?;
        sfids.extend(logged);
    }
    Ok(sfids)
}

/// Puts claimed rows back to NEW (to be sent again, in order, by a later pass).
pub(super) async fn unclaim(pass: &Pass<'_>, pg: &mut Postgres, log_ids: &[i64]) -> Result<()> {
    let fence = pass.fence()?;
    store_claim::unclaim(pg, pass.schema, log_ids, fence.as_ref())
        .await
        .map_err(log_error)
}
