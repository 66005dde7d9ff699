//! Change events: a connection's subscriber hears of Salesforce's changes as they commit
//! and makes the affected mappings read at once.
//!
//! Key concepts:
//! - **The poll stays the source of truth.** An event only wakes the mapping's reader,
//!   which reads from its cursor as on any poll. A missed event costs latency, never a
//!   change (the next event or the mapping's `polling_seconds` safety net reads it); a
//!   duplicated event costs one read that finds nothing new.
//! - **Transports.** The Pub/Sub API (gRPC) by default, the Streaming API (CometD) when
//!   Pub/Sub cannot be reached, polling alone when neither works (`change_events` in the
//!   connection's settings chooses). The subscriber selects the mapped objects for Change
//!   Data Capture and listens on `/data/ChangeEvents`; objects beyond the org's Change
//!   Data Capture allocation get a PushTopic instead (see `topics`).
//! - **Replay.** The replay id is stored in `pgforce.change_subscriptions` under the
//!   subscriber's fenced lease, in the transaction that stores what the events carried
//!   (with `apply_events`) and records which mappings they concerned; readers are woken
//!   once it commits. After a restart the subscription resumes
//!   after it, so events committed while pgforce was down still wake their readers. An
//!   expired replay id makes every mapping read from its cursor, and the subscription
//!   starts again from the newest events. A subscription that starts from the newest
//!   events (no usable stored id) carries nothing committed before it: every mapping it
//!   serves reads once as soon as it is established.
//! - **Echoes.** pgforce names itself in `Sforce-Call-Options` (`client=pgforce`);
//!   events whose `changeOrigin` says so are its own writes coming back. A pure echo (a
//!   delete, or an update that changed only fields pgforce sent and the stamps every write
//!   moves) wakes nobody; a create, or an update that changed other fields (set by a
//!   trigger, a flow, a default), wakes the mapping's reader for what Salesforce added.
//! - **Applying events** (`apply_events = true`, read-only mappings): the values an event
//!   carries are stored directly, in the transaction that records the replay id, with no
//!   read from Salesforce; what an event cannot carry is read (see `apply`).
//! - **Where readers run.** A reader in this process that holds its lease is woken
//!   directly; otherwise (it runs in another `pgforce run` on the same catalog, or the one
//!   here stands by) through a NOTIFY on `pgforce_nudge`.

mod apply;
mod event_fields;
mod stream;
mod topics;
mod worker;

pub(crate) use apply::EventTarget;
pub(crate) use worker::SubscriberWorker;
