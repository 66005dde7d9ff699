//! What every worker shares: how it ends, how long its lease lasts, how it backs off.
//!
//! A worker (a mapping's reader, a connection's writer) is a task the supervisor starts
//! with its own stop signal. It returns [`Exit::Stopped`] when told to stop,
//! [`Exit::Parked`] when the error policy says the operator must act (the supervisor
//! starts it again only once its catalog row changes), and an error for anything else
//! (the supervisor starts it again after a backoff).

use std::time::Duration;

/// How a worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exit {
    /// It was told to stop, and did.
    Stopped,
    /// It cannot go on until the operator changes something; the reason is shown on the
    /// mapping or connection.
    Parked {
        /// What is wrong.
        reason: String,
    },
}

/// How long a worker's lease lasts without renewal, and how often it is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// Lifetime of a lease not renewed (default 15 s).
    pub ttl: Duration,
    /// How often it is renewed (default 2 s).
    pub heartbeat: Duration,
}

impl LeaseTiming {
    /// A lease of `seconds`, renewed about every seventh of it (2 s for the default 15).
    pub fn from_seconds(seconds: u64) -> Self {
        let ttl = Duration::from_secs(seconds.max(1));
        Self {
            ttl,
            heartbeat: (ttl * 2 / 15).max(Duration::from_millis(100)),
        }
    }
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self::from_seconds(15)
    }
}

/// Exponential backoff between `min` and `max`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    current: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            current: Duration::ZERO,
            min,
            max,
        }
    }

    /// The next wait (doubling each time).
    pub(crate) fn next_wait(&mut self) -> Duration {
        self.current = (self.current * 2).clamp(self.min, self.max);
        self.current
    }

    /// Back to no wait after a success.
    pub(crate) fn reset(&mut self) {
        self.current = Duration::ZERO;
    }

    /// Whether the last attempt failed.
    pub(crate) fn is_backing_off(&self) -> bool {
        !self.current.is_zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(1));
        let waits: Vec<u128> = (0..5).map(|_| backoff.next_wait().as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1000, 1000]);
        backoff.reset();
        assert!(!backoff.is_backing_off());
        assert_eq!(backoff.next_wait(), Duration::from_millis(200));
    }
}
