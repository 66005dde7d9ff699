//! Salesforce Connect: External Data Sources of type OData 4.0 and the external objects
//! (`…__x`) synced from them, answered by calling the producer live as Salesforce's adapter
//! does.
//!
//! Key concepts: a [`source::DataSource`] is set up through the control API; "Validate and
//! Sync" reads its `$metadata` and creates one [`objects::ExternalObject`] per chosen entity
//! set; SOQL, queryMore and reads by External ID on those objects become OData requests
//! ([`translate`]), each one a callout ([`callout`]) logged per source.
//!
//! Data flow: the REST handler copies what it needs out of [`ConnectStore`] (behind a std
//! mutex, held only in synchronous sections), releases it, makes the callout, then takes the
//! lock again only to log the callout or keep a cursor. The org's lock is never involved:
//! external objects hold no records in the org.
//!
//! Layout: `source` (settings), `metadata` (CSDL), `objects` (sync and type mapping),
//! `translate` (SOQL → OData), `callout` (HTTP), `fetch` (pages of a query), `write`
//! (create, update, delete), `api` (REST),
//! `control` (control API).

pub mod api;
pub mod callout;
pub mod control;
pub mod fetch;
pub mod metadata;
pub mod objects;
pub mod source;
pub mod translate;
pub mod write;

use std::collections::{BTreeMap, HashMap, VecDeque};

/// Open queryMore cursors kept at most; the oldest goes first (a client may abandon a query).
const MAX_CURSORS: usize = 10_000;
use std::sync::Arc;

use callout::{CalloutRecord, LOG_CAPACITY};
use fetch::ExternalCursor;
use objects::ExternalObject;
use source::DataSource;

/// A source with the objects synced from it and its callout log.
#[derive(Debug)]
pub struct SourceEntry {
    pub settings: Arc<DataSource>,
    pub callouts: VecDeque<CalloutRecord>,
}

/// Every External Data Source and external object of the org.
#[derive(Debug, Default)]
pub struct ConnectStore {
    /// By lower-case name.
    sources: BTreeMap<String, SourceEntry>,
    /// By lower-case API name.
    objects: BTreeMap<String, Arc<ExternalObject>>,
    /// Open queryMore cursors on external objects, by locator (locators sort by age).
    cursors: BTreeMap<String, ExternalCursor>,
    next_locator: u64,
    /// Key prefixes handed out, by lower-case object name (kept across re-syncs).
    prefixes: HashMap<String, String>,
    /// ID mapping: Salesforce Ids handed out to external records, both ways.
    ids: IdMap,
}

/// The Ids the org has given external records, as Salesforce's ID mapping keeps them.
#[derive(Debug, Default)]
struct IdMap {
    /// By (lower-case object name, External ID).
    by_external_id: HashMap<(String, String), String>,
    /// (lower-case object name, External ID) by 18-character Id.
    by_id: HashMap<String, (String, String)>,
    next: u64,
}

impl ConnectStore {
    /// Adds or replaces a source (its objects stay until re-synced or the source goes).
    pub fn put_source(&mut self, settings: DataSource) {
        let key = settings.name.to_ascii_lowercase();
        let callouts = self
            .sources
            .remove(&key)
            .map(|s| s.callouts)
            .unwrap_or_default();
        self.sources.insert(
            key,
            SourceEntry {
                settings: Arc::new(settings),
                callouts,
            },
        );
    }

    /// A source's settings.
    pub fn source(&self, name: &str) -> Option<Arc<DataSource>> {
        self.sources
            .get(&name.to_ascii_lowercase())
            .map(|s| Arc::clone(&s.settings))
    }

    /// Every source's settings, by name.
    pub fn sources(&self) -> Vec<Arc<DataSource>> {
        self.sources
            .values()
            .map(|s| Arc::clone(&s.settings))
            .collect()
    }

    /// Removes a source and its external objects; whether it existed.
    pub fn remove_source(&mut self, name: &str) -> bool {
        let Some(entry) = self.sources.remove(&name.to_ascii_lowercase()) else {
            return false;
        };
        let source = entry.settings.name.clone();
        self.objects.retain(|_, o| o.source != source);
        self.cursors.retain(|_, c| c.object.source != source);
        true
    }

    /// Installs synced objects, replacing objects of the same name from the same source; an
    /// error naming the first object another source already owns.
    pub fn install(&mut self, objects: Vec<ExternalObject>) -> Result<(), String> {
        for object in &objects {
            if let Some(existing) = self.objects.get(&object.name.to_ascii_lowercase())
                && existing.source != object.source
            {
                return Err(format!(
                    "external object {} already exists, synced from data source {}",
                    object.name, existing.source
                ));
            }
        }
        for mut object in objects {
            let key = object.name.to_ascii_lowercase();
            let next = self.prefixes.len();
            object.key_prefix = self
                .prefixes
                .entry(key.clone())
                .or_insert_with(|| external_key_prefix(next))
                .clone();
            self.objects.insert(key, Arc::new(object));
        }
        Ok(())
    }

    /// The Salesforce Id of an external record, minted the first time the record is seen.
    pub fn id_for(&mut self, object: &ExternalObject, external_id: &str) -> String {
        let key = (object.name.to_ascii_lowercase(), external_id.to_owned());
        if let Some(id) = self.ids.by_external_id.get(&key) {
            return id.clone();
        }
        self.ids.next += 1;
        let id = crate::org::mint_id(&object.key_prefix, self.ids.next);
        self.ids.by_external_id.insert(key.clone(), id.clone());
        self.ids.by_id.insert(id.clone(), key);
        id
    }

    /// The External ID a Salesforce Id of `object` stands for; `None` when the text is not
    /// an Id the org gave one of its records.
    pub fn external_id_of(&self, object: &ExternalObject, id: &str) -> Option<String> {
        let id18 = crate::org::ParsedId::parse(id).ok()?.to_id18();
        let (name, external_id) = self.ids.by_id.get(&id18)?;
        name.eq_ignore_ascii_case(&object.name)
            .then(|| external_id.clone())
    }

    /// Whether no external object exists (most orgs): routing skips Salesforce Connect.
    pub fn has_no_objects(&self) -> bool {
        self.objects.is_empty()
    }

    /// An external object by API name, case-insensitively.
    pub fn object(&self, name: &str) -> Option<Arc<ExternalObject>> {
        self.objects.get(&name.to_ascii_lowercase()).cloned()
    }

    /// Every external object, by name.
    pub fn objects(&self) -> Vec<Arc<ExternalObject>> {
        self.objects.values().cloned().collect()
    }

    /// Appends to a source's callout log (oldest entries go first when it is full).
    pub fn log(&mut self, source: &str, record: CalloutRecord) {
        if let Some(entry) = self.sources.get_mut(&source.to_ascii_lowercase()) {
            if entry.callouts.len() == LOG_CAPACITY {
                entry.callouts.pop_front();
            }
            entry.callouts.push_back(record);
        }
    }

    /// A source's callout log, oldest first.
    pub fn callouts(&self, source: &str) -> Option<Vec<CalloutRecord>> {
        self.sources
            .get(&source.to_ascii_lowercase())
            .map(|s| s.callouts.iter().cloned().collect())
    }

    /// Forgets a source's callout log; whether the source exists.
    pub fn clear_callouts(&mut self, source: &str) -> bool {
        self.sources
            .get_mut(&source.to_ascii_lowercase())
            .map(|s| s.callouts.clear())
            .is_some()
    }

    /// Keeps a cursor and returns its locator.
    pub fn open_cursor(&mut self, cursor: ExternalCursor) -> String {
        while self.cursors.len() >= MAX_CURSORS {
            self.cursors.pop_first();
        }
        self.next_locator += 1;
        let locator = format!("01gXC{:013}", self.next_locator);
        self.cursors.insert(locator.clone(), cursor);
        locator
    }

    /// Takes a cursor out (a continuation puts it back if more remains).
    pub fn take_cursor(&mut self, locator: &str) -> Option<ExternalCursor> {
        self.cursors.remove(locator)
    }

    /// Puts a cursor back under its locator.
    pub fn keep_cursor(&mut self, locator: String, cursor: ExternalCursor) {
        self.cursors.insert(locator, cursor);
    }

    /// Whether a locator is an external object's cursor.
    pub fn has_cursor(&self, locator: &str) -> bool {
        self.cursors.contains_key(locator)
    }
}

/// The `n`th external object's key prefix: `x00` … `x0Z`, `x10` …, as Salesforce's external
/// objects have `x`-prefixed keys.
fn external_key_prefix(n: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let high = DIGITS[(n / 36) % 36];
    let low = DIGITS[n % 36];
    format!("x{}{}", char::from(high), char::from(low))
}
