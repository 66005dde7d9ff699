//! Sending one planned batch with sObject Collections and classifying every answer.
//!
//! Each change gets one [`Sent`]: written (with the new Id after an insert), refused by
//! Salesforce (a FAILED log row), worth retrying (transient: UNABLE_TO_LOCK_ROW, 5xx,
//! timeouts, dropped connections; never FAILED for that alone), or in doubt (a create
//! whose answer was lost: it may exist in Salesforce, so it is checked before resending;
//! when the client gave up waiting, Salesforce may still be running it, and it is checked
//! only once Salesforce cannot be).
//! When the client's resend of some records fails, the outcomes its earlier attempts
//! learned still count: only the records whose fate is unknown are judged by the error.

use pgforce_salesforce::rest::Record;
use pgforce_salesforce::rest::collections::SaveResult;
use pgforce_salesforce::{ApiErrorCode, Client as Salesforce, RecordError};
use pgforce_store::ddl::PgType;
use serde_json::{Value, json};

use crate::error_policy::{self, Decision, Pause};
use crate::mapping::Mapping;
use crate::plan::{Action, Batch, Change};

/// What became of one change sent to Salesforce.
#[derive(Debug, Clone)]
pub(super) enum Sent {
    /// Salesforce applied it (the record's Id after an insert or upsert).
    Written(Option<String>),
    /// Salesforce refused it; sending it again unchanged would fail again.
    Refused(RecordError),
    /// A transient failure: send it again later.
    Retry(String),
    /// The call failed in a way that may have created the record.
    InDoubt(String),
    /// The client gave up waiting for a create (a timeout): Salesforce may still be
    /// running it, so it is checked only once Salesforce cannot be.
    StillRunning(String),
    /// The call failed as a whole with a server error (500 `UNKNOWN_EXCEPTION`), which one
    /// of its records may cause every time: sent again (alone, checked first when it may
    /// have created the record), and FAILED with `error` after a bounded number of tries
    /// (see `server_errors`).
    ServerError {
        /// The whole error, for the log.
        reason: String,
        /// Salesforce's error, as the change's refusal once the bound is reached.
        error: RecordError,
        /// Whether the call may have created the record.
        in_doubt: bool,
    },
    /// Salesforce refused the whole call for a reason no record caused (the API disabled
    /// for the org, a mapped field hidden from the user, a proxy's refusal): no change
    /// fails for it; they wait and the writer stops until the operator acts.
    Stopped(String),
    /// The org cannot be used now (its API allocation is spent, the credentials are
    /// refused): nothing was written; the change waits for the connection to resume.
    Paused(Pause),
}

/// A refusal pgforce gives itself, without a call.
pub(super) fn refusal(message: impl Into<String>) -> RecordError {
    RecordError {
        code: ApiErrorCode::Other("PGFORCE".to_owned()),
        message: message.into(),
        fields: Vec::new(),
    }
}

/// A Postgres text value as the JSON Salesforce takes for the column's type.
pub(super) fn to_salesforce(value: Option<&str>, pg_type: PgType) -> Value {
    let Some(text) = value else {
        return Value::Null;
    };
    match pg_type {
        PgType::Boolean => json!(text == "t" || text == "true"),
        PgType::Integer => text
            .parse::<i64>()
            .map_or_else(|_| json!(text), |n| json!(n)),
        PgType::DoublePrecision => text
            .parse::<f64>()
            .map_or_else(|_| json!(text), |n| json!(n)),
        // `2024-01-01 10:00:00.5` (UTC wall time) → `2024-01-01T10:00:00.5Z`.
        PgType::Timestamp => json!(format!("{}Z", text.replacen(' ', "T", 1))),
        _ => json!(text),
    }
}

/// The Salesforce record for a change: writable mapped fields only, and relationship
/// external-id columns as references to the parent by its external id.
pub(crate) fn record_for(mapping: &Mapping, change: &Change) -> Record {
    let mut record = Record::new();
    for field in &mapping.fields {
        let writable = match change.action {
            Action::Insert => field.createable,
            _ => field.updateable,
        };
        if !writable {
            continue;
        }
        if let Some(value) = change.values.get(field.column.as_str()) {
            record.insert(
                field.api_name.clone(),
                to_salesforce(value.as_deref(), field.pg_type),
            );
        }
    }
    for reference in &mapping.references {
        if let Some(Some(value)) = change.values.get(reference.column.as_str()) {
            record.insert(
                reference.relationship.clone(),
                json!({ reference.external_field.as_str(): value }),
            );
        }
    }
    if change.action == Action::Update
        && let Some(sfid) = &change.sfid
    {
        record.insert("Id".to_owned(), json!(sfid));
    }
    record
}

/// Sends a batch; one [`Sent`] per change, in order.
pub(super) async fn send(sf: &Salesforce, mapping: &Mapping, batch: &Batch) -> Vec<Sent> {
    let object = mapping.object.as_str();
    let records = || -> Vec<Record> {
        batch
            .changes
            .iter()
            .map(|c| record_for(mapping, c))
            .collect()
    };
    let upsert_field = mapping.spec.upsert_field.as_deref();
    let call = match batch.action {
        Action::Insert => match upsert_field {
            Some(field) => sf.upsert_records(object, field, &records(), false).await,
            None => sf.create_records(object, &records(), false).await,
        },
        Action::Update => sf.update_records(object, &records(), false).await,
        Action::Delete => {
            let ids: Vec<&str> = batch
                .changes
                .iter()
                .filter_map(|c| c.sfid.as_deref())
                .collect();
            sf.delete_records(&ids, false).await
        }
    };
    let creates = batch.action == Action::Insert && upsert_field.is_none();
    match call {
        Ok(results) => results.into_iter().map(classify).collect(),
        Err(failure) => {
            // Outcomes learned before a later attempt failed stand; only the records of
            // the failed attempt are judged by its error.
            let (error, results) = failure.into_parts();
            let unknown = when_the_call_failed(&error, creates);
            results
                .into_iter()
                .map(|result| result.map_or_else(|| unknown.clone(), classify))
                .collect()
        }
    }
}

/// What becomes of every change of a call that failed as a whole, as the error policy
/// decides: passing trouble and an unusable org send it again (a create that may have
/// happened is checked first); an error that needs the operator stops the writer, and no
/// change fails for it.
pub(super) fn when_the_call_failed(error: &pgforce_salesforce::Error, creates: bool) -> Sent {
    let message = error.to_string();
    match error_policy::decide_call(error).decision {
        Decision::PauseConnection if !(creates && error.may_have_been_applied()) => {
            Sent::Paused(Pause {
                state: error_policy::pause_state(error),
                reason: message,
            })
        }
        Decision::Retry if error_policy::server_error(error).is_some() => Sent::ServerError {
            reason: message,
            error: error_policy::server_error(error)
                .cloned()
                .unwrap_or_else(|| refusal("Salesforce failed the call")),
            in_doubt: creates && error.may_have_been_applied(),
        },
        Decision::Retry | Decision::PauseConnection => {
            if creates && timed_out(error) {
                Sent::StillRunning(message)
            } else if creates && error.may_have_been_applied() {
                Sent::InDoubt(message)
            } else {
                Sent::Retry(message)
            }
        }
        Decision::FailRecord => Sent::Refused(refusal(message)),
        // A success whose answer could not be read: the creates may have happened.
        Decision::StopMapping | Decision::CheckSchema
            if creates && error.may_have_been_applied() =>
        {
            Sent::InDoubt(message)
        }
        // The call's error is no record's fault: the changes wait for the operator (the
        // mapping's reader follows a schema change).
        Decision::StopMapping | Decision::CheckSchema => Sent::Stopped(message),
    }
}

/// Whether the client stopped waiting for the call's answer: Salesforce may still be
/// running it.
fn timed_out(error: &pgforce_salesforce::Error) -> bool {
    matches!(error, pgforce_salesforce::Error::Transport { source, .. } if source.is_timeout())
}

/// One record's result: written, or refused for a reason of its own, or sent again when
/// every error it got is passing (a row lock).
fn classify(result: SaveResult) -> Sent {
    if result.success {
        return Sent::Written(result.id);
    }
    let passing = |e: &RecordError| error_policy::decide_record(e) == Decision::Retry;
    if let Some(first) = result.errors.first()
        && result.errors.iter().all(passing)
    {
        return Sent::Retry(format!("{}: {}", first.code, first.message));
    }
    Sent::Refused(
        result
            .errors
            .into_iter()
            .find(|e| !passing(e))
            .unwrap_or_else(|| refusal("Salesforce gave no reason")),
    )
}
