//! Waiting out an org-wide condition: the org's daily API allocation is spent, or
//! Salesforce no longer accepts the connection's credentials.
//!
//! None of it is the records' fault, so no change fails for it: the writer gives the
//! changes it had claimed back (NEW), shows the connection as `PAUSED_API_LIMIT` or
//! `PAUSED_AUTH` with Salesforce's words, records the pause on each of its mappings, and
//! asks the org with a cheap probe — the limits resource, which needs a working session
//! and an allocation — at growing intervals (1 s doubling to a minute). When the probe
//! passes, the connection is `IDLE` again and the changes go out in capture order.

use std::time::{Duration, Instant};

use pgforce_salesforce::Client;
use pgforce_store::catalog::connections;
use pgforce_store::catalog::leases::LeaseKeeper;
use pgforce_store::{ConnectionState, Session};
use tokio::sync::watch;

use super::worker::WriteWorker;
use crate::error_policy::{self, Decision, Pause};
use crate::events::ConnectionPaused;
use crate::worker::Backoff;

/// How a wait ended.
pub(super) enum Waited {
    /// The org answers again.
    Resumed,
    /// Told to stop meanwhile.
    Stopped,
    /// The lease moved to another process meanwhile.
    LeaseLost,
}

impl WriteWorker {
    /// Shows the pause, then probes until the org answers again (or the worker must stop).
    pub(super) async fn wait_out(
        &self,
        pause: &Pause,
        salesforce: &Client,
        keeper: &LeaseKeeper,
        stop: &mut watch::Receiver<bool>,
    ) -> Waited {
        let started = Instant::now();
        let pg = pgforce_store::connect(&self.database_url).await.ok();
        self.show(pg.as_ref(), &pause.state, Some(&pause.reason))
            .await;
        ConnectionPaused {
            connection: &self.connection,
            mappings: &self.catalog_mappings(),
            pause,
            resumed_after: None,
        }
        .emit(&self.bus, pg.as_ref())
        .await;
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            tokio::select! {
                () = tokio::time::sleep(backoff.next_wait()) => {}
                _ = stop.changed() => return Waited::Stopped,
            }
            if *stop.borrow() {
                return Waited::Stopped;
            }
            if !keeper.is_held() {
                return Waited::LeaseLost;
            }
            if org_answers(salesforce).await {
                break;
            }
        }
        let pg = pgforce_store::connect(&self.database_url).await.ok();
        if let (Some(pg), Some(id)) = (&pg, self.connection_id)
            && let Err(error) = connections::lift_org_pause(pg, id).await
        {
            tracing::warn!(error = %crate::error::chain(&error), "could not record that the connection resumed");
        }
        ConnectionPaused {
            connection: &self.connection,
            mappings: &self.catalog_mappings(),
            pause,
            resumed_after: Some(started.elapsed()),
        }
        .emit(&self.bus, pg.as_ref())
        .await;
        Waited::Resumed
    }

    async fn show(&self, pg: Option<&Session>, state: &ConnectionState, reason: Option<&str>) {
        if let (Some(pg), Some(id)) = (pg, self.connection_id)
            && let Err(error) = connections::set_state(pg, id, state, reason).await
        {
            tracing::warn!(error = %crate::error::chain(&error), "could not record the connection's state");
        }
    }
}

/// Whether the org takes calls again: the limits resource answers (a session works) and
/// the daily allocation is not spent.
async fn org_answers(salesforce: &Client) -> bool {
    match salesforce.limits().await {
        Ok(limits) => limits
            .get("DailyApiRequests")
            .is_none_or(|requests| requests.remaining > 0),
        Err(error) => {
            let decision = error_policy::decide_call(&error).decision;
            tracing::debug!(error = %error, paused = decision == Decision::PauseConnection, "the org does not answer yet");
            false
        }
    }
}
