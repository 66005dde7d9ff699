//! The Salesforce calls an API token's requests may spend per hour.
//!
//! Views of connections and mappings show Salesforce record counts and the `schemas`
//! route shows describes: each costs a call against the org's daily API allocation, which
//! the sync itself lives on. Counts and describes are kept for a while (see
//! `engine::views`), and on top of that each token may cause at most so many calls an
//! hour: past it, views show the last count they have and describes answer "try later",
//! so a view token polling in a loop cannot spend the org's allocation.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Salesforce calls a token may cause per hour, unless configured otherwise.
pub const DEFAULT_CALLS_PER_TOKEN_HOUR: u32 = 600;

/// The budget's window.
const WINDOW: Duration = Duration::from_secs(3600);

/// Who a view is shown to: Salesforce calls made to answer it are charged to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer<'a> {
    /// A request made with the API token of this name (the dashboard's too).
    Token(&'a str),
    /// A command run on the machine by its operator: not limited.
    Operator,
}

/// Calls spent by token in the current window of each.
#[derive(Debug)]
pub(crate) struct CallBudget {
    per_hour: u32,
    spent: Mutex<HashMap<String, (Instant, u32)>>,
}

impl CallBudget {
    pub(crate) fn new(per_hour: u32) -> Self {
        Self {
            per_hour,
            spent: Mutex::default(),
        }
    }

    /// Charges one call to `viewer`; `false` (nothing charged) when its hour's budget is
    /// spent.
    pub(crate) fn spend(&self, viewer: Viewer<'_>) -> bool {
        let Viewer::Token(token) = viewer else {
            return true;
        };
        let mut spent = self.spent.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let (since, used) = spent.entry(token.to_owned()).or_insert((now, 0));
        if since.elapsed() >= WINDOW {
            (*since, *used) = (now, 0);
        }
        if *used >= self.per_hour {
            return false;
        }
        *used += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_has_its_own_budget_and_the_operator_none() {
        let budget = CallBudget::new(2);
        let (viewer, other) = (Viewer::Token("viewer"), Viewer::Token("other"));
        assert!(budget.spend(viewer));
        assert!(budget.spend(viewer));
        assert!(
            !budget.spend(viewer),
            "the third call in the hour is refused"
        );
        assert!(budget.spend(other), "another token's budget is untouched");
        assert!((0..10).all(|_| budget.spend(Viewer::Operator)));
    }
}
