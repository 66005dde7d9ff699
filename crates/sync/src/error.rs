//! Errors of the engine, with the connection, mapping or record they concern.
//!
//! Causes stay attached as sources (Salesforce's `errorCode`, Postgres's SQLSTATE);
//! [`Error::chain`] renders the whole chain for the places a person reads it (a mapping's
//! last error, a log line), so the message always names the cause, never just "db error".

use std::fmt::Write as _;

/// Why the engine could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mapping's configuration does not fit the org.
    #[error("mapping {object}: {problem}")]
    Config {
        /// The mapped object.
        object: String,
        /// What is wrong, naming the field when a field is at fault.
        problem: String,
    },
    /// Mapped fields the object's describe does not list: never there, deleted, or hidden
    /// from the integration user by field-level security.
    #[error("mapping {object}: {problem}")]
    MissingFields {
        /// The mapped object.
        object: String,
        /// The fields' API names, as the mapping spells them.
        fields: Vec<String>,
        /// What is wrong, naming the fields.
        problem: String,
    },
    /// A connection's configuration is incomplete or unusable.
    #[error("connection {connection}: {problem}")]
    Connection {
        /// The connection.
        connection: String,
        /// What is wrong, naming the setting.
        problem: String,
    },
    /// A Heroku Connect mapping document is malformed.
    #[error("{problem}")]
    Document {
        /// What is wrong, naming the path in the document.
        problem: String,
    },
    /// What an operation would create exists already (a connection of that name).
    #[error("{what}")]
    Conflict {
        /// What exists, named.
        what: String,
    },
    /// What an operation names does not exist.
    #[error("{what}")]
    NotFound {
        /// What was looked for, and where.
        what: String,
    },
    /// A budget the request would exceed (a token's Salesforce calls for the hour).
    #[error("{what} is spent")]
    Exhausted {
        /// What is spent, and when it comes back.
        what: String,
    },
    /// The lease the work was done under can no longer be trusted (it expired by this
    /// process's clock, or another process holds it): the work stops before its next call.
    #[error("lease {lease} is no longer held: stopping before the next call")]
    LeaseLost {
        /// The lease.
        lease: String,
    },
    /// A Salesforce call failed.
    #[error("mapping {object}: Salesforce call failed")]
    Salesforce {
        /// The mapped object (or `(connection)`).
        object: String,
        /// The client's error (boxed: it is large, and errors travel by value).
        #[source]
        source: Box<pgforce_salesforce::Error>,
    },
    /// A Postgres operation failed.
    #[error("{what}: database operation failed")]
    Store {
        /// What was being worked on (`mapping Account`, `the catalog`).
        what: String,
        /// The store's error, with the SQLSTATE.
        #[source]
        source: pgforce_store::Error,
    },
}

/// Whose fault an error is, for callers that answer someone (the API's status codes):
/// they match on this instead of reaching into Salesforce's or Postgres's errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// What was asked for does not exist (here or in Salesforce).
    NotFound,
    /// It conflicts with what exists (a name taken, a unique value, a lease held).
    Conflict,
    /// A setting, document or name is not acceptable.
    Invalid,
    /// A connection cannot be used as configured (credentials, hosts, the org refused).
    BadConnection,
    /// Postgres refused a value the request carried (SQLSTATE class 22).
    BadValue,
    /// Salesforce failed the call.
    Salesforce,
    /// Postgres could not be reached or failed: try again later.
    Unavailable,
    /// The caller spent its budget: try again later.
    Exhausted,
}

/// How many times one read (a poll, the writer's look for creates in doubt) starts over
/// after Salesforce released its query cursor.
pub(crate) const CURSOR_RESTARTS: u32 = 3;

impl Error {
    /// Whether Salesforce answered that it released the query's cursor
    /// (`INVALID_QUERY_LOCATOR`: it keeps only so many open per user): reading again from
    /// the start works.
    pub(crate) fn is_cursor_released(&self) -> bool {
        matches!(self, Self::Salesforce { source, .. }
            if matches!(source.as_ref(), pgforce_salesforce::Error::Api { error, .. }
                if error.code == pgforce_salesforce::ApiErrorCode::InvalidQueryLocator))
    }

    /// A Salesforce error of a mapping.
    pub(crate) fn salesforce(object: &str, source: pgforce_salesforce::Error) -> Self {
        Self::Salesforce {
            object: object.to_owned(),
            source: Box::new(source),
        }
    }

    /// A store error of a mapping.
    pub(crate) fn store(object: &str, source: pgforce_store::Error) -> Self {
        Self::Store {
            what: format!("mapping {object}"),
            source,
        }
    }

    /// A store error of the catalog.
    pub(crate) fn catalog(source: pgforce_store::Error) -> Self {
        Self::Store {
            what: "the catalog".to_owned(),
            source,
        }
    }

    /// A configuration problem of a mapping.
    pub(crate) fn config(object: &str, problem: impl Into<String>) -> Self {
        Self::Config {
            object: object.to_owned(),
            problem: problem.into(),
        }
    }

    /// Whose fault the error is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Exhausted { .. } => ErrorKind::Exhausted,
            Self::Conflict { .. } | Self::LeaseLost { .. } => ErrorKind::Conflict,
            Self::Config { .. } | Self::MissingFields { .. } | Self::Document { .. } => {
                ErrorKind::Invalid
            }
            Self::Connection { .. } => ErrorKind::BadConnection,
            Self::Salesforce { source, .. } if source.status() == Some(404) => ErrorKind::NotFound,
            Self::Salesforce { .. } => ErrorKind::Salesforce,
            Self::Store { source, .. } => store_kind(source),
        }
    }

    /// The error and every cause, joined with `: ` (what a person reads).
    pub fn chain(&self) -> String {
        chain(self)
    }
}

/// A database error's kind: the request's fault when Postgres refused its values (SQLSTATE
/// classes 22 and 23) or pgforce refused a name or a claim; else unavailable.
fn store_kind(source: &pgforce_store::Error) -> ErrorKind {
    match source {
        pgforce_store::Error::InvalidIdentifier { .. }
        | pgforce_store::Error::SchemaTaken { .. }
        | pgforce_store::Error::Catalog { .. } => ErrorKind::Invalid,
        other => match other.sqlstate() {
            Some(code) if code.starts_with("22") => ErrorKind::BadValue,
            Some(code) if code.starts_with("23") => ErrorKind::Conflict,
            _ => ErrorKind::Unavailable,
        },
    }
}

/// Any error and every cause, joined with `: `.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let _ = write!(text, ": {error}");
        cause = error.source();
    }
    text
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_every_cause() {
        let error = Error::salesforce(
            "Account",
            pgforce_salesforce::Error::InvalidArgument("201 records".to_owned()),
        );
        assert_eq!(
            error.chain(),
            "mapping Account: Salesforce call failed: invalid argument: 201 records"
        );
    }
}
