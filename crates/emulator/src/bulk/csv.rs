//! Salesforce's Bulk API CSV: what query results look like and how uploads are read.
//!
//! Results: a header row of field names (`Account.Name` for parent fields), every
//! non-null value double-quoted with `"` doubled inside, null as an empty field, datetimes
//! as `2024-01-03T23:52:01.000Z`, lines ending as the job asked (LF by default). Uploads:
//! RFC 4180 with the job's delimiter; an empty field leaves the field unchanged and
//! `#N/A` sets it to null.

use crate::datetime;
use crate::org::{Org, Record, Schema, Value};
use crate::query::bind::{Projection, ProjectionItem};

/// A job's column delimiter, by its Bulk API name.
pub fn delimiter(name: &str) -> Option<u8> {
    Some(match name {
        "COMMA" => b',',
        "TAB" => b'\t',
        "PIPE" => b'|',
        "SEMICOLON" => b';',
        "CARET" => b'^',
        "BACKQUOTE" => b'`',
        _ => return None,
    })
}

/// A job's line ending, by its Bulk API name.
pub fn line_ending(name: &str) -> Option<&'static str> {
    Some(match name {
        "LF" => "\n",
        "CRLF" => "\r\n",
        _ => return None,
    })
}

/// How a job writes its CSV.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    pub delimiter: u8,
    pub line_ending: &'static str,
}

impl Default for Format {
    fn default() -> Self {
        Self {
            delimiter: b',',
            line_ending: "\n",
        }
    }
}

/// Appends one quoted field.
pub fn push_quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

/// Appends a row of fields, each quoted (`None` is an empty field).
pub fn push_row<'a>(
    out: &mut String,
    format: Format,
    fields: impl IntoIterator<Item = Option<&'a str>>,
) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(char::from(format.delimiter));
        }
        if let Some(text) = field {
            push_quoted(out, text);
        }
    }
    out.push_str(format.line_ending);
}

/// The header names of a projection, parent fields as `Relationship.Field`.
pub fn header(projection: &Projection) -> Vec<String> {
    let mut names = Vec::new();
    for item in &projection.items {
        match item {
            ProjectionItem::Field { name, .. } => names.push(name.clone()),
            ProjectionItem::Parent {
                name, projection, ..
            } => names.extend(
                header(projection)
                    .into_iter()
                    .map(|n| format!("{name}.{n}")),
            ),
        }
    }
    names
}

/// A value as Bulk API CSV text (`None` for null).
pub fn value_text(schema: &Schema, value: &Value) -> Option<String> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Double(d) => format!("{d:?}"),
        Value::Text(t) => t.to_string(),
        Value::Date(d) => datetime::format_date(*d),
        Value::DateTime(ms) => datetime::format_datetime_z(*ms),
        Value::Ref(r) => r.id18(schema),
    })
}

/// The values of one record for a projection, parents' fields flattened.
pub fn row_values(
    org: &Org,
    record: Option<&Record>,
    projection: &Projection,
    out: &mut Vec<Option<String>>,
) {
    let schema = org.schema();
    for item in &projection.items {
        match item {
            ProjectionItem::Field { field, .. } => {
                out.push(record.and_then(|r| value_text(schema, &r.values[*field])));
            }
            ProjectionItem::Parent {
                reference,
                projection,
                ..
            } => {
                let parent = record.and_then(|r| match &r.values[*reference] {
                    Value::Ref(parent) => org.get(*parent),
                    _ => None,
                });
                row_values(org, parent, projection, out);
            }
        }
    }
}

/// Reads an upload: the header and the rows, or what is wrong with it.
pub fn read(data: &[u8], delimiter: u8) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(false)
        .from_reader(data);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("InvalidBatch : Failed to parse CSV header: {e}"))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut rows = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record
            .map_err(|e| format!("InvalidBatch : Failed to parse CSV row {}: {e}", line + 2))?;
        rows.push(record.iter().map(str::to_owned).collect());
    }
    Ok((header, rows))
}
