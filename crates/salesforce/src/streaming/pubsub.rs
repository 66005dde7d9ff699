//! Placeholder until the Pub/Sub client lands on main.

use super::{EventBatch, StartAt, StreamError};
use crate::Client;

/// A Pub/Sub subscription.
#[derive(Debug)]
pub struct PubSubSubscription;

impl PubSubSubscription {
    /// Opens a subscription.
    pub async fn open(
        _client: &Client,
        endpoint: &str,
        topic: &str,
        _start: StartAt,
    ) -> Result<Self, StreamError> {
        Err(StreamError::Unavailable(format!(
            "Pub/Sub is not supported yet ({endpoint} {topic})"
        )))
    }

    /// The next batch.
    pub async fn next(&mut self) -> Result<EventBatch, StreamError> {
        Err(StreamError::Unavailable(
            "Pub/Sub is not supported yet".to_owned(),
        ))
    }
}
