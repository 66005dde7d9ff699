//! `pgforce.stale_creates`: records a writer created after it lost its lease.
//!
//! A writer checks its lease right before each request leaves, but a process frozen in
//! the instant between that check and the bytes reaching the socket sends its request
//! late, after another process took over and sent the same rows again. It cannot record
//! the outcome (the fence refuses it), so it reports the Ids it created here; the
//! connection's current writer, the only one that adopts records, deletes the reported
//! records no row owns.

use tokio_postgres::GenericClient;

use crate::error::{Context as _, Result};

/// A reported record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleCreate {
    /// The report's id.
    pub id: i64,
    /// The mapped table.
    pub table: String,
    /// The record's Id.
    pub sfid: String,
}

/// Reports records of `table` created under a lost lease of `connection`'s writer.
pub async fn report(
    client: &impl GenericClient,
    connection: &str,
    table: &str,
    sfids: &[String],
) -> Result<()> {
    if sfids.is_empty() {
        return Ok(());
    }
    client
        .execute(
            "insert into pgforce.stale_creates (connection_name, table_name, sfid)
             select $1, $2, unnest($3::text[])",
            &[&connection, &table, &sfids],
        )
        .await
        .context(|| format!("reporting records created under a lost lease of {connection}"))
        .map(|_| ())
}

/// The reports of `connection` not handled yet, oldest first.
pub async fn open(client: &impl GenericClient, connection: &str) -> Result<Vec<StaleCreate>> {
    let rows = client
        .query(
            "select id, table_name, sfid from pgforce.stale_creates
             where connection_name = $1 and handled_at is null order by id",
            &[&connection],
        )
        .await
        .context(|| format!("reading records created under a lost lease of {connection}"))?;
    Ok(rows
        .iter()
        .map(|row| StaleCreate {
            id: row.get(0),
            table: row.get(1),
            sfid: row.get(2),
        })
        .collect())
}

/// Marks reports handled, saying how (`deleted`, `owned`).
pub async fn handled(client: &impl GenericClient, ids: &[i64], outcome: &str) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    client
        .execute(
            "update pgforce.stale_creates set handled_at = now(), outcome = $2 where id = any($1)",
            &[&ids, &outcome],
        )
        .await
        .context(|| "marking records created under a lost lease handled".to_owned())
        .map(|_| ())
}
