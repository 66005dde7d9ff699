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
