//! Avro for Pub/Sub payloads with apache-avro: an event's writer schema (the JSON
//! `GetSchema` returns) and one binary datum (no container header) decoded into JSON values.
//!
//! The JSON shape is pgforce's, not apache-avro's: union values are unwrapped, records are
//! objects in schema order (a compound field such as `BillingAddress` stays a nested
//! object), `date` (int days) becomes `YYYY-MM-DD` and `timestamp-millis` (long) becomes
//! `2024-03-29T16:40:08.000Z`, the forms the CometD transport delivers, so consumers see one
//! representation whichever transport brought an event. Bytes and fixed become base64.

use apache_avro::Schema;
use apache_avro::schema::{Name, RecordSchema, ResolvedSchema};
use apache_avro::types::Value as Avro;
use base64::Engine as _;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Why a schema or a datum could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    /// The schema JSON is not an event schema.
    #[error("avro schema: {0}")]
    Schema(String),
    /// The datum does not match its schema.
    #[error("avro datum: {0}")]
    Datum(String),
}

/// A top-level field of an event schema and, for a compound field (a nested record such as
/// `Address`), its components in schema order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's name.
    pub name: String,
    /// The nested record's field names; empty for other fields.
    pub components: Vec<String>,
}

/// An event's writer schema, parsed.
#[derive(Debug)]
pub struct EventSchema {
    avro: Schema,
    fields: Vec<Field>,
}

impl EventSchema {
    /// Parses schema JSON text; the schema must be a record.
    pub fn parse(text: &str) -> Result<Self, AvroError> {
        let avro = Schema::parse_str(text).map_err(|e| AvroError::Schema(e.to_string()))?;
        let resolved =
            ResolvedSchema::try_from(&avro).map_err(|e| AvroError::Schema(e.to_string()))?;
        let Schema::Record(record) = &avro else {
            return Err(AvroError::Schema(
                "an event schema is not a record".to_owned(),
            ));
        };
        let fields = record
            .fields
            .iter()
            .map(|field| Field {
                name: field.name.clone(),
                components: record_in(&field.schema, resolved.get_names())
                    .map(|nested| nested.fields.iter().map(|c| c.name.clone()).collect())
                    .unwrap_or_default(),
            })
            .collect();
        Ok(Self { avro, fields })
    }

    /// The record's top-level fields, in order (bitmaps count positions in this list).
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Decodes one datum; the whole input must be used.
    pub fn decode(&self, bytes: &[u8]) -> Result<Value, AvroError> {
        let mut rest = bytes;
        let value = apache_avro::from_avro_datum(&self.avro, &mut rest, None)
            .map_err(|e| AvroError::Datum(e.to_string()))?;
        if !rest.is_empty() {
            return Err(AvroError::Datum(format!(
                "{} bytes left over after the datum",
                rest.len()
            )));
        }
        // apache-avro reads a string cut short by the end of the input as null; the value
        // then no longer fits the schema.
        if !value.validate(&self.avro) {
            return Err(AvroError::Datum(
                "the datum ends early or does not fit the schema".to_owned(),
            ));
        }
        Ok(json(value))
    }
}

/// The record a field's schema holds: itself, a named reference to one, or a union's record
/// branch (`["null", "Address"]`).
fn record_in<'a>(
    schema: &'a Schema,
    names: &'a HashMap<Name, &'a Schema>,
) -> Option<&'a RecordSchema> {
    match schema {
        Schema::Record(record) => Some(record),
        Schema::Ref { name } => match names.get(name) {
            Some(Schema::Record(record)) => Some(record),
            _ => None,
        },
        Schema::Union(union) => union.variants().iter().find_map(|b| record_in(b, names)),
        _ => None,
    }
}

/// A decoded datum in pgforce's JSON shape.
fn json(value: Avro) -> Value {
    match value {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => Value::Bool(b),
        Avro::Int(i) | Avro::TimeMillis(i) => Value::from(i),
        Avro::Long(n)
        | Avro::TimeMicros(n)
        | Avro::TimestampMicros(n)
        | Avro::TimestampNanos(n)
        | Avro::LocalTimestampMillis(n)
        | Avro::LocalTimestampMicros(n)
        | Avro::LocalTimestampNanos(n) => Value::from(n),
        Avro::Float(f) => number(f64::from(f)),
        Avro::Double(d) => number(d),
        Avro::Bytes(bytes) | Avro::Fixed(_, bytes) => base64_text(&bytes),
        Avro::Decimal(decimal) => {
            Vec::<u8>::try_from(decimal).map_or(Value::Null, |bytes| base64_text(&bytes))
        }
        Avro::String(text) | Avro::Enum(_, text) => Value::String(text),
        Avro::Uuid(uuid) => Value::String(uuid.to_string()),
        Avro::BigDecimal(decimal) => Value::String(decimal.to_string()),
        Avro::Duration(_) => Value::Null,
        Avro::Date(days) => Value::String(format_date(i64::from(days))),
        Avro::TimestampMillis(millis) => Value::String(format_timestamp(millis)),
        Avro::Union(_, value) => json(*value),
        Avro::Array(items) => Value::Array(items.into_iter().map(json).collect()),
        Avro::Map(entries) => {
            let mut entries: Vec<(String, Avro)> = entries.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, json(v))).collect())
        }
        Avro::Record(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, json(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

fn base64_text(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn number(value: f64) -> Value {
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// `YYYY-MM-DD` for days since 1970-01-01.
fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `2024-03-29T16:40:08.000Z` for milliseconds since the epoch.
pub fn format_timestamp(millis: i64) -> String {
    const DAY: i64 = 86_400_000;
    let (y, mo, d) = civil_from_days(millis.div_euclid(DAY));
    let ms = millis.rem_euclid(DAY);
    let secs = ms / 1000;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        ms % 1000
    )
}

/// The Gregorian (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"TChangeEvent","namespace":"x","fields":[
        {"name":"h","type":{"type":"record","name":"H","fields":[
            {"name":"ids","type":{"type":"array","items":"string"}},
            {"name":"kind","type":{"type":"enum","name":"K","symbols":["A","B"]}}]}},
        {"name":"again","type":["null","K"],"default":null},
        {"name":"n","type":["null","long"],"default":null},
        {"name":"d","type":["null",{"type":"int","logicalType":"date"}],"default":null},
        {"name":"t","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null},
        {"name":"x","type":["null","double"],"default":null},
        {"name":"b","type":["null","boolean"],"default":null},
        {"name":"Home","type":["null",{"type":"record","name":"Place","fields":[
            {"name":"City","type":["null","string"],"default":null}]}],"default":null},
        {"name":"Work","type":["null","Place"],"default":null}]}"#;

    #[test]
    fn a_datum_decodes_with_unions_unwrapped_and_dates_as_text() {
        let schema = EventSchema::parse(SCHEMA).unwrap();
        let mut datum = vec![2, 4, b'i', b'd', 0, 2]; // ids ["id"], kind B
        datum.extend([2, 0]); // again: K = A
        datum.extend([2, 0x80, 0x01]); // n = 64
        datum.extend([2, 0xCC, 0x01]); // d = 102 days → 1970-04-13
        datum.extend([2, 0x80, 0xE9, 0xA9, 0xB1, 0xD1, 0x63]); // 1711730408000
        datum.push(0); // x null
        datum.extend([2, 1]); // b true
        datum.extend([2, 2, 8, b'L', b'y', b'o', b'n']); // Home {City: "Lyon"}
        datum.push(0); // Work null
        let value = schema.decode(&datum).unwrap();
        assert_eq!(
            value,
            json!({"h": {"ids": ["id"], "kind": "B"}, "again": "A", "n": 64,
                   "d": "1970-04-13", "t": "2024-03-29T16:40:08.000Z", "x": null, "b": true,
                   "Home": {"City": "Lyon"}, "Work": null})
        );
        // Cut inside "Lyon". (apache-avro reads a union whose branch index is missing at the
        // very end of the input as null, so a cut just before trailing nullable fields
        // passes unnoticed.)
        assert!(schema.decode(&datum[..datum.len() - 3]).is_err());
        let mut longer = datum.clone();
        longer.push(0);
        assert!(schema.decode(&longer).is_err());
    }

    #[test]
    fn compound_fields_list_their_components_also_when_named_by_reference() {
        let schema = EventSchema::parse(SCHEMA).unwrap();
        let fields = schema.fields();
        assert_eq!(fields[0].name, "h");
        assert_eq!(fields[0].components, ["ids", "kind"]);
        assert!(fields[2].components.is_empty());
        assert_eq!(fields[7].components, ["City"]);
        assert_eq!(fields[8].name, "Work");
        assert_eq!(fields[8].components, ["City"]);
        assert!(EventSchema::parse(r#""string""#).is_err());
    }
}
