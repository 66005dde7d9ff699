//! Opening connections to Postgres.

use tokio_postgres::{Client, NoTls};

use crate::error::{Context as _, Result};

/// Connects and drives the connection on the runtime until the client is dropped or the
/// server goes away (then calls fail with a closed-connection error).
pub async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context(|| "connecting to PostgreSQL".to_owned())?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::error!(error = %error, "database connection lost");
        }
    });
    Ok(client)
}
