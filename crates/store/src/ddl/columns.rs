//! A mapped table's columns as they are, and widening them when Salesforce widens a field.
//!
//! Salesforce lets an administrator lengthen a text field, turn a picklist into a longer
//! one or a whole number into a decimal while the sync runs. The reader compares the
//! object's describe with these columns and widens those that became too narrow, in place
//! (`alter table … alter column … type …`), so records with the longer values can be
//! stored. Narrowing is never done here: values already stored could be cut.

use tokio_postgres::Client;

use super::{PgType, SERIAL_DDL};
use crate::error::{Context as _, Result};
use crate::ident::Ident;

/// A column of a table, with its type when it is one pgforce creates (`None`: a type
/// someone else chose, such as `numeric(18,2)`, which pgforce leaves alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingColumn {
    /// The column's name.
    pub name: String,
    /// Its type.
    pub pg_type: Option<PgType>,
}

const COLUMNS_SQL: &str =
    "select column_name::text, data_type::text, character_maximum_length::integer
     from information_schema.columns where table_schema = $1 and table_name = $2
     order by ordinal_position";

/// The columns of `schema.table` (none when it does not exist).
pub async fn table_columns(
    client: &impl tokio_postgres::GenericClient,
    schema: &Ident,
    table: &Ident,
) -> Result<Vec<ExistingColumn>> {
    let rows = client
        .query(COLUMNS_SQL, &[&schema.as_str(), &table.as_str()])
        .await
        .context(|| format!("reading the columns of {schema}.{table}"))?;
    Ok(rows
        .iter()
        .map(|row| ExistingColumn {
            name: row.get(0),
            pg_type: PgType::from_catalog(row.get(1), row.get(2)),
        })
        .collect())
}

/// Widens the given columns of `schema.table` to the given types, those that are narrower
/// now (a column already as wide or wider, or of a type pgforce did not create, is left
/// as it is), in one transaction behind the other schema changes. Returns the columns it
/// altered, with their new types.
pub async fn widen_columns(
    client: &mut Client,
    schema: &Ident,
    table: &Ident,
    wanted: &[super::ColumnSpec],
) -> Result<Vec<super::ColumnSpec>> {
    let tx = client
        .transaction()
        .await
        .context(|| format!("starting to widen columns of {schema}.{table}"))?;
    tx.batch_execute(SERIAL_DDL)
        .await
        .context(|| format!("waiting for other schema changes before {schema}.{table}"))?;
    let existing = table_columns(&tx, schema, table).await?;
    let narrower: Vec<&super::ColumnSpec> = wanted
        .iter()
        .filter(|spec| {
            existing.iter().any(|column| {
                column.name == spec.name.as_str()
                    && column.pg_type.and_then(|t| t.width_cmp(spec.pg_type))
                        == Some(std::cmp::Ordering::Less)
            })
        })
        .collect();
    if narrower.is_empty() {
        return Ok(Vec::new());
    }
    let alterations: Vec<String> = narrower
        .iter()
        .map(|spec| format!("alter column {} type {}", spec.name, spec.pg_type))
        .collect();
    let names: Vec<&str> = narrower.iter().map(|spec| spec.name.as_str()).collect();
    tx.batch_execute(&format!(
        "alter table {schema}.{table} {}",
        alterations.join(", ")
    ))
    .await
    .context(|| {
        format!(
            "widening column(s) {} of {schema}.{table}",
            names.join(", ")
        )
    })?;
    tx.commit()
        .await
        .context(|| format!("committing the widened columns of {schema}.{table}"))?;
    Ok(narrower.into_iter().cloned().collect())
}
