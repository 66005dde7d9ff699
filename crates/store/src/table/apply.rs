//! Storing records read from Salesforce: matched by `sfid`, then by the upsert field on a
//! row without one, else inserted; deleted records removed.

use tokio_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::RowShape;
use crate::error::{Context as _, Result};

/// The statements that apply one record, built once per poll.
#[derive(Debug, Clone)]
pub struct ApplyStatements {
    qualified: String,
    update_by_sfid: String,
    update_by_key: Option<String>,
    insert: String,
    delete: String,
}

impl ApplyStatements {
    /// The statements for a shape. Parameter 1 is the `sfid`; parameters 2.. follow the
    /// other columns, values as text cast to the column's type.
    pub fn new(shape: &RowShape) -> Self {
        let (schema, table) = (&shape.schema, &shape.table);
        let others: Vec<(usize, &crate::ddl::ColumnSpec)> = shape
            .columns
            .iter()
            .skip(1)
            .enumerate()
            .map(|(i, c)| (i + 2, c))
            .collect();
        let cast = |n: usize, c: &crate::ddl::ColumnSpec| format!("${n}::text::{}", c.pg_type);
        let assignments: Vec<String> = others
            .iter()
            .map(|(n, c)| format!("{} = {}", c.name, cast(*n, c)))
            .collect();
        let columns: Vec<String> = others.iter().map(|(_, c)| c.name.to_string()).collect();
        let values: Vec<String> = others.iter().map(|(n, c)| cast(*n, c)).collect();
        let update_by_key = shape.upsert_column.as_ref().and_then(|key| {
            let (n, c) = others.iter().find(|(_, c)| &c.name == key)?;
            Some(format!(
                "update {schema}.{table} set sfid = $1, {} where sfid is null and {key} = {}",
                assignments.join(", "),
                cast(*n, c)
            ))
        });
        Self {
            qualified: format!("{schema}.{table}"),
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

/// The values of one record as statement parameters.
fn params(values: &[Option<String>]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

/// Applies records (values in the shape's column order): updates by `sfid` all sent at
/// once (the driver pipelines them), then, for records no row matched, an update by the
/// upsert field on a row without `sfid`, else an insert. Returns how many were applied.
pub async fn apply_records(
    tx: &Transaction<'_>,
    statements: &ApplyStatements,
    records: &[Vec<Option<String>>],
) -> Result<u64> {
    let table = &statements.qualified;
    let update = tx
        .prepare(&statements.update_by_sfid)
        .await
        .context(|| format!("preparing to apply records to {table}"))?;
    let updates = records.iter().map(|values| {
        let update = &update;
        async move { tx.execute(update, &params(values)).await }
    });
    let matched = futures_util::future::try_join_all(updates)
        .await
        .context(|| format!("applying changed records to {table}"))?;
    for (values, rows) in records.iter().zip(matched) {
        if rows > 0 {
            continue;
        }
        if let Some(by_key) = &statements.update_by_key
            && tx
                .execute(by_key, &params(values))
                .await
                .context(|| format!("matching a record to {table} by its upsert field"))?
                > 0
        {
            continue;
        }
        tx.execute(&statements.insert, &params(values))
            .await
            .context(|| format!("inserting a new record into {table}"))?;
    }
    Ok(records.len() as u64)
}

/// Deletes the row of a record deleted in Salesforce; returns how many rows went.
pub async fn delete_record(
    tx: &Transaction<'_>,
    statements: &ApplyStatements,
    sfid: &str,
) -> Result<u64> {
    tx.execute(&statements.delete, &[&sfid])
        .await
        .context(|| format!("deleting a row of {}", statements.qualified))
}

/// Of `(sfid, SystemModstamp as Salesforce sent it)` pairs, the sfids whose row already
/// holds that version or a later one: records a poll's overlap reads again.
pub async fn already_applied(
    tx: &Transaction<'_>,
    statements: &ApplyStatements,
    stamps: &[(String, String)],
) -> Result<std::collections::HashSet<String>> {
    if stamps.is_empty() {
        return Ok(std::collections::HashSet::new());
    }
    let table = &statements.qualified;
    let (sfids, times): (Vec<&str>, Vec<&str>) = stamps
        .iter()
        .map(|(sfid, stamp)| (sfid.as_str(), stamp.as_str()))
        .unzip();
    let rows = tx
        .query(
            &format!(
                "select u.sfid from unnest($1::text[], $2::text[]) u(sfid, stamp)
                 join {table} t on t.sfid = u.sfid
                 where t.systemmodstamp >= (u.stamp::timestamptz at time zone 'UTC')"
            ),
            &[&sfids, &times],
        )
        .await
        .context(|| format!("finding records {table} already holds"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Stores the fields one change event changed on the row of `sfid`, with the event's
/// stamp as its `SystemModstamp`, unless the row already holds that version or a later
/// one. `columns` are `(column, its type, value as text)`. Returns whether a row changed
/// (false: no such row, or it is newer; the caller reads the record instead).
pub async fn apply_changed_fields(
    tx: &Transaction<'_>,
    shape: &RowShape,
    sfid: &str,
    stamp: &str,
    columns: &[(&crate::Ident, crate::ddl::PgType, Option<String>)],
) -> Result<bool> {
    let (schema, table) = (&shape.schema, &shape.table);
    let mut assignments =
        vec!["systemmodstamp = ($2::text::timestamptz at time zone 'UTC')".to_owned()];
    for (n, (column, pg_type, _)) in columns.iter().enumerate() {
        assignments.push(format!("{column} = ${}::text::{pg_type}", n + 3));
    }
    let statement = format!(
        "update {schema}.{table} set {} where sfid = $1
           and (systemmodstamp is null or systemmodstamp < ($2::text::timestamptz at time zone 'UTC'))",
        assignments.join(", ")
    );
    let sfid = sfid.to_owned();
    let stamp = stamp.to_owned();
    let mut values: Vec<&(dyn ToSql + Sync)> = vec![&sfid, &stamp];
    for (_, _, value) in columns {
        values.push(value);
    }
    let changed = tx
        .execute(&statement, &values)
        .await
        .context(|| format!("applying a change event to {schema}.{table}"))?;
    Ok(changed > 0)
}
