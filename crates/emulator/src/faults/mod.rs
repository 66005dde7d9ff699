//! Fault injection and added latency.
//!
//! Sync engines must survive what real orgs do under load: row locks, 503s from the edge,
//! connections that drop mid-request, and slow answers. Each fault has a rate (0.0–1.0)
//! drawn per request (or per record, for record locks inside a call); the configuration can
//! be changed while the emulator runs (control API `PUT /__emulator/faults`), so a test can
//! turn faults on around one step. Where a test needs a fault at one exact call, the
//! [`script`] of one-shot steps puts it there.

pub mod script;

use std::collections::BTreeSet;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// The longest a commit may be delayed: Salesforce's REST call timeout (10 minutes).
pub const MAX_COMMIT_DELAY_MS: u64 = 600_000;

/// Fault and latency settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct FaultConfig {
    /// Milliseconds added to every Salesforce API request.
    pub latency_ms: u64,
    /// Up to this many milliseconds more, uniformly random.
    pub latency_jitter_ms: u64,
    /// Share of record writes (single-record and collections) that fail with
    /// UNABLE_TO_LOCK_ROW as a whole (every record of the call).
    pub unable_to_lock_row_rate: f64,
    /// Share of the records of an sObject Collections write that are refused, each on its
    /// own, with UNABLE_TO_LOCK_ROW while the other records of the call are written.
    pub record_lock_rate: f64,
    /// Share of API calls answered 503 SERVER_UNAVAILABLE.
    pub server_unavailable_rate: f64,
    /// Share of API calls whose connection is dropped without an answer.
    pub drop_connection_rate: f64,
    /// Share of write calls that are carried out and then lose their answer (the
    /// connection drops after the work is done): the case that tempts a client to write
    /// twice.
    pub lost_response_rate: f64,
    /// Share of Bulk API ingest jobs that fail as a whole once closed (state `Failed`).
    pub bulk_job_failure_rate: f64,
    /// Share of closed Bulk API ingest jobs that process only part of their rows and then
    /// fail (state `Failed`), keeping the results of the rows they processed.
    pub bulk_job_partial_failure_rate: f64,
    /// Share of its rows (first ones first) a partially failing ingest job processes before
    /// it fails; default 0.5.
    pub bulk_partial_processed_share: f64,
    /// Milliseconds a closed Bulk API ingest job waits before it is processed, as jobs
    /// queue in a busy org (at most 600,000).
    pub bulk_job_delay_ms: u64,
    /// Share of record writes (single-record and collections) that commit late: the call
    /// takes its `SystemModstamp` when it starts, then waits `commitDelayMs` before its
    /// records become visible and it answers, as a long Salesforce transaction does.
    pub commit_delay_rate: f64,
    /// How long a late commit waits, in milliseconds (at most 600,000).
    pub commit_delay_ms: u64,
    /// The most query cursors one user keeps open; opening another releases that user's
    /// oldest, whose `nextRecordsUrl` then answers INVALID_QUERY_LOCATOR. None (the default)
    /// is unlimited, as Salesforce's limits page says since API 56.0; older orgs kept 10.
    pub max_open_cursors_per_user: Option<u32>,
    /// A record write (single-record or collections) carrying this value in any field of
    /// any of its records fails as a whole, every time, with 500 `UNKNOWN_EXCEPTION` and
    /// nothing done: a record Salesforce cannot process (an internal error in a trigger).
    pub unknown_exception_value: Option<String>,
    /// Share of change events (CometD and Pub/Sub) a subscriber never receives.
    pub event_drop_rate: f64,
    /// Share of change events a subscriber receives twice.
    pub event_duplicate_rate: f64,
    /// Milliseconds every change event waits before it is delivered.
    pub event_delay_ms: u64,
    /// Share of Change Data Capture events delivered as gap events (`GAP_UPDATE` and the
    /// like: the record ids and header only, no field values).
    pub event_gap_rate: f64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            latency_jitter_ms: 0,
            unable_to_lock_row_rate: 0.0,
            record_lock_rate: 0.0,
            server_unavailable_rate: 0.0,
            drop_connection_rate: 0.0,
            lost_response_rate: 0.0,
            bulk_job_failure_rate: 0.0,
            bulk_job_partial_failure_rate: 0.0,
            bulk_partial_processed_share: 0.5,
            bulk_job_delay_ms: 0,
            commit_delay_rate: 0.0,
            commit_delay_ms: 0,
            max_open_cursors_per_user: None,
            unknown_exception_value: None,
            event_drop_rate: 0.0,
            event_duplicate_rate: 0.0,
            event_delay_ms: 0,
            event_gap_rate: 0.0,
        }
    }
}

/// How many times a subscriber receives one change event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventDelivery {
    /// Never (dropped).
    Dropped,
    /// Once, as a gap event instead of the full event (CDC only).
    AsGap,
    /// Once.
    Once,
    /// Twice in a row.
    Twice,
}

impl FaultConfig {
    /// Draws how one change event is delivered to one subscriber.
    pub fn event_delivery(&self) -> EventDelivery {
        let mut rng = rand::rng();
        if self.event_drop_rate > 0.0 && rng.random_bool(self.event_drop_rate) {
            EventDelivery::Dropped
        } else if self.event_gap_rate > 0.0 && rng.random_bool(self.event_gap_rate) {
            EventDelivery::AsGap
        } else if self.event_duplicate_rate > 0.0 && rng.random_bool(self.event_duplicate_rate) {
            EventDelivery::Twice
        } else {
            EventDelivery::Once
        }
    }
}

/// Which records of one call are refused with UNABLE_TO_LOCK_ROW before they are written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LockedRecords {
    #[default]
    None,
    /// Every record of the call (a whole-call lock fault).
    All,
    /// The records at these positions in the call, counted from 0.
    At(BTreeSet<usize>),
}

impl LockedRecords {
    /// Whether the record at `position` of the call is locked.
    pub fn contains(&self, position: usize) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::At(positions) => positions.contains(&position),
        }
    }
}

/// What happens to one request at Salesforce's edge, before anything is checked or done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fault {
    #[default]
    None,
    DropConnection,
    ServerUnavailable,
    RequestLimitExceeded,
    /// A proxy in front of Salesforce answers this status with an HTML page.
    ProxyError(u16),
    /// 403 `API_DISABLED_FOR_ORG`: the org's edition or the user's profile has no API.
    ApiDisabled,
}

impl FaultConfig {
    /// Checks that every rate is a share between 0 and 1.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("unableToLockRowRate", self.unable_to_lock_row_rate),
            ("recordLockRate", self.record_lock_rate),
            ("serverUnavailableRate", self.server_unavailable_rate),
            ("dropConnectionRate", self.drop_connection_rate),
            ("lostResponseRate", self.lost_response_rate),
            ("bulkJobFailureRate", self.bulk_job_failure_rate),
            (
                "bulkJobPartialFailureRate",
                self.bulk_job_partial_failure_rate,
            ),
            (
                "bulkPartialProcessedShare",
                self.bulk_partial_processed_share,
            ),
            ("commitDelayRate", self.commit_delay_rate),
            ("eventDropRate", self.event_drop_rate),
            ("eventDuplicateRate", self.event_duplicate_rate),
            ("eventGapRate", self.event_gap_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        if self.max_open_cursors_per_user == Some(0) {
            return Err(
                "maxOpenCursorsPerUser must be at least 1 (or null for no limit)".to_owned(),
            );
        }
        for (name, ms) in [
            ("commitDelayMs", self.commit_delay_ms),
            ("bulkJobDelayMs", self.bulk_job_delay_ms),
        ] {
            if ms > MAX_COMMIT_DELAY_MS {
                return Err(format!(
                    "{name} must be at most {MAX_COMMIT_DELAY_MS}, got {ms}"
                ));
            }
        }
        Ok(())
    }

    /// The latency to add to one request.
    pub fn draw_latency(&self) -> Duration {
        let jitter = if self.latency_jitter_ms > 0 {
            rand::rng().random_range(0..=self.latency_jitter_ms)
        } else {
            0
        };
        Duration::from_millis(self.latency_ms + jitter)
    }

    /// The transport-level fault for one request, if any.
    pub fn draw_request_fault(&self) -> Fault {
        let mut rng = rand::rng();
        if self.drop_connection_rate > 0.0 && rng.random_bool(self.drop_connection_rate) {
            Fault::DropConnection
        } else if self.server_unavailable_rate > 0.0
            && rng.random_bool(self.server_unavailable_rate)
        {
            Fault::ServerUnavailable
        } else {
            Fault::None
        }
    }

    /// Whether one write call, once carried out, loses its answer.
    pub fn draw_lost_response(&self) -> bool {
        self.lost_response_rate > 0.0 && rand::rng().random_bool(self.lost_response_rate)
    }

    /// Whether one closed ingest job fails as a whole.
    pub fn draw_bulk_job_failure(&self) -> bool {
        self.bulk_job_failure_rate > 0.0 && rand::rng().random_bool(self.bulk_job_failure_rate)
    }

    /// Whether one closed ingest job fails after processing part of its rows.
    pub fn draw_bulk_partial_failure(&self) -> bool {
        self.bulk_job_partial_failure_rate > 0.0
            && rand::rng().random_bool(self.bulk_job_partial_failure_rate)
    }

    /// How many of a partially failing job's `rows` it processes before it fails.
    pub fn partially_processed_rows(&self, rows: usize) -> usize {
        let share = self.bulk_partial_processed_share.clamp(0.0, 1.0);
        // Rounded down: a job of one row at the default share processes none.
        ((rows as f64) * share).floor() as usize
    }

    /// The commit delay of one record write, if it is picked to commit late.
    pub fn draw_commit_delay(&self) -> Option<Duration> {
        let picked =
            self.commit_delay_rate > 0.0 && rand::rng().random_bool(self.commit_delay_rate);
        picked.then(|| Duration::from_millis(self.commit_delay_ms))
    }

    /// Whether one write call fails with UNABLE_TO_LOCK_ROW.
    pub fn draw_lock_failure(&self) -> bool {
        self.unable_to_lock_row_rate > 0.0 && rand::rng().random_bool(self.unable_to_lock_row_rate)
    }

    /// Whether one record of a collections write is refused with UNABLE_TO_LOCK_ROW.
    pub fn draw_record_lock(&self) -> bool {
        self.record_lock_rate > 0.0 && rand::rng().random_bool(self.record_lock_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_failure_processes_the_share_rounded_down() {
        let faults = FaultConfig::default();
        assert_eq!(faults.partially_processed_rows(10), 5);
        assert_eq!(faults.partially_processed_rows(1), 0);
        let most = FaultConfig {
            bulk_partial_processed_share: 0.99,
            ..FaultConfig::default()
        };
        assert_eq!(most.partially_processed_rows(10), 9);
    }

    #[test]
    fn settings_out_of_range_are_named() {
        let cases = [
            (
                FaultConfig {
                    commit_delay_rate: 1.5,
                    ..FaultConfig::default()
                },
                "commitDelayRate must be between 0 and 1, got 1.5",
            ),
            (
                FaultConfig {
                    max_open_cursors_per_user: Some(0),
                    ..FaultConfig::default()
                },
                "maxOpenCursorsPerUser must be at least 1 (or null for no limit)",
            ),
        ];
        for (faults, message) in cases {
            assert_eq!(faults.validate().unwrap_err(), message);
        }
        assert_eq!(FaultConfig::default().validate(), Ok(()));
    }
}
