//! `apply_events = true`: storing what Change Data Capture events carry straight into the
//! mapped tables, without reading the records from Salesforce.
//!
//! Only read-only mappings without relationship columns apply events: a read-write
//! mapping's rows may hold unsent local changes, whose conflict rules the reader owns,
//! and relationship columns are filled from parent records an event does not carry. What
//! an event cannot carry is read the normal way (the mapping's reader is woken): gap and
//! overflow events, wildcard record ids, values that do not fit their column, an update of
//! a row Postgres does not have, every event of a mapping with a field events leave out
//! (formula fields, values derived from other records), and a batch Postgres refuses for
//! good (the subscriber then records it again without storing values). Compound fields
//! arrive nested and are flattened by each field's describe (`event_fields`).
//!
//! Events carry no `SystemModstamp`; the row is stamped with the change's
//! `LastModifiedDate`, which the record's `SystemModstamp` for that version never precedes
//! (the transaction's `commitTimestamp` comes after both, and a row stamped with it would
//! refuse the poll of the very same version). A row already stamped at or after it is left
//! alone, so a late or repeated event never undoes a newer version; an update in the same
//! millisecond as the row's stamp is read instead. The next poll reads the record at its
//! real stamp and stores the same values.

use std::collections::{BTreeSet, HashMap};

use pgforce_salesforce::streaming::{ChangeEvent, ChangeType, format_timestamp};
use pgforce_store::table::apply::{
    ApplyStatements, already_applied, apply_changed_fields, apply_records, delete_record,
};
use pgforce_store::{Ident, MappingId, OwnTransaction};
use serde_json::Value;

use super::event_fields;
use crate::config::CALL_OPTIONS_CLIENT;
use crate::convert::to_pg_text;
use crate::mapping::Mapping;
use crate::reader::row_values;

/// Fields every write sets, whoever makes it: an update of pgforce's own that changed
/// only these (and fields pgforce sends) is a pure echo.
const SET_BY_EVERY_WRITE: [&str; 3] = ["LastModifiedDate", "SystemModstamp", "LastModifiedById"];

/// A mapping an object's events concern.
#[derive(Clone)]
pub(crate) struct EventTarget {
    pub id: MappingId,
    /// Present when this mapping applies events itself; absent: its reader is woken.
    pub apply: Option<Box<Mapping>>,
    /// The fields pgforce sends on update for this mapping, named as change events name
    /// them (`Name.LastName`, `BillingAddress.City`; empty when it is read-only):
    /// an event of pgforce's own update that changed other fields carries values
    /// Salesforce set (a trigger, a flow, a default) and must be read.
    pub written: BTreeSet<String>,
}

impl EventTarget {
    /// Whether an event of pgforce's own write tells this mapping something it does not
    /// know: a create or undelete always does (Salesforce sets CreatedDate, OwnerId,
    /// defaults, auto-numbers); an update when it changed fields pgforce did not send; a
    /// delete never. Gap and overflow events carry no field list and are read.
    fn learns_from_own_write(&self, event: &ChangeEvent) -> bool {
        match event.change_type {
            ChangeType::Delete => false,
            ChangeType::Update => event.changed_fields.iter().any(|field| {
                !SET_BY_EVERY_WRITE.contains(&field.as_str()) && !self.written.contains(field)
            }),
            _ => true,
        }
    }
}

/// What a batch of events did.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// Mappings whose readers must read (they do not apply events, or an event could not
    /// be applied).
    pub wake: BTreeSet<MappingId>,
    /// Mappings the events concerned at all (their `last_event_at` moves).
    pub concerned: BTreeSet<MappingId>,
    /// Records stored from events.
    pub applied: u64,
}

/// Applies or routes a batch of events inside `tx` (which records the replay id too).
/// Without `store_values`, nothing is stored: every mapping concerned is woken.
pub(super) async fn apply(
    tx: &OwnTransaction<'_>,
    schema: &Ident,
    targets: &HashMap<String, Vec<EventTarget>>,
    events: &[ChangeEvent],
    store_values: bool,
) -> pgforce_store::Result<Outcome> {
    let mut outcome = Outcome::default();
    let mut locked = BTreeSet::new();
    for event in events {
        let own = event.made_by_client(CALL_OPTIONS_CLIENT);
        for target in targets.get(&event.entity).into_iter().flatten() {
            if own {
                // pgforce's own write: a pure echo wakes nobody; what Salesforce added to
                // it is read (never applied: the event holds the values pgforce sent).
                if target.learns_from_own_write(event) {
                    outcome.concerned.insert(target.id);
                    outcome.wake.insert(target.id);
                }
                continue;
            }
            outcome.concerned.insert(target.id);
            let Some(mapping) = target.apply.as_ref().filter(|_| store_values) else {
                outcome.wake.insert(target.id);
                continue;
            };
            if !locked.contains(&target.id) {
                tx.lock_table(schema, &mapping.table).await?;
                locked.insert(target.id);
            }
            let mut stored = 0;
            let mut all_stored = event.change_type.carries_values();
            for sfid in &event.record_ids {
                if sfid.ends_with('*') {
                    all_stored = false;
                    continue;
                }
                match apply_one(tx, schema, mapping, event, sfid).await? {
                    true => stored += 1,
                    false => all_stored = false,
                }
            }
            outcome.applied += stored;
            if !all_stored {
                outcome.wake.insert(target.id);
            }
        }
    }
    Ok(outcome)
}

/// Applies one event to one record; `false` when it must be read instead.
async fn apply_one(
    tx: &OwnTransaction<'_>,
    schema: &Ident,
    mapping: &Mapping,
    event: &ChangeEvent,
    sfid: &str,
) -> pgforce_store::Result<bool> {
    let Ok(shape) = mapping.row_shape(schema) else {
        return Ok(false);
    };
    let statements = ApplyStatements::new(&shape);
    // The change's LastModifiedDate: never later than the record's SystemModstamp for
    // this version, so the poll that reads the same version still stores its real stamp
    // (a poll never replaces a row stamped later than what it read). Without one, read.
    let stored_stamp = || event.last_modified_millis().map(format_timestamp);
    match event.change_type {
        ChangeType::Create | ChangeType::Undelete => {
            let (Some(mut record), Some(stamp)) = (
                event_fields::created_values(mapping, &event.fields),
                stored_stamp(),
            ) else {
                return Ok(false);
            };
            record.insert("Id".to_owned(), Value::from(sfid));
            record.insert("SystemModstamp".to_owned(), Value::from(stamp.clone()));
            record.insert("IsDeleted".to_owned(), Value::Bool(false));
            let Ok(values) = row_values(mapping, &record) else {
                return Ok(false);
            };
            let newer = already_applied(tx, &statements, &[(sfid.to_owned(), stamp)]).await?;
            if newer.is_empty() {
                apply_records(tx, &statements, &[values]).await?;
            }
            Ok(true)
        }
        ChangeType::Update => {
            let (Some(changed), Some(stamp)) = (
                event_fields::changed_values(mapping, &event.changed_fields, &event.fields),
                stored_stamp(),
            ) else {
                return Ok(false);
            };
            let mut columns = Vec::new();
            for (field, value) in changed {
                match to_pg_text(&value, &field.api_name, field.pg_type) {
                    Ok(text) => columns.push((&field.column, field.pg_type, text)),
                    Err(_) => return Ok(false),
                }
            }
            apply_changed_fields(tx, &shape, sfid, &stamp, &columns).await
        }
        ChangeType::Delete => {
            delete_record(tx, &statements, sfid).await?;
            Ok(true)
        }
        ChangeType::Gap(_) | ChangeType::Overflow | ChangeType::Other(_) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use pgforce_salesforce::streaming::ReplayId;

    use super::*;

    /// An event of pgforce's own write.
    fn own(change_type: ChangeType, changed: &[&str]) -> ChangeEvent {
        ChangeEvent {
            replay_id: ReplayId(vec![1]),
            entity: "Contact".to_owned(),
            change_type,
            record_ids: vec!["003000000000001AAA".to_owned()],
            change_origin: format!("com/salesforce/api/rest/62.0;client={CALL_OPTIONS_CLIENT}"),
            commit_timestamp: 0,
            changed_fields: changed.iter().map(|f| (*f).to_owned()).collect(),
            nulled_fields: Vec::new(),
            fields: serde_json::Map::new(),
        }
    }

    /// A read-write Contact mapping that sends LastName (a component of `Name`) and Email.
    fn contact() -> EventTarget {
        EventTarget {
            id: MappingId::from(1),
            apply: None,
            written: ["Name.LastName", "Email"].map(str::to_owned).into(),
        }
    }

    #[test]
    fn an_update_that_changed_only_what_pgforce_sent_is_a_pure_echo() {
        let event = own(
            ChangeType::Update,
            &[
                "Email",
                "LastModifiedDate",
                "SystemModstamp",
                "LastModifiedById",
            ],
        );
        assert!(!contact().learns_from_own_write(&event));
        let compound = own(ChangeType::Update, &["Name.LastName", "LastModifiedDate"]);
        assert!(!contact().learns_from_own_write(&compound));
    }

    #[test]
    fn an_update_that_changed_fields_pgforce_did_not_send_is_read() {
        let event = own(ChangeType::Update, &["Email", "Title", "LastModifiedDate"]);
        assert!(contact().learns_from_own_write(&event));
    }

    #[test]
    fn creates_are_read_and_deletes_are_echoes() {
        assert!(contact().learns_from_own_write(&own(ChangeType::Create, &[])));
        assert!(contact().learns_from_own_write(&own(ChangeType::Undelete, &[])));
        assert!(!contact().learns_from_own_write(&own(ChangeType::Delete, &[])));
    }

    #[test]
    fn a_read_only_mapping_reads_updates_other_pgforce_connections_made() {
        let read_only = EventTarget {
            written: BTreeSet::new(),
            ..contact()
        };
        assert!(read_only.learns_from_own_write(&own(ChangeType::Update, &["Email"])));
    }
}
