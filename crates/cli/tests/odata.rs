//! OData services on `pgforce run`: managed through the API in Heroku's shapes (enable,
//! publish, reset, revoke, settings, roles), answered at `/odata/v4/<slug>/` with HTTP
//! Basic, an hourly limit and a statement timeout; Salesforce Connect's request shapes
//! replayed against a synced table and a view in another schema; writes through OData
//! captured by the trigger log and sent to the org by the running engine.

use std::time::{Duration, Instant};

use pgforce_store::testing::TestDatabase;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{call, token};
use crate::run::{config_file, count, pgforce, pgforce_ok, seeded_org, wait_for_count};
use crate::server::{READ_WRITE_ACCOUNTS, serving};

/// A running `pgforce run` over an org seeded with Accounts, loaded, with a `manage`
/// token.
struct Served {
    _org: pgforce_emulator::testing::TestOrg,
    db: TestDatabase,
    config: std::path::PathBuf,
    _daemon: tokio::process::Child,
    base: String,
    admin: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
    }
}

async fn served(accounts: u64) -> Served {
    let org = seeded_org(accounts).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, READ_WRITE_ACCOUNTS);
    let path = config.to_str().unwrap().to_owned();
    let (daemon, base) = serving(&path).await;
    wait_for_count(
        &db,
        "select count(*) from salesforce.account",
        i64::try_from(accounts).unwrap(),
    )
    .await;
    let admin = token(&path, "odata-admin", "manage", &[]).await;
    Served {
        _org: org,
        db,
        config,
        _daemon: daemon,
        base,
        admin,
    }
}

impl Served {
    fn path(&self) -> &str {
        self.config.to_str().unwrap()
    }

    async fn api(&self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        call(&self.base, method, path, Some(&self.admin), body).await
    }

    /// The id of the connection's OData service.
    async fn service(&self) -> String {
        let (status, list) = self.api(Method::GET, "/api/v3/odata/services", None).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list["count"], 1, "{list}");
        list["results"][0]["id"].as_str().unwrap().to_owned()
    }

    /// Enables the service; returns its access URL, user and password.
    async fn enable(&self, id: &str) -> (String, String, String) {
        let (status, answer) = self
            .api(
                Method::PATCH,
                &format!("/api/v3/odata/services/{id}"),
                Some(&json!({"enabled": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        (
            answer["access_url"].as_str().unwrap().to_owned(),
            answer["credentials"]["user"].as_str().unwrap().to_owned(),
            answer["credentials"]["password"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }

    async fn publish(&self, id: &str, relation: &str) -> (StatusCode, Value) {
        self.api(
            Method::PUT,
            &format!("/api/v3/odata/services/{id}/resources/{relation}"),
            None,
        )
        .await
    }

    async fn settings(&self, id: &str, change: Value) {
        let (status, answer) = self
            .api(
                Method::PATCH,
                &format!("/api/v3/odata/services/{id}"),
                Some(&change),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    async fn sql(&self, statements: &str) {
        self.db
            .client()
            .await
            .batch_execute(statements)
            .await
            .unwrap();
    }
}

/// An OData answer: status, headers and the body (JSON when it is, else text).
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Calls the OData service with Basic credentials (none when `user` is empty).
async fn odata(
    method: Method,
    url: &str,
    credentials: (&str, &str),
    body: Option<&Value>,
    extra: &[(&str, &str)],
) -> Reply {
    let client = reqwest::Client::new();
    let mut request = client.request(method, url);
    if !credentials.0.is_empty() {
        request = request.basic_auth(credentials.0, Some(credentials.1));
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    for (name, value) in extra {
        request = request.header(*name, HeaderValue::from_str(value).unwrap());
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

async fn get(url: &str, user: &str, password: &str) -> Reply {
    odata(Method::GET, url, (user, password), None, &[]).await
}

/// An OData URL: the service's root, a resource and query options (encoded here).
fn url(root: &str, resource: &str, options: &[(&str, &str)]) -> String {
    let mut url = format!("{root}{resource}");
    if !options.is_empty() {
        url.push('?');
        url.push_str(&serde_urlencoded::to_string(options).unwrap());
    }
    url
}

fn assert_odata_error(reply: &Reply, status: StatusCode, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
    assert_eq!(reply.header("odata-version"), Some("4.0"), "{what}");
    assert!(
        reply.body["error"]["code"].is_string() && reply.body["error"]["message"].is_string(),
        "{what}: an OData error body, got {}",
        reply.body
    );
}

#[tokio::test]
async fn services_are_managed_through_the_api_in_heroku_shapes_and_serve_what_is_published() {
    let s = served(3).await;
    let id = s.service().await;
    let (status, connections) = s.api(Method::GET, "/api/v3/connections", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(connections["results"][0]["odata"]["id"], id.as_str());
    let slug = connections["results"][0]["odata"]["slug"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(slug.len(), 32, "{slug}");
    assert!(
        slug.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );

    // Disabled at first, with no credentials.
    let (_, service) = s
        .api(Method::GET, &format!("/api/v3/odata/services/{id}"), None)
        .await;
    assert_eq!(service["enabled"], false, "{service}");
    assert!(service["credentials"]["user"].is_null(), "{service}");
    assert!(
        service["access_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/odata/v4/{slug}/"))
    );

    let (root, user, password) = s.enable(&id).await;
    assert!(password.len() >= 32, "a long random password");
    // The password is shown once: reading the service again shows only the user.
    let (_, service) = s
        .api(Method::GET, &format!("/api/v3/odata/services/{id}"), None)
        .await;
    assert_eq!(service["enabled"], true);
    assert_eq!(service["credentials"]["user"], user.as_str());
    assert!(
        service["credentials"].get("password").is_none(),
        "{service}"
    );
    // Only its hash is kept.
    let clear = count(
        &s.db,
        &format!(
            "select count(*) from pgforce.odata_credentials where position('{password}' in encode(password_hash, 'escape')) > 0 or user_name = '{password}'"
        ),
    )
    .await;
    assert_eq!(clear, 0);

    // Publishing: a synced table, a view in another schema; refusals name the relation
    // and the reason.
    s.sql(
        "create schema reports;
         create table reports.no_key (name text);
         create view reports.no_id as select 1 as n;
         create view reports.regions as select g as id, 'region ' || g as label from generate_series(1, 5) g;",
    )
    .await;
    let (status, published) = s.publish(&id, "salesforce.account").await;
    assert_eq!(status, StatusCode::OK, "{published}");
    assert_eq!(published["is_valid"], true);
    assert_eq!(published["type"], "table");
    assert_eq!(published["entity_set"], "salesforce$account");
    let (status, published) = s.publish(&id, "reports.regions").await;
    assert_eq!(status, StatusCode::OK, "{published}");
    assert_eq!(published["type"], "view");
    for (relation, reason) in [
        ("reports.no_key", "primary key"),
        ("reports.no_id", "id"),
        ("reports.missing", "no table or view"),
        ("pgforce.connections", "pgforce"),
        ("pg_catalog.pg_class", "pg_catalog"),
        ("information_schema.tables", "information_schema"),
    ] {
        let (status, refused) = s.publish(&id, relation).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{relation}: {refused}"
        );
        let message = refused["message"].as_str().unwrap();
        assert!(
            message.contains(relation) && message.contains(reason),
            "{relation}: {message}"
        );
    }

    // The service answers what is published.
    let document = get(&root, &user, &password).await;
    assert_eq!(document.status, StatusCode::OK, "{}", document.body);
    assert_eq!(document.header("odata-version"), Some("4.0"));
    assert_eq!(document.body["@odata.context"], format!("{root}$metadata"));
    let names: Vec<&str> = document.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["reports$regions", "salesforce$account"]);
    assert_eq!(document.body["value"][0]["kind"], "EntitySet");
    let metadata = get(&format!("{root}$metadata"), &user, &password).await;
    assert_eq!(metadata.status, StatusCode::OK);
    assert_eq!(metadata.header("content-type"), Some("application/xml"));
    let xml = metadata.body.as_str().unwrap();
    assert!(
        xml.contains(
            "<edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\" Version=\"4.0\">"
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<EntityType Name=\"salesforce$account\">"),
        "{xml}"
    );
    assert!(
        xml.contains("<Key><PropertyRef Name=\"id\"/></Key>"),
        "{xml}"
    );
    assert!(
        xml.contains("<Property Name=\"name\" Type=\"Edm.String\""),
        "{xml}"
    );
    assert!(
        xml.contains("<Property Name=\"systemmodstamp\" Type=\"Edm.DateTimeOffset\""),
        "{xml}"
    );
    assert!(
        xml.contains(
            "<EntitySet Name=\"reports$regions\" EntityType=\"pgforce.reports$regions\"/>"
        ),
        "{xml}"
    );
    let regions = get(
        &url(
            &root,
            "reports$regions",
            &[("$orderby", "id desc"), ("$top", "2")],
        ),
        &user,
        &password,
    )
    .await;
    assert_eq!(regions.status, StatusCode::OK, "{}", regions.body);
    assert_eq!(
        regions.header("content-type"),
        Some("application/json;odata.metadata=minimal")
    );
    assert_eq!(
        regions.body["value"],
        json!([{"id": 5, "label": "region 5"}, {"id": 4, "label": "region 4"}])
    );

    // Unpublished: gone from the service.
    let (status, _) = s
        .api(
            Method::DELETE,
            &format!("/api/v3/odata/services/{id}/resources/reports.regions"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let gone = get(&url(&root, "reports$regions", &[]), &user, &password).await;
    assert_odata_error(&gone, StatusCode::NOT_FOUND, "an unpublished set");
    let (_, service) = s
        .api(Method::GET, &format!("/api/v3/odata/services/{id}"), None)
        .await;
    let exported: Vec<(&str, bool)> = service["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["table_name"].as_str().unwrap(),
                r["exported"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(exported, [("regions", false), ("account", true)]);

    // A published relation dropped later: left out of the service, shown as invalid.
    s.sql("create table reports.scratch (id int primary key)")
        .await;
    let (status, _) = s.publish(&id, "reports.scratch").await;
    assert_eq!(status, StatusCode::OK);
    s.sql("drop table reports.scratch").await;
    let document = get(&root, &user, &password).await;
    assert_eq!(document.status, StatusCode::OK, "{}", document.body);
    assert_eq!(
        document.body["value"].as_array().unwrap().len(),
        1,
        "{}",
        document.body
    );
    let metadata = get(&format!("{root}$metadata"), &user, &password).await;
    assert!(!metadata.body.as_str().unwrap().contains("scratch"));
    let gone = get(&url(&root, "reports$scratch", &[]), &user, &password).await;
    assert_odata_error(&gone, StatusCode::NOT_FOUND, "a dropped relation");
    let (_, service) = s
        .api(Method::GET, &format!("/api/v3/odata/services/{id}"), None)
        .await;
    let scratch = service["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["table_name"] == "scratch")
        .unwrap();
    assert_eq!(scratch["is_valid"], false, "{scratch}");
    assert!(
        scratch["problem"]
            .as_str()
            .unwrap()
            .contains("no table or view"),
        "{scratch}"
    );

    // Every change is in the audit trail, without the password.
    let (_, trail) = s.api(Method::GET, "/api/v3/audit", None).await;
    let text = trail.to_string();
    for action in [
        "odata.enable",
        "odata.publish",
        "odata.publish.refused",
        "odata.unpublish",
    ] {
        assert!(
            text.contains(&format!("\"{action}\"")),
            "{action} in {text}"
        );
    }
    assert!(!text.contains(&password), "no password in the audit trail");
}

#[tokio::test]
async fn roles_govern_reading_publishing_and_credentials() {
    let s = served(1).await;
    let id = s.service().await;
    let view = token(s.path(), "viewer", "view", &[]).await;
    let deploy = token(s.path(), "deployer", "deploy", &[]).await;
    let service = format!("/api/v3/odata/services/{id}");
    let resource = format!("{service}/resources/salesforce.account");
    let reset = format!("{service}/credentials/actions/reset");
    let enable = json!({"enabled": true});
    let limit = json!({"api_hourly_rate_limit": 100});

    for path in ["/api/v3/odata/services", service.as_str()] {
        let (status, _) = call(&s.base, Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, answer) = call(&s.base, Method::GET, path, Some(&view), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    }
    // view: no changes at all.
    for (method, path, body) in [
        (Method::PUT, &resource, None),
        (Method::PATCH, &service, Some(&limit)),
        (Method::PATCH, &service, Some(&enable)),
        (Method::POST, &reset, None),
    ] {
        let (status, answer) = call(&s.base, method.clone(), path, Some(&view), body).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{method} {path} as view: {answer}"
        );
    }
    // deploy: publish and settings, not credentials.
    let (status, answer) = call(&s.base, Method::PUT, &resource, Some(&deploy), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = call(
        &s.base,
        Method::PATCH,
        &service,
        Some(&deploy),
        Some(&limit),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["api_hourly_rate_limit"], 100);
    for (method, path, body) in [
        (Method::PATCH, &service, Some(&enable)),
        (Method::POST, &reset, None),
    ] {
        let (status, answer) = call(&s.base, method.clone(), path, Some(&deploy), body).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{method} {path} as deploy: {answer}"
        );
        assert!(
            answer["message"].as_str().unwrap().contains("manage"),
            "{answer}"
        );
    }
    // manage: everything.
    let (status, answer) = s.api(Method::PATCH, &service, Some(&enable)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = s.api(Method::POST, &reset, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["credentials"]["password"].is_string(), "{answer}");
    // Bad settings are refused, naming them.
    let (status, answer) = s
        .api(
            Method::PATCH,
            &service,
            Some(&json!({"statement_timeout": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("statement_timeout"),
        "{answer}"
    );
    let (status, answer) = s
        .api(Method::PATCH, &service, Some(&json!({"colour": "blue"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("colour"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_reset_password_works_with_the_old_one_until_it_expires_and_a_revoke_ends_both() {
    let s = served(1).await;
    let id = s.service().await;
    let (root, old_user, old_password) = s.enable(&id).await;
    let reply = get(&root, &old_user, &old_password).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    // No credentials, or wrong ones: 401 with the Basic challenge.
    for (user, password) in [
        ("", ""),
        (old_user.as_str(), "wrong"),
        ("nobody", old_password.as_str()),
    ] {
        let reply = get(&root, user, password).await;
        assert_odata_error(&reply, StatusCode::UNAUTHORIZED, "bad credentials");
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Basic realm=\"pgforce OData\"")
        );
    }
    let missing = get(
        &root.replace(&root[root.len() - 33..root.len() - 1], &"0".repeat(32)),
        &old_user,
        &old_password,
    )
    .await;
    assert_odata_error(&missing, StatusCode::NOT_FOUND, "an unknown slug");

    let (status, reset) = s
        .api(
            Method::POST,
            &format!("/api/v3/odata/services/{id}/credentials/actions/reset"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reset}");
    let new_user = reset["credentials"]["user"].as_str().unwrap().to_owned();
    let new_password = reset["credentials"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_password, old_password);
    // Both work during the overlap, which ends 10 minutes after the reset.
    assert_eq!(
        get(&root, &old_user, &old_password).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&root, &new_user, &new_password).await.status,
        StatusCode::OK
    );
    let overlap = count(
        &s.db,
        &format!(
            "select extract(epoch from expires_at - now())::bigint from pgforce.odata_credentials where user_name = '{old_user}'"
        ),
    )
    .await;
    assert!(
        (590..=600).contains(&overlap),
        "the old credential ends in 10 minutes, not {overlap} s"
    );

    // Ten minutes later (moved here instead of waited for): the old one no longer works.
    s.sql(&format!(
        "update pgforce.odata_credentials set expires_at = now() - interval '1 second' where user_name = '{old_user}'"
    ))
    .await;
    let reply = get(&root, &old_user, &old_password).await;
    assert_odata_error(&reply, StatusCode::UNAUTHORIZED, "an expired credential");
    assert_eq!(
        get(&root, &new_user, &new_password).await.status,
        StatusCode::OK
    );

    // Revoke ends every credential at once; enabling again makes a new one.
    let (status, _) = s
        .api(
            Method::PATCH,
            &format!("/api/v3/odata/services/{id}"),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let reply = get(&root, &new_user, &new_password).await;
    assert_odata_error(&reply, StatusCode::FORBIDDEN, "a revoked service");
    let (_, again_user, again_password) = s.enable(&id).await;
    assert_eq!(
        get(&root, &again_user, &again_password).await.status,
        StatusCode::OK
    );
    let reply = get(&root, &new_user, &new_password).await;
    assert_odata_error(
        &reply,
        StatusCode::UNAUTHORIZED,
        "a credential a revoke ended",
    );
}

#[tokio::test]
async fn a_service_limited_to_three_requests_an_hour_answers_429_on_the_fourth() {
    let s = served(1).await;
    let id = s.service().await;
    let (root, user, password) = s.enable(&id).await;
    s.settings(&id, json!({"api_hourly_rate_limit": 3})).await;
    // Refused credentials are not counted.
    assert_eq!(
        get(&root, &user, "wrong").await.status,
        StatusCode::UNAUTHORIZED
    );
    for n in 1..=3 {
        let reply = get(&root, &user, &password).await;
        assert_eq!(reply.status, StatusCode::OK, "request {n}: {}", reply.body);
    }
    let reply = get(&root, &user, &password).await;
    assert_odata_error(&reply, StatusCode::TOO_MANY_REQUESTS, "the fourth request");
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    let (_, service) = s
        .api(Method::GET, &format!("/api/v3/odata/services/{id}"), None)
        .await;
    assert_eq!(service["current_hourly_api_usage"], 3, "{service}");
    assert_eq!(service["api_hourly_rate_limit"], 3, "{service}");
    // Raising the limit lets requests through again within the hour.
    s.settings(&id, json!({"api_hourly_rate_limit": 4})).await;
    assert_eq!(get(&root, &user, &password).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_query_past_the_statement_timeout_answers_503_and_the_pool_keeps_serving() {
    let s = served(1).await;
    let id = s.service().await;
    let (root, user, password) = s.enable(&id).await;
    s.sql(
        "create schema reports;
         create function reports.slowly() returns setof integer language sql
             as 'select pg_sleep(20); select 1';
         create view reports.slow as select g as id from reports.slowly() g;",
    )
    .await;
    let (status, answer) = s.publish(&id, "reports.slow").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    s.settings(&id, json!({"statement_timeout": 300})).await;
    for _ in 0..3 {
        let started = Instant::now();
        let reply = get(&url(&root, "reports$slow", &[]), &user, &password).await;
        assert_odata_error(&reply, StatusCode::SERVICE_UNAVAILABLE, "a slow query");
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("300 ms"),
            "{}",
            reply.body
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the query was cancelled, not waited for"
        );
    }
    // The pool's sessions came back usable: more requests than the pool has sessions.
    for n in 0..12 {
        let reply = get(&root, &user, &password).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "request {n} after the timeouts: {}",
            reply.body
        );
    }
    let (status, _) = s.api(Method::GET, "/api/v3/connections", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// Every page of a read from `first`, following `@odata.nextLink`: the rows and the
/// number of pages.
async fn every_page(first: &str, user: &str, password: &str) -> (Vec<Value>, Vec<usize>) {
    let mut rows = Vec::new();
    let mut sizes = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(link) = next.take() {
        let reply = get(&link, user, password).await;
        assert_eq!(reply.status, StatusCode::OK, "{link}: {}", reply.body);
        let page = reply.body["value"].as_array().unwrap();
        sizes.push(page.len());
        rows.extend(page.iter().cloned());
        next = reply.body["@odata.nextLink"].as_str().map(str::to_owned);
        assert!(sizes.len() < 100, "paging never ended");
    }
    (rows, sizes)
}

#[tokio::test]
async fn salesforce_connect_request_shapes_are_answered_from_a_synced_table_and_a_view() {
    let s = served(40).await;
    let id = s.service().await;
    let (root, user, password) = s.enable(&id).await;
    s.sql(
        "create schema reports;
         create view reports.orders as
             select g as id, 'order ' || g as label, (g % 7) as bucket,
                    case when g % 3 = 0 then null else g * 10 end as amount
             from generate_series(1, 4500) g;",
    )
    .await;
    for relation in ["salesforce.account", "reports.orders"] {
        let (status, answer) = s.publish(&id, relation).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let accounts = "salesforce$account";

    // A list view: `$select=…&$count=true&$top=26`.
    let reply = get(
        &url(
            &root,
            accounts,
            &[("$select", "id,name"), ("$count", "true"), ("$top", "26")],
        ),
        &user,
        &password,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["@odata.count"], 40);
    assert_eq!(
        reply.body["@odata.context"],
        format!("{root}$metadata#{accounts}(id,name)")
    );
    let page = reply.body["value"].as_array().unwrap();
    assert_eq!(page.len(), 26);
    let keys: Vec<&String> = page[0].as_object().unwrap().keys().collect();
    assert!(keys.contains(&&"id".to_owned()) && keys.contains(&&"name".to_owned()));
    assert!(
        !keys.contains(&&"industry".to_owned()),
        "only the selected properties: {keys:?}"
    );
    assert!(
        reply.body.get("@odata.nextLink").is_none(),
        "$top is met in one page"
    );

    // Request Row Counts off: `$count=false`, full pages of 2,000 followed to the end.
    let (rows, sizes) = every_page(
        &url(
            &root,
            "reports$orders",
            &[("$count", "false"), ("$select", "id,label")],
        ),
        &user,
        &password,
    )
    .await;
    assert_eq!(sizes, [2000, 2000, 500]);
    let mut ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids,
        (1..=4500).collect::<Vec<_>>(),
        "every row exactly once"
    );
    // Ordered by a nullable column, descending, with $top spanning pages.
    let (rows, sizes) = every_page(
        &url(
            &root,
            "reports$orders",
            &[("$orderby", "amount desc"), ("$top", "3001")],
        ),
        &user,
        &password,
    )
    .await;
    assert_eq!(sizes, [2000, 1001]);
    let mut ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3001);

    // Global search as Salesforce sends it (OData 4.0 default).
    let name: String =
        s.db.client()
            .await
            .query_one(
                "select name from salesforce.account order by id limit 1",
                &[],
            )
            .await
            .unwrap()
            .get(0);
    let word = name.split_whitespace().next().unwrap().to_owned();
    let expected = count(
        &s.db,
        &format!(
            "select count(*) from salesforce.account where strpos(name, '{}') > 0 or strpos(industry, '{}') > 0",
            word.replace('\'', "''"),
            word.replace('\'', "''")
        ),
    )
    .await;
    let filter = format!(
        "contains(name,'{0}') eq true or contains(industry,'{0}') eq true",
        word.replace('\'', "''")
    );
    let reply = get(
        &url(
            &root,
            accounts,
            &[
                ("$select", "name,industry,id"),
                ("$count", "true"),
                ("$filter", &filter),
                ("$top", "25"),
            ],
        ),
        &user,
        &password,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["@odata.count"], expected, "{filter}");
    assert!(expected >= 1);
    for row in reply.body["value"].as_array().unwrap() {
        let text = format!("{} {}", row["name"], row["industry"]);
        assert!(text.contains(&word), "{row} matches {word}");
    }

    // `$orderby … desc` with `$skip` and `$top`: the rows Postgres orders the same way (the
    // key breaks ties, descending too when every `$orderby` item is).
    let client = s.db.client().await;
    let expected: Vec<i32> = client
        .query(
            "select id from salesforce.account order by name desc, id desc offset 5 limit 5",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let reply = get(
        &url(
            &root,
            accounts,
            &[
                ("$orderby", "name desc"),
                ("$skip", "5"),
                ("$top", "5"),
                ("$select", "id"),
            ],
        ),
        &user,
        &password,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let got: Vec<i64> = reply.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        got,
        expected.iter().map(|&i| i64::from(i)).collect::<Vec<_>>()
    );

    // A key read, with its ETag; a missing key is 404; bad options are 400 naming them.
    let first = expected[0];
    let reply = get(
        &url(&root, &format!("{accounts}({first})"), &[]),
        &user,
        &password,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["id"], first);
    assert_eq!(
        reply.body["@odata.context"],
        format!("{root}$metadata#{accounts}/$entity")
    );
    let etag = reply.header("etag").unwrap();
    assert!(etag.starts_with("W/\""), "{etag}");
    assert_eq!(reply.body["@odata.etag"], etag);
    let reply = get(
        &url(&root, &format!("{accounts}(999999)"), &[]),
        &user,
        &password,
    )
    .await;
    assert_odata_error(&reply, StatusCode::NOT_FOUND, "a missing key");
    let reply = get(
        &url(&root, accounts, &[("$filter", "nosuch eq 1")]),
        &user,
        &password,
    )
    .await;
    assert_odata_error(&reply, StatusCode::BAD_REQUEST, "an unknown property");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nosuch"),
        "{}",
        reply.body
    );
    let reply = get(
        &url(&root, accounts, &[("$filter", "name eq 'unclosed")]),
        &user,
        &password,
    )
    .await;
    assert_odata_error(&reply, StatusCode::BAD_REQUEST, "a broken filter");
    let reply = get(
        &url(&root, accounts, &[("$skiptoken", "garbage")]),
        &user,
        &password,
    )
    .await;
    assert_odata_error(&reply, StatusCode::BAD_REQUEST, "a forged skip token");
}

#[tokio::test]
async fn writes_through_odata_reach_the_trigger_log_and_the_org() {
    let s = served(2).await;
    let id = s.service().await;
    let (root, user, password) = s.enable(&id).await;
    let (status, answer) = s.publish(&id, "salesforce.account").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let accounts = format!("{root}salesforce$account");
    let body = json!({"name": "Created through OData", "industry": "Energy"});

    // A read-only service refuses writes.
    let reply = odata(
        Method::POST,
        &accounts,
        (&user, &password),
        Some(&body),
        &[],
    )
    .await;
    assert_odata_error(
        &reply,
        StatusCode::FORBIDDEN,
        "a write to a read-only service",
    );
    assert_eq!(
        count(
            &s.db,
            "select count(*) from salesforce.account where name = 'Created through OData'"
        )
        .await,
        0
    );

    s.settings(&id, json!({"writable": true})).await;
    let logged = count(&s.db, "select count(*) from salesforce._trigger_log").await;
    let reply = odata(
        Method::POST,
        &accounts,
        (&user, &password),
        Some(&body),
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let created = reply.body["id"].as_i64().unwrap();
    assert_eq!(
        reply.header("location"),
        Some(format!("{accounts}({created})").as_str())
    );
    assert_eq!(reply.body["name"], "Created through OData");
    // The trigger captured it like any app write, and the running engine sends it.
    assert_eq!(
        count(&s.db, "select count(*) from salesforce._trigger_log").await
            + count(
                &s.db,
                "select count(*) from salesforce._trigger_log_archive"
            )
            .await,
        logged + 1
    );
    wait_for_count(
        &s.db,
        &format!(
            "select count(*) from salesforce.account where id = {created} and sfid is not null and systemmodstamp is not null"
        ),
        1,
    )
    .await;

    // Updates honour If-Match; a stale ETag is 412. (The row's ETag moves whenever the
    // engine stores what the org answered, so the update itself matches any ETag; the
    // row has one once the engine stored its SystemModstamp.)
    let entity = format!("{accounts}({created})");
    let current = get(&entity, &user, &password).await;
    assert!(current.header("etag").unwrap().starts_with("W/\""));
    let stale = "W/\"2001-01-01T00:00:00.000000Z\"";
    let reply = odata(
        Method::PATCH,
        &entity,
        (&user, &password),
        Some(&json!({"industry": "Retail"})),
        &[("if-match", stale)],
    )
    .await;
    assert_odata_error(&reply, StatusCode::PRECONDITION_FAILED, "a stale ETag");
    let reply = odata(
        Method::PATCH,
        &entity,
        (&user, &password),
        Some(&json!({"industry": "Retail"})),
        &[("if-match", "*")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert_eq!(
        count(&s.db, &format!("select count(*) from salesforce.account where id = {created} and industry = 'Retail'")).await,
        1
    );
    // A system column cannot be written through OData.
    let reply = odata(
        Method::PATCH,
        &entity,
        (&user, &password),
        Some(&json!({"sfid": "001000000000000AAA"})),
        &[],
    )
    .await;
    assert_odata_error(&reply, StatusCode::BAD_REQUEST, "a write to sfid");
    let reply = odata(Method::DELETE, &entity, (&user, &password), None, &[]).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert_eq!(
        count(
            &s.db,
            &format!("select count(*) from salesforce.account where id = {created}")
        )
        .await,
        0
    );
}

/// The value after `label` on a line of `pgforce odata` output.
fn field<'a>(output: &'a str, label: &str) -> &'a str {
    output
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .map(|rest| rest.split_whitespace().next().unwrap_or_default())
        .unwrap_or_else(|| panic!("{label} in {output}"))
}

#[tokio::test]
async fn the_cli_enables_publishes_resets_and_disables_through_the_admin_side() {
    let s = served(2).await;
    let path = s.path().to_owned();
    let odata_cli = |action: &[&str]| -> Vec<String> {
        ["odata", "--config", path.as_str(), "--connection", "main"]
            .iter()
            .chain(action.iter())
            .map(|a| (*a).to_owned())
            .collect()
    };
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        pgforce_ok(&args).await
    };
    let enabled = run(odata_cli(&["enable", "--public-url", &s.base])).await;
    let root = field(&enabled, "url:").to_owned();
    let user = field(&enabled, "user:").to_owned();
    let password = field(&enabled, "password:").to_owned();
    assert!(root.starts_with(&s.base), "{enabled}");
    run(odata_cli(&["publish", "salesforce.account"])).await;
    let shown = run(odata_cli(&["show"])).await;
    assert!(
        shown.contains("salesforce.account (salesforce$account) published"),
        "{shown}"
    );
    assert!(shown.contains("enabled:   true"), "{shown}");
    let document = get(&root, &user, &password).await;
    assert_eq!(document.status, StatusCode::OK, "{}", document.body);
    assert_eq!(document.body["value"][0]["name"], "salesforce$account");
    // A refusal names the relation and the reason, and fails the command.
    let refusal = odata_cli(&["publish", "pgforce.connections"]);
    let refusal: Vec<&str> = refusal.iter().map(String::as_str).collect();
    let refused = pgforce(&refusal).output().await.unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("pgforce.connections"), "{stderr}");

    let reset = run(odata_cli(&["reset"])).await;
    let new_password = field(&reset, "password:").to_owned();
    assert_ne!(new_password, password);
    run(odata_cli(&["disable"])).await;
    let reply = get(&root, &user, &password).await;
    assert_odata_error(&reply, StatusCode::FORBIDDEN, "a disabled service");
    let (_, trail) = s.api(Method::GET, "/api/v3/audit", None).await;
    let text = trail.to_string();
    for action in [
        "odata.enable",
        "odata.publish",
        "odata.credentials.reset",
        "odata.revoke",
    ] {
        assert!(
            text.contains(&format!("\"{action}\"")),
            "{action} in {text}"
        );
    }
}

/// The dashboard's CSRF token in a page.
fn csrf_of(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    page[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_dashboard_shows_the_service_and_publishes_and_resets_with_the_session_token() {
    let s = served(2).await;
    let id = s.service().await;
    let (root, _, _) = s.enable(&id).await;
    let (http, cookie) = crate::dashboard::log_in_over_http(&s.base, &s.admin).await;
    let session = cookie.split(';').next().unwrap().to_owned();
    let dashboard = || async {
        http.get(format!("{}/dashboard", s.base))
            .header("cookie", &session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let post = |body: String| {
        http.post(format!("{}/dashboard/odata", s.base))
            .header("cookie", &session)
            .header("origin", &s.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let page = dashboard().await;
    assert!(page.contains("External objects (OData 4.0)"), "{page}");
    assert!(page.contains(&root), "the service's URL: {page}");
    assert!(page.contains("0 of 20000 requests this hour"), "{page}");
    let csrf = csrf_of(&page);

    // A forged form changes nothing.
    let forged = post(format!(
        "csrf=guess&service={id}&action=publish&relation=salesforce.account"
    ))
    .await
    .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    assert_eq!(
        count(&s.db, "select count(*) from pgforce.odata_resources").await,
        0
    );

    let published = post(format!(
        "csrf={csrf}&service={id}&action=publish&relation=salesforce.account"
    ))
    .await
    .unwrap();
    assert_eq!(published.status().as_u16(), 303);
    let page = dashboard().await;
    assert!(
        page.contains(
            "<td>salesforce.account</td><td>salesforce$account</td><td>yes</td><td>yes</td>"
        ),
        "{page}"
    );

    let reset = post(format!("csrf={csrf}&service={id}&action=reset&relation="))
        .await
        .unwrap();
    assert_eq!(reset.status().as_u16(), 200);
    let shown = reset.text().await.unwrap();
    let grab = |id: &str| {
        let marker = format!("id=\"{id}\">");
        let start = shown.find(&marker).unwrap() + marker.len();
        shown[start..].split('<').next().unwrap().to_owned()
    };
    let (user, password) = (grab("odata-user"), grab("odata-password"));
    let document = get(&root, &user, &password).await;
    assert_eq!(document.status, StatusCode::OK, "{}", document.body);
    assert_eq!(document.body["value"][0]["name"], "salesforce$account");
    let page = dashboard().await;
    assert!(page.contains("1 of 20000 requests this hour"), "{page}");
}
