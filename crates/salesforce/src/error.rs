//! Errors of Salesforce calls, with Salesforce's own `errorCode` kept as a typed value.
//!
//! Callers decide what to do from the error, so every error answers three questions:
//! what Salesforce said ([`ApiErrorCode`], message, fields), whether trying again can help
//! ([`Error::is_retryable`]), and, for a failed write, whether it may have been applied
//! anyway ([`Error::may_have_been_applied`]) — the question that keeps a create from
//! happening twice.

use std::fmt;

/// Salesforce's `errorCode` (or `statusCode` in per-record results).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ApiErrorCode {
    /// `ALL_OR_NONE_OPERATION_ROLLED_BACK`.
    AllOrNoneOperationRolledBack,
    /// `DUPLICATE_EXTERNAL_ID`.
    DuplicateExternalId,
    /// `DUPLICATE_VALUE`.
    DuplicateValue,
    /// `ENTITY_IS_DELETED`.
    EntityIsDeleted,
    /// `FIELD_CUSTOM_VALIDATION_EXCEPTION`.
    FieldCustomValidationException,
    /// `FIELD_INTEGRITY_EXCEPTION`.
    FieldIntegrityException,
    /// `INVALID_CROSS_REFERENCE_KEY`.
    InvalidCrossReferenceKey,
    /// `INVALID_EMAIL_ADDRESS`.
    InvalidEmailAddress,
    /// `INVALID_FIELD`.
    InvalidField,
    /// `INVALID_FIELD_FOR_INSERT_UPDATE`.
    InvalidFieldForInsertUpdate,
    /// `INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST`.
    InvalidOrNullForRestrictedPicklist,
    /// `INVALID_QUERY_LOCATOR`.
    InvalidQueryLocator,
    /// `INVALID_SESSION_ID`.
    InvalidSessionId,
    /// `INVALID_TYPE`.
    InvalidType,
    /// `INVALID_TYPE_ON_FIELD_IN_RECORD`.
    InvalidTypeOnFieldInRecord,
    /// `JSON_PARSER_ERROR`.
    JsonParserError,
    /// `MALFORMED_ID`.
    MalformedId,
    /// `MALFORMED_QUERY`.
    MalformedQuery,
    /// `NOT_FOUND`.
    NotFound,
    /// `NUMBER_OUTSIDE_VALID_RANGE`.
    NumberOutsideValidRange,
    /// `QUERY_TIMEOUT`.
    QueryTimeout,
    /// `REQUEST_LIMIT_EXCEEDED`.
    RequestLimitExceeded,
    /// `REQUIRED_FIELD_MISSING`.
    RequiredFieldMissing,
    /// `SERVER_UNAVAILABLE`.
    ServerUnavailable,
    /// `STRING_TOO_LONG`.
    StringTooLong,
    /// `UNABLE_TO_LOCK_ROW`.
    UnableToLockRow,
    /// Any code this crate does not name, kept as Salesforce spelled it.
    Other(String),
}

const NAMED_CODES: [(&str, ApiErrorCode); 26] = [
    (
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        ApiErrorCode::AllOrNoneOperationRolledBack,
    ),
    ("DUPLICATE_EXTERNAL_ID", ApiErrorCode::DuplicateExternalId),
    ("DUPLICATE_VALUE", ApiErrorCode::DuplicateValue),
    ("ENTITY_IS_DELETED", ApiErrorCode::EntityIsDeleted),
    (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        ApiErrorCode::FieldCustomValidationException,
    ),
    (
        "FIELD_INTEGRITY_EXCEPTION",
        ApiErrorCode::FieldIntegrityException,
    ),
    (
        "INVALID_CROSS_REFERENCE_KEY",
        ApiErrorCode::InvalidCrossReferenceKey,
    ),
    ("INVALID_EMAIL_ADDRESS", ApiErrorCode::InvalidEmailAddress),
    ("INVALID_FIELD", ApiErrorCode::InvalidField),
    (
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        ApiErrorCode::InvalidFieldForInsertUpdate,
    ),
    (
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        ApiErrorCode::InvalidOrNullForRestrictedPicklist,
    ),
    ("INVALID_QUERY_LOCATOR", ApiErrorCode::InvalidQueryLocator),
    ("INVALID_SESSION_ID", ApiErrorCode::InvalidSessionId),
    ("INVALID_TYPE", ApiErrorCode::InvalidType),
    (
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        ApiErrorCode::InvalidTypeOnFieldInRecord,
    ),
    ("JSON_PARSER_ERROR", ApiErrorCode::JsonParserError),
    ("MALFORMED_ID", ApiErrorCode::MalformedId),
    ("MALFORMED_QUERY", ApiErrorCode::MalformedQuery),
    ("NOT_FOUND", ApiErrorCode::NotFound),
    (
        "NUMBER_OUTSIDE_VALID_RANGE",
        ApiErrorCode::NumberOutsideValidRange,
    ),
    ("QUERY_TIMEOUT", ApiErrorCode::QueryTimeout),
    ("REQUEST_LIMIT_EXCEEDED", ApiErrorCode::RequestLimitExceeded),
    ("REQUIRED_FIELD_MISSING", ApiErrorCode::RequiredFieldMissing),
    ("SERVER_UNAVAILABLE", ApiErrorCode::ServerUnavailable),
    ("STRING_TOO_LONG", ApiErrorCode::StringTooLong),
    ("UNABLE_TO_LOCK_ROW", ApiErrorCode::UnableToLockRow),
];

impl ApiErrorCode {
    /// The code for Salesforce's spelling.
    pub fn parse(code: &str) -> Self {
        NAMED_CODES
            .iter()
            .find(|(name, _)| *name == code)
            .map_or_else(|| Self::Other(code.to_owned()), |(_, c)| c.clone())
    }

    /// Salesforce's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(code) => code,
            named => NAMED_CODES
                .iter()
                .find(|(_, c)| c == named)
                .map_or("", |(name, _)| name),
        }
    }

    /// Whether the same call may succeed later: row locks, unavailability, query timeouts.
    /// (An expired session is handled by refreshing, not by retrying.)
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::UnableToLockRow | Self::ServerUnavailable | Self::QueryTimeout
        )
    }
}

impl fmt::Display for ApiErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of one record inside a collections call (or a single-record write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// Salesforce's code.
    pub code: ApiErrorCode,
    /// Salesforce's message.
    pub message: String,
    /// The fields the error concerns (often empty).
    pub fields: Vec<String>,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if !self.fields.is_empty() {
            write!(f, " (fields: {})", self.fields.join(", "))?;
        }
        Ok(())
    }
}

/// Why a Salesforce call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Salesforce answered with an error body.
    #[error("{method} {path}: HTTP {status}: {error}")]
    Api {
        /// HTTP method of the call.
        method: String,
        /// Path of the call.
        path: String,
        /// HTTP status of the answer.
        status: u16,
        /// What Salesforce said.
        error: RecordError,
    },
    /// The daily API allocation is used up (403 REQUEST_LIMIT_EXCEEDED).
    #[error("{path}: the org's API request limit is exhausted: {message}")]
    RequestLimitExceeded {
        /// Path of the refused call.
        path: String,
        /// Salesforce's message.
        message: String,
    },
    /// This client's own daily call budget is used up; no call was made.
    #[error("daily API call budget of {budget} calls is used up ({used} used)")]
    BudgetExhausted {
        /// Requests the org reports used today.
        used: u64,
        /// The configured budget.
        budget: u64,
    },
    /// The token endpoint refused the credentials.
    #[error("login to {login_url} failed: {error}: {description}")]
    Auth {
        /// Where the login was tried.
        login_url: String,
        /// HTTP status of the answer.
        status: u16,
        /// What Salesforce said.
        error: String,
        /// OAuth `error_description`.
        description: String,
    },
    /// The request did not get an answer: connect failure, timeout, dropped connection.
    #[error("{method} {path}: no answer from Salesforce{}", if *maybe_applied { " (the request may have been applied)" } else { "" })]
    Transport {
        /// HTTP method of the call.
        method: String,
        /// Path of the call.
        path: String,
        /// False only when the request provably never reached the server.
        maybe_applied: bool,
        /// The transport failure.
        #[source]
        source: reqwest::Error,
    },
    /// The answer was not what Salesforce sends: an HTML error page, truncated JSON.
    #[error("{path}: unexpected response (HTTP {status}): {detail}")]
    UnexpectedResponse {
        /// Path of the call.
        path: String,
        /// HTTP status of the answer.
        status: u16,
        /// What was wrong, with the start of the body.
        detail: String,
    },
    /// An upsert key matched several records (HTTP 300).
    #[error("{path}: the external id matches {} records", urls.len())]
    MultipleMatches {
        /// Path of the call.
        path: String,
        /// The matching records' URLs.
        urls: Vec<String>,
    },
    /// A call was asked for with arguments Salesforce would refuse.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The JWT assertion could not be signed (bad private key).
    #[error("signing the JWT assertion failed")]
    Jwt(#[source] jsonwebtoken::errors::Error),
    /// A URL or endpoint names a host credentials and tokens must not be sent to (see
    /// [`crate::AllowedHosts`]); nothing was sent.
    #[error("{what}: {problem}")]
    HostNotAllowed {
        /// The setting or answer field that named it (`login_url`, `instance_url`).
        what: String,
        /// What is wrong, with the allowed host families.
        problem: String,
    },
    /// The HTTP client could not be built (bad root certificate).
    #[error("building the HTTP client failed: {0}")]
    Setup(String),
    /// The client's send guard stopped the request before it left.
    #[error("{method} {path}: not sent: {reason}")]
    NotSent {
        /// HTTP method of the call.
        method: String,
        /// Path of the call.
        path: String,
        /// Why the guard stopped it.
        reason: String,
    },
    /// A Bulk API job ended without completing.
    #[error("bulk job {id} ended {state}: {message}")]
    JobFailed {
        /// The job's Id.
        id: String,
        /// Its final state.
        state: String,
        /// Salesforce's `errorMessage`.
        message: String,
    },
}

impl Error {
    /// The Salesforce error code, when Salesforce sent one.
    pub fn code(&self) -> Option<&ApiErrorCode> {
        match self {
            Self::Api { error, .. } => Some(&error.code),
            Self::RequestLimitExceeded { .. } => Some(&ApiErrorCode::RequestLimitExceeded),
            _ => None,
        }
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. }
            | Self::Auth { status, .. }
            | Self::UnexpectedResponse { status, .. } => Some(*status),
            Self::RequestLimitExceeded { .. } => Some(403),
            _ => None,
        }
    }

    /// Whether trying the same call again later can succeed: transient Salesforce errors,
    /// 5xx answers, timeouts and dropped connections.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api { status, error, .. } => error.code.is_transient() || *status >= 500,
            Self::Transport { .. } => true,
            Self::UnexpectedResponse { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// Whether a failed write may nevertheless have been applied by Salesforce. When false,
    /// resending it cannot create a duplicate. A success status whose body could not be
    /// read counts as applied: Salesforce did the work, only its answer is unusable.
    pub fn may_have_been_applied(&self) -> bool {
        match self {
            Self::Transport { maybe_applied, .. } => *maybe_applied,
            Self::Api { status, error, .. } => {
                *status >= 500 && error.code != ApiErrorCode::ServerUnavailable
            }
            Self::UnexpectedResponse { status, .. } => {
                (200..300).contains(status) || (*status >= 500 && *status != 503)
            }
            _ => false,
        }
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_kept() {
        for (name, code) in &NAMED_CODES {
            assert_eq!(&ApiErrorCode::parse(name), code);
            assert_eq!(code.as_str(), *name);
        }
        assert_eq!(
            ApiErrorCode::parse("SOMETHING_NEW").as_str(),
            "SOMETHING_NEW"
        );
    }

    fn api(status: u16, code: &str) -> Error {
        Error::Api {
            method: "POST".to_owned(),
            path: "/x".to_owned(),
            status,
            error: RecordError {
                code: ApiErrorCode::parse(code),
                message: String::new(),
                fields: Vec::new(),
            },
        }
    }

    #[test]
    fn transient_errors_are_retryable_and_validation_errors_are_not() {
        assert!(api(400, "UNABLE_TO_LOCK_ROW").is_retryable());
        assert!(api(503, "SERVER_UNAVAILABLE").is_retryable());
        assert!(api(500, "UNKNOWN_EXCEPTION").is_retryable());
        assert!(!api(400, "REQUIRED_FIELD_MISSING").is_retryable());
        assert!(!api(404, "NOT_FOUND").is_retryable());
    }

    #[test]
    fn only_ambiguous_failures_may_have_been_applied() {
        assert!(!api(503, "SERVER_UNAVAILABLE").may_have_been_applied());
        assert!(!api(400, "UNABLE_TO_LOCK_ROW").may_have_been_applied());
        assert!(api(500, "UNKNOWN_EXCEPTION").may_have_been_applied());
    }

    fn unexpected(status: u16) -> Error {
        Error::UnexpectedResponse {
            path: "/x".to_owned(),
            status,
            detail: String::new(),
        }
    }

    #[test]
    fn an_unreadable_success_answer_may_have_been_applied() {
        assert!(unexpected(200).may_have_been_applied());
        assert!(unexpected(201).may_have_been_applied());
        assert!(unexpected(502).may_have_been_applied());
        assert!(!unexpected(503).may_have_been_applied());
        assert!(!unexpected(400).may_have_been_applied());
    }
}
