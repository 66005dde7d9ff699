//! Loading a whole object into its table: the table emptied and filled with COPY inside
//! one transaction, which the caller commits together with the cursor, so a load cut off
//! at any point leaves the table as it was.

use bytes::Bytes;
use futures_util::SinkExt as _;
use tokio_postgres::{Client, Transaction};

use super::RowShape;
use crate::catalog::leases::Fence;
use crate::error::{Context as _, Result};
use crate::own_write::{OwnTransaction, OwnWrite};

/// A load in progress: its transaction and the COPY statement for the shape.
pub struct Load<'c> {
    tx: OwnTransaction<'c>,
    copy_sql: String,
    qualified: String,
}

impl std::fmt::Debug for Load<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Load")
            .field("table", &self.qualified)
            .finish()
    }
}

impl<'c> Load<'c> {
    /// Opens the load's transaction (pgforce's own write, committed only while the
    /// lease behind `fence` holds) and empties the table in it.
    pub async fn begin(
        client: &'c mut Client,
        shape: &RowShape,
        fence: Option<&Fence>,
    ) -> Result<Self> {
        let (schema, table) = (&shape.schema, &shape.table);
        let qualified = format!("{schema}.{table}");
        let tx = OwnWrite::untabled().fenced(fence).begin(client).await?;
        tx.batch_execute(&format!("truncate table {schema}.{table}"))
            .await
            .context(|| format!("emptying {qualified} for the load"))?;
        let columns: Vec<String> = shape.columns.iter().map(|c| c.name.to_string()).collect();
        Ok(Self {
            tx,
            copy_sql: format!("copy {schema}.{table} ({}) from stdin", columns.join(", ")),
            qualified,
        })
    }

    /// Copies one page of COPY text (tab-separated, one line per row, columns in the
    /// shape's order); returns the rows copied.
    pub async fn copy_page(&self, text: String) -> Result<u64> {
        let copy = async {
            let sink = self.tx.copy_in::<_, Bytes>(&self.copy_sql).await?;
            futures_util::pin_mut!(sink);
            sink.send(Bytes::from(text)).await?;
            sink.as_mut().finish().await
        };
        copy.await
            .context(|| format!("copying a page into {}", self.qualified))
    }

    /// The load's transaction, for what must commit with the rows (the cursor).
    pub fn transaction(&self) -> &Transaction<'c> {
        &self.tx
    }

    /// Commits the load (when its lease still holds).
    pub async fn commit(self) -> Result<()> {
        self.tx
            .commit(&format!("the load of {}", self.qualified))
            .await
    }
}
