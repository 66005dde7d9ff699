//! The dashboard's OData section of a connection: the service's URL, state and usage
//! this hour against its limit, the relations it knows with their validity, and forms to
//! publish or unpublish (`deploy`) and to reset credentials (`manage`) — posted with the
//! session's form token like every dashboard change, and recorded in the audit trail. A
//! reset answers a page that shows the new password this once.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use pgforce_sync::{ConnectionId, Engine, Role};

use super::cookies::Cookies;
use super::{LOGIN_PATH, escape, field, page, posted, see_other};
use crate::Scheme;
use crate::auth::Caller;
use crate::problem::Problem;

/// Where the section's forms post.
pub const ODATA_PATH: &str = "/dashboard/odata";

/// The section of one connection's service.
pub async fn section(
    engine: &Engine,
    connection: ConnectionId,
    caller: &Caller,
    csrf: &str,
    headers: &HeaderMap,
    scheme: Scheme,
) -> Result<String, Problem> {
    let service = engine.admin().odata_service_of(connection).await?;
    let url = crate::api::odata_access_url(headers, scheme, &service.slug);
    let mut html = format!(
        "<h3>External objects (OData 4.0)</h3><p id=\"odata-{id}\">{url} — {state}{writable}; {used} of {limit} requests this hour</p>",
        id = service.id,
        url = escape(&url),
        state = if service.enabled {
            "enabled"
        } else {
            "disabled"
        },
        writable = if service.writable { ", writable" } else { "" },
        used = service.current_hourly_api_usage,
        limit = service.hourly_request_limit,
    );
    let may_publish = caller.require(Role::Deploy).is_ok();
    let form = |action: &str, relation: &str, label: &str, id: &str| {
        format!(
            "<form method=\"post\" action=\"{ODATA_PATH}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">
             <input type=\"hidden\" name=\"service\" value=\"{}\"><input type=\"hidden\" name=\"action\" value=\"{action}\">
             <input type=\"hidden\" name=\"relation\" value=\"{}\"><button type=\"submit\" id=\"{}\">{label}</button></form>",
            escape(csrf),
            service.id,
            escape(relation),
            escape(id)
        )
    };
    if !service.resources.is_empty() {
        html.push_str("<table class=\"odata\"><tr><th>Relation</th><th>Entity set</th><th>Published</th><th>Valid</th><th></th></tr>");
        for resource in &service.resources {
            let relation = format!("{}.{}", resource.schema_name, resource.table_name);
            let button = match (may_publish, resource.exported) {
                (false, _) => String::new(),
                (true, true) => form(
                    "unpublish",
                    &relation,
                    "Unpublish",
                    &format!("unpublish-{relation}"),
                ),
                (true, false) => form(
                    "publish",
                    &relation,
                    "Publish",
                    &format!("publish-{relation}"),
                ),
            };
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{button}</td></tr>",
                escape(&relation),
                escape(&resource.entity_set()),
                if resource.exported { "yes" } else { "no" },
                escape(resource.problem.as_deref().unwrap_or("yes")),
            ));
        }
        html.push_str("</table>");
    }
    if may_publish {
        html.push_str(&format!(
            "<form method=\"post\" action=\"{ODATA_PATH}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">
             <input type=\"hidden\" name=\"service\" value=\"{}\"><input type=\"hidden\" name=\"action\" value=\"publish\">
             <label>Publish <input name=\"relation\" id=\"odata-relation-{}\" placeholder=\"schema.table\"></label>
             <button type=\"submit\" id=\"odata-publish-{}\">Publish</button></form>",
            escape(csrf),
            service.id,
            service.id,
            service.id
        ));
    }
    if caller.require(Role::Manage).is_ok() && service.enabled {
        html.push_str(&form(
            "reset",
            "",
            "Reset credentials",
            &format!("odata-reset-{}", service.id),
        ));
    }
    Ok(html)
}

/// Publishes, unpublishes (`deploy`) or resets credentials (`manage`).
pub async fn act(
    State(engine): State<Engine>,
    cookies: Cookies,
    headers: HeaderMap,
    body: String,
) -> Result<Response, Problem> {
    let fields = super::form(&body);
    let action = field(&fields, "action").unwrap_or_default().to_owned();
    let role = if action == "reset" {
        Role::Manage
    } else {
        Role::Deploy
    };
    let Some((caller, fields)) =
        posted(&engine, cookies, &headers, &body, role, ODATA_PATH).await?
    else {
        return Ok(see_other(LOGIN_PATH));
    };
    let service = field(&fields, "service")
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| Problem::bad_request("service: an OData service id is required"))?;
    let relation = field(&fields, "relation")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let admin = engine.admin();
    let target = format!("odata service {service}");
    let audit = |action: &'static str, detail: serde_json::Value| {
        let admin = admin.clone();
        let caller = caller.name().to_owned();
        let target = target.clone();
        async move {
            if let Err(error) = admin
                .audit(&caller, action, &target, None, Some(&detail))
                .await
            {
                tracing::error!(error = %error.chain(), "could not record a dashboard change in the audit trail");
            }
        }
    };
    let split = || {
        relation
            .split_once('.')
            .filter(|(s, t)| !s.is_empty() && !t.is_empty())
            .ok_or_else(|| Problem::bad_request("relation: name it as schema.table"))
    };
    match action.as_str() {
        "publish" => {
            let (schema, table) = split()?;
            admin.odata_publish(service, schema, table).await?;
            audit(
                "odata.publish",
                serde_json::json!({ "published": relation }),
            )
            .await;
        }
        "unpublish" => {
            let (schema, table) = split()?;
            admin.odata_unpublish(service, schema, table).await?;
            audit(
                "odata.unpublish",
                serde_json::json!({ "unpublished": relation }),
            )
            .await;
        }
        "reset" => {
            let made = admin.odata_reset(service).await?;
            audit(
                "odata.credentials.reset",
                serde_json::json!({ "user": made.user }),
            )
            .await;
            let body = format!(
                "<p><a href=\"/dashboard\">Back</a></p><h1>New OData credentials</h1>
                 <p>User <code id=\"odata-user\">{}</code>, password <code id=\"odata-password\">{}</code>.</p>
                 <p>The password is shown only now. The previous credentials keep working for 10 minutes.</p>",
                escape(&made.user),
                escape(&made.password)
            );
            return Ok(page("pgforce — OData credentials", false, &body).into_response());
        }
        _ => {
            return Err(Problem::bad_request(
                "action must be publish, unpublish or reset",
            ));
        }
    }
    Ok(see_other("/dashboard"))
}
