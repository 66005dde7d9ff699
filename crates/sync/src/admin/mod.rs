//! The admin side of the engine: what the management API, the dashboard, `/metrics` and
//! `pgforce status` ask about what the runtime does.
//!
//! The runtime ([`Engine`]: open, run, shut down, run-time changes) and its audience
//! differ: the admin side answers people and scrapers, by id, on the engine's bounded
//! pool of sessions, and keeps what is expensive to work out (row counts, Salesforce
//! counts, describes) for a stated time. [`Engine::admin`] hands it out; it shares
//! everything with the engine it came from.
//!
//! Layout: `views` (connections and mappings as the API shows them, by id, with their
//! freshness), `validate` (diagnosing a connection), `status` (`pgforce status`),
//! `scrape` (metrics), `authorize` (the OAuth web-server flow), `access` (API tokens and
//! dashboard sessions), `audit` (the audit trail), `inspect` (refused writes,
//! notifications, describes, activity), `odata` (OData services: management and the
//! endpoint's check of its callers).

mod access;
mod audit;
mod authorize;
mod inspect;
mod odata;
mod scrape;
mod status;
mod validate;
mod views;

pub use authorize::{Authorized, ConsentRequest, OpenedConsent};
pub use odata::{ODataAccess, ODataCredentials, ODataGrant, ODataResource, ODataService};
pub use status::{ConnectionStatus, MappingStatus, Status, WriterStatus};
pub use validate::{Check, Diagnosis, Outcome as CheckOutcome};
pub(crate) use views::Kept;
pub use views::{
    ConnectionView, DESCRIBE_FRESH, Depth, EXACT_COUNT_BELOW, MappingView, ROW_COUNT_FRESH,
    SALESFORCE_COUNT_FRESH,
};

use crate::engine::Engine;

/// The admin side of an engine. Cheap to clone: it shares everything with its engine.
#[derive(Debug, Clone)]
pub struct Admin {
    engine: Engine,
}

impl Engine {
    /// The admin side of this engine.
    pub fn admin(&self) -> Admin {
        Admin {
            engine: self.clone(),
        }
    }
}
