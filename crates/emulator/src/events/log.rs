//! The org's change log: every committed change to an object someone listens to, with
//! the replay id the Streaming and Pub/Sub APIs hand out.
//!
//! Salesforce keeps change events for a retention window (72 hours for Change Data
//! Capture, 24 for PushTopics) and lets a subscriber replay from any id still inside it.
//! The emulator keeps one log per org, ordered by replay id, and both wire protocols
//! (CometD in `cometd`, gRPC in `pubsub`) read from it. Replay ids are unique and
//! increasing across the org, so on any one channel they are increasing but not
//! contiguous, as in Salesforce.
//!
//! Nothing is recorded for objects nobody listens to (no CDC selection, no PushTopic), so
//! seeding a large org or running the workload costs nothing until a test subscribes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use tokio::sync::watch;

use crate::org::{ObjectIndex, RecordRef, Value};

/// How many events an org keeps at most, whatever their age; older ones are forgotten
/// (their replay ids are then refused as expired).
pub const DEFAULT_CAPACITY: usize = 200_000;

/// How long Change Data Capture events are kept, in milliseconds (72 hours).
pub const DEFAULT_RETENTION_MS: i64 = 72 * 3_600_000;

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Create,
    Update,
    Delete,
    Undelete,
}

impl ChangeType {
    /// The name Change Data Capture uses (`ChangeEventHeader.changeType`).
    pub fn cdc_name(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Undelete => "UNDELETE",
        }
    }

    /// The name PushTopic events use (`data.event.type`).
    pub fn push_topic_name(self) -> &'static str {
        match self {
            Self::Create => "created",
            Self::Update => "updated",
            Self::Delete => "deleted",
            Self::Undelete => "undeleted",
        }
    }
}

/// One committed change to one record.
#[derive(Debug, Clone)]
pub struct ChangeEvent {
    /// Unique and increasing across the org.
    pub replay_id: u64,
    pub record: RecordRef,
    pub change_type: ChangeType,
    /// Indexes (in the object's field list) of the fields this change set or cleared.
    pub changed: Vec<usize>,
    /// Of those, the fields set to null.
    pub nulled: Vec<usize>,
    /// Every field of the record after the change (before it, for a delete).
    pub values: Arc<[Value]>,
    /// `com/salesforce/api/<api>/<version>;client=<id>` when the call named a client in
    /// `Sforce-Call-Options`; empty otherwise.
    pub origin: Arc<str>,
    /// Shared by every change of one transaction.
    pub transaction_key: Arc<str>,
    /// The change's position in its transaction, from 1.
    pub sequence_number: u32,
    /// When the transaction committed, epoch milliseconds.
    pub commit_timestamp: i64,
    /// The transaction's system change number: increasing with each commit.
    pub commit_number: u64,
    pub commit_user: RecordRef,
    /// Whether the object was selected for Change Data Capture when this committed.
    pub cdc: bool,
}

/// A change as a transaction reports it, before it is given a replay id.
#[derive(Debug)]
pub struct CommittedChange {
    pub record: RecordRef,
    pub change_type: ChangeType,
    pub changed: Vec<usize>,
    pub nulled: Vec<usize>,
    pub values: Arc<[Value]>,
}

/// The transaction-wide part of a commit.
#[derive(Debug)]
pub struct Commit {
    pub origin: Arc<str>,
    pub timestamp: i64,
    pub user: RecordRef,
}

/// Where a subscriber asks to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// Only events committed from now on (`-1`, `LATEST`).
    Latest,
    /// Every event still retained (`-2`, `EARLIEST`).
    Earliest,
    /// Events after this replay id (`CUSTOM`).
    After(u64),
}

/// A replay id outside the retention window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("replay id {0} is not available (expired or never issued)")]
pub struct ReplayUnavailable(pub u64);

/// The org's change log.
#[derive(Debug)]
pub struct ChangeLog {
    events: VecDeque<Arc<ChangeEvent>>,
    /// The last replay id handed out (0: none yet).
    last_replay: u64,
    /// Replay ids up to this one are no longer retained.
    forgotten_through: u64,
    last_commit_number: u64,
    cdc_entities: BTreeSet<ObjectIndex>,
    /// How many entities the org may select for Change Data Capture (`None`: no limit, as
    /// with Salesforce's add-on licence).
    cdc_allocation: Option<usize>,
    /// Objects with at least one PushTopic, and how many.
    topic_objects: BTreeMap<ObjectIndex, usize>,
    capacity: usize,
    retention_ms: i64,
    latest: watch::Sender<u64>,
}

impl Default for ChangeLog {
    fn default() -> Self {
        Self {
            events: VecDeque::new(),
            last_replay: 0,
            forgotten_through: 0,
            last_commit_number: 10_585_193_272_000,
            cdc_entities: BTreeSet::new(),
            cdc_allocation: Some(DEFAULT_CDC_ENTITY_ALLOCATION),
            topic_objects: BTreeMap::new(),
            capacity: DEFAULT_CAPACITY,
            retention_ms: DEFAULT_RETENTION_MS,
            latest: watch::channel(0).0,
        }
    }
}

/// How many entities an org may select for Change Data Capture without the add-on licence:
/// five in every edition, counted across all channels (Salesforce's "Change Data Capture
/// Allocations").
pub const DEFAULT_CDC_ENTITY_ALLOCATION: usize = 5;

impl ChangeLog {
    /// How many entities may be selected for Change Data Capture (`None`: no limit).
    pub fn cdc_allocation(&self) -> Option<usize> {
        self.cdc_allocation
    }

    /// Sets how many entities may be selected (`None`: no limit). Selections already made
    /// stay, as in Salesforce when a licence ends.
    pub fn set_cdc_allocation(&mut self, allocation: Option<usize>) {
        self.cdc_allocation = allocation;
    }

    /// Whether one more entity may be selected for Change Data Capture.
    pub fn has_room_for_cdc(&self) -> bool {
        self.cdc_allocation
            .is_none_or(|allocation| self.cdc_entities.len() < allocation)
    }

    /// Selects an object for Change Data Capture (a channel member of `ChangeEvents`).
    pub fn enable_cdc(&mut self, object: ObjectIndex) {
        self.cdc_entities.insert(object);
    }

    /// Removes an object from Change Data Capture.
    pub fn disable_cdc(&mut self, object: ObjectIndex) {
        self.cdc_entities.remove(&object);
    }

    /// Whether an object is selected for Change Data Capture.
    pub fn is_cdc_enabled(&self, object: ObjectIndex) -> bool {
        self.cdc_entities.contains(&object)
    }

    /// The objects selected for Change Data Capture.
    pub fn cdc_entities(&self) -> impl Iterator<Item = ObjectIndex> + '_ {
        self.cdc_entities.iter().copied()
    }

    /// A PushTopic on this object now exists: record its changes.
    pub fn watch_object(&mut self, object: ObjectIndex) {
        *self.topic_objects.entry(object).or_default() += 1;
    }

    /// A PushTopic on this object is gone.
    pub fn unwatch_object(&mut self, object: ObjectIndex) {
        if let Some(count) = self.topic_objects.get_mut(&object) {
            *count -= 1;
            if *count == 0 {
                self.topic_objects.remove(&object);
            }
        }
    }

    /// The objects PushTopics watch, with how many topics watch each.
    pub fn topic_watches(&self) -> Vec<(ObjectIndex, usize)> {
        self.topic_objects.iter().map(|(o, n)| (*o, *n)).collect()
    }

    /// Whether changes to this object are recorded.
    pub fn records(&self, object: ObjectIndex) -> bool {
        self.cdc_entities.contains(&object) || self.topic_objects.contains_key(&object)
    }

    /// Sets the retention window and the most events kept (tests shorten them).
    pub fn set_retention(&mut self, retention_ms: i64, capacity: usize) {
        self.retention_ms = retention_ms;
        self.capacity = capacity.max(1);
        self.trim(crate::datetime::now_millis());
    }

    /// Wakes on every new event; the value is the latest replay id.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// The last replay id handed out (0 before the first event).
    pub fn latest_replay(&self) -> u64 {
        self.last_replay
    }

    /// Where a subscription starting at `from` begins: the replay id after which its
    /// events come, or the id it asked for when that is no longer retained.
    pub fn start(&self, from: ReplayFrom) -> Result<u64, ReplayUnavailable> {
        match from {
            ReplayFrom::Latest => Ok(self.last_replay),
            ReplayFrom::Earliest => Ok(self.forgotten_through),
            ReplayFrom::After(id) if id > self.last_replay => Err(ReplayUnavailable(id)),
            ReplayFrom::After(id) if id < self.forgotten_through => Err(ReplayUnavailable(id)),
            ReplayFrom::After(id) => Ok(id),
        }
    }

    /// Up to `limit` retained events with replay ids after `after`, oldest first.
    pub fn after(&self, after: u64, limit: usize) -> Vec<Arc<ChangeEvent>> {
        let start = self.events.partition_point(|e| e.replay_id <= after);
        self.events.range(start..).take(limit).cloned().collect()
    }

    /// Forgets every stored event, as if the retention window had passed (fault
    /// injection: replay ids handed out so far become expired).
    pub fn expire_all(&mut self) {
        self.events.clear();
        self.forgotten_through = self.last_replay;
    }

    /// Records the changes of one committed transaction and wakes subscribers.
    pub fn publish(&mut self, commit: &Commit, changes: Vec<CommittedChange>) {
        let changes: Vec<_> = changes
            .into_iter()
            .filter(|c| self.records(c.record.object))
            .collect();
        if changes.is_empty() {
            return;
        }
        self.last_commit_number += 1 + u64::from(rand::random::<u8>() % 8);
        let transaction_key: Arc<str> = crate::uuid::random().into();
        for (sequence, change) in (1..).zip(changes) {
            self.last_replay += 1 + u64::from(rand::random::<u8>() % 3);
            let event = ChangeEvent {
                replay_id: self.last_replay,
                record: change.record,
                change_type: change.change_type,
                changed: change.changed,
                nulled: change.nulled,
                values: change.values,
                origin: Arc::clone(&commit.origin),
                transaction_key: Arc::clone(&transaction_key),
                sequence_number: sequence,
                commit_timestamp: commit.timestamp,
                commit_number: self.last_commit_number,
                commit_user: commit.user,
                cdc: self.cdc_entities.contains(&change.record.object),
            };
            self.events.push_back(Arc::new(event));
        }
        self.trim(crate::datetime::now_millis());
        self.latest.send_replace(self.last_replay);
    }

    fn trim(&mut self, now: i64) {
        while let Some(oldest) = self.events.front() {
            let too_many = self.events.len() > self.capacity;
            let too_old = now - oldest.commit_timestamp > self.retention_ms;
            if !(too_many || too_old) {
                break;
            }
            self.forgotten_through = oldest.replay_id;
            self.events.pop_front();
        }
    }
}
