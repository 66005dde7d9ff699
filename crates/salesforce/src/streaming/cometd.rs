//! Placeholder until the CometD client lands on main.

use super::{EventBatch, StartAt, StreamError};
use crate::Client;

/// A CometD subscription.
#[derive(Debug)]
pub struct CometdSubscription;

impl CometdSubscription {
    /// Opens a subscription.
    pub async fn open(
        _client: &Client,
        channel: &str,
        _start: StartAt,
    ) -> Result<Self, StreamError> {
        Err(StreamError::Unavailable(format!(
            "CometD is not supported yet ({channel})"
        )))
    }

    /// The next batch.
    pub async fn next(&mut self) -> Result<EventBatch, StreamError> {
        Err(StreamError::Unavailable(
            "CometD is not supported yet".to_owned(),
        ))
    }
}
