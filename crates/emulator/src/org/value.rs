//! Field values: how the org stores them and how they cross the wire.
//!
//! A [`Value`] is small (24 bytes) and `Clone`-cheap for everything but text, because an org
//! may hold millions of records with dozens of fields each. Conversion from JSON applies
//! Salesforce's write rules for the field's type (trimming, empty text as null, length,
//! picklist, number range and rounding) and produces the same error codes and messages.

use std::cmp::Ordering;

use serde_json::Value as Json;

use super::ids;
use super::schema::{FieldDef, FieldType, ObjectIndex, Schema};
use crate::datetime;
use crate::error::ApiError;

/// A reference to a record of this org: its object and record number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordRef {
    pub object: ObjectIndex,
    pub seq: u64,
}

impl RecordRef {
    /// The record's 18-character Id.
    pub fn id18(self, schema: &Schema) -> String {
        ids::mint(&schema.object(self.object).key_prefix, self.seq)
    }
}

/// One stored field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Text(Box<str>),
    /// Days since 1970-01-01.
    Date(i32),
    /// UTC milliseconds since the epoch.
    DateTime(i64),
    /// An Id or reference field's value.
    Ref(RecordRef),
}

impl Value {
    /// Whether the value is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// The value as text, when it is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(t),
            _ => None,
        }
    }

    /// A declared `defaultValue` from a schema file, checked against the field type.
    pub fn from_declared_default(field_type: FieldType, json: &Json) -> Option<Self> {
        match (field_type, json) {
            (FieldType::Boolean, Json::Bool(b)) => Some(Self::Bool(*b)),
            (FieldType::Int, Json::Number(n)) => n.as_i64().map(Self::Int),
            (t, Json::Number(n)) if t.is_decimal() => n.as_f64().map(Self::Double),
            (FieldType::Date, Json::String(s)) => datetime::parse_date(s).map(Self::Date),
            (FieldType::Datetime, Json::String(s)) => {
                datetime::parse_datetime(s).map(Self::DateTime)
            }
            (t, Json::String(s)) if t.is_text() => Some(Self::Text(s.as_str().into())),
            _ => None,
        }
    }

    /// The value as Salesforce writes it in JSON.
    pub fn to_json(&self, schema: &Schema) -> Json {
        match self {
            Self::Null => Json::Null,
            Self::Bool(b) => Json::Bool(*b),
            Self::Int(i) => Json::from(*i),
            Self::Double(d) => serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number),
            Self::Text(t) => Json::String(t.to_string()),
            Self::Date(d) => Json::String(datetime::format_date(*d)),
            Self::DateTime(ms) => Json::String(datetime::format_datetime(*ms)),
            Self::Ref(r) => Json::String(r.id18(schema)),
        }
    }

    /// The value as Salesforce writes it in CSV and in SOQL-free text contexts.
    pub fn to_text(&self, schema: &Schema) -> Option<String> {
        match self {
            Self::Null => None,
            Self::Bool(b) => Some(b.to_string()),
            Self::Int(i) => Some(i.to_string()),
            Self::Double(d) => Some(format_double(*d)),
            Self::Text(t) => Some(t.to_string()),
            Self::Date(d) => Some(datetime::format_date(*d)),
            Self::DateTime(ms) => Some(datetime::format_datetime(*ms)),
            Self::Ref(r) => Some(r.id18(schema)),
        }
    }

    /// Salesforce's ordering: nulls aside, numbers numerically, text case-insensitively,
    /// dates and datetimes chronologically, Ids in Id order. `None` for unlike types.
    pub fn compare(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (Self::Bool(a), Self::Bool(b)) => Some(a.cmp(b)),
            (Self::Int(a), Self::Int(b)) => Some(a.cmp(b)),
            (Self::Int(a), Self::Double(b)) => (*a as f64).partial_cmp(b),
            (Self::Double(a), Self::Int(b)) => a.partial_cmp(&(*b as f64)),
            (Self::Double(a), Self::Double(b)) => a.partial_cmp(b),
            (Self::Text(a), Self::Text(b)) => Some(compare_text_folded(a, b)),
            (Self::Date(a), Self::Date(b)) => Some(a.cmp(b)),
            (Self::DateTime(a), Self::DateTime(b)) => Some(a.cmp(b)),
            (Self::Ref(a), Self::Ref(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// Compares text the way SOQL does: case-insensitively.
pub fn compare_text_folded(a: &str, b: &str) -> Ordering {
    let fold = |c: char| c.to_lowercase().next().unwrap_or(c);
    a.chars().map(fold).cmp(b.chars().map(fold))
}

/// Doubles print with a fractional part, as Salesforce's do (`23.0`).
pub fn format_double(d: f64) -> String {
    if d.fract() == 0.0 && d.abs() < 1e15 {
        format!("{d:.1}")
    } else {
        d.to_string()
    }
}

/// Converts a JSON value written to a field into a stored value, applying Salesforce's
/// rules for the field's type. `resolve_ref` turns an Id string into a record reference
/// (or the error Salesforce gives for it).
pub fn value_from_json(
    field: &FieldDef,
    json: &Json,
    resolve_ref: &dyn Fn(&FieldDef, &str) -> Result<RecordRef, ApiError>,
) -> Result<Value, ApiError> {
    let t = field.field_type;
    match json {
        Json::Null => Ok(if t == FieldType::Boolean {
            Value::Bool(false)
        } else {
            Value::Null
        }),
        Json::Array(_) | Json::Object(_) => Err(not_of_type(field, &json.to_string())),
        _ if t.is_text() => {
            let raw = match json {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            text_value(field, raw.trim())
        }
        _ => {
            let raw = match json {
                Json::String(s) => s.trim().to_owned(),
                other => other.to_string(),
            };
            if raw.is_empty() {
                return Ok(if t == FieldType::Boolean {
                    Value::Bool(false)
                } else {
                    Value::Null
                });
            }
            scalar_value(field, json, &raw, resolve_ref)
        }
    }
}

fn text_value(field: &FieldDef, text: &str) -> Result<Value, ApiError> {
    if text.is_empty() {
        return Ok(Value::Null);
    }
    let length = text.chars().count();
    if length > field.length as usize {
        return Err(ApiError::bad_request(
            "STRING_TOO_LONG",
            format!(
                "{}: data value too large: {} (max length={})",
                field.label, text, field.length
            ),
        )
        .with_fields(vec![field.name.clone()]));
    }
    match field.field_type {
        FieldType::Email if !is_email(text) => Err(ApiError::bad_request(
            "INVALID_EMAIL_ADDRESS",
            format!("{}: invalid email address: {}", field.label, text),
        )
        .with_fields(vec![field.name.clone()])),
        FieldType::Picklist | FieldType::Multipicklist if field.restricted_picklist => {
            let allowed = |v: &str| field.picklist_values.iter().any(|p| p == v);
            let all_allowed = if field.field_type == FieldType::Multipicklist {
                text.split(';').all(|v| allowed(v.trim()))
            } else {
                allowed(text)
            };
            if all_allowed {
                Ok(Value::Text(text.into()))
            } else {
                Err(ApiError::bad_request(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    format!(
                        "{}: bad value for restricted picklist field: {}",
                        field.label, text
                    ),
                )
                .with_fields(vec![field.name.clone()]))
            }
        }
        _ => Ok(Value::Text(text.into())),
    }
}

fn scalar_value(
    field: &FieldDef,
    json: &Json,
    raw: &str,
    resolve_ref: &dyn Fn(&FieldDef, &str) -> Result<RecordRef, ApiError>,
) -> Result<Value, ApiError> {
    match field.field_type {
        FieldType::Boolean => match (json, raw.to_ascii_lowercase().as_str()) {
            (Json::Bool(b), _) => Ok(Value::Bool(*b)),
            (_, "true") => Ok(Value::Bool(true)),
            (_, "false") => Ok(Value::Bool(false)),
            _ => Err(not_of_type(field, raw)),
        },
        FieldType::Int => {
            let parsed: f64 = raw.parse().map_err(|_| not_of_type(field, raw))?;
            if parsed.fract() != 0.0 || parsed.abs() >= 1e9 {
                return Err(out_of_range(field, raw));
            }
            Ok(Value::Int(parsed as i64))
        }
        t if t.is_decimal() => {
            let parsed: f64 = raw.parse().map_err(|_| not_of_type(field, raw))?;
            if !parsed.is_finite() {
                return Err(not_of_type(field, raw));
            }
            let factor = 10_f64.powi(i32::try_from(field.scale).unwrap_or(0));
            let rounded = (parsed * factor).round() / factor;
            let limit = 10_f64.powi(i32::try_from(field.precision - field.scale).unwrap_or(18));
            if rounded.abs() >= limit {
                return Err(out_of_range(field, raw));
            }
            Ok(Value::Double(rounded))
        }
        FieldType::Date => datetime::parse_date(raw)
            .or_else(|| datetime::parse_datetime(raw).map(datetime::date_of))
            .map(Value::Date)
            .ok_or_else(|| not_of_type(field, raw)),
        FieldType::Datetime => datetime::parse_datetime(raw)
            .map(Value::DateTime)
            .ok_or_else(|| not_of_type(field, raw)),
        FieldType::Reference | FieldType::Id => resolve_ref(field, raw).map(Value::Ref),
        _ => Err(not_of_type(field, raw)),
    }
}

fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.chars().any(char::is_whitespace)
        && !domain.contains('@')
}

fn not_of_type(field: &FieldDef, raw: &str) -> ApiError {
    ApiError::bad_request(
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        format!("{}: value not of required type: {}", field.label, raw),
    )
    .with_fields(vec![field.name.clone()])
}

fn out_of_range(field: &FieldDef, raw: &str) -> ApiError {
    ApiError::bad_request(
        "NUMBER_OUTSIDE_VALID_RANGE",
        format!(
            "{}: value outside of valid range on numeric field: {}",
            field.label, raw
        ),
    )
    .with_fields(vec![field.name.clone()])
}

#[cfg(test)]
pub(in crate::org) mod tests {
    use super::*;

    /// The one custom field of a test object declared by `json` (a schema-file field).
    pub(in crate::org) fn field(json: &str) -> FieldDef {
        let file = Schema::parse_file(&format!(
            r#"{{"objects":[{{"name":"T__c","fields":[{json}]}}]}}"#
        ))
        .unwrap();
        let schema = Schema::with_files(&[file]).unwrap();
        let object = schema.object(schema.object_index("T__c").unwrap());
        object.fields.iter().find(|f| f.custom).unwrap().clone()
    }

    fn no_refs(_: &FieldDef, _: &str) -> Result<RecordRef, ApiError> {
        Err(ApiError::bad_request(
            "MALFORMED_ID",
            "no references in this test",
        ))
    }

    fn convert(f: &FieldDef, json: Json) -> Result<Value, ApiError> {
        value_from_json(f, &json, &no_refs)
    }

    #[test]
    fn text_is_trimmed_and_empty_becomes_null() {
        let f = field(r#"{"name":"S__c","type":"string","length":5}"#);
        assert_eq!(
            convert(&f, Json::from("  ab ")).unwrap(),
            Value::Text("ab".into())
        );
        assert_eq!(convert(&f, Json::from("   ")).unwrap(), Value::Null);
        let error = convert(&f, Json::from("abcdef")).unwrap_err();
        assert_eq!(error.code, "STRING_TOO_LONG");
        assert_eq!(
            error.message,
            "S: data value too large: abcdef (max length=5)"
        );
        assert_eq!(error.fields, vec!["S__c".to_owned()]);
    }

    #[test]
    fn restricted_picklists_reject_other_values() {
        let f = field(
            r#"{"name":"P__c","type":"picklist","picklistValues":["A","B"],"restrictedPicklist":true}"#,
        );
        assert!(convert(&f, Json::from("A")).is_ok());
        assert_eq!(
            convert(&f, Json::from("C")).unwrap_err().code,
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
        );
        let m = field(
            r#"{"name":"M__c","type":"multipicklist","picklistValues":["A","B"],"restrictedPicklist":true}"#,
        );
        assert!(convert(&m, Json::from("A;B")).is_ok());
        assert!(convert(&m, Json::from("A;Z")).is_err());
    }

    #[test]
    fn numbers_round_to_scale_and_respect_precision() {
        let f = field(r#"{"name":"N__c","type":"currency","precision":5,"scale":2}"#);
        assert_eq!(
            convert(&f, Json::from(12.345)).unwrap(),
            Value::Double(12.35)
        );
        assert_eq!(convert(&f, Json::from("7")).unwrap(), Value::Double(7.0));
        assert_eq!(
            convert(&f, Json::from(1000.0)).unwrap_err().code,
            "NUMBER_OUTSIDE_VALID_RANGE"
        );
        assert_eq!(
            convert(&f, Json::from("12,5")).unwrap_err().code,
            "INVALID_TYPE_ON_FIELD_IN_RECORD"
        );
        let i = field(r#"{"name":"I__c","type":"int"}"#);
        assert_eq!(convert(&i, Json::from(42)).unwrap(), Value::Int(42));
        assert!(convert(&i, Json::from(1.5)).is_err());
    }

    #[test]
    fn dates_booleans_and_emails_follow_salesforce() {
        let d = field(r#"{"name":"D__c","type":"date"}"#);
        assert_eq!(
            convert(&d, Json::from("2024-01-01")).unwrap(),
            Value::Date(19_723)
        );
        assert!(convert(&d, Json::from("2024-13-01")).is_err());
        let t = field(r#"{"name":"T__c","type":"datetime"}"#);
        assert_eq!(
            convert(&t, Json::from("2024-07-01T15:20:00.123Z")).unwrap(),
            Value::DateTime(1_719_847_200_123)
        );
        let b = field(r#"{"name":"B__c","type":"boolean"}"#);
        assert_eq!(convert(&b, Json::Null).unwrap(), Value::Bool(false));
        assert_eq!(convert(&b, Json::from("TRUE")).unwrap(), Value::Bool(true));
        let e = field(r#"{"name":"E__c","type":"email"}"#);
        assert!(convert(&e, Json::from("a@b.co")).is_ok());
        assert_eq!(
            convert(&e, Json::from("not-an-email")).unwrap_err().code,
            "INVALID_EMAIL_ADDRESS"
        );
    }

    #[test]
    fn text_compares_case_insensitively_and_doubles_keep_a_fraction() {
        assert_eq!(compare_text_folded("apple", "APPLE"), Ordering::Equal);
        assert_eq!(compare_text_folded("a", "B"), Ordering::Less);
        assert_eq!(format_double(23.0), "23.0");
        assert_eq!(format_double(2.5), "2.5");
    }
}
