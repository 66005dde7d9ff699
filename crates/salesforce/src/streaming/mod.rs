//! Change events from Salesforce: Change Data Capture over the Streaming API (CometD) and
//! the Pub/Sub API (gRPC), decoded into one [`ChangeEvent`] type.
//!
//! A subscription is opened at a [`StartAt`] position and yields [`EventBatch`]es; each
//! carries the replay id to resume after. Replay ids are opaque bytes
//! ([`ReplayId`]); a CometD replay id (a number) is kept as its 8 big-endian bytes, so a
//! caller stores both kinds the same way.
//!
//! Streaming calls do not count against the org's daily API requests in Salesforce, so
//! they are not counted in [`crate::Client::calls_made`] either.

mod avro;
pub mod cometd;
pub mod pubsub;

pub use avro::format_timestamp;

use serde_json::{Map, Value};

/// Where a replay position is opaque bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplayId(pub Vec<u8>);

impl ReplayId {
    /// A CometD replay id (a number) as bytes.
    pub fn from_number(id: i64) -> Self {
        Self(id.to_be_bytes().to_vec())
    }

    /// The CometD number for these bytes, when they are 8 bytes long.
    pub fn as_number(&self) -> Option<i64> {
        <[u8; 8]>::try_from(self.0.as_slice())
            .ok()
            .map(i64::from_be_bytes)
    }
}

/// Where a new subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// Only events published from now on (`-1` / `LATEST`).
    Latest,
    /// Every event Salesforce still retains (`-2` / `EARLIEST`).
    Earliest,
    /// The events after this replay id (`CUSTOM`).
    After(ReplayId),
}

/// `ChangeEventHeader.changeType`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeType {
    /// A record was created.
    Create,
    /// A record was updated.
    Update,
    /// A record was deleted.
    Delete,
    /// A record was restored from the recycle bin.
    Undelete,
    /// A gap event: something happened to the records that the event does not describe;
    /// read them again (`GAP_CREATE`, `GAP_UPDATE`, `GAP_DELETE`, `GAP_UNDELETE`).
    Gap(String),
    /// Too many changes in one transaction: read the whole object again (`GAP_OVERFLOW`).
    Overflow,
    /// A type this client does not know, kept as sent.
    Other(String),
}

impl ChangeType {
    /// Parses Salesforce's name for a change type.
    pub fn parse(name: &str) -> Self {
        match name {
            "CREATE" => Self::Create,
            "UPDATE" => Self::Update,
            "DELETE" => Self::Delete,
            "UNDELETE" => Self::Undelete,
            "GAP_OVERFLOW" => Self::Overflow,
            gap if gap.starts_with("GAP_") => Self::Gap(gap.to_owned()),
            other => Self::Other(other.to_owned()),
        }
    }

    /// Whether the event carries the changed values (not a gap or overflow event).
    pub fn carries_values(&self) -> bool {
        matches!(
            self,
            Self::Create | Self::Update | Self::Delete | Self::Undelete
        )
    }
}

/// One Change Data Capture event, whatever transport brought it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// Where to resume after this event.
    pub replay_id: ReplayId,
    /// The object's API name (`ChangeEventHeader.entityName`).
    pub entity: String,
    /// What happened.
    pub change_type: ChangeType,
    /// The records it happened to (a `<prefix>*` wildcard is kept as sent).
    pub record_ids: Vec<String>,
    /// `com/salesforce/api/<api>/<version>;client=<id>`, or empty.
    pub change_origin: String,
    /// When the transaction committed, epoch milliseconds.
    pub commit_timestamp: i64,
    /// Names of the fields the change set or cleared (Pub/Sub bitmaps already decoded;
    /// compound sub-fields as `Parent.Child`).
    pub changed_fields: Vec<String>,
    /// Names of the fields set to null.
    pub nulled_fields: Vec<String>,
    /// The body fields the event carries, by API name, as JSON (CometD) or as decoded
    /// from Avro (Pub/Sub; fields not set in this change are left out).
    pub fields: Map<String, Value>,
}

impl ChangeEvent {
    /// When the change was saved: the body's `LastModifiedDate` (epoch milliseconds; the
    /// Pub/Sub API sends a number, CometD an ISO 8601 text). Salesforce puts it in every
    /// create and update event, and the record's `SystemModstamp` for that version is
    /// never earlier, unlike the transaction's `commitTimestamp`, which comes after both.
    pub fn last_modified_millis(&self) -> Option<i64> {
        match self.fields.get("LastModifiedDate")? {
            serde_json::Value::Number(number) => number.as_i64(),
            serde_json::Value::String(text) => cometd::parse_iso_millis(text),
            _ => None,
        }
    }

    /// Whether pgforce (or any caller naming `client` in `Sforce-Call-Options`) made
    /// this change.
    pub fn made_by_client(&self, client: &str) -> bool {
        self.change_origin
            .rsplit_once(";client=")
            .is_some_and(|(_, c)| c == client)
    }
}

/// What one wait on a subscription brought.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventBatch {
    /// Events in replay order; may be empty (a keepalive or an idle poll).
    pub events: Vec<ChangeEvent>,
    /// The position the server says the stream has reached, when it says (Pub/Sub's
    /// `latest_replay_id`; the last event's id otherwise).
    pub latest_replay_id: Option<ReplayId>,
}

/// Why a subscription failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The replay id asked for is outside the retention window (or was never issued):
    /// start again from [`StartAt::Latest`] after catching up some other way.
    #[error("replay id no longer available: {0}")]
    ReplayExpired(String),
    /// The channel or topic does not exist, or the org does not offer this API.
    #[error("not available: {0}")]
    Unavailable(String),
    /// The session was refused and could not be renewed.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The connection failed or was cut; reconnecting may work.
    #[error("connection failed: {0}")]
    Transport(String),
    /// The server answered something this client cannot read.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// A call through the REST client failed (logging in, for instance).
    #[error(transparent)]
    Api(Box<crate::Error>),
}

impl From<crate::Error> for StreamError {
    fn from(error: crate::Error) -> Self {
        Self::Api(Box::new(error))
    }
}
