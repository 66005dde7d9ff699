//! The API's one table of routes: method, path, the role it needs, what it takes and
//! answers, and its handler. The router is built from it (each route behind a layer that
//! checks its role) and so is the OpenAPI document (`openapi`), so what is documented is
//! what is served and enforced.

use axum::Router;
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use pgforce_sync::{Engine, Role};

use super::archives;
use super::handlers as h;
use super::odata as o;
use crate::auth::Caller;

/// A query parameter: name, JSON Schema type, what it does.
pub type QueryParam = (&'static str, &'static str, &'static str);

/// One route of the API.
pub struct Route {
    /// Its method.
    pub method: Method,
    /// Its path under `/api/v3` (`{name}` for path parameters).
    pub path: &'static str,
    /// The weakest role that may call it.
    pub role: Role,
    /// What it does.
    pub summary: &'static str,
    /// Its query parameters.
    pub query: &'static [QueryParam],
    /// The schema (name under `components.schemas`) of its JSON body, if it takes one.
    pub body: Option<&'static str>,
    /// Its success status and the schema of its answer (`None`: no body).
    pub answer: (u16, Option<&'static str>),
    handler: axum::routing::MethodRouter<Engine>,
}

impl Route {
    /// A route answering 200 with `answer`, taking no query parameters and no body.
    fn new<H, T>(
        method: Method,
        path: &'static str,
        role: Role,
        summary: &'static str,
        answer: &'static str,
        handler: H,
    ) -> Self
    where
        H: Handler<T, Engine>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        Self {
            handler: on(filter, handler),
            method,
            path,
            role,
            summary,
            query: &[],
            body: None,
            answer: (200, Some(answer)),
        }
    }

    /// Takes these query parameters.
    fn query(mut self, query: &'static [QueryParam]) -> Self {
        self.query = query;
        self
    }

    /// Takes a JSON body of this schema.
    fn body(mut self, schema: &'static str) -> Self {
        self.body = Some(schema);
        self
    }

    /// Answers `status` (with its schema's body, unless `None`).
    fn answers(mut self, status: u16, schema: Option<&'static str>) -> Self {
        self.answer = (status, schema);
        self
    }
}

const DEEP: QueryParam = (
    "deep",
    "boolean",
    "include the mappings with their states and counts",
);
const AFTER: QueryParam = ("after", "string", "raised after this ISO 8601 time");
const BEFORE: QueryParam = ("before", "string", "raised before this ISO 8601 time");
const OF_TYPE: QueryParam = ("event_type", "string", "of this type only");
const NOTIFIED: [QueryParam; 4] = [
    AFTER,
    BEFORE,
    OF_TYPE,
    ("page_size", "integer", "at most this many (default 1000)"),
];
const ACKNOWLEDGED: [QueryParam; 3] = [AFTER, BEFORE, OF_TYPE];

/// Every route of the API.
pub fn all() -> Vec<Route> {
    use Role::{Archive, Deploy, Manage, Operate, View};
    let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
    vec![
        Route::new(
            post.clone(),
            "/connections/{id}/archives",
            Archive,
            "Start an archive job: records matching a SOQL condition are copied into the archive table, verified, and deleted in Salesforce by a worker of `pgforce run`",
            "ArchiveStarted",
            archives::create_archive,
        )
        .body("NewArchive")
        .answers(202, Some("ArchiveStarted")),
        Route::new(
            get.clone(),
            "/archives/{id}",
            Archive,
            "Read an archive job: state, step and counts",
            "ArchiveJob",
            archives::read_archive,
        ),
        Route::new(
            get.clone(),
            "/connections",
            View,
            "List connections",
            "ConnectionList",
            h::list_connections,
        )
        .query(&[
            (
                "app",
                "string",
                "only the connection of this app (its name)",
            ),
            DEEP,
        ]),
        Route::new(
            post.clone(),
            "/connections",
            Manage,
            "Create a connection; its credentials are checked against the org and kept sealed",
            "Connection",
            h::create_connection,
        )
        .body("NewConnection")
        .answers(201, Some("Connection")),
        Route::new(
            get.clone(),
            "/connections/{id}",
            View,
            "Read a connection",
            "Connection",
            h::read_connection,
        )
        .query(&[DEEP]),
        Route::new(
            Method::PATCH,
            "/connections/{id}",
            Manage,
            "Change a connection created through the API: credentials, login URL, flow, API version; checked against the org first",
            "Connection",
            h::update_connection,
        )
        .body("ConnectionChange"),
        Route::new(
            post.clone(),
            "/connections/{id}/authorize_url",
            Manage,
            "Where to send a person to consent (OAuth web-server flow), renewing the connection's credentials",
            "Redirect",
            h::authorize_url,
        ),
        Route::new(
            get.clone(),
            "/connections/{id}/mappings",
            View,
            "List a connection's mappings",
            "MappingList",
            h::list_mappings,
        ),
        Route::new(
            post.clone(),
            "/connections/{id}/mappings",
            Deploy,
            "Create or change a mapping, checked against the org",
            "Mapping",
            h::create_mapping,
        )
        .body("NewMapping")
        .answers(201, Some("Mapping")),
        Route::new(
            get.clone(),
            "/connections/{id}/errors",
            View,
            "Changes Salesforce refused in the last 24 hours",
            "FailedWriteList",
            h::connection_errors,
        ),
        Route::new(
            post.clone(),
            "/connections/{id}/errors/{log_id}/actions/retry",
            Operate,
            "Send a failed change again",
            "Empty",
            h::retry_failed,
        )
        .answers(202, Some("Empty")),
        Route::new(
            post.clone(),
            "/connections/{id}/errors/{log_id}/actions/ignore",
            Operate,
            "Give a failed change up",
            "Empty",
            h::ignore_failed,
        )
        .answers(202, Some("Empty")),
        Route::new(
            get.clone(),
            "/connections/{id}/actions/export",
            View,
            "The connection's mappings as a Heroku Connect export document",
            "ExportDocument",
            h::export,
        ),
        Route::new(
            post.clone(),
            "/connections/{id}/actions/import",
            Deploy,
            "Import a Heroku Connect export document",
            "Imported",
            h::import,
        )
        .body("ExportDocument")
        .answers(202, Some("Imported")),
        Route::new(
            post.clone(),
            "/connections/{id}/actions/pause",
            Operate,
            "Pause the connection",
            "Empty",
            h::pause,
        )
        .answers(202, Some("Empty")),
        Route::new(
            post.clone(),
            "/connections/{id}/actions/resume",
            Operate,
            "Resume the connection",
            "Empty",
            h::resume,
        )
        .answers(202, Some("Empty")),
        Route::new(
            post.clone(),
            "/connections/{id}/actions/restart",
            Operate,
            "Resume the connection and every mapping, including those stopped by an error",
            "Empty",
            h::restart,
        )
        .answers(202, Some("Empty")),
        Route::new(
            get.clone(),
            "/connections/{id}/schemas/{object}",
            View,
            "An object as the org describes it (kept 60 s; a new describe spends one of the token's hourly Salesforce calls)",
            "Describe",
            h::schema,
        ),
        Route::new(
            get.clone(),
            "/connections/{id}/notifications",
            View,
            "The connection's notifications, newest first",
            "NotificationList",
            h::list_notifications,
        )
        .query(&NOTIFIED),
        Route::new(
            post.clone(),
            "/connections/{id}/notifications/acknowledge",
            Operate,
            "Acknowledge notifications",
            "Empty",
            h::acknowledge_notifications,
        )
        .query(&ACKNOWLEDGED)
        .answers(204, None),
        Route::new(
            post.clone(),
            "/connections/{id}/validations",
            View,
            "Diagnose the connection and its mappings; the answer names where the result is",
            "ValidationStarted",
            h::start_validation,
        )
        .answers(202, Some("ValidationStarted")),
        Route::new(
            get.clone(),
            "/connections/{id}/validations/{result}",
            View,
            "A diagnosis of the connection",
            "Diagnosis",
            h::validation_result,
        ),
        Route::new(
            get.clone(),
            "/mappings/{id}/validations",
            View,
            "Diagnose one mapping now",
            "Checks",
            h::validate_mapping,
        ),
        Route::new(
            get.clone(),
            "/mappings/{id}",
            View,
            "Read a mapping",
            "Mapping",
            h::read_mapping,
        ),
        Route::new(
            delete.clone(),
            "/mappings/{id}",
            Deploy,
            "Delete a mapping (its table and rows stay)",
            "Empty",
            h::delete_mapping,
        )
        .answers(204, None),
        Route::new(
            get.clone(),
            "/mappings/{id}/errors",
            View,
            "The mapping's changes Salesforce refused in the last 24 hours",
            "FailedWriteList",
            h::mapping_errors,
        ),
        Route::new(
            post.clone(),
            "/mappings/{id}/actions/reload",
            Operate,
            "Reload the mapping's table from Salesforce",
            "Empty",
            h::reload,
        )
        .answers(202, Some("Empty")),
        Route::new(
            post.clone(),
            "/users/me/apps/{app}/auth",
            View,
            "Heroku Connect's discovery answer",
            "AuthAnswer",
            h::authorize_app,
        ),
        Route::new(
            get.clone(),
            "/odata/services",
            View,
            "List OData services (one per connection; Heroku External Objects)",
            "ODataServiceList",
            o::list_services,
        ),
        Route::new(
            get.clone(),
            "/odata/services/{id}",
            View,
            "Read an OData service: its URL, published relations, usage this hour",
            "ODataService",
            o::read_service,
        ),
        Route::new(
            Method::PATCH,
            "/odata/services/{id}",
            Deploy,
            "Change an OData service's settings; enabled (needs manage) true makes credentials and answers them once, false revokes every credential",
            "ODataService",
            o::update_service,
        )
        .body("ODataServiceChange"),
        Route::new(
            post,
            "/odata/services/{id}/credentials/actions/reset",
            Manage,
            "New credentials for an OData service, answered once; the previous ones keep working for 10 minutes",
            "ODataService",
            o::reset_credentials,
        ),
        Route::new(
            Method::PUT,
            "/odata/services/{id}/resources/{resource}",
            Deploy,
            "Publish a table or view (schema.table) as an entity set: a table needs a primary key, a view a column named id",
            "ODataResource",
            o::publish,
        ),
        Route::new(
            delete,
            "/odata/services/{id}/resources/{resource}",
            Deploy,
            "Stop publishing a table or view (schema.table)",
            "Empty",
            o::unpublish,
        )
        .answers(204, None),
        Route::new(
            get,
            "/audit",
            Manage,
            "The audit trail, newest first",
            "AuditList",
            h::audit_trail,
        )
        .query(&[("limit", "integer", "at most this many (default 100)")]),
    ]
}

/// The API's router: every route of [`all`] under `/api/v3`, behind its role.
pub fn router(engine: &Engine) -> Router<Engine> {
    let mut v3 = Router::new();
    for route in all() {
        let guard = from_fn_with_state((engine.clone(), route.role, route.path), authorize);
        v3 = v3.route(route.path, route.handler.route_layer(guard));
    }
    Router::new().nest("/api/v3", v3)
}

/// Lets a request through only with a live token whose role includes `role` (a live
/// token refused is recorded against the route `path`); the handler finds the [`Caller`]
/// in the request's extensions.
async fn authorize(
    State((engine, role, path)): State<(Engine, Role, &'static str)>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match Caller::authenticate(&engine, request.headers()).await {
        Ok(caller) => caller,
        Err(problem) => return problem.into_response(),
    };
    let target = format!("{} /api/v3{path}", request.method());
    if let Err(problem) = caller.require_recorded(&engine, role, &target).await {
        return problem.into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}
