//! Answers kept for a stated time: what the management API shows that costs a Salesforce
//! call or a table scan (record counts, describes, row counts of large tables) is worked
//! out at most once per freshness window, whoever asks and however often.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Values by key, each with when it was worked out.
#[derive(Debug)]
pub(crate) struct Fresh<K, V> {
    window: Duration,
    kept: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> Fresh<K, V> {
    /// A cache whose values are fresh for `window`.
    pub(crate) fn new(window: Duration) -> Self {
        Self {
            window,
            kept: Mutex::default(),
        }
    }

    /// The value kept for `key`, if it was worked out within the window.
    pub(crate) fn fresh(&self, key: &K) -> Option<V> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.get(key)
            .filter(|(at, _)| at.elapsed() < self.window)
            .map(|(_, value)| value.clone())
    }

    /// The value kept for `key`, however old (shown when a new one cannot be had).
    pub(crate) fn last(&self, key: &K) -> Option<V> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.get(key).map(|(_, value)| value.clone())
    }

    /// Keeps `value` for `key`, worked out now.
    pub(crate) fn keep(&self, key: K, value: V) {
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_fresh_within_its_window_and_last_after_it() {
        let long = Fresh::new(Duration::from_secs(3600));
        assert_eq!(long.fresh(&"a"), None);
        long.keep("a", 1);
        assert_eq!(long.fresh(&"a"), Some(1));
        let none = Fresh::new(Duration::ZERO);
        none.keep("a", 1);
        assert_eq!(none.fresh(&"a"), None, "stale after the window");
        assert_eq!(none.last(&"a"), Some(1), "still there to show");
    }
}
