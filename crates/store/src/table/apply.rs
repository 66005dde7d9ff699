//! Storing records read from Salesforce: matched by `sfid`, then by the upsert field on a
//! row without one, else inserted; deleted records removed.
//!
//! Polls and change events store the same records in either order: a poll page read
//! before an event was applied reaches Postgres after it. So a record never replaces a row
//! holding a newer `SystemModstamp`, and a delete told by an event is remembered for a
//! while (`pgforce.deleted_records`), so the reader does not insert the row again from a
//! page read before the delete.

use std::collections::HashSet;

use tokio_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::RowShape;
use crate::error::{Context as _, Result};

/// The statements that apply one record, built once per poll.
#[derive(Debug, Clone)]
pub struct ApplyStatements {
    qualified: String,
    /// The schema and table names as values, for the catalog's `deleted_records`.
    schema_name: String,
    table_name: String,
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
        // A row stamped later than the record holds a newer version: left alone.
        let not_newer = others
            .iter()
            .find(|(_, c)| c.name.as_str() == "systemmodstamp")
            .map(|(n, c)| {
                format!(
                    " and (systemmodstamp is null or systemmodstamp <= {})",
                    cast(*n, c)
                )
            })
            .unwrap_or_default();
        let update_by_key = shape.upsert_column.as_ref().and_then(|key| {
            let (n, c) = others.iter().find(|(_, c)| &c.name == key)?;
            // One row at most: an upsert field Salesforce does not hold unique can match
            // several rows, and only one can take the record's sfid.
            Some(format!(
                "update {schema}.{table} set sfid = $1, {} where id = (
                     select id from {schema}.{table} where sfid is null and {key} = {}
                     order by id limit 1)",
                assignments.join(", "),
                cast(*n, c)
            ))
        });
        Self {
            qualified: format!("{schema}.{table}"),
            schema_name: schema.as_str().to_owned(),
            table_name: table.as_str().to_owned(),
            update_by_sfid: format!(
                "update {schema}.{table} set {} where sfid = $1{not_newer}",
                assignments.join(", ")
            ),
            update_by_key,
            // A row with this sfid that the update left alone is newer: kept.
            insert: format!(
                "insert into {schema}.{table} (sfid, {}) values ($1, {}) on conflict (sfid) do nothing",
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
/// upsert field on a row without `sfid`, else an insert. A row holding a newer
/// `SystemModstamp` is left as it is. Returns how many records were given.
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

/// Deletes the row of a record a change event says was deleted, and remembers the delete
/// (see the module doc); returns how many rows went.
pub async fn delete_record(
    tx: &Transaction<'_>,
    statements: &ApplyStatements,
    sfid: &str,
) -> Result<u64> {
    let removed = delete_read_record(tx, statements, sfid).await?;
    if removed > 0 {
        let (schema, table) = (&statements.schema_name, &statements.table_name);
        tx.execute(
            "insert into pgforce.deleted_records (schema_name, table_name, sfid) values ($1, $2, $3)
             on conflict (schema_name, table_name, sfid) do update set deleted_at = now()",
            &[schema, table, &sfid],
        )
        .await
        .context(|| format!("remembering a delete of a row of {}", statements.qualified))?;
        // A day is far longer than any poll page waits between being read and applied.
        tx.execute(
            "delete from pgforce.deleted_records where deleted_at < now() - interval '1 day'",
            &[],
        )
        .await
        .context(|| "forgetting old deletes told by change events".to_owned())?;
    }
    Ok(removed)
}

/// Deletes the row of a record a read found deleted (`IsDeleted`); returns how many rows
/// went.
pub async fn delete_read_record(
    tx: &Transaction<'_>,
    statements: &ApplyStatements,
    sfid: &str,
) -> Result<u64> {
    tx.execute(&statements.delete, &[&sfid])
        .await
        .context(|| format!("deleting a row of {}", statements.qualified))
}

/// Of `(sfid, SystemModstamp as Salesforce sent it)` pairs read by a poll, the sfids with
/// no row whose delete a change event told after that version: the page was read before
/// the delete was applied, and must not bring the row back.
pub async fn deleted_since_read(
    tx: &Transaction<'_>,
    statements: &ApplyStatements,
    stamps: &[(String, String)],
) -> Result<HashSet<String>> {
    let table = &statements.qualified;
    let sql = format!(
        "select u.sfid from unnest($1::text[], $2::text[]) u(sfid, stamp)
         join pgforce.deleted_records d on d.schema_name = $3 and d.table_name = $4
             and d.sfid = u.sfid
         where d.deleted_at > u.stamp::timestamptz
           and not exists (select 1 from {table} t where t.sfid = u.sfid)"
    );
    let names: [&(dyn ToSql + Sync); 2] = [&statements.schema_name, &statements.table_name];
    sfids_selected(tx, &sql, stamps, &names)
        .await
        .context(|| format!("finding records of {table} deleted by change events since read"))
}

/// Of `(sfid, SystemModstamp as Salesforce sent it)` pairs, the sfids whose row already
/// holds that version or a later one: records a poll's overlap reads again.
pub async fn already_applied(
    tx: &Transaction<'_>,
    statements: &ApplyStatements,
    stamps: &[(String, String)],
) -> Result<HashSet<String>> {
    let table = &statements.qualified;
    let sql = format!(
        "select u.sfid from unnest($1::text[], $2::text[]) u(sfid, stamp)
         join {table} t on t.sfid = u.sfid
         where t.systemmodstamp >= (u.stamp::timestamptz at time zone 'UTC')"
    );
    sfids_selected(tx, &sql, stamps, &[])
        .await
        .context(|| format!("finding records {table} already holds"))
}

/// Runs `sql`, which selects sfids from `(sfid, stamp)` pairs bound as `$1` and `$2`
/// (then `more` from `$3` on).
async fn sfids_selected(
    tx: &Transaction<'_>,
    sql: &str,
    stamps: &[(String, String)],
    more: &[&(dyn ToSql + Sync)],
) -> std::result::Result<HashSet<String>, tokio_postgres::Error> {
    if stamps.is_empty() {
        return Ok(HashSet::new());
    }
    let (sfids, times): (Vec<&str>, Vec<&str>) = stamps
        .iter()
        .map(|(sfid, stamp)| (sfid.as_str(), stamp.as_str()))
        .unzip();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&sfids, &times];
    params.extend_from_slice(more);
    let rows = tx.query(sql, &params).await?;
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
