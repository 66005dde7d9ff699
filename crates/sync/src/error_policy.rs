//! The engine's one error policy: what an error means for the work it interrupted.
//!
//! Every worker and command asks [`decide`] (for any engine error) or [`decide_call`] (for a
//! failed Salesforce call) instead of judging errors itself, so the same error never gets
//! two treatments in two places. Four decisions:
//!
//! - **Retry**: the cause is passing (a dropped connection, a 5xx, a row lock, a deadlock,
//!   a Postgres restart). Try again with backoff; nothing is marked failed. One exception:
//!   a 500 `UNKNOWN_EXCEPTION` for a whole write call may be one record's doing every
//!   time ([`server_error`]); the writer then sends that call's changes alone and fails a
//!   change that keeps failing after a bounded number of attempts.
//! - **Fail the record**: Salesforce refused one record for something about that record
//!   (a validation rule, a bad value). Only per-record results get this decision; the
//!   change becomes FAILED with Salesforce's message.
//! - **Pause the connection**: the org cannot be used at all for now (its daily API limit
//!   is spent, the credentials no longer work). Nothing is the records' fault: their
//!   changes wait, and work resumes once the org answers again.
//! - **Stop the mapping**: the operator must act (an object or field that does not exist,
//!   a configuration that does not fit). The mapping shows the error until it changes. A
//!   write call refused as a whole for such a reason fails none of its records.
//! - **Check the schema**: the error names a field or a value too wide for its column
//!   (Salesforce's `INVALID_FIELD`, Postgres's 22001 and 22003), which is what a field
//!   changed in Salesforce looks like. The reader describes the object again and follows
//!   the change (widens the column; waits in `SCHEMA_CHANGED` for a field that is gone);
//!   when nothing changed, the mapping stops as above.
//!
//! Each decision comes with a one-line hint for the operator.

use pgforce_salesforce::{ApiErrorCode, RecordError};
use pgforce_store::ConnectionState;

use crate::error::Error;

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Try again later, with backoff.
    Retry,
    /// The error belongs to one record: it fails with Salesforce's message.
    FailRecord,
    /// The org is unusable for now: the connection's work waits for it.
    PauseConnection,
    /// The operator must act: the mapping stops and shows the error.
    StopMapping,
    /// A field may have changed in Salesforce: describe the object again and follow the
    /// change; stop the mapping when nothing changed.
    CheckSchema,
}

/// A decision and what to tell the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// What to do.
    pub decision: Decision,
    /// One line for the operator.
    pub hint: &'static str,
}

const fn verdict(decision: Decision, hint: &'static str) -> Verdict {
    Verdict { decision, hint }
}

/// The verdict on an engine error.
pub(crate) fn decide(error: &Error) -> Verdict {
    match error {
        Error::Salesforce { source, .. } => decide_call(source),
        Error::Store { source, .. } => decide_store(source),
        Error::Config { .. } | Error::MissingFields { .. } | Error::Document { .. } => verdict(
            Decision::StopMapping,
            "the mapping does not fit the org; change it and it starts again",
        ),
        Error::Connection { .. } => verdict(
            Decision::StopMapping,
            "the connection's settings are incomplete; fix them and restart",
        ),
        Error::Conflict { .. } => verdict(
            Decision::StopMapping,
            "what the operation would create exists already",
        ),
        Error::NotFound { .. } => verdict(
            Decision::StopMapping,
            "what the operation names does not exist",
        ),
        Error::LeaseLost { .. } => lease_lost(),
        Error::Exhausted { .. } => verdict(
            Decision::Retry,
            "a budget is spent for now; trying again later",
        ),
    }
}

fn lease_lost() -> Verdict {
    verdict(
        Decision::Retry,
        "another pgforce took over this work; standing by until the lease is free",
    )
}

/// The verdict on a Postgres error: passing trouble (connection loss, a deadlock, a
/// serialization failure, a server shutting down or out of connections) is retried;
/// anything else needs the operator.
pub(crate) fn decide_store(error: &pgforce_store::Error) -> Verdict {
    if error.is_fenced() {
        lease_lost()
    } else if error.is_retryable() {
        verdict(
            Decision::Retry,
            "PostgreSQL was unavailable or the transaction conflicted; retrying",
        )
    } else if matches!(
        error.sqlstate(),
        Some(STRING_DATA_RIGHT_TRUNCATION | NUMERIC_VALUE_OUT_OF_RANGE)
    ) {
        verdict(
            Decision::CheckSchema,
            "a value does not fit its column; checking whether Salesforce widened the field",
        )
    } else {
        verdict(
            Decision::StopMapping,
            "PostgreSQL refused the statement; see its message and SQLSTATE",
        )
    }
}

/// SQLSTATE of a value too long for its column.
const STRING_DATA_RIGHT_TRUNCATION: &str = "22001";
/// SQLSTATE of a number out of its column's range.
const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";

/// The verdict on a column Postgres would not widen. Passing trouble is retried; anything
/// else (a view or rule depends on the column, say) leaves the column as it is and fails
/// only the records that need it: they are kept as rejected records, the mapping goes on,
/// and the widening is tried again at the next schema check.
pub(crate) fn decide_widening(error: &pgforce_store::Error) -> Verdict {
    match decide_store(error).decision {
        Decision::Retry => decide_store(error),
        _ => verdict(
            Decision::FailRecord,
            "PostgreSQL would not widen the column (does a view or rule depend on it?); records that need it are kept as rejected and the widening is tried again at the next schema check",
        ),
    }
}

/// Which pause an org-wide condition calls for: the connection state that shows it.
pub(crate) fn pause_state(error: &pgforce_salesforce::Error) -> ConnectionState {
    use pgforce_salesforce::Error as Sf;
    match error {
        Sf::RequestLimitExceeded { .. } | Sf::BudgetExhausted { .. } => {
            ConnectionState::PausedApiLimit
        }
        _ => ConnectionState::PausedAuth,
    }
}

/// The pause an engine error calls for, when the policy says pause.
pub(crate) fn pause_of(error: &Error) -> Option<Pause> {
    match error {
        Error::Salesforce { source, .. }
            if decide_call(source).decision == Decision::PauseConnection =>
        {
            Some(Pause {
                state: pause_state(source),
                reason: source.to_string(),
            })
        }
        _ => None,
    }
}

/// An org-wide condition the connection waits out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    /// The state that shows it (`PAUSED_API_LIMIT`, `PAUSED_AUTH`).
    pub state: ConnectionState,
    /// Salesforce's words.
    pub reason: String,
}

impl Error {
    /// Whether the policy retries this error (a dropped connection, a 5xx, a deadlock):
    /// the same work may succeed a little later.
    pub fn is_passing(&self) -> bool {
        decide(self).decision == Decision::Retry
    }

    /// Whether the org cannot be used for now (its API allocation is spent, it refuses the
    /// credentials): work waits until it answers again.
    pub fn pauses_connection(&self) -> bool {
        decide(self).decision == Decision::PauseConnection
    }
}

/// The verdict on a failed Salesforce call as a whole.
pub(crate) fn decide_call(error: &pgforce_salesforce::Error) -> Verdict {
    use pgforce_salesforce::Error as Sf;
    if let Sf::NotSent { .. } = error {
        // Stopped by the writer's own lease check: nothing reached Salesforce.
        return lease_lost();
    }
    if error.is_retryable() {
        return verdict(
            Decision::Retry,
            "Salesforce was unavailable or busy; retrying with backoff",
        );
    }
    match error {
        Sf::RequestLimitExceeded { .. } | Sf::BudgetExhausted { .. } => verdict(
            Decision::PauseConnection,
            "the org's API allocation is used up; work resumes when it is available again",
        ),
        Sf::Auth { .. } => verdict(
            Decision::PauseConnection,
            "Salesforce refused the connection's credentials; renew them",
        ),
        Sf::Api { error, .. } if error.code == ApiErrorCode::InvalidQueryLocator => verdict(
            Decision::Retry,
            "Salesforce released the query's cursor (too many open for the user); reading again",
        ),
        Sf::Api { error, .. } if error.code == ApiErrorCode::InvalidSessionId => verdict(
            Decision::PauseConnection,
            "Salesforce refused the session even after logging in again; check the credentials",
        ),
        Sf::Api { error, .. } if error.code == ApiErrorCode::InvalidField => verdict(
            Decision::CheckSchema,
            "Salesforce does not know a mapped field; checking whether it was deleted or hidden",
        ),
        Sf::Api { error, .. }
            if matches!(
                error.code,
                ApiErrorCode::NotFound | ApiErrorCode::InvalidType | ApiErrorCode::MalformedQuery
            ) =>
        {
            verdict(
                Decision::StopMapping,
                "the object or a field is not what the mapping expects; check the org's schema",
            )
        }
        _ => verdict(
            Decision::StopMapping,
            "Salesforce refused the call; see its errorCode and message",
        ),
    }
}

/// Salesforce's error when a call failed as a whole with a server error that one of its
/// records may cause every time (500 `UNKNOWN_EXCEPTION`, an internal error): retried, but
/// only a bounded number of times for a record sent alone (the writer's `server_errors`).
/// 503 `SERVER_UNAVAILABLE`, row locks and answers that are not Salesforce's own error
/// body (a proxy's page) are passing trouble of the org, never a record's.
pub(crate) fn server_error(error: &pgforce_salesforce::Error) -> Option<&RecordError> {
    match error {
        pgforce_salesforce::Error::Api { status, error, .. }
            if *status >= 500
                && error.code != ApiErrorCode::ServerUnavailable
                && !error.code.is_transient() =>
        {
            Some(error)
        }
        _ => None,
    }
}

/// The decision on one record's error inside a successful call: transient ones (a row
/// lock) are sent again, the rest belong to the record.
pub(crate) fn decide_record(error: &RecordError) -> Decision {
    if error.code.is_transient() {
        Decision::Retry
    } else {
        Decision::FailRecord
    }
}

#[cfg(test)]
mod tests {
    use pgforce_salesforce::Error as Sf;

    use super::*;

    fn api(status: u16, code: &str) -> Sf {
        Sf::Api {
            method: "POST".to_owned(),
            path: "/x".to_owned(),
            status,
            error: record(code),
        }
    }

    fn record(code: &str) -> RecordError {
        RecordError {
            code: ApiErrorCode::parse(code),
            message: String::new(),
            fields: Vec::new(),
        }
    }

    #[test]
    fn passing_trouble_is_retried_and_org_wide_trouble_pauses() {
        assert_eq!(
            decide_call(&api(503, "SERVER_UNAVAILABLE")).decision,
            Decision::Retry
        );
        assert_eq!(
            decide_call(&api(400, "UNABLE_TO_LOCK_ROW")).decision,
            Decision::Retry
        );
        assert_eq!(
            decide_call(&api(400, "INVALID_QUERY_LOCATOR")).decision,
            Decision::Retry,
            "a released query cursor is read again"
        );
        let limit = Sf::RequestLimitExceeded {
            path: "/x".to_owned(),
            message: "TotalRequests Limit exceeded.".to_owned(),
        };
        assert_eq!(decide_call(&limit).decision, Decision::PauseConnection);
        let auth = Sf::Auth {
            login_url: "https://login.salesforce.com".to_owned(),
            status: 400,
            error: "invalid_grant".to_owned(),
            description: "expired access/refresh token".to_owned(),
        };
        assert_eq!(decide_call(&auth).decision, Decision::PauseConnection);
        assert_eq!(
            decide_call(&api(400, "INVALID_TYPE")).decision,
            Decision::StopMapping
        );
    }

    #[test]
    fn field_errors_check_the_schema() {
        assert_eq!(
            decide_call(&api(400, "INVALID_FIELD")).decision,
            Decision::CheckSchema
        );
        let missing = Error::MissingFields {
            object: "Account".to_owned(),
            fields: vec!["Region__c".to_owned()],
            problem: "field Region__c does not exist on Account".to_owned(),
        };
        assert_eq!(decide(&missing).decision, Decision::StopMapping);
    }

    #[test]
    fn only_record_errors_fail_records() {
        assert_eq!(
            decide_record(&record("UNABLE_TO_LOCK_ROW")),
            Decision::Retry
        );
        assert_eq!(
            decide_record(&record("REQUIRED_FIELD_MISSING")),
            Decision::FailRecord
        );
    }

    #[test]
    fn only_salesforce_internal_errors_may_be_a_records_doing() {
        assert!(server_error(&api(500, "UNKNOWN_EXCEPTION")).is_some());
        assert!(server_error(&api(503, "SERVER_UNAVAILABLE")).is_none());
        assert!(server_error(&api(400, "INVALID_FIELD")).is_none());
    }

    #[test]
    fn config_errors_stop_the_mapping() {
        let error = Error::config("Account", "field Foo does not exist");
        assert_eq!(decide(&error).decision, Decision::StopMapping);
    }
}
