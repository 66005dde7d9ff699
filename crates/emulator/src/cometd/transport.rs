//! Bayeux over HTTP long-polling: `POST /cometd/{version}` (and the per-message forms
//! `/cometd/{version}/handshake|connect|subscribe|unsubscribe|disconnect`, which carry
//! the same bodies).
//!
//! Transport problems are HTTP errors: an unsupported version is 400, a body over
//! 32,768 bytes is 413, a body that is not Bayeux JSON is 400, and a websocket upgrade is
//! refused with 400. Everything else is a Bayeux reply inside a 200: a refused session is
//! `401::Authentication invalid` (advice `reconnect: none`; at handshake, `403::Handshake
//! denied` with `ext.sfdc.failureReason`), an unknown or forgotten client, or one without
//! its `BAYEUX_BROWSER` cookie, is `403::Unknown client` (advice `reconnect: handshake`).
//! The messages of one body are answered in order, except that a connect is answered
//! last: it is held until events come, and the events travel in the same answer.
//! Streaming calls do not count toward the org's daily API requests.

use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::channels;
use super::clients::{Subscription, new_browser_id};
use super::delivery::{self, Held};
use crate::api::context::{ConnectionInfo, bearer_token};
use crate::api::rest::json_response;
use crate::config::LATEST_API_VERSION;
use crate::error::ApiError;
use crate::events::ReplayFrom;
use crate::server::DropConnection;
use crate::sessions::Session;
use crate::state::Shared;

/// The largest request body the Streaming API takes.
pub const MAX_BODY_BYTES: usize = 32_768;
/// The oldest API version the Streaming API serves here.
const OLDEST_MAJOR_VERSION: u32 = 37;
/// The cookie that ties a client to its clientId.
const BROWSER_COOKIE: &str = "BAYEUX_BROWSER";
/// The only connection type served.
const LONG_POLLING: &str = "long-polling";

const HANDSHAKE: &str = "/meta/handshake";
const CONNECT: &str = "/meta/connect";
const SUBSCRIBE: &str = "/meta/subscribe";
const UNSUBSCRIBE: &str = "/meta/unsubscribe";
const DISCONNECT: &str = "/meta/disconnect";

/// One request's view of its caller.
struct Caller {
    /// The live session, or why there is none (`401::…`).
    session: Result<Session, &'static str>,
    browser: Option<String>,
}

/// `POST /cometd/{version}`.
pub async fn endpoint(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<ConnectionInfo>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&shared, connection, &version, &headers, &body).await
}

/// `POST /cometd/{version}/{handshake|connect|…}`: the same as the bare endpoint.
pub async fn meta_endpoint(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<ConnectionInfo>,
    Path((version, meta)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !matches!(
        meta.as_str(),
        "handshake" | "connect" | "subscribe" | "unsubscribe" | "disconnect"
    ) {
        return ApiError::not_found().into_response();
    }
    serve(&shared, connection, &version, &headers, &body).await
}

/// `/cometd` without a version.
pub async fn missing_version() -> Response {
    ApiError::bad_request(
        "UNSUPPORTED_API_VERSION",
        "The Streaming API needs an API version in the URL: /cometd/XX.X",
    )
    .into_response()
}

/// `GET /cometd/{version}`: a websocket upgrade, which Salesforce does not offer.
pub async fn websocket_refused() -> Response {
    ApiError::bad_request(
        "INVALID_CONNECTION_TYPE",
        "Invalid connection type: only long-polling is supported",
    )
    .into_response()
}

fn version_supported(version: &str) -> bool {
    let latest: u32 = LATEST_API_VERSION
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    version
        .split_once('.')
        .filter(|(_, minor)| *minor == "0")
        .and_then(|(major, _)| major.parse::<u32>().ok())
        .is_some_and(|major| (OLDEST_MAJOR_VERSION..=latest).contains(&major))
}

/// The `BAYEUX_BROWSER` cookie of a request.
fn browser_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == BROWSER_COOKIE).then(|| value.to_owned())
        })
}

/// The messages of a body: a JSON array of objects, or one object.
fn parse_messages(body: &[u8]) -> Result<Vec<Map<String, Json>>, ApiError> {
    let messages = match serde_json::from_slice(body) {
        Ok(Json::Array(items)) => items,
        Ok(object @ Json::Object(_)) => vec![object],
        Ok(_) => return Err(ApiError::json_parser("expected Bayeux messages")),
        Err(error) => return Err(ApiError::json_parser(error)),
    };
    messages
        .into_iter()
        .map(|m| match m {
            Json::Object(map) => Ok(map),
            _ => Err(ApiError::json_parser(
                "each Bayeux message must be an object",
            )),
        })
        .collect()
}

async fn serve(
    shared: &Arc<Shared>,
    connection: ConnectionInfo,
    version: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if !version_supported(version) {
        return ApiError::bad_request(
            "UNSUPPORTED_API_VERSION",
            format!(
                "API version {version} is not supported by the Streaming API; use {OLDEST_MAJOR_VERSION}.0 to {LATEST_API_VERSION}"
            ),
        )
        .into_response();
    }
    if body.len() > MAX_BODY_BYTES {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "REQUEST_ENTITY_TOO_LARGE",
            format!("Streaming API request bodies are limited to {MAX_BODY_BYTES} bytes"),
        )
        .into_response();
    }
    let messages = match parse_messages(body) {
        Ok(messages) => messages,
        Err(error) => return error.into_response(),
    };
    let session = match bearer_token(headers) {
        None => Err("401::Request requires authentication"),
        Some(token) => shared
            .sessions()
            .check(token)
            .ok_or("401::Authentication invalid"),
    };
    let mut caller = Caller {
        session,
        browser: browser_cookie(headers),
    };
    let mut replies = Vec::new();
    let mut new_cookie = None;
    let (connects, others): (Vec<_>, Vec<_>) = messages
        .into_iter()
        .partition(|m| m.get("channel").and_then(Json::as_str) == Some(CONNECT));
    for message in &others {
        let channel = message.get("channel").and_then(Json::as_str).unwrap_or("");
        let reply = match channel {
            HANDSHAKE => {
                let (reply, cookie) = handshake(shared, &caller, message);
                if let Some(cookie) = cookie {
                    caller.browser = Some(cookie.clone());
                    new_cookie = Some(cookie);
                }
                reply
            }
            SUBSCRIBE => subscribe(shared, &caller, message),
            UNSUBSCRIBE => unsubscribe(shared, &caller, message),
            DISCONNECT => disconnect(shared, &caller, message),
            _ => refusal(message, channel, "403::Publishing is not supported", None),
        };
        replies.push(reply);
    }
    let last = connects.len().saturating_sub(1);
    for (position, message) in connects.iter().enumerate() {
        match connect(shared, &caller, message, position == last).await {
            Some(mut answer) => replies.append(&mut answer),
            None => {
                let mut response = StatusCode::OK.into_response();
                response.extensions_mut().insert(DropConnection);
                return response;
            }
        }
    }
    let mut response = json_response(StatusCode::OK, &Json::Array(replies));
    if let Some(cookie) = new_cookie {
        let secure = if connection.scheme == "https" {
            "; Secure"
        } else {
            ""
        };
        let value = format!("{BROWSER_COOKIE}={cookie}; Path=/; HttpOnly{secure}");
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
    }
    response
}

/// The start of every reply: channel, and the message's id and clientId when it had them.
fn reply_to(message: &Map<String, Json>, channel: &str) -> Map<String, Json> {
    let mut reply = Map::new();
    reply.insert("channel".to_owned(), json!(channel));
    for key in ["id", "clientId"] {
        if let Some(value) = message.get(key) {
            reply.insert(key.to_owned(), value.clone());
        }
    }
    reply
}

/// An unsuccessful reply with an error and, when given, the advice's `reconnect`.
fn refusal(
    message: &Map<String, Json>,
    channel: &str,
    error: &str,
    reconnect: Option<&str>,
) -> Json {
    let mut reply = reply_to(message, channel);
    if let Some(subscription) = message.get("subscription") {
        reply.insert("subscription".to_owned(), subscription.clone());
    }
    reply.insert("successful".to_owned(), json!(false));
    reply.insert("error".to_owned(), json!(error));
    if let Some(reconnect) = reconnect {
        reply.insert(
            "advice".to_owned(),
            json!({ "reconnect": reconnect, "interval": 0 }),
        );
    }
    Json::Object(reply)
}

fn handshake(
    shared: &Shared,
    caller: &Caller,
    message: &Map<String, Json>,
) -> (Json, Option<String>) {
    match &caller.session {
        Ok(_) => {}
        Err(reason) => {
            let mut reply = reply_to(message, HANDSHAKE);
            reply.insert("successful".to_owned(), json!(false));
            reply.insert("error".to_owned(), json!("403::Handshake denied"));
            reply.insert(
                "ext".to_owned(),
                json!({ "sfdc": { "failureReason": reason }, "replay": true, "payload.format": true }),
            );
            reply.insert(
                "advice".to_owned(),
                json!({ "reconnect": "none", "interval": 0 }),
            );
            return (Json::Object(reply), None);
        }
    }
    let offers_long_polling = message
        .get("supportedConnectionTypes")
        .and_then(Json::as_array)
        .is_none_or(|types| types.iter().any(|t| t.as_str() == Some(LONG_POLLING)));
    if !offers_long_polling {
        return (
            refusal(
                message,
                HANDSHAKE,
                "400::Invalid connection type",
                Some("none"),
            ),
            None,
        );
    }
    let browser = caller.browser.clone().unwrap_or_else(new_browser_id);
    let client_id = shared
        .cometd()
        .handshake(&browser, shared.config.cometd_client_expiry);
    let mut reply = reply_to(message, HANDSHAKE);
    reply.insert("clientId".to_owned(), json!(client_id));
    reply.insert("version".to_owned(), json!("1.0"));
    reply.insert("minimumVersion".to_owned(), json!("1.0"));
    reply.insert("supportedConnectionTypes".to_owned(), json!([LONG_POLLING]));
    reply.insert("successful".to_owned(), json!(true));
    reply.insert(
        "ext".to_owned(),
        json!({ "replay": true, "payload.format": true }),
    );
    let new_cookie = caller.browser.is_none().then_some(browser);
    (Json::Object(reply), new_cookie)
}

/// Checks the session and the client of a non-handshake message; the refusal otherwise.
fn admit(
    shared: &Shared,
    caller: &Caller,
    message: &Map<String, Json>,
    channel: &str,
) -> Result<String, Json> {
    if let Err(reason) = caller.session {
        return Err(refusal(message, channel, reason, Some("none")));
    }
    let client_id = message
        .get("clientId")
        .and_then(Json::as_str)
        .unwrap_or_default();
    if shared
        .cometd()
        .get_mut(client_id, caller.browser.as_deref())
        .is_none()
    {
        return Err(refusal(
            message,
            channel,
            "403::Unknown client",
            Some("handshake"),
        ));
    }
    Ok(client_id.to_owned())
}

/// Where a subscription starts, from the `replay` extension (`-1` when not given).
fn replay_from(message: &Map<String, Json>, subscription: &str) -> Result<ReplayFrom, String> {
    let value = message
        .get("ext")
        .and_then(|ext| ext.get("replay"))
        .and_then(|replay| replay.get(subscription));
    let number = match value {
        None | Some(Json::Null) => return Ok(ReplayFrom::Latest),
        Some(Json::Number(n)) => n.as_i64(),
        Some(Json::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    let invalid = |shown: String| {
        format!(
            "400::The replayId {{{shown}}} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events."
        )
    };
    match number {
        Some(-1) => Ok(ReplayFrom::Latest),
        Some(-2) => Ok(ReplayFrom::Earliest),
        Some(id) if id >= 0 => Ok(ReplayFrom::After(id.unsigned_abs())),
        Some(id) => Err(invalid(id.to_string())),
        None => Err(invalid(value.map(Json::to_string).unwrap_or_default())),
    }
}

fn subscribe(shared: &Shared, caller: &Caller, message: &Map<String, Json>) -> Json {
    let client_id = match admit(shared, caller, message, SUBSCRIBE) {
        Ok(id) => id,
        Err(refused) => return refused,
    };
    let Some(name) = message.get("subscription").and_then(Json::as_str) else {
        return refusal(message, SUBSCRIBE, "400::subscription missing", None);
    };
    let from = match replay_from(message, name) {
        Ok(from) => from,
        Err(error) => return refusal(message, SUBSCRIBE, &error, None),
    };
    let start = {
        let org = shared.org();
        let Some(channel) = channels::resolve(&org, name) else {
            return refusal(
                message,
                SUBSCRIBE,
                "400::The channel you requested to subscribe to doesn't exist",
                None,
            );
        };
        match org.changes().start(from) {
            Ok(after) => (channel, after),
            Err(unavailable) => {
                let error = format!(
                    "400::The replayId {{{}}} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.",
                    unavailable.0
                );
                return refusal(message, SUBSCRIBE, &error, None);
            }
        }
    };
    let (channel, after) = start;
    if matches!(channel, channels::Channel::Topic(_)) {
        // A topic restored or written some other way than `/sobjects/PushTopic` starts
        // being watched here at the latest.
        super::push_topic::resync_watches(&mut shared.org_mut());
    }
    let mut clients = shared.cometd();
    let Some(client) = clients.admitted(&client_id) else {
        return refusal(message, SUBSCRIBE, "403::Unknown client", Some("handshake"));
    };
    client
        .subscriptions
        .insert(name.to_owned(), Subscription { channel, after });
    client.wake.send_modify(|n| *n += 1);
    let mut reply = reply_to(message, SUBSCRIBE);
    reply.insert("subscription".to_owned(), json!(name));
    reply.insert("successful".to_owned(), json!(true));
    Json::Object(reply)
}

fn unsubscribe(shared: &Shared, caller: &Caller, message: &Map<String, Json>) -> Json {
    let client_id = match admit(shared, caller, message, UNSUBSCRIBE) {
        Ok(id) => id,
        Err(refused) => return refused,
    };
    let name = message
        .get("subscription")
        .and_then(Json::as_str)
        .unwrap_or_default();
    if let Some(client) = shared.cometd().admitted(&client_id) {
        client.subscriptions.remove(name);
    }
    let mut reply = reply_to(message, UNSUBSCRIBE);
    reply.insert("subscription".to_owned(), json!(name));
    reply.insert("successful".to_owned(), json!(true));
    Json::Object(reply)
}

fn disconnect(shared: &Shared, caller: &Caller, message: &Map<String, Json>) -> Json {
    let client_id = match admit(shared, caller, message, DISCONNECT) {
        Ok(id) => id,
        Err(refused) => return refused,
    };
    shared.cometd().remove(&client_id);
    let mut reply = reply_to(message, DISCONNECT);
    reply.insert("successful".to_owned(), json!(true));
    Json::Object(reply)
}

/// Answers a connect: the events, then the connect reply. Only the last connect of a body
/// is held. None when the stream was cut and the connection must drop.
async fn connect(
    shared: &Shared,
    caller: &Caller,
    message: &Map<String, Json>,
    hold: bool,
) -> Option<Vec<Json>> {
    let client_id = match admit(shared, caller, message, CONNECT) {
        Ok(id) => id,
        Err(refused) => return Some(vec![refused]),
    };
    let connection_type = message.get("connectionType").and_then(Json::as_str);
    if connection_type.is_some_and(|t| t != LONG_POLLING) {
        return Some(vec![refusal(
            message,
            CONNECT,
            "400::Invalid connection type",
            Some("none"),
        )]);
    }
    let generation = {
        let mut clients = shared.cometd();
        let client = clients.admitted(&client_id)?;
        client.connect_generation += 1;
        client.expires_at = None;
        client.wake.send_modify(|n| *n += 1);
        client.connect_generation
    };
    let asks_no_wait = message
        .get("advice")
        .and_then(|a| a.get("timeout"))
        .and_then(Json::as_u64)
        == Some(0);
    let timeout = if hold && !asks_no_wait {
        shared.config.cometd_timeout
    } else {
        std::time::Duration::ZERO
    };
    let held = delivery::hold(shared, &client_id, generation, timeout).await;
    if let Some(client) = shared
        .cometd()
        .admitted(&client_id)
        .filter(|c| c.connect_generation == generation)
    {
        client.expires_at = Some(Instant::now() + shared.config.cometd_client_expiry);
    }
    let mut answer = match held {
        Held::Cut => return None,
        Held::Events(events) => events,
        Held::Superseded => Vec::new(),
    };
    let timeout_ms = u64::try_from(shared.config.cometd_timeout.as_millis()).unwrap_or(u64::MAX);
    let mut reply = reply_to(message, CONNECT);
    reply.insert("successful".to_owned(), json!(true));
    reply.insert(
        "advice".to_owned(),
        json!({ "reconnect": "retry", "timeout": timeout_ms, "interval": 0 }),
    );
    answer.push(Json::Object(reply));
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_versions_start_at_37() {
        assert!(version_supported("37.0"));
        assert!(version_supported("62.0"));
        assert!(!version_supported("36.0"));
        assert!(!version_supported("62.1"));
        assert!(!version_supported("v62.0"));
        assert!(!version_supported("999.0"));
    }

    #[test]
    fn replay_positions_come_from_the_replay_extension() {
        let message = |replay: Json| {
            json!({ "ext": { "replay": { "/data/ChangeEvents": replay } } })
                .as_object()
                .cloned()
                .unwrap()
        };
        let channel = "/data/ChangeEvents";
        assert_eq!(
            replay_from(&message(json!(-2)), channel),
            Ok(ReplayFrom::Earliest)
        );
        assert_eq!(
            replay_from(&message(json!("17")), channel),
            Ok(ReplayFrom::After(17))
        );
        assert_eq!(replay_from(&Map::new(), channel), Ok(ReplayFrom::Latest));
        let refused = replay_from(&message(json!(-5)), channel).unwrap_err();
        assert!(refused.starts_with("400::The replayId {-5}"), "{refused}");
    }
}
