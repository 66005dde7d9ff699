//! The daily API request allocation.
//!
//! Every data API call counts one request, as Salesforce counts them; once the allocation is
//! used up calls answer 403 REQUEST_LIMIT_EXCEEDED until the counter is reset through the
//! control API. Atomics, because every request touches it.

use std::sync::atomic::{AtomicU64, Ordering};

/// API requests used and allowed.
#[derive(Debug)]
pub struct ApiUsage {
    used: AtomicU64,
    limit: AtomicU64,
}

impl ApiUsage {
    /// A fresh counter with an allocation.
    pub fn new(limit: u64) -> Self {
        Self {
            used: AtomicU64::new(0),
            limit: AtomicU64::new(limit),
        }
    }

    /// Counts one request if the allocation allows it; false when it is used up.
    pub fn try_take(&self) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used < limit).then_some(used + 1)
            })
            .is_ok()
    }

    /// `(used, limit)`.
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.used.load(Ordering::Relaxed),
            self.limit.load(Ordering::Relaxed),
        )
    }

    /// Sets the counter and, if given, the allocation.
    pub fn set(&self, used: u64, limit: Option<u64>) {
        self.used.store(used, Ordering::Relaxed);
        if let Some(limit) = limit {
            self.limit.store(limit, Ordering::Relaxed);
        }
    }

    /// The `Sforce-Limit-Info` header value.
    pub fn header_value(&self) -> String {
        let (used, limit) = self.snapshot();
        format!("api-usage={used}/{limit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_stops_at_the_limit() {
        let usage = ApiUsage::new(2);
        assert!(usage.try_take());
        assert!(usage.try_take());
        assert!(!usage.try_take());
        assert_eq!(usage.header_value(), "api-usage=2/2");
        usage.set(0, Some(5));
        assert!(usage.try_take());
        assert_eq!(usage.snapshot(), (1, 5));
    }
}
