//! The one way pgforce opens a transaction for its own writes to synced tables.
//!
//! Every such transaction must do the same things first, and doing them in one place is
//! how none is forgotten:
//! - `set local xmlbinary = 'hex'`: the capture triggers (as Heroku Connect installs them)
//!   skip sessions with that setting, so what pgforce writes is never captured and sent
//!   back to where it came from (the worker contract's no-echo rule).
//! - The table's **sync lock**, a transaction-scoped advisory lock shared by the table's
//!   reader and writer. The reader inserts rows for records new in Salesforce; the writer
//!   writes back the `sfid` of records it just created. Without the lock the reader can
//!   see a record the writer created before its Id is written back and insert a second
//!   row for it. Holding it, each sees the other's committed work: the writer removes a
//!   row the reader added for its own record, and the reader updates the row the writer
//!   wrote back.
//! - Optionally relaxed durability (`synchronous_commit = off`) for work whose loss in a
//!   database crash is recovered by the caller (the writer's outcomes: rows left PENDING
//!   are checked against Salesforce before anything is sent again).
//! - For work done under a lease, the **fence**: [`OwnTransaction::commit`] checks that
//!   the lease still carries the token the work was started with (and holds the lease row
//!   until the commit), so a worker that lost its lease commits nothing (see
//!   [`crate::catalog::leases`]).
//! - For fenced work that never waits on Salesforce inside the transaction (all of it but
//!   a load, which streams pages from Salesforce into one transaction), a limit on how long
//!   the transaction may sit idle (`idle_in_transaction_session_timeout`, twice the
//!   lease's lifetime): a holder frozen mid-transaction (SIGSTOP, a VM paused) would
//!   otherwise keep its row locks, and the process that took its lease over would wait on
//!   them until it woke. Postgres ends such a session; what it held is rolled back.

use std::ops::Deref;

use tokio_postgres::{Client, GenericClient, Transaction};

use crate::Ident;
use crate::catalog::leases::{self, Fence};
use crate::error::{Context as _, Result};

/// What a transaction for pgforce's own writes covers.
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnWrite<'a> {
    /// The synced table whose sync lock to take.
    table: Option<(&'a Ident, &'a Ident)>,
    /// Whether commits may skip waiting for the flush.
    relaxed: bool,
    /// The lease the work is done under.
    fence: Option<&'a Fence>,
    /// Whether the transaction stays open across Salesforce calls (no idle limit).
    across_calls: bool,
}

impl<'a> OwnWrite<'a> {
    /// A transaction that writes the synced table `schema.table` (and takes its lock).
    pub fn on_table(schema: &'a Ident, table: &'a Ident) -> Self {
        Self {
            table: Some((schema, table)),
            ..Self::default()
        }
    }

    /// A transaction that writes no synced table's `sfid`s (trigger-log bookkeeping).
    pub fn untabled() -> Self {
        Self::default()
    }

    /// Lets the commit return before the flush; only for work the caller recovers when a
    /// database crash loses it.
    pub fn relaxed(mut self) -> Self {
        self.relaxed = true;
        self
    }

    /// Commits only while the lease behind `fence` is still this work's (no fence: work
    /// no lease guards, such as a command run by hand).
    pub fn fenced(mut self, fence: Option<&'a Fence>) -> Self {
        self.fence = fence;
        self
    }

    /// Keeps the transaction open across Salesforce calls (a load streaming its pages):
    /// no idle limit, since waiting on Salesforce is not a sign of a frozen holder.
    pub fn across_calls(mut self) -> Self {
        self.across_calls = true;
        self
    }

    /// Opens the transaction.
    pub async fn begin(self, client: &mut Client) -> Result<OwnTransaction<'_>> {
        let tx = client
            .transaction()
            .await
            .context(|| "starting a transaction for pgforce's own writes".to_owned())?;
        let mut settings = String::from("set local xmlbinary = 'hex';");
        if self.relaxed {
            settings.push_str(" set local synchronous_commit = off;");
        }
        if let Some(fence) = self.fence.filter(|_| !self.across_calls) {
            // A number of milliseconds, formatted here: SET takes no bound parameters.
            let millis = fence.idle_limit().as_millis();
            settings.push_str(&format!(
                " set local idle_in_transaction_session_timeout = {millis};"
            ));
        }
        tx.batch_execute(&settings)
            .await
            .context(|| "marking the transaction as pgforce's own".to_owned())?;
        if let Some((schema, table)) = self.table {
            lock_table(&tx, schema, table).await?;
        }
        Ok(OwnTransaction {
            tx,
            fence: self.fence.cloned(),
        })
    }
}

/// A transaction for pgforce's own writes; statements run on it as on any transaction.
pub struct OwnTransaction<'c> {
    tx: Transaction<'c>,
    fence: Option<Fence>,
}

impl std::fmt::Debug for OwnTransaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnTransaction")
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl<'c> Deref for OwnTransaction<'c> {
    type Target = Transaction<'c>;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl OwnTransaction<'_> {
    /// Takes the sync lock of one more synced table (a transaction that writes several).
    pub async fn lock_table(&self, schema: &Ident, table: &Ident) -> Result<()> {
        lock_table(&self.tx, schema, table).await
    }

    /// Checks the fence, when there is one, then commits; `what` names the work for the
    /// error. A fenced-out transaction is rolled back: nothing of it lands.
    pub async fn commit(self, what: &str) -> Result<()> {
        if let Some(fence) = &self.fence {
            leases::check(&self.tx, fence).await?;
        }
        self.tx
            .commit()
            .await
            .context(|| format!("committing {what}"))
    }
}

/// Takes the table's sync lock until the end of the current transaction.
async fn lock_table(client: &impl GenericClient, schema: &Ident, table: &Ident) -> Result<()> {
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
