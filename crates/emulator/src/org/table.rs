//! One object's records and the indexes queries and writes rely on.
//!
//! Records live in a vector indexed by record number (Ids are minted in creation order, so
//! the number is the position), which keeps a million records compact and makes Id lookups
//! a bounds check. Two kinds of index follow every change: `SystemModstamp` order (the
//! replication cursor every sync tool pages by) and equality maps for external-id and unique
//! fields (upsert keys and duplicate checks). [`Table::replace`] is the only way a record
//! changes, so the indexes cannot drift from the data.

use std::collections::{BTreeSet, HashMap};

use super::schema::{ObjectDef, Schema};
use super::value::Value;

/// A stored record: field values in the object's field order.
#[derive(Debug, Clone)]
pub struct Record {
    pub values: Box<[Value]>,
    /// When the record went to the recycle bin, if it is there.
    pub deleted_at: Option<i64>,
}

impl Record {
    /// Whether the record is in the recycle bin.
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// Equality index over one key field.
#[derive(Debug)]
struct KeyIndex {
    field: usize,
    case_sensitive: bool,
    seqs_by_key: HashMap<Box<str>, Vec<u64>>,
}

impl KeyIndex {
    fn key(&self, text: &str) -> Box<str> {
        if self.case_sensitive {
            text.into()
        } else {
            text.to_lowercase().into()
        }
    }
}

/// All records of one object.
#[derive(Debug)]
pub struct Table {
    slots: Vec<Option<Record>>,
    live_count: usize,
    deleted_count: usize,
    by_modstamp: BTreeSet<(i64, u64)>,
    keys: Vec<KeyIndex>,
    modstamp_field: usize,
    next_auto_number: u64,
}

impl Table {
    /// An empty table for an object.
    pub fn new(object: &ObjectDef) -> Self {
        let keys = object
            .indexed_keys()
            .map(|field| KeyIndex {
                field,
                case_sensitive: object.fields[field].case_sensitive,
                seqs_by_key: HashMap::new(),
            })
            .collect();
        Self {
            slots: Vec::new(),
            live_count: 0,
            deleted_count: 0,
            by_modstamp: BTreeSet::new(),
            keys,
            modstamp_field: object.system.system_modstamp,
            next_auto_number: 1001,
        }
    }

    /// The record number the next created record gets.
    pub fn next_seq(&self) -> u64 {
        self.slots.len() as u64 + 1
    }

    /// Takes the next auto-number value.
    pub fn take_auto_number(&mut self) -> u64 {
        let n = self.next_auto_number;
        self.next_auto_number += 1;
        n
    }

    /// The record with this number, deleted or not.
    pub fn get(&self, seq: u64) -> Option<&Record> {
        let index = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.slots.get(index)?.as_ref()
    }

    /// Records not in the recycle bin.
    pub fn live_count(&self) -> usize {
        self.live_count
    }

    /// Records in the recycle bin.
    pub fn deleted_count(&self) -> usize {
        self.deleted_count
    }

    /// Every stored record number with its record, in Id order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &Record)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| slot.as_ref().map(|r| (i as u64 + 1, r)))
    }

    /// Record numbers in `(SystemModstamp, Id)` order within a stamp range (inclusive).
    pub fn by_modstamp(
        &self,
        from: i64,
        to: i64,
    ) -> impl DoubleEndedIterator<Item = (i64, u64)> + '_ {
        self.by_modstamp.range((from, 0)..=(to, u64::MAX)).copied()
    }

    /// Record numbers whose key field holds this value (deleted records are not indexed).
    pub fn lookup_key(&self, field: usize, text: &str) -> &[u64] {
        let Some(index) = self.keys.iter().find(|k| k.field == field) else {
            return &[];
        };
        index
            .seqs_by_key
            .get(&index.key(text))
            .map_or(&[], Vec::as_slice)
    }

    /// Whether a key field is indexed.
    pub fn has_key_index(&self, field: usize) -> bool {
        self.keys.iter().any(|k| k.field == field)
    }

    /// Appends a column for a field added at run time: every stored record gets `fill`, or
    /// the next auto-number in Id order for an auto-number field (as Salesforce numbers the
    /// existing records of a new auto-number field).
    pub fn add_column(&mut self, fill: &Value, auto_number: bool) {
        for index in 0..self.slots.len() {
            let value = match (auto_number, &self.slots[index]) {
                (_, None) => continue,
                (true, Some(_)) => Value::Text(format!("{:08}", self.take_auto_number()).into()),
                (false, Some(_)) => fill.clone(),
            };
            if let Some(record) = &mut self.slots[index] {
                let mut values = std::mem::take(&mut record.values).into_vec();
                values.push(value);
                record.values = values.into_boxed_slice();
            }
        }
    }

    /// Rewrites one column of every stored record in place (a field changed type, length or
    /// scale, or was removed). Not a write: `SystemModstamp` stays. Key indexes must be
    /// rebuilt afterwards with [`Table::reindex_keys`].
    pub fn convert_column(&mut self, field: usize, convert: impl Fn(&Value) -> Value) {
        for record in self.slots.iter_mut().flatten() {
            if let Some(value) = record.values.get_mut(field) {
                *value = convert(value);
            }
        }
    }

    /// Rebuilds the equality indexes from the object's key fields as they are now.
    pub fn reindex_keys(&mut self, schema: &Schema, object: &ObjectDef) {
        let mut keys: Vec<KeyIndex> = object
            .indexed_keys()
            .map(|field| KeyIndex {
                field,
                case_sensitive: object.fields[field].case_sensitive,
                seqs_by_key: HashMap::new(),
            })
            .collect();
        for (index, slot) in self.slots.iter().enumerate() {
            let Some(record) = slot.as_ref().filter(|r| !r.is_deleted()) else {
                continue;
            };
            for key in &mut keys {
                if let Some(text) = record.values[key.field].to_text(schema) {
                    let k = key.key(&text);
                    key.seqs_by_key.entry(k).or_default().push(index as u64 + 1);
                }
            }
        }
        self.keys = keys;
    }

    /// Puts `record` at `seq` (None removes it entirely), keeping every index in step, and
    /// returns what was there.
    pub fn replace(&mut self, schema: &Schema, seq: u64, record: Option<Record>) -> Option<Record> {
        let Ok(index) = usize::try_from(seq.saturating_sub(1)) else {
            return None;
        };
        if index >= self.slots.len() {
            self.slots.resize_with(index + 1, || None);
        }
        let old = self.slots[index].take();
        if let Some(old) = &old {
            self.unindex(schema, seq, old);
        }
        if let Some(new) = &record {
            self.index(schema, seq, new);
        }
        self.slots[index] = record;
        old
    }

    fn index(&mut self, schema: &Schema, seq: u64, record: &Record) {
        if record.is_deleted() {
            self.deleted_count += 1;
        } else {
            self.live_count += 1;
            for key in &mut self.keys {
                if let Some(text) = record.values[key.field].to_text(schema) {
                    let k = key.key(&text);
                    key.seqs_by_key.entry(k).or_default().push(seq);
                }
            }
        }
        if let Value::DateTime(stamp) = record.values[self.modstamp_field] {
            self.by_modstamp.insert((stamp, seq));
        }
    }

    fn unindex(&mut self, schema: &Schema, seq: u64, record: &Record) {
        if record.is_deleted() {
            self.deleted_count -= 1;
        } else {
            self.live_count -= 1;
            for key in &mut self.keys {
                if let Some(text) = record.values[key.field].to_text(schema) {
                    let k = key.key(&text);
                    if let Some(seqs) = key.seqs_by_key.get_mut(&k) {
                        seqs.retain(|s| *s != seq);
                        if seqs.is_empty() {
                            key.seqs_by_key.remove(&k);
                        }
                    }
                }
            }
        }
        if let Value::DateTime(stamp) = record.values[self.modstamp_field] {
            self.by_modstamp.remove(&(stamp, seq));
        }
    }
}
