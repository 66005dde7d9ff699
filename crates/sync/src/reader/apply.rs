//! Storing records read from Salesforce: matched by `sfid`, then by the upsert field on a
//! row without one, else inserted; always as pgforce's own writes under the table's sync
//! lock.

use futures_util::TryStreamExt as _;
use pgforce_salesforce::rest::Record;
use pgforce_salesforce::{Client as Salesforce, soql};
use pgforce_store::Ident;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client as Postgres, Transaction};

use super::{Target, row_values};
use crate::error::Result;
use crate::mapping::Mapping;

/// The statements that apply one changed record, prepared per poll.
pub(super) struct Statements {
    update_by_sfid: String,
    update_by_key: Option<String>,
    insert: String,
    pub(super) delete: String,
}

impl Statements {
    pub(super) fn new(schema: &Ident, mapping: &Mapping) -> Self {
        let table = &mapping.table;
        // Parameter 1 is the sfid; parameters 2.. follow the mapped fields after Id.
        let others: Vec<(usize, &crate::mapping::MappedField)> = mapping
            .fields
            .iter()
            .filter(|f| f.api_name != "Id")
            .enumerate()
            .map(|(i, f)| (i + 2, f))
            .collect();
        let cast = |n: usize, f: &crate::mapping::MappedField| format!("${n}::text::{}", f.pg_type);
        let assignments: Vec<String> = others
            .iter()
            .map(|(n, f)| format!("{} = {}", f.column, cast(*n, f)))
            .collect();
        let columns: Vec<String> = others.iter().map(|(_, f)| f.column.to_string()).collect();
        let values: Vec<String> = others.iter().map(|(n, f)| cast(*n, f)).collect();
        let update_by_key = mapping.upsert_column.as_ref().and_then(|key| {
            let (n, f) = others.iter().find(|(_, f)| &f.column == key)?;
            Some(format!(
                "update {schema}.{table} set sfid = $1, {} where sfid is null and {key} = {}",
                assignments.join(", "),
                cast(*n, f)
            ))
        });
        Self {
            update_by_sfid: format!(
                "update {schema}.{table} set {} where sfid = $1",
                assignments.join(", ")
            ),
            update_by_key,
            insert: format!(
                "insert into {schema}.{table} (sfid, {}) values ($1, {})",
                columns.join(", "),
                values.join(", ")
            ),
            delete: format!("delete from {schema}.{table} where sfid = $1"),
        }
    }
}

/// A transaction for applying records read from Salesforce: pgforce's own (nothing is
/// captured) and holding the table's sync lock (the writer may be writing back Ids of
/// records it created, see `sync_lock`).
pub(super) async fn apply_transaction<'c>(
    pg: &'c mut Postgres,
    target: &Target<'_>,
) -> Result<Transaction<'c>> {
    let tx = pg
        .transaction()
        .await
        .map_err(target.pg_error("starting a transaction to apply records"))?;
    tx.batch_execute("set local xmlbinary = 'hex'")
        .await
        .map_err(target.pg_error("marking the session as pgforce's"))?;
    pgforce_store::sync_lock::lock_table(&tx, target.schema, &target.mapping.table)
        .await
        .map_err(|e| target.store_error(e))?;
    Ok(tx)
}

/// The values of one record as statement parameters.
fn params(values: &[Option<String>]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

/// Applies a page of changed records: updates by `sfid` all sent at once (the driver
/// pipelines them on the connection), then, for records no row matched, an update by the
/// upsert field on a row without `sfid`, else an insert. Returns how many were applied.
pub(super) async fn apply_records(
    tx: &Transaction<'_>,
    statements: &Statements,
    records: &[Vec<Option<String>>],
) -> std::result::Result<u64, tokio_postgres::Error> {
    let update = tx.prepare(&statements.update_by_sfid).await?;
    let updates = records.iter().map(|values| {
        let update = &update;
        async move { tx.execute(update, &params(values)).await }
    });
    let matched = futures_util::future::try_join_all(updates).await?;
    for (values, rows) in records.iter().zip(matched) {
        if rows > 0 {
            continue;
        }
        if let Some(by_key) = &statements.update_by_key
            && tx.execute(by_key, &params(values)).await? > 0
        {
            continue;
        }
        tx.execute(&statements.insert, &params(values)).await?;
    }
    Ok(records.len() as u64)
}

/// Reads the given records again from Salesforce and stores them as they are there,
/// whatever the cursor says (reconcile's repair). Returns how many were stored.
pub async fn refresh_records(
    sf: &Salesforce,
    pg: &mut Postgres,
    target: &Target<'_>,
    ids: &[String],
) -> Result<u64> {
    let mapping = target.mapping;
    let object = soql::name(&mapping.object).map_err(|e| target.sf_error(e))?;
    let statements = Statements::new(target.schema, mapping);
    let mut stored = 0;
    // 200 Ids keep the SOQL text well under Salesforce's length limit.
    for chunk in ids.chunks(200) {
        let list: Vec<String> = chunk.iter().map(|id| soql::quote(id)).collect();
        let query = format!(
            "SELECT {} FROM {object} WHERE Id IN ({})",
            mapping.select_list(),
            list.join(", ")
        );
        let records: Vec<Record> = sf
            .query(&query)
            .try_collect()
            .await
            .map_err(|e| target.sf_error(e))?;
        let mut rows = Vec::with_capacity(records.len());
        for record in &records {
            if let Ok(values) = row_values(mapping, record) {
                rows.push(values);
            }
        }
        let tx = apply_transaction(pg, target).await?;
        stored += apply_records(&tx, &statements, &rows)
            .await
            .map_err(target.pg_error("storing refreshed records"))?;
        tx.commit()
            .await
            .map_err(target.pg_error("committing refreshed records"))?;
    }
    Ok(stored)
}
