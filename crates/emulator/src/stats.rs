//! Request statistics for the control API: API calls per endpoint and per object.
//!
//! Benchmarks and tests read these to count what a sync engine cost (calls per 1,000
//! records), so every data API call is recorded once, whatever its outcome.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// Counters by endpoint and by object.
#[derive(Debug, Default)]
pub struct Stats {
    counts: Mutex<Counts>,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub total_calls: u64,
    pub calls_by_endpoint: BTreeMap<String, u64>,
    pub calls_by_object: BTreeMap<String, u64>,
    pub records_written: u64,
    pub records_returned: u64,
    /// Faults injected (dropped connections, 503s, lock failures, lost answers, failed jobs).
    pub faults_injected: u64,
}

impl Stats {
    /// Records one call to an endpoint, for an object when it concerns one.
    pub fn record_call(&self, endpoint: &str, object: Option<&str>) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.total_calls += 1;
        *counts
            .calls_by_endpoint
            .entry(endpoint.to_owned())
            .or_default() += 1;
        if let Some(object) = object {
            *counts.calls_by_object.entry(object.to_owned()).or_default() += 1;
        }
    }

    /// Adds to the records written and returned.
    pub fn record_records(&self, written: u64, returned: u64) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.records_written += written;
        counts.records_returned += returned;
    }

    /// Counts one injected fault.
    pub fn record_fault(&self) {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .faults_injected += 1;
    }

    /// The counters now.
    pub fn snapshot(&self) -> Counts {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Zeroes every counter.
    pub fn reset(&self) {
        *self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Counts::default();
    }
}
