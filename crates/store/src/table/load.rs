//! Loading a whole object into its table, keeping local work: inside one transaction that
//! holds the table's sync lock, the rows that came from Salesforce and have nothing left to
//! send are replaced by the object's records, copied with COPY. The caller commits it
//! together with the cursor, so a load cut off at any point leaves the table as it was.
//!
//! What stays: rows without an `sfid` (app inserts not sent yet) and rows with unsent
//! trigger-log entries (`NEW`, `PENDING`, `HELD`). Their changes are sent as usual; a
//! loaded record that one of them already holds (same `sfid` or upsert-field value) is
//! left out, and the load's cursor stays before it, so polls read it again and settle it
//! by the conflict rule once the local change is sent, refused or ignored.
//! Whether anything stays is decided inside the transaction, after the rows are removed,
//! never from a count taken earlier: when nothing does (a first load), pages go straight
//! into the table; otherwise they go through a staging table and are added with
//! `on conflict do nothing`.

use bytes::Bytes;
use futures_util::SinkExt as _;
use tokio_postgres::{Client, Transaction};

use super::RowShape;
use crate::catalog::leases::Fence;
use crate::error::{Context as _, Result};
use crate::own_write::{OwnTransaction, OwnWrite};
use crate::states::LogState;

/// The staging table of a load that keeps rows (temporary, dropped at commit).
const STAGING: &str = "pgforce_load_staging";

/// A load in progress: its transaction and where its pages go.
pub struct Load<'c> {
    tx: OwnTransaction<'c>,
    copy_sql: String,
    qualified: String,
    /// `insert … select` from the staging table, when rows were kept.
    merge_sql: Option<String>,
}

impl std::fmt::Debug for Load<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Load")
            .field("table", &self.qualified)
            .field("keeps_rows", &self.merge_sql.is_some())
            .finish()
    }
}

impl<'c> Load<'c> {
    /// Opens the load's transaction (pgforce's own write under the table's sync lock,
    /// committed only while the lease behind `fence` holds) and removes the rows the load
    /// replaces.
    pub async fn begin(
        client: &'c mut Client,
        shape: &RowShape,
        fence: Option<&Fence>,
    ) -> Result<Self> {
        let (schema, table) = (&shape.schema, &shape.table);
        let qualified = format!("{schema}.{table}");
        let tx = OwnWrite::on_table(schema, table)
            .fenced(fence)
            .across_calls()
            .begin(client)
            .await?;
        let unsent: Vec<String> = [LogState::New, LogState::Pending, LogState::Held]
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        tx.execute(
            &format!(
                "delete from {qualified} t where t.sfid is not null and not exists (
                     select 1 from {schema}._trigger_log l
                     where l.table_name = $1 and l.record_id = t.id and l.state = any($2))"
            ),
            &[&table.as_str(), &unsent],
        )
        .await
        .context(|| format!("removing the rows of {qualified} the load replaces"))?;
        let kept: i64 = tx
            .query_one(&format!("select count(*) from {qualified}"), &[])
            .await
            .context(|| format!("counting the local rows {qualified} keeps"))?
            .get(0);
        let columns: Vec<String> = shape.columns.iter().map(|c| c.name.to_string()).collect();
        let columns = columns.join(", ");
        let (copy_sql, merge_sql) = if kept == 0 {
            (format!("copy {qualified} ({columns}) from stdin"), None)
        } else {
            tracing::info!(table = %qualified, rows = kept, "the load keeps local rows with changes not sent yet");
            tx.batch_execute(&format!(
                "create temporary table {STAGING} on commit drop as
                     select {columns} from {qualified} with no data"
            ))
            .await
            .context(|| format!("creating the staging table of the load of {qualified}"))?;
            (
                format!("copy {STAGING} ({columns}) from stdin"),
                Some(format!(
                    "insert into {qualified} ({columns}) select {columns} from {STAGING}
                     on conflict do nothing"
                )),
            )
        };
        Ok(Self {
            tx,
            copy_sql,
            qualified,
            merge_sql,
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

    /// Adds the staged records next to the kept rows (when rows were kept); says which
    /// loaded records a kept row holds and were left out. Call once, before the cursor is
    /// saved: the cursor must not pass the records left out (see [`LeftOut`]).
    pub async fn merge(&mut self) -> Result<LeftOut> {
        let Some(merge) = self.merge_sql.take() else {
            return Ok(LeftOut::default());
        };
        let row = self
            .tx
            .query_one(
                &format!(
                    "with added as ({merge} returning sfid)
                     select count(*),
                            to_char(min(s.systemmodstamp), 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
                     from {STAGING} s where not exists (select 1 from added a where a.sfid = s.sfid)"
                ),
                &[],
            )
            .await
            .context(|| format!("adding the loaded records to {}", self.qualified))?;
        Ok(LeftOut {
            records: u64::try_from(row.get::<_, i64>(0)).unwrap_or_default(),
            oldest_stamp: row.get(1),
        })
    }

    /// Commits the load (when its lease still holds).
    pub async fn commit(self) -> Result<()> {
        self.tx
            .commit(&format!("the load of {}", self.qualified))
            .await
    }
}

/// Loaded records a kept row holds, left out of the load: the row's local change is sent
/// first. Polls must read them again once that change is settled (it may fail, or be
/// ignored), so the load's cursor starts no later than the oldest of them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// How many.
    pub records: u64,
    /// The oldest one's `SystemModstamp` as a SOQL datetime (`2024-01-01T10:00:05.123Z`).
    pub oldest_stamp: Option<String>,
}
