//! Query cursors: what `nextRecordsUrl` points at.
//!
//! A query's result is computed once, when the first page is asked for; later pages are
//! slices of it, addressed by `<locator>-<offset>` as Salesforce's are. A page may be
//! fetched again (a client retrying after a lost response gets the same records). Cursors
//! are dropped oldest-first once they hold too many record numbers in total, after the two
//! days Salesforce keeps them, and — when a per-user limit is set, as older orgs kept 10
//! open cursors per user — the user's oldest when they open one too many. A scripted
//! `releaseCursor` step releases the one its continuation reads. An unknown or dropped
//! locator is INVALID_QUERY_LOCATOR.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bind::Projection;
use crate::org::{ObjectIndex, RecordRef, mint_id};

/// How long a cursor stays usable.
const CURSOR_LIFETIME: Duration = Duration::from_secs(2 * 24 * 3600);
/// The most record numbers all cursors may hold together (8 bytes each).
const MAX_HELD_ROWS: usize = 50_000_000;

/// One open query result.
#[derive(Debug)]
pub struct Cursor {
    pub object: ObjectIndex,
    pub rows: Arc<[u64]>,
    pub projection: Arc<Projection>,
    pub batch_size: usize,
    /// The user who ran the query.
    owner: RecordRef,
    opened: Instant,
}

/// All open cursors.
#[derive(Debug, Default)]
pub struct CursorStore {
    cursors: HashMap<String, Arc<Cursor>>,
    order: VecDeque<String>,
    held_rows: usize,
    next_number: u64,
}

impl CursorStore {
    /// Opens a cursor for `owner` and returns its locator; with `max_per_user`, the owner's
    /// oldest cursors beyond it are released.
    pub fn open(
        &mut self,
        owner: RecordRef,
        result: (ObjectIndex, Arc<[u64]>, Arc<Projection>),
        batch_size: usize,
        max_per_user: Option<usize>,
    ) -> String {
        let (object, rows, projection) = result;
        self.next_number += 1;
        let locator = mint_id("0r8", self.next_number);
        self.held_rows += rows.len();
        let cursor = Cursor {
            object,
            rows,
            projection,
            batch_size,
            owner,
            opened: Instant::now(),
        };
        self.cursors.insert(locator.clone(), Arc::new(cursor));
        self.order.push_back(locator.clone());
        self.evict();
        if let Some(max) = max_per_user {
            self.release_beyond(owner, max);
        }
        locator
    }

    /// Releases `owner`'s oldest cursors until they keep at most `max` open.
    fn release_beyond(&mut self, owner: RecordRef, max: usize) {
        let owned: Vec<String> = self
            .order
            .iter()
            .filter(|l| self.cursors.get(*l).is_some_and(|c| c.owner == owner))
            .cloned()
            .collect();
        let excess = owned.len().saturating_sub(max);
        for locator in &owned[..excess] {
            self.release(locator);
        }
    }

    /// Releases one cursor for good; its locator is unknown from now on.
    pub fn release(&mut self, locator: &str) {
        if let Some(cursor) = self.cursors.remove(locator) {
            self.held_rows -= cursor.rows.len();
            self.order.retain(|l| l != locator);
        }
    }

    /// The cursor behind a locator, if it is still open.
    pub fn get(&self, locator: &str) -> Option<Arc<Cursor>> {
        self.cursors
            .get(locator)
            .filter(|c| c.opened.elapsed() < CURSOR_LIFETIME)
            .cloned()
    }

    /// Drops every cursor.
    pub fn clear(&mut self) {
        *self = Self {
            next_number: self.next_number,
            ..Self::default()
        };
    }

    fn evict(&mut self) {
        while self.held_rows > MAX_HELD_ROWS
            || self.order.front().is_some_and(|l| {
                self.cursors
                    .get(l)
                    .is_none_or(|c| c.opened.elapsed() >= CURSOR_LIFETIME)
            })
        {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(cursor) = self.cursors.remove(&oldest) {
                self.held_rows -= cursor.rows.len();
            }
            if self.order.is_empty() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(store: &mut CursorStore, owner: RecordRef, max: Option<usize>) -> String {
        let rows: Arc<[u64]> = vec![1, 2, 3].into();
        store.open(owner, (0, rows, Arc::new(Projection::default())), 2, max)
    }

    #[test]
    fn a_user_beyond_the_limit_loses_their_oldest_cursor_only() {
        let (ada, bob) = (
            RecordRef { object: 0, seq: 1 },
            RecordRef { object: 0, seq: 2 },
        );
        let mut store = CursorStore::default();
        let first = open(&mut store, ada, Some(2));
        let bobs = open(&mut store, bob, Some(2));
        let second = open(&mut store, ada, Some(2));
        let third = open(&mut store, ada, Some(2));
        assert!(store.get(&first).is_none(), "ada's oldest is released");
        for kept in [&bobs, &second, &third] {
            assert!(store.get(kept).is_some(), "{kept} stays open");
        }
        assert_eq!(store.held_rows, 9, "released rows are no longer held");
    }

    #[test]
    fn without_a_limit_cursors_stay_open() {
        let ada = RecordRef { object: 0, seq: 1 };
        let mut store = CursorStore::default();
        let locators: Vec<String> = (0..20).map(|_| open(&mut store, ada, None)).collect();
        assert!(locators.iter().all(|l| store.get(l).is_some()));
    }
}
