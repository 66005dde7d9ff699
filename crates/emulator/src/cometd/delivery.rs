//! Delivering events to a held `/meta/connect`.
//!
//! A connect reads, for each of its client's subscriptions, the change log after the
//! subscription's position, keeps the events the channel carries, and applies the
//! delivery faults in force (each event, for each subscriber, may be dropped, doubled or
//! turned into a gap event, and every delivery may wait `eventDelayMs`). With nothing to
//! deliver it waits for the next commit, a new subscription, a newer connect of the same
//! client, a stream cut or its timeout, whichever comes first. No lock is held while it
//! waits.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::time::Instant;

use super::cdc;
use super::channels::Channel;
use super::clients::Client;
use super::push_topic::{self, Topic};
use crate::events::ChangeEvent;
use crate::faults::{EventDelivery, FaultConfig};
use crate::org::{Org, RecordRef};
use crate::state::Shared;

/// The most event messages one connect answer carries.
const MAX_EVENTS_PER_REPLY: usize = 500;
/// How many logged events are read at a time.
const LOG_CHUNK: usize = 1_000;

/// How a held connect ended.
#[derive(Debug)]
pub enum Held {
    /// With these event messages (maybe none: the timeout passed).
    Events(Vec<Json>),
    /// The streams were cut: the connection is to be dropped without an answer.
    Cut,
    /// The client is gone or a newer connect took over: answer at once, with no events.
    Superseded,
}

/// The `data` of an event on a channel and how it is delivered, or None when the channel
/// does not carry it or the delivery faults drop it.
fn deliverable(
    org: &Org,
    channel: Channel,
    event: &ChangeEvent,
    faults: &FaultConfig,
    topics: &mut HashMap<RecordRef, Option<Topic>>,
) -> Option<(Json, EventDelivery)> {
    match channel {
        Channel::AllChanges | Channel::Entity(_) => {
            let wanted = event.cdc
                && match channel {
                    Channel::Entity(object) => event.record.object == object,
                    _ => true,
                };
            if !wanted {
                return None;
            }
            let delivery = faults.event_delivery();
            if delivery == EventDelivery::Dropped {
                return None;
            }
            Some((
                cdc::event_data(org, event, delivery == EventDelivery::AsGap),
                delivery,
            ))
        }
        Channel::Topic(record) => {
            let topic = topics
                .entry(record)
                .or_insert_with(|| push_topic::load(org, record));
            let data = topic.as_ref()?.event_data(org, event)?;
            // PushTopic events have no gap form: a drawn gap is delivered whole.
            match faults.event_delivery() {
                EventDelivery::Dropped => None,
                EventDelivery::AsGap => Some((data, EventDelivery::Once)),
                delivery => Some((data, delivery)),
            }
        }
    }
}

/// The event messages waiting for a client, advancing its subscriptions' positions.
fn collect(org: &Org, client: &mut Client, faults: &FaultConfig) -> Vec<Json> {
    let mut messages = Vec::new();
    let mut topics: HashMap<RecordRef, Option<Topic>> = HashMap::new();
    for (name, subscription) in &mut client.subscriptions {
        // Read in chunks until the log is exhausted or the answer is full, so a quiet
        // channel among busy ones still reaches the end of the log.
        loop {
            let room = MAX_EVENTS_PER_REPLY.saturating_sub(messages.len());
            let chunk = org.changes().after(subscription.after, LOG_CHUNK);
            if room == 0 || chunk.is_empty() {
                break;
            }
            for event in chunk {
                if messages.len() >= MAX_EVENTS_PER_REPLY {
                    break;
                }
                subscription.after = event.replay_id;
                let Some((data, delivery)) =
                    deliverable(org, subscription.channel, &event, faults, &mut topics)
                else {
                    continue;
                };
                let message = json!({ "channel": name, "data": data });
                if delivery == EventDelivery::Twice {
                    messages.push(message.clone());
                }
                messages.push(message);
            }
        }
    }
    messages
}

/// Holds a connect of `client_id` (whose connect number is `generation`) until there is
/// something to deliver, or `timeout` passes.
pub async fn hold(shared: &Shared, client_id: &str, generation: u64, timeout: Duration) -> Held {
    let deadline = Instant::now() + timeout;
    let mut commits = shared.org().changes().subscribe();
    let mut cuts = shared.stream_cuts();
    let Some(mut wake) = shared
        .cometd()
        .admitted(client_id)
        .map(|c| c.wake.subscribe())
    else {
        return Held::Superseded;
    };
    loop {
        commits.borrow_and_update();
        wake.borrow_and_update();
        let faults = shared.faults();
        let messages = {
            let mut clients = shared.cometd();
            let Some(client) = clients
                .admitted(client_id)
                .filter(|c| c.connect_generation == generation)
            else {
                return Held::Superseded;
            };
            let org = shared.org();
            collect(&org, client, &faults)
        };
        if !messages.is_empty() {
            if faults.event_delay_ms > 0 {
                let delay = Duration::from_millis(faults.event_delay_ms);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = cuts.changed() => return Held::Cut,
                }
            }
            return Held::Events(messages);
        }
        if Instant::now() >= deadline {
            return Held::Events(Vec::new());
        }
        tokio::select! {
            changed = commits.changed() => {
                if changed.is_err() {
                    return Held::Superseded;
                }
            }
            changed = wake.changed() => {
                if changed.is_err() {
                    return Held::Superseded;
                }
            }
            _ = cuts.changed() => return Held::Cut,
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}
