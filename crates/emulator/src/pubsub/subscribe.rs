//! `Subscribe`: one subscription, run as its stream of responses (tonic sends them, then
//! the status the stream ends with).
//!
//! The first `FetchRequest` names the topic and where to start; later ones add credit.
//! Events go out only while credit remains (each event delivered costs one), in
//! `FetchResponse`s that also carry the credit left (`pending_num_requested`) and the
//! stream's position (`latest_replay_id`). With nothing to send for the keepalive interval
//! the subscriber gets an empty `FetchResponse`. The stream ends with a status: an
//! expired replay id, a changed topic, a stream cut (fault injection) or the caller's end.
//!
//! Delivery faults are drawn per event for this subscriber: dropped, sent as a gap event,
//! sent twice, and delayed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use pgforce_pubsub_proto::{
    ConsumerEvent, FetchRequest, FetchResponse, ProducerEvent, ReplayPreset, replay_id_bytes,
    replay_id_number,
};
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::{Code, Status, Streaming};

use super::schema::EventSchema;
use super::server::{replay_id_corrupted, rpc_id, status};
use super::service::{schema_status, topic_status};
use super::topic::{self, Topic};
use crate::events::ReplayFrom;
use crate::faults::EventDelivery;
use crate::org::ObjectIndex;
use crate::state::Shared;

/// Events read from the change log at a time.
const SCAN_BATCH: usize = 100;

/// One open subscription.
struct Subscription {
    shared: Arc<Shared>,
    /// The caller's requests; `None` once it has finished sending.
    requests: Option<Streaming<FetchRequest>>,
    /// Set by the first request.
    topic: Option<(String, Topic)>,
    /// The replay id of the last change-log event considered (sent, dropped or not on
    /// this topic).
    position: u64,
    /// Events the caller still accepts.
    credit: i64,
    /// Wakes when the change log grows; `None` once the org is gone.
    latest: Option<watch::Receiver<u64>>,
    /// Changes when the control API cuts streams.
    cuts: watch::Receiver<u64>,
    keepalive: Duration,
    /// When the last response went out.
    last_sent: Instant,
    /// The status has been sent: nothing follows.
    finished: bool,
}

/// The responses of a `Subscribe` call.
pub fn start(
    shared: Arc<Shared>,
    requests: Streaming<FetchRequest>,
) -> impl Stream<Item = Result<FetchResponse, Status>> + Send + 'static {
    let mut cuts = shared.stream_cuts();
    cuts.mark_unchanged();
    let latest = shared.org().changes().subscribe();
    let subscription = Subscription {
        keepalive: shared.config.pubsub_keepalive,
        shared,
        requests: Some(requests),
        topic: None,
        position: 0,
        credit: 0,
        latest: Some(latest),
        cuts,
        last_sent: Instant::now(),
        finished: false,
    };
    futures_util::stream::unfold(subscription, |mut s| async move {
        if s.finished {
            return None;
        }
        s.step().await.map(|item| (item, s))
    })
}

impl Subscription {
    /// The next response, or the status that ends the stream (an error); `None` ends it
    /// with OK.
    async fn step(&mut self) -> Option<Result<FetchResponse, Status>> {
        match self.next_response().await {
            Ok(Some(response)) => {
                self.last_sent = Instant::now();
                Some(Ok(response))
            }
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(status) => {
                self.finished = true;
                Some(Err(status))
            }
        }
    }

    /// Waits for something to send; `Ok(None)` when the caller has gone and nothing is
    /// left to do.
    async fn next_response(&mut self) -> Result<Option<FetchResponse>, Status> {
        if self.topic.is_none() {
            let Some(first) = self.next_request().await? else {
                return Ok(None);
            };
            self.open(first)?;
        }
        loop {
            if self.credit > 0 {
                let events = self.collect()?;
                if !events.is_empty() {
                    let delay = self.shared.faults().event_delay_ms;
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    return Ok(Some(self.response(events)));
                }
            }
            if self.requests.is_none() && self.credit <= 0 {
                // The caller can add no credit any more: the subscription is over.
                return Ok(None);
            }
            let keepalive_at = self.last_sent + self.keepalive;
            tokio::select! {
                biased;
                _ = self.cuts.changed() => {
                    return Err(status(
                        Code::Unavailable,
                        "the stream was cut by the emulator (fault injection)",
                    ));
                }
                request = next_request(&mut self.requests) => {
                    match request? {
                        Some(request) => self.add_credit(&request)?,
                        None => self.requests = None,
                    }
                }
                changed = wait_changed(&mut self.latest) => {
                    if changed.is_err() {
                        self.latest = None;
                    }
                }
                () = tokio::time::sleep_until(keepalive_at) => {
                    return Ok(Some(self.response(Vec::new())));
                }
            }
        }
    }

    async fn next_request(&mut self) -> Result<Option<FetchRequest>, Status> {
        next_request(&mut self.requests).await
    }

    /// Applies the first request: topic and start position.
    fn open(&mut self, request: FetchRequest) -> Result<(), Status> {
        let org = self.shared.org();
        let topic =
            topic::resolve(org.schema(), &request.topic_name).map_err(|e| topic_status(&e))?;
        let from = match ReplayPreset::try_from(request.replay_preset) {
            Ok(ReplayPreset::Latest) => ReplayFrom::Latest,
            Ok(ReplayPreset::Earliest) => ReplayFrom::Earliest,
            Ok(ReplayPreset::Custom) => match replay_id_number(&request.replay_id) {
                Some(id) => ReplayFrom::After(id),
                None => {
                    return Err(replay_id_corrupted(
                        "the replay id is not a valid replay id",
                    ));
                }
            },
            Err(_) => {
                return Err(status(
                    Code::InvalidArgument,
                    format!("unknown replay preset {}", request.replay_preset),
                ));
            }
        };
        self.position = org.changes().start(from).map_err(|unavailable| {
            replay_id_corrupted(&format!(
                "the replay id {} is not valid: it has expired or was never issued",
                unavailable.0
            ))
        })?;
        drop(org);
        self.topic = Some((request.topic_name.clone(), topic));
        self.add_credit(&request)
    }

    /// Applies a later request: more credit, on the same topic.
    fn add_credit(&mut self, request: &FetchRequest) -> Result<(), Status> {
        if let Some((name, _)) = &self.topic
            && !request.topic_name.is_empty()
            && &request.topic_name != name
        {
            return Err(status(
                Code::InvalidArgument,
                format!(
                    "this subscription is on {name}; a FetchRequest may not change it to {}",
                    request.topic_name
                ),
            ));
        }
        if request.num_requested > 0 {
            self.credit += i64::from(request.num_requested);
        }
        Ok(())
    }

    /// Takes the events due now from the change log, within the credit, applying
    /// delivery faults; moves the position past every event considered.
    fn collect(&mut self) -> Result<Vec<ConsumerEvent>, Status> {
        let Some((_, topic)) = self.topic else {
            return Ok(Vec::new());
        };
        let faults = self.shared.faults();
        let org = self.shared.org();
        let schema = org.schema();
        let mut schemas: Vec<(ObjectIndex, EventSchema)> = Vec::new();
        let mut out = Vec::new();
        'scan: loop {
            let batch = org.changes().after(self.position, SCAN_BATCH);
            if batch.is_empty() {
                break;
            }
            for event in batch {
                if self.credit <= 0 {
                    break 'scan;
                }
                self.position = event.replay_id;
                if !event.cdc || !topic.includes(event.record.object) {
                    continue;
                }
                let delivery = faults.event_delivery();
                if delivery == EventDelivery::Dropped {
                    continue;
                }
                let object = event.record.object;
                let object_def = schema.object(object);
                let built = |e: apache_avro::Error| schema_status(&object_def.name, &e);
                let event_schema = match schemas.iter().find(|(o, _)| *o == object) {
                    Some((_, s)) => s,
                    None => {
                        schemas.push((object, EventSchema::of(object_def).map_err(built)?));
                        &schemas[schemas.len() - 1].1
                    }
                };
                let gap = delivery == EventDelivery::AsGap;
                let payload =
                    super::payload::encode(schema, event_schema, &event, gap).map_err(built)?;
                let consumer = ConsumerEvent {
                    event: Some(ProducerEvent {
                        id: event_uuid(event.replay_id),
                        schema_id: event_schema.id.clone(),
                        payload,
                        headers: Vec::new(),
                    }),
                    replay_id: replay_id_bytes(event.replay_id),
                };
                if delivery == EventDelivery::Twice && self.credit >= 2 {
                    out.push(consumer.clone());
                    self.credit -= 1;
                }
                out.push(consumer);
                self.credit -= 1;
            }
        }
        Ok(out)
    }

    fn response(&self, events: Vec<ConsumerEvent>) -> FetchResponse {
        FetchResponse {
            events,
            latest_replay_id: replay_id_bytes(self.position),
            rpc_id: rpc_id(),
            pending_num_requested: i32::try_from(self.credit.max(0)).unwrap_or(i32::MAX),
        }
    }
}

/// The next request of the caller, when it still sends; pending forever otherwise.
async fn next_request(
    requests: &mut Option<Streaming<FetchRequest>>,
) -> Result<Option<FetchRequest>, Status> {
    match requests.as_mut() {
        Some(requests) => requests.message().await,
        None => std::future::pending().await,
    }
}

async fn wait_changed(latest: &mut Option<watch::Receiver<u64>>) -> Result<(), ()> {
    match latest.as_mut() {
        Some(receiver) => receiver.changed().await.map_err(|_| ()),
        None => std::future::pending().await,
    }
}

/// A stable event id (`ProducerEvent.id`) for a replay id.
fn event_uuid(replay_id: u64) -> String {
    crate::uuid::shaped(u128::from(replay_id))
}
