//! Writes to external objects of a writable source ("Writable External Objects"): REST
//! create, update and delete become OData `POST <set>`, `PATCH <set>(<key>)` and
//! `DELETE <set>(<key>)`, each one logged callout.
//!
//! The verbs and bodies are the OData 4.0 protocol's; what Salesforce's adapter sends exactly
//! (PUT or PATCH, `If-Match`, CSRF token fetch) is not documented, and the emulator sends no
//! CSRF token. A created record's `id` in the REST answer is its mapped Id, or its External
//! ID when the source has no ID mapping.

use std::time::Instant;

use axum::http::StatusCode;
use serde_json::{Map, Value as Json};

use super::callout::{self, CalloutRecord};
use super::objects::{Edm, ExternalObject, FieldSource};
use super::source::DataSource;
use super::translate::path_segment;
use crate::datetime;
use crate::error::ApiError;
use crate::state::Shared;

const JSON_MEDIA: &str = "application/json;odata.metadata=minimal";

/// Refuses writes when the source is not writable.
pub fn check_writable(object: &ExternalObject, source: &DataSource) -> Result<(), ApiError> {
    if source.writable {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "EXTERNAL_OBJECT_UNSUPPORTED_EXCEPTION",
            format!(
                "external object {}: external data source {} does not allow writes (Writable External Objects is off)",
                object.name, source.name
            ),
        ))
    }
}

/// A REST body's fields as an OData entity body (property names, Edm JSON values).
pub fn entity_body(
    object: &ExternalObject,
    fields: &Map<String, Json>,
    creating: bool,
) -> Result<Map<String, Json>, ApiError> {
    let mut body = Map::new();
    let mut external_id = None;
    for (name, value) in fields {
        if name == "attributes" {
            continue;
        }
        let field = object
            .fields
            .iter()
            .find(|f| f.def.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "INVALID_FIELD",
                    format!("No such column '{name}' on sobject of type {}", object.name),
                )
            })?;
        let allowed = if creating {
            field.def.createable
        } else {
            field.def.updateable
        };
        if !allowed {
            return Err(ApiError::bad_request(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    field.def.name
                ),
            )
            .with_fields(vec![field.def.name.clone()]));
        }
        match &field.source {
            FieldSource::Property { name, edm } => {
                body.insert(name.clone(), edm_value(&field.def.name, value, *edm)?);
            }
            FieldSource::ExternalId => external_id = Some(value.clone()),
            FieldSource::Id | FieldSource::DisplayUrl => {}
        }
    }
    if let Some(value) = external_id {
        let [(key, edm)] = object.key.as_slice() else {
            return Err(ApiError::bad_request(
                "INVALID_FIELD",
                format!(
                    "{} has a composite key: give the key fields, not ExternalId",
                    object.name
                ),
            ));
        };
        if body.contains_key(key) {
            return Err(ApiError::bad_request(
                "INVALID_FIELD",
                format!(
                    "give either ExternalId or the key field {key}__c of {}, not both",
                    object.name
                ),
            ));
        }
        let value = match (edm, value) {
            (Edm::Integer, Json::String(text)) => text
                .parse::<i64>()
                .map(Json::from)
                .map_err(|_| invalid_value("ExternalId", "an integer key"))?,
            (_, value) => value,
        };
        body.insert(key.clone(), value);
    }
    Ok(body)
}

fn invalid_value(field: &str, expected: &str) -> ApiError {
    ApiError::bad_request(
        "INVALID_FIELD",
        format!("field {field}: expected {expected}"),
    )
    .with_fields(vec![field.to_owned()])
}

/// A Salesforce JSON value as the property's Edm JSON value.
fn edm_value(field: &str, value: &Json, edm: Edm) -> Result<Json, ApiError> {
    Ok(match (edm, value) {
        (_, Json::Null) => Json::Null,
        (Edm::String | Edm::Guid | Edm::Binary, Json::String(_))
        | (Edm::Boolean, Json::Bool(_))
        | (Edm::Integer | Edm::Decimal | Edm::Floating, Json::Number(_)) => value.clone(),
        (Edm::Date, Json::String(text)) => {
            let days = datetime::parse_date(text)
                .or_else(|| datetime::parse_datetime(text).map(datetime::date_of))
                .ok_or_else(|| invalid_value(field, "a date"))?;
            Json::String(datetime::format_date(days))
        }
        (Edm::DateTimeOffset, Json::String(text)) => {
            let millis =
                datetime::parse_datetime(text).ok_or_else(|| invalid_value(field, "a datetime"))?;
            Json::String(datetime::format_datetime_z(millis))
        }
        (Edm::String | Edm::Guid | Edm::Binary, _) => return Err(invalid_value(field, "text")),
        (Edm::Boolean, _) => return Err(invalid_value(field, "true or false")),
        (Edm::Integer | Edm::Decimal | Edm::Floating, _) => {
            return Err(invalid_value(field, "a number"));
        }
        (Edm::Date | Edm::DateTimeOffset, _) => return Err(invalid_value(field, "a datetime")),
    })
}

/// `POST <set>`; answers the new record's External ID.
pub async fn create(
    shared: &Shared,
    object: &ExternalObject,
    source: &DataSource,
    body: Map<String, Json>,
) -> Result<String, ApiError> {
    let url = format!(
        "{}{}",
        source.service_root(),
        path_segment(&object.entity_set)
    );
    let answer = call(shared, source, reqwest::Method::POST, &url, Some(&body)).await?;
    let created = serde_json::from_slice::<Json>(&answer)
        .ok()
        .and_then(|v| match v {
            Json::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or(body);
    object.external_id(&created).ok_or_else(|| {
        ApiError::bad_request(
            "EXTERNAL_OBJECT_EXCEPTION",
            format!(
                "External data source {}: the created entity's key is unknown (neither the answer nor the request carried it)",
                source.name
            ),
        )
    })
}

/// `PATCH <set>(<key>)`.
pub async fn update(
    shared: &Shared,
    object: &ExternalObject,
    source: &DataSource,
    external_id: &str,
    body: Map<String, Json>,
) -> Result<(), ApiError> {
    let url = entity_url(object, source, external_id)?;
    call(shared, source, reqwest::Method::PATCH, &url, Some(&body)).await?;
    Ok(())
}

/// `DELETE <set>(<key>)`.
pub async fn delete(
    shared: &Shared,
    object: &ExternalObject,
    source: &DataSource,
    external_id: &str,
) -> Result<(), ApiError> {
    let url = entity_url(object, source, external_id)?;
    call(shared, source, reqwest::Method::DELETE, &url, None).await?;
    Ok(())
}

fn entity_url(
    object: &ExternalObject,
    source: &DataSource,
    external_id: &str,
) -> Result<String, ApiError> {
    let predicate = object
        .key_predicate(external_id)
        .map_err(|m| ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", m))?;
    Ok(format!(
        "{}{}({})",
        source.service_root(),
        path_segment(&object.entity_set),
        path_segment(&predicate)
    ))
}

/// One logged write callout; answers the response body. A 404 is Salesforce's NOT_FOUND.
async fn call(
    shared: &Shared,
    source: &DataSource,
    method: reqwest::Method,
    url: &str,
    body: Option<&Map<String, Json>>,
) -> Result<Vec<u8>, ApiError> {
    let url = callout::as_sent(url);
    let json = body.map(|b| Json::Object(b.clone()));
    let started = Instant::now();
    let result = callout::send(source, method.clone(), &url, JSON_MEDIA, json.as_ref()).await;
    let mut record = CalloutRecord {
        method: method.to_string(),
        url,
        status: None,
        rows: None,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        error: None,
    };
    let outcome = match result {
        Err(error) => Err(callout::error_for(&source.name, &error)),
        Ok(answer) => {
            record.status = Some(answer.status.as_u16());
            if answer.status == StatusCode::NOT_FOUND {
                Err(ApiError::not_found())
            } else if answer.status.is_success() {
                record.rows = Some(1);
                Ok(answer.body)
            } else {
                Err(callout::error_for_status(&source.name, &answer))
            }
        }
    };
    if let Err(error) = &outcome {
        record.error = Some(error.message.clone());
    }
    shared.connect().log(&source.name, record);
    outcome
}
