//! The transaction every OData request runs in.

use std::time::Duration;

use tokio_postgres::{Client, Transaction};

use crate::error::{Context as _, Result};

/// Opens the transaction an OData request runs in: a `statement_timeout`, read only
/// unless `writable`, and `xmlbinary = 'base64'` so that writes to a synced table are
/// captured by its triggers into its `_trigger_log` like any app write (pgforce's own
/// writes use `'hex'`, which the triggers skip), the UTC time zone, and floats written
/// as text exactly (`extra_float_digits = 1`, which skip tokens rely on). A
/// [`crate::PooledSession`] derefs to the [`Client`] this takes (`&mut *session`).
pub async fn request_transaction(
    client: &mut Client,
    statement_timeout: Duration,
    writable: bool,
) -> Result<Transaction<'_>> {
    let transaction = client
        .transaction()
        .await
        .context(|| "opening an OData request transaction".to_owned())?;
    let millis = statement_timeout.as_millis().clamp(1, i32::MAX as u128);
    let access = if writable { "read write" } else { "read only" };
    // Constants and a number only: nothing a caller sends reaches this text.
    let settings = format!(
        "set transaction {access}; set local statement_timeout = {millis}; \
         set local xmlbinary = 'base64'; set local timezone = 'UTC'; \
         set local extra_float_digits = 1"
    );
    transaction
        .batch_execute(&settings)
        .await
        .context(|| "setting up an OData request transaction".to_owned())?;
    Ok(transaction)
}
