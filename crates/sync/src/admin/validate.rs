//! Diagnosing a connection, as Heroku Connect's `validations` do: checks of the connection
//! (the org accepts its credentials, a recent API version, not paused, API allocation)
//! and of each mapping (its fields exist and are readable, its upsert field is an External
//! ID, its state, refused writes, rejected records), each passed, failed (an error or a
//! warning) or skipped, with a message saying what to do.

use pgforce_store::ConnectionId;
use pgforce_store::catalog::validations;
use serde_json::Value;

use super::{Admin, ConnectionView, Depth, MappingView};
use crate::call_budget::Viewer;
use crate::error::{Error, Result};

/// The oldest API version that does not draw a warning.
const RECENT_API_VERSION: f64 = 58.0;

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do.
    Passed,
    /// Works, but should be looked at.
    Warning,
    /// Broken: sync cannot work as configured.
    Error,
    /// Could not be checked (the reason is in the message).
    Skipped,
}

/// One check.
#[derive(Debug, Clone)]
pub struct Check {
    /// A stable id (`MUST_LOG_IN`, `MAPPED_FIELDS_MUST_EXIST`, …).
    pub rule_id: &'static str,
    /// What is checked, for people.
    pub display_name: &'static str,
    /// How it ended.
    pub outcome: Outcome,
    /// What was found and what to do.
    pub message: String,
}

fn check(
    rule_id: &'static str,
    display_name: &'static str,
    outcome: Outcome,
    message: impl Into<String>,
) -> Check {
    Check {
        rule_id,
        display_name,
        outcome,
        message: message.into(),
    }
}

/// A connection's diagnosis.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    /// Checks of the connection.
    pub connection: Vec<Check>,
    /// Checks of each mapping, by object.
    pub mappings: Vec<(String, Vec<Check>)>,
}

impl Admin {
    /// Diagnoses a connection and its mappings (one describe call per mapping).
    pub async fn diagnose(&self, id: ConnectionId) -> Result<Diagnosis> {
        let view = self
            .connection_view(id, Depth::WithMappings, Viewer::Operator)
            .await?;
        let pg = self.engine.session().await?;
        let live = self
            .engine
            .live_connection(&pg, &view.name)
            .await
            .ok()
            .map(|(_, live)| live);
        let mut connection = vec![api_version_check(&view), paused_check(&view)];
        let reachable = match &live {
            None => {
                connection.push(check(
                    "MUST_LOG_IN",
                    "The org accepts the connection's credentials",
                    Outcome::Skipped,
                    "this pgforce holds no credentials for the connection",
                ));
                false
            }
            Some(live) => match live.salesforce.describe_global().await {
                Ok(_) => {
                    connection.push(check(
                        "MUST_LOG_IN",
                        "The org accepts the connection's credentials",
                        Outcome::Passed,
                        "logged in",
                    ));
                    true
                }
                Err(error) => {
                    connection.push(check("MUST_LOG_IN", "The org accepts the connection's credentials", Outcome::Error, format!("{}; renew the credentials (PATCH the connection, or its configuration file)", crate::error::chain(&error))));
                    false
                }
            },
        };
        if let Some((_, usage)) = self
            .engine
            .api_usage()
            .into_iter()
            .find(|(name, _)| *name == view.name)
        {
            let share = usage.used as f64 / usage.limit.max(1) as f64;
            let outcome = if share >= 0.9 {
                Outcome::Warning
            } else {
                Outcome::Passed
            };
            connection.push(check(
                "SHOULD_HAVE_API_REQUESTS_LEFT",
                "The org has API requests left today",
                outcome,
                format!("{} of {} daily API requests used", usage.used, usage.limit),
            ));
        }
        let mut mappings = Vec::new();
        for mapping in &view.mappings {
            let mut checks = vec![state_check(mapping), failed_writes_check(mapping)];
            match (&live, reachable) {
                (Some(live), true) => match live.salesforce.describe(&mapping.object).await {
                    Ok(describe) => checks.extend(field_checks(&mapping.config, &describe)),
                    Err(error) => checks.push(check(
                        "OBJECT_MUST_EXIST",
                        "The object exists and is readable",
                        Outcome::Error,
                        crate::error::chain(&error),
                    )),
                },
                _ => checks.push(check(
                    "MAPPED_FIELDS_MUST_EXIST",
                    "Mapped fields exist and are readable",
                    Outcome::Skipped,
                    "the org could not be reached",
                )),
            }
            mappings.push((mapping.object.clone(), checks));
        }
        Ok(Diagnosis {
            connection,
            mappings,
        })
    }
}

impl Admin {
    /// Keeps a diagnosis as the API shows it; returns its id.
    pub async fn keep_diagnosis(&self, connection: ConnectionId, shown: &Value) -> Result<i64> {
        let pg = self.engine.session().await?;
        validations::save(&*pg, connection, &shown.to_string())
            .await
            .map_err(Error::catalog)
    }

    /// A kept diagnosis of `connection`.
    pub async fn kept_diagnosis(&self, connection: ConnectionId, id: i64) -> Result<Value> {
        let pg = self.engine.session().await?;
        let text = validations::find(&*pg, connection, id)
            .await
            .map_err(Error::catalog)?
            .ok_or_else(|| Error::NotFound {
                what: format!("connection {connection} has no validation {id}"),
            })?;
        serde_json::from_str(&text).map_err(|e| Error::Document {
            problem: format!("validation {id} is not JSON: {e}"),
        })
    }
}

fn api_version_check(view: &ConnectionView) -> Check {
    let version: f64 = view.api_version.parse().unwrap_or(0.0);
    if version >= RECENT_API_VERSION {
        check(
            "MUST_USE_RECENT_API_VERSION",
            "A recent Salesforce API version",
            Outcome::Passed,
            format!("API version {}", view.api_version),
        )
    } else {
        check(
            "MUST_USE_RECENT_API_VERSION",
            "A recent Salesforce API version",
            Outcome::Warning,
            format!(
                "API version {} is older than {RECENT_API_VERSION:.1}; Salesforce retires old versions: raise api_version",
                view.api_version
            ),
        )
    }
}

fn paused_check(view: &ConnectionView) -> Check {
    if view.paused {
        check(
            "SHOULD_NOT_BE_PAUSED",
            "The connection is not paused",
            Outcome::Warning,
            "paused by an operator: nothing is read or written until it is resumed",
        )
    } else if view.state.as_str().starts_with("PAUSED_") {
        check(
            "SHOULD_NOT_BE_PAUSED",
            "The connection is not paused",
            Outcome::Warning,
            format!(
                "{}: {}",
                view.state.as_str(),
                view.last_error.clone().unwrap_or_default()
            ),
        )
    } else {
        check(
            "SHOULD_NOT_BE_PAUSED",
            "The connection is not paused",
            Outcome::Passed,
            view.state.as_str(),
        )
    }
}

fn state_check(mapping: &MappingView) -> Check {
    let state = mapping.state.as_str();
    if mapping.state.is_error() {
        let why = mapping.last_error.clone().unwrap_or_default();
        check(
            "MAPPING_MUST_SYNC",
            "The mapping syncs",
            Outcome::Error,
            format!("{state}: {why}"),
        )
    } else {
        check(
            "MAPPING_MUST_SYNC",
            "The mapping syncs",
            Outcome::Passed,
            state,
        )
    }
}

fn failed_writes_check(mapping: &MappingView) -> Check {
    if mapping.errors > 0 {
        check(
            "SHOULD_HAVE_NO_FAILED_WRITES",
            "Salesforce accepted the mapping's changes",
            Outcome::Warning,
            format!(
                "{} change(s) refused by Salesforce: see the errors list, fix the rows, retry or ignore them",
                mapping.errors
            ),
        )
    } else {
        check(
            "SHOULD_HAVE_NO_FAILED_WRITES",
            "Salesforce accepted the mapping's changes",
            Outcome::Passed,
            "none refused",
        )
    }
}

/// Mapped fields against the object's describe; the upsert field against its flags.
fn field_checks(
    config: &serde_json::Map<String, Value>,
    describe: &pgforce_salesforce::rest::describe::ObjectDescribe,
) -> Vec<Check> {
    let fields: Vec<&String> = config
        .get("fields")
        .and_then(Value::as_object)
        .map(|f| f.keys().collect())
        .unwrap_or_default();
    let missing: Vec<&str> = fields
        .iter()
        .filter(|name| !name.contains('.') && describe.field(name).is_none())
        .map(|name| name.as_str())
        .collect();
    let mut checks = vec![if missing.is_empty() {
        check(
            "MAPPED_FIELDS_MUST_EXIST",
            "Mapped fields exist and are readable",
            Outcome::Passed,
            format!("{} field(s) found", fields.len()),
        )
    } else {
        check(
            "MAPPED_FIELDS_MUST_EXIST",
            "Mapped fields exist and are readable",
            Outcome::Error,
            format!(
                "not in the org or not readable: {}; restore them, grant field-level access, or remove them from the mapping",
                missing.join(", ")
            ),
        )
    }];
    if let Some(upsert) = config.get("upsert_field").and_then(Value::as_str) {
        let ok = describe
            .field(upsert)
            .is_some_and(|f| f.external_id || f.id_lookup);
        checks.push(if ok {
            check("UPSERT_FIELD_MUST_BE_EXTERNAL_ID", "The upsert field is an External ID", Outcome::Passed, upsert)
        } else {
            check("UPSERT_FIELD_MUST_BE_EXTERNAL_ID", "The upsert field is an External ID", Outcome::Error, format!("{upsert} is not an External ID (or idLookup) field: inserts cannot be upserts by it"))
        });
        if let Some(field) = describe.field(upsert).filter(|f| f.external_id) {
            checks.push(unique_key_check(upsert, field.unique));
        }
    }
    checks
}

/// Whether Salesforce holds the upsert field's values unique: when not, several records
/// can share a value, and an upsert by it matching several fails.
fn unique_key_check(upsert: &str, unique: bool) -> Check {
    const RULE: &str = "UPSERT_FIELD_SHOULD_BE_UNIQUE";
    const NAME: &str = "The upsert field is unique in Salesforce";
    if unique {
        check(RULE, NAME, Outcome::Passed, upsert)
    } else {
        check(
            RULE,
            NAME,
            Outcome::Warning,
            format!(
                "{upsert} is an External ID but not unique: records may share a value (its column gets a plain index, so they all load), \
                 and an insert sent as an upsert by a value several records hold is refused with DUPLICATE_EXTERNAL_ID (HTTP 300) and FAILED; \
                 mark the field Unique in Salesforce, or choose another upsert field"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe() -> pgforce_salesforce::rest::describe::ObjectDescribe {
        serde_json::from_value(serde_json::json!({
            "name": "Thing__c", "label": "Thing", "queryable": true,
            "fields": [
                { "name": "Id", "label": "Id", "type": "id", "length": 18 },
                { "name": "Code__c", "label": "Code", "type": "string", "length": 20,
                  "externalId": true, "unique": true },
                { "name": "Batch__c", "label": "Batch", "type": "string", "length": 20,
                  "externalId": true }
            ]
        }))
        .unwrap()
    }

    fn unique_check(upsert: &str) -> Check {
        let config = serde_json::json!({ "fields": { "Id": {} }, "upsert_field": upsert });
        let Value::Object(config) = config else {
            unreachable!("a JSON object")
        };
        field_checks(&config, &describe())
            .into_iter()
            .find(|c| c.rule_id == "UPSERT_FIELD_SHOULD_BE_UNIQUE")
            .unwrap()
    }

    #[test]
    fn a_non_unique_upsert_field_draws_a_warning_about_duplicate_external_ids() {
        let warning = unique_check("Batch__c");
        assert_eq!(warning.outcome, Outcome::Warning);
        assert!(
            warning.message.contains("DUPLICATE_EXTERNAL_ID"),
            "{}",
            warning.message
        );
        assert_eq!(unique_check("Code__c").outcome, Outcome::Passed);
    }
}
