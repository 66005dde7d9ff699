//! Query cursors: what `nextRecordsUrl` points at.
//!
//! A query's result is computed once, when the first page is asked for; later pages are
//! slices of it, addressed by `<locator>-<offset>` as Salesforce's are. A page may be
//! fetched again (a client retrying after a lost response gets the same records). Cursors
//! are dropped oldest-first once they hold too many record numbers in total, and after the
//! two days Salesforce keeps them; an unknown or dropped locator is INVALID_QUERY_LOCATOR.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bind::Projection;
use crate::org::{ObjectIndex, mint_id};

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
    /// Opens a cursor and returns its locator.
    pub fn open(
        &mut self,
        object: ObjectIndex,
        rows: Arc<[u64]>,
        projection: Arc<Projection>,
        batch_size: usize,
    ) -> String {
        self.next_number += 1;
        let locator = mint_id("0r8", self.next_number);
        self.held_rows += rows.len();
        let cursor = Cursor {
            object,
            rows,
            projection,
            batch_size,
            opened: Instant::now(),
        };
        self.cursors.insert(locator.clone(), Arc::new(cursor));
        self.order.push_back(locator.clone());
        self.evict();
        locator
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
