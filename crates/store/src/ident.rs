//! SQL identifiers that are safe by construction.
//!
//! Every table, column, schema, function and trigger name pgforce puts into SQL goes
//! through [`Ident`]: the name is checked to be a plain lower-case Postgres name (what
//! Heroku Connect derives from Salesforce API names) and is always emitted double-quoted,
//! so a name can never change a statement's meaning. Values are bind parameters; the only
//! literals in DDL (channel names, trigger states) go through [`literal`].

use std::fmt;

use crate::error::{Error, Result};

/// Postgres truncates identifiers longer than this many bytes; we refuse them instead.
const MAX_IDENT_BYTES: usize = 63;

/// A validated, lower-case SQL identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

impl Ident {
    /// Checks a name: lower-case letters, digits and underscores, not starting with a
    /// digit, at most 63 bytes.
    pub fn new(name: &str) -> Result<Self> {
        let valid = !name.is_empty()
            && name.len() <= MAX_IDENT_BYTES
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(Error::InvalidIdentifier {
                name: name.to_owned(),
            })
        }
    }

    /// The identifier for a Salesforce API name, lower-cased as Heroku Connect does
    /// (`My_Object__c` → `my_object__c`).
    pub fn from_salesforce(api_name: &str) -> Result<Self> {
        Self::new(&api_name.to_ascii_lowercase())
    }

    /// The name without quotes.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A derived name such as `hc_idx_account_sfid`, checked like any other.
    pub fn derived(parts: &[&str]) -> Result<Self> {
        Self::new(&parts.concat())
    }
}

impl fmt::Display for Ident {
    /// Always double-quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

/// A SQL string literal with quotes doubled.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_and_always_quoted() {
        assert_eq!(Ident::new("account").unwrap().to_string(), "\"account\"");
        assert_eq!(
            Ident::from_salesforce("My_Object__c").unwrap().as_str(),
            "my_object__c"
        );
        assert_eq!(
            Ident::new("user").unwrap().to_string(),
            "\"user\"",
            "reserved words are safe quoted"
        );
        for bad in [
            "",
            "Account",
            "a b",
            "a\"b",
            "a;drop",
            "1abc",
            "é",
            &"x".repeat(64),
        ] {
            assert!(Ident::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn literals_double_their_quotes() {
        assert_eq!(literal("it's"), "'it''s'");
    }
}
