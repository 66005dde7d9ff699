//! One lock per mapped table shared by its reader and its writer.
//!
//! The reader inserts rows for records new in Salesforce; the writer writes back the `sfid`
//! of records it just created. Without coordination the reader can see a record the
//! writer created before the writer has written its Id back, and insert a second row for
//! it. Both take this transaction-scoped advisory lock before touching a table's `sfid`s,
//! so one always sees the other's committed work: the writer removes a row the reader
//! added for its own record, and the reader updates the row the writer wrote back.

use tokio_postgres::GenericClient;

use crate::Ident;
use crate::error::{Context as _, Result};

/// Takes the table's sync lock until the end of the current transaction.
pub async fn lock_table(client: &impl GenericClient, schema: &Ident, table: &Ident) -> Result<()> {
    let key = format!("pgforce:{}.{}", schema.as_str(), table.as_str());
    client
        .execute(
            "select pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
        .context(|| format!("locking {schema}.{table} for sync"))
        .map(|_| ())
}
