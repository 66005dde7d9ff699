//! Building SOQL safely: quoted literals and validated names.
//!
//! Values never reach SOQL unquoted: strings are escaped with the backslash escapes SOQL
//! defines (`\'`, `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`), and object and field names
//! must be API names, so nothing a record or a user typed can change a query's meaning.

use crate::error::{Error, Result};

/// A string literal: `'O\'Brien'`.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Checks an object, field or relationship name (`Account`, `Foo__c`, `Account.Name`,
/// `ns__Bar__r.Baz__c`) and returns it.
pub fn name(text: &str) -> Result<&str> {
    let valid_part = |part: &str| {
        part.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !part.ends_with('_')
            && part.len() <= 80
    };
    if !text.is_empty() && text.split('.').all(valid_part) {
        Ok(text)
    } else {
        Err(Error::InvalidArgument(format!(
            "{text:?} is not a Salesforce API name"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escape_everything_soql_escapes() {
        assert_eq!(quote("O'Brien"), "'O\\'Brien'");
        assert_eq!(quote("a\\b\n\"c\""), "'a\\\\b\\n\\\"c\\\"'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn names_reject_anything_that_could_inject() {
        assert!(name("Account").is_ok());
        assert!(name("ns__Invoice__c").is_ok());
        assert!(name("Account.Owner.Name").is_ok());
        for bad in [
            "",
            "Name; DROP",
            "Name FROM",
            "1abc",
            "a.",
            "x'y",
            "Name__c_",
        ] {
            assert!(name(bad).is_err(), "{bad}");
        }
    }
}

/// A datetime as Salesforce's REST API writes it (`2024-03-29T16:40:08.208+0000`, or with
/// `Z`, or another `±hhmm` offset) in milliseconds since the epoch; `None` when it is not
/// one.
pub fn datetime_millis(text: &str) -> Option<i64> {
    if text.ends_with('Z') {
        return crate::streaming::cometd::parse_iso_millis(text);
    }
    let split = text.len().checked_sub(5)?;
    let (local, offset) = (text.get(..split)?, text.get(split..)?);
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours: i64 = offset.get(1..3)?.parse().ok()?;
    let minutes: i64 = offset.get(3..5)?.parse().ok()?;
    let at = crate::streaming::cometd::parse_iso_millis(&format!("{local}Z"))?;
    Some(at - sign * (hours * 60 + minutes) * 60_000)
}

/// The SOQL datetime literal (`2024-03-29T16:40:08Z`, whole seconds: SOQL takes no
/// fractions) of `millis` since the epoch, rounded down to the second.
pub fn datetime_literal(millis: i64) -> String {
    let whole = crate::streaming::format_timestamp(millis.div_euclid(1000) * 1000);
    whole.replacen(".000Z", "Z", 1)
}

#[cfg(test)]
mod datetime_tests {
    use super::{datetime_literal, datetime_millis};

    #[test]
    fn rest_datetimes_read_with_their_offset_and_write_as_whole_second_literals() {
        let utc = datetime_millis("2024-03-29T16:40:08.208+0000").unwrap();
        assert_eq!(datetime_millis("2024-03-29T16:40:08.208Z"), Some(utc));
        assert_eq!(datetime_millis("2024-03-29T18:40:08.208+0200"), Some(utc));
        assert_eq!(datetime_millis("2024-03-29T11:40:08.208-0500"), Some(utc));
        assert_eq!(datetime_millis("2024-03-29"), None);
        assert_eq!(datetime_literal(utc), "2024-03-29T16:40:08Z");
        assert_eq!(datetime_literal(utc - 1_208), "2024-03-29T16:40:07Z");
    }
}
