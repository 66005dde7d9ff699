//! A connection's schema with Heroku Connect's support objects: `_trigger_log`,
//! `_trigger_log_archive`, the NOTIFY trigger, `public.get_xmlbinary()` and the
//! `hc_capture_*_from_row` helpers.

use tokio_postgres::Client;

use super::{SERIAL_DDL, render};
use crate::error::{Context as _, Result};
use crate::ident::{Ident, literal};

const CONNECTION_SCHEMA_SQL: &str = include_str!("../../sql/connection_schema.sql");

/// The NOTIFY channel a connection's writer listens on: `<schema>.hc_trigger_log`.
pub fn trigger_log_channel(schema: &Ident) -> String {
    format!("{}.hc_trigger_log", schema.as_str())
}

/// Creates (or completes) a connection's schema. Idempotent.
pub async fn ensure_connection_schema(client: &Client, schema: &Ident) -> Result<()> {
    let sql = render(
        CONNECTION_SCHEMA_SQL,
        &[
            ("schema", schema.to_string()),
            ("channel", literal(&trigger_log_channel(schema))),
        ],
    );
    // One simple-query batch runs as one transaction: the lock holds until its end.
    client
        .batch_execute(&format!("{SERIAL_DDL}{sql}"))
        .await
        .context(|| format!("creating the trigger log in schema {schema}"))
}

/// The tables, views and other relations already in `schema` (at most `limit` names, in
/// order): what a connection created through the API would sync over (none when the
/// schema does not exist).
pub async fn relations_in(
    client: &impl tokio_postgres::GenericClient,
    schema: &str,
    limit: i64,
) -> Result<Vec<String>> {
    let rows = client
        .query(
            "select c.relname::text from pg_class c
             join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = $1 and c.relkind in ('r', 'p', 'v', 'm', 'f')
             order by c.relname limit $2",
            &[&schema, &limit],
        )
        .await
        .context(|| format!("reading what schema {schema} holds"))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}
