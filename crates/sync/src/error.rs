//! Errors of the engine, with the mapping and record they concern.

/// Why a mapping could not be set up or synced.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The mapping's configuration does not fit the org.
    #[error("mapping {object}: {problem}")]
    Config {
        /// The mapped object.
        object: String,
        /// What is wrong, naming the field when a field is at fault.
        problem: String,
    },
    /// A Salesforce call failed.
    #[error("mapping {object}: Salesforce call failed")]
    Salesforce {
        /// The mapped object.
        object: String,
        /// The client's error (boxed: it is large, and errors travel by value).
        #[source]
        source: Box<pgforce_salesforce::Error>,
    },
    /// A Postgres operation failed.
    #[error("mapping {object}: database operation failed")]
    Store {
        /// The mapped object.
        object: String,
        /// The store's error.
        #[source]
        source: pgforce_store::Error,
    },
    /// A Postgres statement failed.
    #[error("mapping {object}: {context}")]
    Postgres {
        /// The mapped object.
        object: String,
        /// What was being done.
        context: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

impl Error {
    /// Whether trying again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Config { .. } => false,
            Self::Salesforce { source, .. } => source.is_retryable(),
            Self::Store { source, .. } => source.is_retryable(),
            Self::Postgres { source, .. } => {
                source.is_closed() || source.code().is_some_and(|c| c.code().starts_with("08"))
            }
        }
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
