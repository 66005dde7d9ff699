//! A small OData 4.0 producer for the Salesforce Connect tests: a stand-in for the third-party
//! service an External Data Source points at (not for the emulator, not for Postgres).
//!
//! It serves CSDL `$metadata` and JSON pages (`odata.metadata=minimal`) over an in-memory list
//! of rows, checks HTTP Basic credentials, and records every request's URI and
//! `Authorization` header so tests can assert exactly what the emulator sent. It honestly
//! applies `$select`, `$top`, `$skip`, `$count`, key predicates, a `$filter` made of
//! `<property> eq <literal>` terms joined by `and`, server-driven paging (`$skiptoken` in
//! `@odata.nextLink`), and writes to the orders (`POST`, `PATCH`, `DELETE` by key); any other `$filter` or `$orderby` is not evaluated: the rows come
//! back unfiltered and in list order, and the tests that send them assert the request only.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

/// The service root's path.
pub const ROOT: &str = "/odata/v4/svc/";
/// The entity set with a single integer key.
pub const ORDERS: &str = "public$purchase_orders";
/// The entity set with a composite key.
pub const LINES: &str = "public$order_lines";

const METADATA: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="shop" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="purchase_order">
        <Key><PropertyRef Name="id"/></Key>
        <Property Name="id" Type="Edm.Int32" Nullable="false"/>
        <Property Name="title" Type="Edm.String" MaxLength="80"/>
        <Property Name="notes" Type="Edm.String"/>
        <Property Name="body" Type="Edm.String" MaxLength="4000"/>
        <Property Name="amount" Type="Edm.Decimal" Precision="12" Scale="2"/>
        <Property Name="ordered_on" Type="Edm.Date"/>
        <Property Name="shipped_at" Type="Edm.DateTimeOffset"/>
        <Property Name="paid" Type="Edm.Boolean" Nullable="false"/>
        <Property Name="ref" Type="Edm.Guid"/>
        <Property Name="scan" Type="Edm.Binary"/>
        <Property Name="opens_at" Type="Edm.TimeOfDay"/>
      </EntityType>
      <EntityType Name="order_line">
        <Key><PropertyRef Name="order_id"/><PropertyRef Name="line"/></Key>
        <Property Name="order_id" Type="Edm.Int32" Nullable="false"/>
        <Property Name="line" Type="Edm.Int16" Nullable="false"/>
        <Property Name="sku" Type="Edm.String" MaxLength="20"/>
      </EntityType>
      <EntityContainer Name="Container">
        <EntitySet Name="public$purchase_orders" EntityType="shop.purchase_order"/>
        <EntitySet Name="public$order_lines" EntityType="shop.order_line"/>
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>"#;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query string, exactly as sent.
    pub uri: String,
    /// The JSON body of a write.
    pub body: Option<Value>,
    pub authorization: Option<String>,
}

/// What the producer does with the next requests.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Answer every data request with this status and an OData error body.
    pub fail: Option<(StatusCode, String)>,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Server-driven paging: at most this many rows per page, with a next link.
    pub page_size: Option<usize>,
    /// Answer `$metadata` with this body instead of the CSDL.
    pub metadata_body: Option<String>,
    /// Add a property of this many bytes to every entity answered (to pass size limits).
    pub filler: Option<usize>,
}

#[derive(Debug)]
struct Inner {
    orders: Mutex<Vec<Map<String, Value>>>,
    lines: Vec<Map<String, Value>>,
    credentials: (String, String),
    received: Mutex<Vec<Received>>,
    behaviour: Mutex<Behaviour>,
}

/// A running producer.
pub struct Producer {
    inner: Arc<Inner>,
    /// `http://127.0.0.1:port/odata/v4/svc/`.
    pub root: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The rows of `public$purchase_orders`: ids 1..=count, every type represented.
pub fn order_rows(count: usize) -> Vec<Map<String, Value>> {
    (1..=count)
        .map(|i| {
            let row = json!({
                "id": i,
                "title": format!("Order {i}"),
                "notes": if i % 2 == 0 { Value::Null } else { json!(format!("note {i}")) },
                "body": "long text",
                "amount": i as f64 * 10.5,
                "ordered_on": format!("2024-01-{:02}", (i % 28) + 1),
                "shipped_at": "2024-02-01T10:30:00Z",
                "paid": i % 3 == 0,
                "ref": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                "scan": "AAEC",
                "opens_at": "09:00:00",
            });
            match row {
                Value::Object(map) => map,
                _ => unreachable!("a JSON object literal"),
            }
        })
        .collect()
}

impl Producer {
    /// Starts a producer with `rows` purchase orders, two order lines, and Basic credentials.
    pub async fn start(rows: usize, user: &str, password: &str) -> Self {
        let lines = vec![
            json!({"order_id": 1, "line": 1, "sku": "A-1"}),
            json!({"order_id": 1, "line": 2, "sku": "B'2"}),
        ]
        .into_iter()
        .filter_map(|v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .collect();
        let inner = Arc::new(Inner {
            orders: Mutex::new(order_rows(rows)),
            lines,
            credentials: (user.to_owned(), password.to_owned()),
            received: Mutex::new(Vec::new()),
            behaviour: Mutex::new(Behaviour::default()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&inner));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            inner,
            root: format!("http://{addr}{ROOT}"),
            task,
        }
    }

    /// Changes what the producer does next.
    pub fn set(&self, behaviour: Behaviour) {
        *self.inner.behaviour.lock().unwrap() = behaviour;
    }

    /// Every request received, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// The URIs of the data requests received (`$metadata` excluded).
    pub fn data_uris(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .map(|r| r.uri)
            .filter(|u| !u.contains("$metadata"))
            .collect()
    }
}

fn odata_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut response = (
        status,
        json!({ "error": { "code": code, "message": message } }).to_string(),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    response
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

async fn answer(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Option<Value> = serde_json::from_slice(&body).ok();
    inner.received.lock().unwrap().push(Received {
        method: method.to_string(),
        uri: uri.to_string(),
        authorization: authorization.clone(),
        body: body.clone(),
    });
    let behaviour = inner.behaviour.lock().unwrap().clone();
    if let Some(delay) = behaviour.delay {
        tokio::time::sleep(delay).await;
    }
    let (user, password) = &inner.credentials;
    if authorization.as_deref() != Some(basic(user, password).as_str()) {
        return odata_error(StatusCode::UNAUTHORIZED, "Unauthorized", "bad credentials");
    }
    let Some(rest) = uri.path().strip_prefix(ROOT) else {
        return odata_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "not under the service root",
        );
    };
    let rest = percent_encoding::percent_decode_str(rest)
        .decode_utf8_lossy()
        .into_owned();
    if rest == "$metadata" {
        let body = behaviour
            .metadata_body
            .unwrap_or_else(|| METADATA.to_owned());
        let mut response = (StatusCode::OK, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, "application/xml".parse().unwrap());
        return response;
    }
    if let Some((status, message)) = behaviour.fail {
        return odata_error(status, "ServerError", &message);
    }
    let (set, key) = match rest.split_once('(') {
        Some((set, key)) => (set.to_owned(), key.strip_suffix(')').map(str::to_owned)),
        None => (rest.clone(), None),
    };
    if set == ORDERS && method != Method::GET {
        return write(&inner, &method, key.as_deref(), body);
    }
    let orders = inner.orders.lock().unwrap().clone();
    let rows = match set.as_str() {
        ORDERS => &orders,
        LINES => &inner.lines,
        _ => return odata_error(StatusCode::NOT_FOUND, "NotFound", "no such entity set"),
    };
    let options: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
    let option = |name: &str| {
        options
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let select: Option<Vec<&str>> = option("$select").map(|s| s.split(',').collect());
    let project = |row: &Map<String, Value>| -> Value {
        match &select {
            None => Value::Object(row.clone()),
            Some(names) => Value::Object(
                row.iter()
                    .filter(|(k, _)| names.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        }
    };
    if let Some(key) = key {
        let key: Option<i64> = key.parse().ok();
        let found = rows
            .iter()
            .find(|row| key.is_some() && row.get("id").and_then(Value::as_i64) == key);
        return match found {
            Some(row) => json_response(&project(row)),
            None => odata_error(StatusCode::NOT_FOUND, "NotFound", "no entity with this key"),
        };
    }
    let matching: Vec<&Map<String, Value>> = match option("$filter") {
        Some(filter) => match eq_terms(filter) {
            Some(terms) => rows
                .iter()
                .filter(|row| terms.iter().all(|(p, v)| row.get(p) == Some(v)))
                .collect(),
            None => rows.iter().collect(),
        },
        None => rows.iter().collect(),
    };
    let skip: usize = option("$skip").and_then(|s| s.parse().ok()).unwrap_or(0)
        + option("$skiptoken")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
    let top: Option<usize> = option("$top").and_then(|s| s.parse().ok());
    let mut page: Vec<&Map<String, Value>> = matching.iter().skip(skip).copied().collect();
    if let Some(top) = top {
        page.truncate(top);
    }
    let mut body = Map::new();
    if option("$count") == Some("true") {
        body.insert("@odata.count".to_owned(), json!(matching.len()));
    }
    if let Some(size) = behaviour.page_size
        && page.len() > size
    {
        page.truncate(size);
        let kept: Vec<String> = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.starts_with("$skiptoken="))
            .map(str::to_owned)
            .collect();
        let token = option("$skiptoken")
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(0)
            + size;
        body.insert(
            "@odata.nextLink".to_owned(),
            json!(format!(
                "http://{}{}?{}&$skiptoken={token}",
                headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default(),
                uri.path(),
                kept.join("&")
            )),
        );
    }
    let filler = behaviour.filler.map(|n| "x".repeat(n));
    let entities = page
        .into_iter()
        .map(|row| {
            let mut entity = project(row);
            if let (Some(filler), Value::Object(map)) = (&filler, &mut entity) {
                map.insert("filler".to_owned(), json!(filler));
            }
            entity
        })
        .collect();
    body.insert("value".to_owned(), Value::Array(entities));
    json_response(&Value::Object(body))
}

/// A write to the orders: `POST` inserts (201 with the entity), `PATCH` merges and
/// `DELETE` removes (204), 404 for an unknown key.
fn write(inner: &Inner, method: &Method, key: Option<&str>, body: Option<Value>) -> Response {
    let mut orders = inner.orders.lock().unwrap();
    let position = key.and_then(|k| k.parse::<i64>().ok()).and_then(|k| {
        orders
            .iter()
            .position(|row| row.get("id").and_then(Value::as_i64) == Some(k))
    });
    match (method.as_str(), key, body) {
        ("POST", None, Some(Value::Object(entity))) => {
            orders.push(entity.clone());
            let mut response = json_response(&Value::Object(entity));
            *response.status_mut() = StatusCode::CREATED;
            response
        }
        ("PATCH", Some(_), Some(Value::Object(changes))) => match position {
            Some(i) => {
                orders[i].extend(changes);
                StatusCode::NO_CONTENT.into_response()
            }
            None => odata_error(StatusCode::NOT_FOUND, "NotFound", "no entity with this key"),
        },
        ("DELETE", Some(_), _) => match position {
            Some(i) => {
                orders.remove(i);
                StatusCode::NO_CONTENT.into_response()
            }
            None => odata_error(StatusCode::NOT_FOUND, "NotFound", "no entity with this key"),
        },
        _ => odata_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "not a write this producer takes",
        ),
    }
}

/// `a eq 1 and b eq 'x'` as `(property, value)` pairs; `None` for any other form.
fn eq_terms(filter: &str) -> Option<Vec<(String, Value)>> {
    filter
        .split(" and ")
        .map(|term| {
            let (property, literal) = term.split_once(" eq ")?;
            if property.contains(['(', ' ']) {
                return None;
            }
            let value = if let Some(text) = literal.strip_prefix('\'') {
                json!(text.strip_suffix('\'')?.replace("''", "'"))
            } else if literal == "true" || literal == "false" {
                json!(literal == "true")
            } else {
                json!(literal.parse::<i64>().ok()?)
            };
            Some((property.to_owned(), value))
        })
        .collect()
}

fn json_response(body: &Value) -> Response {
    let mut response = (StatusCode::OK, Body::from(body.to_string())).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        "application/json;odata.metadata=minimal".parse().unwrap(),
    );
    headers.insert("OData-Version", "4.0".parse().unwrap());
    response
}
