//! API usage as the org reports it in `Sforce-Limit-Info`, and this client's own budget.

use std::sync::atomic::{AtomicU64, Ordering};

/// The response header carrying the org's usage.
pub const LIMIT_INFO_HEADER: &str = "sforce-limit-info";

/// The org's API usage as last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ApiUsage {
    /// Requests used in the current 24 hours.
    pub used: u64,
    /// The org's allocation.
    pub limit: u64,
}

/// Parses `api-usage=25/15000`, optionally followed by `; per-app-api-usage=…`.
pub fn parse_limit_info(value: &str) -> Option<ApiUsage> {
    let usage = value
        .split(';')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("api-usage="))?;
    let (used, limit) = usage.split_once('/')?;
    Some(ApiUsage {
        used: used.trim().parse().ok()?,
        limit: limit.trim().parse().ok()?,
    })
}

/// Usage counters shared by all calls of a client.
#[derive(Debug, Default)]
pub(crate) struct UsageTracker {
    used: AtomicU64,
    limit: AtomicU64,
    calls: AtomicU64,
}

impl UsageTracker {
    pub(crate) fn observe(&self, usage: ApiUsage) {
        self.used.store(usage.used, Ordering::Relaxed);
        self.limit.store(usage.limit, Ordering::Relaxed);
    }

    pub(crate) fn count_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Option<ApiUsage> {
        let limit = self.limit.load(Ordering::Relaxed);
        (limit > 0).then(|| ApiUsage {
            used: self.used.load(Ordering::Relaxed),
            limit,
        })
    }

    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_info_parses_both_forms() {
        assert_eq!(
            parse_limit_info("api-usage=25/15000"),
            Some(ApiUsage {
                used: 25,
                limit: 15000
            })
        );
        assert_eq!(
            parse_limit_info("api-usage=18/5000; per-app-api-usage=17/250(appName=sample)"),
            Some(ApiUsage {
                used: 18,
                limit: 5000
            })
        );
        assert_eq!(parse_limit_info("garbage"), None);
        assert_eq!(parse_limit_info("api-usage=x/5"), None);
    }
}
