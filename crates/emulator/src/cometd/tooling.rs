//! Selecting objects for Change Data Capture the way Salesforce does: channel members of
//! the standard `ChangeEvents` channel, through the Tooling API.
//!
//! `POST /tooling/sobjects/PlatformEventChannelMember` with
//! `{"FullName": "ChangeEvents_AccountChangeEvent", "Metadata": {"eventChannel":
//! "ChangeEvents", "selectedEntity": "AccountChangeEvent"}}` selects Account;
//! `DELETE /tooling/sobjects/PlatformEventChannelMember/{id}` removes it again, and
//! `GET /tooling/query?q=SELECT Id, FullName, SelectedEntity FROM PlatformEventChannelMember`
//! lists the members. The change log's CDC selection is the only state: a member's Id is
//! derived from its object, so the control API (`PUT /__emulator/events/cdc`) and the
//! Tooling API see the same members. Custom channels (`X__chn`) are not offered.
//!
//! The org may select only so many entities ([`crate::events::DEFAULT_CDC_ENTITY_ALLOCATION`] unless the
//! control API changes it): one more is refused with `LIMIT_EXCEEDED`. Salesforce documents
//! the allocation but not the error a selection beyond it gets; the code and status here
//! are the emulator's choice.

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value as Json, json};

use super::channels::{change_entity_name, object_of_change_entity};
use crate::api::context::RequestContext;
use crate::api::rest::{ApiResult, json_response, method_not_allowed};
use crate::error::ApiError;
use crate::org::{ObjectIndex, Org, ParsedId, mint_id};

/// The Tooling API object of a channel member.
const MEMBER_OBJECT: &str = "PlatformEventChannelMember";
/// Its Id prefix.
const MEMBER_PREFIX: &str = "0v8";
/// The standard channel of Change Data Capture.
const CHANGE_EVENTS_CHANNEL: &str = "ChangeEvents";
/// Fields a member has, as the Tooling API names them.
const MEMBER_FIELDS: [&str; 5] = [
    "Id",
    "FullName",
    "DeveloperName",
    "EventChannel",
    "SelectedEntity",
];

/// Routes `/tooling/...` (the path after `tooling`).
pub fn route(ctx: &RequestContext, path: &[&str]) -> ApiResult {
    let m = &ctx.method;
    match path {
        ["sobjects", object] if object.eq_ignore_ascii_case(MEMBER_OBJECT) => match *m {
            Method::POST => create(ctx),
            _ => Err(method_not_allowed(m)),
        },
        ["sobjects", object, id] if object.eq_ignore_ascii_case(MEMBER_OBJECT) => match *m {
            Method::GET => retrieve(ctx, id),
            Method::DELETE => delete(ctx, id),
            _ => Err(method_not_allowed(m)),
        },
        ["query"] if m == Method::GET => query(ctx),
        _ => Err(ApiError::not_found()),
    }
}

fn member_id(object: ObjectIndex) -> String {
    mint_id(MEMBER_PREFIX, u64::from(object) + 1)
}

/// The object a member Id stands for, when it is selected.
fn member_object(org: &Org, id: &str) -> Option<ObjectIndex> {
    let parsed = ParsedId::parse(id).ok()?;
    if parsed.prefix() != MEMBER_PREFIX {
        return None;
    }
    let object = ObjectIndex::try_from(parsed.seq()?.checked_sub(1)?).ok()?;
    org.changes().is_cdc_enabled(object).then_some(object)
}

fn member_json(org: &Org, object: ObjectIndex, fields: &[&str], version: &str) -> Json {
    let entity = change_entity_name(org.schema(), object);
    let id = member_id(object);
    let mut record = Map::new();
    record.insert(
        "attributes".to_owned(),
        json!({
            "type": MEMBER_OBJECT,
            "url": format!("/services/data/v{version}/tooling/sobjects/{MEMBER_OBJECT}/{id}"),
        }),
    );
    let developer_name = format!("{CHANGE_EVENTS_CHANNEL}_{entity}");
    for field in fields {
        let value = match *field {
            "Id" => json!(id),
            "FullName" => json!(format!("{CHANGE_EVENTS_CHANNEL}_{entity}")),
            "DeveloperName" => json!(developer_name),
            "EventChannel" => json!(CHANGE_EVENTS_CHANNEL),
            "SelectedEntity" => json!(entity),
            _ => continue,
        };
        record.insert((*field).to_owned(), value);
    }
    Json::Object(record)
}

fn create(ctx: &RequestContext) -> ApiResult {
    let body = ctx.json_object()?;
    let metadata = body
        .get("Metadata")
        .and_then(Json::as_object)
        .ok_or_else(|| {
            ApiError::bad_request("REQUIRED_FIELD_MISSING", "Metadata is required")
                .with_fields(vec!["Metadata".to_owned()])
        })?;
    let text = |key: &str| metadata.get(key).and_then(Json::as_str).unwrap_or_default();
    let channel = text("eventChannel");
    if channel != CHANGE_EVENTS_CHANNEL {
        return Err(ApiError::bad_request(
            "FIELD_INTEGRITY_EXCEPTION",
            format!(
                "eventChannel {channel:?} is not supported: only the standard ChangeEvents channel is"
            ),
        )
        .with_fields(vec!["EventChannel".to_owned()]));
    }
    let entity = text("selectedEntity");
    let mut org = ctx.shared.org_mut();
    let Some(object) = object_of_change_entity(org.schema(), entity) else {
        return Err(ApiError::bad_request(
            "FIELD_INTEGRITY_EXCEPTION",
            format!(
                "selectedEntity {entity:?} is not a change event entity of this org (AccountChangeEvent, Invoice__ChangeEvent for Invoice__c, …)"
            ),
        )
        .with_fields(vec!["SelectedEntity".to_owned()]));
    };
    if org.changes().is_cdc_enabled(object) {
        return Err(ApiError::bad_request(
            "DUPLICATE_VALUE",
            format!("{entity} is already a member of the ChangeEvents channel"),
        )
        .with_fields(vec!["SelectedEntity".to_owned()]));
    }
    if !org.changes().has_room_for_cdc() {
        let allocation = org.changes().cdc_allocation().unwrap_or_default();
        return Err(ApiError::bad_request(
            "LIMIT_EXCEEDED",
            format!(
                "cannot select {entity}: the org's Change Data Capture allocation of {allocation} entities is used up (remove a selection, or add the Change Data Capture add-on)"
            ),
        )
        .with_fields(vec!["SelectedEntity".to_owned()]));
    }
    org.changes_mut().enable_cdc(object);
    Ok(json_response(
        StatusCode::CREATED,
        &json!({ "id": member_id(object), "success": true, "errors": [], "warnings": [], "infos": [] }),
    ))
}

fn retrieve(ctx: &RequestContext, id: &str) -> ApiResult {
    let org = ctx.shared.org();
    let object = member_object(&org, id).ok_or_else(ApiError::not_found)?;
    Ok(json_response(
        StatusCode::OK,
        &member_json(&org, object, &MEMBER_FIELDS, &ctx.version),
    ))
}

fn delete(ctx: &RequestContext, id: &str) -> ApiResult {
    let mut org = ctx.shared.org_mut();
    let object = member_object(&org, id).ok_or_else(ApiError::not_found)?;
    org.changes_mut().disable_cdc(object);
    Ok(axum::response::IntoResponse::into_response(
        StatusCode::NO_CONTENT,
    ))
}

/// The fields of `SELECT <fields> FROM PlatformEventChannelMember`, in the member's
/// spelling; the only query the Tooling API serves here.
fn parse_member_query(soql: &str) -> Result<Vec<&'static str>, ApiError> {
    let malformed = |message: String| ApiError::bad_request("MALFORMED_QUERY", message);
    let words: Vec<&str> = soql.split_whitespace().collect();
    let from = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("FROM"))
        .ok_or_else(|| malformed("expected FROM".to_owned()))?;
    if !words
        .first()
        .is_some_and(|w| w.eq_ignore_ascii_case("SELECT"))
    {
        return Err(malformed("expected SELECT".to_owned()));
    }
    match words.get(from + 1..) {
        Some([object]) if object.eq_ignore_ascii_case(MEMBER_OBJECT) => {}
        Some([object]) => {
            return Err(ApiError::bad_request(
                "INVALID_TYPE",
                format!("sObject type '{object}' is not supported by the emulator's Tooling API"),
            ));
        }
        _ => {
            return Err(malformed(
                "only SELECT <fields> FROM PlatformEventChannelMember is supported".to_owned(),
            ));
        }
    }
    let list = words.get(1..from).unwrap_or_default().join(" ");
    list.split(',')
        .map(str::trim)
        .map(|name| {
            MEMBER_FIELDS
                .iter()
                .copied()
                .find(|f| f.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "INVALID_FIELD",
                        format!("No such column '{name}' on entity '{MEMBER_OBJECT}'"),
                    )
                })
        })
        .collect()
}

fn query(ctx: &RequestContext) -> ApiResult {
    let soql = ctx.param("q").unwrap_or_default();
    let fields = parse_member_query(soql)?;
    let org = ctx.shared.org();
    let records: Vec<Json> = org
        .changes()
        .cdc_entities()
        .map(|object| member_json(&org, object, &fields, &ctx.version))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "size": records.len(),
            "totalSize": records.len(),
            "done": true,
            "queryLocator": null,
            "entityTypeName": MEMBER_OBJECT,
            "records": records,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_queries_name_known_fields_only() {
        assert_eq!(
            parse_member_query(
                "SELECT Id, FullName, SelectedEntity FROM PlatformEventChannelMember"
            )
            .unwrap(),
            vec!["Id", "FullName", "SelectedEntity"]
        );
        assert_eq!(
            parse_member_query("select id from platformeventchannelmember").unwrap(),
            vec!["Id"]
        );
        assert_eq!(
            parse_member_query("SELECT Nope FROM PlatformEventChannelMember")
                .unwrap_err()
                .code,
            "INVALID_FIELD"
        );
        assert_eq!(
            parse_member_query("SELECT Id FROM ApexClass")
                .unwrap_err()
                .code,
            "INVALID_TYPE"
        );
    }
}
