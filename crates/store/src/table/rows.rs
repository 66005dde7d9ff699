//! Reading rows of a mapped table: current values and `sfid`s for the writer, Ids and
//! stamps for reconcile, counts for status, estimates for metric scrapes.

use std::collections::HashMap;

use tokio_postgres::GenericClient;

use crate::Ident;
use crate::error::{Context as _, Result};

/// Columns never sent to Salesforce: pgforce's own bookkeeping.
const BOOKKEEPING: &str = "array['_hc_lastop', '_hc_err']";

/// A row's current values as hstore text (bookkeeping columns left out).
pub async fn current_values(
    client: &impl GenericClient,
    schema: &Ident,
    table: &Ident,
    record_id: i32,
) -> Result<Option<String>> {
    client
        .query_opt(
            &format!(
                "select (hstore(t.*) - {BOOKKEEPING})::text from {schema}.{table} t where id = $1"
            ),
            &[&record_id],
        )
        .await
        .context(|| format!("reading row {record_id} of {schema}.{table}"))
        .map(|row| row.map(|r| r.get(0)))
}

/// The rows' `sfid`s now (row id → sfid), for rows that have one.
pub async fn current_sfids(
    client: &impl GenericClient,
    schema: &Ident,
    table: &Ident,
    record_ids: &[i32],
) -> Result<HashMap<i64, String>> {
    let rows = client
        .query(
            &format!(
                "select id, sfid::text from {schema}.{table} where id = any($1) and sfid is not null"
            ),
            &[&record_ids],
        )
        .await
        .context(|| format!("reading sfids of {schema}.{table}"))?;
    Ok(rows
        .iter()
        .map(|r| (i64::from(r.get::<_, i32>(0)), r.get(1)))
        .collect())
}

/// How many rows the table has.
pub async fn count(client: &impl GenericClient, schema: &Ident, table: &Ident) -> Result<u64> {
    let row = client
        .query_one(&format!("select count(*) from {schema}.{table}"), &[])
        .await
        .context(|| format!("counting the rows of {schema}.{table}"))?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or_default())
}

/// Tables counted in one statement by [`counts`].
const COUNTED_PER_STATEMENT: usize = 200;

/// Exact rows of each table, by `(schema, table)`: one `count(*)` per table, sent as one
/// statement per [`COUNTED_PER_STATEMENT`] tables (a `union all`), so a view of many
/// small tables costs a few round trips, not one per table.
pub async fn counts(
    client: &impl GenericClient,
    tables: &[(Ident, Ident)],
) -> Result<HashMap<(String, String), u64>> {
    let mut counted = HashMap::with_capacity(tables.len());
    for chunk in tables.chunks(COUNTED_PER_STATEMENT) {
        let statement = chunk
            .iter()
            .enumerate()
            .map(|(i, (schema, table))| format!("select {i}::int, count(*) from {schema}.{table}"))
            .collect::<Vec<_>>()
            .join(" union all ");
        let rows = client
            .query(&statement, &[])
            .await
            .context(|| format!("counting the rows of {} tables", chunk.len()))?;
        for row in rows {
            let Some((schema, table)) = usize::try_from(row.get::<_, i32>(0))
                .ok()
                .and_then(|i| chunk.get(i))
            else {
                continue;
            };
            let count = u64::try_from(row.get::<_, i64>(1)).unwrap_or_default();
            counted.insert(
                (schema.as_str().to_owned(), table.as_str().to_owned()),
                count,
            );
        }
    }
    Ok(counted)
}

/// Estimated rows of each table, by `(schema, table)`, in one catalog read whatever the
/// number of tables; none is scanned. The estimate is `pg_class.reltuples` (kept by
/// `analyze`, autovacuum's included); a table never analyzed nor vacuumed has none (-1)
/// and gets the statistics system's live-row count (`pg_stat_user_tables.n_live_tup`,
/// kept as rows are inserted and deleted). Tables that do not exist are left out.
pub async fn estimates(
    client: &impl GenericClient,
    tables: &[(String, String)],
) -> Result<HashMap<(String, String), u64>> {
    let (schemas, names): (Vec<&str>, Vec<&str>) = tables
        .iter()
        .map(|(schema, table)| (schema.as_str(), table.as_str()))
        .unzip();
    let rows = client
        .query(
            "select n.nspname::text, c.relname::text,
                    case when c.reltuples >= 0 then c.reltuples::bigint
                         else coalesce(s.n_live_tup, 0) end
             from unnest($1::text[], $2::text[]) as t(schema_name, table_name)
             join pg_namespace n on n.nspname = t.schema_name
             join pg_class c on c.relnamespace = n.oid and c.relname = t.table_name
             left join pg_stat_user_tables s on s.relid = c.oid",
            &[&schemas, &names],
        )
        .await
        .context(|| format!("estimating the rows of {} tables", tables.len()))?;
    Ok(rows
        .iter()
        .map(|row| {
            let estimate = u64::try_from(row.get::<_, i64>(2)).unwrap_or_default();
            ((row.get(0), row.get(1)), estimate)
        })
        .collect())
}

/// A row's id, `sfid` and `systemmodstamp` (`YYYY-MM-DDTHH:MI:SS.MS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampedRow {
    /// The row's id.
    pub id: i32,
    /// Its Salesforce Id, once it has one.
    pub sfid: Option<String>,
    /// Its `SystemModstamp`.
    pub stamp: Option<String>,
}

/// Every row's id, `sfid` and stamp.
pub async fn stamps(
    client: &impl GenericClient,
    schema: &Ident,
    table: &Ident,
) -> Result<Vec<StampedRow>> {
    let rows = client
        .query(
            &format!(
                "select id, sfid::text, to_char(systemmodstamp, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')
                 from {schema}.{table}"
            ),
            &[],
        )
        .await
        .context(|| format!("reading the Ids and stamps of {schema}.{table}"))?;
    Ok(rows
        .iter()
        .map(|row| StampedRow {
            id: row.get(0),
            sfid: row.get(1),
            stamp: row.get(2),
        })
        .collect())
}
