//! Deleting what has expired. Dashboard sessions, consents in progress, kept diagnoses and
//! OData credentials are refused once they expire, but their rows would stay forever: a
//! table anyone can make grow (every login page, every consent started) must also shrink.
//! OData usage older than a day goes too (the hourly limit reads only the current hour).
//! A running engine deletes them at start and every [`EVERY`], with the sessions of
//! expired or revoked tokens.

use std::time::Duration;

use pgforce_store::Session;
use pgforce_store::catalog::{authorizations, odata, tokens, validations};
use tokio::sync::watch;

use super::Engine;

/// How often expired rows are deleted (and once at start).
pub(super) const EVERY: Duration = Duration::from_secs(600);

/// Deletes expired rows at start and every [`EVERY`] until `shutdown` turns true.
pub(super) async fn run(engine: Engine, mut shutdown: watch::Receiver<bool>) {
    loop {
        match engine.catalog_session().await {
            Ok(pg) => purge(&pg).await,
            Err(error) => {
                tracing::warn!(error = %error.chain(), "could not reach the catalog to delete expired sessions; trying again later");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One pass: each kind is deleted on its own, so one failing leaves the others done. A
/// failure is logged and left for the next pass: expired rows take room but open nothing.
async fn purge(pg: &Session) {
    let passes = [
        ("dashboard sessions", tokens::purge_sessions(pg).await),
        ("authorizations", authorizations::purge_expired(pg).await),
        ("validations", validations::purge_expired(pg).await),
        ("OData credentials and usage", odata::purge(pg).await),
    ];
    for (what, outcome) in passes {
        match outcome {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(what, deleted, "expired rows deleted"),
            Err(error) => {
                tracing::warn!(what, error = %crate::error::chain(&error), "could not delete expired rows; trying again later");
            }
        }
    }
}
