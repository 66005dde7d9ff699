//! Change events for the objects Change Data Capture does not cover.
//!
//! An org may select only a few entities for Change Data Capture without an add-on
//! licence (five in every edition, across all channels); a selection beyond them is
//! refused. For each object Salesforce refuses, the subscriber keeps a PushTopic
//! (`hconnect_<Object>`, `SELECT Id FROM <Object>`, every operation — as Heroku Connect's
//! accelerated polling did) and listens on it over CometD, so every mapping still hears of
//! its changes within a second.
//!
//! Key concepts:
//! - **A topic only wakes.** Its events carry the record's Id and nothing of who made the
//!   change, so each one wakes the object's readers (pgforce's own writes included: they
//!   cost a read that finds the row as written) and `apply_events` never stores from them.
//! - **No replay kept.** A topic subscription starts from the newest event; right after it
//!   is established its mappings read once, which covers whatever changed while nothing
//!   listened. The poll stays the source of truth.
//! - **Shown per mapping.** `mappings.events_transport` reads `pushtopic` while a topic
//!   listens for the mapping, and nothing when neither Change Data Capture nor a topic
//!   covers it (it is polled only).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pgforce_salesforce::Client;
use pgforce_salesforce::rest::push_topic::push_topic_name;
use pgforce_salesforce::streaming::StartAt;
use pgforce_salesforce::streaming::cometd::CometdSubscription;
use pgforce_store::MappingId;
use pgforce_store::catalog::subscriptions;
use tokio::task::JoinSet;

use super::worker::WakeLocal;
use crate::worker::Backoff;

/// Which objects Change Data Capture covers, and the topics of those it does not.
#[derive(Debug, Default, Clone)]
pub(super) struct Coverage {
    /// Objects Salesforce refused to select, with their topic's channel when one could
    /// be set up (`None`: the object is polled only).
    beyond: BTreeMap<String, Option<String>>,
}

impl Coverage {
    /// Whether Change Data Capture covers `object`.
    pub(super) fn by_change_data_capture(&self, object: &str) -> bool {
        !self.beyond.contains_key(object)
    }

    /// Records that Salesforce refused to select `object`, and sets up its topic.
    pub(super) async fn fall_back(&mut self, sf: &Client, connection: &str, object: &str) {
        let name = push_topic_name(object);
        let channel = match sf.ensure_push_topic(&name, object).await {
            Ok(channel) => {
                tracing::info!(connection, object, topic = %name, "change events for the object come from a PushTopic");
                Some(channel)
            }
            Err(error) => {
                tracing::warn!(connection, object, topic = %name, error = %error, "could not set up a PushTopic for the object; its mapping is polled only");
                None
            }
        };
        self.beyond.insert(object.to_owned(), channel);
    }

    /// Listens on every topic, each in its own task, until the returned set is dropped.
    pub(super) fn listen(
        &self,
        sf: &Client,
        mappings_of: impl Fn(&str) -> Vec<MappingId>,
        waker: &Waker,
    ) -> JoinSet<()> {
        let mut listeners = JoinSet::new();
        for (object, channel) in &self.beyond {
            let (Some(channel), mappings) = (channel, mappings_of(object)) else {
                continue;
            };
            listeners.spawn(listen(sf.clone(), channel.clone(), mappings, waker.clone()));
        }
        listeners
    }
}

/// Wakes readers from a task of its own: directly when they run here, else through the
/// catalog.
#[derive(Clone)]
pub(super) struct Waker {
    pub wake_local: WakeLocal,
    pub database_url: Arc<str>,
    pub connection: Arc<str>,
}

impl Waker {
    async fn wake(&self, mappings: &[MappingId]) {
        let elsewhere: Vec<MappingId> = mappings
            .iter()
            .copied()
            .filter(|mapping| !(self.wake_local)(*mapping))
            .collect();
        if elsewhere.is_empty() {
            return;
        }
        let nudged = async {
            let pg = pgforce_store::connect(&self.database_url).await?;
            for mapping in &elsewhere {
                subscriptions::nudge(&pg, *mapping).await?;
            }
            Ok::<(), pgforce_store::Error>(())
        };
        if let Err(error) = nudged.await {
            tracing::warn!(connection = %self.connection, error = %crate::error::chain(&error), "could not wake a reader; its next poll reads the change");
        }
    }

    /// Shows on `mappings` that a topic serves them.
    async fn show(&self, mappings: &[MappingId]) {
        let shown = async {
            let pg = pgforce_store::connect(&self.database_url).await?;
            subscriptions::show_push_topic(&pg, mappings).await
        };
        if let Err(error) = shown.await {
            tracing::warn!(connection = %self.connection, error = %crate::error::chain(&error), "could not show the PushTopic on the mappings");
        }
    }
}

/// Listens on one topic, reconnecting with backoff, and wakes `mappings` on each event.
async fn listen(sf: Client, channel: String, mappings: Vec<MappingId>, waker: Waker) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
    loop {
        match CometdSubscription::open(&sf, &channel, StartAt::Latest).await {
            Ok(mut subscription) => {
                backoff.reset();
                waker.show(&mappings).await;
                // What changed while nothing listened.
                waker.wake(&mappings).await;
                loop {
                    match subscription.next().await {
                        Ok(batch) if batch.events.is_empty() => {}
                        Ok(_) => waker.wake(&mappings).await,
                        Err(error) => {
                            tracing::warn!(connection = %waker.connection, channel = %channel, error = %error, "the PushTopic stream ended; opening it again");
                            break;
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(connection = %waker.connection, channel = %channel, error = %error, "cannot listen on the PushTopic; its mappings are polled until it opens");
            }
        }
        tokio::time::sleep(backoff.next_wait()).await;
    }
}
