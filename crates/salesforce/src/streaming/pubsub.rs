//! Change Data Capture over the Pub/Sub API: gRPC over HTTP/2 and TLS.
//!
//! [`PubSubSubscription::open`] checks the topic (`GetTopic`), then opens a `Subscribe`
//! stream at a [`StartAt`]; [`PubSubSubscription::next`] returns the next `FetchResponse`
//! decoded into [`ChangeEvent`]s, or an empty batch carrying the latest replay id when the
//! server sends a keepalive. Payloads are Avro, decoded with the schema the event names
//! (`GetSchema`, cached by schema id); changed-field bitmaps become field names.
//!
//! Flow control: the subscription asks for [`CREDIT`] events up front and tops the credit
//! up again whenever fewer than half of them remain outstanding, so the server never has
//! more than [`CREDIT`] events in flight for it.
//!
//! Authentication is per call (`accesstoken`, `instanceurl`, `tenantid` metadata, the org
//! id being the part of the token before `!`). A refused session is renewed once; a second
//! refusal is [`StreamError::Auth`]. An expired replay id (Salesforce's
//! `…replayid.corrupted` code) is [`StreamError::ReplayExpired`], an unknown topic
//! [`StreamError::Unavailable`], a cut or closed stream [`StreamError::Transport`].

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pgforce_pubsub_proto::{
    Code, ConsumerEvent, FetchRequest, FetchResponse, FrameDecoder, REPLAY_ID_CORRUPTED,
    ReplayPreset, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest, decode_grpc_message,
    encode_message, metadata, method,
};
use prost::Message as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::avro::{self, Schema};
use super::{ChangeEvent, ChangeType, EventBatch, ReplayId, StartAt, StreamError};
use crate::auth::Session;
use crate::{Client, ClientConfig};

/// Events the subscription keeps requested from the server (the most Salesforce's
/// reference clients ask for at once).
pub const CREDIT: i32 = 100;

/// A gRPC call's failure as the server or the connection reported it.
#[derive(Debug)]
enum CallError {
    Status {
        code: Code,
        message: String,
        error_code: Option<String>,
    },
    Transport(String),
    Protocol(String),
}

impl CallError {
    fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            Self::Status {
                code: Code::Unauthenticated,
                ..
            }
        )
    }

    fn into_stream_error(self, what: &str) -> StreamError {
        match self {
            Self::Status {
                code,
                message,
                error_code,
            } => {
                let text = format!("{what}: {} {message}", code.name());
                if error_code.as_deref() == Some(REPLAY_ID_CORRUPTED) {
                    return StreamError::ReplayExpired(text);
                }
                match code {
                    Code::Unauthenticated | Code::PermissionDenied => StreamError::Auth(text),
                    Code::NotFound | Code::Unimplemented => StreamError::Unavailable(text),
                    Code::InvalidArgument | Code::Internal | Code::DataLoss => {
                        StreamError::Protocol(text)
                    }
                    _ => StreamError::Transport(text),
                }
            }
            Self::Transport(message) => StreamError::Transport(format!("{what}: {message}")),
            Self::Protocol(message) => StreamError::Protocol(format!("{what}: {message}")),
        }
    }
}

/// A request body fed through a channel: the caller's half of a gRPC stream.
struct RequestBody(mpsc::Receiver<Bytes>);

impl Body for RequestBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|message| message.map(|m| Ok(Frame::data(m))))
    }
}

/// One HTTP/2 connection to the Pub/Sub endpoint. The task driving it is aborted when the
/// channel is dropped.
struct Channel {
    send: http2::SendRequest<RequestBody>,
    endpoint: String,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// A response stream being read: gRPC messages, then the status in the trailers.
struct Responses {
    body: Incoming,
    decoder: FrameDecoder,
}

impl Responses {
    /// The next message; `Err` with the status once the call has ended (an OK status
    /// included, as `Code::Ok`).
    async fn next(&mut self) -> Result<Bytes, CallError> {
        loop {
            match self.decoder.next_message() {
                Ok(Some(message)) => return Ok(message),
                Ok(None) => {}
                Err(error) => return Err(CallError::Protocol(error.to_string())),
            }
            let frame = std::future::poll_fn(|cx| Pin::new(&mut self.body).poll_frame(cx)).await;
            match frame {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.decoder.push(&data),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            return Err(status_from(&trailers));
                        }
                    }
                },
                Some(Err(error)) => {
                    return Err(CallError::Transport(format!("the stream failed: {error}")));
                }
                None => {
                    return Err(CallError::Transport(
                        "the stream ended without a gRPC status".to_owned(),
                    ));
                }
            }
        }
    }
}

/// The status carried by trailers (or by the headers of a trailers-only response).
fn status_from(headers: &hyper::HeaderMap) -> CallError {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(code) = text(metadata::GRPC_STATUS).and_then(|c| c.parse::<u32>().ok()) else {
        return CallError::Protocol("the trailers carry no grpc-status".to_owned());
    };
    CallError::Status {
        code: Code::from_number(code),
        message: decode_grpc_message(text(metadata::GRPC_MESSAGE).unwrap_or_default()),
        error_code: text(metadata::ERROR_CODE).map(str::to_owned),
    }
}

/// The TLS settings: the system's roots plus the configured extra CA, HTTP/2 only.
fn tls_config(config: &ClientConfig) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot use is skipped, as browsers do.
        let _ = roots.add(certificate);
    }
    if let Some(pem) = &config.extra_root_certificate_pem {
        for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let certificate =
                certificate.map_err(|e| format!("extra root certificate is not valid PEM: {e}"))?;
            roots
                .add(certificate)
                .map_err(|e| format!("extra root certificate is not usable: {e}"))?;
        }
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("setting up TLS failed: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tls)
}

impl Channel {
    /// Connects to `host:port` over TLS and HTTP/2.
    async fn connect(config: &ClientConfig, endpoint: &str) -> Result<Self, StreamError> {
        let (host, port) = endpoint
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| {
                StreamError::Transport(format!("Pub/Sub endpoint {endpoint:?} is not host:port"))
            })?;
        let transport = |e: &dyn std::fmt::Display| {
            StreamError::Transport(format!("connecting to Pub/Sub at {endpoint}: {e}"))
        };
        let server_name = ServerName::try_from(host.to_owned()).map_err(|e| transport(&e))?;
        let tcp = tokio::time::timeout(
            config.connect_timeout,
            // An owned address: a borrowed `(&str, u16)` makes callers' futures not Send.
            tokio::net::TcpStream::connect(format!("{host}:{port}")),
        )
        .await
        .map_err(|e| transport(&e))?
        .map_err(|e| transport(&e))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsConnector::from(Arc::new(
            tls_config(config).map_err(StreamError::Transport)?,
        ))
        .connect(server_name, tcp)
        .await
        .map_err(|e| transport(&e))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(StreamError::Protocol(format!(
                "Pub/Sub at {endpoint} did not agree to HTTP/2 (ALPN h2)"
            )));
        }
        let (send, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| transport(&e))?;
        let driver = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "pub/sub connection ended");
            }
        });
        Ok(Self {
            send,
            endpoint: endpoint.to_owned(),
            driver,
        })
    }

    /// Starts a call with its first message; returns the sender for more messages and the
    /// response stream.
    async fn start(
        &mut self,
        path: &str,
        session: &Session,
        first: Bytes,
    ) -> Result<(mpsc::Sender<Bytes>, Responses), CallError> {
        let (sender, receiver) = mpsc::channel(4);
        sender
            .send(first)
            .await
            .map_err(|_| CallError::Transport("the request stream closed".to_owned()))?;
        let token = session.bearer_token();
        let tenant = token.split('!').next().unwrap_or_default();
        let request = hyper::Request::post(format!("https://{}{path}", self.endpoint))
            .header(hyper::header::CONTENT_TYPE, metadata::CONTENT_TYPE_GRPC)
            .header("te", "trailers")
            .header(metadata::ACCESS_TOKEN, token)
            .header(metadata::INSTANCE_URL, session.instance_url.as_str())
            .header(metadata::TENANT_ID, tenant)
            .body(RequestBody(receiver))
            .map_err(|e| CallError::Protocol(format!("building the request failed: {e}")))?;
        self.send
            .ready()
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let response = self
            .send
            .send_request(request)
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        if response.status() != hyper::StatusCode::OK {
            return Err(CallError::Transport(format!(
                "HTTP {} instead of a gRPC answer",
                response.status()
            )));
        }
        // A trailers-only answer carries the status in the headers.
        if response.headers().contains_key(metadata::GRPC_STATUS) {
            return Err(status_from(response.headers()));
        }
        Ok((
            sender,
            Responses {
                body: response.into_body(),
                decoder: FrameDecoder::default(),
            },
        ))
    }

    /// A unary call.
    async fn unary<A: prost::Message + Default>(
        &mut self,
        path: &str,
        session: &Session,
        request: &impl prost::Message,
    ) -> Result<A, CallError> {
        let (sender, mut responses) = self.start(path, session, encode_message(request)).await?;
        drop(sender);
        let message = responses.next().await?;
        A::decode(message).map_err(|e| CallError::Protocol(format!("undecodable answer: {e}")))
    }
}

/// An open Change Data Capture subscription over the Pub/Sub API.
pub struct PubSubSubscription {
    client: Client,
    channel: Channel,
    session: Session,
    topic: String,
    requests: mpsc::Sender<Bytes>,
    responses: Responses,
    /// Schemas by id, as fetched with `GetSchema`.
    schemas: HashMap<String, Arc<Schema>>,
    /// Events requested and not yet received.
    credit: i32,
}

impl std::fmt::Debug for PubSubSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSubSubscription")
            .field("endpoint", &self.channel.endpoint)
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
        let mut channel = Channel::connect(client.config(), endpoint).await?;
        let mut session = client.session().await?;
        let request = TopicRequest {
            topic_name: topic.to_owned(),
        };
        let info: TopicInfo = match channel.unary(method::GET_TOPIC, &session, &request).await {
            Err(error) if error.is_unauthenticated() => {
                session = renewed(client, &session).await?;
                channel.unary(method::GET_TOPIC, &session, &request).await
            }
            other => other,
        }
        .map_err(|e| e.into_stream_error(&format!("GetTopic {topic}")))?;
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
        let first = encode_message(&FetchRequest {
            topic_name: topic.to_owned(),
            replay_preset: replay_preset as i32,
            replay_id,
            num_requested: CREDIT,
            auth_refresh: String::new(),
        });
        let (requests, responses) = channel
            .start(method::SUBSCRIBE, &session, first)
            .await
            .map_err(|e| e.into_stream_error(&format!("Subscribe {topic}")))?;
        Ok(Self {
            client: client.clone(),
            channel,
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
        let message = self.responses.next().await.map_err(|e| match e {
            CallError::Status { code: Code::Ok, .. } => {
                StreamError::Transport(format!("{what}: the server ended the subscription"))
            }
            other => other.into_stream_error(&what),
        })?;
        let response = FetchResponse::decode(message).map_err(|e| {
            StreamError::Protocol(format!("{what}: undecodable FetchResponse: {e}"))
        })?;
        let received = i32::try_from(response.events.len()).unwrap_or(i32::MAX);
        let mut events = Vec::with_capacity(response.events.len());
        for event in response.events {
            events.push(self.decode(event).await?);
        }
        self.credit -= received;
        if self.credit <= CREDIT / 2 {
            let more = encode_message(&FetchRequest {
                topic_name: self.topic.clone(),
                num_requested: CREDIT - self.credit,
                ..FetchRequest::default()
            });
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
    async fn schema(&mut self, schema_id: &str) -> Result<Arc<Schema>, StreamError> {
        if let Some(schema) = self.schemas.get(schema_id) {
            return Ok(Arc::clone(schema));
        }
        let request = SchemaRequest {
            schema_id: schema_id.to_owned(),
        };
        let answer = self
            .channel
            .unary(method::GET_SCHEMA, &self.session, &request)
            .await;
        let info: SchemaInfo = match answer {
            Err(error) if error.is_unauthenticated() => {
                self.session = renewed(&self.client, &self.session).await?;
                self.channel
                    .unary(method::GET_SCHEMA, &self.session, &request)
                    .await
            }
            other => other,
        }
        .map_err(|e| e.into_stream_error(&format!("GetSchema {schema_id}")))?;
        let schema = Arc::new(Schema::parse(&info.schema_json).map_err(|e| {
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
        let value = avro::decode(&schema, &producer.payload).map_err(|e| {
            StreamError::Protocol(format!(
                "event {} with schema {}: {e}",
                producer.id, producer.schema_id
            ))
        })?;
        change_event(&schema, value, replay_id).map_err(|e| {
            StreamError::Protocol(format!(
                "event {} with schema {}: {e}",
                producer.id, producer.schema_id
            ))
        })
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
fn change_event(schema: &Schema, value: Value, replay_id: ReplayId) -> Result<ChangeEvent, String> {
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
    let fields = schema.fields();
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
pub(crate) fn field_names(
    bitmaps: &[String],
    fields: &[(String, Schema)],
) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for bitmap in bitmaps {
        if let Some(hex) = bitmap.strip_prefix("0x") {
            names.extend(bits(hex, fields)?.into_iter().map(str::to_owned));
        } else if let Some((parent, hex)) = bitmap.split_once("-0x") {
            let (parent_name, parent_schema) = parent
                .parse::<usize>()
                .ok()
                .and_then(|i| fields.get(i))
                .ok_or_else(|| format!("bitmap {bitmap:?} names no field of the schema"))?;
            for child in bits(hex, parent_schema.record_fields())? {
                names.push(format!("{parent_name}.{child}"));
            }
        } else {
            return Err(format!("{bitmap:?} is not a field bitmap"));
        }
    }
    Ok(names)
}

/// The names of the fields whose bits are set in a hex number (bit 0 = field 0).
fn bits<'a>(hex: &str, fields: &'a [(String, Schema)]) -> Result<Vec<&'a str>, String> {
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
            let (name, _) = fields.get(index).ok_or_else(|| {
                format!(
                    "bitmap 0x{hex} sets bit {index}, but the schema has {} fields",
                    fields.len()
                )
            })?;
            names.push(name.as_str());
        }
    }
    names.sort_by_key(|n| fields.iter().position(|(f, _)| f == n));
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(names: &[&str]) -> Vec<(String, Schema)> {
        names
            .iter()
            .map(|n| ((*n).to_owned(), Schema::String))
            .collect()
    }

    #[test]
    fn bitmaps_name_top_level_and_compound_fields() {
        let address = Schema::Union(vec![
            Schema::Null,
            Schema::Record(fields(&["Street", "City", "PostalCode"])),
        ]);
        let mut top = fields(&["ChangeEventHeader", "Name", "Industry", "LastModifiedDate"]);
        top.push(("BillingAddress".to_owned(), address));
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
    }
}
