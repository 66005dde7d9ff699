//! Change Data Capture over the Pub/Sub API: gRPC (tonic) over HTTP/2 and TLS.
//!
//! The channel trusts the system's roots plus [`ClientConfig::extra_root_certificate_pem`]
//! and gives up connecting after [`ClientConfig::connect_timeout`]; the calls are the
//! client stubs of `pgforce-pubsub-proto`, generated from the Pub/Sub proto.
//! [`PubSubSubscription::open`] checks the topic (`GetTopic`), then opens a `Subscribe`
//! stream at a [`StartAt`]; [`PubSubSubscription::next`] returns the next `FetchResponse`
//! decoded into [`ChangeEvent`]s, or an empty batch carrying the latest replay id when the
//! server sends a keepalive. Payloads are Avro, decoded with the schema the event names
//! (`GetSchema`, cached by schema id) with apache-avro; changed-field bitmaps become field
//! names.
//!
//! Flow control: the subscription asks for [`CREDIT`] events up front and tops the credit
//! up again whenever fewer than half of them remain outstanding, so the server never has
//! more than [`CREDIT`] events in flight for it.
//!
//! Authentication is per call (`accesstoken`, `instanceurl`, `tenantid` metadata, the org
//! id being the part of the token before `!`). A refused session is renewed once; a second
//! refusal is [`StreamError::Auth`]. An expired replay id (Salesforce's
//! `…replayid.corrupted` code) is [`StreamError::ReplayExpired`], an unknown topic
//! [`StreamError::Unavailable`], a cut or closed stream [`StreamError::Transport`] (so is
//! any status tonic reports for a failed connection rather than one the server sent).

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::Stream;
use pgforce_pubsub_proto::pub_sub_client::PubSubClient;
use pgforce_pubsub_proto::{
    ConsumerEvent, FetchRequest, FetchResponse, REPLAY_ID_CORRUPTED, ReplayPreset, SchemaRequest,
    TopicRequest, metadata,
};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status, Streaming};

use super::avro::{EventSchema, Field};
use super::{ChangeEvent, ChangeType, EventBatch, ReplayId, StartAt, StreamError};
use crate::auth::Session;
use crate::{Client, ClientConfig};

/// Events the subscription keeps requested from the server (the most Salesforce's
/// reference clients ask for at once).
pub const CREDIT: i32 = 100;

/// The gRPC name of a status code (`UNAVAILABLE`), as error texts show it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A failed call as a [`StreamError`]: Salesforce's `error-code` first, then the status
/// code. A status tonic made up from a failed connection (it keeps the transport error as
/// its source; a server's status has none) is a transport error whatever its code.
fn stream_error(status: &Status, what: &str) -> StreamError {
    let text = format!("{what}: {} {}", code_name(status.code()), status.message());
    if std::error::Error::source(status).is_some() {
        return StreamError::Transport(text);
    }
    let error_code = status
        .metadata()
        .get(metadata::ERROR_CODE)
        .and_then(|v| v.to_str().ok());
    if error_code == Some(REPLAY_ID_CORRUPTED) {
        return StreamError::ReplayExpired(text);
    }
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => StreamError::Auth(text),
        Code::NotFound | Code::Unimplemented => StreamError::Unavailable(text),
        Code::InvalidArgument | Code::Internal | Code::DataLoss => StreamError::Protocol(text),
        _ => StreamError::Transport(text),
    }
}

/// A request carrying the session as Pub/Sub metadata (`accesstoken`, `instanceurl`, and
/// `tenantid`: the org id, the token's part before `!`).
fn authenticated<T>(message: T, session: &Session) -> Result<Request<T>, StreamError> {
    let token = session.bearer_token();
    let tenant = token.split('!').next().unwrap_or_default();
    let mut request = Request::new(message);
    for (name, value) in [
        (metadata::ACCESS_TOKEN, token),
        (metadata::INSTANCE_URL, session.instance_url.as_str()),
        (metadata::TENANT_ID, tenant),
    ] {
        let value = MetadataValue::try_from(value).map_err(|_| {
            StreamError::Auth(format!(
                "the session's {name} cannot be sent as gRPC metadata"
            ))
        })?;
        request
            .metadata_mut()
            .insert(MetadataKey::from_static(name), value);
    }
    Ok(request)
}

/// Connects to `host:port` over TLS (the system's roots plus the configured extra CA) and
/// HTTP/2. An endpoint outside the allowed hosts is refused: the session's token would go
/// there.
async fn connect(
    config: &ClientConfig,
    endpoint: &str,
) -> Result<PubSubClient<Channel>, StreamError> {
    config
        .allowed_hosts
        .check_endpoint("pubsub_endpoint", endpoint)
        .map_err(|e| StreamError::Unavailable(e.to_string()))?;
    let host = endpoint
        .rsplit_once(':')
        .filter(|(_, port)| port.parse::<u16>().is_ok())
        .map(|(host, _)| host)
        .ok_or_else(|| {
            StreamError::Transport(format!("Pub/Sub endpoint {endpoint:?} is not host:port"))
        })?;
    let transport = |e: &dyn std::fmt::Display| {
        StreamError::Transport(format!("connecting to Pub/Sub at {endpoint}: {e}"))
    };
    let mut tls = ClientTlsConfig::new().domain_name(host);
    // tonic refuses to connect when the system has no root certificates at all; with only
    // the extra CA configured (the emulator's, in a bare container), that must still work.
    if !rustls_native_certs::load_native_certs().certs.is_empty() {
        tls = tls.with_native_roots();
    }
    if let Some(pem) = &config.extra_root_certificate_pem {
        tls = tls.ca_certificate(Certificate::from_pem(pem));
    }
    let channel = Endpoint::from_shared(format!("https://{endpoint}"))
        .map_err(|e| transport(&e))?
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .tls_config(tls)
        .map_err(|e| transport(&e))?
        .connect()
        .await
        .map_err(|e| transport(&ErrorChain(&e)))?;
    Ok(PubSubClient::new(channel))
}

/// An error with its sources, for texts (tonic's connection errors say little on their own).
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

/// The requests of a `Subscribe` call, fed from a channel.
fn request_stream(mut receiver: mpsc::Receiver<FetchRequest>) -> impl Stream<Item = FetchRequest> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// An open Change Data Capture subscription over the Pub/Sub API.
pub struct PubSubSubscription {
    client: Client,
    pubsub: PubSubClient<Channel>,
    endpoint: String,
    session: Session,
    topic: String,
    /// More `FetchRequest`s of the open `Subscribe` call (credit top-ups).
    requests: mpsc::Sender<FetchRequest>,
    responses: Streaming<FetchResponse>,
    /// Schemas by id, as fetched with `GetSchema`.
    schemas: HashMap<String, Arc<EventSchema>>,
    /// Events requested and not yet received.
    credit: i32,
}

impl std::fmt::Debug for PubSubSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubSubscription")
            .field("endpoint", &self.endpoint)
            .field("topic", &self.topic)
            .field("credit", &self.credit)
            .finish_non_exhaustive()
    }
}

impl PubSubSubscription {
    /// Subscribes to `topic` (`/data/ChangeEvents`, `/data/AccountChangeEvent`, …) at the
    /// Pub/Sub `endpoint` (`host:port`, e.g. `api.pubsub.salesforce.com:7443`).
    pub async fn open(
        client: &Client,
        endpoint: &str,
        topic: &str,
        start: StartAt,
    ) -> Result<Self, StreamError> {
        let mut pubsub = connect(client.config(), endpoint).await?;
        let mut session = client.session().await?;
        let request = TopicRequest {
            topic_name: topic.to_owned(),
        };
        let info = match pubsub
            .get_topic(authenticated(request.clone(), &session)?)
            .await
        {
            Err(status) if status.code() == Code::Unauthenticated => {
                session = renewed(client, &session).await?;
                pubsub.get_topic(authenticated(request, &session)?).await
            }
            other => other,
        }
        .map_err(|e| stream_error(&e, &format!("GetTopic {topic}")))?
        .into_inner();
        if !info.can_subscribe {
            return Err(StreamError::Unavailable(format!(
                "topic {topic} cannot be subscribed to"
            )));
        }
        let (replay_preset, replay_id) = match start {
            StartAt::Latest => (ReplayPreset::Latest, Vec::new()),
            StartAt::Earliest => (ReplayPreset::Earliest, Vec::new()),
            StartAt::After(id) => (ReplayPreset::Custom, id.0),
        };
        let (requests, receiver) = mpsc::channel(4);
        let first = FetchRequest {
            topic_name: topic.to_owned(),
            replay_preset: replay_preset as i32,
            replay_id,
            num_requested: CREDIT,
            auth_refresh: String::new(),
        };
        requests.try_send(first).map_err(|_| {
            StreamError::Transport(format!("Subscribe {topic}: the request stream is closed"))
        })?;
        let responses = pubsub
            .subscribe(authenticated(request_stream(receiver), &session)?)
            .await
            .map_err(|e| stream_error(&e, &format!("Subscribe {topic}")))?
            .into_inner();
        Ok(Self {
            client: client.clone(),
            pubsub,
            endpoint: endpoint.to_owned(),
            session,
            topic: topic.to_owned(),
            requests,
            responses,
            schemas: HashMap::new(),
            credit: CREDIT,
        })
    }

    /// The topic subscribed to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Waits for the next `FetchResponse`: its events, decoded, or none (a keepalive), with
    /// the position the server reports.
    pub async fn next(&mut self) -> Result<EventBatch, StreamError> {
        let what = format!("Subscribe {}", self.topic);
        let response = self
            .responses
            .message()
            .await
            .map_err(|e| stream_error(&e, &what))?
            .ok_or_else(|| {
                StreamError::Transport(format!("{what}: the server ended the subscription"))
            })?;
        let received = i32::try_from(response.events.len()).unwrap_or(i32::MAX);
        let mut events = Vec::with_capacity(response.events.len());
        for event in response.events {
            events.push(self.decode(event).await?);
        }
        self.credit -= received;
        if self.credit <= CREDIT / 2 {
            let more = FetchRequest {
                topic_name: self.topic.clone(),
                num_requested: CREDIT - self.credit,
                ..FetchRequest::default()
            };
            self.requests.send(more).await.map_err(|_| {
                StreamError::Transport(format!("{what}: the request stream is closed"))
            })?;
            self.credit = CREDIT;
        }
        let latest_replay_id = if response.latest_replay_id.is_empty() {
            events.last().map(|e: &ChangeEvent| e.replay_id.clone())
        } else {
            Some(ReplayId(response.latest_replay_id))
        };
        Ok(EventBatch {
            events,
            latest_replay_id,
        })
    }

    /// The schema with this id, from the cache or `GetSchema`.
    async fn schema(&mut self, schema_id: &str) -> Result<Arc<EventSchema>, StreamError> {
        if let Some(schema) = self.schemas.get(schema_id) {
            return Ok(Arc::clone(schema));
        }
        let request = SchemaRequest {
            schema_id: schema_id.to_owned(),
        };
        let answer = self
            .pubsub
            .get_schema(authenticated(request.clone(), &self.session)?)
            .await;
        let info = match answer {
            Err(status) if status.code() == Code::Unauthenticated => {
                self.session = renewed(&self.client, &self.session).await?;
                self.pubsub
                    .get_schema(authenticated(request, &self.session)?)
                    .await
            }
            other => other,
        }
        .map_err(|e| stream_error(&e, &format!("GetSchema {schema_id}")))?
        .into_inner();
        let schema = Arc::new(EventSchema::parse(&info.schema_json).map_err(|e| {
            StreamError::Protocol(format!("schema {schema_id} cannot be read: {e}"))
        })?);
        self.schemas
            .insert(schema_id.to_owned(), Arc::clone(&schema));
        Ok(schema)
    }

    async fn decode(&mut self, event: ConsumerEvent) -> Result<ChangeEvent, StreamError> {
        let replay_id = ReplayId(event.replay_id);
        let producer = event.event.ok_or_else(|| {
            StreamError::Protocol(format!("event {replay_id:?} carries no event"))
        })?;
        let schema = self.schema(&producer.schema_id).await?;
        let invalid = |e: &dyn std::fmt::Display| {
            StreamError::Protocol(format!(
                "event {} with schema {}: {e}",
                producer.id, producer.schema_id
            ))
        };
        let value = schema.decode(&producer.payload).map_err(|e| invalid(&e))?;
        change_event(schema.fields(), value, replay_id).map_err(|e| invalid(&e))
    }
}

/// A new session after Pub/Sub refused `stale` (a call is then tried once more).
async fn renewed(client: &Client, stale: &Session) -> Result<Session, StreamError> {
    client.renew_session(stale).await.map_err(|e| {
        StreamError::Auth(format!(
            "Pub/Sub refused the session and renewing it failed: {e}"
        ))
    })
}

/// A decoded event payload as a [`ChangeEvent`].
fn change_event(
    fields: &[Field],
    value: Value,
    replay_id: ReplayId,
) -> Result<ChangeEvent, String> {
    let Value::Object(mut body) = value else {
        return Err("an event payload is not a record".to_owned());
    };
    let Some(Value::Object(header)) = body.remove("ChangeEventHeader") else {
        return Err("an event payload has no ChangeEventHeader".to_owned());
    };
    let text = |key: &str| {
        header
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let strings = |key: &str| -> Vec<String> {
        header
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let change_type = ChangeType::parse(&text("changeType"));
    let changed_fields = field_names(&strings("changedFields"), fields)?;
    let nulled_fields = field_names(&strings("nulledFields"), fields)?;
    let mut carried = Map::new();
    match change_type {
        ChangeType::Create | ChangeType::Undelete => {
            for (name, value) in body {
                if !value.is_null() {
                    carried.insert(name, value);
                }
            }
        }
        ChangeType::Update => {
            for name in &changed_fields {
                let top = name.split('.').next().unwrap_or(name);
                if let Some(value) = body.get(top) {
                    carried.insert(top.to_owned(), value.clone());
                }
            }
        }
        _ => {}
    }
    Ok(ChangeEvent {
        replay_id,
        entity: text("entityName"),
        change_type,
        record_ids: strings("recordIds"),
        change_origin: text("changeOrigin"),
        commit_timestamp: header
            .get("commitTimestamp")
            .and_then(Value::as_i64)
            .unwrap_or_default(),
        changed_fields,
        nulled_fields,
        fields: carried,
    })
}

/// Field names from Pub/Sub bitmaps: `0x<HEX>` over the top-level fields, and
/// `<parent index>-0x<HEX>` over a compound field's own fields (named `Parent.Child`).
pub(crate) fn field_names(bitmaps: &[String], fields: &[Field]) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for bitmap in bitmaps {
        if let Some(hex) = bitmap.strip_prefix("0x") {
            let top: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
            names.extend(bits(hex, &top)?.into_iter().map(str::to_owned));
        } else if let Some((parent, hex)) = bitmap.split_once("-0x") {
            let parent = parent
                .parse::<usize>()
                .ok()
                .and_then(|i| fields.get(i))
                .ok_or_else(|| format!("bitmap {bitmap:?} names no field of the schema"))?;
            for child in bits(hex, &parent.components)? {
                names.push(format!("{}.{child}", parent.name));
            }
        } else {
            return Err(format!("{bitmap:?} is not a field bitmap"));
        }
    }
    Ok(names)
}

/// The names of the fields whose bits are set in a hex number (bit 0 = field 0).
fn bits<'a, S: AsRef<str>>(hex: &str, fields: &'a [S]) -> Result<Vec<&'a str>, String> {
    let mut names = Vec::new();
    for (nibble_index, digit) in hex.chars().rev().enumerate() {
        let nibble = digit
            .to_digit(16)
            .ok_or_else(|| format!("bitmap 0x{hex} is not hexadecimal"))?;
        for bit in 0..4 {
            if nibble & (1 << bit) == 0 {
                continue;
            }
            let index = nibble_index * 4 + bit;
            let name = fields.get(index).ok_or_else(|| {
                format!(
                    "bitmap 0x{hex} sets bit {index}, but the schema has {} fields",
                    fields.len()
                )
            })?;
            names.push(name.as_ref());
        }
    }
    names.sort_by_key(|n| fields.iter().position(|f| f.as_ref() == *n));
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, components: &[&str]) -> Field {
        Field {
            name: name.to_owned(),
            components: components.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn bitmaps_name_top_level_and_compound_fields() {
        let top = [
            field("ChangeEventHeader", &[]),
            field("Name", &[]),
            field("Industry", &[]),
            field("LastModifiedDate", &[]),
            field("BillingAddress", &["Street", "City", "PostalCode"]),
        ];
        let names = field_names(&["0xA".to_owned(), "4-0x2".to_owned()], &top).unwrap();
        assert_eq!(
            names,
            vec!["Name", "LastModifiedDate", "BillingAddress.City"]
        );
        // Lower-case digits are read too; bits beyond the schema are an error.
        assert_eq!(
            field_names(&["0xc".to_owned()], &top).unwrap(),
            vec!["Industry", "LastModifiedDate"]
        );
        assert!(field_names(&["0x100".to_owned()], &top).is_err());
        assert!(field_names(&["zz".to_owned()], &top).is_err());
        assert!(field_names(&["9-0x1".to_owned()], &top).is_err());
    }
}
