//! One open change-event stream, whichever transport carries it, and the order in which
//! transports are tried.

use std::time::Duration;

use pgforce_salesforce::Client;
use pgforce_salesforce::streaming::cometd::CometdSubscription;
use pgforce_salesforce::streaming::pubsub::PubSubSubscription;
use pgforce_salesforce::streaming::{EventBatch, StartAt, StreamError};
use pgforce_store::catalog::subscriptions::Transport;

use crate::config::ChangeEvents;

/// The channel (CometD) or topic (Pub/Sub) carrying every selected object's changes.
pub(super) const ALL_CHANGE_EVENTS: &str = "/data/ChangeEvents";

/// How long opening one transport may take before the next one is tried.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// An open subscription.
pub(super) enum Stream {
    PubSub(Box<PubSubSubscription>),
    Cometd(Box<CometdSubscription>),
}

impl Stream {
    /// The transport carrying this stream.
    pub(super) fn transport(&self) -> Transport {
        match self {
            Self::PubSub(_) => Transport::PubSub,
            Self::Cometd(_) => Transport::Cometd,
        }
    }

    /// Waits for the next batch of events (or a keepalive).
    pub(super) async fn next(&mut self) -> Result<EventBatch, StreamError> {
        match self {
            Self::PubSub(stream) => stream.next().await,
            Self::Cometd(stream) => stream.next().await,
        }
    }
}

/// The transports to try, in order.
pub(super) fn transports(mode: ChangeEvents) -> &'static [Transport] {
    match mode {
        ChangeEvents::Auto => &[Transport::PubSub, Transport::Cometd],
        ChangeEvents::Pubsub => &[Transport::PubSub],
        ChangeEvents::Cometd => &[Transport::Cometd],
        ChangeEvents::Off => &[],
    }
}

/// Opens a stream on `transport` starting at `start`.
pub(super) async fn open(
    transport: Transport,
    client: &Client,
    pubsub_endpoint: &str,
    start: StartAt,
) -> Result<Stream, StreamError> {
    let opening = async {
        match transport {
            Transport::PubSub => {
                PubSubSubscription::open(client, pubsub_endpoint, ALL_CHANGE_EVENTS, start)
                    .await
                    .map(|s| Stream::PubSub(Box::new(s)))
            }
            Transport::Cometd => CometdSubscription::open(client, ALL_CHANGE_EVENTS, start)
                .await
                .map(|s| Stream::Cometd(Box::new(s))),
        }
    };
    tokio::time::timeout(OPEN_TIMEOUT, opening)
        .await
        .unwrap_or_else(|_| {
            Err(StreamError::Transport(format!(
                "opening the {} stream took longer than {} s",
                transport.as_str(),
                OPEN_TIMEOUT.as_secs()
            )))
        })
}
