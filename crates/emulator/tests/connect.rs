//! Salesforce Connect: External Data Sources of type OData 4.0, Validate and Sync, and SOQL on
//! external objects answered by callouts to an OData producer, with the exact request shapes.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::odata_producer::{Behaviour, LINES, ORDERS, Producer};
use crate::support::{Org, single_error, urlencode};

const USER: &str = "connect";
const PASSWORD: &str = "s3cret";
const ORDERS_X: &str = "public_purchase_orders__x";

/// An org, a producer with `rows` orders, and a source `Archive` over it (with `settings`
/// merged in) synced with both tables.
async fn setup(rows: usize, settings: Value) -> (Org, Producer) {
    let org = Org::start().await;
    let producer = Producer::start(rows, USER, PASSWORD).await;
    let mut body = json!({
        "name": "Archive",
        "endpoint": producer.root,
        "username": USER,
        "password": PASSWORD,
    });
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, settings) {
        body.extend(extra);
    }
    let created = org
        .control_call(Method::POST, "/external-data-sources", Some(body))
        .await;
    assert_eq!(created["name"], "Archive", "{created}");
    let synced = org
        .control_call(
            Method::POST,
            "/external-data-sources/Archive/sync",
            Some(json!({ "tables": [ORDERS, LINES] })),
        )
        .await;
    assert_eq!(synced["externalObjects"][0]["name"], ORDERS_X, "{synced}");
    (org, producer)
}

/// The URLs of the source's logged callouts.
async fn callout_urls(org: &Org) -> Vec<String> {
    let log = org
        .control_call(Method::GET, "/external-data-sources/Archive/callouts", None)
        .await;
    log["callouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["url"].as_str().unwrap().to_owned())
        .collect()
}

/// The last logged callout's URL, with the service root cut off.
async fn last_request(org: &Org, producer: &Producer) -> String {
    let urls = callout_urls(org).await;
    let last = urls.last().expect("a callout was made").clone();
    last.strip_prefix(&producer.root)
        .unwrap_or_else(|| panic!("{last} is under {}", producer.root))
        .to_owned()
}

/// Runs a query and expects an error; returns `(errorCode, message)`.
async fn query_error(org: &Org, soql: &str) -> (StatusCode, String, String) {
    let (status, _, body) = org
        .call(Method::GET, &format!("/query?q={}", urlencode(soql)), None)
        .await;
    let (code, message) = single_error(&body);
    (status, code, message)
}

#[tokio::test]
async fn sync_creates_external_objects_with_fields_mapped_from_the_metadata() {
    let (org, producer) = setup(3, json!({})).await;
    let describe = org.get(&format!("/sobjects/{ORDERS_X}/describe")).await;
    assert_eq!(describe["name"], ORDERS_X);
    assert_eq!(describe["custom"], true);
    assert_eq!(describe["queryable"], true);
    assert_eq!(describe["createable"], false);
    assert_eq!(describe["updateable"], false);
    let field = |name: &str| -> Value {
        describe["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("field {name} in {describe}"))
            .clone()
    };
    let external_id = field("ExternalId");
    assert_eq!(external_id["externalId"], true);
    assert_eq!(external_id["nillable"], false);
    assert_eq!(field("DisplayUrl")["type"], "url");
    let shape = |name: &str| {
        let f = field(name);
        (
            f["type"].as_str().unwrap().to_owned(),
            f["length"].as_u64().unwrap(),
            f["precision"].as_u64().unwrap(),
            f["scale"].as_u64().unwrap(),
        )
    };
    assert_eq!(shape("id__c"), ("double".to_owned(), 0, 18, 0));
    assert_eq!(shape("title__c"), ("string".to_owned(), 80, 0, 0));
    assert_eq!(shape("notes__c"), ("string".to_owned(), 128, 0, 0));
    assert_eq!(shape("body__c"), ("textarea".to_owned(), 4000, 0, 0));
    assert_eq!(shape("amount__c"), ("double".to_owned(), 0, 12, 2));
    assert_eq!(shape("ordered_on__c").0, "datetime");
    assert_eq!(shape("shipped_at__c").0, "datetime");
    assert_eq!(shape("paid__c").0, "boolean");
    assert_eq!(shape("ref__c"), ("string".to_owned(), 36, 0, 0));
    assert_eq!(shape("scan__c"), ("textarea".to_owned(), 255, 0, 0));
    assert!(
        describe["fields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["name"] != "opens_at__c"),
        "Edm.TimeOfDay is not mapped"
    );
    assert_eq!(field("id__c")["nillable"], false);
    assert_eq!(field("title__c")["nillable"], true);

    let global = org.get("/sobjects").await;
    let entry = global["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == ORDERS_X)
        .expect("the external object is listed")
        .clone();
    assert_eq!(entry["custom"], true);
    assert!(entry["keyPrefix"].as_str().unwrap().starts_with('x'));
    assert!(
        global["sobjects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["name"] == "public_order_lines__x")
    );

    // Validate and Sync read $metadata with the source's Basic credentials.
    let received = producer.received();
    assert_eq!(received[0].uri, "/odata/v4/svc/$metadata");
    assert_eq!(
        received[0].authorization.as_deref(),
        Some("Basic Y29ubmVjdDpzM2NyZXQ=")
    );
}

#[tokio::test]
async fn a_soql_query_becomes_the_adapters_odata_request_and_records_come_back_converted() {
    let (org, producer) = setup(30, json!({})).await;
    let result = org
        .query(&format!(
            "SELECT title__c, amount__c, ordered_on__c, shipped_at__c, paid__c, notes__c \
             FROM {ORDERS_X} WHERE title__c = 'Order 3' ORDER BY amount__c DESC LIMIT 26"
        ))
        .await;
    assert_eq!(
        last_request(&org, &producer).await,
        "public$purchase_orders?$select=amount,id,notes,ordered_on,paid,shipped_at,title\
         &$count=true&$filter=title%20eq%20%27Order%203%27&$orderby=amount%20desc&$top=26"
    );
    assert_eq!(result["totalSize"], 1);
    assert_eq!(result["done"], true);
    let record = &result["records"][0];
    assert_eq!(record["attributes"]["type"], ORDERS_X);
    // ID mapping (on by default) gives the record a Salesforce Id for its URL.
    let url = record["attributes"]["url"].as_str().unwrap();
    let prefix = format!("/services/data/v62.0/sobjects/{ORDERS_X}/x");
    assert!(
        url.starts_with(&prefix) && url.len() == prefix.len() + 17,
        "{url}"
    );
    assert_eq!(record["title__c"], "Order 3");
    assert_eq!(record["amount__c"], 31.5);
    assert_eq!(record["ordered_on__c"], "2024-01-04T00:00:00.000+0000");
    assert_eq!(record["shipped_at__c"], "2024-02-01T10:30:00.000+0000");
    assert_eq!(record["paid__c"], true);
    assert_eq!(record["notes__c"], "note 3");
    // The data request carried the Basic credentials too.
    let last = producer.received().pop().unwrap();
    assert_eq!(
        last.authorization.as_deref(),
        Some("Basic Y29ubmVjdDpzM2NyZXQ=")
    );
}

#[tokio::test]
async fn a_limit_above_202_asks_for_202_rows_and_query_more_skips_past_them() {
    let (org, producer) = setup(600, json!({})).await;
    let first = org
        .query(&format!("SELECT ExternalId FROM {ORDERS_X} LIMIT 500"))
        .await;
    assert_eq!(first["totalSize"], 500);
    assert_eq!(first["done"], false);
    assert_eq!(first["records"].as_array().unwrap().len(), 202);
    assert_eq!(first["records"][0]["ExternalId"], "1");
    let second = org
        .call_url(
            Method::GET,
            &format!("{}{}", org.base, first["nextRecordsUrl"].as_str().unwrap()),
            None,
        )
        .await
        .2;
    assert_eq!(second["records"].as_array().unwrap().len(), 202);
    assert_eq!(second["records"][0]["ExternalId"], "203");
    let third = org
        .call_url(
            Method::GET,
            &format!("{}{}", org.base, second["nextRecordsUrl"].as_str().unwrap()),
            None,
        )
        .await
        .2;
    assert_eq!(third["records"].as_array().unwrap().len(), 96);
    assert_eq!(third["records"][95]["ExternalId"], "500");
    assert_eq!(third["done"], true);
    assert!(third.get("nextRecordsUrl").is_none());
    assert_eq!(
        producer.data_uris(),
        vec![
            "/odata/v4/svc/public$purchase_orders?$select=id&$count=true&$top=202",
            "/odata/v4/svc/public$purchase_orders?$select=id&$count=true&$top=202&$skip=202",
            "/odata/v4/svc/public$purchase_orders?$select=id&$count=true&$top=96&$skip=404",
        ]
    );
    // A used continuation cannot be replayed.
    let (status, _, body) = org
        .call_url(
            Method::GET,
            &format!("{}{}", org.base, first["nextRecordsUrl"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(single_error(&body).0, "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn without_row_counts_the_adapter_sends_count_false_and_asks_full_pages() {
    let (org, producer) = setup(2100, json!({ "inlineCountEnabled": false })).await;
    let first = org
        .query(&format!("SELECT title__c FROM {ORDERS_X} OFFSET 10"))
        .await;
    assert_eq!(
        last_request(&org, &producer).await,
        "public$purchase_orders?$select=id,title&$count=false&$top=2000&$skip=10"
    );
    assert_eq!(first["records"].as_array().unwrap().len(), 2000);
    assert_eq!(first["done"], false);
    let rest = org
        .call_url(
            Method::GET,
            &format!("{}{}", org.base, first["nextRecordsUrl"].as_str().unwrap()),
            None,
        )
        .await
        .2;
    assert_eq!(rest["records"].as_array().unwrap().len(), 90);
    assert_eq!(rest["done"], true);
    assert_eq!(
        last_request(&org, &producer).await,
        "public$purchase_orders?$select=id,title&$count=false&$top=2000&$skip=2010"
    );
    let small = org
        .query(&format!("SELECT title__c FROM {ORDERS_X} LIMIT 5"))
        .await;
    assert_eq!(small["records"].as_array().unwrap().len(), 5);
    assert!(
        last_request(&org, &producer)
            .await
            .ends_with("&$count=false&$top=5")
    );

    // COUNT() needs Request Row Counts.
    let calls_before = producer.received().len();
    let (status, code, message) =
        query_error(&org, &format!("SELECT COUNT() FROM {ORDERS_X}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code, "EXTERNAL_OBJECT_UNSUPPORTED_EXCEPTION");
    assert!(
        message.contains("Request Row Counts") && message.contains("Archive"),
        "{message}"
    );
    assert_eq!(
        producer.received().len(),
        calls_before,
        "no callout for a refused COUNT()"
    );
}

#[tokio::test]
async fn count_asks_for_the_row_count_alone() {
    let (org, producer) = setup(30, json!({})).await;
    let result = org
        .query(&format!(
            "SELECT COUNT() FROM {ORDERS_X} WHERE paid__c = true"
        ))
        .await;
    assert_eq!(result["totalSize"], 10);
    assert_eq!(result["records"], json!([]));
    assert_eq!(
        last_request(&org, &producer).await,
        "public$purchase_orders?$select=id&$count=true&$filter=paid%20eq%20true&$top=0"
    );
    let limited = org
        .query(&format!("SELECT COUNT() FROM {ORDERS_X} LIMIT 4"))
        .await;
    assert_eq!(limited["totalSize"], 4);
}

#[tokio::test]
async fn in_like_null_and_date_conditions_become_odata_filters() {
    let (org, producer) = setup(5, json!({})).await;
    // The producer does not evaluate these filters: the request is what is checked (quotes
    // are written `'` below and go on the wire as `%27`).
    let cases = [
        (
            "id__c IN (1, 2, 3)",
            "(id%20eq%201%20or%20id%20eq%202%20or%20id%20eq%203)",
        ),
        (
            "title__c LIKE 'Ord%'",
            "startswith(title,'Ord')%20eq%20true",
        ),
        (
            "title__c LIKE '%der 1'",
            "endswith(title,'der%201')%20eq%20true",
        ),
        ("title__c LIKE '%der%'", "contains(title,'der')%20eq%20true"),
        ("notes__c = null", "notes%20eq%20null"),
        (
            "notes__c != null AND paid__c = false",
            "notes%20ne%20null%20and%20paid%20eq%20false",
        ),
        (
            "ordered_on__c >= 2024-01-02T00:00:00Z AND shipped_at__c < 2024-03-01T08:00:00Z",
            "ordered_on%20ge%202024-01-02%20and%20shipped_at%20lt%202024-03-01T08:00:00Z",
        ),
        (
            "(title__c = 'O\\'Neil' OR amount__c > 10.5) AND NOT paid__c = true",
            "(title%20eq%20'O''Neil'%20or%20amount%20gt%2010.5)%20and%20not%20(paid%20eq%20true)",
        ),
        (
            "ref__c = '1b4e28ba-2fa1-11d2-883f-0016d3cca427'",
            "ref%20eq%201b4e28ba-2fa1-11d2-883f-0016d3cca427",
        ),
    ];
    for (condition, filter) in cases {
        let filter = filter.replace('\'', "%27");
        org.query(&format!(
            "SELECT title__c FROM {ORDERS_X} WHERE {condition}"
        ))
        .await;
        assert_eq!(
            last_request(&org, &producer).await,
            format!(
                "public$purchase_orders?$select=id,title&$count=true&$filter={filter}&$top=202"
            ),
            "WHERE {condition}"
        );
    }
}

#[tokio::test]
async fn server_driven_paging_follows_the_producers_next_links() {
    let (org, producer) = setup(250, json!({ "pagination": "SERVER" })).await;
    producer.set(Behaviour {
        page_size: Some(100),
        ..Behaviour::default()
    });
    let first = org.query(&format!("SELECT title__c FROM {ORDERS_X}")).await;
    assert_eq!(first["totalSize"], 250);
    assert_eq!(first["records"].as_array().unwrap().len(), 100);
    let second = org
        .call_url(
            Method::GET,
            &format!("{}{}", org.base, first["nextRecordsUrl"].as_str().unwrap()),
            None,
        )
        .await
        .2;
    assert_eq!(second["records"][0]["title__c"], "Order 101");
    let third = org
        .call_url(
            Method::GET,
            &format!("{}{}", org.base, second["nextRecordsUrl"].as_str().unwrap()),
            None,
        )
        .await
        .2;
    assert_eq!(third["records"].as_array().unwrap().len(), 50);
    assert_eq!(third["records"][49]["title__c"], "Order 250");
    assert_eq!(third["done"], true);
    assert_eq!(
        producer.data_uris(),
        vec![
            "/odata/v4/svc/public$purchase_orders?$select=id,title&$count=true",
            "/odata/v4/svc/public$purchase_orders?$select=id,title&$count=true&$skiptoken=100",
            "/odata/v4/svc/public$purchase_orders?$select=id,title&$count=true&$skiptoken=200",
        ]
    );
    // The callout log holds each page's full URL and row count.
    let log = org
        .control_call(Method::GET, "/external-data-sources/Archive/callouts", None)
        .await;
    let pages: Vec<(u64, u64)> = log["callouts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["url"].as_str().unwrap().ends_with("$metadata"))
        .map(|c| (c["status"].as_u64().unwrap(), c["rows"].as_u64().unwrap()))
        .collect();
    assert_eq!(pages, vec![(200, 100), (200, 100), (200, 50)]);
}

#[tokio::test]
async fn producer_failures_become_salesforce_errors_naming_the_source() {
    let (org, producer) = setup(3, json!({ "timeout": 1 })).await;
    let soql = format!("SELECT title__c FROM {ORDERS_X}");

    producer.set(Behaviour {
        fail: Some((
            reqwest::StatusCode::INTERNAL_SERVER_ERROR,
            "relation does not exist".to_owned(),
        )),
        ..Behaviour::default()
    });
    let (status, code, message) = query_error(&org, &soql).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code, "EXTERNAL_OBJECT_EXCEPTION");
    assert!(
        message.contains("Archive")
            && message.contains("500")
            && message.contains("relation does not exist"),
        "{message}"
    );

    producer.set(Behaviour {
        delay: Some(Duration::from_secs(3)),
        ..Behaviour::default()
    });
    let (_, code, message) = query_error(&org, &soql).await;
    assert_eq!(code, "EXTERNAL_OBJECT_CONNECTION_EXCEPTION");
    assert!(
        message.contains("Archive") && message.contains("timeout"),
        "{message}"
    );

    producer.set(Behaviour::default());
    org.control_call(
        Method::POST,
        "/external-data-sources",
        Some(json!({
            "name": "Archive", "endpoint": producer.root,
            "username": USER, "password": "wrong",
        })),
    )
    .await;
    let (_, code, message) = query_error(&org, &soql).await;
    assert_eq!(code, "EXTERNAL_OBJECT_AUTHENTICATION_EXCEPTION");
    assert!(
        message.contains("Archive") && message.contains("401"),
        "{message}"
    );

    let log = org
        .control_call(Method::GET, "/external-data-sources/Archive/callouts", None)
        .await;
    let statuses: Vec<Value> = log["callouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].clone())
        .collect();
    assert_eq!(statuses[1..], [json!(500), Value::Null, json!(401)]);
}

#[tokio::test]
async fn validate_and_sync_errors_are_clear() {
    let org = Org::start().await;
    let producer = Producer::start(1, USER, PASSWORD).await;
    let create = |name: &str, endpoint: &str, password: &str| json!({ "name": name, "endpoint": endpoint, "username": USER, "password": password });
    let sync = |name: &str| format!("/external-data-sources/{name}/sync");
    let response = org
        .http
        .post(org.control("/external-data-sources"))
        .json(&json!({ "name": "Bad", "endpoint": producer.root, "timeout": 300 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("timeout 300"));

    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let unreachable = format!("http://{}/odata/", closed.local_addr().unwrap());
    drop(closed);
    let cases = [
        (
            create("Gone", &unreachable, PASSWORD),
            "could not be reached",
        ),
        (create("Locked", &producer.root, "nope"), "401"),
    ];
    for (source, expected) in cases {
        let name = source["name"].as_str().unwrap().to_owned();
        org.control_call(Method::POST, "/external-data-sources", Some(source))
            .await;
        let response = org
            .http
            .post(org.control(&sync(&name)))
            .json(&json!({ "tables": [ORDERS] }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{name}");
        let body: Value = response.json().await.unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(&name) && message.contains(expected),
            "{message}"
        );
    }

    org.control_call(
        Method::POST,
        "/external-data-sources",
        Some(create("Html", &producer.root, PASSWORD)),
    )
    .await;
    producer.set(Behaviour {
        metadata_body: Some("<html><body>Sign in</body></html>".to_owned()),
        ..Behaviour::default()
    });
    let response = org
        .http
        .post(org.control(&sync("Html")))
        .json(&json!({ "tables": [ORDERS] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not a CSDL document"),
        "{body}"
    );

    producer.set(Behaviour::default());
    let response = org
        .http
        .post(org.control(&sync("Html")))
        .json(&json!({ "tables": ["public$nope"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("public$nope"));
}

#[tokio::test]
async fn a_record_is_read_by_its_external_id() {
    let (org, producer) = setup(10, json!({})).await;
    let record = org.get(&format!("/sobjects/{ORDERS_X}/7")).await;
    assert_eq!(record["ExternalId"], "7");
    assert_eq!(record["title__c"], "Order 7");
    assert_eq!(
        record["DisplayUrl"],
        format!("{}public$purchase_orders(7)", producer.root)
    );
    assert_eq!(
        last_request(&org, &producer).await,
        "public$purchase_orders?$select=amount,body,id,notes,ordered_on,paid,ref,scan,shipped_at,title\
         &$filter=id%20eq%207&$top=1"
    );
    let (status, _, body) = org
        .call(Method::GET, &format!("/sobjects/{ORDERS_X}/70"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(single_error(&body).0, "NOT_FOUND");

    // The key-predicate reading, as a setting.
    org.control_call(
        Method::POST,
        "/external-data-sources",
        Some(json!({
            "name": "Archive", "endpoint": producer.root, "username": USER,
            "password": PASSWORD, "keyRead": "KEY_PREDICATE",
        })),
    )
    .await;
    let record = org
        .get(&format!("/sobjects/{ORDERS_X}/7?fields=title__c"))
        .await;
    assert_eq!(record["title__c"], "Order 7");
    assert!(record.get("amount__c").is_none());
    assert_eq!(
        last_request(&org, &producer).await,
        "public$purchase_orders(7)?$select=id,title"
    );
    let (status, _, _) = org
        .call(Method::GET, &format!("/sobjects/{ORDERS_X}/70"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn composite_keys_give_a_key_predicate_external_id() {
    let (org, producer) = setup(1, json!({})).await;
    let result = org
        .query("SELECT ExternalId, sku__c FROM public_order_lines__x WHERE ExternalId = 'order_id=1,line=2'")
        .await;
    assert_eq!(
        last_request(&org, &producer).await,
        "public$order_lines?$select=line,order_id,sku&$count=true\
         &$filter=order_id%20eq%201%20and%20line%20eq%202&$top=202"
    );
    assert_eq!(result["records"][0]["ExternalId"], "order_id=1,line=2");
    assert_eq!(result["records"][0]["sku__c"], "B'2");
}

#[tokio::test]
async fn unsupported_soql_and_writes_on_external_objects_are_refused() {
    let (org, producer) = setup(1, json!({})).await;
    let before = producer.received().len();
    let (_, code, _) = query_error(&org, &format!("SELECT COUNT(id__c) FROM {ORDERS_X}")).await;
    assert_eq!(code, "MALFORMED_QUERY");
    let (_, code, _) = query_error(
        &org,
        &format!("SELECT title__c FROM {ORDERS_X} GROUP BY title__c"),
    )
    .await;
    assert_eq!(code, "MALFORMED_QUERY");
    let (_, code, message) = query_error(&org, &format!("SELECT Owner.Name FROM {ORDERS_X}")).await;
    assert_eq!(code, "EXTERNAL_OBJECT_UNSUPPORTED_EXCEPTION");
    assert!(message.contains("relationship"), "{message}");
    let (_, code, message) = query_error(&org, &format!("SELECT Nope__c FROM {ORDERS_X}")).await;
    assert_eq!(code, "INVALID_FIELD");
    assert!(message.contains(ORDERS_X), "{message}");
    assert_eq!(
        producer.received().len(),
        before,
        "no callout for a refused query"
    );

    let (status, _, body) = org
        .call(
            Method::POST,
            &format!("/sobjects/{ORDERS_X}"),
            Some(json!({ "title__c": "new" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (code, message) = single_error(&body);
    assert_eq!(code, "EXTERNAL_OBJECT_UNSUPPORTED_EXCEPTION");
    assert!(message.contains("Writable External Objects"), "{message}");
    assert!(
        producer.received().iter().all(|r| r.method == "GET"),
        "no write reached the producer"
    );
}

#[tokio::test]
async fn writes_to_a_writable_source_become_odata_post_patch_and_delete() {
    let (org, producer) = setup(3, json!({ "writable": true })).await;
    let describe = org.get(&format!("/sobjects/{ORDERS_X}/describe")).await;
    assert_eq!(describe["createable"], true);
    assert_eq!(describe["updateable"], true);

    let (status, _, created) = org
        .call(
            Method::POST,
            &format!("/sobjects/{ORDERS_X}"),
            Some(json!({
                "ExternalId": "40",
                "title__c": "New order",
                "ordered_on__c": "2024-05-06T00:00:00.000+0000",
                "paid__c": false,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let new_id = created["id"].as_str().unwrap().to_owned();
    assert!(new_id.starts_with('x') && new_id.len() == 18, "{created}");
    assert_eq!(created["success"], true);
    let post = producer.received().pop().unwrap();
    assert_eq!(post.method, "POST");
    assert_eq!(post.uri, "/odata/v4/svc/public$purchase_orders");
    assert_eq!(
        post.body.unwrap(),
        json!({ "title": "New order", "ordered_on": "2024-05-06", "paid": false, "id": 40 })
    );
    let read = org.get(&format!("/sobjects/{ORDERS_X}/40")).await;
    assert_eq!(read["title__c"], "New order");
    assert_eq!(read["Id"], new_id.as_str());

    let (status, _, body) = org
        .call(
            Method::PATCH,
            &format!("/sobjects/{ORDERS_X}/40"),
            Some(json!({ "title__c": "Renamed", "amount__c": 12.5 })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let patch = producer.received().pop().unwrap();
    assert_eq!(
        (patch.method.as_str(), patch.uri.as_str()),
        ("PATCH", "/odata/v4/svc/public$purchase_orders(40)")
    );
    assert_eq!(
        patch.body.unwrap(),
        json!({ "title": "Renamed", "amount": 12.5 })
    );
    assert_eq!(
        org.get(&format!("/sobjects/{ORDERS_X}/40")).await["title__c"],
        "Renamed"
    );

    // The key cannot be changed.
    let (status, _, body) = org
        .call(
            Method::PATCH,
            &format!("/sobjects/{ORDERS_X}/40"),
            Some(json!({ "id__c": 41 })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(single_error(&body).0, "INVALID_FIELD_FOR_INSERT_UPDATE");

    let (status, _, _) = org
        .call(Method::DELETE, &format!("/sobjects/{ORDERS_X}/40"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let delete = producer.received().pop().unwrap();
    assert_eq!(
        (delete.method.as_str(), delete.uri.as_str()),
        ("DELETE", "/odata/v4/svc/public$purchase_orders(40)")
    );
    let (status, _, _) = org
        .call(Method::DELETE, &format!("/sobjects/{ORDERS_X}/40"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let log = org
        .control_call(Method::GET, "/external-data-sources/Archive/callouts", None)
        .await;
    let methods: Vec<&str> = log["callouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        ["GET", "POST", "GET", "PATCH", "GET", "DELETE", "DELETE"]
    );
}

#[tokio::test]
async fn deleting_a_source_removes_its_external_objects() {
    let (org, _producer) = setup(1, json!({})).await;
    let list = org
        .control_call(Method::GET, "/external-data-sources", None)
        .await;
    let source = &list["externalDataSources"][0];
    assert_eq!(source["name"], "Archive");
    assert_eq!(source["authentication"], "Password");
    assert!(source.get("password").is_none(), "{source}");
    assert_eq!(
        source["externalObjects"],
        json!(["public_order_lines__x", ORDERS_X])
    );
    let response = org
        .http
        .delete(org.control("/external-data-sources/Archive"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _, body) = org
        .call(Method::GET, &format!("/sobjects/{ORDERS_X}/describe"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn answers_over_8_mb_and_results_over_16_mb_are_refused() {
    let (org, producer) = setup(400, json!({ "pagination": "SERVER" })).await;
    let soql = format!("SELECT title__c FROM {ORDERS_X}");
    // One page of 200 rows of 45 kB: about 9 MB.
    producer.set(Behaviour {
        page_size: Some(200),
        filler: Some(45_000),
        ..Behaviour::default()
    });
    let (_, code, message) = query_error(&org, &soql).await;
    assert_eq!(code, "EXTERNAL_OBJECT_EXCEPTION");
    assert!(
        message.contains("Archive") && message.contains("too large") && message.contains("8 MB"),
        "{message}"
    );

    // Pages of about 5 MB: the fourth passes 16 MB for the query.
    producer.set(Behaviour {
        page_size: Some(100),
        filler: Some(50_000),
        ..Behaviour::default()
    });
    let mut page = org.query(&soql).await;
    for _ in 0..2 {
        let next = page["nextRecordsUrl"].as_str().unwrap().to_owned();
        page = org
            .call_url(Method::GET, &format!("{}{next}", org.base), None)
            .await
            .2;
        assert_eq!(page["records"].as_array().unwrap().len(), 100);
    }
    let next = page["nextRecordsUrl"].as_str().unwrap().to_owned();
    let (status, _, body) = org
        .call_url(Method::GET, &format!("{}{next}", org.base), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (code, message) = single_error(&body);
    assert_eq!(code, "EXTERNAL_OBJECT_EXCEPTION");
    assert!(message.contains("16 MB"), "{message}");
}

#[tokio::test]
async fn a_producer_behind_a_private_ca_is_reached_when_its_root_is_given() {
    let org = Org::start().await;
    // The emulator's own HTTPS listener stands in for a producer with a private CA: it is no
    // OData service, so a completed TLS handshake shows as its 404.
    let endpoint = format!("{}/odata/v4/none/", org.org.https_url);
    let sync_message = |name: &'static str| {
        let org = &org;
        async move {
            let response = org
                .http
                .post(org.control(&format!("/external-data-sources/{name}/sync")))
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
            let body: Value = response.json().await.unwrap();
            body["message"].as_str().unwrap().to_owned()
        }
    };
    org.control_call(
        Method::POST,
        "/external-data-sources",
        Some(json!({ "name": "Public", "endpoint": endpoint })),
    )
    .await;
    let message = sync_message("Public").await;
    assert!(message.contains("could not be reached"), "{message}");
    org.control_call(
        Method::POST,
        "/external-data-sources",
        Some(json!({ "name": "Private", "endpoint": endpoint, "caPem": org.org.ca_pem })),
    )
    .await;
    let message = sync_message("Private").await;
    assert!(
        message.contains("Private") && message.contains("404"),
        "{message}"
    );

    let response = org
        .http
        .post(org.control("/external-data-sources"))
        .json(&json!({ "name": "Bad", "endpoint": endpoint, "caPem": "not a certificate" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("caPem"));
}

#[tokio::test]
async fn id_mapping_gives_external_records_stable_salesforce_ids() {
    let (org, producer) = setup(5, json!({})).await;
    let soql = format!("SELECT Id, ExternalId FROM {ORDERS_X} ORDER BY ExternalId");
    let first = org.query(&soql).await;
    let again = org.query(&soql).await;
    assert_eq!(
        first["records"], again["records"],
        "the same records keep their Ids"
    );
    let id = first["records"][2]["Id"].as_str().unwrap().to_owned();
    assert_eq!(first["records"][2]["ExternalId"], "3");
    let prefix = org.get(&format!("/sobjects/{ORDERS_X}/describe")).await["keyPrefix"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        id.starts_with(&prefix),
        "{id} has the object's prefix {prefix}"
    );
    assert_eq!(
        last_request(&org, &producer).await,
        "public$purchase_orders?$select=id&$count=true&$orderby=id%20asc&$top=202"
    );

    // WHERE Id = … becomes the key comparison; the record reads by Id too.
    let by_id = org
        .query(&format!(
            "SELECT title__c FROM {ORDERS_X} WHERE Id = '{id}'"
        ))
        .await;
    assert_eq!(by_id["records"][0]["title__c"], "Order 3");
    assert!(
        last_request(&org, &producer)
            .await
            .contains("$filter=id%20eq%203")
    );
    let record = org.get(&format!("/sobjects/{ORDERS_X}/{id}")).await;
    assert_eq!(record["ExternalId"], "3");
    assert_eq!(record["Id"], id.as_str());

    // High Data Volume: no ID mapping, no Id field.
    org.control_call(
        Method::POST,
        "/external-data-sources",
        Some(json!({
            "name": "Archive", "endpoint": producer.root, "username": USER,
            "password": PASSWORD, "noIdMapping": true,
        })),
    )
    .await;
    org.control_call(
        Method::POST,
        "/external-data-sources/Archive/sync",
        Some(json!({ "tables": [ORDERS] })),
    )
    .await;
    let (_, code, _) = query_error(&org, &format!("SELECT Id FROM {ORDERS_X}")).await;
    assert_eq!(code, "INVALID_FIELD");
    let result = org
        .query(&format!("SELECT ExternalId FROM {ORDERS_X} LIMIT 1"))
        .await;
    assert_eq!(
        result["records"][0]["attributes"]["url"],
        format!("/services/data/v62.0/sobjects/{ORDERS_X}/1")
    );
}
