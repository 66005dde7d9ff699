//! Postgres → Salesforce: one pass of the writer over a connection's trigger log.
//!
//! Data flow: claim NEW log rows in id order (marking them PENDING in the same statement,
//! `FOR UPDATE SKIP LOCKED`), plan them ([`crate::plan`]), send each batch with sObject
//! Collections, then record every outcome in one transaction per batch: the log row's
//! state (SUCCESS, FAILED with Salesforce's message, MERGED) together with the row's
//! write-back (`sfid` after an insert, `_hc_lastop`, `_hc_err`), written with
//! `xmlbinary = 'hex'` so nothing is captured again (worker contract).
//!
//! Not yet here (issue 6 continues): LISTEN wake-up and the daemon loop, resuming PENDING
//! rows after a crash (checking Salesforce before re-creating), holding back children of
//! failed inserts, upserts by external id and relationship columns, archiving.

use std::collections::HashMap;

use pgforce_salesforce::rest::Record;
use pgforce_salesforce::rest::collections::SaveResult;
use pgforce_salesforce::{Client as Salesforce, RecordError};
use pgforce_store::Ident;
use pgforce_store::ddl::PgType;
use serde_json::{Value, json};
use tokio_postgres::Client as Postgres;

use crate::config::WriteAlgorithm;
use crate::error::{Error, Result};
use crate::mapping::Mapping;
use crate::plan::{self, Action, Batch, Change};

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Log rows written to Salesforce successfully.
    pub succeeded: u64,
    /// Log rows Salesforce refused (state FAILED, message kept).
    pub failed: u64,
    /// Log rows folded into another change or cancelled out (state MERGED).
    pub merged: u64,
}

fn pg_error(context: &str) -> impl FnOnce(tokio_postgres::Error) -> Error + '_ {
    move |source| Error::Postgres {
        object: "(trigger log)".to_owned(),
        context: context.to_owned(),
        source,
    }
}

/// Claims up to `limit` NEW log rows, oldest first, marking them PENDING.
async fn claim(pg: &Postgres, schema: &Ident, limit: i64) -> Result<Vec<Change>> {
    let rows = pg
        .query(
            &format!(
                "update {schema}._trigger_log set state = 'PENDING', updated_at = now()
                 where id in (select id from {schema}._trigger_log where state = 'NEW'
                              order by id limit $1 for update skip locked)
                 returning id, action::text, table_name::text, record_id, sfid::text, \"values\""
            ),
            &[&limit],
        )
        .await
        .map_err(pg_error("claiming new trigger log rows"))?;
    let mut changes = Vec::with_capacity(rows.len());
    for row in rows {
        let action = match row.get::<_, String>(1).as_str() {
            "INSERT" => Action::Insert,
            "UPDATE" => Action::Update,
            _ => Action::Delete,
        };
        let values: Option<String> = row.get(5);
        let pairs =
            pgforce_store::hstore::parse(values.as_deref().unwrap_or_default()).map_err(|e| {
                Error::Config {
                    object: row.get::<_, String>(2),
                    problem: format!("trigger log row {}: {e}", row.get::<_, i32>(0)),
                }
            })?;
        changes.push(Change {
            log_id: i64::from(row.get::<_, i32>(0)),
            table: row.get(2),
            action,
            record_id: i64::from(row.get::<_, i32>(3)),
            sfid: row.get(4),
            values: pairs.into_iter().collect(),
        });
    }
    changes.sort_by_key(|c| c.log_id);
    Ok(changes)
}

/// A Postgres text value as the JSON Salesforce takes for the column's type.
fn to_salesforce(value: Option<&str>, pg_type: PgType) -> Value {
    let Some(text) = value else {
        return Value::Null;
    };
    match pg_type {
        PgType::Boolean => json!(text == "t" || text == "true"),
        PgType::Integer => text
            .parse::<i64>()
            .map_or_else(|_| json!(text), |n| json!(n)),
        PgType::DoublePrecision => text
            .parse::<f64>()
            .map_or_else(|_| json!(text), |n| json!(n)),
        // `2024-01-01 10:00:00.5` (UTC wall time) → `2024-01-01T10:00:00.5Z`.
        PgType::Timestamp => json!(format!("{}Z", text.replacen(' ', "T", 1))),
        _ => json!(text),
    }
}

/// The Salesforce record for a change: writable mapped fields only.
fn record_for(mapping: &Mapping, change: &Change) -> Record {
    let mut record = Record::new();
    for field in &mapping.fields {
        let writable = match change.action {
            Action::Insert => field.createable,
            _ => field.updateable,
        };
        if !writable {
            continue;
        }
        if let Some(value) = change.values.get(field.column.as_str()) {
            record.insert(
                field.api_name.clone(),
                to_salesforce(value.as_deref(), field.pg_type),
            );
        }
    }
    if change.action == Action::Update
        && let Some(sfid) = &change.sfid
    {
        record.insert("Id".to_owned(), json!(sfid));
    }
    record
}

/// Runs one pass: claim, plan, send, record.
pub async fn write_once(
    sf: &Salesforce,
    pg: &mut Postgres,
    schema: &Ident,
    mappings: &[Mapping],
    algorithm: WriteAlgorithm,
) -> Result<WriteOutcome> {
    let changes = claim(pg, schema, 10_000).await?;
    let mut outcome = WriteOutcome::default();
    if changes.is_empty() {
        return Ok(outcome);
    }
    let by_table: HashMap<&str, &Mapping> =
        mappings.iter().map(|m| (m.table.as_str(), m)).collect();
    let plan = match algorithm {
        WriteAlgorithm::Ordered => plan::ordered(changes),
        WriteAlgorithm::Merged => plan::merged(changes, &HashMap::new()),
    };
    mark(pg, schema, &plan.cancelled_log_ids, "MERGED", None).await?;
    outcome.merged += plan.cancelled_log_ids.len() as u64;
    for batch in &plan.batches {
        let Some(mapping) = by_table.get(batch.table.as_str()) else {
            let ids: Vec<i64> = batch.changes.iter().map(|c| c.log_id).collect();
            mark(
                pg,
                schema,
                &ids,
                "FAILED",
                Some("pgforce: the table is not mapped"),
            )
            .await?;
            outcome.failed += ids.len() as u64;
            continue;
        };
        let results = send(sf, mapping, batch).await;
        record_results(pg, schema, mapping, batch, &results, &mut outcome).await?;
    }
    Ok(outcome)
}

/// One result per change: Salesforce's, or the refusal pgforce gives without a call.
async fn send(
    sf: &Salesforce,
    mapping: &Mapping,
    batch: &Batch,
) -> Vec<std::result::Result<Option<String>, RecordError>> {
    let refused = |message: &str| RecordError {
        code: pgforce_salesforce::ApiErrorCode::Other("PGFORCE".to_owned()),
        message: message.to_owned(),
        fields: Vec::new(),
    };
    let object = mapping.object.as_str();
    let call = match batch.action {
        Action::Insert => {
            let records: Vec<Record> = batch
                .changes
                .iter()
                .map(|c| record_for(mapping, c))
                .collect();
            sf.create_records(object, &records, false).await
        }
        Action::Update => {
            let records: Vec<Record> = batch
                .changes
                .iter()
                .map(|c| record_for(mapping, c))
                .collect();
            if batch.changes.iter().any(|c| c.sfid.is_none()) {
                // Rows not yet in Salesforce cannot be updated there; the insert carries them.
                return batch
                    .changes
                    .iter()
                    .map(|_| Err(refused("the row has no sfid yet")))
                    .collect();
            }
            sf.update_records(object, &records, false).await
        }
        Action::Delete => {
            let ids: Vec<&str> = batch
                .changes
                .iter()
                .filter_map(|c| c.sfid.as_deref())
                .collect();
            sf.delete_records(&ids, false).await
        }
    };
    match call {
        Ok(results) => results.into_iter().map(save_result).collect(),
        Err(error) => batch
            .changes
            .iter()
            .map(|_| Err(refused(&error.to_string())))
            .collect(),
    }
}

fn save_result(result: SaveResult) -> std::result::Result<Option<String>, RecordError> {
    if result.success {
        Ok(result.id)
    } else {
        Err(result.errors.into_iter().next().unwrap_or(RecordError {
            code: pgforce_salesforce::ApiErrorCode::Other("UNKNOWN".to_owned()),
            message: "Salesforce gave no reason".to_owned(),
            fields: Vec::new(),
        }))
    }
}

/// Sets a state on log rows (no call was made for them).
async fn mark(
    pg: &Postgres,
    schema: &Ident,
    ids: &[i64],
    state: &str,
    message: Option<&str>,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let ids: Vec<i32> = ids
        .iter()
        .filter_map(|id| i32::try_from(*id).ok())
        .collect();
    pg.execute(
        &format!(
            "update {schema}._trigger_log set state = $2, sf_message = $3, processed_at = now(), updated_at = now()
             where id = any($1)"
        ),
        &[&ids, &state, &message],
    )
    .await
    .map_err(pg_error("marking trigger log rows"))
    .map(|_| ())
}

/// Records a batch's results: log states and row write-backs in one transaction.
async fn record_results(
    pg: &mut Postgres,
    schema: &Ident,
    mapping: &Mapping,
    batch: &Batch,
    results: &[std::result::Result<Option<String>, RecordError>],
    outcome: &mut WriteOutcome,
) -> Result<()> {
    let table = &mapping.table;
    let tx = pg
        .transaction()
        .await
        .map_err(pg_error("starting to record results"))?;
    tx.batch_execute("set local xmlbinary = 'hex'")
        .await
        .map_err(pg_error("marking the session as pgforce's"))?;
    let log_update = format!(
        "update {schema}._trigger_log set state = $2, sf_message = $3, processed_at = now(), updated_at = now(),
             sfid = coalesce($4, sfid) where id = $1"
    );
    for ((change, merged), result) in batch.changes.iter().zip(&batch.merged_log_ids).zip(results) {
        let log_id = i32::try_from(change.log_id).unwrap_or(i32::MAX);
        let record_id = i32::try_from(change.record_id).unwrap_or(i32::MAX);
        match result {
            Ok(sfid) => {
                let lastop = match change.action {
                    Action::Insert => "INSERTED",
                    Action::Update => "UPDATED",
                    Action::Delete => "DELETED",
                };
                if change.action != Action::Delete {
                    tx.execute(
                        &format!("update {schema}.{table} set sfid = coalesce($2, sfid), _hc_lastop = $3, _hc_err = null where id = $1"),
                        &[&record_id, sfid, &lastop],
                    )
                    .await
                    .map_err(pg_error("writing back a synced row"))?;
                }
                tx.execute(&log_update, &[&log_id, &"SUCCESS", &None::<String>, sfid])
                    .await
                    .map_err(pg_error("marking a log row SUCCESS"))?;
                outcome.succeeded += 1;
            }
            Err(error) => {
                let operation = format!("{:?}", change.action).to_uppercase();
                let detail = json!({ "op": operation, "code": error.code.as_str(), "message": error.message, "fields": error.fields });
                if change.action != Action::Delete {
                    tx.execute(
                        &format!("update {schema}.{table} set _hc_lastop = 'FAILED', _hc_err = $2 where id = $1"),
                        &[&record_id, &detail.to_string()],
                    )
                    .await
                    .map_err(pg_error("writing back a failed row"))?;
                }
                let message = format!("{}: {}", error.code, error.message);
                tx.execute(
                    &log_update,
                    &[&log_id, &"FAILED", &Some(message), &None::<String>],
                )
                .await
                .map_err(pg_error("marking a log row FAILED"))?;
                outcome.failed += 1;
            }
        }
        if !merged.is_empty() {
            let ids: Vec<i32> = merged
                .iter()
                .filter_map(|id| i32::try_from(*id).ok())
                .collect();
            tx.execute(
                &format!("update {schema}._trigger_log set state = 'MERGED', processed_at = now(), updated_at = now() where id = any($1)"),
                &[&ids],
            )
            .await
            .map_err(pg_error("marking merged log rows"))?;
            outcome.merged += ids.len() as u64;
        }
    }
    // Outcomes and write-backs land together (worker contract).
    tx.commit().await.map_err(pg_error("committing results"))
}
