//! The Streaming API over real HTTPS: Bayeux handshake, cookie and client lifetime, held
//! connects released by REST writes, Change Data Capture and PushTopic event shapes,
//! replay, the Tooling API's channel members, delivery faults, stream cuts and refused
//! sessions.

use std::time::Duration;

use pgforce_emulator::EmulatorConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Org, VERSION, config, single_error};

/// An emulator whose connects are held one second.
async fn start() -> Org {
    start_with(EmulatorConfig {
        cometd_timeout: Duration::from_secs(1),
        ..config()
    })
    .await
}

async fn start_with(config: EmulatorConfig) -> Org {
    Org::start_with(config).await
}

/// A Bayeux client speaking to the emulator, keeping its cookie as a browser would.
struct Bayeux {
    http: reqwest::Client,
    url: String,
    token: String,
    cookie: Option<String>,
    client_id: String,
    next_id: u64,
}

impl Bayeux {
    fn new(org: &Org) -> Self {
        Self {
            http: org.http.clone(),
            url: format!("{}/cometd/{VERSION}", org.base),
            token: org.token.clone(),
            cookie: None,
            client_id: String::new(),
            next_id: 0,
        }
    }

    /// Posts a body to the endpoint (plus `suffix`); returns the status and JSON answer.
    async fn post(&mut self, suffix: &str, body: Value) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(format!("{}{suffix}", self.url))
            .header("Authorization", format!("OAuth {}", self.token))
            .json(&body);
        if let Some(cookie) = &self.cookie {
            request = request.header("Cookie", format!("BAYEUX_BROWSER={cookie}"));
        }
        let response = request.send().await.expect("the endpoint answers");
        if let Some(set) = response.headers().get("set-cookie") {
            let set = set.to_str().unwrap();
            let value = set
                .strip_prefix("BAYEUX_BROWSER=")
                .and_then(|v| v.split(';').next())
                .expect("the cookie is BAYEUX_BROWSER");
            self.cookie = Some(value.to_owned());
        }
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    async fn handshake(org: &Org) -> Self {
        let mut bayeux = Self::new(org);
        let id = bayeux.id();
        let (status, body) = bayeux
            .post(
                "",
                json!([{ "channel": "/meta/handshake", "version": "1.0",
                         "supportedConnectionTypes": ["long-polling"], "id": id }]),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body[0]["successful"], true, "{body}");
        bayeux.client_id = body[0]["clientId"].as_str().unwrap().to_owned();
        bayeux
    }

    /// Subscribes with a replay position; returns the subscribe reply.
    async fn subscribe(&mut self, channel: &str, replay: i64) -> Value {
        let id = self.id();
        let (status, body) = self
            .post(
                "",
                json!([{ "channel": "/meta/subscribe", "clientId": self.client_id,
                         "subscription": channel, "id": id,
                         "ext": { "replay": { channel: replay } } }]),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        body[0].clone()
    }

    /// One connect round trip: every message of the answer.
    async fn connect(&mut self) -> Vec<Value> {
        let id = self.id();
        let (status, body) = self
            .post(
                "",
                json!([{ "channel": "/meta/connect", "clientId": self.client_id,
                         "connectionType": "long-polling", "id": id }]),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array().unwrap().clone()
    }

    /// Connects until `count` events came (at most ten round trips); returns them.
    async fn events(&mut self, count: usize) -> Vec<Value> {
        let mut events = Vec::new();
        for _ in 0..10 {
            let answer = self.connect().await;
            let (meta, data): (Vec<Value>, Vec<Value>) = answer
                .into_iter()
                .partition(|m| m["channel"].as_str().unwrap().starts_with("/meta/"));
            assert_eq!(meta.len(), 1, "one connect reply");
            assert_eq!(meta[0]["successful"], true, "{meta:?}");
            events.extend(data);
            if events.len() >= count {
                break;
            }
        }
        events
    }
}

/// Selects objects for Change Data Capture through the control API.
async fn select_cdc(org: &Org, entities: &[&str]) {
    org.control_call(
        Method::PUT,
        "/events/cdc",
        Some(json!({ "entities": entities })),
    )
    .await;
}

/// Sends a write with `Sforce-Call-Options: client=<client>`; returns the status.
async fn write_as(org: &Org, method: Method, path: &str, body: Value, client: &str) -> StatusCode {
    org.http
        .request(method, org.url(path))
        .bearer_auth(&org.token)
        .header("Sforce-Call-Options", format!("client={client}"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

fn header(event: &Value) -> &Value {
    &event["data"]["payload"]["ChangeEventHeader"]
}

/// The body field names of a CDC event, sorted.
fn body_fields(event: &Value) -> Vec<String> {
    let mut names: Vec<String> = event["data"]["payload"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "ChangeEventHeader")
        .cloned()
        .collect();
    names.sort();
    names
}

fn replay_id(event: &Value) -> i64 {
    event["data"]["event"]["replayId"].as_i64().unwrap()
}

#[tokio::test]
async fn handshake_sets_the_browser_cookie_and_later_calls_need_it() {
    let org = start().await;
    let mut bayeux = Bayeux::handshake(&org).await;
    assert!(bayeux.cookie.is_some(), "handshake sets BAYEUX_BROWSER");
    assert_eq!(bayeux.client_id.len(), 30);

    let (_, body) = bayeux
        .post(
            "",
            json!({ "channel": "/meta/handshake", "version": "1.0", "id": "h" }),
        )
        .await;
    assert_eq!(
        body[0]["ext"],
        json!({ "replay": true, "payload.format": true })
    );
    assert_eq!(body[0]["supportedConnectionTypes"], json!(["long-polling"]));
    assert_eq!(body[0]["id"], "h");

    let cookie = bayeux.cookie.take();
    let refused = bayeux.connect().await;
    assert_eq!(refused[0]["successful"], false);
    assert_eq!(refused[0]["error"], "403::Unknown client");
    assert_eq!(refused[0]["advice"]["reconnect"], "handshake");

    bayeux.cookie = cookie;
    bayeux.client_id = "nosuchclient".to_owned();
    let refused = bayeux.connect().await;
    assert_eq!(refused[0]["error"], "403::Unknown client");
}

#[tokio::test]
async fn a_held_connect_is_released_by_a_rest_update_with_its_event() {
    let org = start_with(EmulatorConfig {
        cometd_timeout: Duration::from_secs(20),
        ..config()
    })
    .await;
    select_cdc(&org, &["Account"]).await;
    let id = org.create("Account", json!({ "Name": "Acme" })).await;
    let mut bayeux = Bayeux::handshake(&org).await;
    let reply = bayeux.subscribe("/data/AccountChangeEvent", -1).await;
    assert_eq!(reply["successful"], true, "{reply}");
    assert_eq!(reply["subscription"], "/data/AccountChangeEvent");

    let connect = tokio::spawn(async move { bayeux.connect().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !connect.is_finished(),
        "the connect is held while nothing happens"
    );
    let status = write_as(
        &org,
        Method::PATCH,
        &format!("/sobjects/Account/{id}"),
        json!({ "Name": "Acme Corp", "Phone": null }),
        "sync-engine",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let answer = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .expect("the update releases the connect")
        .unwrap();
    assert_eq!(answer.len(), 2, "{answer:?}");
    let event = &answer[0];
    assert_eq!(event["channel"], "/data/AccountChangeEvent");
    let header = header(event);
    assert_eq!(header["entityName"], "Account");
    assert_eq!(header["recordIds"], json!([id]));
    assert_eq!(header["changeType"], "UPDATE");
    assert_eq!(
        header["changeOrigin"],
        format!("com/salesforce/api/rest/{VERSION};client=sync-engine")
    );
    assert_eq!(header["changedFields"], json!(["Name", "LastModifiedDate"]));
    assert_eq!(header["nulledFields"], json!([]));
    assert_eq!(header["sequenceNumber"], 1);
    assert_eq!(header["transactionKey"].as_str().unwrap().len(), 36);
    assert!(header["commitTimestamp"].as_i64().unwrap() > 1_700_000_000_000);
    assert!(header["commitNumber"].as_u64().unwrap() > 0);
    assert_eq!(header["commitUser"].as_str().unwrap().len(), 18);
    assert_eq!(body_fields(event), ["LastModifiedDate", "Name"]);
    assert_eq!(event["data"]["payload"]["Name"], "Acme Corp");
    let modified = event["data"]["payload"]["LastModifiedDate"]
        .as_str()
        .unwrap();
    assert!(
        modified.ends_with('Z') && modified.len() == 24,
        "{modified}"
    );
    assert_eq!(event["data"]["schema"].as_str().unwrap().len(), 22);
    assert!(replay_id(event) > 0);
    let reply = &answer[1];
    assert_eq!(reply["channel"], "/meta/connect");
    assert_eq!(reply["successful"], true);
    assert_eq!(
        reply["advice"],
        json!({ "reconnect": "retry", "timeout": 20000, "interval": 0 })
    );
}

#[tokio::test]
async fn change_events_carry_the_fields_of_each_change_type() {
    let org = start().await;
    select_cdc(&org, &["Account", "Invoice__c"]).await;
    let mut all = Bayeux::handshake(&org).await;
    all.subscribe("/data/ChangeEvents", -1).await;
    let mut invoices = Bayeux::handshake(&org).await;
    invoices.subscribe("/data/Invoice__ChangeEvent", -1).await;

    let id = org
        .create("Account", json!({ "Name": "Acme", "Phone": "555" }))
        .await;
    let path = format!("/sobjects/Account/{id}");
    let (status, _, _) = org
        .call(Method::PATCH, &path, Some(json!({ "Phone": null })))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = org.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    org.control_call(Method::POST, "/undelete", Some(json!({ "ids": [id] })))
        .await;
    let invoice = org
        .create("Invoice__c", crate::support::invoice("C-1"))
        .await;

    let events = all.events(5).await;
    let types: Vec<&str> = events
        .iter()
        .map(|e| header(e)["changeType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["CREATE", "UPDATE", "DELETE", "UNDELETE", "CREATE"]);
    assert!(events.iter().all(|e| e["channel"] == "/data/ChangeEvents"));
    let ids: Vec<i64> = events.iter().map(replay_id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let created = body_fields(&events[0]);
    for name in [
        "Name",
        "Phone",
        "OwnerId",
        "CreatedDate",
        "CreatedById",
        "LastModifiedDate",
    ] {
        assert!(created.contains(&name.to_owned()), "{name} in {created:?}");
    }
    for never in ["Id", "IsDeleted", "SystemModstamp", "Fax"] {
        assert!(
            !created.contains(&never.to_owned()),
            "{never} in {created:?}"
        );
    }
    assert_eq!(header(&events[0])["changedFields"], json!([]));
    assert_eq!(header(&events[0])["changeOrigin"], "");

    assert_eq!(header(&events[1])["nulledFields"], json!(["Phone"]));
    assert_eq!(events[1]["data"]["payload"]["Phone"], Value::Null);
    assert_eq!(body_fields(&events[1]), ["LastModifiedDate", "Phone"]);

    assert_eq!(body_fields(&events[2]), Vec::<String>::new());
    assert_eq!(header(&events[2])["recordIds"], json!([id]));
    let undeleted = body_fields(&events[3]);
    assert!(undeleted.contains(&"Name".to_owned()) && !undeleted.contains(&"Phone".to_owned()));

    assert_eq!(header(&events[4])["entityName"], "Invoice__c");
    let only_invoices = invoices.events(1).await;
    assert_eq!(only_invoices.len(), 1, "{only_invoices:?}");
    assert_eq!(only_invoices[0]["channel"], "/data/Invoice__ChangeEvent");
    assert_eq!(header(&only_invoices[0])["recordIds"], json!([invoice]));
    assert_eq!(only_invoices[0]["data"]["payload"]["Code__c"], "C-1");
}

#[tokio::test]
async fn replay_starts_at_new_all_retained_or_after_an_id() {
    let org = start().await;
    select_cdc(&org, &["Account"]).await;
    for name in ["A", "B", "C"] {
        org.create("Account", json!({ "Name": name })).await;
    }
    let mut everything = Bayeux::handshake(&org).await;
    everything.subscribe("/data/AccountChangeEvent", -2).await;
    let all = everything.events(3).await;
    assert_eq!(all.len(), 3);
    let names: Vec<&str> = all
        .iter()
        .map(|e| e["data"]["payload"]["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A", "B", "C"]);

    let mut after_first = Bayeux::handshake(&org).await;
    after_first
        .subscribe("/data/AccountChangeEvent", replay_id(&all[0]))
        .await;
    let rest = after_first.events(2).await;
    assert_eq!(rest, all[1..].to_vec());

    let mut new_only = Bayeux::handshake(&org).await;
    new_only.subscribe("/data/AccountChangeEvent", -1).await;
    let answer = new_only.connect().await;
    assert_eq!(
        answer.len(),
        1,
        "nothing new: only the connect reply {answer:?}"
    );

    org.control_call(Method::POST, "/events/expire", None).await;
    let mut late = Bayeux::handshake(&org).await;
    let refused = late
        .subscribe("/data/AccountChangeEvent", replay_id(&all[0]))
        .await;
    assert_eq!(refused["successful"], false);
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("400::The replayId {{{}}}", replay_id(&all[0])))
            && error.contains("-2 to replay all events, or -1 to replay only new events"),
        "{error}"
    );
    let refused = late.subscribe("/data/AccountChangeEvent", -3).await;
    assert_eq!(refused["successful"], false);
    let unknown = late.subscribe("/data/NoSuchThingChangeEvent", -1).await;
    assert_eq!(unknown["successful"], false);
    assert_eq!(
        unknown["error"],
        "400::The channel you requested to subscribe to doesn't exist"
    );
    let unknown = late.subscribe("/topic/NoSuchTopic", -1).await;
    assert_eq!(unknown["successful"], false);
}

#[tokio::test]
async fn per_message_urls_work_and_transport_errors_are_http_errors() {
    let org = start().await;
    let mut bayeux = Bayeux::new(&org);
    let (status, body) = bayeux
        .post(
            "/handshake",
            json!([{ "channel": "/meta/handshake", "version": "1.0" }]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    bayeux.client_id = body[0]["clientId"].as_str().unwrap().to_owned();
    let (_, body) = bayeux
        .post(
            "/subscribe",
            json!({ "channel": "/meta/subscribe", "clientId": bayeux.client_id,
                    "subscription": "/data/ChangeEvents" }),
        )
        .await;
    assert_eq!(body[0]["successful"], true, "{body}");
    let (_, body) = bayeux
        .post(
            "/unsubscribe",
            json!([{ "channel": "/meta/unsubscribe", "clientId": bayeux.client_id,
                     "subscription": "/data/ChangeEvents" }]),
        )
        .await;
    assert_eq!(body[0]["successful"], true, "{body}");
    let (_, body) = bayeux
        .post(
            "/connect",
            json!([{ "channel": "/meta/connect", "clientId": bayeux.client_id,
                     "connectionType": "websocket" }]),
        )
        .await;
    assert_eq!(body[0]["error"], "400::Invalid connection type");
    let (_, body) = bayeux
        .post(
            "/disconnect",
            json!([{ "channel": "/meta/disconnect", "clientId": bayeux.client_id }]),
        )
        .await;
    assert_eq!(body[0]["successful"], true, "{body}");
    let answer = bayeux.connect().await;
    assert_eq!(answer[0]["error"], "403::Unknown client", "disconnected");

    let post = |url: String, body: Vec<u8>| {
        org.http
            .post(url)
            .header("Authorization", format!("OAuth {}", org.token))
            .body(body)
            .send()
    };
    let handshake = br#"[{"channel":"/meta/handshake","version":"1.0"}]"#.to_vec();
    for url in [
        format!("{}/cometd/36.0", org.base),
        format!("{}/cometd", org.base),
        format!("{}/cometd/62", org.base),
    ] {
        let response = post(url.clone(), handshake.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
    }
    let big = format!(
        r#"[{{"channel":"/meta/handshake","version":"1.0","pad":"{}"}}]"#,
        "x".repeat(40_000)
    );
    let response = post(format!("{}/cometd/{VERSION}", org.base), big.into_bytes())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let response = org
        .http
        .get(format!("{}/cometd/{VERSION}", org.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn streaming_calls_do_not_count_as_api_requests() {
    let org = start().await;
    let before = org.control_call(Method::GET, "/stats", None).await["usage"]["used"].clone();
    let mut bayeux = Bayeux::handshake(&org).await;
    bayeux.subscribe("/data/ChangeEvents", -1).await;
    bayeux.connect().await;
    let after = org.control_call(Method::GET, "/stats", None).await["usage"]["used"].clone();
    assert_eq!(before, after);
}

#[tokio::test]
async fn push_topics_are_checked_when_created() {
    let org = start().await;
    let topic =
        |name: &str, query: &str| json!({ "Name": name, "Query": query, "ApiVersion": 62.0 });
    let cases = [
        (
            topic("ThisNameIsMuchTooLongForATopic", "SELECT Id FROM Account"),
            "STRING_TOO_LONG",
        ),
        (topic("Bad", "SELECT Id FROM"), "MALFORMED_QUERY"),
        (topic("NoId", "SELECT Name FROM Account"), "INVALID_FIELD"),
        (
            topic("Nope", "SELECT Id, Nope__c FROM Account"),
            "INVALID_FIELD",
        ),
        (
            topic("Parent", "SELECT Id, Owner.Name FROM Account"),
            "INVALID_FIELD",
        ),
        (
            topic("Limited", "SELECT Id FROM Account LIMIT 5"),
            "MALFORMED_QUERY",
        ),
        (
            json!({ "Name": "NoQuery", "ApiVersion": 62.0 }),
            "REQUIRED_FIELD_MISSING",
        ),
    ];
    for (body, code) in cases {
        let (status, _, answer) = org
            .call(Method::POST, "/sobjects/PushTopic", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(single_error(&answer).0, code, "{body}: {answer}");
    }
    let id = org
        .create(
            "PushTopic",
            topic("AcctSync", "SELECT Id, Name FROM Account"),
        )
        .await;
    assert!(id.starts_with("0IF"));
    let (status, _, answer) = org
        .call(
            Method::POST,
            "/sobjects/PushTopic",
            Some(topic("acctsync", "SELECT Id FROM Account")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(single_error(&answer).0, "DUPLICATE_VALUE");
    let (status, _, answer) = org
        .call(
            Method::PATCH,
            &format!("/sobjects/PushTopic/{id}"),
            Some(json!({ "Query": "SELECT Name FROM Account" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let listed = org
        .query("SELECT Name, IsActive, NotifyForFields, NotifyForOperationUndelete FROM PushTopic")
        .await;
    let record = &listed["records"][0];
    assert_eq!(record["Name"], "AcctSync");
    assert_eq!(record["IsActive"], true);
    assert_eq!(record["NotifyForFields"], "Referenced");
    assert_eq!(record["NotifyForOperationUndelete"], true);
}

#[tokio::test]
async fn push_topic_events_follow_the_query_and_notify_settings() {
    let org = start().await;
    org.create(
        "PushTopic",
        json!({ "Name": "EnergyAccounts", "ApiVersion": 62.0,
                "Query": "SELECT Id, Name, Industry FROM Account WHERE Industry = 'Energy'",
                "NotifyForOperationDelete": false }),
    )
    .await;
    org.create(
        "PushTopic",
        json!({ "Name": "AllAccounts", "ApiVersion": 62.0, "NotifyForFields": "All",
                "Query": "SELECT Id, Name FROM Account" }),
    )
    .await;
    let mut energy = Bayeux::handshake(&org).await;
    let reply = energy.subscribe("/topic/EnergyAccounts", -1).await;
    assert_eq!(reply["successful"], true, "{reply}");
    let mut all = Bayeux::handshake(&org).await;
    all.subscribe("/topic/AllAccounts", -1).await;

    let oil = org
        .create("Account", json!({ "Name": "Oil", "Industry": "Energy" }))
        .await;
    org.create("Account", json!({ "Name": "Bank", "Industry": "Banking" }))
        .await;
    let path = format!("/sobjects/Account/{oil}");
    // Phone is not referenced by the topic: no event for it.
    org.call(Method::PATCH, &path, Some(json!({ "Phone": "555" })))
        .await;
    org.call(Method::PATCH, &path, Some(json!({ "Name": "Oil Co" })))
        .await;
    org.call(Method::DELETE, &path, None).await;
    org.control_call(Method::POST, "/undelete", Some(json!({ "ids": [oil] })))
        .await;

    let events = energy.events(3).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["data"]["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "updated", "undeleted"], "{events:?}");
    assert_eq!(events[0]["channel"], "/topic/EnergyAccounts");
    assert_eq!(
        events[0]["data"]["sobject"],
        json!({ "Id": oil, "Name": "Oil", "Industry": "Energy" })
    );
    assert_eq!(events[1]["data"]["sobject"]["Name"], "Oil Co");
    let created = events[0]["data"]["event"]["createdDate"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");
    assert!(events[0]["data"]["event"]["replayId"].as_i64().unwrap() > 0);

    let events = all.events(6).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["data"]["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "created",
            "created",
            "updated",
            "updated",
            "deleted",
            "undeleted"
        ]
    );
    assert_eq!(events[4]["data"]["sobject"], json!({ "Id": oil }));
}

/// Where the Tooling API creates channel members.
const MEMBERS_PATH: &str = "/tooling/sobjects/PlatformEventChannelMember";

/// A member of the `ChangeEvents` channel selecting `entity` (`AccountChangeEvent`).
fn member(entity: &str) -> Value {
    json!({ "FullName": format!("ChangeEvents_{entity}"),
            "Metadata": { "eventChannel": "ChangeEvents", "selectedEntity": entity } })
}

#[tokio::test]
async fn tooling_channel_members_select_objects_for_change_data_capture() {
    let org = start().await;
    let path = MEMBERS_PATH;
    let (status, _, created) = org
        .call(Method::POST, path, Some(member("AccountChangeEvent")))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["success"], true);
    let member_id = created["id"].as_str().unwrap().to_owned();
    let (status, _, _) = org
        .call(Method::POST, path, Some(member("Invoice__ChangeEvent")))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, refused) = org
        .call(Method::POST, path, Some(member("NoSuchChangeEvent")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(single_error(&refused).0, "FIELD_INTEGRITY_EXCEPTION");

    let listed = org
        .get(&format!(
            "/tooling/query?q={}",
            crate::support::urlencode(
                "SELECT Id, FullName, SelectedEntity FROM PlatformEventChannelMember"
            )
        ))
        .await;
    let entities: Vec<&str> = listed["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["SelectedEntity"].as_str().unwrap())
        .collect();
    assert_eq!(entities, ["AccountChangeEvent", "Invoice__ChangeEvent"]);
    assert_eq!(
        listed["records"][0]["FullName"],
        "ChangeEvents_AccountChangeEvent"
    );
    let cdc = org.control_call(Method::GET, "/events/cdc", None).await;
    assert_eq!(
        cdc,
        json!({ "entities": ["Account", "Invoice__c"], "allocation": 5 })
    );

    let mut bayeux = Bayeux::handshake(&org).await;
    bayeux.subscribe("/data/AccountChangeEvent", -1).await;
    org.create("Account", json!({ "Name": "Selected" })).await;
    assert_eq!(bayeux.events(1).await.len(), 1);

    let (status, _, _) = org
        .call(Method::DELETE, &format!("{path}/{member_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let cdc = org.control_call(Method::GET, "/events/cdc", None).await;
    assert_eq!(cdc, json!({ "entities": ["Invoice__c"], "allocation": 5 }));
    org.create("Account", json!({ "Name": "Not selected" }))
        .await;
    let answer = bayeux.connect().await;
    assert_eq!(answer.len(), 1, "no event once deselected: {answer:?}");
}

#[tokio::test]
async fn a_selection_beyond_the_cdc_allocation_is_refused_until_the_allocation_grows() {
    let org = start().await;
    let path = MEMBERS_PATH;
    for entity in [
        "AccountChangeEvent",
        "ContactChangeEvent",
        "LeadChangeEvent",
        "OpportunityChangeEvent",
        "CaseChangeEvent",
    ] {
        let (status, _, body) = org.call(Method::POST, path, Some(member(entity))).await;
        assert_eq!(status, StatusCode::CREATED, "{entity}: {body}");
    }
    // Five entities in every edition without the add-on.
    let (status, _, refused) = org
        .call(Method::POST, path, Some(member("Invoice__ChangeEvent")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (code, message) = single_error(&refused);
    assert_eq!(code, "LIMIT_EXCEEDED");
    assert!(message.contains("allocation of 5"), "{message}");
    org.create("Invoice__c", crate::support::invoice("INV-NOT-SELECTED"))
        .await;
    let cdc = org.control_call(Method::GET, "/events/cdc", None).await;
    assert_eq!(cdc["entities"].as_array().unwrap().len(), 5);

    // The add-on lifts the limit.
    org.control_call(
        Method::PUT,
        "/events/cdc/allocation",
        Some(json!({ "entities": null })),
    )
    .await;
    let (status, _, body) = org
        .call(Method::POST, path, Some(member("Invoice__ChangeEvent")))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let cdc = org.control_call(Method::GET, "/events/cdc", None).await;
    assert_eq!(cdc["allocation"], Value::Null);
    assert_eq!(cdc["entities"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn delivery_faults_drop_double_and_gap_events() {
    let org = start().await;
    select_cdc(&org, &["Account"]).await;
    let mut bayeux = Bayeux::handshake(&org).await;
    bayeux.subscribe("/data/AccountChangeEvent", -1).await;
    let set_faults = |faults: Value| org.control_call(Method::PUT, "/faults", Some(faults));

    set_faults(json!({ "eventDropRate": 1.0 })).await;
    org.create("Account", json!({ "Name": "Dropped" })).await;
    let answer = bayeux.connect().await;
    assert_eq!(answer.len(), 1, "dropped: {answer:?}");

    set_faults(json!({ "eventDuplicateRate": 1.0 })).await;
    org.create("Account", json!({ "Name": "Twice" })).await;
    let events = bayeux.events(2).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0], events[1]);

    set_faults(json!({ "eventGapRate": 1.0 })).await;
    org.create("Account", json!({ "Name": "Gap" })).await;
    let events = bayeux.events(1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(header(&events[0])["changeType"], "GAP_CREATE");
    assert_eq!(body_fields(&events[0]), Vec::<String>::new());
    assert_eq!(header(&events[0])["recordIds"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_stream_cut_drops_the_held_connect() {
    let org = start_with(EmulatorConfig {
        cometd_timeout: Duration::from_secs(3),
        ..config()
    })
    .await;
    let mut bayeux = Bayeux::handshake(&org).await;
    bayeux.subscribe("/data/ChangeEvents", -1).await;
    let request = org
        .http
        .post(format!("{}/cometd/{VERSION}", org.base))
        .header("Authorization", format!("OAuth {}", org.token))
        .header(
            "Cookie",
            format!("BAYEUX_BROWSER={}", bayeux.cookie.clone().unwrap()),
        )
        .json(
            &json!([{ "channel": "/meta/connect", "clientId": bayeux.client_id,
                        "connectionType": "long-polling" }]),
        )
        .send();
    let held = tokio::spawn(request);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished());
    org.control_call(Method::POST, "/events/cut", None).await;
    let outcome = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("the cut ends the connect at once")
        .unwrap();
    assert!(outcome.is_err(), "the connection is dropped: {outcome:?}");
    let answer = bayeux.connect().await;
    assert_eq!(answer[0]["successful"], true, "the client survives a cut");
}

#[tokio::test]
async fn a_client_that_does_not_come_back_in_time_is_forgotten() {
    let org = start_with(EmulatorConfig {
        cometd_client_expiry: Duration::from_millis(500),
        cometd_timeout: Duration::from_secs(1),
        ..config()
    })
    .await;
    let mut bayeux = Bayeux::handshake(&org).await;
    bayeux.subscribe("/data/ChangeEvents", -1).await;
    bayeux.connect().await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    let answer = bayeux.connect().await;
    assert_eq!(answer[0]["error"], "403::Unknown client");
    assert_eq!(answer[0]["advice"]["reconnect"], "handshake");
}

#[tokio::test]
async fn revoked_credentials_are_refused_with_401_and_handshake_denied() {
    let org = start().await;
    let mut bayeux = Bayeux::handshake(&org).await;
    org.control_call(Method::POST, "/credentials/revoke", None)
        .await;
    let answer = bayeux.connect().await;
    assert_eq!(answer[0]["successful"], false);
    assert_eq!(answer[0]["error"], "401::Authentication invalid");
    assert_eq!(answer[0]["advice"]["reconnect"], "none");
    let (_, body) = bayeux
        .post(
            "",
            json!([{ "channel": "/meta/handshake", "version": "1.0" }]),
        )
        .await;
    assert_eq!(body[0]["successful"], false);
    assert_eq!(body[0]["error"], "403::Handshake denied");
    assert_eq!(
        body[0]["ext"]["sfdc"]["failureReason"],
        "401::Authentication invalid"
    );
    let anonymous = org
        .http
        .post(format!("{}/cometd/{VERSION}", org.base))
        .json(&json!([{ "channel": "/meta/handshake", "version": "1.0" }]))
        .send()
        .await
        .unwrap();
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(
        body[0]["ext"]["sfdc"]["failureReason"],
        "401::Request requires authentication"
    );
}

#[tokio::test]
async fn one_connect_finds_a_quiet_channels_event_behind_many_others() {
    let org = start().await;
    select_cdc(&org, &["Account", "Contact"]).await;
    org.seed(json!({ "Contact": 2500 })).await;
    org.create("Account", json!({ "Name": "Quiet" })).await;
    let mut bayeux = Bayeux::handshake(&org).await;
    let reply = bayeux.subscribe("/data/AccountChangeEvent", -2).await;
    assert_eq!(reply["successful"], true);
    let answer = bayeux.connect().await;
    assert_eq!(answer.len(), 2, "the Account event and the connect reply");
    assert_eq!(header(&answer[0])["entityName"], "Account");
}

#[tokio::test]
async fn change_events_nest_compound_fields_and_leave_out_formula_fields() {
    let org = start().await;
    select_cdc(&org, &["Account", "Contact", "Opportunity"]).await;
    let mut all = Bayeux::handshake(&org).await;
    all.subscribe("/data/ChangeEvents", -1).await;

    let account = org
        .create(
            "Account",
            json!({ "Name": "Acme", "BillingCity": "Lyon", "BillingCountry": "France" }),
        )
        .await;
    let (status, _, _) = org
        .call(
            Method::PATCH,
            &format!("/sobjects/Account/{account}"),
            Some(json!({ "BillingCity": "Paris", "BillingCountry": null })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let contact = org
        .create(
            "Contact",
            json!({ "FirstName": "Ada", "LastName": "Lovelace", "MailingCity": "London" }),
        )
        .await;
    let (status, _, _) = org
        .call(
            Method::PATCH,
            &format!("/sobjects/Contact/{contact}"),
            Some(json!({ "LastName": "King" })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    org.create(
        "Opportunity",
        json!({ "Name": "Deal", "StageName": "Prospecting", "CloseDate": "2030-01-01",
                "Amount": 100, "Probability": 10 }),
    )
    .await;

    let events = all.events(5).await;
    let payload = |i: usize| &events[i]["data"]["payload"];
    let account_created = body_fields(&events[0]);
    assert!(account_created.contains(&"BillingAddress".to_owned()));
    for flat in ["BillingCity", "BillingCountry", "ShippingAddress"] {
        assert!(
            !account_created.contains(&flat.to_owned()),
            "{flat} in {account_created:?}"
        );
    }
    assert_eq!(
        payload(0)["BillingAddress"],
        json!({ "City": "Lyon", "Country": "France" }),
        "only the components that have a value"
    );

    assert_eq!(
        header(&events[1])["changedFields"],
        json!([
            "BillingAddress.City",
            "BillingAddress.Country",
            "LastModifiedDate"
        ])
    );
    assert_eq!(
        header(&events[1])["nulledFields"],
        json!(["BillingAddress.Country"])
    );
    assert_eq!(
        payload(1)["BillingAddress"],
        json!({ "City": "Paris", "Country": null })
    );
    assert_eq!(
        body_fields(&events[1]),
        ["BillingAddress", "LastModifiedDate"]
    );

    let contact_created = body_fields(&events[2]);
    for flat in ["FirstName", "LastName", "MailingCity"] {
        assert!(
            !contact_created.contains(&flat.to_owned()),
            "{flat} in {contact_created:?}"
        );
    }
    assert_eq!(
        payload(2)["Name"],
        json!({ "FirstName": "Ada", "LastName": "Lovelace" }),
        "Name is the compound, not the full-name text"
    );
    assert_eq!(payload(2)["MailingAddress"], json!({ "City": "London" }));
    assert_eq!(
        header(&events[3])["changedFields"],
        json!(["Name.LastName", "LastModifiedDate"])
    );
    assert_eq!(payload(3)["Name"], json!({ "LastName": "King" }));

    let opportunity = body_fields(&events[4]);
    assert!(opportunity.contains(&"Amount".to_owned()));
    let deal = header(&events[4])["recordIds"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let stored = org.get(&format!("/sobjects/Opportunity/{deal}")).await;
    assert_eq!(
        stored["ExpectedRevenue"], 10.0,
        "the org computes the formula"
    );
    assert!(
        !opportunity.contains(&"ExpectedRevenue".to_owned()),
        "formula fields are not in change events: {opportunity:?}"
    );
}
