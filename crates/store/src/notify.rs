//! Waking the writer: LISTEN on a connection's trigger-log channel.
//!
//! The trigger log's insert trigger runs `pg_notify('<schema>.hc_trigger_log', 'ping')`
//! for every captured change. A [`Listener`] holds its own database session (LISTEN is
//! per session), drives it on the runtime and turns notifications into wake-ups. Bursts
//! collapse: the wake-up channel holds one pending wake-up, so a thousand pings while the
//! writer is busy cost one extra pass, not a thousand.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client};

use crate::error::{Context as _, Result};

/// Distinct payloads kept between two reads of them.
const MAX_KEPT_PAYLOADS: usize = 10_000;

/// A session listening on one channel.
#[derive(Debug)]
pub struct Listener {
    wakeups: mpsc::Receiver<()>,
    /// Payloads of the notifications since the last [`Listener::take_payloads`] (each
    /// once; bounded, the oldest dropped first).
    payloads: Arc<Mutex<VecDeque<String>>>,
    /// Kept so the session stays open.
    _client: Client,
}

impl Listener {
    /// Opens a session and listens on `channel`.
    pub async fn listen(url: &str, channel: &str) -> Result<Self> {
        let (client, mut connection) = crate::connect::open(url).await?;
        let (sender, wakeups) = mpsc::channel(1);
        let payloads: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let kept = Arc::clone(&payloads);
        tokio::spawn(async move {
            while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(notification)) => {
                        let mut kept = kept.lock().unwrap_or_else(PoisonError::into_inner);
                        if !kept.iter().any(|p| p == notification.payload()) {
                            if kept.len() >= MAX_KEPT_PAYLOADS {
                                kept.pop_front();
                            }
                            kept.push_back(notification.payload().to_owned());
                        }
                        drop(kept);
                        // Full means a wake-up is already pending: that one covers this.
                        let _ = sender.try_send(());
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(error = %error, "listening session lost");
                        break;
                    }
                }
            }
        });
        let quoted = format!("\"{}\"", channel.replace('"', "\"\""));
        client
            .batch_execute(&format!("listen {quoted}"))
            .await
            .context(|| format!("listening on channel {channel}"))?;
        Ok(Self {
            wakeups,
            payloads,
            _client: client,
        })
    }

    /// Waits for the next notification. `false` when the session is gone (reconnect).
    pub async fn notified(&mut self) -> bool {
        self.wakeups.recv().await.is_some()
    }

    /// The distinct payloads notified since the last call, oldest first.
    pub fn take_payloads(&self) -> Vec<String> {
        self.payloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect()
    }
}
