//! `pgforce.change_subscriptions` and the mappings' event columns: where each
//! connection's change-event subscriber stands, and which mappings events keep fresh.
//!
//! The replay id is opaque bytes. It moves only under the subscriber's lease (the caller
//! commits through a fenced [`crate::OwnWrite`]), so a subscriber that lost its lease
//! cannot move it back.

use tokio_postgres::GenericClient;

use crate::error::{Context as _, Result};
use crate::ids::{ConnectionId, MappingId};

/// How change events reach pgforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The Pub/Sub API (gRPC).
    PubSub,
    /// The Streaming API (CometD long polling).
    Cometd,
}

impl Transport {
    /// The catalog's and the status output's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PubSub => "pubsub",
            Self::Cometd => "cometd",
        }
    }

    /// Parses a catalog name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pubsub" => Some(Self::PubSub),
            "cometd" => Some(Self::Cometd),
            _ => None,
        }
    }
}

/// Where a connection's subscriber stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The transport that recorded it.
    pub transport: Transport,
    /// The replay id after which to resume, if any event was recorded.
    pub replay_id: Option<Vec<u8>>,
    /// Events received since the subscription row was made.
    pub events_received: i64,
}

/// The connection's subscription, if it has one.
pub async fn load(
    client: &impl GenericClient,
    connection: ConnectionId,
) -> Result<Option<Subscription>> {
    let row = client
        .query_opt(
            "select transport, replay_id, events_received from pgforce.change_subscriptions
             where connection_id = $1",
            &[&connection.get()],
        )
        .await
        .context(|| format!("reading the change-event subscription of connection {connection}"))?;
    Ok(row.and_then(|r| {
        Some(Subscription {
            transport: Transport::parse(r.get::<_, &str>(0))?,
            replay_id: r.get(1),
            events_received: r.get(2),
        })
    }))
}

/// Records events taken in: the replay id to resume after, how many came, and when the
/// last one came for each mapping they concerned. Call inside the subscriber's fenced
/// transaction.
pub async fn record_events(
    client: &impl GenericClient,
    connection: ConnectionId,
    transport: Transport,
    replay_id: Option<&[u8]>,
    received: i64,
    mappings: &[MappingId],
) -> Result<()> {
    let what = || format!("recording change events of connection {connection}");
    client
        .execute(
            "insert into pgforce.change_subscriptions (connection_id, transport, replay_id, events_received)
             values ($1, $2, $3, $4)
             on conflict (connection_id) do update set transport = excluded.transport,
                 replay_id = coalesce(excluded.replay_id, pgforce.change_subscriptions.replay_id),
                 events_received = pgforce.change_subscriptions.events_received + excluded.events_received,
                 updated_at = now()",
            &[&connection.get(), &transport.as_str(), &replay_id, &received],
        )
        .await
        .context(what)?;
    if !mappings.is_empty() {
        let ids: Vec<i64> = mappings.iter().map(|m| m.get()).collect();
        client
            .execute(
                "update pgforce.mappings set last_event_at = now() where id = any($1)",
                &[&ids],
            )
            .await
            .context(what)?;
    }
    Ok(())
}

/// Forgets the replay id (it expired): the subscriber starts again from the newest events.
pub async fn forget_replay(client: &impl GenericClient, connection: ConnectionId) -> Result<()> {
    client
        .execute(
            "update pgforce.change_subscriptions set replay_id = null, updated_at = now()
             where connection_id = $1",
            &[&connection.get()],
        )
        .await
        .context(|| format!("forgetting the replay id of connection {connection}"))
        .map(|_| ())
}

/// Forgets where the subscriber stands altogether (the org behind the connection was
/// replaced: a refreshed sandbox, a new emulator): the next subscription starts from the
/// newest events.
pub async fn forget(client: &impl GenericClient, connection: ConnectionId) -> Result<()> {
    client
        .execute(
            "delete from pgforce.change_subscriptions where connection_id = $1",
            &[&connection.get()],
        )
        .await
        .context(|| format!("forgetting the change-event position of connection {connection}"))
        .map(|_| ())
}

/// Shows which transport keeps these mappings fresh (`None`: events are not flowing, the
/// mappings are polled only).
pub async fn show_transport(
    client: &impl GenericClient,
    mappings: &[MappingId],
    transport: Option<Transport>,
) -> Result<()> {
    let ids: Vec<i64> = mappings.iter().map(|m| m.get()).collect();
    client
        .execute(
            "update pgforce.mappings set events_transport = $2
             where id = any($1) and events_transport is distinct from $2",
            &[&ids, &transport.map(Transport::as_str)],
        )
        .await
        .context(|| "showing which change-event transport mappings use".to_owned())
        .map(|_| ())
}

/// Shows on `mappings` that a PushTopic brings their change events (their objects lie
/// beyond the org's Change Data Capture allocation).
pub async fn show_push_topic(client: &impl GenericClient, mappings: &[MappingId]) -> Result<()> {
    let ids: Vec<i64> = mappings.iter().map(|m| m.get()).collect();
    client
        .execute(
            "update pgforce.mappings set events_transport = $2
             where id = any($1) and events_transport is distinct from $2",
            &[&ids, &PUSH_TOPIC],
        )
        .await
        .context(|| "showing which mappings a PushTopic serves".to_owned())
        .map(|_| ())
}

/// How `mappings.events_transport` names a PushTopic.
pub const PUSH_TOPIC: &str = "pushtopic";

/// Asks the reader of `mapping` to read at once, in whichever process runs it.
pub async fn nudge(client: &impl GenericClient, mapping: MappingId) -> Result<()> {
    client
        .execute(
            "select pg_notify($1, $2)",
            &[&super::NUDGE_CHANNEL, &mapping.get().to_string()],
        )
        .await
        .context(|| format!("asking the reader of mapping {mapping} to read"))
        .map(|_| ())
}
