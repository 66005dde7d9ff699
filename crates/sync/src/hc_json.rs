//! Heroku Connect's mapping export document (reference §8.1), read and written.
//!
//! `{"mappings": [{"object_name", "config"}], "connection": {...}, "version": 1}`. An
//! imported mapping's `config` object is kept verbatim, so exporting it again gives back
//! exactly what was imported; mappings that came from the config file are written in the
//! same shape. Shape errors name the path (`mappings[2].config.fields`).

use serde_json::{Map, Value, json};

use pgforce_store::Access;

use crate::config::MappingConfig;
use crate::error::{Error, Result};

/// Fields Heroku Connect lists in every mapping; pgforce reads them without being told.
const ALWAYS_SYNCED: [&str; 3] = ["Id", "IsDeleted", "SystemModstamp"];

/// One mapping of the document.
#[derive(Debug, Clone, PartialEq)]
pub struct HcMapping {
    /// The object's API name.
    pub object_name: String,
    /// The mapping's `config` object, as written.
    pub config: Map<String, Value>,
}

/// A whole export document.
#[derive(Debug, Clone, PartialEq)]
pub struct HcDocument {
    /// The informational `connection` block, when present.
    pub connection: Option<Value>,
    /// The mappings.
    pub mappings: Vec<HcMapping>,
}

/// A problem with a document, naming where it is.
fn doc(problem: impl Into<String>) -> Error {
    Error::Document {
        problem: problem.into(),
    }
}

/// Parses and checks an export document.
pub(crate) fn parse(text: &str) -> Result<HcDocument> {
    let document: Value =
        serde_json::from_str(text).map_err(|e| doc(format!("not valid JSON: {e}")))?;
    let top = document
        .as_object()
        .ok_or_else(|| doc("the document must be a JSON object"))?;
    match top.get("version") {
        Some(Value::Number(n)) if n.as_i64() == Some(1) => {}
        Some(other) => return Err(doc(format!("version: expected 1, got {other}"))),
        None => return Err(doc("version: missing")),
    }
    let mappings = top
        .get("mappings")
        .and_then(Value::as_array)
        .ok_or_else(|| doc("mappings: missing or not an array"))?;
    let mut parsed = Vec::with_capacity(mappings.len());
    for (i, mapping) in mappings.iter().enumerate() {
        let at = format!("mappings[{i}]");
        let object_name = mapping
            .get("object_name")
            .and_then(Value::as_str)
            .ok_or_else(|| doc(format!("{at}.object_name: missing or not a string")))?
            .to_owned();
        let config = mapping
            .get("config")
            .and_then(Value::as_object)
            .ok_or_else(|| doc(format!("{at}.config: missing or not an object")))?;
        mapping_config(&object_name, config)
            .map_err(|e| doc(format!("{at} ({object_name}): {e}")))?;
        parsed.push(HcMapping {
            object_name,
            config: config.clone(),
        });
    }
    Ok(HcDocument {
        connection: top.get("connection").cloned(),
        mappings: parsed,
    })
}

/// The mapping settings a `config` object states.
pub(crate) fn mapping_config(object: &str, config: &Map<String, Value>) -> Result<MappingConfig> {
    let access = match config.get("access").and_then(Value::as_str) {
        Some("read_only") => Access::ReadOnly,
        Some("read_write") => Access::ReadWrite,
        other => {
            return Err(doc(format!(
                "config.access: expected \"read_only\" or \"read_write\", got {other:?}"
            )));
        }
    };
    let fields = config
        .get("fields")
        .and_then(Value::as_object)
        .ok_or_else(|| doc("config.fields: missing or not an object"))?;
    let number = |key: &str, default: u64| match config.get(key) {
        None => Ok(default),
        Some(value) => value.as_u64().ok_or_else(|| {
            doc(format!(
                "config.{key}: expected a whole number, got {value}"
            ))
        }),
    };
    let upsert_field = match config.get("upsert_field") {
        None | Some(Value::Null) => None,
        Some(Value::String(field)) => Some(field.clone()),
        Some(other) => {
            return Err(doc(format!(
                "config.upsert_field: expected a field name, got {other}"
            )));
        }
    };
    Ok(MappingConfig {
        object: object.to_owned(),
        access,
        fields: fields
            .keys()
            .filter(|f| !ALWAYS_SYNCED.contains(&f.as_str()))
            .cloned()
            .collect(),
        polling_seconds: number("sf_polling_seconds", 600)?,
        upsert_field,
        max_daily_api_calls: number("sf_max_daily_api_calls", 30_000)?,
        bulk_threshold: crate::config::DEFAULT_BULK_THRESHOLD,
    })
}

/// The `config` object for a mapping from the config file, in Heroku Connect's shape.
pub(crate) fn config_object(mapping: &MappingConfig) -> Map<String, Value> {
    let mut fields = Map::new();
    for field in ALWAYS_SYNCED
        .iter()
        .map(|f| (*f).to_owned())
        .chain(mapping.fields.iter().cloned())
    {
        fields.insert(field, json!({}));
    }
    let mut indexes = Map::new();
    indexes.insert("Id".to_owned(), json!({ "unique": true }));
    indexes.insert("SystemModstamp".to_owned(), json!({ "unique": false }));
    let mut config = Map::new();
    config.insert(
        "access".to_owned(),
        json!(match mapping.access {
            Access::ReadOnly => "read_only",
            Access::ReadWrite => "read_write",
        }),
    );
    config.insert("sf_notify_enabled".to_owned(), json!(false));
    config.insert(
        "sf_polling_seconds".to_owned(),
        json!(mapping.polling_seconds),
    );
    config.insert(
        "sf_max_daily_api_calls".to_owned(),
        json!(mapping.max_daily_api_calls),
    );
    if let Some(upsert) = &mapping.upsert_field {
        indexes.insert(upsert.clone(), json!({ "unique": true }));
        config.insert("upsert_field".to_owned(), json!(upsert));
    }
    config.insert("fields".to_owned(), Value::Object(fields));
    config.insert("indexes".to_owned(), Value::Object(indexes));
    config
}

/// The document for a set of mappings.
pub(crate) fn document(connection: Value, mappings: &[HcMapping]) -> Value {
    let mappings: Vec<Value> = mappings
        .iter()
        .map(|m| json!({ "object_name": m.object_name, "config": m.config }))
        .collect();
    json!({ "connection": connection, "mappings": mappings, "version": 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &str = r#"{
      "connection": {"app_name": "acme", "organization_id": "00DE0000000L6REMA0", "exported_at": "2023-02-15T17:13:42.743308+00:00",
                     "features": {"disable_bulk_writes": false}, "api_version": "57.0", "name": "acme:DATABASE_URL:salesforce",
                     "logplex_log_enabled": false},
      "mappings": [{"object_name": "Account", "config": {"access": "read_write", "sf_notify_enabled": true,
        "sf_polling_seconds": 120, "sf_max_daily_api_calls": 30000,
        "fields": {"Id": {}, "IsDeleted": {}, "SystemModstamp": {}, "Name": {}, "External_Id__c": {}},
        "indexes": {"Id": {"unique": true}, "SystemModstamp": {"unique": false}, "External_Id__c": {"unique": true}},
        "upsert_field": "External_Id__c", "applied_at": "2023-02-14T01:40:34.070538Z"}}],
      "version": 1}"#;

    #[test]
    fn an_export_parses_into_mapping_settings_and_writes_back_unchanged() {
        let document = parse(EXPORT).unwrap();
        let mapping = mapping_config("Account", &document.mappings[0].config).unwrap();
        assert_eq!(mapping.fields, ["Name", "External_Id__c"]);
        assert_eq!(
            (mapping.polling_seconds, mapping.upsert_field.as_deref()),
            (120, Some("External_Id__c"))
        );
        assert_eq!(mapping.access, Access::ReadWrite);
        let written = document_value(&document);
        let original: Value = serde_json::from_str(EXPORT).unwrap();
        assert_eq!(written, original, "round trip is exact");
    }

    fn document_value(document: &HcDocument) -> Value {
        super::document(
            document.connection.clone().unwrap_or(Value::Null),
            &document.mappings,
        )
    }

    #[test]
    fn shape_errors_name_the_path() {
        let cases = [
            ("[]", "must be a JSON object"),
            (r#"{"version": 2, "mappings": []}"#, "version: expected 1"),
            (r#"{"version": 1}"#, "mappings: missing"),
            (
                r#"{"version": 1, "mappings": [{"config": {}}]}"#,
                "mappings[0].object_name",
            ),
            (
                r#"{"version": 1, "mappings": [{"object_name": "A", "config": {"access": "write", "fields": {}}}]}"#,
                "mappings[0] (A): config.access",
            ),
            (
                r#"{"version": 1, "mappings": [{"object_name": "A", "config": {"access": "read_only"}}]}"#,
                "config.fields",
            ),
            (
                r#"{"version": 1, "mappings": [{"object_name": "A", "config": {"access": "read_only", "fields": {}, "sf_polling_seconds": "x"}}]}"#,
                "config.sf_polling_seconds",
            ),
            ("{", "not valid JSON"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err();
            assert!(
                error.to_string().contains(expected),
                "{error:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn config_file_mappings_are_written_in_heroku_connect_shape() {
        let mapping = MappingConfig {
            object: "Contact".to_owned(),
            access: Access::ReadOnly,
            fields: vec!["Email".to_owned()],
            polling_seconds: 600,
            upsert_field: Some("Email".to_owned()),
            max_daily_api_calls: 30_000,
            bulk_threshold: crate::config::DEFAULT_BULK_THRESHOLD,
        };
        let config = config_object(&mapping);
        assert_eq!(
            config["fields"],
            json!({ "Id": {}, "IsDeleted": {}, "SystemModstamp": {}, "Email": {} })
        );
        assert_eq!(config["indexes"]["Email"], json!({ "unique": true }));
        assert_eq!(mapping_config("Contact", &config).unwrap(), mapping);
    }
}
