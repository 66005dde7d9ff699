//! Avro for Pub/Sub payloads: parsing an event schema's JSON and decoding one binary datum
//! (no container header) into JSON values.
//!
//! Only what event schemas use is supported: primitives, records, enums, arrays, maps,
//! unions, fixed, and named-type references. Union values are returned unwrapped; `date`
//! (int days) becomes `YYYY-MM-DD` and `timestamp-millis` (long) becomes
//! `2024-03-29T16:40:08.000Z`, the forms the CometD transport delivers, so consumers see one
//! representation whichever transport brought an event.

use std::collections::HashMap;

use base64::Engine as _;
use serde_json::{Map, Value};

/// Why a schema or a datum could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    /// The schema JSON is not a schema this decoder understands.
    #[error("avro schema: {0}")]
    Schema(String),
    /// The datum does not match its schema.
    #[error("avro datum: {0}")]
    Datum(String),
}

/// A parsed Avro schema.
#[derive(Debug, Clone)]
pub enum Schema {
    /// `null`.
    Null,
    /// `boolean`.
    Boolean,
    /// `int`.
    Int,
    /// `long`.
    Long,
    /// `float`.
    Float,
    /// `double`.
    Double,
    /// `bytes`.
    Bytes,
    /// `string`.
    String,
    /// `int` with `logicalType` `date`.
    Date,
    /// `long` with `logicalType` `timestamp-millis`.
    TimestampMillis,
    /// A record and its fields, in order.
    Record(Vec<(String, Schema)>),
    /// An enum's symbols.
    Enum(Vec<String>),
    /// `array` of items.
    Array(Box<Schema>),
    /// `map` of values.
    Map(Box<Schema>),
    /// A union's branches.
    Union(Vec<Schema>),
    /// `fixed` of a size.
    Fixed(usize),
}

impl Schema {
    /// Parses schema JSON text.
    pub fn parse(text: &str) -> Result<Self, AvroError> {
        let json: Value =
            serde_json::from_str(text).map_err(|e| AvroError::Schema(format!("not JSON: {e}")))?;
        parse(&json, &mut HashMap::new(), "")
    }

    /// The fields of a record schema (empty for other schemas).
    pub fn fields(&self) -> &[(String, Schema)] {
        match self {
            Self::Record(fields) => fields,
            _ => &[],
        }
    }

    /// The record inside this schema: itself, or the record branch of a union.
    pub fn record_fields(&self) -> &[(String, Schema)] {
        match self {
            Self::Record(fields) => fields,
            Self::Union(branches) => branches
                .iter()
                .find_map(|b| match b {
                    Self::Record(fields) => Some(fields.as_slice()),
                    _ => None,
                })
                .unwrap_or(&[]),
            _ => &[],
        }
    }
}

fn full_name(name: &str, namespace: &str) -> String {
    if name.contains('.') || namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}.{name}")
    }
}

fn parse(
    json: &Value,
    named: &mut HashMap<String, Schema>,
    namespace: &str,
) -> Result<Schema, AvroError> {
    match json {
        Value::String(name) => primitive(name)
            .or_else(|| named.get(&full_name(name, namespace)).cloned())
            .or_else(|| named.get(name.as_str()).cloned())
            .ok_or_else(|| AvroError::Schema(format!("unknown type {name}"))),
        Value::Array(branches) => Ok(Schema::Union(
            branches
                .iter()
                .map(|b| parse(b, named, namespace))
                .collect::<Result<_, _>>()?,
        )),
        Value::Object(object) => {
            let type_name = object
                .get("type")
                .ok_or_else(|| AvroError::Schema("a schema object without \"type\"".to_owned()))?;
            let logical = object.get("logicalType").and_then(Value::as_str);
            let own_namespace = object
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or(namespace)
                .to_owned();
            let name = object.get("name").and_then(Value::as_str);
            let schema = match (type_name.as_str(), logical) {
                (Some("int"), Some("date")) => Schema::Date,
                (Some("long"), Some("timestamp-millis")) => Schema::TimestampMillis,
                (Some("record" | "error"), _) => {
                    let fields = object
                        .get("fields")
                        .and_then(Value::as_array)
                        .ok_or_else(|| AvroError::Schema("a record without fields".to_owned()))?;
                    let mut parsed = Vec::with_capacity(fields.len());
                    for field in fields {
                        let field_name =
                            field.get("name").and_then(Value::as_str).ok_or_else(|| {
                                AvroError::Schema("a field without a name".to_owned())
                            })?;
                        let field_type = field.get("type").ok_or_else(|| {
                            AvroError::Schema(format!("field {field_name} has no type"))
                        })?;
                        parsed.push((
                            field_name.to_owned(),
                            parse(field_type, named, &own_namespace)?,
                        ));
                    }
                    Schema::Record(parsed)
                }
                (Some("enum"), _) => Schema::Enum(
                    object
                        .get("symbols")
                        .and_then(Value::as_array)
                        .ok_or_else(|| AvroError::Schema("an enum without symbols".to_owned()))?
                        .iter()
                        .map(|s| s.as_str().unwrap_or_default().to_owned())
                        .collect(),
                ),
                (Some("array"), _) => Schema::Array(Box::new(parse(
                    object.get("items").unwrap_or(&Value::Null),
                    named,
                    &own_namespace,
                )?)),
                (Some("map"), _) => Schema::Map(Box::new(parse(
                    object.get("values").unwrap_or(&Value::Null),
                    named,
                    &own_namespace,
                )?)),
                (Some("fixed"), _) => Schema::Fixed(
                    object
                        .get("size")
                        .and_then(Value::as_u64)
                        .and_then(|s| usize::try_from(s).ok())
                        .ok_or_else(|| AvroError::Schema("a fixed without size".to_owned()))?,
                ),
                _ => parse(type_name, named, &own_namespace)?,
            };
            if let (Some(name), Schema::Record(_) | Schema::Enum(_) | Schema::Fixed(_)) =
                (name, &schema)
            {
                named.insert(full_name(name, &own_namespace), schema.clone());
                named.insert(
                    name.rsplit('.').next().unwrap_or(name).to_owned(),
                    schema.clone(),
                );
            }
            Ok(schema)
        }
        other => Err(AvroError::Schema(format!("unexpected schema {other}"))),
    }
}

fn primitive(name: &str) -> Option<Schema> {
    Some(match name {
        "null" => Schema::Null,
        "boolean" => Schema::Boolean,
        "int" => Schema::Int,
        "long" => Schema::Long,
        "float" => Schema::Float,
        "double" => Schema::Double,
        "bytes" => Schema::Bytes,
        "string" => Schema::String,
        _ => return None,
    })
}

/// Decodes one datum; the whole input must be used.
pub fn decode(schema: &Schema, bytes: &[u8]) -> Result<Value, AvroError> {
    let mut reader = Reader { bytes, at: 0 };
    let value = reader.value(schema)?;
    if reader.at != bytes.len() {
        return Err(AvroError::Datum(format!(
            "{} bytes left over after the datum",
            bytes.len() - reader.at
        )));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], AvroError> {
        let slice = self
            .at
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.at..end))
            .ok_or_else(|| AvroError::Datum("the datum ends early".to_owned()))?;
        self.at += n;
        Ok(slice)
    }

    fn long(&mut self) -> Result<i64, AvroError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7F) << shift;
            if byte < 0x80 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(AvroError::Datum(
            "a variable-length number is too long".to_owned(),
        ))
    }

    fn length(&mut self) -> Result<usize, AvroError> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| AvroError::Datum(format!("negative length {n}")))
    }

    fn string(&mut self) -> Result<String, AvroError> {
        let n = self.length()?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| AvroError::Datum("a string is not UTF-8".to_owned()))
    }

    /// Reads blocks of items (arrays and maps): count, items, until a zero count; a
    /// negative count is followed by the block's size in bytes.
    fn blocks(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), AvroError>,
    ) -> Result<(), AvroError> {
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.long()?;
            }
            for _ in 0..count.unsigned_abs() {
                item(self)?;
            }
        }
    }

    fn value(&mut self, schema: &Schema) -> Result<Value, AvroError> {
        Ok(match schema {
            Schema::Null => Value::Null,
            Schema::Boolean => Value::Bool(self.take(1)?[0] != 0),
            Schema::Int | Schema::Long => Value::from(self.long()?),
            Schema::Float => {
                let b = self.take(4)?;
                number(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            }
            Schema::Double => {
                let b = self.take(8)?;
                let mut raw = [0u8; 8];
                raw.copy_from_slice(b);
                number(f64::from_le_bytes(raw))
            }
            Schema::Bytes => {
                let n = self.length()?;
                Value::String(base64::engine::general_purpose::STANDARD.encode(self.take(n)?))
            }
            Schema::Fixed(n) => {
                Value::String(base64::engine::general_purpose::STANDARD.encode(self.take(*n)?))
            }
            Schema::String => Value::String(self.string()?),
            Schema::Date => {
                let days = self.long()?;
                Value::String(format_date(days))
            }
            Schema::TimestampMillis => Value::String(format_timestamp(self.long()?)),
            Schema::Record(fields) => {
                let mut map = Map::new();
                for (name, field) in fields {
                    map.insert(name.clone(), self.value(field)?);
                }
                Value::Object(map)
            }
            Schema::Enum(symbols) => {
                let index = self.long()?;
                let symbol = usize::try_from(index)
                    .ok()
                    .and_then(|i| symbols.get(i))
                    .ok_or_else(|| AvroError::Datum(format!("enum index {index} out of range")))?;
                Value::String(symbol.clone())
            }
            Schema::Array(items) => {
                let mut out = Vec::new();
                self.blocks(|r| {
                    out.push(r.value(items)?);
                    Ok(())
                })?;
                Value::Array(out)
            }
            Schema::Map(values) => {
                let mut out = Map::new();
                self.blocks(|r| {
                    let key = r.string()?;
                    let value = r.value(values)?;
                    out.insert(key, value);
                    Ok(())
                })?;
                Value::Object(out)
            }
            Schema::Union(branches) => {
                let index = self.long()?;
                let branch = usize::try_from(index)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| {
                        AvroError::Datum(format!("union branch {index} out of range"))
                    })?;
                self.value(branch)?
            }
        })
    }
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
        {"name":"b","type":["null","boolean"],"default":null}]}"#;

    #[test]
    fn a_datum_decodes_with_unions_unwrapped_and_dates_as_text() {
        let schema = Schema::parse(SCHEMA).unwrap();
        let mut datum = vec![2, 4, b'i', b'd', 0, 2]; // ids ["id"], kind B
        datum.extend([2, 0]); // again: K = A
        datum.extend([2, 0x80, 0x01]); // n = 64
        datum.extend([2, 0xCC, 0x01]); // d = 102 days → 1970-04-13
        datum.extend([2, 0x80, 0xE9, 0xA9, 0xB1, 0xD1, 0x63]); // 1711730408000
        datum.push(0); // x null
        datum.extend([2, 1]); // b true
        let value = decode(&schema, &datum).unwrap();
        assert_eq!(
            value,
            json!({"h": {"ids": ["id"], "kind": "B"}, "again": "A", "n": 64,
                   "d": "1970-04-13", "t": "2024-03-29T16:40:08.000Z", "x": null, "b": true})
        );
        assert!(decode(&schema, &datum[..datum.len() - 1]).is_err());
        let mut longer = datum.clone();
        longer.push(0);
        assert!(decode(&schema, &longer).is_err());
    }
}
