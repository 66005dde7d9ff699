//! Looking at and touching a synced table as an app would, for `pgforce demo`'s tour:
//! read one column of a row, change it. Unlike pgforce's own writes, a change made here is
//! an app's: the capture triggers log it and the writer sends it to Salesforce.

use tokio_postgres::GenericClient;

use crate::Ident;
use crate::error::{Context as _, Result};

/// A row of a synced table with one of its text columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The row's id.
    pub id: i32,
    /// Its Salesforce Id.
    pub sfid: String,
    /// The column's value.
    pub value: Option<String>,
}

/// The `nth` row (by id) that has an `sfid`, with `column`.
pub async fn sample(
    client: &impl GenericClient,
    schema: &Ident,
    table: &Ident,
    column: &Ident,
    nth: i64,
) -> Result<Option<Sample>> {
    let row = client
        .query_opt(
            &format!(
                "select id, sfid::text, {column}::text from {schema}.{table}
                 where sfid is not null order by id offset $1 limit 1"
            ),
            &[&nth],
        )
        .await
        .context(|| format!("reading a row of {schema}.{table}"))?;
    Ok(row.map(|row| Sample {
        id: row.get(0),
        sfid: row.get(1),
        value: row.get(2),
    }))
}

/// The value of `column` in the row of record `sfid`.
pub async fn value_of(
    client: &impl GenericClient,
    schema: &Ident,
    table: &Ident,
    column: &Ident,
    sfid: &str,
) -> Result<Option<String>> {
    let row = client
        .query_opt(
            &format!("select {column}::text from {schema}.{table} where sfid = $1"),
            &[&sfid],
        )
        .await
        .context(|| format!("reading record {sfid} in {schema}.{table}"))?;
    Ok(row.and_then(|row| row.get(0)))
}

/// Sets a text `column` of row `id`, as an app would (captured and sent to Salesforce on
/// a read-write mapping).
pub async fn set_value(
    client: &impl GenericClient,
    schema: &Ident,
    table: &Ident,
    column: &Ident,
    id: i32,
    value: &str,
) -> Result<()> {
    client
        .execute(
            &format!("update {schema}.{table} set {column} = $2 where id = $1"),
            &[&id, &value],
        )
        .await
        .context(|| format!("changing row {id} of {schema}.{table}"))
        .map(|_| ())
}
