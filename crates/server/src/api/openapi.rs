//! The OpenAPI 3.0 document of the management API, served at `/api/openapi.json`.
//!
//! Operations come from the route table (`super::table`): paths, methods, roles (in each
//! description), parameters and bodies are those the router serves, so the document cannot
//! list a route that is not there or miss one that is. The schemas below describe the
//! shapes `super::shapes` writes; a property-based fuzz run (schemathesis, in the test
//! command) checks every answer against them.

use serde_json::{Map, Value, json};

use super::table::{self, Route};

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for route in table::all() {
        let path = format!("/api/v3{}", route.path);
        let entry = paths
            .entry(path)
            .or_insert_with(|| Value::Object(Map::new()));
        entry[route.method.as_str().to_ascii_lowercase()] = operation(&route);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "pgforce management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Heroku Connect's API v3 paths and shapes, served by `pgforce run`. Every operation needs `Authorization: Bearer <token>` (`pgforce token create`) whose role includes the one its description names.",
        },
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas(),
        },
    })
}

/// One operation.
fn operation(route: &Route) -> Value {
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    parameters.extend(route.query.iter().map(|(name, kind, what)| {
        json!({ "name": name, "in": "query", "required": false, "description": what, "schema": { "type": kind } })
    }));
    let (status, answer) = route.answer;
    let success = match answer {
        Some(schema) => json!({
            "description": "done",
            "content": { "application/json": { "schema": reference(schema) } },
        }),
        None => json!({ "description": "done, no body" }),
    };
    let mut responses = Map::new();
    responses.insert(status.to_string(), success);
    responses.insert(
        "default".to_owned(),
        json!({
            "description": "an error: 400 bad input, 401 no valid token, 403 role too weak, 404 not found, 405 method, 409 exists already, 422 invalid settings, 429 the token spent its Salesforce calls for the hour, 502 Salesforce, 503 unavailable",
            "content": { "application/json": { "schema": reference("Problem") } },
        }),
    );
    let mut operation = json!({
        "operationId": operation_id(route),
        "summary": route.summary,
        "description": format!("Role: {}.", route.role),
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(schema) = route.body {
        operation["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": reference(schema) } },
        });
    }
    operation
}

/// `get_connections_id_mappings` and the like: unique per method and path.
fn operation_id(route: &Route) -> String {
    let path: Vec<&str> = route
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_start_matches('{').trim_end_matches('}'))
        .collect();
    format!(
        "{}_{}",
        route.method.as_str().to_ascii_lowercase(),
        path.join("_")
    )
}

fn reference(schema: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{schema}") })
}

fn list_of(schema: &str) -> Value {
    json!({
        "type": "object",
        "required": ["count", "results"],
        "properties": {
            "count": { "type": "integer", "minimum": 0 },
            "results": { "type": "array", "items": reference(schema) },
        },
    })
}

fn nullable(kind: &str) -> Value {
    json!({ "type": kind, "nullable": true })
}

/// Every schema the operations name.
fn schemas() -> Value {
    let text = json!({ "type": "string" });
    let mut all = Map::new();
    for part in [
        first_schemas(&text),
        validation_schemas(&text),
        other_schemas(&text),
    ] {
        if let Value::Object(part) = part {
            all.extend(part);
        }
    }
    Value::Object(all)
}

/// Problems, connections and mappings.
fn first_schemas(text: &Value) -> Value {
    json!({
        "Problem": {
            "type": "object",
            "required": ["id", "message"],
            "properties": { "id": text, "message": text },
        },
        "Empty": { "type": "object" },
        "Connection": {
            "type": "object",
            "required": ["id", "name", "schema_name", "state", "paused", "detail_url", "sf_info"],
            "properties": {
                "id": text, "name": text, "internal_name": text, "resource_name": text,
                "app_name": text, "schema_name": text, "db_key": text, "state": text,
                "mappings_summary_state": text, "paused": { "type": "boolean" },
                "state_description": text, "detail_url": text,
                "sf_info": { "type": "object", "properties": { "api_version": text } },
                "features": { "type": "object" },
                "mappings": { "type": "array", "items": reference("Mapping") },
                "odata": {
                    "type": "object",
                    "required": ["id", "slug"],
                    "properties": { "id": text, "slug": text },
                },
            },
        },
        "ConnectionList": list_of("Connection"),
        "Mapping": {
            "type": "object",
            "required": ["id", "object_name", "state", "access", "config", "counts", "connection"],
            "properties": {
                "id": text, "object_name": text, "table_name": text, "state": text,
                "state_description": text, "paused": { "type": "boolean" },
                "access": { "type": "string", "enum": ["read_only", "read_write"] },
                "sf_polling_seconds": nullable("integer"),
                "sf_notify_enabled": { "type": "boolean" },
                "config": { "type": "object" },
                "counts": {
                    "type": "object",
                    "required": ["count", "sf", "pending", "errors"],
                    "properties": {
                        "count": nullable("integer"), "sf": nullable("integer"),
                        "pending": { "type": "integer" }, "errors": { "type": "integer" },
                    },
                },
                "actively_writing": { "type": "boolean" },
                "detail_url": text, "errors_url": text,
                "connection": { "type": "object", "required": ["id"], "properties": { "id": text } },
            },
        },
        "MappingList": list_of("Mapping"),
        "NewMapping": {
            "type": "object",
            "required": ["object_name", "config"],
            "properties": { "object_name": text, "config": { "type": "object" } },
        },
        "NewConnection": {
            "type": "object",
            "required": ["name", "login_url", "auth", "client_id"],
            "properties": {
                "name": text, "schema_name": text, "login_url": text,
                "auth": { "type": "string", "enum": ["password", "refresh_token", "jwt", "client_credentials"] },
                "username": text, "password": text, "client_id": text, "client_secret": text,
                "refresh_token": text, "private_key": text, "ca_certificate": text,
                "api_version": text,
            },
        },
        "ConnectionChange": {
            "type": "object",
            "properties": {
                "db_key": text, "schema_name": text,
                "login_url": text,
                "auth": { "type": "string", "enum": ["password", "refresh_token", "jwt", "client_credentials"] },
                "username": text, "password": text, "client_id": text, "client_secret": text,
                "refresh_token": text, "private_key": text, "ca_certificate": text,
                "api_version": text,
            },
        },
    })
}

/// Diagnoses.
fn validation_schemas(text: &Value) -> Value {
    json!({
        "ODataResource": {
            "type": "object",
            "required": ["id", "services", "exported", "schema_name", "table_name", "is_valid"],
            "properties": {
                "id": text, "services": { "type": "array", "items": text },
                "exported": { "type": "boolean" }, "schema_name": text, "table_name": text,
                "entity_set": text, "is_valid": { "type": "boolean" },
                "problem": nullable("string"), "type": nullable("string"),
            },
        },
        "ODataService": {
            "type": "object",
            "required": ["id", "slug", "connection", "enabled", "access_url", "resources",
                         "api_hourly_rate_limit", "current_hourly_api_usage", "credentials",
                         "statement_timeout"],
            "properties": {
                "id": text, "slug": text,
                "connection": { "type": "object", "required": ["id"], "properties": { "id": text } },
                "enabled": { "type": "boolean" }, "writable": { "type": "boolean" },
                "search_enabled": { "type": "boolean" }, "access_url": text,
                "resources": { "type": "array", "items": reference("ODataResource") },
                "api_hourly_rate_limit": { "type": "integer" },
                "current_hourly_api_usage": { "type": "integer", "minimum": 0 },
                "credentials": {
                    "type": "object",
                    "properties": { "user": nullable("string"), "password": text },
                },
                "statement_timeout": { "type": "integer" },
                "detail_url": text,
            },
        },
        "ODataServiceList": list_of("ODataService"),
        "ODataServiceChange": {
            "type": "object",
            "properties": {
                "enabled": { "type": "boolean" }, "writable": { "type": "boolean" },
                "search_enabled": { "type": "boolean" },
                "api_hourly_rate_limit": { "type": "integer", "minimum": 1 },
                "statement_timeout": { "type": "integer", "minimum": 100, "maximum": 120000 },
                "credential_overlap_seconds": { "type": "integer", "minimum": 0 },
            },
        },
        "Redirect": {
            "type": "object",
            "required": ["redirect"],
            "properties": { "redirect": text },
        },
        "ValidationStarted": {
            "type": "object",
            "required": ["result_url"],
            "properties": { "result_url": text },
        },
        "Check": {
            "type": "object",
            "required": ["display_name", "message", "rule_id", "status"],
            "properties": {
                "display_name": text, "message": text, "doc_url": text, "rule_id": text,
                "status": { "type": "string", "enum": ["PASSED", "FAILED", "SKIPPED"] },
            },
        },
        "Checks": {
            "type": "object",
            "required": ["errors", "warnings", "passes", "skips"],
            "properties": {
                "errors": { "type": "array", "items": reference("Check") },
                "warnings": { "type": "array", "items": reference("Check") },
                "passes": { "type": "array", "items": reference("Check") },
                "skips": { "type": "array", "items": reference("Check") },
            },
        },
        "Diagnosis": {
            "allOf": [reference("Checks")],
            "properties": {
                "mappings": { "type": "object", "additionalProperties": reference("Checks") },
            },
        },
    })
}

/// Failed writes, documents, describes, notifications, the audit trail.
fn other_schemas(text: &Value) -> Value {
    let count = json!({ "type": "integer" });
    json!({
        "NewArchive": {
            "type": "object",
            "required": ["object", "where"],
            "properties": {
                "object": text, "where": text,
                "hard_delete": { "type": "boolean" }, "publish": { "type": "boolean" },
            },
        },
        "ArchiveStarted": {
            "type": "object",
            "required": ["id", "status_url"],
            "properties": { "id": count, "status_url": text, "entity_set": nullable("string") },
        },
        "ArchiveJob": {
            "type": "object",
            "required": ["id", "object", "where", "state", "step", "counts"],
            "properties": {
                "id": count, "connection_id": count, "object": text, "where": text,
                "hard_delete": { "type": "boolean" }, "state": text, "step": text,
                "counts": {
                    "type": "object",
                    "properties": {
                        "selected": count, "verified": count, "deleted": count, "failed": count,
                    },
                },
                "error": nullable("string"), "status_url": text,
            },
        },
        "FailedWrite": {
            "type": "object",
            "required": ["id", "table_name", "message", "created_at"],
            "properties": {
                "id": { "type": "integer" }, "table_name": text, "record_id": nullable("integer"),
                "message": text, "created_at": text,
            },
        },
        "FailedWriteList": list_of("FailedWrite"),
        "ExportDocument": {
            "type": "object",
            "required": ["mappings", "version"],
            "properties": {
                "version": { "type": "integer", "enum": [1] },
                "connection": { "type": "object" },
                "mappings": { "type": "array", "items": reference("NewMapping") },
            },
        },
        "Imported": {
            "type": "object",
            "required": ["mappings"],
            "properties": { "mappings": { "type": "integer" } },
        },
        "Describe": {
            "type": "object",
            "required": ["name", "fields"],
            "properties": {
                "name": text, "label": text,
                "fields": { "type": "array", "items": {
                    "type": "object",
                    "required": ["name", "type"],
                    "properties": {
                        "name": text, "label": text, "type": text, "length": { "type": "integer" },
                        "required": { "type": "boolean" }, "createable": { "type": "boolean" },
                        "updateable": { "type": "boolean" }, "unique": { "type": "boolean" },
                        "external_id": { "type": "boolean" },
                        "reference_to": { "type": "array", "items": text },
                    },
                } },
            },
        },
        "Notification": {
            "type": "object",
            "required": ["id", "created_at", "event_type", "message"],
            "properties": {
                "id": { "type": "integer" }, "created_at": text, "event_type": text,
                "subject": text, "message": text, "acknowledged": { "type": "boolean" },
            },
        },
        "NotificationList": list_of("Notification"),
        "AuditEntry": {
            "type": "object",
            "required": ["id", "created_at", "token", "action", "target"],
            "properties": {
                "id": { "type": "integer" }, "created_at": text, "token": text, "action": text,
                "target": text, "before": {}, "after": {},
            },
        },
        "AuditList": list_of("AuditEntry"),
        "AuthAnswer": {
            "type": "object",
            "required": ["user", "connections"],
            "properties": {
                "user": { "type": "object" },
                "connections": { "type": "array", "items": { "type": "object" } },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_once_with_its_role_and_every_schema_it_names_exists() {
        let document = document();
        let routes = table::all();
        let operations: usize = document["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .values()
                    .map(|p| p.as_object().map_or(0, Map::len))
                    .sum()
            })
            .unwrap_or(0);
        assert_eq!(operations, routes.len());
        for route in &routes {
            let path = format!("/api/v3{}", route.path);
            let operation = &document["paths"][&path][route.method.as_str().to_ascii_lowercase()];
            assert_eq!(
                operation["description"],
                format!("Role: {}.", route.role),
                "{path}"
            );
        }
        let text = document.to_string();
        let schemas = &document["components"]["schemas"];
        for reference in text.split("#/components/schemas/").skip(1) {
            let name: String = reference
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(schemas.get(&name).is_some(), "schema {name} is defined");
        }
    }
}
