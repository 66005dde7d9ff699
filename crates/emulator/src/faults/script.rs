//! Scripted one-shot faults: a queue of steps, each spent on one chosen call.
//!
//! Rates make faults happen somewhere; a test that proves a client's recovery must make
//! them happen at one exact call — "the first collections call locks records 0 and 3, the
//! client's resend then gets a 503". Steps are kept in order; each incoming data API call
//! spends the first step that can happen to it (its `on` names the call's kind and the
//! fault is one the call can suffer), so a script reads as the story of the calls to come.
//!
//! Faults that happen at Salesforce's edge (503, a dropped connection, the request limit)
//! are taken when the call arrives; faults that happen in the work (locks, a lost answer, a
//! slow commit, a failing bulk job) are taken once the call is admitted (valid session,
//! allocation left), so a call refused with 401 does not spend the step meant for its
//! retry.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::MAX_COMMIT_DELAY_MS;

/// Which calls a step may be spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepTarget {
    /// Every data API call.
    Any,
    /// Calls that change the org: POST, PATCH, PUT and DELETE, except the collections
    /// retrieve sent as POST.
    Write,
    /// sObject Collections writes (create, update, upsert, delete).
    Collections,
    /// Every Bulk API 2.0 ingest call (`/jobs/ingest…`).
    BulkIngest,
    /// Closing an ingest job (`PATCH /jobs/ingest/{id}` to `UploadComplete`): the moment
    /// a job starts, where a lost answer matters most.
    BulkClose,
    /// `query`, `queryAll` and their `nextRecordsUrl` continuations.
    Query,
}

/// What a step does to its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepFault {
    /// 503 `SERVER_UNAVAILABLE`, nothing done.
    ServerUnavailable,
    /// The connection closes without an answer, nothing done.
    DropConnection,
    /// 403 `REQUEST_LIMIT_EXCEEDED` (`TotalRequests Limit exceeded.`), nothing done.
    RequestLimitExceeded,
    /// 403 `API_DISABLED_FOR_ORG`, nothing done.
    ApiDisabled,
    /// The call is carried out, then its connection closes without an answer.
    LostResponse,
    /// The records at `records` (all when empty) fail with `UNABLE_TO_LOCK_ROW`; for an
    /// ingest job close, the rows at those positions of the upload.
    LockRecords,
    /// The ingest job being closed processes part of its rows, then fails.
    BulkJobPartialFailure,
    /// The record write takes its `SystemModstamp` when it starts, then waits `delayMs`
    /// (else `commitDelayMs`) before its records become visible and it answers.
    CommitDelay,
    /// A proxy or gateway in front of Salesforce answers `status` with an HTML page instead
    /// of Salesforce's JSON (a corporate proxy's 403, a load balancer's 404), nothing done.
    ProxyError,
    /// The query cursor a continuation (`nextRecordsUrl`) reads is released for good, as
    /// when its user opened too many, so the call answers 400 `INVALID_QUERY_LOCATOR`.
    ReleaseCursor,
}

impl StepFault {
    /// Whether the fault happens before the call is admitted (at Salesforce's edge).
    pub fn at_arrival(self) -> bool {
        matches!(
            self,
            Self::ServerUnavailable
                | Self::DropConnection
                | Self::RequestLimitExceeded
                | Self::ProxyError
                | Self::ApiDisabled
        )
    }

    /// Whether a call of this kind can suffer the fault.
    fn can_happen_to(self, call: &CallKind) -> bool {
        match self {
            Self::ServerUnavailable
            | Self::DropConnection
            | Self::RequestLimitExceeded
            | Self::ProxyError
            | Self::ApiDisabled
            | Self::LostResponse => true,
            Self::LockRecords => call.record_write || call.ingest_close,
            Self::BulkJobPartialFailure => call.ingest_close,
            Self::CommitDelay => call.record_write,
            Self::ReleaseCursor => call.query_more,
        }
    }

    /// Whether some call that `target` names can suffer the fault.
    fn can_happen_on(self, target: StepTarget) -> bool {
        match self {
            Self::LockRecords => !matches!(target, StepTarget::Query),
            Self::BulkJobPartialFailure => matches!(
                target,
                StepTarget::Any
                    | StepTarget::Write
                    | StepTarget::BulkIngest
                    | StepTarget::BulkClose
            ),
            Self::CommitDelay => matches!(
                target,
                StepTarget::Any | StepTarget::Write | StepTarget::Collections
            ),
            Self::ReleaseCursor => matches!(target, StepTarget::Any | StepTarget::Query),
            _ => true,
        }
    }
}

/// One scripted fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScriptStep {
    /// Which calls the step may be spent on.
    pub on: StepTarget,
    /// What it does.
    pub fault: StepFault,
    /// For `lockRecords`: positions of the records in the call (of the rows in the upload,
    /// for an ingest job close), from 0; empty locks every one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<usize>,
    /// For `commitDelay`: how long the commit waits, in milliseconds; without it, the
    /// `commitDelayMs` in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// For `proxyError`: the HTTP status the proxy answers (400 to 599).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

impl ScriptStep {
    /// Checks that the step can ever happen and carries only what its fault takes.
    fn validate(&self) -> Result<(), String> {
        if !self.records.is_empty() && self.fault != StepFault::LockRecords {
            return Err("records are taken by lockRecords steps only".to_owned());
        }
        if let Some(delay) = self.delay_ms {
            if self.fault != StepFault::CommitDelay {
                return Err("delayMs is taken by commitDelay steps only".to_owned());
            }
            if delay > MAX_COMMIT_DELAY_MS {
                return Err(format!(
                    "delayMs must be at most {MAX_COMMIT_DELAY_MS}, got {delay}"
                ));
            }
        }
        self.validate_status()?;
        if !self.fault.can_happen_on(self.on) {
            return Err(format!(
                "{} never happens to {} calls",
                json_name(&self.fault),
                json_name(&self.on)
            ));
        }
        Ok(())
    }

    /// A `proxyError` step needs an error status; no other step takes one.
    fn validate_status(&self) -> Result<(), String> {
        match (self.fault, self.status) {
            (StepFault::ProxyError, None) => Err("proxyError takes a status".to_owned()),
            (StepFault::ProxyError, Some(status)) if !(400..=599).contains(&status) => Err(
                format!("status must be an error status (400 to 599), got {status}"),
            ),
            (StepFault::ProxyError, Some(_)) | (_, None) => Ok(()),
            (_, Some(_)) => Err("status is taken by proxyError steps only".to_owned()),
        }
    }

    fn matches(&self, call: &CallKind) -> bool {
        call.is(self.on) && self.fault.can_happen_to(call)
    }
}

/// The JSON spelling of a unit enum value, for messages.
fn json_name(value: &impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// What a data API call is, as far as steps care.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallKind {
    /// POST, PATCH, PUT or DELETE, except the collections retrieve sent as POST.
    pub write: bool,
    /// An sObject Collections write.
    pub collections: bool,
    /// A `/jobs/ingest…` call.
    pub bulk_ingest: bool,
    /// A query, queryAll or continuation.
    pub query: bool,
    /// A continuation of a query (`GET …/query/<locator>`, its `nextRecordsUrl`): the only
    /// call that reads an open cursor.
    pub query_more: bool,
    /// A call that writes records at once: single-record and collections writes.
    pub record_write: bool,
    /// `PATCH /jobs/ingest/{id}` with `{"state": "UploadComplete"}`: processing starts.
    pub ingest_close: bool,
}

impl CallKind {
    fn is(&self, target: StepTarget) -> bool {
        match target {
            StepTarget::Any => true,
            StepTarget::Write => self.write,
            StepTarget::Collections => self.collections,
            StepTarget::BulkIngest => self.bulk_ingest,
            StepTarget::BulkClose => self.ingest_close,
            StepTarget::Query => self.query,
        }
    }
}

/// When a step is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The call has just arrived: only edge faults are taken.
    Arrival,
    /// The call has a valid session and allocation left.
    Admitted,
}

/// The steps still to happen, in order.
#[derive(Debug, Default)]
pub struct FaultScript {
    steps: VecDeque<ScriptStep>,
}

impl FaultScript {
    /// Appends steps after checking every one; on error nothing is appended and the message
    /// names the step.
    pub fn append(&mut self, steps: Vec<ScriptStep>) -> Result<(), String> {
        for (index, step) in steps.iter().enumerate() {
            step.validate()
                .map_err(|problem| format!("steps[{index}]: {problem}"))?;
        }
        self.steps.extend(steps);
        Ok(())
    }

    /// The steps still to happen.
    pub fn steps(&self) -> Vec<ScriptStep> {
        self.steps.iter().cloned().collect()
    }

    /// Forgets every step.
    pub fn clear(&mut self) {
        self.steps.clear();
    }

    /// Takes the first step that can happen to `call`. On arrival it is taken only when it
    /// is an edge fault; otherwise it waits for the call's admission.
    pub fn take(&mut self, call: &CallKind, phase: Phase) -> Option<ScriptStep> {
        let position = self.steps.iter().position(|step| step.matches(call))?;
        let wanted = phase == Phase::Admitted || self.steps[position].fault.at_arrival();
        if wanted {
            self.steps.remove(position)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(on: StepTarget, fault: StepFault) -> ScriptStep {
        ScriptStep {
            on,
            fault,
            records: Vec::new(),
            delay_ms: None,
            status: None,
        }
    }

    const COLLECTIONS_WRITE: CallKind = CallKind {
        write: true,
        collections: true,
        bulk_ingest: false,
        query: false,
        query_more: false,
        record_write: true,
        ingest_close: false,
    };
    const QUERY: CallKind = CallKind {
        write: false,
        collections: false,
        bulk_ingest: false,
        query: true,
        query_more: false,
        record_write: false,
        ingest_close: false,
    };
    const QUERY_MORE: CallKind = CallKind {
        query_more: true,
        ..QUERY
    };

    #[test]
    fn each_call_spends_the_first_step_that_can_happen_to_it() {
        let mut script = FaultScript::default();
        script
            .append(vec![
                step(StepTarget::Collections, StepFault::LockRecords),
                step(StepTarget::Any, StepFault::ServerUnavailable),
            ])
            .unwrap();
        assert_eq!(
            script.take(&QUERY, Phase::Arrival).map(|s| s.fault),
            Some(StepFault::ServerUnavailable),
            "a query skips the lock step it cannot suffer"
        );
        assert_eq!(script.take(&COLLECTIONS_WRITE, Phase::Arrival), None);
        assert_eq!(
            script
                .take(&COLLECTIONS_WRITE, Phase::Admitted)
                .map(|s| s.fault),
            Some(StepFault::LockRecords),
            "a work fault waits for admission"
        );
        assert!(script.steps().is_empty());
    }

    #[test]
    fn a_work_step_first_in_line_is_not_overtaken_at_arrival() {
        let mut script = FaultScript::default();
        script
            .append(vec![
                step(StepTarget::Write, StepFault::LostResponse),
                step(StepTarget::Write, StepFault::DropConnection),
            ])
            .unwrap();
        assert_eq!(script.take(&COLLECTIONS_WRITE, Phase::Arrival), None);
        assert_eq!(script.steps().len(), 2);
    }

    #[test]
    fn steps_that_can_never_happen_are_refused_with_their_index() {
        let mut script = FaultScript::default();
        let mut with_records = step(StepTarget::Any, StepFault::DropConnection);
        with_records.records = vec![1];
        let error = script
            .append(vec![
                step(StepTarget::Any, StepFault::LostResponse),
                with_records,
            ])
            .unwrap_err();
        assert_eq!(
            error,
            "steps[1]: records are taken by lockRecords steps only"
        );
        let error = script
            .append(vec![step(StepTarget::Query, StepFault::LockRecords)])
            .unwrap_err();
        assert_eq!(error, "steps[0]: lockRecords never happens to query calls");
        assert!(
            script.steps().is_empty(),
            "nothing of a refused script is kept"
        );
    }

    #[test]
    fn a_released_cursor_waits_for_a_continuation_admitted() {
        let mut script = FaultScript::default();
        script
            .append(vec![step(StepTarget::Any, StepFault::ReleaseCursor)])
            .unwrap();
        assert_eq!(
            script.take(&QUERY, Phase::Admitted),
            None,
            "a query's first page has no cursor to lose"
        );
        assert_eq!(script.take(&COLLECTIONS_WRITE, Phase::Admitted), None);
        assert_eq!(
            script.take(&QUERY_MORE, Phase::Arrival),
            None,
            "not an edge fault"
        );
        assert_eq!(
            script.take(&QUERY_MORE, Phase::Admitted).map(|s| s.fault),
            Some(StepFault::ReleaseCursor)
        );
        for on in [
            StepTarget::Write,
            StepTarget::Collections,
            StepTarget::BulkClose,
        ] {
            let error = script
                .append(vec![step(on, StepFault::ReleaseCursor)])
                .unwrap_err();
            assert_eq!(
                error,
                format!(
                    "steps[0]: releaseCursor never happens to {} calls",
                    json_name(&on)
                )
            );
        }
        script
            .append(vec![step(StepTarget::Query, StepFault::ReleaseCursor)])
            .unwrap();
        assert_eq!(script.steps().len(), 1);
    }
}
