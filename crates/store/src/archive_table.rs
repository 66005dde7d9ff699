//! Archive tables: where records moved out of Salesforce live on in Postgres.
//!
//! An archive job copies an object's records into `<connection schema>_archive.<table>`
//! (for example `salesforce_archive.case`), a plain table with the mapped table's data
//! columns, `sfid` as primary key, and `archived_at`, `archive_job`, `restored_sfid`. It is
//! not a mapped table: no triggers, no trigger log, nothing the writer or the reader
//! touches, so rows written here never echo to Salesforce. Copies are upserts by `sfid`,
//! so copying a record again (a job resumed after a crash) leaves one row with the
//! latest values.

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient};

use crate::Ident;
use crate::ddl::ColumnSpec;
use crate::error::{Context as _, Error, Result};

/// An archive table: where, and the data columns in the order values come in (`sfid`
/// first).
#[derive(Debug, Clone)]
pub struct ArchiveTable {
    schema: Ident,
    table: Ident,
    columns: Vec<ColumnSpec>,
}

/// The archive schema of a connection schema: `<schema>_archive`.
pub fn archive_schema(schema: &Ident) -> Result<Ident> {
    Ident::derived(&[schema.as_str(), "_archive"])
}

impl ArchiveTable {
    /// The archive table of `table` in connection schema `schema`; `columns` must start
    /// with `sfid`.
    pub fn new(schema: &Ident, table: Ident, columns: Vec<ColumnSpec>) -> Result<Self> {
        if columns.first().map(|c| c.name.as_str()) != Some("sfid") {
            return Err(Error::Catalog {
                what: format!("the columns of archive table {table} must start with sfid"),
            });
        }
        Ok(Self {
            schema: archive_schema(schema)?,
            table,
            columns,
        })
    }

    /// The archive schema.
    pub fn schema(&self) -> &Ident {
        &self.schema
    }

    /// The table.
    pub fn table(&self) -> &Ident {
        &self.table
    }

    fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    fn data_columns(&self) -> impl Iterator<Item = (usize, &ColumnSpec)> {
        // Parameter 1 is the sfid; the other columns follow from parameter 2.
        self.columns
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, c)| (i + 1, c))
    }
}

/// Creates the archive schema and table when missing, and adds columns a mapping gained
/// since (nothing is dropped or narrowed: archived values stay).
pub async fn ensure_archive_table(client: &Client, table: &ArchiveTable) -> Result<()> {
    let mut columns = vec![
        "\"sfid\" character varying(18) primary key".to_owned(),
        "\"archived_at\" timestamptz not null default now()".to_owned(),
        "\"archive_job\" bigint".to_owned(),
        "\"restored_sfid\" character varying(18)".to_owned(),
    ];
    columns.extend(
        table
            .data_columns()
            .map(|(_, c)| format!("{} {}", c.name, c.pg_type)),
    );
    let mut sql = format!(
        "{}create schema if not exists {};\ncreate table if not exists {} ({});\n",
        crate::ddl::SERIAL_DDL,
        table.schema,
        table.qualified(),
        columns.join(", ")
    );
    for (_, c) in table.data_columns() {
        sql.push_str(&format!(
            "alter table {} add column if not exists {} {};\n",
            table.qualified(),
            c.name,
            c.pg_type
        ));
    }
    // One simple-query batch runs as one transaction: the lock holds until its end.
    client
        .batch_execute(&sql)
        .await
        .context(|| format!("creating archive table {}", table.qualified()))
}

/// The values of one row (sfid first) as statement parameters.
fn params(values: &[Option<String>]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

/// Copies rows (values in the table's column order, `sfid` first, as text cast to each
/// column's type) into the archive for job `job`: a row already there for the same `sfid`
/// takes the new values. Returns how many rows were given.
pub async fn store_rows(
    client: &impl GenericClient,
    table: &ArchiveTable,
    job: i64,
    rows: &[Vec<Option<String>>],
) -> Result<u64> {
    let job_param = table.columns.len() + 1;
    let cast = |n: usize, c: &ColumnSpec| format!("${n}::text::{}", c.pg_type);
    let names: Vec<String> = table
        .data_columns()
        .map(|(_, c)| c.name.to_string())
        .collect();
    let values: Vec<String> = table.data_columns().map(|(n, c)| cast(n, c)).collect();
    let updates: Vec<String> = names
        .iter()
        .map(|n| format!("{n} = excluded.{n}"))
        .collect();
    let mut columns = vec!["\"sfid\"".to_owned(), "\"archive_job\"".to_owned()];
    columns.extend(names);
    let mut placeholders = vec!["$1".to_owned(), format!("${job_param}")];
    placeholders.extend(values);
    let mut assignments = vec![
        "\"archive_job\" = excluded.\"archive_job\"".to_owned(),
        "\"archived_at\" = now()".to_owned(),
    ];
    assignments.extend(updates);
    let sql = format!(
        "insert into {} ({}) values ({}) on conflict (\"sfid\") do update set {}",
        table.qualified(),
        columns.join(", "),
        placeholders.join(", "),
        assignments.join(", ")
    );
    let statement = client
        .prepare(&sql)
        .await
        .context(|| format!("preparing to copy records into {}", table.qualified()))?;
    for row in rows {
        let mut bound = params(row);
        bound.push(&job);
        client
            .execute(&statement, &bound)
            .await
            .context(|| format!("copying a record into {}", table.qualified()))?;
    }
    Ok(rows.len() as u64)
}

/// The `sfid`s of `rows` (values as for [`store_rows`]) whose archived row is missing or
/// holds other values than given, compared after the same casts, so a value Postgres
/// stores differently spelled (`1.50` for `1.5`) still matches.
pub async fn mismatched(
    client: &impl GenericClient,
    table: &ArchiveTable,
    rows: &[Vec<Option<String>>],
) -> Result<Vec<String>> {
    let conditions: Vec<String> = table
        .data_columns()
        .map(|(n, c)| format!("{} is not distinct from ${n}::text::{}", c.name, c.pg_type))
        .collect();
    let mut sql = format!(
        "select exists (select 1 from {} where \"sfid\" = $1",
        table.qualified()
    );
    for condition in &conditions {
        sql.push_str(" and ");
        sql.push_str(condition);
    }
    sql.push(')');
    let statement = client
        .prepare(&sql)
        .await
        .context(|| format!("preparing to verify records in {}", table.qualified()))?;
    let mut out = Vec::new();
    for row in rows {
        let same: bool = client
            .query_one(&statement, &params(row))
            .await
            .context(|| format!("verifying a record in {}", table.qualified()))?
            .get(0);
        if !same {
            out.push(row.first().cloned().flatten().unwrap_or_default());
        }
    }
    Ok(out)
}

/// How many rows of the archive table came from job `job`.
pub async fn job_row_count(
    client: &impl GenericClient,
    table: &ArchiveTable,
    job: i64,
) -> Result<i64> {
    let sql = format!(
        "select count(*) from {} where \"archive_job\" = $1",
        table.qualified()
    );
    Ok(client
        .query_one(&sql, &[&job])
        .await
        .context(|| format!("counting the archived rows of job {job}"))?
        .get(0))
}

/// One archived row: the job that archived it, its `sfid`, and every data column's text
/// (column → value; `None` is NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedRow {
    /// The job that archived it.
    pub job: i64,
    /// Its Id before it was archived.
    pub sfid: String,
    /// Its data columns as text.
    pub values: std::collections::BTreeMap<String, Option<String>>,
}

fn archived_rows(table: &ArchiveTable, rows: &[tokio_postgres::Row]) -> Vec<ArchivedRow> {
    rows.iter()
        .map(|row| ArchivedRow {
            sfid: row.get(0),
            job: row.get::<_, Option<i64>>(1).unwrap_or_default(),
            values: table
                .data_columns()
                .enumerate()
                .map(|(i, (_, c))| (c.name.as_str().to_owned(), row.get(i + 2)))
                .collect(),
        })
        .collect()
}

fn select_rows(table: &ArchiveTable) -> String {
    let mut columns = vec!["\"sfid\"".to_owned(), "\"archive_job\"".to_owned()];
    columns.extend(
        table
            .data_columns()
            .map(|(_, c)| format!("{}::text", c.name)),
    );
    format!("select {} from {}", columns.join(", "), table.qualified())
}

/// Up to `limit` archived rows by `sfid` after `after` (`""` first), of job `job` only
/// when given.
pub async fn rows_after(
    client: &impl GenericClient,
    table: &ArchiveTable,
    job: Option<i64>,
    after: &str,
    limit: i64,
) -> Result<Vec<ArchivedRow>> {
    let sql = format!(
        "{} where \"sfid\" > $1 and ($2::bigint is null or \"archive_job\" = $2)
         order by \"sfid\" limit $3",
        select_rows(table)
    );
    let rows = client
        .query(&sql, &[&after, &job, &limit])
        .await
        .context(|| format!("reading archived rows of {}", table.qualified()))?;
    Ok(archived_rows(table, &rows))
}

/// The archived rows of these `sfid`s.
pub async fn rows_of(
    client: &impl GenericClient,
    table: &ArchiveTable,
    sfids: &[String],
) -> Result<Vec<ArchivedRow>> {
    let sql = format!("{} where \"sfid\" = any($1::varchar[])", select_rows(table));
    let rows = client
        .query(&sql, &[&sfids])
        .await
        .context(|| format!("reading archived rows of {}", table.qualified()))?;
    Ok(archived_rows(table, &rows))
}

/// Removes rows restored to Salesforce from the archive.
pub async fn remove_rows(
    client: &impl GenericClient,
    table: &ArchiveTable,
    sfids: &[String],
) -> Result<u64> {
    let sql = format!(
        "delete from {} where \"sfid\" = any($1::varchar[])",
        table.qualified()
    );
    client
        .execute(&sql, &[&sfids])
        .await
        .context(|| format!("removing restored rows from {}", table.qualified()))
}
