//! The Pub/Sub API over real gRPC (HTTP/2 + TLS): topics, schemas, subscriptions with flow
//! control, replay, keepalives, authentication, bitmaps and delivery faults.
//!
//! The caller is the tonic client generated from the proto, over TLS trusting the
//! emulator's CA; payloads are decoded with apache-avro and the writer schema. pgforce's own
//! client decodes them end to end in its tests, and a third-party Node client in
//! `interop/pubsub`.

use std::time::Duration;

use apache_avro::types::Value as Avro;
use pgforce_emulator::EmulatorConfig;
use pgforce_emulator::FaultConfig;
use pgforce_pubsub_proto::pub_sub_client::PubSubClient;
use pgforce_pubsub_proto::{
    FetchRequest, FetchResponse, PublishRequest, PublishResponse, REPLAY_ID_CORRUPTED,
    ReplayPreset, SchemaInfo, SchemaRequest, TopicInfo, TopicRequest, replay_id_bytes,
    replay_id_number,
};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status, Streaming};

use crate::support::Org;

/// How long a test waits for anything before failing.
const WAIT: Duration = Duration::from_secs(10);

/// A `Subscribe` call's response stream.
struct Responses(Streaming<FetchResponse>);

impl Responses {
    /// The next message, or the status the stream ended with (OK included).
    async fn next(&mut self) -> Result<FetchResponse, Status> {
        let next = tokio::time::timeout(WAIT, self.0.message())
            .await
            .expect("the server answers in time");
        match next {
            Ok(Some(response)) => Ok(response),
            Ok(None) => Err(Status::ok("")),
            Err(status) => Err(status),
        }
    }

    /// The next FetchResponse; panics on a status.
    async fn fetch(&mut self) -> FetchResponse {
        self.next()
            .await
            .unwrap_or_else(|status| panic!("expected a FetchResponse, got {status:?}"))
    }

    /// The final status; panics on a message.
    async fn status(&mut self) -> Status {
        match self.next().await {
            Err(status) => status,
            Ok(_) => panic!("expected the stream's status, got a message"),
        }
    }
}

/// Salesforce's code in a status's `error-code` trailer.
fn error_code(status: &Status) -> Option<&str> {
    status
        .metadata()
        .get("error-code")
        .map(|v| v.to_str().unwrap())
}

/// A connection to the emulator's Pub/Sub port with a session's metadata.
struct Caller {
    client: PubSubClient<Channel>,
    token: String,
    tenant: String,
}

impl Caller {
    /// Connects with the org's session; the org id is the token's part before `!`.
    async fn connect(org: &Org) -> Self {
        let tenant = org.token.split('!').next().unwrap().to_owned();
        Self::connect_as(org, org.token.clone(), tenant).await
    }

    async fn connect_as(org: &Org, token: String, tenant: String) -> Self {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&org.org.ca_pem))
            .domain_name("localhost");
        let channel = Endpoint::from_shared(format!("https://{}", org.org.pubsub_endpoint))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            client: PubSubClient::new(channel),
            token,
            tenant,
        }
    }

    /// A request with the caller's metadata.
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert("accesstoken", self.token.parse().unwrap());
        metadata.insert("instanceurl", "https://localhost".parse().unwrap());
        metadata.insert("tenantid", self.tenant.parse().unwrap());
        request
    }

    async fn get_topic(&mut self, topic_name: &str) -> Result<TopicInfo, Status> {
        let request = self.request(TopicRequest {
            topic_name: topic_name.to_owned(),
        });
        Ok(self.client.get_topic(request).await?.into_inner())
    }

    async fn get_schema(&mut self, schema_id: impl Into<String>) -> Result<SchemaInfo, Status> {
        let request = self.request(SchemaRequest {
            schema_id: schema_id.into(),
        });
        Ok(self.client.get_schema(request).await?.into_inner())
    }

    async fn publish(&mut self, topic_name: &str) -> Result<PublishResponse, Status> {
        let request = self.request(PublishRequest {
            topic_name: topic_name.to_owned(),
            ..PublishRequest::default()
        });
        Ok(self.client.publish(request).await?.into_inner())
    }

    /// Opens a subscription with its first request; more requests go through the sender.
    /// A call refused before its stream starts (authentication) is `Err`.
    async fn try_subscribe(
        &mut self,
        topic: &str,
        preset: ReplayPreset,
        replay_id: Vec<u8>,
        num_requested: i32,
    ) -> Result<(mpsc::UnboundedSender<FetchRequest>, Responses), Status> {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        sender
            .send(FetchRequest {
                topic_name: topic.to_owned(),
                replay_preset: preset as i32,
                replay_id,
                num_requested,
                auth_refresh: String::new(),
            })
            .unwrap();
        let requests = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
        let request = self.request(requests);
        let response = tokio::time::timeout(WAIT, self.client.subscribe(request))
            .await
            .expect("response headers arrive in time")?;
        Ok((sender, Responses(response.into_inner())))
    }

    async fn subscribe(
        &mut self,
        topic: &str,
        preset: ReplayPreset,
        replay_id: Vec<u8>,
        num_requested: i32,
    ) -> (mpsc::UnboundedSender<FetchRequest>, Responses) {
        self.try_subscribe(topic, preset, replay_id, num_requested)
            .await
            .unwrap()
    }

    /// Subscribes to Account change events from the earliest one kept.
    async fn accounts_from_earliest(
        &mut self,
        num_requested: i32,
    ) -> (mpsc::UnboundedSender<FetchRequest>, Responses) {
        self.subscribe(
            "/data/AccountChangeEvent",
            ReplayPreset::Earliest,
            vec![],
            num_requested,
        )
        .await
    }
}

fn more(num_requested: i32) -> FetchRequest {
    FetchRequest {
        num_requested,
        ..FetchRequest::default()
    }
}

/// An org with Account selected for Change Data Capture and a short keepalive.
async fn cdc_org(keepalive: Duration) -> Org {
    let org = Org::start_with(EmulatorConfig {
        pubsub_keepalive: keepalive,
        ..crate::support::config()
    })
    .await;
    org.control_call(
        Method::PUT,
        "/events/cdc",
        Some(json!({"entities": ["Account"]})),
    )
    .await;
    org
}

/// The header of an event payload.
#[derive(Debug)]
struct Header {
    entity: String,
    record_ids: Vec<String>,
    change_type: String,
    nulled: Vec<String>,
    changed: Vec<String>,
}

impl Header {
    fn of(body: &Value) -> Self {
        let header = &body["ChangeEventHeader"];
        let strings =
            |key: &str| -> Vec<String> { serde_json::from_value(header[key].clone()).unwrap() };
        Self {
            entity: header["entityName"].as_str().unwrap().to_owned(),
            record_ids: strings("recordIds"),
            change_type: header["changeType"].as_str().unwrap().to_owned(),
            nulled: strings("nulledFields"),
            changed: strings("changedFields"),
        }
    }
}

/// An event's payload decoded with its writer schema (apache-avro's JSON: unions
/// unwrapped, enums as their symbol, dates as numbers).
fn decode(payload: &[u8], schema_json: &str) -> Value {
    let schema = apache_avro::Schema::parse_str(schema_json).unwrap();
    let mut rest = payload;
    let datum: Avro = apache_avro::from_avro_datum(&schema, &mut rest, None).unwrap();
    assert!(rest.is_empty(), "the datum is the whole payload");
    Value::try_from(datum).unwrap()
}

/// The top-level field names of a schema, in order (0 is the header).
fn schema_fields(schema_json: &str) -> Vec<String> {
    let schema: Value = serde_json::from_str(schema_json).unwrap();
    schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Field names from a `0x<HEX>` bitmap over `fields`.
fn names_from_bitmap(bitmap: &str, fields: &[String]) -> Vec<String> {
    let hex = bitmap.strip_prefix("0x").unwrap();
    let mut names = Vec::new();
    for (nibble_index, digit) in hex.chars().rev().enumerate() {
        let nibble = digit.to_digit(16).unwrap();
        for bit in 0..4 {
            if nibble & (1 << bit) != 0 {
                names.push(fields[nibble_index * 4 + bit].clone());
            }
        }
    }
    names
}

async fn create_accounts(org: &Org, names: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for name in names {
        ids.push(org.create("Account", json!({"Name": name})).await);
    }
    ids
}

/// Reads responses until `count` events have arrived, decoding each payload with the
/// schema it names; returns their headers, replay ids and the last response.
async fn events(
    caller: &mut Caller,
    responses: &mut Responses,
    count: usize,
) -> (Vec<Header>, Vec<u64>, FetchResponse) {
    let mut headers = Vec::new();
    let mut replay_ids = Vec::new();
    loop {
        let response = responses.fetch().await;
        for event in &response.events {
            let producer = event.event.as_ref().unwrap();
            let schema = caller.get_schema(producer.schema_id.clone()).await.unwrap();
            let body = decode(&producer.payload, &schema.schema_json);
            headers.push(Header::of(&body));
            replay_ids.push(replay_id_number(&event.replay_id).unwrap());
        }
        if headers.len() >= count {
            return (headers, replay_ids, response);
        }
    }
}

#[tokio::test]
async fn get_topic_and_get_schema_describe_change_data_capture_topics() {
    let org = cdc_org(Duration::from_secs(270)).await;
    let mut caller = Caller::connect(&org).await;
    let topic: TopicInfo = caller.get_topic("/data/AccountChangeEvent").await.unwrap();
    assert!(topic.can_subscribe && !topic.can_publish);
    assert_eq!(topic.tenant_guid.len(), 18);
    assert!(topic.tenant_guid.starts_with(&caller.tenant));
    assert!(!topic.rpc_id.is_empty());
    let schema: SchemaInfo = caller.get_schema(topic.schema_id.clone()).await.unwrap();
    assert_eq!(schema.schema_id, topic.schema_id);
    let json: Value = serde_json::from_str(&schema.schema_json).unwrap();
    assert_eq!(json["name"], "AccountChangeEvent");
    assert_eq!(json["fields"][0]["name"], "ChangeEventHeader");
    let header_fields = schema_fields(&json["fields"][0]["type"].to_string());
    assert_eq!(header_fields[0], "entityName");
    assert_eq!(header_fields.last().unwrap(), "changedFields");
    let name = json["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Name")
        .unwrap();
    assert_eq!(name["type"], json!(["null", "string"]));

    // Custom objects have their own topic spelling.
    let invoice: TopicInfo = caller
        .get_topic("/data/Invoice__ChangeEvent")
        .await
        .unwrap();
    assert_ne!(invoice.schema_id, topic.schema_id);

    let unknown = caller
        .get_topic("/data/NoSuchChangeEvent")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    assert!(unknown.message().contains("/data/NoSuchChangeEvent"));
    assert!(
        unknown.message().contains("rpcId: "),
        "{}",
        unknown.message()
    );
    let missing_schema = caller.get_schema("nope".to_owned()).await.unwrap_err();
    assert_eq!(missing_schema.code(), Code::NotFound);

    let publish = caller
        .publish("/data/AccountChangeEvent")
        .await
        .unwrap_err();
    assert_eq!(publish.code(), Code::PermissionDenied, "{publish:?}");
    assert!(publish.message().contains("cannot be published"));
    let platform = caller.publish("/event/Order__e").await.unwrap_err();
    assert_eq!(platform.code(), Code::Unimplemented, "{platform:?}");
    assert!(platform.message().contains("not supported"));
}

#[tokio::test]
async fn calls_without_a_live_session_or_with_another_org_are_unauthenticated() {
    let org = cdc_org(Duration::from_secs(270)).await;
    let good = Caller::connect(&org).await;
    let topic = "/data/AccountChangeEvent";
    let mut bad_token = Caller::connect_as(&org, "00D!nope".to_owned(), good.tenant.clone()).await;
    let refused = bad_token.get_topic(topic).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let mut other_org =
        Caller::connect_as(&org, org.token.clone(), "00D000000000001AAA".to_owned()).await;
    let refused = other_org.get_topic(topic).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(
        refused.message().contains("tenantid"),
        "{}",
        refused.message()
    );

    // A session that expires while subscribed is refused on the next subscribe.
    let mut caller = Caller::connect(&org).await;
    org.control_call(Method::POST, "/sessions/expire", None)
        .await;
    let refused = caller
        .try_subscribe(topic, ReplayPreset::Latest, vec![], 1)
        .await
        .err()
        .expect("the subscription is refused");
    assert_eq!(refused.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn subscribe_sends_no_more_events_than_requested() {
    let org = cdc_org(Duration::from_millis(400)).await;
    let ids = create_accounts(&org, &["A1", "A2", "A3", "A4", "A5"]).await;
    let mut caller = Caller::connect(&org).await;
    let (sender, mut responses) = caller.accounts_from_earliest(2).await;
    let (headers, first_ids, last) = events(&mut caller, &mut responses, 2).await;
    assert_eq!(headers.len(), 2);
    assert_eq!(last.pending_num_requested, 0);
    assert_eq!(headers[0].record_ids, vec![ids[0].clone()]);
    assert_eq!(headers[0].entity, "Account");
    assert_eq!(headers[0].change_type, "CREATE");
    // Out of credit: the next response is a keepalive, not a third event.
    let keepalive = responses.fetch().await;
    assert!(keepalive.events.is_empty());
    assert_eq!(
        replay_id_number(&keepalive.latest_replay_id),
        Some(first_ids[1])
    );
    sender.send(more(10)).unwrap();
    let (headers, rest_ids, last) = events(&mut caller, &mut responses, 3).await;
    let records: Vec<&str> = headers.iter().map(|h| h.record_ids[0].as_str()).collect();
    assert_eq!(records, vec![&ids[2], &ids[3], &ids[4]]);
    assert_eq!(last.pending_num_requested, 7);
    assert!(rest_ids.windows(2).all(|w| w[0] < w[1]));
    assert!(first_ids[1] < rest_ids[0]);

    // A later request may not change the topic.
    sender
        .send(FetchRequest {
            topic_name: "/data/ChangeEvents".to_owned(),
            num_requested: 1,
            ..FetchRequest::default()
        })
        .unwrap();
    let status = responses.status().await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

#[tokio::test]
async fn latest_starts_now_and_custom_starts_after_the_replay_id() {
    let org = cdc_org(Duration::from_secs(270)).await;
    let before = create_accounts(&org, &["Before"]).await;
    let mut caller = Caller::connect(&org).await;
    let (_latest_sender, mut latest) = caller
        .subscribe("/data/ChangeEvents", ReplayPreset::Latest, vec![], 10)
        .await;
    // The subscription is open once the server has read the first request; a keepalive is
    // not due, so create the record after a GetTopic round trip on the same connection.
    let _: TopicInfo = caller.get_topic("/data/ChangeEvents").await.unwrap();
    let after = create_accounts(&org, &["After"]).await;
    let (headers, replay_ids, _) = events(&mut caller, &mut latest, 1).await;
    assert_eq!(headers[0].record_ids, after);

    let mut earliest = caller.accounts_from_earliest(10).await.1;
    let (all, all_ids, _) = events(&mut caller, &mut earliest, 2).await;
    assert_eq!(all[0].record_ids, before);
    assert_eq!(all_ids[1], replay_ids[0]);

    let mut custom = caller
        .subscribe(
            "/data/AccountChangeEvent",
            ReplayPreset::Custom,
            replay_id_bytes(all_ids[0]),
            10,
        )
        .await
        .1;
    let (resumed, _, _) = events(&mut caller, &mut custom, 1).await;
    assert_eq!(resumed[0].record_ids, after);
}

#[tokio::test]
async fn expired_replay_ids_end_the_stream_with_salesforces_error_code() {
    let org = cdc_org(Duration::from_secs(270)).await;
    create_accounts(&org, &["Old"]).await;
    let mut caller = Caller::connect(&org).await;
    let (_sender, mut responses) = caller.accounts_from_earliest(10).await;
    let (headers, ids, _) = events(&mut caller, &mut responses, 1).await;
    assert_eq!(headers.len(), 1);
    org.control_call(Method::POST, "/events/expire", None).await;
    let (_sender, mut responses) = caller
        .subscribe(
            "/data/AccountChangeEvent",
            ReplayPreset::Custom,
            replay_id_bytes(ids[0] - 1),
            10,
        )
        .await;
    let status = responses.status().await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(error_code(&status), Some(REPLAY_ID_CORRUPTED));
    assert!(status.message().contains("rpcId: "), "{}", status.message());
    // A replay id that was never issued is refused the same way.
    let (_sender, mut responses) = caller
        .subscribe(
            "/data/AccountChangeEvent",
            ReplayPreset::Custom,
            replay_id_bytes(ids[0] + 1_000_000),
            10,
        )
        .await;
    assert_eq!(
        error_code(&responses.status().await),
        Some(REPLAY_ID_CORRUPTED)
    );
}

#[tokio::test]
async fn idle_subscriptions_get_keepalives_with_the_latest_replay_id() {
    let org = cdc_org(Duration::from_millis(200)).await;
    create_accounts(&org, &["Seen"]).await;
    let mut caller = Caller::connect(&org).await;
    let (_sender, mut responses) = caller.accounts_from_earliest(5).await;
    let (_, ids, _) = events(&mut caller, &mut responses, 1).await;
    let keepalive = responses.fetch().await;
    assert!(keepalive.events.is_empty());
    assert_eq!(replay_id_number(&keepalive.latest_replay_id), Some(ids[0]));
    assert_eq!(keepalive.latest_replay_id.len(), 8);
    assert_eq!(keepalive.pending_num_requested, 4);
    assert!(!keepalive.rpc_id.is_empty());
}

#[tokio::test]
async fn update_events_name_changed_fields_in_upper_case_hex_bitmaps() {
    let org = cdc_org(Duration::from_secs(270)).await;
    let id = org
        .create("Account", json!({"Name": "Acme", "Industry": "Energy"}))
        .await;
    let mut caller = Caller::connect(&org).await;
    let (_sender, mut responses) = caller.accounts_from_earliest(10).await;
    let (created, _, first) = events(&mut caller, &mut responses, 1).await;
    assert!(created[0].changed.is_empty(), "CREATE has no changedFields");
    let schema_id = first.events[0].event.as_ref().unwrap().schema_id.clone();
    let schema = caller.get_schema(schema_id).await.unwrap();
    let fields = schema_fields(&schema.schema_json);

    let (status, _, _) = org
        .call(
            Method::PATCH,
            &format!("/sobjects/Account/{id}"),
            Some(json!({"Name": "Acme Corp", "Industry": null})),
        )
        .await;
    assert_eq!(status, 204);
    let (updated, _, _) = events(&mut caller, &mut responses, 1).await;
    let update = &updated[0];
    assert_eq!(update.change_type, "UPDATE");
    assert_eq!(update.changed.len(), 1);
    let bitmap = &update.changed[0];
    assert!(bitmap.starts_with("0x"));
    let digits = &bitmap[2..];
    assert!(
        digits
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()),
        "upper-case hex: {bitmap}"
    );
    let mut changed = names_from_bitmap(bitmap, &fields);
    changed.sort();
    assert!(changed.contains(&"Name".to_owned()), "{changed:?}");
    assert!(changed.contains(&"Industry".to_owned()), "{changed:?}");
    assert!(
        changed.contains(&"LastModifiedDate".to_owned()),
        "{changed:?}"
    );
    assert!(!changed.contains(&"SystemModstamp".to_owned()));
    assert_eq!(
        names_from_bitmap(&update.nulled[0], &fields),
        vec!["Industry".to_owned()]
    );
}

#[tokio::test]
async fn delivery_faults_drop_duplicate_and_gap_events() {
    let org = cdc_org(Duration::from_millis(300)).await;
    let mut caller = Caller::connect(&org).await;
    let set_faults = |faults: FaultConfig| {
        let org = &org;
        async move {
            org.control_call(
                Method::PUT,
                "/faults",
                Some(serde_json::to_value(faults).unwrap()),
            )
            .await
        }
    };

    // Every event dropped: the keepalive's position moves past them, no event arrives.
    set_faults(FaultConfig {
        event_drop_rate: 1.0,
        ..FaultConfig::default()
    })
    .await;
    let dropped = create_accounts(&org, &["Dropped"]).await;
    let (_s, mut responses) = caller.accounts_from_earliest(10).await;
    let keepalive = responses.fetch().await;
    assert!(keepalive.events.is_empty());
    assert!(replay_id_number(&keepalive.latest_replay_id).unwrap() > 0);
    drop(dropped);

    // Every event twice.
    set_faults(FaultConfig {
        event_duplicate_rate: 1.0,
        ..FaultConfig::default()
    })
    .await;
    let twice = create_accounts(&org, &["Twice"]).await;
    let (headers, ids, _) = events(&mut caller, &mut responses, 2).await;
    assert_eq!(headers[0].record_ids, twice);
    assert_eq!(headers[1].record_ids, twice);
    assert_eq!(ids[0], ids[1]);

    // Every event as a gap event: GAP_CREATE, no changed fields.
    set_faults(FaultConfig {
        event_gap_rate: 1.0,
        ..FaultConfig::default()
    })
    .await;
    let gap = create_accounts(&org, &["Gap"]).await;
    let (headers, _, _) = events(&mut caller, &mut responses, 1).await;
    assert_eq!(headers[0].record_ids, gap);
    assert_eq!(headers[0].change_type, "GAP_CREATE");
    assert!(headers[0].changed.is_empty());
}

#[tokio::test]
async fn a_stream_cut_ends_open_subscriptions_as_unavailable() {
    let org = cdc_org(Duration::from_millis(200)).await;
    let mut caller = Caller::connect(&org).await;
    let (_sender, mut responses) = caller
        .subscribe("/data/AccountChangeEvent", ReplayPreset::Latest, vec![], 10)
        .await;
    // The first keepalive proves the subscription is open before the cut.
    assert!(responses.fetch().await.events.is_empty());
    org.control_call(Method::POST, "/events/cut", None).await;
    let status = loop {
        if let Err(status) = responses.next().await {
            break status;
        }
    };
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test]
async fn compound_fields_are_nested_records_and_formula_fields_are_not_in_the_schema() {
    let org = cdc_org(Duration::from_secs(270)).await;
    let id = org
        .create(
            "Account",
            json!({"Name": "Acme", "BillingCity": "Lyon", "BillingCountry": "France"}),
        )
        .await;
    let mut caller = Caller::connect(&org).await;
    let (_sender, mut responses) = caller.accounts_from_earliest(10).await;
    let (_, _, first) = events(&mut caller, &mut responses, 1).await;
    let created = first.events[0].event.as_ref().unwrap();
    let schema: SchemaInfo = caller.get_schema(created.schema_id.clone()).await.unwrap();
    let schema_json: Value = serde_json::from_str(&schema.schema_json).unwrap();
    let fields = schema_fields(&schema.schema_json);
    for flat in ["BillingCity", "BillingStreet", "ShippingCity"] {
        assert!(!fields.contains(&flat.to_owned()), "{flat} in {fields:?}");
    }
    let field_type = |name: &str| {
        schema_json["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {fields:?}"))["type"]
            .clone()
    };
    let billing = field_type("BillingAddress");
    assert_eq!(billing[1]["name"], "Address");
    let components: Vec<&str> = billing[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        components,
        [
            "Street",
            "City",
            "State",
            "PostalCode",
            "Country",
            "StateCode",
            "CountryCode",
            "Latitude",
            "Longitude",
            "GeocodeAccuracy"
        ]
    );
    assert_eq!(field_type("ShippingAddress"), json!(["null", "Address"]));

    let body = decode(&created.payload, &schema.schema_json);
    assert_eq!(body["BillingAddress"]["City"], "Lyon");
    assert_eq!(body["BillingAddress"]["Country"], "France");
    assert_eq!(body["BillingAddress"]["Street"], Value::Null);
    assert_eq!(
        body["ShippingAddress"],
        Value::Null,
        "no component has a value"
    );

    let (status, _, _) = org
        .call(
            Method::PATCH,
            &format!("/sobjects/Account/{id}"),
            Some(json!({"BillingCity": "Paris", "BillingCountry": null})),
        )
        .await;
    assert_eq!(status, 204);
    let (updated, _, response) = events(&mut caller, &mut responses, 1).await;
    let billing_position = fields.iter().position(|f| f == "BillingAddress").unwrap();
    // City and Country are components 1 and 4 of Address.
    assert!(
        updated[0]
            .changed
            .contains(&format!("{billing_position}-0x12")),
        "{:?}",
        updated[0].changed
    );
    assert_eq!(updated[0].nulled, vec![format!("{billing_position}-0x10")]);
    let top = updated[0]
        .changed
        .iter()
        .find(|b| b.starts_with("0x"))
        .unwrap();
    assert_eq!(names_from_bitmap(top, &fields), ["LastModifiedDate"]);
    let event = response.events.last().unwrap().event.as_ref().unwrap();
    let body = decode(&event.payload, &schema.schema_json);
    assert_eq!(body["BillingAddress"]["City"], "Paris");
    assert_eq!(body["BillingAddress"]["Country"], Value::Null);
    assert_eq!(
        body["Name"],
        Value::Null,
        "unchanged fields are null on UPDATE"
    );

    org.control_call(
        Method::PUT,
        "/events/cdc",
        Some(json!({"entities": ["Account", "Opportunity", "Contact"]})),
    )
    .await;
    let topic = caller
        .get_topic("/data/OpportunityChangeEvent")
        .await
        .unwrap();
    let opportunity = caller.get_schema(topic.schema_id).await.unwrap();
    let names = schema_fields(&opportunity.schema_json);
    assert!(names.contains(&"Amount".to_owned()));
    assert!(
        !names.contains(&"ExpectedRevenue".to_owned()),
        "a formula field: {names:?}"
    );
    let topic = caller.get_topic("/data/ContactChangeEvent").await.unwrap();
    let contact: Value = serde_json::from_str(
        &caller
            .get_schema(topic.schema_id)
            .await
            .unwrap()
            .schema_json,
    )
    .unwrap();
    let name = contact["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Name")
        .unwrap();
    assert_eq!(name["type"][1]["name"], "PersonName");
    assert_eq!(
        contact["fields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["name"] == "FirstName")
            .count(),
        0
    );
}
