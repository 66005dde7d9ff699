//! Values between Postgres and OData JSON: how each Edm type is selected and turned into
//! a JSON value, and how a JSON value from a write body becomes a bind parameter.
//!
//! Values that OData spells as text (dates, timestamps, GUIDs, decimals) travel to and
//! from Postgres as text with an explicit cast, so the driver needs no date or decimal
//! types and a value always reaches SQL as a parameter of the column's own type.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde_json::Value;
use tokio_postgres::Row;

use super::filter::{parse_date, parse_date_time_offset, parse_time};
use super::{EdmType, Property, QueryError, quote};
use crate::error::{Error, Result};

/// A bind parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
    Bytes(Vec<u8>),
}

impl Param {
    pub(crate) fn as_sql(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        match self {
            Self::Text(text) => text,
            Self::Int(value) => value,
            Self::Bytes(bytes) => bytes,
        }
    }
}

/// The parameters of one statement, numbered as they are added.
#[derive(Debug, Default)]
pub(crate) struct Binds(Vec<Param>);

impl Binds {
    /// Adds a parameter; returns its placeholder (`$3`).
    pub(crate) fn push(&mut self, param: Param) -> String {
        self.0.push(param);
        format!("${}", self.0.len())
    }

    #[cfg(test)]
    pub(crate) fn into_params(self) -> Vec<Param> {
        self.0
    }

    pub(crate) fn refs(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        self.0.iter().map(Param::as_sql).collect()
    }
}

/// `to_char` format of a timestamp as UTC with microseconds.
const TIMESTAMP_FORMAT: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

/// The property's base type, quoted: `"pg_catalog"."int4"`.
pub(crate) fn base_type(property: &Property) -> String {
    format!(
        "{}.{}",
        quote(&property.pg_type.schema),
        quote(&property.pg_type.name)
    )
}

/// Whether a DateTimeOffset property stores a `timestamptz` (else a `timestamp`, read
/// as UTC).
pub(crate) fn has_time_zone(property: &Property) -> bool {
    property.pg_type.name == "timestamptz"
}

/// The value of `column` as exact text, as the skip token and ETags carry it:
/// timestamps as UTC with microseconds and `Z`, dates as `YYYY-MM-DD`, bytes as hex.
pub(crate) fn text_expr(property: &Property, column: &str) -> String {
    match property.edm {
        EdmType::DateTimeOffset if has_time_zone(property) => {
            format!("to_char({column} at time zone 'UTC', {TIMESTAMP_FORMAT})")
        }
        EdmType::DateTimeOffset => {
            format!("to_char({column}::pg_catalog.timestamp, {TIMESTAMP_FORMAT})")
        }
        EdmType::Date => format!("to_char({column}, 'YYYY-MM-DD')"),
        EdmType::Binary => format!("encode({column}::pg_catalog.bytea, 'hex')"),
        _ => format!("{column}::pg_catalog.text"),
    }
}

/// A text parameter (from [`text_expr`] or a validated literal) as a value of the
/// property's type.
pub(crate) fn from_text(property: &Property, placeholder: &str) -> String {
    match property.edm {
        EdmType::DateTimeOffset if has_time_zone(property) => {
            format!("{placeholder}::pg_catalog.text::pg_catalog.timestamptz")
        }
        EdmType::DateTimeOffset => {
            format!("({placeholder}::pg_catalog.text::pg_catalog.timestamptz at time zone 'UTC')")
        }
        EdmType::Binary => format!("decode({placeholder}::pg_catalog.text, 'hex')"),
        _ => format!("{placeholder}::pg_catalog.text::{}", base_type(property)),
    }
}

/// What to select for a property so [`read_value`] can read it.
pub(crate) fn select_expr(property: &Property) -> String {
    let column = quote(&property.name);
    match property.edm {
        EdmType::Boolean => format!("{column}::pg_catalog.bool"),
        EdmType::Int16 => format!("{column}::pg_catalog.int2"),
        EdmType::Int32 => format!("{column}::pg_catalog.int4"),
        EdmType::Int64 => format!("{column}::pg_catalog.int8"),
        EdmType::Binary => format!("{column}::pg_catalog.bytea"),
        _ => text_expr(property, &column),
    }
}

/// Reads the value [`select_expr`] selected into column `index` as OData JSON.
pub(crate) fn read_value(row: &Row, index: usize, property: &Property) -> Result<Value> {
    let undecodable = |source| Error::Postgres {
        context: format!(
            "reading column {} as {}",
            property.name,
            property.edm.name()
        ),
        source,
    };
    Ok(match property.edm {
        EdmType::Boolean => row
            .try_get::<_, Option<bool>>(index)
            .map_err(undecodable)?
            .map_or(Value::Null, Value::Bool),
        EdmType::Int16 => row
            .try_get::<_, Option<i16>>(index)
            .map_err(undecodable)?
            .map_or(Value::Null, Value::from),
        EdmType::Int32 => row
            .try_get::<_, Option<i32>>(index)
            .map_err(undecodable)?
            .map_or(Value::Null, Value::from),
        EdmType::Int64 => row
            .try_get::<_, Option<i64>>(index)
            .map_err(undecodable)?
            .map_or(Value::Null, Value::from),
        EdmType::Binary => row
            .try_get::<_, Option<Vec<u8>>>(index)
            .map_err(undecodable)?
            .map_or(Value::Null, |bytes| Value::String(STANDARD.encode(bytes))),
        _ => match row
            .try_get::<_, Option<String>>(index)
            .map_err(undecodable)?
        {
            None => Value::Null,
            Some(text) => text_value(property, text),
        },
    })
}

/// The JSON value of a property read as text.
fn text_value(property: &Property, text: String) -> Value {
    match property.edm {
        EdmType::Decimal { .. } | EdmType::Single | EdmType::Double => {
            match serde_json::from_str::<serde_json::Number>(&text) {
                Ok(number) => Value::Number(number),
                // NaN and infinities, spelled as OData spells them.
                Err(_) => Value::String(match text.as_str() {
                    "Infinity" => "INF".to_owned(),
                    "-Infinity" => "-INF".to_owned(),
                    _ => text,
                }),
            }
        }
        EdmType::DateTimeOffset => Value::String(trim_fraction(&text)),
        _ => Value::String(text),
    }
}

/// `2024-01-31T10:00:00.120000Z` → `2024-01-31T10:00:00.12Z`; no fraction when it is 0.
pub(crate) fn trim_fraction(text: &str) -> String {
    match text.strip_suffix('Z').and_then(|t| t.split_once('.')) {
        Some((main, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                format!("{main}Z")
            } else {
                format!("{main}.{fraction}Z")
            }
        }
        None => text.to_owned(),
    }
}

/// The weak ETag of a timestamp value (UTC, microseconds), from a JSON value of a
/// DateTimeOffset property.
pub(crate) fn etag(value: &Value) -> Option<String> {
    let text = value.as_str()?.strip_suffix('Z')?;
    let (main, fraction) = text.split_once('.').unwrap_or((text, ""));
    let micros: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(6)
        .collect();
    Some(format!("W/\"{main}.{micros}Z\""))
}

fn bad_value(property: &Property, message: String) -> QueryError {
    QueryError::new(
        "InvalidValue",
        Some(property.name.clone()),
        format!("property {}: {message}", property.name),
    )
}

/// A JSON value of a write body or key as the parameter for `property`, with the SQL
/// that turns the parameter into the column's type; `None` for JSON null.
pub(crate) fn param_of(
    property: &Property,
    value: &Value,
) -> std::result::Result<Option<Param>, QueryError> {
    let expected = property.edm.name();
    let wrong = || {
        bad_value(
            property,
            format!("expected {expected}, got {}", json_kind(value)),
        )
    };
    let text = match (&property.edm, value) {
        (_, Value::Null) => {
            if property.nullable {
                return Ok(None);
            }
            return Err(bad_value(property, "may not be null".to_owned()));
        }
        (EdmType::Boolean, Value::Bool(b)) => b.to_string(),
        (EdmType::Int16 | EdmType::Int32 | EdmType::Int64, _) => {
            let number = match value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(wrong)?;
            let (min, max) = match property.edm {
                EdmType::Int16 => (i64::from(i16::MIN), i64::from(i16::MAX)),
                EdmType::Int32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
                _ => (i64::MIN, i64::MAX),
            };
            if !(min..=max).contains(&number) {
                return Err(bad_value(
                    property,
                    format!("{number} is out of range for {expected}"),
                ));
            }
            number.to_string()
        }
        (EdmType::Decimal { .. }, Value::Number(n)) => n.to_string(),
        (EdmType::Decimal { .. }, Value::String(s)) if is_decimal(s) => s.clone(),
        (EdmType::Single | EdmType::Double, Value::Number(n)) => n.to_string(),
        (EdmType::Single | EdmType::Double, Value::String(s)) => match s.as_str() {
            "NaN" => "NaN".to_owned(),
            "INF" => "Infinity".to_owned(),
            "-INF" => "-Infinity".to_owned(),
            _ => return Err(wrong()),
        },
        (EdmType::String { .. }, Value::String(s)) if s.contains('\0') => {
            return Err(bad_value(
                property,
                "strings may not contain the NUL character".to_owned(),
            ));
        }
        (EdmType::String { max_length }, Value::String(s)) => {
            if let Some(max) = max_length
                && s.chars().count() > *max as usize
            {
                return Err(bad_value(
                    property,
                    format!("the value is longer than {max} characters"),
                ));
            }
            s.clone()
        }
        (EdmType::Date, Value::String(s)) => parse_date(s).ok_or_else(wrong)?,
        (EdmType::DateTimeOffset, Value::String(s)) => {
            parse_date_time_offset(s).ok_or_else(wrong)?
        }
        (EdmType::TimeOfDay, Value::String(s)) if parse_time(s) => s.clone(),
        (EdmType::Guid, Value::String(s)) if is_guid(s) => s.to_ascii_lowercase(),
        (EdmType::Binary, Value::String(s)) => {
            let bytes = STANDARD
                .decode(s)
                .or_else(|_| URL_SAFE.decode(s))
                .map_err(|_| bad_value(property, "expected base64 for Edm.Binary".to_owned()))?;
            return Ok(Some(Param::Bytes(bytes)));
        }
        _ => return Err(wrong()),
    };
    Ok(Some(Param::Text(text)))
}

/// SQL turning a parameter made by [`param_of`] into a value of the property's type.
pub(crate) fn param_sql(property: &Property, placeholder: &str) -> String {
    match property.edm {
        EdmType::Binary => format!("{placeholder}::pg_catalog.bytea"),
        _ => from_text(property, placeholder),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn is_decimal(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && digits(fraction)
}

pub(crate) fn is_guid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_are_trimmed_and_etags_keep_microseconds() {
        assert_eq!(
            trim_fraction("2024-01-31T10:00:00.000000Z"),
            "2024-01-31T10:00:00Z"
        );
        assert_eq!(
            trim_fraction("2024-01-31T10:00:00.120000Z"),
            "2024-01-31T10:00:00.12Z"
        );
        assert_eq!(
            etag(&Value::from("2024-01-31T10:00:00.12Z")).unwrap(),
            "W/\"2024-01-31T10:00:00.120000Z\""
        );
        assert_eq!(
            etag(&Value::from("2024-01-31T10:00:00Z")).unwrap(),
            "W/\"2024-01-31T10:00:00.000000Z\""
        );
    }
}
