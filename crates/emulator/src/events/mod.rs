//! Change events: what the org records when records change, for the Streaming API
//! (PushTopic and Change Data Capture over CometD) and the Pub/Sub API.
//!
//! A write transaction reports its changes when it ends (`org::Txn`'s drop), comparing
//! each record it touched with the record as it was before; [`log::ChangeLog`] numbers
//! them and wakes subscribers. The wire protocols only read the log.

pub mod body;
pub mod log;

use std::sync::Arc;

use axum::http::HeaderMap;

pub use log::{
    ChangeEvent, ChangeLog, ChangeType, Commit, CommittedChange, DEFAULT_CDC_ENTITY_ALLOCATION,
    ReplayFrom, ReplayUnavailable,
};

use crate::org::{ObjectDef, Record, RecordRef, Value};

/// The `changeOrigin` of a call: `com/salesforce/api/<api>/<version>;client=<id>` when its
/// `Sforce-Call-Options` header names a client, empty otherwise (as in Salesforce).
pub fn change_origin(api: &str, version: &str, headers: &HeaderMap) -> Arc<str> {
    let client = headers
        .get("sforce-call-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|options| {
            options.split(',').find_map(|option| {
                let (key, value) = option.split_once('=')?;
                (key.trim().eq_ignore_ascii_case("client")).then(|| value.trim().to_owned())
            })
        });
    match client {
        Some(client) if !client.is_empty() => {
            format!("com/salesforce/api/{api}/{version};client={client}").into()
        }
        _ => Arc::from(""),
    }
}

/// What one transaction did to one record, from the record before and after it; `None`
/// when nothing a subscriber would see happened (created and deleted in one transaction,
/// purged, or changed while in the recycle bin).
pub fn change_between(
    object: &ObjectDef,
    record: RecordRef,
    before: Option<&Record>,
    after: Option<&Record>,
) -> Option<CommittedChange> {
    let after = after?;
    let non_null = |values: &[Value]| -> Vec<usize> {
        (0..values.len())
            .filter(|&i| !values[i].is_null() && reported(object, i))
            .collect()
    };
    let (change_type, changed, nulled) = match (before.map(Record::is_deleted), after.is_deleted())
    {
        (None, false) => (ChangeType::Create, non_null(&after.values), Vec::new()),
        (Some(false), true) => (ChangeType::Delete, Vec::new(), Vec::new()),
        (Some(true), false) => (ChangeType::Undelete, non_null(&after.values), Vec::new()),
        (Some(false), false) => {
            let before = before?;
            // Every update sets LastModifiedDate, and Salesforce always lists it, also when
            // the update fell in the same millisecond as the previous write.
            let changed: Vec<usize> = (0..after.values.len())
                .filter(|&i| reported(object, i))
                .filter(|&i| {
                    i == object.system.last_modified_date
                        || before.values.get(i) != Some(&after.values[i])
                })
                .collect();
            let nulled = changed
                .iter()
                .copied()
                .filter(|&i| after.values[i].is_null())
                .collect();
            (ChangeType::Update, changed, nulled)
        }
        (None | Some(true), true) => return None,
    };
    Some(CommittedChange {
        record,
        change_type,
        changed,
        nulled,
        values: Arc::from(after.values.as_ref()),
    })
}

/// Fields change events never carry: `IsDeleted` and `SystemModstamp`.
fn reported(object: &ObjectDef, index: usize) -> bool {
    index != object.system.is_deleted && index != object.system.system_modstamp
}
