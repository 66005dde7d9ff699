//! `pgforce.validations`: diagnoses of connections, kept as JSON so the result URL the API
//! handed out answers from any process, for a day ([`KEPT`]); then they are purged.

use tokio_postgres::GenericClient;

use crate::ConnectionId;
use crate::error::{Context as _, Result};

/// How long a diagnosis is kept (a Postgres interval).
pub const KEPT: &str = "1 day";

/// Keeps a diagnosis (JSON text); returns its id.
pub async fn save(
    client: &impl GenericClient,
    connection: ConnectionId,
    result: &str,
) -> Result<i64> {
    let row = client
        .query_one(
            "insert into pgforce.validations (connection_id, result) values ($1, $2::text::jsonb) returning id",
            &[&connection.get(), &result],
        )
        .await
        .context(|| format!("keeping a diagnosis of connection {connection}"))?;
    Ok(row.get(0))
}

/// A kept diagnosis of `connection` (JSON text), if there is one with this id, younger
/// than [`KEPT`].
pub async fn find(
    client: &impl GenericClient,
    connection: ConnectionId,
    id: i64,
) -> Result<Option<String>> {
    let row = client
        .query_opt(
            "select result::text from pgforce.validations
             where id = $1 and connection_id = $2 and created_at > now() - $3::text::interval",
            &[&id, &connection.get(), &KEPT],
        )
        .await
        .context(|| format!("reading diagnosis {id} of connection {connection}"))?;
    Ok(row.map(|r| r.get(0)))
}

/// Deletes diagnoses older than [`KEPT`]. Returns how many.
pub async fn purge_expired(client: &impl GenericClient) -> Result<u64> {
    client
        .execute(
            "delete from pgforce.validations where created_at <= now() - $1::text::interval",
            &[&KEPT],
        )
        .await
        .context(|| "deleting expired diagnoses".to_owned())
}
