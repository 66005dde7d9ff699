//! PushTopics: a SOQL query whose matching record changes are streamed on `/topic/<Name>`.
//!
//! Topics are ordinary `PushTopic` records (created with `POST /sobjects/PushTopic`), so
//! describe, query, update and delete work as for any object. This module adds what
//! Salesforce checks on top (the query must parse, select `Id` from one object, and use no
//! ORDER BY, LIMIT, OFFSET, aggregate or relationship field), keeps the change log
//! recording the objects active topics watch, and decides which changes a topic reports:
//! the operation must be enabled (`NotifyForOperation*`), an update must touch a field
//! `NotifyForFields` counts (All, Referenced: SELECT or WHERE fields, Select, Where), and
//! the record must satisfy the WHERE clause after the change.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::Method;
use serde_json::{Map, Value as Json, json};

use super::cdc::value_json;
use crate::api::context::RequestContext;
use crate::api::rest::ApiResult;
use crate::api::sobjects;
use crate::datetime;
use crate::error::ApiError;
use crate::events::{ChangeEvent, ChangeType};
use crate::org::{ObjectIndex, Org, Record, RecordRef, Schema, Value};
use crate::query::bind::{BoundQuery, Condition, ProjectionItem};
use crate::query::{bind, exec};

/// The object's API name.
pub const OBJECT: &str = "PushTopic";

/// Which field changes an update must touch to be reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotifyFor {
    All,
    Referenced,
    Select,
    Where,
}

/// A topic as delivery needs it.
#[derive(Debug, Clone)]
pub struct Topic {
    query: BoundQuery,
    notify_for: NotifyFor,
    create: bool,
    update: bool,
    delete: bool,
    undelete: bool,
    /// Events committed before the topic existed are not its events.
    created: i64,
}

/// A live PushTopic by name (case-insensitive, as Salesforce's unique names are).
pub fn by_name(org: &Org, name: &str) -> Option<RecordRef> {
    let object = org.schema().object_index(OBJECT)?;
    let field = org.schema().object(object).field_index("Name")?;
    org.table(object)
        .lookup_key(field, name)
        .iter()
        .map(|seq| RecordRef { object, seq: *seq })
        .find(|r| org.get(*r).is_some_and(|rec| !rec.is_deleted()))
}

fn field<'r>(org: &Org, record: &'r Record, name: &str) -> Option<&'r Value> {
    let object = org.schema().object_index(OBJECT)?;
    let index = org.schema().object(object).field_index(name)?;
    record.values.get(index)
}

/// The topic behind a PushTopic record, when it is live and active with a valid query.
pub fn load(org: &Org, topic: RecordRef) -> Option<Topic> {
    let record = org.get(topic).filter(|r| !r.is_deleted())?;
    let flag = |name: &str| field(org, record, name) != Some(&Value::Bool(false));
    if !flag("IsActive") {
        return None;
    }
    let text = field(org, record, "Query")?.as_text()?;
    let query = checked_query(org.schema(), text).ok()?;
    let notify_for = match field(org, record, "NotifyForFields").and_then(Value::as_text) {
        Some("All") => NotifyFor::All,
        Some("Select") => NotifyFor::Select,
        Some("Where") => NotifyFor::Where,
        _ => NotifyFor::Referenced,
    };
    let created = match field(org, record, "CreatedDate") {
        Some(Value::DateTime(ms)) => *ms,
        _ => 0,
    };
    Some(Topic {
        query,
        notify_for,
        create: flag("NotifyForOperationCreate"),
        update: flag("NotifyForOperationUpdate"),
        delete: flag("NotifyForOperationDelete"),
        undelete: flag("NotifyForOperationUndelete"),
        created,
    })
}

/// Parses and checks a PushTopic query as Salesforce does on create and update.
pub fn checked_query(schema: &Schema, text: &str) -> Result<BoundQuery, ApiError> {
    let query = bind(schema, text).map_err(|error| {
        ApiError::bad_request(error.code, error.message).with_fields(vec!["Query".to_owned()])
    })?;
    let refuse = |code: &'static str, message: &str| {
        Err(ApiError::bad_request(code, message).with_fields(vec!["Query".to_owned()]))
    };
    if query.count_only {
        return refuse(
            "MALFORMED_QUERY",
            "Aggregate queries are not supported in PushTopic queries",
        );
    }
    if !query.order.is_empty() || query.limit.is_some() || query.offset.is_some() {
        return refuse(
            "MALFORMED_QUERY",
            "ORDER BY, LIMIT and OFFSET are not supported in PushTopic queries",
        );
    }
    let id_field = schema.object(query.object).system.id;
    let mut selects_id = false;
    for item in &query.projection.items {
        match item {
            ProjectionItem::Field { field, .. } => selects_id |= *field == id_field,
            ProjectionItem::Parent { name, .. } => {
                return refuse(
                    "INVALID_FIELD",
                    &format!("relationship fields are not supported in PushTopic queries: {name}"),
                );
            }
        }
    }
    if !selects_id {
        return refuse(
            "INVALID_FIELD",
            "The SELECT clause of a PushTopic query must include the Id field",
        );
    }
    Ok(query)
}

/// Checks the `Query` of a PushTopic create or update body, when it has one.
pub fn validate_body(schema: &Schema, body: &Map<String, Json>) -> Result<(), ApiError> {
    let query = body
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Query"))
        .map(|(_, v)| v);
    match query {
        Some(Json::String(text)) => checked_query(schema, text).map(|_| ()),
        Some(Json::Null) | None => Ok(()),
        Some(_) => Err(
            ApiError::bad_request("INVALID_FIELD", "Query must be a SOQL query string")
                .with_fields(vec!["Query".to_owned()]),
        ),
    }
}

/// Makes the change log record exactly the objects active topics watch (one watch per
/// topic). Called after every PushTopic write and after a reset.
pub fn resync_watches(org: &mut Org) {
    let Some(object) = org.schema().object_index(OBJECT) else {
        return;
    };
    let mut desired: BTreeMap<ObjectIndex, usize> = BTreeMap::new();
    let topics: Vec<RecordRef> = org
        .table(object)
        .iter()
        .map(|(seq, _)| RecordRef { object, seq })
        .collect();
    for topic in topics {
        if let Some(loaded) = load(org, topic) {
            *desired.entry(loaded.query.object).or_default() += 1;
        }
    }
    for (watched, count) in org.changes().topic_watches() {
        for _ in 0..count {
            org.changes_mut().unwatch_object(watched);
        }
    }
    for (watched, count) in desired {
        for _ in 0..count {
            org.changes_mut().watch_object(watched);
        }
    }
}

/// Fields a condition reads on the record itself (for a parent path, its reference field).
fn where_fields(condition: &Condition, out: &mut BTreeSet<usize>) {
    match condition {
        Condition::And(items) | Condition::Or(items) => {
            items.iter().for_each(|c| where_fields(c, out));
        }
        Condition::Not(inner) => where_fields(inner, out),
        Condition::Compare { path, .. }
        | Condition::In { path, .. }
        | Condition::Like { path, .. } => {
            out.insert(
                path.hops
                    .first()
                    .map_or(path.field, |(_, reference)| *reference),
            );
        }
    }
}

impl Topic {
    /// Whether an update that changed these fields is reported.
    fn counts_update(&self, changed: &[usize]) -> bool {
        let select: BTreeSet<usize> = self
            .query
            .projection
            .items
            .iter()
            .filter_map(|item| match item {
                ProjectionItem::Field { field, .. } => Some(*field),
                ProjectionItem::Parent { .. } => None,
            })
            .collect();
        let mut filter = BTreeSet::new();
        if let Some(condition) = &self.query.filter {
            where_fields(condition, &mut filter);
        }
        let touches = |set: &BTreeSet<usize>| changed.iter().any(|f| set.contains(f));
        match self.notify_for {
            NotifyFor::All => true,
            NotifyFor::Referenced => touches(&select) || touches(&filter),
            NotifyFor::Select => touches(&select),
            NotifyFor::Where => touches(&filter),
        }
    }

    /// The `data` of this topic's message for a change, or None when the topic does not
    /// report it.
    pub fn event_data(&self, org: &Org, event: &ChangeEvent) -> Option<Json> {
        if event.record.object != self.query.object || event.commit_timestamp < self.created {
            return None;
        }
        let enabled = match event.change_type {
            ChangeType::Create => self.create,
            ChangeType::Update => self.update && self.counts_update(&event.changed),
            ChangeType::Delete => self.delete,
            ChangeType::Undelete => self.undelete,
        };
        if !enabled {
            return None;
        }
        let record = Record {
            values: event.values.to_vec().into_boxed_slice(),
            deleted_at: None,
        };
        if let Some(condition) = &self.query.filter
            && !exec::matches(org, &record, condition)
        {
            return None;
        }
        let schema = org.schema();
        let mut sobject = Map::new();
        if event.change_type == ChangeType::Delete {
            sobject.insert("Id".to_owned(), json!(event.record.id18(schema)));
        } else {
            for item in &self.query.projection.items {
                if let ProjectionItem::Field { name, field } = item {
                    let value = record.values.get(*field).unwrap_or(&Value::Null);
                    sobject.insert(name.clone(), value_json(schema, value));
                }
            }
        }
        Some(json!({
            "event": {
                "createdDate": datetime::format_datetime_z(event.commit_timestamp),
                "replayId": event.replay_id,
                "type": event.change_type.push_topic_name(),
            },
            "sobject": sobject,
        }))
    }
}

/// `POST /sobjects/PushTopic`: checks the query, creates the record, starts watching.
pub fn create(ctx: &RequestContext, name: &str) -> ApiResult {
    let body = ctx.json_object()?;
    validate_body(ctx.shared.org().schema(), &body)?;
    let response = sobjects::create(ctx, name)?;
    resync_watches(&mut ctx.shared.org_mut());
    Ok(response)
}

/// `GET|PATCH|DELETE /sobjects/PushTopic/{id}`: an update's query is checked; watches
/// follow the change.
pub fn by_id(ctx: &RequestContext, name: &str, id: &str) -> ApiResult {
    let writes = ctx.method == Method::PATCH || ctx.method == Method::DELETE;
    if ctx.method == Method::PATCH {
        let body = ctx.json_object()?;
        validate_body(ctx.shared.org().schema(), &body)?;
    }
    let response = sobjects::by_id(ctx, name, id);
    if writes {
        resync_watches(&mut ctx.shared.org_mut());
    }
    response
}
