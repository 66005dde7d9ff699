//! Keys, single-entity reads and writes.
//!
//! Input errors (an unknown property, a value of the wrong JSON type, a write to a view,
//! a change to a synced table's system column) are [`crate::Error::Query`], so the HTTP
//! layer answers 400; anything else is the database's error. A write to a synced table
//! is an ordinary write: run inside [`super::request_transaction`], its row trigger
//! logs it to `_trigger_log` for the writer like any app's write.

use serde_json::Value;
use tokio_postgres::GenericClient;

use super::filter::{Expr, Literal};
use super::json::{self, Binds, Param};
use super::options::parse_select;
use super::{EntitySet, Map, Property, QueryError, RelationKind, filter, quote};
use crate::error::{Context as _, Error, Result};

/// The values of an entity's key properties, as parsed from a key predicate.
#[derive(Debug, Clone, PartialEq)]
pub struct Key(pub(crate) Vec<(String, Value)>);

impl Key {
    /// The key's (property, value) pairs, in key order.
    pub fn values(&self) -> &[(String, Value)] {
        &self.0
    }
}

/// What an update did.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateOutcome {
    /// The row as stored after the update.
    Updated(Map),
    /// No row has that key.
    NotFound,
    /// The row's ETag is not the one `If-Match` named.
    EtagMismatch,
}

/// What a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The row is gone.
    Deleted,
    /// No row has that key.
    NotFound,
    /// The row's ETag is not the one `If-Match` named.
    EtagMismatch,
}

/// Columns pgforce keeps on a synced table; a write body may not set them.
const SYSTEM_COLUMNS: &[&str] = &[
    "sfid",
    "_hc_lastop",
    "_hc_err",
    "systemmodstamp",
    "isdeleted",
];

fn bad_key(predicate: &str, message: impl std::fmt::Display) -> QueryError {
    QueryError::new(
        "InvalidKey",
        Some("key".to_owned()),
        format!("key predicate {predicate:?}: {message}"),
    )
}

/// Parses a key predicate as it follows the entity set in a URL: `('abc')`, `(42)`,
/// `(id=1,code='x')`.
pub fn parse_key(set: &EntitySet, predicate: &str) -> std::result::Result<Key, QueryError> {
    let inner = predicate
        .trim()
        .strip_prefix('(')
        .and_then(|p| p.strip_suffix(')'))
        .ok_or_else(|| bad_key(predicate, "expected (value) or (name=value,…)"))?;
    let parts = split_outside_quotes(inner);
    let mut values = Vec::new();
    if parts.len() == 1 && set.key.len() == 1 && !looks_named(parts.first().map_or("", |s| s)) {
        let name = set.key.first().cloned().unwrap_or_default();
        values.push((name, parts.first().cloned().unwrap_or_default()));
    } else {
        for part in &parts {
            let (name, value) = part.split_once('=').ok_or_else(|| {
                bad_key(predicate, "a composite key names each property: name=value")
            })?;
            values.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let mut key = Vec::new();
    for name in &set.key {
        let Some((_, text)) = values.iter().find(|(n, _)| n == name) else {
            return Err(bad_key(
                predicate,
                format_args!("the key property {name} is missing"),
            ));
        };
        let property = set
            .property(name)
            .ok_or_else(|| bad_key(predicate, format_args!("unknown key property {name}")))?;
        let value = match filter::parse(text) {
            Ok(Expr::Literal { value, .. }) => literal_json(value),
            _ => {
                return Err(bad_key(
                    predicate,
                    format_args!("{text:?} is not a literal"),
                ));
            }
        };
        json::param_of(property, &value)?
            .ok_or_else(|| bad_key(predicate, format_args!("{name} cannot be null")))?;
        key.push((name.clone(), value));
    }
    if let Some((name, _)) = values.iter().find(|(n, _)| !set.key.contains(n)) {
        return Err(bad_key(
            predicate,
            format_args!("{name} is not a key property"),
        ));
    }
    Ok(Key(key))
}

fn looks_named(part: &str) -> bool {
    !part.trim_start().starts_with('\'') && part.contains('=')
}

fn split_outside_quotes(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                if let Some(part) = parts.last_mut() {
                    part.push(c);
                }
            }
            ',' if !quoted => parts.push(String::new()),
            _ => {
                if let Some(part) = parts.last_mut() {
                    part.push(c);
                }
            }
        }
    }
    parts.into_iter().map(|p| p.trim().to_owned()).collect()
}

fn literal_json(value: Literal) -> Value {
    match value {
        Literal::Null => Value::Null,
        Literal::Bool(b) => Value::Bool(b),
        Literal::Int(i) => Value::from(i),
        Literal::Decimal(text)
        | Literal::Double(text)
        | Literal::String(text)
        | Literal::Date(text)
        | Literal::DateTimeOffset(text)
        | Literal::TimeOfDay(text)
        | Literal::Guid(text) => Value::String(text),
    }
}

fn property<'a>(set: &'a EntitySet, name: &str) -> std::result::Result<&'a Property, QueryError> {
    set.property(name).ok_or_else(|| {
        QueryError::new(
            "UnknownProperty",
            Some(name.to_owned()),
            format!("{} has no property {name:?}", set.name),
        )
    })
}

/// `"k1" = $1 and "k2" = $2` for the key.
fn key_condition(set: &EntitySet, key: &Key, binds: &mut Binds) -> Result<String> {
    let mut terms = Vec::new();
    for (name, value) in &key.0 {
        let property = property(set, name).map_err(Error::Query)?;
        let param = json::param_of(property, value)
            .map_err(Error::Query)?
            .unwrap_or(Param::Text(String::new()));
        let placeholder = binds.push(param);
        terms.push(format!(
            "{} = {}",
            quote(name),
            json::param_sql(property, &placeholder)
        ));
    }
    Ok(terms.join(" and "))
}

fn relation(set: &EntitySet) -> String {
    format!("{}.{}", quote(&set.schema), quote(&set.table))
}

/// Every property, then the ETag text when there is one.
fn returning(set: &EntitySet) -> String {
    let mut columns: Vec<String> = set.properties.iter().map(json::select_expr).collect();
    if let Some(etag) = set
        .etag_column
        .as_deref()
        .and_then(|name| set.property(name))
    {
        columns.push(json::text_expr(etag, &quote(&etag.name)));
    }
    columns.join(", ")
}

fn row_map(set: &EntitySet, row: &tokio_postgres::Row, select: &[usize]) -> Result<Map> {
    let mut map = Map::new();
    for index in select {
        if let Some(property) = set.properties.get(*index) {
            map.insert(
                property.name.clone(),
                json::read_value(row, *index, property)?,
            );
        }
    }
    Ok(map)
}

fn row_etag(set: &EntitySet, row: &tokio_postgres::Row) -> Result<Option<String>> {
    if set.etag_column.is_none() {
        return Ok(None);
    }
    let text: Option<String> = row
        .try_get(set.properties.len())
        .context(|| format!("reading the ETag of a row of {}", set.name))?;
    Ok(text.map(|t| format!("W/\"{t}\"")))
}

/// The entity with that key, with the properties `$select` (in `options`, the request's
/// query pairs) names, and its ETag; `None` when no row has the key.
pub async fn read_one(
    client: &impl GenericClient,
    set: &EntitySet,
    key: &Key,
    options: &[(String, String)],
) -> Result<Option<(Map, Option<String>)>> {
    let mut select = None;
    for (name, value) in options {
        match name.to_ascii_lowercase().as_str() {
            "$select" => select = Some(value.as_str()),
            "$format" => {}
            other if other.starts_with('$') => {
                return Err(Error::Query(QueryError::not_supported(
                    name,
                    format!("{name} is not supported when reading one entity"),
                )));
            }
            _ => {}
        }
    }
    let select = parse_select(set, select).map_err(Error::Query)?;
    let mut binds = Binds::default();
    let condition = key_condition(set, key, &mut binds)?;
    let sql = format!(
        "select {} from {} where {condition}",
        returning(set),
        relation(set)
    );
    let Some(row) = client
        .query_opt(&sql, &binds.refs())
        .await
        .context(|| format!("reading one entity of {}", set.name))?
    else {
        return Ok(None);
    };
    Ok(Some((row_map(set, &row, &select)?, row_etag(set, &row)?)))
}

fn writable(set: &EntitySet) -> Result<()> {
    if set.kind == RelationKind::View {
        return Err(Error::Query(QueryError::new(
            "ReadOnly",
            Some(set.name.clone()),
            format!("{} is a view: views are read only", set.name),
        )));
    }
    Ok(())
}

fn synced(set: &EntitySet) -> bool {
    set.property("_hc_lastop").is_some() && set.property("sfid").is_some()
}

/// The body's properties with their parameters, checked.
fn body_params<'a>(set: &'a EntitySet, body: &Map) -> Result<Vec<(&'a Property, Option<Param>)>> {
    let mut params = Vec::new();
    for (name, value) in body {
        if name.starts_with('@') || name.contains("@odata.") {
            // Annotations (`@odata.type`, `x@odata.etag`) are not properties.
            continue;
        }
        let property = property(set, name).map_err(Error::Query)?;
        params.push((
            property,
            json::param_of(property, value).map_err(Error::Query)?,
        ));
    }
    Ok(params)
}

/// Whether the property is one pgforce's sync keeps on a synced table.
fn is_system(set: &EntitySet, property: &Property) -> bool {
    synced(set) && SYSTEM_COLUMNS.contains(&property.name.as_str())
}

fn read_only_property(set: &EntitySet, property: &Property) -> Error {
    Error::Query(QueryError::new(
        "ReadOnlyProperty",
        Some(property.name.clone()),
        format!(
            "property {} of {} is kept by pgforce's sync and cannot be written",
            property.name, set.name
        ),
    ))
}

/// Inserts an entity from its OData JSON body; returns the row as stored.
pub async fn insert(client: &impl GenericClient, set: &EntitySet, body: &Map) -> Result<Map> {
    writable(set)?;
    let mut params = body_params(set, body)?;
    // System columns may come back null (a client sending every field), never set.
    if let Some((property, _)) = params
        .iter()
        .find(|(p, param)| is_system(set, p) && param.is_some())
    {
        return Err(read_only_property(set, property));
    }
    params.retain(|(p, _)| !is_system(set, p));
    for name in &set.key {
        let given = params.iter().any(|(p, _)| &p.name == name);
        let generated = set.property(name).is_some_and(|p| p.has_default);
        if !given && !generated {
            return Err(Error::Query(QueryError::new(
                "MissingKey",
                Some(name.clone()),
                format!(
                    "the key property {name} of {} is missing from the body",
                    set.name
                ),
            )));
        }
    }
    let mut binds = Binds::default();
    let mut columns = Vec::new();
    let mut values = Vec::new();
    for (property, param) in params {
        columns.push(quote(&property.name));
        values.push(match param {
            Some(param) => json::param_sql(property, &binds.push(param)),
            None => "null".to_owned(),
        });
    }
    let sql = if columns.is_empty() {
        format!(
            "insert into {} default values returning {}",
            relation(set),
            returning(set)
        )
    } else {
        format!(
            "insert into {} ({}) values ({}) returning {}",
            relation(set),
            columns.join(", "),
            values.join(", "),
            returning(set)
        )
    };
    let row = client
        .query_one(&sql, &binds.refs())
        .await
        .context(|| format!("inserting into {}", set.name))?;
    let all: Vec<usize> = (0..set.properties.len()).collect();
    row_map(set, &row, &all)
}

/// What the locked row says about a write.
struct Locked {
    /// Whether `If-Match` names the row's ETag (or `*`, or is absent).
    etag_matches: bool,
    /// For each system column the body names: whether its value is the stored one.
    unchanged: Vec<bool>,
}

/// Locks the row, checks `If-Match`, and compares the `system` values with the stored
/// ones: `None` when there is no row.
async fn lock(
    client: &impl GenericClient,
    set: &EntitySet,
    key: &Key,
    if_match: Option<&str>,
    system: &[(&Property, Option<Param>)],
) -> Result<Option<Locked>> {
    let mut binds = Binds::default();
    let condition = key_condition(set, key, &mut binds)?;
    let mut select = vec![match set
        .etag_column
        .as_deref()
        .and_then(|name| set.property(name))
    {
        Some(etag) => json::text_expr(etag, &quote(&etag.name)),
        None => "null::pg_catalog.text".to_owned(),
    }];
    for (property, param) in system {
        let value = match param {
            Some(param) => json::param_sql(property, &binds.push(param.clone())),
            None => "null".to_owned(),
        };
        select.push(format!(
            "({} is not distinct from {value})",
            quote(&property.name)
        ));
    }
    let sql = format!(
        "select {} from {} where {condition} for update",
        select.join(", "),
        relation(set)
    );
    let Some(row) = client
        .query_opt(&sql, &binds.refs())
        .await
        .context(|| format!("locking an entity of {}", set.name))?
    else {
        return Ok(None);
    };
    let current: Option<String> = row
        .try_get(0)
        .context(|| format!("reading the ETag of an entity of {}", set.name))?;
    let current = current.map(|t| format!("W/\"{t}\""));
    let etag_matches = if_match.is_none_or(|if_match| {
        if_match
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || current.as_deref() == Some(tag))
    });
    let mut unchanged = Vec::with_capacity(system.len());
    for index in 0..system.len() {
        unchanged.push(
            row.try_get::<_, bool>(index + 1)
                .context(|| format!("comparing system columns of {}", set.name))?,
        );
    }
    Ok(Some(Locked {
        etag_matches,
        unchanged,
    }))
}

/// Updates the properties the body names (PATCH semantics), honouring `If-Match` (`*`
/// or the row's ETag). Key properties may appear in the body only with the key's values.
pub async fn update(
    client: &impl GenericClient,
    set: &EntitySet,
    key: &Key,
    body: &Map,
    if_match: Option<&str>,
) -> Result<UpdateOutcome> {
    writable(set)?;
    let params = body_params(set, body)?;
    for (property, _) in &params {
        if let Some((_, value)) = key.0.iter().find(|(name, _)| name == &property.name) {
            // Compared as the parameters they become: `1.5` and `"1.5"` are one Decimal.
            let same = body.get(&property.name).is_some_and(|given| {
                json::param_of(property, given).ok() == json::param_of(property, value).ok()
            });
            if !same {
                return Err(Error::Query(QueryError::new(
                    "KeyChange",
                    Some(property.name.clone()),
                    format!("the key property {} cannot change", property.name),
                )));
            }
        }
    }
    // System columns may come back unchanged (a client sending every field), never changed.
    let system: Vec<(&Property, Option<Param>)> = params
        .iter()
        .filter(|(p, _)| is_system(set, p))
        .cloned()
        .collect();
    let Some(locked) = lock(client, set, key, if_match, &system).await? else {
        return Ok(UpdateOutcome::NotFound);
    };
    if !locked.etag_matches {
        return Ok(UpdateOutcome::EtagMismatch);
    }
    if let Some(((property, _), _)) = system
        .iter()
        .zip(&locked.unchanged)
        .find(|(_, same)| !**same)
    {
        return Err(read_only_property(set, property));
    }
    let mut binds = Binds::default();
    let mut assignments = Vec::new();
    for (property, param) in params {
        if set.key.contains(&property.name) || is_system(set, property) {
            continue;
        }
        let value = match param {
            Some(param) => json::param_sql(property, &binds.push(param)),
            None => "null".to_owned(),
        };
        assignments.push(format!("{} = {value}", quote(&property.name)));
    }
    let condition = key_condition(set, key, &mut binds)?;
    let sql = if assignments.is_empty() {
        format!(
            "select {} from {} where {condition}",
            returning(set),
            relation(set)
        )
    } else {
        format!(
            "update {} set {} where {condition} returning {}",
            relation(set),
            assignments.join(", "),
            returning(set)
        )
    };
    let Some(row) = client
        .query_opt(&sql, &binds.refs())
        .await
        .context(|| format!("updating an entity of {}", set.name))?
    else {
        return Ok(UpdateOutcome::NotFound);
    };
    let all: Vec<usize> = (0..set.properties.len()).collect();
    Ok(UpdateOutcome::Updated(row_map(set, &row, &all)?))
}

/// Deletes the entity with that key, honouring `If-Match` (`*` or the row's ETag).
pub async fn delete(
    client: &impl GenericClient,
    set: &EntitySet,
    key: &Key,
    if_match: Option<&str>,
) -> Result<DeleteOutcome> {
    writable(set)?;
    let Some(locked) = lock(client, set, key, if_match, &[]).await? else {
        return Ok(DeleteOutcome::NotFound);
    };
    if !locked.etag_matches {
        return Ok(DeleteOutcome::EtagMismatch);
    }
    let mut binds = Binds::default();
    let condition = key_condition(set, key, &mut binds)?;
    let sql = format!("delete from {} where {condition}", relation(set));
    let deleted = client
        .execute(&sql, &binds.refs())
        .await
        .context(|| format!("deleting an entity of {}", set.name))?;
    Ok(if deleted == 0 {
        DeleteOutcome::NotFound
    } else {
        DeleteOutcome::Deleted
    })
}

/// The ETag (`W/"…"`) of a row as [`insert`], [`update`] and [`read_one`] return it,
/// when the entity set has an ETag column and the row holds it.
pub fn etag_of(set: &EntitySet, row: &Map) -> Option<String> {
    json::etag(row.get(set.etag_column.as_deref()?)?)
}
