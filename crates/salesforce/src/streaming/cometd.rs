//! Change events over the Streaming API: Bayeux (CometD) long-polling on
//! `{instance}/cometd/XX.X`.
//!
//! A [`CometdSubscription`] handshakes, subscribes to one channel with the `replay`
//! extension, and then answers each [`CometdSubscription::next`] with one
//! `/meta/connect` round trip: the server holds it until events come or about 110
//! seconds pass, so the request timeout here is longer than that. The server ties the
//! client to a `BAYEUX_BROWSER` cookie, which is kept and sent back.
//!
//! Recovery follows the server's advice: `403::Unknown client` (the server forgot the
//! client, for instance after 40 seconds without a connect) means handshake and subscribe
//! again, from the last replay id this subscription returned; `401::Authentication
//! invalid` means the session ended: it is renewed once, and a second refusal is
//! [`StreamError::Auth`]. A replay id the server no longer keeps is
//! [`StreamError::ReplayExpired`], an unknown channel [`StreamError::Unavailable`], a
//! dropped connection [`StreamError::Transport`] (calling `next` again reconnects).
//! These calls are not data API calls: they do not go through the REST call loop and are
//! not counted.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use serde_json::{Map, Value, json};

use super::{ChangeEvent, ChangeType, EventBatch, ReplayId, StartAt, StreamError};
use crate::{Client, Session};

/// How long a connect may take: longer than the server's 110-second hold.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(130);
/// The cookie the server ties a client to.
const BROWSER_COOKIE: &str = "BAYEUX_BROWSER";
/// How many times in a row one call may re-handshake before giving up.
const MAX_REHANDSHAKES: u32 = 3;

/// One channel subscription over CometD (`/data/AccountChangeEvent`,
/// `/data/ChangeEvents`, `/topic/<Name>`).
#[derive(Debug)]
pub struct CometdSubscription {
    client: Client,
    channel: String,
    session: Session,
    client_id: String,
    cookie: Option<String>,
    /// Where the subscription started; used again after a re-handshake until an event
    /// has been returned.
    start: StartAt,
    /// The replay id of the last event returned.
    last_replay: Option<i64>,
    /// Whether the session has been renewed since the last successful exchange.
    renewed: bool,
    next_message_id: u64,
}

/// How a Bayeux reply failed.
enum Refusal {
    /// `401::…`: the session was refused.
    Session(String),
    /// `403::Unknown client` or advice `reconnect: handshake`.
    UnknownClient,
    /// Anything else, with the server's error text.
    Other(String),
}

fn refusal_of(reply: &Value) -> Option<Refusal> {
    if reply["successful"].as_bool() == Some(true) {
        return None;
    }
    let error = reply["error"].as_str().unwrap_or_default().to_owned();
    let reason = reply["ext"]["sfdc"]["failureReason"]
        .as_str()
        .unwrap_or_default();
    if error.starts_with("401::") || reason.starts_with("401::") {
        let text = if reason.is_empty() {
            error
        } else {
            reason.to_owned()
        };
        return Some(Refusal::Session(text));
    }
    if error.starts_with("403::Unknown client") || reply["advice"]["reconnect"] == "handshake" {
        return Some(Refusal::UnknownClient);
    }
    Some(Refusal::Other(if error.is_empty() {
        format!("unsuccessful reply without an error: {reply}")
    } else {
        error
    }))
}

impl CometdSubscription {
    /// Handshakes and subscribes to `channel`, starting at `start`.
    pub async fn open(client: &Client, channel: &str, start: StartAt) -> Result<Self, StreamError> {
        let session = client.session().await?;
        let mut subscription = Self {
            client: client.clone(),
            channel: channel.to_owned(),
            session,
            client_id: String::new(),
            cookie: None,
            start,
            last_replay: None,
            renewed: false,
            next_message_id: 0,
        };
        subscription.establish().await?;
        Ok(subscription)
    }

    /// The channel subscribed to.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Waits for the next events: one connect round trip (an empty batch when the server
    /// answered without events).
    pub async fn next(&mut self) -> Result<EventBatch, StreamError> {
        let mut rehandshakes = 0;
        loop {
            let message = json!({
                "channel": "/meta/connect",
                "clientId": self.client_id,
                "connectionType": "long-polling",
                "id": self.message_id(),
            });
            let replies = self.post(&json!([message]), Some(CONNECT_TIMEOUT)).await?;
            let mut events = Vec::new();
            let mut connect_reply = None;
            for reply in replies {
                if reply["channel"] == "/meta/connect" {
                    connect_reply = Some(reply);
                } else if reply["channel"] == self.channel.as_str() {
                    events.push(decode_event(&reply).map_err(StreamError::Protocol)?);
                }
            }
            let refusal = match &connect_reply {
                Some(reply) => refusal_of(reply),
                None => {
                    return Err(StreamError::Protocol(
                        "the connect answer has no /meta/connect reply".to_owned(),
                    ));
                }
            };
            if !events.is_empty() || refusal.is_none() {
                self.renewed = false;
                let latest = events.last().map(|e: &ChangeEvent| e.replay_id.clone());
                if let Some(id) = latest.as_ref().and_then(ReplayId::as_number) {
                    self.last_replay = Some(id);
                }
                return Ok(EventBatch {
                    events,
                    latest_replay_id: latest,
                });
            }
            match refusal {
                Some(Refusal::Session(reason)) => {
                    self.renew(&reason).await?;
                    self.establish().await?;
                }
                Some(Refusal::UnknownClient) if rehandshakes < MAX_REHANDSHAKES => {
                    rehandshakes += 1;
                    tracing::warn!(channel = %self.channel, "cometd client unknown to the server; handshaking again");
                    self.establish().await?;
                }
                Some(Refusal::UnknownClient) => {
                    return Err(StreamError::Protocol(format!(
                        "the server forgot the client {MAX_REHANDSHAKES} times in a row"
                    )));
                }
                Some(Refusal::Other(error)) => {
                    return Err(StreamError::Protocol(format!("connect refused: {error}")));
                }
                None => {}
            }
        }
    }

    /// Ends the subscription (`/meta/disconnect`); the server forgets the client.
    pub async fn close(mut self) {
        let message = json!([{
            "channel": "/meta/disconnect",
            "clientId": self.client_id,
            "id": self.message_id(),
        }]);
        if let Err(error) = self.post(&message, None).await {
            tracing::debug!(channel = %self.channel, error = %error, "cometd disconnect failed");
        }
    }

    fn message_id(&mut self) -> String {
        self.next_message_id += 1;
        self.next_message_id.to_string()
    }

    /// Renews the session once; a second refusal in a row is an authentication failure.
    async fn renew(&mut self, reason: &str) -> Result<(), StreamError> {
        if self.renewed {
            return Err(StreamError::Auth(reason.to_owned()));
        }
        self.renewed = true;
        tracing::warn!(channel = %self.channel, "cometd session refused; logging in again");
        self.session = self
            .client
            .renew_session(&self.session)
            .await
            .map_err(|error| {
                StreamError::Auth(format!("{reason}; logging in again failed: {error}"))
            })?;
        Ok(())
    }

    /// Handshakes and subscribes, from the last replay id returned (or the start asked
    /// for when none was).
    async fn establish(&mut self) -> Result<(), StreamError> {
        loop {
            self.cookie = None;
            let handshake = json!([{
                "channel": "/meta/handshake",
                "version": "1.0",
                "minimumVersion": "1.0",
                "supportedConnectionTypes": ["long-polling"],
                "id": self.message_id(),
            }]);
            let replies = self.post(&handshake, None).await?;
            let reply = find_reply(&replies, "/meta/handshake").map_err(StreamError::Protocol)?;
            match refusal_of(reply) {
                None => {}
                Some(Refusal::Session(reason)) => {
                    self.renew(&reason).await?;
                    continue;
                }
                Some(Refusal::UnknownClient) => {
                    return Err(StreamError::Protocol(
                        "handshake refused as an unknown client".to_owned(),
                    ));
                }
                Some(Refusal::Other(error)) => {
                    return Err(StreamError::Protocol(format!("handshake refused: {error}")));
                }
            }
            self.client_id = reply["clientId"]
                .as_str()
                .ok_or_else(|| {
                    StreamError::Protocol("handshake reply without clientId".to_owned())
                })?
                .to_owned();
            let replay = match (self.last_replay, &self.start) {
                (Some(id), _) => id,
                (None, StartAt::Latest) => -1,
                (None, StartAt::Earliest) => -2,
                (None, StartAt::After(id)) => id.as_number().ok_or_else(|| {
                    StreamError::ReplayExpired(format!(
                        "replay id of {} bytes is not a CometD replay id",
                        id.0.len()
                    ))
                })?,
            };
            let mut replay_map = Map::new();
            replay_map.insert(self.channel.clone(), json!(replay));
            let subscribe = json!([{
                "channel": "/meta/subscribe",
                "clientId": self.client_id,
                "subscription": self.channel,
                "ext": { "replay": replay_map },
                "id": self.message_id(),
            }]);
            let replies = self.post(&subscribe, None).await?;
            let reply = find_reply(&replies, "/meta/subscribe").map_err(StreamError::Protocol)?;
            return match refusal_of(reply) {
                None => Ok(()),
                Some(Refusal::Session(reason)) => {
                    self.renew(&reason).await?;
                    continue;
                }
                Some(Refusal::UnknownClient) => Err(StreamError::Protocol(
                    "subscribe refused right after handshake: unknown client".to_owned(),
                )),
                Some(Refusal::Other(error)) if error.contains("replayId") => {
                    Err(StreamError::ReplayExpired(error))
                }
                Some(Refusal::Other(error)) if error.contains("channel") => Err(
                    StreamError::Unavailable(format!("channel {}: {error}", self.channel)),
                ),
                Some(Refusal::Other(error)) => Err(StreamError::Protocol(format!(
                    "subscribe to {} refused: {error}",
                    self.channel
                ))),
            };
        }
    }

    /// Posts Bayeux messages; returns the replies. Keeps the `BAYEUX_BROWSER` cookie.
    async fn post(
        &mut self,
        messages: &Value,
        timeout: Option<Duration>,
    ) -> Result<Vec<Value>, StreamError> {
        let url = format!(
            "{}/cometd/{}",
            self.session.instance_url,
            self.client.config().api_version
        );
        let mut request = self
            .client
            .http()
            .post(&url)
            .header(
                AUTHORIZATION,
                format!("OAuth {}", self.session.bearer_token()),
            )
            .json(messages);
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, format!("{BROWSER_COOKIE}={cookie}"));
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = request
            .send()
            .await
            .map_err(|error| StreamError::Transport(format!("POST {url}: {error}")))?;
        for value in response.headers().get_all(SET_COOKIE) {
            let found = value.to_str().ok().and_then(|text| {
                let (name, rest) = text.split_once('=')?;
                (name.trim() == BROWSER_COOKIE)
                    .then(|| rest.split(';').next().unwrap_or_default().to_owned())
            });
            if found.is_some() {
                self.cookie = found;
            }
        }
        let status = response.status();
        let body = response.bytes().await.map_err(|error| {
            StreamError::Transport(format!("reading the answer of {url}: {error}"))
        })?;
        if !status.is_success() {
            let text = crate::client::snippet(&body);
            return Err(match status.as_u16() {
                401 | 403 => StreamError::Auth(format!("{url} answered {status}: {text}")),
                400 | 404 => StreamError::Unavailable(format!("{url} answered {status}: {text}")),
                _ => StreamError::Transport(format!("{url} answered {status}: {text}")),
            });
        }
        match serde_json::from_slice(&body) {
            Ok(Value::Array(replies)) => Ok(replies),
            Ok(other) => Err(StreamError::Protocol(format!(
                "expected an array of Bayeux messages, got {}",
                crate::client::snippet(other.to_string().as_bytes())
            ))),
            Err(error) => Err(StreamError::Protocol(format!(
                "the answer of {url} is not JSON: {error}"
            ))),
        }
    }
}

/// The reply on `channel`; what is wrong when the answer has none.
fn find_reply<'a>(replies: &'a [Value], channel: &str) -> Result<&'a Value, String> {
    replies
        .iter()
        .find(|r| r["channel"] == channel)
        .ok_or_else(|| format!("the answer has no {channel} reply"))
}

fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Decodes one event message: a Change Data Capture event, or a PushTopic event (whose
/// `sobject` becomes the fields; its object is not named on the wire, so `entity` is
/// empty).
fn decode_event(message: &Value) -> Result<ChangeEvent, String> {
    let data = &message["data"];
    let replay = data["event"]["replayId"].as_i64().ok_or_else(|| {
        format!(
            "event on {} without data.event.replayId",
            message["channel"]
        )
    })?;
    if let Some(payload) = data["payload"].as_object() {
        let header = &payload["ChangeEventHeader"];
        let change_type = header["changeType"]
            .as_str()
            .ok_or_else(|| format!("change event {replay} without changeType"))?;
        let fields: Map<String, Value> = payload
            .iter()
            .filter(|(name, _)| *name != "ChangeEventHeader")
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        return Ok(ChangeEvent {
            replay_id: ReplayId::from_number(replay),
            entity: header["entityName"].as_str().unwrap_or_default().to_owned(),
            change_type: ChangeType::parse(change_type),
            record_ids: string_list(&header["recordIds"]),
            change_origin: header["changeOrigin"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            commit_timestamp: header["commitTimestamp"].as_i64().unwrap_or_default(),
            changed_fields: string_list(&header["changedFields"]),
            nulled_fields: string_list(&header["nulledFields"]),
            fields,
        });
    }
    let sobject = data["sobject"]
        .as_object()
        .ok_or_else(|| format!("event {replay} has neither payload nor sobject"))?;
    let change_type = match data["event"]["type"].as_str() {
        Some("created") => ChangeType::Create,
        Some("updated") => ChangeType::Update,
        Some("deleted") => ChangeType::Delete,
        Some("undeleted") => ChangeType::Undelete,
        other => ChangeType::Other(other.unwrap_or_default().to_owned()),
    };
    Ok(ChangeEvent {
        replay_id: ReplayId::from_number(replay),
        entity: String::new(),
        change_type,
        record_ids: sobject
            .get("Id")
            .and_then(Value::as_str)
            .map(|id| vec![id.to_owned()])
            .unwrap_or_default(),
        change_origin: String::new(),
        commit_timestamp: data["event"]["createdDate"]
            .as_str()
            .and_then(parse_iso_millis)
            .unwrap_or_default(),
        changed_fields: Vec::new(),
        nulled_fields: Vec::new(),
        fields: sobject.clone(),
    })
}

/// `2024-03-29T16:40:08.208Z` as epoch milliseconds.
pub(crate) fn parse_iso_millis(text: &str) -> Option<i64> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let mut date_parts = date.split('-').map(str::parse::<i64>);
    let (year, month, day) = (
        date_parts.next()?.ok()?,
        date_parts.next()?.ok()?,
        date_parts.next()?.ok()?,
    );
    let (clock, millis) = time.split_once('.').unwrap_or((time, "0"));
    let mut clock_parts = clock.split(':').map(str::parse::<i64>);
    let (hour, minute, second) = (
        clock_parts.next()?.ok()?,
        clock_parts.next()?.ok()?,
        clock_parts.next()?.ok()?,
    );
    let millis: i64 = millis.get(..3).unwrap_or(millis).parse().ok()?;
    // Days from the civil date (proleptic Gregorian), counted from 1970-01-01.
    let shifted = if month <= 2 { year - 1 } else { year };
    let era = shifted.div_euclid(400);
    let year_of_era = shifted - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_timestamps_read_as_epoch_millis() {
        assert_eq!(parse_iso_millis("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_iso_millis("2024-03-29T16:40:08.208Z"),
            Some(1_711_730_408_208)
        );
        assert_eq!(parse_iso_millis("2024-03-29T16:40:08+0000"), None);
    }

    #[test]
    fn change_events_keep_the_body_fields_apart_from_the_header() {
        let message = json!({
            "channel": "/data/AccountChangeEvent",
            "data": { "schema": "x", "event": { "replayId": 7 }, "payload": {
                "ChangeEventHeader": { "entityName": "Account", "recordIds": ["001"],
                    "changeType": "GAP_UPDATE", "changeOrigin": "", "commitTimestamp": 5,
                    "changedFields": [], "nulledFields": [] },
                "Name": "Acme" } }
        });
        let event = decode_event(&message).unwrap();
        assert_eq!(event.replay_id.as_number(), Some(7));
        assert_eq!(event.change_type, ChangeType::Gap("GAP_UPDATE".to_owned()));
        assert_eq!(event.fields.keys().collect::<Vec<_>>(), ["Name"]);
        assert_eq!(event.record_ids, ["001"]);
    }
}
