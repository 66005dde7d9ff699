//! Salesforce's Bulk API CSV, both ways: reading result pages and writing uploads.
//!
//! Reading: a header row of field names, then one row per record; null and empty both
//! come as an empty field. Writing: every value quoted, `"` doubled; `None` becomes
//! `#N/A` (set to null), an empty string an empty field (leave unchanged).

use crate::error::{Error, Result};

/// One page of CSV: the header and the rows, each a list of fields in header order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvPage {
    /// Field names.
    pub header: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<String>>,
}

/// Parses a CSV body.
pub fn parse(body: &[u8], path: &str) -> Result<CsvPage> {
    let unexpected = |detail: String| Error::UnexpectedResponse {
        path: path.to_owned(),
        status: 200,
        detail,
    };
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(body);
    let header = reader
        .headers()
        .map_err(|e| unexpected(format!("the CSV header does not parse: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record =
            record.map_err(|e| unexpected(format!("CSV row {} does not parse: {e}", index + 1)))?;
        rows.push(record.iter().map(str::to_owned).collect());
    }
    Ok(CsvPage { header, rows })
}

/// Appends one upload row; `None` is `#N/A` (set the field to null).
pub fn push_row<S: AsRef<str>>(out: &mut String, fields: &[Option<S>]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match field {
            None => out.push_str("#N/A"),
            Some(text) => {
                out.push('"');
                for c in text.as_ref().chars() {
                    if c == '"' {
                        out.push('"');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_rows_read_back_the_same() {
        let mut out = String::new();
        push_row(&mut out, &[Some("Id"), Some("Name")]);
        push_row(
            &mut out,
            &[Some("001"), Some("a \"quoted\", multi\nline ü")],
        );
        push_row::<&str>(&mut out, &[Some("002"), None]);
        let page = parse(out.as_bytes(), "test").unwrap();
        assert_eq!(page.header, ["Id", "Name"]);
        assert_eq!(page.rows[0][1], "a \"quoted\", multi\nline ü");
        assert_eq!(page.rows[1][1], "#N/A");
    }

    #[test]
    fn a_ragged_row_is_an_error_naming_it() {
        let error = parse(b"A,B\n1,2\n3\n", "/jobs/x").unwrap_err().to_string();
        assert!(error.contains("row 2"), "{error}");
    }
}
