//! Taking trigger-log rows to work on, and giving them back.
//!
//! Before claiming, held-back rows whose failed insert is gone (re-queued, ignored, or the
//! record got an `sfid`) return to NEW, and NEW rows that depend on a still-failed insert
//! are held back (state `HELD`, the reason in `sf_message`) — by default that record's
//! rows and the inserts of children naming it by external id, every later row under
//! `on_insert_failure = "block_queue"`. Then NEW rows are
//! taken in id order and marked PENDING in the same statement.
//!
//! A row set back to NEW after it was processed (a re-queue) is an insert the user fixed:
//! it is sent with the row's current values, not the ones captured before the fix.

use std::collections::HashMap;

use pgforce_store::Ident;
use tokio_postgres::Client as Postgres;

use super::links::ParentLink;
use super::{WritePolicy, pg_error};
use crate::config::{OnInsertFailure, WriteAlgorithm};
use crate::error::{Error, Result};
use crate::mapping::Mapping;
use crate::plan::{Action, Change};

/// Columns never sent: pgforce's own bookkeeping.
const BOOKKEEPING: &str = "array['_hc_lastop', '_hc_err']";

/// How the message of a child held behind its parent begins.
const PARENT_HOLD: &str =
    "pgforce: held back until the failed insert of its parent in trigger log row ";

/// Releases and holds back rows as the failed inserts dictate (ordered writes only).
async fn hold_back(
    pg: &Postgres,
    schema: &Ident,
    links: &[ParentLink],
    policy: &WritePolicy,
) -> Result<u64> {
    if policy.algorithm != WriteAlgorithm::Ordered {
        return Ok(0);
    }
    let log = format!("{schema}._trigger_log");
    let blocks = match policy.on_insert_failure {
        OnInsertFailure::HoldDependents => {
            "f.table_name = r.table_name and f.record_id = r.record_id and f.id < r.id"
        }
        OnInsertFailure::BlockQueue => "f.id < r.id",
    };
    let failed_insert = format!(
        "select f.id from {log} f where f.state = 'FAILED' and f.action = 'INSERT' and {blocks}"
    );
    pg.execute(
        &format!(
            "update {log} r set state = 'NEW', sf_message = null, updated_at = now()
             where r.state = 'HELD' and r.sf_message not like '{PARENT_HOLD}%'
               and not exists ({failed_insert})"
        ),
        &[],
    )
    .await
    .map_err(pg_error("releasing held-back trigger log rows"))?;
    let mut held = pg
        .execute(
            &format!(
                "update {log} r set state = 'HELD', updated_at = now(),
                     sf_message = 'pgforce: held back until the failed insert in trigger log row '
                         || ({failed_insert} order by f.id limit 1) || ' is fixed and re-queued'
                 where r.state = 'NEW' and exists ({failed_insert})"
            ),
            &[],
        )
        .await
        .map_err(pg_error("holding back trigger log rows"))?;
    for link in links {
        // A child insert naming a parent whose own insert failed waits for it.
        let failed_parent = format!(
            "select f.id from {log} f where f.state = 'FAILED' and f.action = 'INSERT'
                 and f.table_name = $2 and f.id < r.id
                 and (f.\"values\"::hstore -> $3) = (r.\"values\"::hstore -> $4)"
        );
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [
            &link.child_table,
            &link.parent_table,
            &link.parent_column,
            &link.child_column,
        ];
        pg.execute(
            &format!(
                "update {log} r set state = 'NEW', sf_message = null, updated_at = now()
                 where r.state = 'HELD' and r.table_name = $1 and r.sf_message like '{PARENT_HOLD}%'
                   and not exists ({failed_parent})"
            ),
            &params,
        )
        .await
        .map_err(pg_error("releasing children of fixed inserts"))?;
        if policy.on_insert_failure == OnInsertFailure::HoldDependents {
            held += pg
                .execute(
                    &format!(
                        "update {log} r set state = 'HELD', updated_at = now(),
                             sf_message = '{PARENT_HOLD}' || ({failed_parent} order by f.id limit 1)
                                 || ' is fixed and re-queued'
                         where r.state = 'NEW' and r.action = 'INSERT' and r.table_name = $1
                           and exists ({failed_parent})"
                    ),
                    &params,
                )
                .await
                .map_err(pg_error("holding back children of failed inserts"))?;
        }
    }
    Ok(held)
}

/// Claims up to `limit` NEW log rows, oldest first, marking them PENDING.
pub(super) async fn claim(
    pg: &Postgres,
    schema: &Ident,
    mappings: &HashMap<&str, &Mapping>,
    links: &[ParentLink],
    policy: &WritePolicy,
    limit: i64,
) -> Result<(Vec<Change>, u64)> {
    let held = hold_back(pg, schema, links, policy).await?;
    let rows = pg
        .query(
            &format!(
                "update {schema}._trigger_log set state = 'PENDING', updated_at = now()
                 where id in (select id from {schema}._trigger_log where state = 'NEW'
                              order by id limit $1 for update skip locked)
                 returning id, action::text, table_name::text, record_id, sfid::text, \"values\",
                           processed_at is not null"
            ),
            &[&limit],
        )
        .await
        .map_err(pg_error("claiming new trigger log rows"))?;
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        let log_id: i32 = row.get(0);
        let table: String = row.get(2);
        let action = match row.get::<_, String>(1).as_str() {
            "INSERT" => Action::Insert,
            "UPDATE" => Action::Update,
            _ => Action::Delete,
        };
        let mut values: Option<String> = row.get(5);
        let requeued: bool = row.get(6);
        let record_id: Option<i32> = row.get(3);
        if requeued
            && action == Action::Insert
            && let (Some(mapping), Some(record_id)) = (mappings.get(table.as_str()), record_id)
            && let Some(current) = current_values(pg, schema, mapping, record_id).await?
        {
            values = Some(current);
        }
        let pairs =
            pgforce_store::hstore::parse(values.as_deref().unwrap_or_default()).map_err(|e| {
                Error::Config {
                    object: table.clone(),
                    problem: format!("trigger log row {log_id}: {e}"),
                }
            })?;
        changes.push(Change {
            log_id: i64::from(log_id),
            table,
            action,
            record_id: i64::from(record_id.unwrap_or_default()),
            sfid: row.get(4),
            values: pairs.into_iter().collect(),
        });
    }
    changes.sort_by_key(|c| c.log_id);
    Ok((changes, held))
}

/// A mapped row's current values as hstore text (bookkeeping columns left out).
pub(super) async fn current_values(
    pg: &Postgres,
    schema: &Ident,
    mapping: &Mapping,
    record_id: i32,
) -> Result<Option<String>> {
    let table = &mapping.table;
    pg.query_opt(
        &format!(
            "select (hstore(t.*) - {BOOKKEEPING})::text from {schema}.{table} t where id = $1"
        ),
        &[&record_id],
    )
    .await
    .map_err(pg_error("reading a row's current values"))
    .map(|row| row.map(|r| r.get(0)))
}

/// The rows' `sfid`s now (record id → sfid), for changes captured before their insert
/// was written.
pub(super) async fn current_sfids(
    pg: &Postgres,
    schema: &Ident,
    mapping: &Mapping,
    record_ids: &[i32],
) -> Result<HashMap<i64, String>> {
    let table = &mapping.table;
    let rows = pg
        .query(
            &format!(
                "select id, sfid::text from {schema}.{table} where id = any($1) and sfid is not null"
            ),
            &[&record_ids],
        )
        .await
        .map_err(pg_error("reading rows' sfids"))?;
    Ok(rows
        .iter()
        .map(|r| (i64::from(r.get::<_, i32>(0)), r.get(1)))
        .collect())
}

/// Puts claimed rows back to NEW (to be sent again, in order, by a later pass).
pub(super) async fn unclaim(pg: &Postgres, schema: &Ident, log_ids: &[i64]) -> Result<()> {
    if log_ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<i32> = log_ids
        .iter()
        .filter_map(|id| i32::try_from(*id).ok())
        .collect();
    pg.execute(
        &format!(
            "update {schema}._trigger_log set state = 'NEW', updated_at = now()
             where id = any($1) and state = 'PENDING'"
        ),
        &[&ids],
    )
    .await
    .map_err(pg_error("returning trigger log rows to NEW"))
    .map(|_| ())
}
