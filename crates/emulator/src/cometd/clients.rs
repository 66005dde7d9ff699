//! CometD clients: who has handshaken, what they subscribed to, and how far each
//! subscription has read the org's change log.
//!
//! Salesforce forgets a client that does not come back in time (40 seconds after a
//! connect was answered); the client then gets `403::Unknown client` and must handshake
//! and subscribe again. Each client's `BAYEUX_BROWSER` cookie is checked with its
//! clientId, as a client that drops its cookies is refused the same way.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distr::Alphanumeric;
use tokio::sync::watch;

use super::channels::Channel;

/// One subscription of one client.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub channel: Channel,
    /// Every event with a replay id up to this one has been considered for delivery.
    pub after: u64,
}

/// One handshaken client.
#[derive(Debug)]
pub struct Client {
    /// The `BAYEUX_BROWSER` cookie value the client must send back.
    pub browser: String,
    /// By channel name as the client wrote it.
    pub subscriptions: BTreeMap<String, Subscription>,
    /// When the server forgets the client; None while a connect is held.
    pub expires_at: Option<Instant>,
    /// Bumped by each new connect: a held connect whose number is no longer current ends.
    pub connect_generation: u64,
    /// Bumped when a held connect must look again (new subscription, newer connect,
    /// disconnect). The held connect watches it.
    pub wake: watch::Sender<u64>,
}

/// Every client the server knows.
#[derive(Debug, Default)]
pub struct Clients {
    by_id: HashMap<String, Client>,
}

fn random_text(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect::<String>()
        .to_ascii_lowercase()
}

impl Clients {
    /// Registers a new client; returns its clientId. `browser` is the cookie value it
    /// will be known by. Clients past their expiry are forgotten on the way.
    pub fn handshake(&mut self, browser: &str, expiry: Duration) -> String {
        let now = Instant::now();
        self.by_id
            .retain(|_, c| c.expires_at.is_none_or(|at| at > now));
        let id = random_text(30);
        self.by_id.insert(
            id.clone(),
            Client {
                browser: browser.to_owned(),
                subscriptions: BTreeMap::new(),
                expires_at: Some(now + expiry),
                connect_generation: 0,
                wake: watch::channel(0).0,
            },
        );
        id
    }

    /// A live client sending this cookie, or None (`403::Unknown client`). A client past
    /// its expiry is forgotten here.
    pub fn get_mut(&mut self, id: &str, browser: Option<&str>) -> Option<&mut Client> {
        let expired = self
            .by_id
            .get(id)
            .is_some_and(|c| c.expires_at.is_some_and(|at| at <= Instant::now()));
        if expired {
            self.by_id.remove(id);
            return None;
        }
        self.by_id
            .get_mut(id)
            .filter(|c| browser == Some(c.browser.as_str()))
    }

    /// Forgets a client (`/meta/disconnect`), waking its held connect.
    pub fn remove(&mut self, id: &str) -> bool {
        match self.by_id.remove(id) {
            Some(client) => {
                client.wake.send_modify(|n| *n += 1);
                true
            }
            None => false,
        }
    }

    /// A client by id without the cookie check, for a connect already admitted.
    pub fn admitted(&mut self, id: &str) -> Option<&mut Client> {
        self.by_id.get_mut(id)
    }
}

/// A new `BAYEUX_BROWSER` cookie value.
pub fn new_browser_id() -> String {
    random_text(26)
}
