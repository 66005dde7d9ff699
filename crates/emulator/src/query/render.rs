//! Rendering query results as Salesforce's JSON.
//!
//! Query pages are the emulator's hottest path (2,000 records of twenty fields per call),
//! so records are written straight into a string instead of building a `serde_json::Value`
//! tree: same bytes, a fraction of the allocations.

use std::fmt::Write as _;

use super::bind::{Projection, ProjectionItem};
use crate::datetime;
use crate::org::{ObjectIndex, Org, Record, RecordRef, Schema, Value};

/// Writes `s` as a JSON string literal.
pub fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_value(out: &mut String, schema: &Schema, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Double(d) => {
            let _ = write!(out, "{d:?}");
        }
        Value::Text(t) => write_json_str(out, t),
        Value::Date(d) => write_json_str(out, &datetime::format_date(*d)),
        Value::DateTime(ms) => write_json_str(out, &datetime::format_datetime(*ms)),
        Value::Ref(r) => write_json_str(out, &r.id18(schema)),
    }
}

/// Writes the `attributes` object every record carries.
pub fn write_attributes(out: &mut String, schema: &Schema, record: RecordRef, api_version: &str) {
    let object = &schema.object(record.object).name;
    out.push_str("{\"attributes\":{\"type\":");
    write_json_str(out, object);
    let _ = write!(
        out,
        ",\"url\":\"/services/data/v{api_version}/sobjects/{object}/{}\"}}",
        record.id18(schema)
    );
}

/// Writes one record with the given projection.
pub fn write_record(
    out: &mut String,
    org: &Org,
    object: ObjectIndex,
    seq: u64,
    record: &Record,
    projection: &Projection,
    api_version: &str,
) {
    let schema = org.schema();
    write_attributes(out, schema, RecordRef { object, seq }, api_version);
    for item in &projection.items {
        out.push(',');
        match item {
            ProjectionItem::Field { name, field } => {
                write_json_str(out, name);
                out.push(':');
                write_value(out, schema, &record.values[*field]);
            }
            ProjectionItem::Parent {
                name,
                reference,
                projection,
                ..
            } => {
                write_json_str(out, name);
                out.push(':');
                match &record.values[*reference] {
                    Value::Ref(parent) => match org.get(*parent) {
                        Some(parent_record) => write_record(
                            out,
                            org,
                            parent.object,
                            parent.seq,
                            parent_record,
                            projection,
                            api_version,
                        ),
                        None => out.push_str("null"),
                    },
                    _ => out.push_str("null"),
                }
            }
        }
    }
    out.push('}');
}

/// One page of a query result.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    pub object: ObjectIndex,
    pub rows: &'a [u64],
    pub projection: &'a Projection,
    /// Rows in the whole result.
    pub total_size: usize,
    /// Where the next page is, if this is not the last.
    pub next_records_url: Option<&'a str>,
    pub api_version: &'a str,
}

/// Writes a query response body: `totalSize`, `done`, `nextRecordsUrl` when not done, and
/// the page's records.
pub fn write_page(out: &mut String, org: &Org, page: &Page<'_>) {
    let _ = write!(
        out,
        "{{\"totalSize\":{},\"done\":{}",
        page.total_size,
        page.next_records_url.is_none()
    );
    if let Some(url) = page.next_records_url {
        out.push_str(",\"nextRecordsUrl\":");
        write_json_str(out, url);
    }
    out.push_str(",\"records\":[");
    let table = org.table(page.object);
    let mut first = true;
    for seq in page.rows {
        // A record hard-deleted after the cursor was opened is skipped, not rendered as null.
        let Some(record) = table.get(*seq) else {
            continue;
        };
        if !first {
            out.push(',');
        }
        first = false;
        write_record(
            out,
            org,
            page.object,
            *seq,
            record,
            page.projection,
            page.api_version,
        );
    }
    out.push_str("]}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_quotes_controls_and_keep_unicode() {
        let mut out = String::new();
        write_json_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\"");
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }
}
