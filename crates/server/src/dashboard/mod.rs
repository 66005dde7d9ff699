//! The dashboard: server-rendered pages for people, beside the API they mirror.
//!
//! A person logs in with an API token, from a login form whose token is bound to a cookie
//! of its own (double submit: a foreign site can neither read the cookie nor guess the
//! token, so it cannot log a victim in to the attacker's session); the browser then holds
//! a session cookie (`cookies`: `Secure` and `__Host-` over TLS), and every form carries
//! the session's CSRF token, checked before anything changes. Every POST whose `Origin` or
//! `Referer` names another site is refused before any of that (`origin`).
//!
//! The overview shows each connection and mapping with its state, Postgres and Salesforce
//! counts, unsent and refused changes, the refused changes themselves with retry and
//! ignore buttons (for `operate` tokens), notifications, a chart of records read and
//! written per minute over the last 24 hours and, for `manage` tokens, the audit trail. It
//! refreshes itself every 5 seconds. For `deploy` tokens, a mapping editor picks an
//! object's fields from the org's describe and saves the mapping (checked against the org,
//! as the API does). Each connection's OData service (`odata`) shows its URL, usage and
//! published relations, with publish, unpublish and credential-reset forms. No scripts, no separate front-end build: one small stylesheet, served
//! as a file of its own (`/dashboard/style.css`) so the content security policy can
//! refuse every inline style and script.

mod cookies;
mod odata;
mod origin;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{Next, from_fn};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use pgforce_sync::{
    ConnectionState, Depth, Engine, FailedDecision, MappingState, NotificationFilter, Role,
};

use crate::api::shapes;
use crate::auth::Caller;
use crate::problem::Problem;
use cookies::Cookies;

/// Where people log in.
const LOGIN_PATH: &str = "/dashboard/login";
/// Where refused changes are retried or ignored.
const WRITES_PATH: &str = "/dashboard/writes";
/// The mapping editor.
const EDITOR_PATH: &str = "/dashboard/mappings/new";
/// Where the editor saves a mapping.
const MAPPINGS_PATH: &str = "/dashboard/mappings";

/// The dashboard's routes, under `/dashboard`; every POST among them from this server's
/// own pages only.
pub fn router() -> Router<Engine> {
    Router::new()
        .route("/dashboard", get(overview))
        .route(STYLESHEET_PATH, get(stylesheet))
        .route(LOGIN_PATH, get(login_page).post(log_in))
        .route("/dashboard/logout", post(log_out))
        .route(WRITES_PATH, post(decide_write))
        .route(EDITOR_PATH, get(mapping_editor))
        .route(MAPPINGS_PATH, post(save_mapping))
        .route(odata::ODATA_PATH, post(odata::act))
        .layer(from_fn(|request: Request, next: Next| {
            origin::guard(LOGIN_PATH, request, next)
        }))
}

/// The logged-in person and the session's form token; `None` sends them to the login page.
async fn logged_in(
    engine: &Engine,
    cookies: Cookies,
    headers: &HeaderMap,
) -> Result<Option<(Caller, String)>, Problem> {
    let Some(secret) = cookies.session(headers) else {
        return Ok(None);
    };
    Ok(engine
        .admin()
        .dashboard_session(&secret)
        .await?
        .map(|(token, csrf)| (Caller::from_token(token), csrf)))
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_owned())]).into_response()
}

/// Text made safe for HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Where pages find [`STYLE`].
const STYLESHEET_PATH: &str = "/dashboard/style.css";

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2430}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left}
th{background:#f3f5f7}.ok{color:#1a7f37}.bad{color:#cf222e}.warn{color:#9a6700}
form.inline{display:inline}button{cursor:pointer}header{display:flex;justify-content:space-between}";

/// The pages' stylesheet (open: the login page needs it too).
async fn stylesheet() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

fn page(title: &str, refresh: bool, body: &str) -> Html<String> {
    let refresh = if refresh {
        "<meta http-equiv=\"refresh\" content=\"5\">"
    } else {
        ""
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}<title>{}</title><link rel=\"stylesheet\" href=\"{STYLESHEET_PATH}\"></head><body>{body}</body></html>",
        escape(title)
    ))
}

/// A new login form token: 32 random bytes, base64url.
fn new_login_token() -> Result<String, Problem> {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let mut bytes = [0_u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the system's random generator failed",
            )
        })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether a login form token looks like one [`new_login_token`] made.
fn is_login_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Equality whose time does not tell where two tokens first differ.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0_u8, |differ, (x, y)| differ | (x ^ y))
            == 0
}

/// The login page, with the form token of the browser's cookie (a fresh one, set, when it
/// has none).
async fn login_page(cookies: Cookies, headers: HeaderMap) -> Result<Response, Problem> {
    login_form(cookies, &headers, StatusCode::OK, None)
}

/// The login form (with `problem` shown, answered with `status`), its token bound to the
/// browser's login cookie.
fn login_form(
    cookies: Cookies,
    headers: &HeaderMap,
    status: StatusCode,
    problem: Option<&str>,
) -> Result<Response, Problem> {
    let (token, set) = match cookies.login_token(headers).filter(|t| is_login_token(t)) {
        Some(token) => (token, None),
        None => {
            let token = new_login_token()?;
            let set = cookies.set_login_token(&token);
            (token, Some(set))
        }
    };
    let problem = problem.map_or_else(String::new, |p| {
        format!("<p class=\"bad\" id=\"problem\">{}</p>", escape(p))
    });
    let html = page(
        "pgforce — log in",
        false,
        &format!(
            "<h1>pgforce</h1>{problem}<form method=\"post\" action=\"{LOGIN_PATH}\">
             <input type=\"hidden\" name=\"login_csrf\" value=\"{token}\">
             <label>API token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"off\" required></label>
             <button type=\"submit\" id=\"log-in\">Log in</button></form>
             <p>Create a token with <code>pgforce token create --name NAME --role view|operate|deploy|manage</code>.</p>"
        ),
    );
    let mut response = (status, html).into_response();
    if let Some(set) = set {
        append_cookie(&mut response, &set)?;
    }
    Ok(response)
}

/// Adds a `Set-Cookie` to an answer.
fn append_cookie(response: &mut Response, cookie: &str) -> Result<(), Problem> {
    let value = HeaderValue::from_str(cookie).map_err(|_| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "a cookie could not be written as a header",
        )
    })?;
    response.headers_mut().append(SET_COOKIE, value);
    Ok(())
}

/// A form body's fields.
fn form(body: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(body).unwrap_or_default()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Opens a session for a live token posted with the form token of the browser's login
/// cookie; the login cookie is then dropped.
async fn log_in(
    State(engine): State<Engine>,
    cookies: Cookies,
    headers: HeaderMap,
    body: String,
) -> Result<Response, Problem> {
    let fields = form(&body);
    let bound = cookies.login_token(&headers);
    let posted = field(&fields, "login_csrf");
    if !matches!((&bound, posted), (Some(bound), Some(posted)) if same_token(bound, posted)) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the login form's token does not match its cookie: reload the login page",
        ));
    }
    let presented = field(&fields, "token").unwrap_or_default();
    let Some(token) = engine.admin().authenticate(presented.trim()).await? else {
        return login_form(
            cookies,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("That token is unknown, expired or revoked."),
        );
    };
    let (secret, _) = engine.admin().open_dashboard_session(&token).await?;
    let mut response = see_other("/dashboard");
    append_cookie(&mut response, &cookies.set_session(&secret))?;
    append_cookie(&mut response, &cookies.clear_login_token())?;
    Ok(response)
}

async fn log_out(
    State(engine): State<Engine>,
    cookies: Cookies,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    if let Some(secret) = cookies.session(&headers) {
        engine.admin().close_dashboard_session(&secret).await?;
    }
    let mut response = see_other(LOGIN_PATH);
    append_cookie(&mut response, &cookies.clear_session())?;
    Ok(response)
}

/// A posted form's fields and who posted it, once its session and CSRF token check out and
/// the caller has `role`; `None` when nobody is logged in.
async fn posted(
    engine: &Engine,
    cookies: Cookies,
    headers: &HeaderMap,
    body: &str,
    role: Role,
    path: &str,
) -> Result<Option<(Caller, Vec<(String, String)>)>, Problem> {
    let Some((caller, csrf)) = logged_in(engine, cookies, headers).await? else {
        return Ok(None);
    };
    let fields = form(body);
    if !field(&fields, "csrf").is_some_and(|posted| same_token(posted, &csrf)) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the form's session token does not match: reload the page",
        ));
    }
    caller
        .require_recorded(engine, role, &format!("POST {path}"))
        .await?;
    Ok(Some((caller, fields)))
}

/// Retries or ignores a refused change (`operate`), from a form with the session's token.
async fn decide_write(
    State(engine): State<Engine>,
    cookies: Cookies,
    headers: HeaderMap,
    body: String,
) -> Result<Response, Problem> {
    let Some((caller, fields)) = posted(
        &engine,
        cookies,
        &headers,
        &body,
        Role::Operate,
        WRITES_PATH,
    )
    .await?
    else {
        return Ok(see_other(LOGIN_PATH));
    };
    let number = |name: &str| field(&fields, name).and_then(|v| v.parse::<i64>().ok());
    let (Some(connection), Some(log_id)) = (number("connection"), number("log_id")) else {
        return Err(Problem::bad_request(
            "connection and log_id are required numbers",
        ));
    };
    let (decision, action) = match field(&fields, "decision") {
        Some("retry") => (FailedDecision::Retry, "write.retry"),
        Some("ignore") => (FailedDecision::Ignore, "write.ignore"),
        _ => return Err(Problem::bad_request("decision must be retry or ignore")),
    };
    let connection = pgforce_sync::ConnectionId::from(connection);
    engine
        .admin()
        .decide_failed_write(connection, log_id, decision, caller.name())
        .await?;
    let target = format!("connection {connection} trigger-log row {log_id}");
    if let Err(error) = engine
        .admin()
        .audit(caller.name(), action, &target, None, None)
        .await
    {
        tracing::error!(error = %error.chain(), "could not record a dashboard change in the audit trail");
    }
    Ok(see_other("/dashboard"))
}

async fn overview(
    State(engine): State<Engine>,
    axum::Extension(scheme): axum::Extension<crate::Scheme>,
    cookies: Cookies,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let Some((caller, csrf)) = logged_in(&engine, cookies, &headers).await? else {
        return Ok(see_other(LOGIN_PATH));
    };
    let token = caller.token();
    let mut body = format!(
        "<header><h1>pgforce</h1><form method=\"post\" action=\"/dashboard/logout\" class=\"inline\">
         <span>{} ({})</span> <button type=\"submit\">Log out</button></form></header>",
        escape(&token.name),
        token.role
    );
    body.push_str(&activity_chart(
        &engine.admin().activity(24, ACTIVITY_BUCKET_MINUTES).await?,
    ));
    for connection in engine
        .admin()
        .connection_views(Depth::WithMappings, caller.viewer())
        .await?
    {
        body.push_str(&connection_section(&engine, &connection, &caller, &csrf).await?);
        body.push_str(
            &odata::section(&engine, connection.id, &caller, &csrf, &headers, scheme).await?,
        );
    }
    body.push_str(&archive_section(&engine.recent_archive_jobs(20).await?));
    if caller.require(Role::Manage).is_ok() {
        body.push_str("<h2>Audit trail</h2><table id=\"audit\"><tr><th>When</th><th>Token</th><th>Action</th><th>Target</th></tr>");
        for entry in engine.admin().audit_trail(20).await? {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&entry.at),
                escape(&entry.actor),
                escape(&entry.action),
                escape(&entry.target)
            ));
        }
        body.push_str("</table>");
    }
    Ok(page("pgforce", true, &body).into_response())
}

/// The latest archive jobs with their step and counts (none: nothing shown).
fn archive_section(jobs: &[pgforce_sync::ArchiveJob]) -> String {
    if jobs.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h2>Archive jobs</h2><table id=\"archives\"><tr><th>Job</th><th>Object</th><th>Where</th>\
         <th>State</th><th>Step</th><th>Copied</th><th>Verified</th><th>Deleted</th>\
         <th>Refused</th><th>Error</th></tr>",
    );
    for job in jobs {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            job.id,
            escape(&job.object),
            escape(&job.where_clause),
            job.state.as_str(),
            job.step.as_str(),
            job.selected,
            job.verified,
            job.deleted,
            job.failed,
            escape(job.error.as_deref().unwrap_or(""))
        ));
    }
    out.push_str("</table>");
    out
}

/// Minutes per bar of the activity chart (24 hours: 144 bars).
const ACTIVITY_BUCKET_MINUTES: u32 = 10;

/// An SVG bar chart of records read (blue) and written (orange) per minute over the last
/// 24 hours, oldest on the left; each bar's title gives its figures.
fn activity_chart(slices: &[(i64, i64, i64)]) -> String {
    let bars = (24 * 60 / ACTIVITY_BUCKET_MINUTES) as i64;
    let per_minute = |records: i64| records as f64 / f64::from(ACTIVITY_BUCKET_MINUTES);
    let peak = slices
        .iter()
        .map(|(_, read, written)| per_minute(*read).max(per_minute(*written)))
        .fold(1.0_f64, f64::max);
    let (width, height) = (bars * 5, 120_i64);
    let mut svg = format!(
        "<h2>Activity, last 24 hours</h2><svg id=\"activity\" width=\"{width}\" height=\"{}\" role=\"img\" aria-label=\"records per minute\"><rect width=\"{width}\" height=\"{height}\" fill=\"#f6f8fa\"/>",
        height + 16
    );
    for (ago, read, written) in slices {
        let index = bars - 1 - ago / i64::from(ACTIVITY_BUCKET_MINUTES);
        if !(0..bars).contains(&index) {
            continue;
        }
        for (offset, records, color) in [(0, *read, "#0969da"), (2, *written, "#bc4c00")] {
            let bar = (per_minute(records) / peak * height as f64).round() as i64;
            if bar > 0 {
                svg.push_str(&format!(
                    "<rect x=\"{}\" y=\"{}\" width=\"2\" height=\"{bar}\" fill=\"{color}\"><title>{ago}–{} min ago: {read} read, {written} written</title></rect>",
                    index * 5 + offset,
                    height - bar,
                    ago + i64::from(ACTIVITY_BUCKET_MINUTES)
                ));
            }
        }
    }
    svg.push_str(&format!(
        "<text x=\"0\" y=\"{}\" font-size=\"11\">24 h ago</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">now — peak {peak:.1} records/min (blue read, orange written)</text></svg>",
        height + 13,
        width,
        height + 13
    ));
    svg
}

/// The mapping editor (`deploy`): an object name, then that object's fields from the
/// org's describe as checkboxes (those already mapped ticked), access and polling interval.
async fn mapping_editor(
    State(engine): State<Engine>,
    cookies: Cookies,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, Problem> {
    let Some((caller, csrf)) = logged_in(&engine, cookies, &headers).await? else {
        return Ok(see_other(LOGIN_PATH));
    };
    caller
        .require_recorded(&engine, Role::Deploy, &format!("GET {EDITOR_PATH}"))
        .await?;
    let params = form(query.as_deref().unwrap_or_default());
    let connection = field(&params, "connection")
        .and_then(|v| v.parse::<i64>().ok())
        .map(pgforce_sync::ConnectionId::from)
        .ok_or_else(|| Problem::bad_request("connection: a connection id is required"))?;
    let view = engine
        .admin()
        .connection_view(connection, Depth::WithMappings, caller.viewer())
        .await?;
    let object = field(&params, "object")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let mut body = format!(
        "<p><a href=\"/dashboard\">Back</a></p><h1>Mapping of connection {}</h1>
         <form method=\"get\" action=\"/dashboard/mappings/new\"><input type=\"hidden\" name=\"connection\" value=\"{connection}\">
         <label>Object <input name=\"object\" id=\"object\" value=\"{}\"></label> <button type=\"submit\" id=\"show-fields\">Show its fields</button></form>",
        escape(&view.name),
        escape(&object)
    );
    if !object.is_empty() {
        let describe = engine
            .admin()
            .describe_object(connection, &object, caller.viewer())
            .await?;
        let mapped: Vec<String> = view
            .mappings
            .iter()
            .find(|m| m.object.eq_ignore_ascii_case(&object))
            .and_then(|m| {
                m.config
                    .get("fields")
                    .and_then(|f| f.as_object())
                    .map(|f| f.keys().cloned().collect())
            })
            .unwrap_or_default();
        body.push_str(&format!(
            "<form method=\"post\" action=\"/dashboard/mappings\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">
             <input type=\"hidden\" name=\"connection\" value=\"{connection}\"><input type=\"hidden\" name=\"object\" value=\"{}\">
             <p><label>Access <select name=\"access\" id=\"access\"><option value=\"read_only\">read only</option><option value=\"read_write\">read and write</option></select></label>
             <label>Poll every <input name=\"polling_seconds\" id=\"polling\" value=\"60\" size=\"5\"> seconds</label></p>
             <table><tr><th></th><th>Field</th><th>Label</th><th>Type</th></tr>",
            escape(&csrf),
            escape(describe["name"].as_str().unwrap_or(&object))
        ));
        for f in describe["fields"].as_array().into_iter().flatten() {
            let name = f["name"].as_str().unwrap_or_default();
            let checked = if mapped.iter().any(|m| m == name) {
                " checked"
            } else {
                ""
            };
            body.push_str(&format!(
                "<tr><td><input type=\"checkbox\" name=\"fields\" value=\"{name}\" id=\"field-{name}\"{checked}></td><td>{name}</td><td>{}</td><td>{}</td></tr>",
                escape(f["label"].as_str().unwrap_or_default()),
                escape(f["type"].as_str().unwrap_or_default()),
                name = escape(name),
            ));
        }
        body.push_str(
            "</table><button type=\"submit\" id=\"save-mapping\">Save the mapping</button></form>",
        );
    }
    Ok(page("pgforce — mapping", false, &body).into_response())
}

/// Saves the editor's mapping (`deploy`, with the session's form token): checked against
/// the org before anything is kept, recorded in the audit trail.
async fn save_mapping(
    State(engine): State<Engine>,
    cookies: Cookies,
    headers: HeaderMap,
    body: String,
) -> Result<Response, Problem> {
    let Some((caller, fields)) = posted(
        &engine,
        cookies,
        &headers,
        &body,
        Role::Deploy,
        MAPPINGS_PATH,
    )
    .await?
    else {
        return Ok(see_other(LOGIN_PATH));
    };
    let connection = field(&fields, "connection")
        .and_then(|v| v.parse::<i64>().ok())
        .map(pgforce_sync::ConnectionId::from)
        .ok_or_else(|| Problem::bad_request("connection: a connection id is required"))?;
    let object = field(&fields, "object").unwrap_or_default();
    let chosen: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .filter(|(k, _)| k == "fields")
        .map(|(_, v)| (v.clone(), serde_json::json!({})))
        .collect();
    if chosen.is_empty() {
        return Err(Problem::bad_request("tick at least one field"));
    }
    let polling: u64 = field(&fields, "polling_seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let access = field(&fields, "access").unwrap_or("read_only");
    let document = serde_json::json!({ "version": 1, "mappings": [{ "object_name": object, "config": {
        "access": access, "sf_polling_seconds": polling, "fields": chosen } }] });
    let view = engine
        .admin()
        .connection_view(connection, Depth::Connection, caller.viewer())
        .await?;
    engine.import(&view.name, &document.to_string()).await?;
    let target = format!("mapping {}/{object}", view.name);
    if let Err(error) = engine
        .admin()
        .audit(
            caller.name(),
            "mapping.create",
            &target,
            None,
            Some(&document),
        )
        .await
    {
        tracing::error!(error = %error.chain(), "could not record a dashboard change in the audit trail");
    }
    Ok(see_other("/dashboard"))
}

/// How a state is painted: `ok` when healthy, `bad` when it stops the sync, else `warn`
/// (busy, or waiting).
fn state_class(healthy: bool, stopped: bool) -> &'static str {
    match (healthy, stopped) {
        (true, _) => "ok",
        (false, true) => "bad",
        (false, false) => "warn",
    }
}

async fn connection_section(
    engine: &Engine,
    connection: &pgforce_sync::ConnectionView,
    caller: &Caller,
    csrf: &str,
) -> Result<String, Problem> {
    let state = connection.state.as_str();
    let mut html = format!(
        "<h2>Connection {} <span class=\"{}\">{}</span>{}</h2>",
        escape(&connection.name),
        state_class(
            connection.state == ConnectionState::Idle,
            connection.state.is_error() || connection.state.is_paused()
        ),
        escape(state),
        if connection.paused { " (paused)" } else { "" }
    );
    if caller.require(Role::Deploy).is_ok() {
        html.push_str(&format!(
            "<p><a id=\"new-mapping-{}\" href=\"/dashboard/mappings/new?connection={}\">Add or change a mapping</a></p>",
            connection.id, connection.id
        ));
    }
    html.push_str("<table class=\"mappings\"><tr><th>Object</th><th>Access</th><th>State</th><th>Postgres rows</th><th>Salesforce records</th><th>Unsent</th><th>Refused</th><th>Last error</th></tr>");
    for mapping in &connection.mappings {
        let shown = shapes::mapping(mapping);
        let count =
            |v: &serde_json::Value| v.as_u64().map_or_else(|| "—".to_owned(), |n| n.to_string());
        let state = mapping.state.as_str();
        let progress = engine
            .load_progress(mapping.id)
            .map_or_else(String::new, |done| {
                format!(" <span class=\"progress\">loading: {done} records so far</span>")
            });
        html.push_str(&format!(
            "<tr data-object=\"{object}\"><td>{object}</td><td>{}</td><td class=\"state {}\">{}{progress}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            mapping.access.as_str(),
            state_class(
                mapping.state == MappingState::DataSynced,
                mapping.state.is_error()
            ),
            escape(state),
            count(&shown["counts"]["count"]),
            count(&shown["counts"]["sf"]),
            mapping.pending,
            mapping.errors,
            escape(mapping.last_error.as_deref().unwrap_or("")),
            object = escape(&mapping.object),
        ));
    }
    html.push_str("</table>");
    let failed = engine.admin().failed_writes(connection.id, None).await?;
    if !failed.is_empty() {
        let may_decide = caller.require(Role::Operate).is_ok();
        html.push_str("<h3>Refused by Salesforce (last 24 hours)</h3><table class=\"failed\"><tr><th>Log row</th><th>Table</th><th>Row</th><th>Salesforce's message</th><th></th></tr>");
        for write in failed {
            let buttons = if may_decide {
                ["retry", "ignore"]
                    .iter()
                    .map(|decision| {
                        format!(
                            "<form method=\"post\" action=\"/dashboard/writes\" class=\"inline\">
                             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"connection\" value=\"{}\">
                             <input type=\"hidden\" name=\"log_id\" value=\"{}\"><input type=\"hidden\" name=\"decision\" value=\"{decision}\">
                             <button type=\"submit\" id=\"{decision}-{}\">{}</button></form>",
                            escape(csrf),
                            connection.id,
                            write.log_id,
                            write.log_id,
                            if *decision == "retry" { "Retry" } else { "Ignore" }
                        )
                    })
                    .collect::<String>()
            } else {
                String::new()
            };
            html.push_str(&format!(
                "<tr id=\"failed-{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{buttons}</td></tr>",
                write.log_id,
                write.log_id,
                escape(&write.table),
                write.record_id.map_or_else(String::new, |r| r.to_string()),
                escape(&write.message)
            ));
        }
        html.push_str("</table>");
    }
    let notifications = engine
        .admin()
        .notifications(connection.id, &NotificationFilter::default(), 10)
        .await?;
    if !notifications.is_empty() {
        html.push_str("<h3>Notifications</h3><ul class=\"notifications\">");
        for n in notifications {
            html.push_str(&format!(
                "<li>{} <b>{}</b> {}{}</li>",
                escape(&n.created_at),
                escape(&n.event_type),
                escape(&n.message),
                if n.acknowledged {
                    " (acknowledged)"
                } else {
                    ""
                }
            ));
        }
        html.push_str("</ul>");
    }
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_activity_chart_places_slices_by_age_and_scales_to_the_peak() {
        let chart = activity_chart(&[(0, 100, 0), (1430, 0, 50)]);
        // The newest slice is the last bar, at full height; the oldest the first.
        assert!(
            chart.contains("<rect x=\"715\" y=\"0\" width=\"2\" height=\"120\""),
            "{chart}"
        );
        assert!(
            chart.contains("<rect x=\"2\" y=\"60\" width=\"2\" height=\"60\""),
            "{chart}"
        );
        assert!(
            chart.contains("0–10 min ago: 100 read, 0 written"),
            "{chart}"
        );
        assert!(
            activity_chart(&[]).contains("peak 1.0"),
            "an empty chart still draws"
        );
    }

    #[test]
    fn archive_jobs_show_their_counts_with_the_condition_escaped() {
        let job = pgforce_sync::ArchiveJob {
            id: 7,
            connection_id: pgforce_sync::ConnectionId::from(1),
            object: "Case".to_owned(),
            where_clause: "Subject = '<b>'".to_owned(),
            hard_delete: false,
            state: pgforce_sync::ArchiveState::Running,
            step: pgforce_sync::ArchiveStep::Delete,
            selected: 10,
            verified: 10,
            deleted: 4,
            failed: 0,
            error: None,
        };
        let html = archive_section(&[job]);
        assert!(
            html.contains("<td>running</td><td>delete</td><td>10</td><td>10</td><td>4</td>"),
            "{html}"
        );
        assert!(
            html.contains("&lt;b&gt;") && !html.contains("<b>"),
            "{html}"
        );
        assert_eq!(archive_section(&[]), "");
    }

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            escape("<b a=\"x\">&'"),
            "&lt;b a=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn login_tokens_are_random_and_compared_whole() {
        let (a, b) = (
            new_login_token().unwrap_or_default(),
            new_login_token().unwrap_or_default(),
        );
        assert!(is_login_token(&a) && is_login_token(&b), "{a} {b}");
        assert_ne!(a, b);
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, &b));
        assert!(!same_token(&a, &a[..42]), "a prefix is not the token");
        assert!(!is_login_token("not a token; Path=/"));
    }
}
