//! The OData 4.0 service Salesforce Connect reads external objects from (Heroku External
//! Objects' shape): `/odata/v4/<slug>/` answers the service document, `$metadata`
//! (`csdl`), entity-set reads with server-driven paging, reads by key, and — when the
//! service is writable — POST, PATCH (PUT alike) and DELETE.
//!
//! Data flow of a request: HTTP Basic credentials are checked by the admin side
//! ([`pgforce_sync::Admin::odata_authenticate`]: the slug's service, its state, the
//! credential, the hourly limit — a granted request is counted); then one pooled session
//! opens the request's transaction (`pgforce_store::odata::request_transaction`: the
//! service's statement timeout, read only unless writing, `xmlbinary = 'base64'` so a
//! write to a synced table goes through its trigger log like any app write), describes
//! the addressed relation again (no cache: see the admin side) and runs the query the
//! store compiles from the options. Every answer, errors included, carries
//! `OData-Version: 4.0`; errors are OData error bodies (`problem`), never a 500 for
//! input.
//!
//! Basic credentials cross the network in every request: serve HTTPS (`--tls-cert`, or a
//! TLS proxy in front), as for the API's tokens.

mod csdl;
mod json;
mod problem;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use pgforce_store::odata::{
    self, DeleteOutcome, EntitySet, Limits, Map, UpdateOutcome, request_transaction,
};
use pgforce_sync::{Engine, ODataAccess, ODataGrant};
use tokio_postgres::Transaction;

use self::problem::ODataProblem;
use crate::Scheme;

/// Where services are served.
const PREFIX: &str = "/odata/v4/";

/// The most rows a page holds (Salesforce Connect accepts at most 2,000 a page).
pub const MAX_PAGE_SIZE: u32 = 2000;

/// The header naming the protocol version of every answer.
const ODATA_VERSION: &str = "odata-version";

type Answer = Result<Response, ODataProblem>;

/// The OData routes, every method to one handler that dispatches on the path.
pub fn router() -> Router<Engine> {
    Router::new()
        .route("/odata/v4/{slug}", any(serve))
        .route("/odata/v4/{slug}/", any(serve))
        .route("/odata/v4/{slug}/{*rest}", any(serve))
}

async fn serve(
    State(engine): State<Engine>,
    axum::Extension(scheme): axum::Extension<Scheme>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut response = match answer(&engine, scheme, &method, &uri, &headers, &body).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    };
    response
        .headers_mut()
        .insert(ODATA_VERSION, HeaderValue::from_static("4.0"));
    response
}

/// The user and password of an HTTP Basic `Authorization` header.
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// `(slug, rest)` of a path under [`PREFIX`], the rest percent-decoded.
fn split(path: &str) -> Result<(&str, String), ODataProblem> {
    let inner = path.strip_prefix(PREFIX).unwrap_or_default();
    let (slug, rest) = inner.split_once('/').unwrap_or((inner, ""));
    let rest = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| {
            ODataProblem::new(
                StatusCode::BAD_REQUEST,
                "InvalidUrl",
                "the path is not UTF-8 once decoded",
            )
        })?
        .into_owned();
    Ok((slug, rest))
}

/// The decoded query options of the request.
fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, ODataProblem> {
    serde_urlencoded::from_str(uri.query().unwrap_or_default()).map_err(|e| {
        ODataProblem::new(
            StatusCode::BAD_REQUEST,
            "InvalidQuery",
            format!("the query string cannot be decoded: {e}"),
        )
    })
}

async fn answer(
    engine: &Engine,
    scheme: Scheme,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Answer {
    let (slug, rest) = split(uri.path())?;
    let Some((user, password)) = basic(headers) else {
        return Err(ODataProblem::unauthorized(
            "this service needs HTTP Basic credentials (the service's user and password)",
        ));
    };
    let grant = match engine
        .admin()
        .odata_authenticate(slug, &user, &password)
        .await?
    {
        ODataAccess::Granted(grant) => grant,
        ODataAccess::NotFound => {
            return Err(ODataProblem::not_found(format!(
                "no OData service at {PREFIX}{slug}/"
            )));
        }
        ODataAccess::Unauthorized => {
            return Err(ODataProblem::unauthorized(
                "the user name and password are not a live credential of this service",
            ));
        }
        ODataAccess::Disabled => {
            return Err(ODataProblem::new(
                StatusCode::FORBIDDEN,
                "Disabled",
                "this OData service is disabled",
            ));
        }
        ODataAccess::RateLimited { retry_after } => {
            return Err(ODataProblem::rate_limited(
                retry_after,
                "this OData service answered its hourly request limit; try again in the next hour",
            ));
        }
    };
    let root = format!(
        "{}{PREFIX}{slug}/",
        crate::oauth::public_base(headers, scheme)
    );
    let request = Request {
        engine,
        grant: &grant,
        root: &root,
        method,
        headers,
        body,
        pairs: query_pairs(uri)?,
    };
    match rest.as_str() {
        "" => request.service_document().await,
        "$metadata" => request.metadata().await,
        resource => request.resource(resource).await,
    }
}

/// One granted request.
struct Request<'a> {
    engine: &'a Engine,
    grant: &'a ODataGrant,
    /// The service root, absolute, ending with `/`.
    root: &'a str,
    method: &'a Method,
    headers: &'a HeaderMap,
    body: &'a Bytes,
    pairs: Vec<(String, String)>,
}

fn only_get(method: &Method, what: &str) -> Result<(), ODataProblem> {
    if method == Method::GET || method == Method::HEAD {
        Ok(())
    } else {
        Err(ODataProblem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not allowed on {what}"),
        ))
    }
}

fn json_answer(status: StatusCode, value: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, json::CONTENT_TYPE)],
        value.to_string(),
    )
        .into_response()
}

/// The body of a write as an entity: a JSON object, instance annotations (`@odata.…`)
/// left out.
fn entity_body(body: &Bytes) -> Result<Map, ODataProblem> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ODataProblem::new(
            StatusCode::BAD_REQUEST,
            "InvalidBody",
            format!("the body is not JSON: {e}"),
        )
    })?;
    let serde_json::Value::Object(map) = value else {
        return Err(ODataProblem::new(
            StatusCode::BAD_REQUEST,
            "InvalidBody",
            "the body must be a JSON object of the entity's properties",
        ));
    };
    Ok(map
        .into_iter()
        .filter(|(name, _)| !name.starts_with('@') && !name.contains("@odata."))
        .collect())
}

impl Request<'_> {
    fn timeout_ms(&self) -> u128 {
        self.grant.statement_timeout.as_millis()
    }

    fn store(&self, error: &pgforce_store::Error) -> ODataProblem {
        ODataProblem::store(error, self.timeout_ms())
    }

    /// The published relation `name` addresses, `(schema, table)`.
    fn published(&self, name: &str) -> Result<&(String, String), ODataProblem> {
        self.grant
            .published
            .iter()
            .find(|(schema, table)| format!("{schema}${table}") == name)
            .ok_or_else(|| {
                ODataProblem::not_found(format!(
                    "this service publishes no entity set named {name}"
                ))
            })
    }

    /// Describes a published relation on the request's transaction.
    async fn describe(
        &self,
        tx: &Transaction<'_>,
        schema: &str,
        table: &str,
    ) -> Result<EntitySet, ODataProblem> {
        match odata::describe(tx, schema, table).await {
            Ok(Some(set)) => Ok(set),
            Ok(None) => Err(ODataProblem::not_found(format!(
                "{schema}.{table} is published but no longer exists"
            ))),
            Err(error) if error.sqlstate().is_none() && !error.is_pool_exhausted() => Err(
                ODataProblem::not_found(format!("{schema}.{table} cannot be served: {error}")),
            ),
            Err(error) => Err(self.store(&error)),
        }
    }

    /// Every published relation that can be served now: one dropped or no longer
    /// publishable (its key gone) is left out; a failing database fails the request.
    async fn every_set(&self, tx: &Transaction<'_>) -> Result<Vec<EntitySet>, ODataProblem> {
        let mut sets = Vec::new();
        for (schema, table) in &self.grant.published {
            match odata::describe(tx, schema, table).await {
                Ok(Some(set)) => sets.push(set),
                Ok(None) => {
                    tracing::debug!(
                        schema,
                        table,
                        "published relation left out: it no longer exists"
                    );
                }
                Err(error) if error.sqlstate().is_none() && !error.is_pool_exhausted() => {
                    tracing::debug!(schema, table, error = %error, "published relation left out: it cannot be served now");
                }
                Err(error) => return Err(self.store(&error)),
            }
        }
        Ok(sets)
    }

    async fn service_document(&self) -> Answer {
        only_get(self.method, "the service document")?;
        let mut session = self.engine.admin().odata_session().await?;
        let tx = request_transaction(&mut session, self.grant.statement_timeout, false)
            .await
            .map_err(|e| self.store(&e))?;
        let names: Vec<String> = self
            .every_set(&tx)
            .await?
            .into_iter()
            .map(|set| set.name)
            .collect();
        Ok(json_answer(
            StatusCode::OK,
            &json::service_document(self.root, &names),
        ))
    }

    async fn metadata(&self) -> Answer {
        only_get(self.method, "$metadata")?;
        let mut session = self.engine.admin().odata_session().await?;
        let tx = request_transaction(&mut session, self.grant.statement_timeout, false)
            .await
            .map_err(|e| self.store(&e))?;
        let sets = self.every_set(&tx).await?;
        Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/xml")],
            csdl::document(&sets),
        )
            .into_response())
    }

    /// `<set>` or `<set>(<key>)`.
    async fn resource(&self, resource: &str) -> Answer {
        let (name, predicate) = match resource.find('(') {
            Some(open) if resource.ends_with(')') => (&resource[..open], Some(&resource[open..])),
            Some(_) => {
                return Err(ODataProblem::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidKey",
                    format!("{resource}: a key predicate ends with ')'"),
                ));
            }
            None => (resource, None),
        };
        if name.contains('/') {
            return Err(ODataProblem::new(
                StatusCode::NOT_IMPLEMENTED,
                odata::QueryError::NOT_SUPPORTED,
                format!(
                    "{resource}: only entity sets and entities by key are served (no navigation, $count or $value segments)"
                ),
            ));
        }
        let (schema, table) = self.published(name)?;
        let writing = *self.method != Method::GET && *self.method != Method::HEAD;
        if writing && !self.grant.writable {
            return Err(ODataProblem::new(
                StatusCode::FORBIDDEN,
                "ReadOnly",
                "this OData service is read-only (its writable setting is off)",
            ));
        }
        let mut session = self.engine.admin().odata_session().await?;
        let tx = request_transaction(&mut session, self.grant.statement_timeout, writing)
            .await
            .map_err(|e| self.store(&e))?;
        let set = self.describe(&tx, schema, table).await?;
        match (self.method.clone(), predicate) {
            (Method::GET | Method::HEAD, None) => self.read(&tx, &set).await,
            (Method::GET | Method::HEAD, Some(predicate)) => {
                self.read_one(&tx, &set, predicate).await
            }
            (Method::POST, None) => self.insert(tx, &set).await,
            (Method::PATCH | Method::PUT, Some(predicate)) => {
                self.update(tx, &set, predicate).await
            }
            (Method::DELETE, Some(predicate)) => self.delete(tx, &set, predicate).await,
            (method, _) => Err(ODataProblem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!(
                    "{method} is not allowed on {resource} (reads: GET; writes: POST to the set, PATCH, PUT or DELETE to an entity by key)"
                ),
            )),
        }
    }

    async fn read(&self, tx: &Transaction<'_>, set: &EntitySet) -> Answer {
        let limits = Limits {
            max_page_size: MAX_PAGE_SIZE,
            search_enabled: self.grant.search_enabled,
        };
        let query = odata::parse_read(set, &self.pairs, &limits).map_err(ODataProblem::query)?;
        let page = odata::read(tx, set, &query)
            .await
            .map_err(|e| self.store(&e))?;
        let next = page
            .next_skiptoken
            .as_deref()
            .map(|token| json::next_link(self.root, &set.name, &self.pairs, token));
        let selected = query.selected(set);
        let context = json::collection_context(
            self.root,
            &set.name,
            query.selects_subset(set).then_some(selected.as_slice()),
        );
        Ok(json_answer(
            StatusCode::OK,
            &json::collection(context, page, next),
        ))
    }

    async fn read_one(&self, tx: &Transaction<'_>, set: &EntitySet, predicate: &str) -> Answer {
        let key = odata::parse_key(set, predicate).map_err(ODataProblem::query)?;
        let Some((row, etag)) = odata::read_one(tx, set, &key, &self.pairs)
            .await
            .map_err(|e| self.store(&e))?
        else {
            return Err(ODataProblem::not_found(format!(
                "{}{predicate} does not exist",
                set.name
            )));
        };
        let mut response = json_answer(
            StatusCode::OK,
            &json::entity(self.root, &set.name, row, etag.as_deref()),
        );
        add_etag(&mut response, etag.as_deref());
        Ok(response)
    }

    async fn commit(&self, tx: Transaction<'_>) -> Result<(), ODataProblem> {
        tx.commit().await.map_err(|source| {
            self.store(&pgforce_store::Error::Postgres {
                context: "committing an OData write".to_owned(),
                source,
            })
        })
    }

    async fn insert(&self, tx: Transaction<'_>, set: &EntitySet) -> Answer {
        let body = entity_body(self.body)?;
        let row = odata::insert(&tx, set, &body)
            .await
            .map_err(|e| self.store(&e))?;
        self.commit(tx).await?;
        let etag = odata::etag_of(set, &row);
        let location = json::key_predicate(set, &row)
            .map(|key| format!("{}{}{key}", self.root, json::path_segment(&set.name)));
        let mut response = json_answer(
            StatusCode::CREATED,
            &json::entity(self.root, &set.name, row, etag.as_deref()),
        );
        if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        add_etag(&mut response, etag.as_deref());
        Ok(response)
    }

    fn if_match(&self) -> Option<&str> {
        self.headers
            .get(header::IF_MATCH)
            .and_then(|value| value.to_str().ok())
    }

    async fn update(&self, tx: Transaction<'_>, set: &EntitySet, predicate: &str) -> Answer {
        let key = odata::parse_key(set, predicate).map_err(ODataProblem::query)?;
        let body = entity_body(self.body)?;
        match odata::update(&tx, set, &key, &body, self.if_match())
            .await
            .map_err(|e| self.store(&e))?
        {
            UpdateOutcome::Updated(row) => {
                self.commit(tx).await?;
                let mut response = StatusCode::NO_CONTENT.into_response();
                add_etag(&mut response, odata::etag_of(set, &row).as_deref());
                Ok(response)
            }
            UpdateOutcome::NotFound => Err(ODataProblem::not_found(format!(
                "{}{predicate} does not exist",
                set.name
            ))),
            UpdateOutcome::EtagMismatch => Err(precondition_failed(&set.name, predicate)),
        }
    }

    async fn delete(&self, tx: Transaction<'_>, set: &EntitySet, predicate: &str) -> Answer {
        let key = odata::parse_key(set, predicate).map_err(ODataProblem::query)?;
        match odata::delete(&tx, set, &key, self.if_match())
            .await
            .map_err(|e| self.store(&e))?
        {
            DeleteOutcome::Deleted => {
                self.commit(tx).await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            DeleteOutcome::NotFound => Err(ODataProblem::not_found(format!(
                "{}{predicate} does not exist",
                set.name
            ))),
            DeleteOutcome::EtagMismatch => Err(precondition_failed(&set.name, predicate)),
        }
    }
}

fn precondition_failed(set: &str, predicate: &str) -> ODataProblem {
    ODataProblem::new(
        StatusCode::PRECONDITION_FAILED,
        "PreconditionFailed",
        format!("{set}{predicate} changed since the ETag in If-Match was read"),
    )
}

fn add_etag(response: &mut Response, etag: Option<&str>) {
    if let Some(value) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
        response.headers_mut().insert(header::ETAG, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read_and_other_schemes_ignored() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("odata_1:p:w");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        assert_eq!(
            basic(&headers),
            Some(("odata_1".to_owned(), "p:w".to_owned()))
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic(&headers), None);
    }

    #[test]
    fn paths_split_into_slug_and_decoded_resource() {
        let (slug, rest) = split("/odata/v4/abc/salesforce$account('a%20b')").unwrap();
        assert_eq!((slug, rest.as_str()), ("abc", "salesforce$account('a b')"));
        let (slug, rest) = split("/odata/v4/abc").unwrap();
        assert_eq!((slug, rest.as_str()), ("abc", ""));
    }
}
