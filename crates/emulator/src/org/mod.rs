//! The org: schema, records, and the write rules Salesforce applies.
//!
//! Key concepts:
//! - One [`Org`] per emulator, behind a read-write lock: reads run in parallel, writes are
//!   serialised, which is what keeps `SystemModstamp` monotonic.
//! - Every write goes through a [`Txn`], which stamps all records it touches with one
//!   `SystemModstamp` (as one Salesforce transaction does) and can roll back to a savepoint,
//!   which is how `allOrNone` collections undo their partial work.
//! - Validation is done before anything changes, and produces Salesforce's error codes and
//!   messages, so handlers only have to choose how to present them.
//! - The schema can change at run time (custom fields added, altered, deleted or made
//!   unreadable) without moving any field's position; see `schema_change`.

mod ids;
mod schema;
mod schema_change;
mod schema_file;
mod table;
mod value;

use std::sync::Arc;

use serde_json::{Map, Value as Json};

pub use ids::{IdError, ParsedId, mint as mint_id};
pub use schema::{
    ChildRelationship, Compound, CompoundKind, FieldDef, FieldType, Formula, ObjectDef,
    ObjectFlags, ObjectIndex, Schema, SchemaError,
};
pub use schema_change::{FieldChange, SchemaChangeError};
pub use schema_file::{
    CompoundSpec, FieldSpec, FormulaSpec, ObjectFlagsSpec, ObjectSpec, SchemaFile,
};
pub use table::{Record, Table};
pub use value::{RecordRef, Value, compare_text_folded, format_double, value_from_json};

use crate::datetime;
use crate::error::ApiError;
use crate::events::{self, ChangeLog, Commit};

/// The org's own Id's prefix (`00D`); the Id is minted from the org's number.
const ORG_ID_PREFIX: &str = "00D";

/// The user the org is created with.
#[derive(Debug, Clone)]
pub struct AdminUser {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

/// The outcome of an upsert by external id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpsertOutcome {
    Created(RecordRef),
    Updated(RecordRef),
    /// Several records hold the key: Salesforce answers 300 with their URLs.
    Multiple(Vec<RecordRef>),
}

/// Why an Id given by a client does not name a usable record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupError {
    Malformed,
    NotFound,
}

/// An in-memory Salesforce org.
#[derive(Debug)]
pub struct Org {
    schema: Arc<Schema>,
    tables: Vec<Table>,
    last_stamp: i64,
    admin: RecordRef,
    /// Which org this is: its Id is minted from this number.
    number: u64,
    /// Committed changes to objects someone listens to (CDC, PushTopics).
    changes: ChangeLog,
}

impl Org {
    /// A new org with the given schema and one active administrator; its Id is minted from
    /// `number` (emulators with different numbers are different orgs).
    pub fn new(schema: Schema, admin: &AdminUser, number: u64) -> Self {
        let tables = schema.objects().iter().map(Table::new).collect();
        let user_object = schema.object_index("User").unwrap_or(0);
        let mut org = Self {
            schema: Arc::new(schema),
            tables,
            last_stamp: 0,
            number,
            changes: ChangeLog::default(),
            admin: RecordRef {
                object: user_object,
                seq: 1,
            },
        };
        org.create_admin(admin);
        org
    }

    fn create_admin(&mut self, admin: &AdminUser) {
        let mut fields = Map::new();
        let alias: String = admin
            .first_name
            .chars()
            .take(1)
            .chain(admin.last_name.chars())
            .take(8)
            .collect();
        for (name, value) in [
            ("Username", admin.username.as_str()),
            ("Email", admin.email.as_str()),
            ("FirstName", admin.first_name.as_str()),
            ("LastName", admin.last_name.as_str()),
            ("Alias", alias.as_str()),
            (
                "CommunityNickname",
                admin.username.split('@').next().unwrap_or("admin"),
            ),
            ("TimeZoneSidKey", "GMT"),
            ("LocaleSidKey", "en_US"),
            ("EmailEncodingKey", "UTF-8"),
            ("LanguageLocaleKey", "en_US"),
        ] {
            fields.insert(name.to_owned(), Json::from(value));
        }
        let user_object = self.admin.object;
        let object = self.schema.object(user_object);
        // Keep only fields the bundled User declares, so a trimmed schema still works.
        fields.retain(|name, _| object.field(name).is_some());
        let admin_ref = self.admin;
        let mut txn = self.begin(admin_ref);
        if let Ok(created) = txn.create(user_object, &fields) {
            debug_assert_eq!(created, admin_ref, "the administrator is the first user");
        }
    }

    /// The org's schema.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// The org's 18-character Id.
    pub fn org_id(&self) -> String {
        mint_id(ORG_ID_PREFIX, self.number)
    }

    /// The administrator's record.
    pub fn admin(&self) -> RecordRef {
        self.admin
    }

    /// One object's table.
    pub fn table(&self, object: ObjectIndex) -> &Table {
        &self.tables[usize::from(object)]
    }

    /// A record, deleted or not.
    pub fn get(&self, record: RecordRef) -> Option<&Record> {
        self.tables.get(usize::from(record.object))?.get(record.seq)
    }

    /// The change log the Streaming and Pub/Sub APIs read.
    pub fn changes(&self) -> &ChangeLog {
        &self.changes
    }

    /// The change log, to select objects for Change Data Capture or expire events.
    pub fn changes_mut(&mut self) -> &mut ChangeLog {
        &mut self.changes
    }

    /// The latest `SystemModstamp` handed out.
    pub fn last_stamp(&self) -> i64 {
        self.last_stamp
    }

    /// Resolves an Id string to a stored record (deleted or not).
    pub fn resolve_id(&self, text: &str) -> Result<RecordRef, LookupError> {
        let parsed = ParsedId::parse(text).map_err(|_| LookupError::Malformed)?;
        let object = self
            .schema
            .object_by_prefix(parsed.prefix())
            .ok_or(LookupError::NotFound)?;
        let seq = parsed.seq().ok_or(LookupError::NotFound)?;
        let record = RecordRef { object, seq };
        self.get(record)
            .map(|_| record)
            .ok_or(LookupError::NotFound)
    }

    /// The active user with this username.
    pub fn user_by_username(&self, username: &str) -> Option<RecordRef> {
        let object = self.schema.object_index("User")?;
        let field = self.schema.object(object).field_index("Username")?;
        let table = self.table(object);
        let seq = *table.lookup_key(field, username).first()?;
        let active = self.schema.object(object).field_index("IsActive");
        let record = table.get(seq)?;
        let is_active = active.is_none_or(|i| record.values[i] != Value::Bool(false));
        is_active.then_some(RecordRef { object, seq })
    }

    /// A field value of a record by field name, for display (names, usernames).
    pub fn text_of(&self, record: RecordRef, field: &str) -> Option<String> {
        let index = self.schema.object(record.object).field_index(field)?;
        self.get(record)?.values[index].to_text(&self.schema)
    }

    /// Removes every record except users, keeping the schema.
    pub fn reset(&mut self) {
        for (index, object) in self.schema.objects().iter().enumerate() {
            if index != usize::from(self.admin.object) {
                self.tables[index] = Table::new(object);
            }
        }
    }

    /// Starts a write transaction on behalf of a user.
    pub fn begin(&mut self, user: RecordRef) -> Txn<'_> {
        self.begin_at(user, None)
    }

    /// Starts a write transaction with a stamp reserved earlier by [`Org::reserve_stamp`]
    /// (a late commit), or a fresh one.
    pub fn begin_at(&mut self, user: RecordRef, reserved: Option<i64>) -> Txn<'_> {
        // One stamp per transaction, never earlier than the last: SystemModstamp is monotonic,
        // except for a late commit, which keeps the stamp it took when it started.
        let stamp = reserved.unwrap_or_else(|| {
            let stamp = datetime::now_millis().max(self.last_stamp);
            self.last_stamp = stamp;
            stamp
        });
        Txn {
            org: self,
            stamp,
            user,
            undo: Vec::new(),
            origin: Arc::from(""),
        }
    }

    /// Takes a `SystemModstamp` now for a write that commits later (a long transaction).
    /// Every transaction that starts afterwards gets a later stamp, so records written
    /// meanwhile are stamped after the late ones yet visible before them.
    pub fn reserve_stamp(&mut self) -> i64 {
        let stamp = datetime::now_millis().max(self.last_stamp);
        self.last_stamp = stamp + 1;
        stamp
    }

    fn put(&mut self, record: RecordRef, value: Option<Record>) -> Option<Record> {
        let schema = Arc::clone(&self.schema);
        self.tables[usize::from(record.object)].replace(&schema, record.seq, value)
    }

    /// Resolves a reference value written to `field`: the Id must be well-formed, name an
    /// object the field may point at, and a record that exists and is not deleted.
    fn resolve_reference(&self, field: &FieldDef, text: &str) -> Result<RecordRef, ApiError> {
        let incorrect = |code: &'static str| {
            ApiError::bad_request(
                code,
                format!("{}: id value of incorrect type: {text}", field.label),
            )
            .with_fields(vec![field.name.clone()])
        };
        let parsed = ParsedId::parse(text).map_err(|_| incorrect("MALFORMED_ID"))?;
        let object = self.schema.object_by_prefix(parsed.prefix());
        let allowed = object.filter(|o| {
            let name = &self.schema.object(*o).name;
            field
                .reference_to
                .iter()
                .any(|t| t.eq_ignore_ascii_case(name))
        });
        let Some(object) = allowed else {
            return Err(incorrect("FIELD_INTEGRITY_EXCEPTION"));
        };
        let record = parsed.seq().map(|seq| RecordRef { object, seq });
        match record.and_then(|r| self.get(r).map(|stored| (r, stored))) {
            Some((r, stored)) if !stored.is_deleted() => Ok(r),
            Some(_) => Err(
                ApiError::bad_request("ENTITY_IS_DELETED", "entity is deleted")
                    .with_fields(vec![field.name.clone()]),
            ),
            None => Err(ApiError::bad_request(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
            )
            .with_fields(vec![field.name.clone()])),
        }
    }

    /// Resolves `"Account": {"External_Id__c": "A-1"}` to the parent record.
    fn resolve_relationship(
        &self,
        reference: &FieldDef,
        body: &Map<String, Json>,
    ) -> Result<RecordRef, ApiError> {
        let invalid = |message: String| {
            ApiError::bad_request("INVALID_FIELD", message)
                .with_fields(vec![reference.name.clone()])
        };
        let target_name = match body
            .get("attributes")
            .and_then(|a| a.get("type"))
            .and_then(Json::as_str)
        {
            Some(t) => t.to_owned(),
            None => reference.reference_to.first().cloned().unwrap_or_default(),
        };
        let target = self
            .schema
            .object_index(&target_name)
            .filter(|_| {
                reference
                    .reference_to
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(&target_name))
            })
            .ok_or_else(|| invalid(format!("Invalid relationship target type: {target_name}")))?;
        let keys: Vec<(&String, &Json)> = body.iter().filter(|(k, _)| *k != "attributes").collect();
        let [(key_name, key_value)] = keys.as_slice() else {
            return Err(invalid(format!(
                "relationship {} must name exactly one external id field",
                reference
                    .relationship_name
                    .as_deref()
                    .unwrap_or(&reference.name)
            )));
        };
        let object = self.schema.object(target);
        let key_field = object
            .field_index(key_name)
            .filter(|i| object.fields[*i].id_lookup || object.fields[*i].external_id)
            .ok_or_else(|| {
                invalid(format!(
                    "Field {key_name} is not an external id field on {}",
                    object.name
                ))
            })?;
        let key_text = match key_value {
            Json::String(s) => s.trim().to_owned(),
            other => other.to_string(),
        };
        if object.fields[key_field].field_type == FieldType::Id {
            return self.resolve_reference(reference, &key_text);
        }
        let matches = self.table(target).lookup_key(key_field, &key_text);
        match matches {
            [seq] => Ok(RecordRef {
                object: target,
                seq: *seq,
            }),
            [] => Err(invalid(format!(
                "Foreign key external ID: {key_text} not found for field {} in entity {}",
                object.fields[key_field].name, object.name
            ))),
            _ => Err(ApiError::bad_request(
                "DUPLICATE_EXTERNAL_ID",
                format!("Foreign key external ID: {key_text} matched more than one record"),
            )
            .with_fields(vec![reference.name.clone()])),
        }
    }

    /// Validates a record body against an object and turns it into field assignments.
    /// `existing` is the record being updated, or None for a create.
    fn prepare(
        &self,
        object_index: ObjectIndex,
        body: &Map<String, Json>,
        existing: Option<&Record>,
    ) -> Result<Vec<(usize, Value)>, ApiError> {
        let object = self.schema.object(object_index);
        let mut assignments = Vec::with_capacity(body.len());
        let mut not_writable = Vec::new();
        for (name, json) in body {
            if name == "attributes" {
                continue;
            }
            let Some(field_index) = object.field_index(name) else {
                // Not a field: a parent given by external id, `"Account": {"Ext__c": "A-1"}`.
                let reference = match (object.relationship_field(name), json) {
                    (Some(i), Json::Object(parent)) => (i, parent),
                    _ => {
                        return Err(ApiError::bad_request(
                            "INVALID_FIELD",
                            format!("No such column '{name}' on sobject of type {}", object.name),
                        ));
                    }
                };
                let (index, parent) = reference;
                let field = &object.fields[index];
                let writable = if existing.is_some() {
                    field.updateable
                } else {
                    field.createable
                };
                if writable {
                    assignments
                        .push((index, Value::Ref(self.resolve_relationship(field, parent)?)));
                } else {
                    not_writable.push(field.name.clone());
                }
                continue;
            };
            let field = &object.fields[field_index];
            if field_index == object.system.id {
                if existing.is_some() {
                    continue;
                }
                if json.is_null() {
                    continue;
                }
                return Err(ApiError::bad_request(
                    "INVALID_FIELD",
                    "cannot specify Id in an insert call",
                )
                .with_fields(vec![field.name.clone()]));
            }
            let writable = if existing.is_some() {
                field.updateable
            } else {
                field.createable
            };
            if !writable {
                not_writable.push(field.name.clone());
                continue;
            }
            let value = value_from_json(field, json, &|f, text| self.resolve_reference(f, text))?;
            assignments.push((field_index, value));
        }
        if !not_writable.is_empty() {
            return Err(ApiError::bad_request(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {}. Please check the security settings of this \
                     field and verify that it is read/write for your profile or permission set.",
                    not_writable.join(", ")
                ),
            )
            .with_fields(not_writable));
        }
        let missing: Vec<String> = object
            .visible_fields()
            .filter(|(i, f)| {
                let assigned = assignments
                    .iter()
                    .rev()
                    .find(|(a, _)| a == i)
                    .map(|(_, v)| v);
                match (existing, assigned) {
                    (_, Some(v)) => v.is_null() && !f.nillable && (f.createable || f.updateable),
                    (None, None) => f.required_on_create(),
                    (Some(_), None) => false,
                }
            })
            .map(|(_, f)| f.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::bad_request(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
            )
            .with_fields(missing));
        }
        Ok(assignments)
    }

    /// DUPLICATE_VALUE when a unique field of `record` clashes with another live record.
    fn check_unique(&self, target: RecordRef, record: &Record) -> Result<(), ApiError> {
        let object = self.schema.object(target.object);
        let table = self.table(target.object);
        for (index, field) in object.fields.iter().enumerate() {
            if !field.unique {
                continue;
            }
            let Some(text) = record.values[index].to_text(&self.schema) else {
                continue;
            };
            if let Some(other) = table
                .lookup_key(index, &text)
                .iter()
                .find(|s| **s != target.seq)
            {
                let other_id = RecordRef {
                    object: target.object,
                    seq: *other,
                }
                .id18(&self.schema);
                return Err(ApiError::bad_request(
                    "DUPLICATE_VALUE",
                    format!(
                        "duplicate value found: {} duplicates value on record with id: {other_id}",
                        field.name
                    ),
                )
                .with_fields(vec![field.name.clone()]));
            }
        }
        Ok(())
    }
}

/// A write transaction: one `SystemModstamp`, and an undo log for `allOrNone`.
#[derive(Debug)]
pub struct Txn<'a> {
    org: &'a mut Org,
    stamp: i64,
    user: RecordRef,
    /// Previous contents of every slot this transaction changed, oldest first.
    undo: Vec<(RecordRef, Option<Record>)>,
    /// The `changeOrigin` its change events carry.
    origin: Arc<str>,
}

impl Drop for Txn<'_> {
    /// The transaction commits when it ends: its changes go to the change log.
    fn drop(&mut self) {
        if self.undo.is_empty() {
            return;
        }
        let schema = Arc::clone(&self.org.schema);
        let mut seen = std::collections::HashSet::new();
        let mut committed = Vec::new();
        for (record, before) in &self.undo {
            if !seen.insert(*record) || !self.org.changes.records(record.object) {
                continue;
            }
            let object = schema.object(record.object);
            let after = self.org.get(*record);
            if let Some(change) = events::change_between(object, *record, before.as_ref(), after) {
                committed.push(change);
            }
        }
        let commit = Commit {
            origin: Arc::clone(&self.origin),
            timestamp: datetime::now_millis(),
            user: self.user,
        };
        self.org.changes.publish(&commit, committed);
    }
}

impl Txn<'_> {
    /// Names the call that made this transaction in its change events (`changeOrigin`).
    pub fn with_origin(mut self, origin: Arc<str>) -> Self {
        self.origin = origin;
        self
    }

    /// The org, for reads inside the transaction.
    pub fn org(&self) -> &Org {
        self.org
    }

    /// A point [`Txn::rollback_to`] can return to.
    pub fn savepoint(&self) -> usize {
        self.undo.len()
    }

    /// Undoes every change made since the savepoint.
    pub fn rollback_to(&mut self, savepoint: usize) {
        while self.undo.len() > savepoint {
            if let Some((record, previous)) = self.undo.pop() {
                self.org.put(record, previous);
            }
        }
    }

    fn store(&mut self, record: RecordRef, value: Record) {
        let previous = self.org.put(record, Some(value));
        self.undo.push((record, previous));
    }

    fn stamp_modified(&self, object: &ObjectDef, values: &mut [Value]) {
        values[object.system.last_modified_date] = Value::DateTime(self.stamp);
        values[object.system.last_modified_by] = Value::Ref(self.user);
        values[object.system.system_modstamp] = Value::DateTime(self.stamp);
    }

    /// Creates a record; returns its reference.
    pub fn create(
        &mut self,
        object_index: ObjectIndex,
        body: &Map<String, Json>,
    ) -> Result<RecordRef, ApiError> {
        let assignments = self.org.prepare(object_index, body, None)?;
        let schema = Arc::clone(&self.org.schema);
        let object = schema.object(object_index);
        let seq = self.org.table(object_index).next_seq();
        if seq > ids::MAX_SEQ {
            return Err(ApiError::bad_request(
                "STORAGE_LIMIT_EXCEEDED",
                "storage limit exceeded",
            ));
        }
        let target = RecordRef {
            object: object_index,
            seq,
        };
        let mut values: Vec<Value> = object
            .fields
            .iter()
            .map(|f| f.default_value.clone().unwrap_or(Value::Null))
            .collect();
        values[object.system.id] = Value::Ref(target);
        values[object.system.is_deleted] = Value::Bool(false);
        values[object.system.created_date] = Value::DateTime(self.stamp);
        values[object.system.created_by] = Value::Ref(self.user);
        if let Some(owner) = object.system.owner {
            values[owner] = Value::Ref(self.user);
        }
        self.stamp_modified(object, &mut values);
        for (index, value) in assignments {
            values[index] = value;
        }
        for (index, field) in object.fields.iter().enumerate() {
            if field.auto_number {
                let n = self.org.tables[usize::from(object_index)].take_auto_number();
                values[index] = Value::Text(format!("{n:08}").into());
            }
        }
        compute_name(object, &mut values);
        compute_formulas(object, &mut values);
        let record = Record {
            values: values.into_boxed_slice(),
            deleted_at: None,
        };
        self.org.check_unique(target, &record)?;
        self.store(target, record);
        Ok(target)
    }

    /// Updates some fields of a record.
    pub fn update(&mut self, target: RecordRef, body: &Map<String, Json>) -> Result<(), ApiError> {
        let existing = self.live_record(target)?;
        let assignments = self.org.prepare(target.object, body, Some(&existing))?;
        self.rewrite(target, existing, None, |values| {
            for (index, value) in assignments {
                values[index] = value;
            }
        })
    }

    /// Moves a record to the recycle bin.
    pub fn delete(&mut self, target: RecordRef) -> Result<(), ApiError> {
        let existing = self.live_record(target)?;
        self.rewrite(target, existing, Some(self.stamp), |_| {})
    }

    /// Restores a record from the recycle bin.
    pub fn undelete(&mut self, target: RecordRef) -> Result<(), ApiError> {
        let existing = self
            .org
            .get(target)
            .cloned()
            .ok_or_else(ApiError::not_found)?;
        if !existing.is_deleted() {
            return Err(ApiError::bad_request(
                "UNDELETE_FAILED",
                "Entity is not in the recycle bin",
            ));
        }
        self.rewrite(target, existing, None, |_| {})
    }

    /// Stores a changed version of a record: applies `change`, sets `IsDeleted` from
    /// `deleted_at`, stamps it modified, recomputes its name and checks unique fields.
    fn rewrite(
        &mut self,
        target: RecordRef,
        existing: Record,
        deleted_at: Option<i64>,
        change: impl FnOnce(&mut [Value]),
    ) -> Result<(), ApiError> {
        let schema = Arc::clone(&self.org.schema);
        let object = schema.object(target.object);
        let mut values = existing.values.into_vec();
        let before = match values[object.system.system_modstamp] {
            Value::DateTime(stamp) => Some(stamp),
            _ => None,
        };
        change(&mut values);
        values[object.system.is_deleted] = Value::Bool(deleted_at.is_some());
        self.stamp_modified(object, &mut values);
        // A late commit rewriting a record another write changed since its stamp was
        // taken: in Salesforce that write would have waited for this one's row lock and
        // come after it, so a record's SystemModstamp never goes backwards. The record
        // takes a stamp after the one it holds.
        if let Some(before) = before
            && before > self.stamp
        {
            let stamp = datetime::now_millis()
                .max(self.org.last_stamp)
                .max(before + 1);
            self.org.last_stamp = stamp;
            values[object.system.last_modified_date] = Value::DateTime(stamp);
            values[object.system.system_modstamp] = Value::DateTime(stamp);
        }
        compute_name(object, &mut values);
        compute_formulas(object, &mut values);
        let record = Record {
            values: values.into_boxed_slice(),
            deleted_at,
        };
        if deleted_at.is_none() {
            self.org.check_unique(target, &record)?;
        }
        self.store(target, record);
        Ok(())
    }

    /// Removes a record for good (Bulk `hardDelete`, emptying the recycle bin).
    pub fn purge(&mut self, target: RecordRef) -> Result<(), ApiError> {
        let previous = self.org.put(target, None).ok_or_else(ApiError::not_found)?;
        self.undo.push((target, Some(previous)));
        Ok(())
    }

    /// Upserts by a key field: creates when no live record holds the key, updates when one
    /// does, and reports several matches. Keyed by `Id`, an empty key creates.
    pub fn upsert(
        &mut self,
        object_index: ObjectIndex,
        key_field: usize,
        key_text: &str,
        body: &Map<String, Json>,
    ) -> Result<UpsertOutcome, ApiError> {
        let schema = Arc::clone(&self.org.schema);
        let object = schema.object(object_index);
        let field = &object.fields[key_field];
        let key_text = key_text.trim();
        if key_field == object.system.id {
            if key_text.is_empty() {
                return self.create(object_index, body).map(UpsertOutcome::Created);
            }
            let target = match self.org.resolve_id(key_text) {
                Ok(r) if r.object == object_index => r,
                Ok(_) | Err(LookupError::Malformed) => {
                    return Err(ApiError::bad_request(
                        "MALFORMED_ID",
                        format!("Id: id value of incorrect type: {key_text}"),
                    )
                    .with_fields(vec!["Id".to_owned()]));
                }
                Err(LookupError::NotFound) => return Err(ApiError::not_found()),
            };
            return self
                .update(target, body)
                .map(|()| UpsertOutcome::Updated(target));
        }
        if key_text.is_empty() {
            return Err(ApiError::bad_request(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", field.name),
            )
            .with_fields(vec![field.name.clone()]));
        }
        // Normalise the key as the field would store it, so `7` finds `7.0` and case folds.
        let stored_key = value_from_json(field, &Json::String(key_text.to_owned()), &|f, t| {
            self.org.resolve_reference(f, t)
        })?
        .to_text(&schema)
        .unwrap_or_default();
        let matches: Vec<u64> = self
            .org
            .table(object_index)
            .lookup_key(key_field, &stored_key)
            .to_vec();
        let mut with_key = body.clone();
        with_key.retain(|k, _| !k.eq_ignore_ascii_case(&field.name));
        match matches.as_slice() {
            [] => {
                if field.createable {
                    with_key.insert(field.name.clone(), Json::String(key_text.to_owned()));
                }
                self.create(object_index, &with_key)
                    .map(UpsertOutcome::Created)
            }
            [seq] => {
                let target = RecordRef {
                    object: object_index,
                    seq: *seq,
                };
                self.update(target, &with_key)
                    .map(|()| UpsertOutcome::Updated(target))
            }
            several => Ok(UpsertOutcome::Multiple(
                several
                    .iter()
                    .map(|seq| RecordRef {
                        object: object_index,
                        seq: *seq,
                    })
                    .collect(),
            )),
        }
    }

    fn live_record(&self, target: RecordRef) -> Result<Record, ApiError> {
        match self.org.get(target) {
            Some(record) if record.is_deleted() => Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "ENTITY_IS_DELETED",
                "entity is deleted",
            )),
            Some(record) => Ok(record.clone()),
            None => Err(ApiError::not_found()),
        }
    }
}

/// Formula fields take their value from the record's other fields.
fn compute_formulas(object: &ObjectDef, values: &mut [Value]) {
    for formula in &object.formulas {
        let value = formula.evaluate(object, values);
        if let Some(slot) = values.get_mut(formula.target) {
            *slot = value;
        }
    }
}

/// Person-like objects compute `Name` from first and last name.
fn compute_name(object: &ObjectDef, values: &mut [Value]) {
    if let Some((first, last, name)) = object.name_from {
        let full = [values[first].as_text(), values[last].as_text()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        values[name] = if full.is_empty() {
            Value::Null
        } else {
            Value::Text(full.into())
        };
    }
}
