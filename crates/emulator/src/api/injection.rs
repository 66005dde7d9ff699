//! Which injected faults one data API call suffers, chosen from the rates in force and the
//! fault script.
//!
//! Two moments matter, as on a real org: when the call arrives, Salesforce's edge may refuse
//! it (503, a dropped connection, the request limit) before anything is checked; once the
//! call is admitted (valid session, allocation left), its work may meet a locked row or a
//! slow commit, or its answer may be lost. [`edge_fault`] decides the first, [`work_faults`]
//! the second; the handlers only carry out what [`CallFaults`] says.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::context::CallFaults;
use crate::error::ApiError;
use crate::faults::script::{CallKind, Phase, ScriptStep, StepFault};
use crate::faults::{Fault, FaultConfig, LockedRecords};
use crate::server::DropConnection;
use crate::state::Shared;

/// What a data API call is, from its method, its raw path after `/services/data/` (version
/// first) and its body, as the fault script matches calls.
pub fn call_kind(method: &Method, path: &str, body: &[u8]) -> CallKind {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let changes = matches!(
        *method,
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    );
    let mut kind = CallKind {
        write: changes,
        ..CallKind::default()
    };
    match segments.as_slice() {
        ["composite", "sobjects"] | ["composite", "sobjects", _, _] => {
            kind.collections = changes;
            kind.record_write = changes;
        }
        // The retrieve sent as POST reads.
        ["composite", "sobjects", _] => kind.write = false,
        ["sobjects", _] => kind.record_write = *method == Method::POST,
        ["sobjects", _, third] => {
            let replication = matches!(*third, "describe" | "updated" | "deleted");
            kind.record_write = changes && !replication;
        }
        ["sobjects", _, _, _] => kind.record_write = changes,
        ["jobs", "ingest", rest @ ..] => {
            kind.bulk_ingest = true;
            kind.ingest_close = rest.len() == 1 && *method == Method::PATCH && closes_job(body);
        }
        ["query" | "queryAll"] => kind.query = true,
        ["query" | "queryAll", _] => {
            kind.query = true;
            kind.query_more = *method == Method::GET;
        }
        _ => {}
    }
    kind
}

/// Whether a job PATCH body asks for `UploadComplete`.
fn closes_job(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|json| json.get("state")?.as_str().map(|s| s == "UploadComplete"))
        .unwrap_or(false)
}

/// Takes the script's step for this call at this phase, counting it as an injected fault.
fn take_step(shared: &Shared, call: &CallKind, phase: Phase) -> Option<ScriptStep> {
    let step = shared.fault_script().take(call, phase)?;
    shared.stats.record_fault();
    Some(step)
}

/// Takes the script's step for an admitted call. A late commit takes its `SystemModstamp`
/// before the script lock is released, so whoever sees the step gone knows the stamp is
/// taken (the script lock is always taken before the org's, never while holding it).
fn take_admitted_step(shared: &Shared, call: &CallKind) -> Option<(ScriptStep, Option<i64>)> {
    let mut script = shared.fault_script();
    let step = script.take(call, Phase::Admitted)?;
    let stamp = (step.fault == StepFault::CommitDelay).then(|| shared.org_mut().reserve_stamp());
    drop(script);
    shared.stats.record_fault();
    Some((step, stamp))
}

/// The edge fault a step stands for, if it is one.
fn edge_of(step: &ScriptStep) -> Fault {
    match step.fault {
        StepFault::ServerUnavailable => Fault::ServerUnavailable,
        StepFault::DropConnection => Fault::DropConnection,
        StepFault::RequestLimitExceeded => Fault::RequestLimitExceeded,
        // A step without a status is refused when appended; 502 keeps the type total.
        StepFault::ProxyError => Fault::ProxyError(step.status.unwrap_or(502)),
        StepFault::ApiDisabled => Fault::ApiDisabled,
        StepFault::LostResponse
        | StepFault::LockRecords
        | StepFault::BulkJobPartialFailure
        | StepFault::CommitDelay
        | StepFault::ReleaseCursor => Fault::None,
    }
}

/// The fault Salesforce's edge answers an arriving call with: a scripted one, else one drawn
/// at the configured rates.
pub fn edge_fault(shared: &Shared, faults: &FaultConfig, call: &CallKind) -> Fault {
    if let Some(step) = take_step(shared, call, Phase::Arrival) {
        return edge_of(&step);
    }
    let drawn = faults.draw_request_fault();
    if drawn != Fault::None {
        shared.stats.record_fault();
    }
    drawn
}

/// The answer to a call refused at the edge; a dropped connection is a response the
/// connection loop turns into a closed socket.
pub fn edge_response(fault: Fault) -> Option<Response> {
    let error = match fault {
        Fault::None => return None,
        Fault::DropConnection => {
            let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            response.extensions_mut().insert(DropConnection);
            return Some(response);
        }
        Fault::ServerUnavailable => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            "Server temporarily unavailable",
        ),
        Fault::RequestLimitExceeded => request_limit_exceeded(),
        Fault::ProxyError(status) => return Some(proxy_page(status)),
        Fault::ApiDisabled => ApiError::new(
            StatusCode::FORBIDDEN,
            "API_DISABLED_FOR_ORG",
            "API is not enabled for this Organization or Partner",
        ),
    };
    Some(error.into_response())
}

/// A proxy's HTML error page for `status`, marked [`FromProxy`] so that nothing of
/// Salesforce's (usage header, pretty printing) is added to it.
fn proxy_page(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let title = format!(
        "{} {}",
        status.as_str(),
        status.canonical_reason().unwrap_or("Error")
    );
    let page = format!(
        "<!DOCTYPE html>\n<html><head><title>{title}</title></head>\n<body><h1>{title}</h1><hr><address>gateway</address></body></html>\n"
    );
    let mut response = (status, page).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response.extensions_mut().insert(FromProxy);
    response
}

/// Response extension: the answer of a proxy in front of the org, sent as it is.
#[derive(Debug, Clone, Copy)]
pub struct FromProxy;

/// The answer to a record write Salesforce cannot process (`unknownExceptionValue`):
/// 500 `UNKNOWN_EXCEPTION` for the whole call, nothing done.
pub fn unknown_exception(faults: &FaultConfig, call: &CallKind, body: &[u8]) -> Option<Response> {
    let value = faults.unknown_exception_value.as_deref()?;
    let quoted = serde_json::to_string(value).ok()?;
    let carried = call.record_write
        && body
            .windows(quoted.len())
            .any(|window| window == quoted.as_bytes());
    carried.then(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: 1930456789-12345 (-1234567890)",
        )
        .into_response()
    })
}

/// 403 REQUEST_LIMIT_EXCEEDED for the daily allocation.
pub fn request_limit_exceeded() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "REQUEST_LIMIT_EXCEEDED",
        "TotalRequests Limit exceeded.",
    )
}

/// The faults an admitted call's work suffers.
#[derive(Debug, Default)]
pub struct WorkFaults {
    /// An edge fault scripted for this call that could only be taken now (another call took
    /// the step first in line between arrival and admission).
    pub edge: Fault,
    /// What the handler carries out.
    pub call: CallFaults,
    /// The call is carried out, then its answer is lost.
    pub lose_answer: bool,
    /// The record write has taken its stamp (`call.stamp`) and commits after this long.
    pub commit_delay: Option<Duration>,
}

/// Chooses the faults of an admitted call: its scripted step, then the rates in force.
pub fn work_faults(shared: &Shared, faults: &FaultConfig, call: &CallKind) -> WorkFaults {
    let mut chosen = WorkFaults::default();
    if let Some((step, stamp)) = take_admitted_step(shared, call) {
        match step.fault {
            StepFault::LostResponse => chosen.lose_answer = true,
            StepFault::LockRecords => chosen.call.locked = locked(&step.records),
            StepFault::BulkJobPartialFailure => chosen.call.bulk_partial_failure = true,
            StepFault::ReleaseCursor => chosen.call.release_cursor = true,
            StepFault::CommitDelay => {
                let delay = step.delay_ms.unwrap_or(faults.commit_delay_ms);
                chosen.commit_delay = Some(Duration::from_millis(delay));
                chosen.call.stamp = stamp;
            }
            _ => chosen.edge = edge_of(&step),
        }
    }
    let lockable = call.record_write && chosen.call.locked == LockedRecords::None;
    if lockable && faults.draw_lock_failure() {
        shared.stats.record_fault();
        chosen.call.locked = LockedRecords::All;
    }
    if call.record_write && chosen.commit_delay.is_none() {
        chosen.commit_delay = faults.draw_commit_delay();
        if chosen.commit_delay.is_some() {
            shared.stats.record_fault();
            chosen.call.stamp = Some(shared.org_mut().reserve_stamp());
        }
    }
    chosen
}

fn locked(records: &[usize]) -> LockedRecords {
    if records.is_empty() {
        LockedRecords::All
    } else {
        LockedRecords::At(records.iter().copied().collect::<BTreeSet<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(method: Method, path: &str, body: &str) -> CallKind {
        call_kind(&method, path, body.as_bytes())
    }

    #[test]
    fn collections_writes_are_told_from_the_retrieve() {
        let create = kind(Method::POST, "v62.0/composite/sobjects", "");
        assert!(create.write && create.collections && create.record_write);
        let upsert = kind(Method::PATCH, "v62.0/composite/sobjects/Foo__c/Ext__c", "");
        assert!(upsert.collections && upsert.record_write);
        let retrieve = kind(Method::POST, "v62.0/composite/sobjects/Account", "");
        assert!(!retrieve.write && !retrieve.collections && !retrieve.record_write);
    }

    #[test]
    fn single_record_writes_and_reads_are_told_apart() {
        assert!(kind(Method::POST, "v62.0/sobjects/Account", "").record_write);
        assert!(kind(Method::PATCH, "v62.0/sobjects/Account/001000000000001", "").record_write);
        assert!(kind(Method::DELETE, "v62.0/sobjects/Account/Ext__c/A-1", "").record_write);
        assert!(!kind(Method::GET, "v62.0/sobjects/Account/001000000000001", "").record_write);
        assert!(!kind(Method::GET, "v62.0/sobjects/Account/describe", "").write);
    }

    #[test]
    fn ingest_close_is_the_patch_that_asks_for_upload_complete() {
        let close = kind(
            Method::PATCH,
            "v62.0/jobs/ingest/7500000000001",
            r#"{"state":"UploadComplete"}"#,
        );
        assert!(close.bulk_ingest && close.ingest_close && !close.record_write);
        let abort = kind(
            Method::PATCH,
            "v62.0/jobs/ingest/7500000000001",
            r#"{"state":"Aborted"}"#,
        );
        assert!(abort.bulk_ingest && !abort.ingest_close);
        assert!(kind(Method::GET, "v62.0/jobs/ingest/", "").bulk_ingest);
    }

    #[test]
    fn queries_and_their_continuations_are_queries_and_only_continuations_read_a_cursor() {
        let first_page = kind(Method::GET, "v62.0/query", "");
        assert!(first_page.query && !first_page.query_more);
        let more = kind(Method::GET, "v62.0/queryAll/0r8000000000001-2000", "");
        assert!(more.query && more.query_more);
        assert!(!kind(Method::GET, "v62.0/limits", "").query);
    }
}
