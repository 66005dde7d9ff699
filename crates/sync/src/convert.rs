//! Salesforce values into Postgres columns (pure).
//!
//! Types follow Heroku Connect's mapping (reference §3). Values travel as Postgres text
//! input — COPY text format for loads, text parameters cast in SQL for upserts — so
//! Postgres, not pgforce, parses numbers, dates and timestamps. Salesforce datetimes end
//! in `+0000`; a `timestamp without time zone` column keeps the UTC wall time. A value
//! that does not fit its column (too long, not a whole number) is refused with the
//! record and field named, never truncated.

use pgforce_salesforce::rest::describe::{FieldDescribe, FieldType};
use pgforce_store::ddl::PgType;
use serde_json::Value;

/// Long text areas up to this length stay `varchar`; longer ones are `text`.
const LONGEST_VARCHAR_TEXTAREA: u32 = 4000;

/// Why a Salesforce field cannot be mapped to a column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {why}")]
pub struct Unmappable {
    /// The field's API name.
    pub field: String,
    /// What about its type prevents it.
    pub why: String,
}

/// The column type for a Salesforce field, or why it cannot be mapped.
pub fn pg_type(field: &FieldDescribe) -> Result<PgType, Unmappable> {
    let unmappable = |why: String| Unmappable {
        field: field.name.clone(),
        why,
    };
    Ok(match &field.field_type {
        FieldType::Id | FieldType::Reference => PgType::Varchar(18),
        FieldType::Multipicklist => PgType::Varchar(4099),
        FieldType::Textarea if field.length > LONGEST_VARCHAR_TEXTAREA => PgType::Text,
        FieldType::Textarea => PgType::Varchar(field.length.max(255)),
        FieldType::String
        | FieldType::Picklist
        | FieldType::Combobox
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Url
        | FieldType::EncryptedString => PgType::Varchar(field.length.max(1)),
        FieldType::Boolean => PgType::Boolean,
        FieldType::Int => PgType::Integer,
        FieldType::Double | FieldType::Currency | FieldType::Percent | FieldType::Long => {
            PgType::DoublePrecision
        }
        FieldType::Date => PgType::Date,
        FieldType::DateTime => PgType::Timestamp,
        FieldType::Time => PgType::Time,
        FieldType::AnyType => PgType::Text,
        FieldType::Address | FieldType::Location => {
            return Err(unmappable(
                "is a compound field; map its component fields instead".to_owned(),
            ));
        }
        FieldType::Base64 => {
            return Err(unmappable(
                "is a base64 field, which cannot be synced".to_owned(),
            ));
        }
        FieldType::Other(other) => {
            return Err(unmappable(format!(
                "has type {other}, which pgforce cannot map"
            )));
        }
    })
}

/// A value that does not fit its column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The field's API name.
    pub field: String,
    /// Why it does not fit.
    pub reason: String,
}

/// The Postgres text input for a Salesforce JSON value (`None` for null).
pub fn to_pg_text(value: &Value, field: &str, pg_type: PgType) -> Result<Option<String>, Rejected> {
    let reject = |reason: String| Rejected {
        field: field.to_owned(),
        reason,
    };
    let text = match value {
        Value::Null => return Ok(None),
        Value::Bool(b) => (if *b { "t" } else { "f" }).to_owned(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Object(_) => {
            return Err(reject(
                "a compound value cannot be stored in one column".to_owned(),
            ));
        }
    };
    match misfit(&text, pg_type) {
        Some(reason) => Err(reject(reason)),
        None => Ok(Some(text)),
    }
}

/// Why a value's text does not fit its column (varchar length, integer range), if it
/// does not.
pub fn misfit(text: &str, pg_type: PgType) -> Option<String> {
    match pg_type {
        PgType::Varchar(max) => {
            let length = text.chars().count();
            (length > max as usize)
                .then(|| format!("{length} characters do not fit varchar({max})"))
        }
        PgType::Integer if text.parse::<i32>().is_err() => {
            Some(format!("{text} is not a whole number that fits integer"))
        }
        _ => None,
    }
}

/// A Bulk API CSV value as the JSON a REST answer would carry for the column's type
/// (empty is null: Bulk query results do not tell null from empty).
pub fn csv_to_json(text: &str, pg_type: PgType) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    match pg_type {
        PgType::Boolean => Value::Bool(text.eq_ignore_ascii_case("true")),
        PgType::Integer => text
            .parse::<i64>()
            .map_or_else(|_| Value::String(text.to_owned()), Value::from),
        PgType::DoublePrecision => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(text.to_owned()), Value::Number),
        _ => Value::String(text.to_owned()),
    }
}

/// Appends one value to a COPY text-format row (`\N` for null; backslash, tab, newline
/// and carriage return escaped).
pub fn push_copy_field(row: &mut String, value: Option<&str>) {
    match value {
        None => row.push_str("\\N"),
        Some(text) => {
            for c in text.chars() {
                match c {
                    '\\' => row.push_str("\\\\"),
                    '\t' => row.push_str("\\t"),
                    '\n' => row.push_str("\\n"),
                    '\r' => row.push_str("\\r"),
                    c => row.push(c),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(json: serde_json::Value) -> FieldDescribe {
        let mut base = serde_json::json!({ "name": "F", "label": "F" });
        if let (Value::Object(base), Value::Object(extra)) = (&mut base, json) {
            base.extend(extra);
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn salesforce_types_map_as_heroku_connect_maps_them() {
        let cases = [
            (
                serde_json::json!({ "type": "id", "length": 18 }),
                PgType::Varchar(18),
            ),
            (
                serde_json::json!({ "type": "reference", "length": 18 }),
                PgType::Varchar(18),
            ),
            (
                serde_json::json!({ "type": "string", "length": 80 }),
                PgType::Varchar(80),
            ),
            (
                serde_json::json!({ "type": "textarea", "length": 255 }),
                PgType::Varchar(255),
            ),
            (
                serde_json::json!({ "type": "textarea", "length": 1000 }),
                PgType::Varchar(1000),
            ),
            (
                serde_json::json!({ "type": "textarea", "length": 32000 }),
                PgType::Text,
            ),
            (
                serde_json::json!({ "type": "multipicklist", "length": 4099 }),
                PgType::Varchar(4099),
            ),
            (serde_json::json!({ "type": "boolean" }), PgType::Boolean),
            (serde_json::json!({ "type": "int" }), PgType::Integer),
            (
                serde_json::json!({ "type": "currency" }),
                PgType::DoublePrecision,
            ),
            (
                serde_json::json!({ "type": "percent" }),
                PgType::DoublePrecision,
            ),
            (serde_json::json!({ "type": "date" }), PgType::Date),
            (serde_json::json!({ "type": "datetime" }), PgType::Timestamp),
            (
                serde_json::json!({ "type": "email", "length": 80 }),
                PgType::Varchar(80),
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(pg_type(&field(json.clone())).unwrap(), expected, "{json}");
        }
        assert!(
            pg_type(&field(serde_json::json!({ "type": "address" })))
                .unwrap_err()
                .to_string()
                .contains("compound")
        );
        assert!(pg_type(&field(serde_json::json!({ "type": "base64" }))).is_err());
    }

    #[test]
    fn values_become_postgres_text_or_are_refused_with_the_field_named() {
        assert_eq!(to_pg_text(&Value::Null, "F", PgType::Text).unwrap(), None);
        assert_eq!(
            to_pg_text(&serde_json::json!(true), "F", PgType::Boolean)
                .unwrap()
                .as_deref(),
            Some("t")
        );
        assert_eq!(
            to_pg_text(&serde_json::json!(23.0), "F", PgType::DoublePrecision)
                .unwrap()
                .as_deref(),
            Some("23.0")
        );
        assert_eq!(
            to_pg_text(&serde_json::json!("abc"), "F", PgType::Varchar(3))
                .unwrap()
                .as_deref(),
            Some("abc")
        );
        let refused =
            to_pg_text(&serde_json::json!("abcd"), "Name", PgType::Varchar(3)).unwrap_err();
        assert_eq!(
            refused,
            Rejected {
                field: "Name".to_owned(),
                reason: "4 characters do not fit varchar(3)".to_owned()
            }
        );
        assert!(to_pg_text(&serde_json::json!(3_000_000_000_i64), "N", PgType::Integer).is_err());
        assert_eq!(
            to_pg_text(&serde_json::json!("é€"), "F", PgType::Varchar(2))
                .unwrap()
                .as_deref(),
            Some("é€"),
            "lengths count characters"
        );
    }

    #[test]
    fn copy_fields_escape_what_copy_text_format_needs() {
        let mut row = String::new();
        push_copy_field(&mut row, Some("a\tb\nc\\d\re"));
        row.push('\t');
        push_copy_field(&mut row, None);
        assert_eq!(row, "a\\tb\\nc\\\\d\\re\t\\N");
    }
}
