//! Errors of Postgres work, with the SQLSTATE kept.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name that cannot be a Postgres identifier pgforce creates.
    #[error(
        "{name:?} is not a valid table or column name (lower-case letters, digits and _; at most 63 bytes)"
    )]
    InvalidIdentifier {
        /// The name as given.
        name: String,
    },
    /// Another connection already syncs into this schema.
    #[error(
        "schema {schema} already belongs to connection {owner}; give connection {name} its own schema"
    )]
    SchemaTaken {
        /// The schema both claim.
        schema: String,
        /// The connection that has it.
        owner: String,
        /// The connection that asked for it.
        name: String,
    },
    /// Work done under a lease tried to commit after the lease moved to another holder.
    #[error("lease {lease} is no longer this process's: another pgforce took over this work")]
    Fenced {
        /// The lease.
        lease: String,
    },
    /// A catalog row holds something this version cannot read.
    #[error("{what}")]
    Catalog {
        /// What is wrong, naming the row.
        what: String,
    },
    /// Every session of the pool stayed lent for as long as a caller may wait.
    #[error(
        "the database pool is exhausted: all {size} sessions stayed busy for {}s (raise [database] pool_size or lower the load)",
        waited.as_secs()
    )]
    PoolExhausted {
        /// The pool's size.
        size: usize,
        /// How long the caller waited.
        waited: std::time::Duration,
    },
    /// A relation cannot be published as an OData entity set.
    #[error("{relation} cannot be published: {reason}")]
    NotPublishable {
        /// `schema.table`.
        relation: String,
        /// Why not.
        reason: String,
    },
    /// An OData request's input is wrong (the caller's fault: HTTP 400).
    #[error("{0}")]
    Query(crate::odata::QueryError),
    /// A statement failed.
    #[error("{context}{}", sqlstate_suffix(source))]
    Postgres {
        /// What was being done.
        context: String,
        /// The driver's error (with the SQLSTATE, when the server sent one).
        #[source]
        source: tokio_postgres::Error,
    },
}

impl Error {
    /// The SQLSTATE code, when the server sent one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Postgres { source, .. } => {
                source.code().map(tokio_postgres::error::SqlState::code)
            }
            Self::InvalidIdentifier { .. }
            | Self::PoolExhausted { .. }
            | Self::SchemaTaken { .. }
            | Self::Catalog { .. }
            | Self::NotPublishable { .. }
            | Self::Query(_)
            | Self::Fenced { .. } => None,
        }
    }

    /// Whether every session of the pool stayed busy for as long as a caller may wait
    /// (the API answers 503).
    pub fn is_pool_exhausted(&self) -> bool {
        matches!(self, Self::PoolExhausted { .. })
    }

    /// The OData input error this is, when the request's input was at fault.
    pub fn query_error(&self) -> Option<&crate::odata::QueryError> {
        match self {
            Self::Query(error) => Some(error),
            _ => None,
        }
    }

    /// Whether work stopped because its lease moved to another holder.
    pub fn is_fenced(&self) -> bool {
        matches!(self, Self::Fenced { .. })
    }

    /// Whether trying again later can succeed: connection loss, serialization failures,
    /// deadlocks, the server shutting down or out of connections, a session ended for
    /// sitting idle in a transaction (a holder that froze, see [`crate::OwnWrite`]).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Postgres { source, .. } => match source.code() {
                Some(code) => {
                    let code = code.code();
                    code.starts_with("08")
                        || code.starts_with("57P")
                        || matches!(code, "40001" | "40P01" | "53300" | "25P03")
                }
                None => source.is_closed(),
            },
            Self::PoolExhausted { .. } => true,
            Self::InvalidIdentifier { .. }
            | Self::SchemaTaken { .. }
            | Self::Catalog { .. }
            | Self::NotPublishable { .. }
            | Self::Query(_)
            | Self::Fenced { .. } => false,
        }
    }
}

/// ` (SQLSTATE 40P01)` when the server sent a code; the server's message itself is the
/// error's source.
fn sqlstate_suffix(source: &tokio_postgres::Error) -> String {
    source
        .code()
        .map(|code| format!(" (SQLSTATE {})", code.code()))
        .unwrap_or_default()
}

/// Adds what was being done to a driver error.
pub(crate) trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, tokio_postgres::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Postgres {
            context: what(),
            source,
        })
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
