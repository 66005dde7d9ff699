//! Execution: which records a bound query returns, in which order.
//!
//! Planning is deliberately small but covers what sync tools send: an `Id` or `Id IN (…)`
//! filter reads records directly, an external-id equality reads the key index, and a
//! `SystemModstamp` range walks the stamp index (already in `SystemModstamp, Id` order, so
//! the usual `ORDER BY SystemModstamp, Id` needs no sort). Anything else scans the table.
//! The result is the list of record numbers; pages are rendered from it later.

use std::cmp::Ordering;

use super::bind::{BoundQuery, Condition, OrderKey, Path, like_matches};
use crate::org::{Org, Record, RecordRef, Value};
use crate::soql::CompareOp;

/// Runs a query; `include_deleted` is true for queryAll.
pub fn execute(org: &Org, query: &BoundQuery, include_deleted: bool) -> Vec<u64> {
    let schema = org.schema();
    let object = schema.object(query.object);
    let table = org.table(query.object);
    let conjuncts: Vec<&Condition> = match &query.filter {
        Some(Condition::And(items)) => items.iter().collect(),
        Some(other) => vec![other],
        None => Vec::new(),
    };
    let direct_path = |path: &Path| path.hops.is_empty();

    let mut presorted_by_stamp = false;
    let candidates: Box<dyn Iterator<Item = u64> + '_> = if let Some(ids) =
        conjuncts.iter().find_map(|c| match c {
            Condition::Compare {
                path,
                op: CompareOp::Eq,
                value,
            } if direct_path(path) && path.field == object.system.id => Some(vec![value.clone()]),
            Condition::In {
                path,
                negated: false,
                values,
            } if direct_path(path) && path.field == object.system.id => Some(values.clone()),
            _ => None,
        }) {
        let mut seqs: Vec<u64> = ids
            .iter()
            .filter_map(|v| match v {
                Value::Ref(RecordRef { object, seq }) if *object == query.object => Some(*seq),
                _ => None,
            })
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        Box::new(seqs.into_iter())
    } else if let Some(seqs) = (!include_deleted)
        .then(|| {
            conjuncts.iter().find_map(|c| match c {
                Condition::Compare {
                    path,
                    op: CompareOp::Eq,
                    value,
                } if direct_path(path) && table.has_key_index(path.field) => value
                    .to_text(schema)
                    .map(|text| table.lookup_key(path.field, &text).to_vec()),
                _ => None,
            })
        })
        .flatten()
    {
        let mut seqs = seqs;
        seqs.sort_unstable();
        Box::new(seqs.into_iter())
    } else if let Some((from, to)) = stamp_range(&conjuncts, object.system.system_modstamp) {
        presorted_by_stamp = true;
        Box::new(table.by_modstamp(from, to).map(|(_, seq)| seq))
    } else {
        Box::new(table.iter().map(|(seq, _)| seq))
    };

    let mut rows: Vec<u64> = candidates
        .filter(|seq| {
            let Some(record) = table.get(*seq) else {
                return false;
            };
            (include_deleted || !record.is_deleted())
                && query
                    .filter
                    .as_ref()
                    .is_none_or(|c| matches(org, record, c))
        })
        .collect();

    let already_ordered = query.order.is_empty()
        || is_index_order(
            &query.order,
            object.system.system_modstamp,
            object.system.id,
            presorted_by_stamp,
        );
    if !already_ordered {
        sort_rows(org, query, &mut rows);
    }
    let offset = usize::try_from(query.offset.unwrap_or(0)).unwrap_or(usize::MAX);
    if offset > 0 {
        rows.drain(..offset.min(rows.len()));
    }
    if let Some(limit) = query.limit {
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    rows
}

/// Whether ORDER BY asks for the order candidates already come in.
fn is_index_order(order: &[OrderKey], stamp_field: usize, id_field: usize, by_stamp: bool) -> bool {
    let ascending = |k: &OrderKey, field: usize| {
        k.path.hops.is_empty() && k.path.field == field && !k.descending
    };
    match order {
        [only] if by_stamp => ascending(only, stamp_field),
        [first, second] if by_stamp => ascending(first, stamp_field) && ascending(second, id_field),
        [only] => ascending(only, id_field),
        _ => false,
    }
}

/// The inclusive `SystemModstamp` range the top-level conditions allow, if they bound it.
fn stamp_range(conjuncts: &[&Condition], stamp_field: usize) -> Option<(i64, i64)> {
    let mut range: Option<(i64, i64)> = None;
    for condition in conjuncts {
        let Condition::Compare {
            path,
            op,
            value: Value::DateTime(ms),
        } = condition
        else {
            continue;
        };
        if !path.hops.is_empty() || path.field != stamp_field {
            continue;
        }
        let (lo, hi) = range.unwrap_or((i64::MIN, i64::MAX));
        range = Some(match op {
            CompareOp::Ge => (lo.max(*ms), hi),
            CompareOp::Gt => (lo.max(ms.saturating_add(1)), hi),
            CompareOp::Le => (lo, hi.min(*ms)),
            CompareOp::Lt => (lo, hi.min(ms.saturating_sub(1))),
            CompareOp::Eq => (lo.max(*ms), hi.min(*ms)),
            CompareOp::Ne => (lo, hi),
        });
    }
    range
}

/// Reads a path's value on a record, following parent references.
pub fn read_path<'a>(org: &'a Org, record: &'a Record, path: &Path) -> Option<&'a Value> {
    let mut current = record;
    for (_, reference) in &path.hops {
        let Value::Ref(parent) = &current.values[*reference] else {
            return None;
        };
        current = org.get(*parent)?;
    }
    current.values.get(path.field)
}

/// Whether a record satisfies a condition (parent paths read the org's current records).
pub fn matches(org: &Org, record: &Record, condition: &Condition) -> bool {
    match condition {
        Condition::And(items) => items.iter().all(|c| matches(org, record, c)),
        Condition::Or(items) => items.iter().any(|c| matches(org, record, c)),
        Condition::Not(inner) => !matches(org, record, inner),
        Condition::Compare { path, op, value } => {
            let actual = read_path(org, record, path).unwrap_or(&Value::Null);
            compare(actual, *op, value)
        }
        Condition::In {
            path,
            negated,
            values,
        } => {
            let actual = read_path(org, record, path).unwrap_or(&Value::Null);
            let found = values.iter().any(|v| compare(actual, CompareOp::Eq, v));
            found != *negated
        }
        Condition::Like { path, pattern } => match read_path(org, record, path) {
            Some(Value::Text(text)) => like_matches(pattern, text),
            _ => false,
        },
    }
}

fn compare(actual: &Value, op: CompareOp, expected: &Value) -> bool {
    match (actual.is_null(), expected.is_null()) {
        (true, true) => return matches!(op, CompareOp::Eq | CompareOp::Le | CompareOp::Ge),
        (true, false) | (false, true) => return op == CompareOp::Ne,
        (false, false) => {}
    }
    let Some(ordering) = actual.compare(expected) else {
        return op == CompareOp::Ne;
    };
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
    }
}

fn sort_rows(org: &Org, query: &BoundQuery, rows: &mut [u64]) {
    let table = org.table(query.object);
    let key_of = |seq: u64| -> Vec<Value> {
        let Some(record) = table.get(seq) else {
            return Vec::new();
        };
        query
            .order
            .iter()
            .map(|k| {
                read_path(org, record, &k.path)
                    .cloned()
                    .unwrap_or(Value::Null)
            })
            .collect()
    };
    let mut keyed: Vec<(Vec<Value>, u64)> = rows.iter().map(|seq| (key_of(*seq), *seq)).collect();
    keyed.sort_by(|(a, sa), (b, sb)| {
        for ((x, y), key) in a.iter().zip(b).zip(&query.order) {
            let ordering = match (x.is_null(), y.is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) => {
                    if key.nulls_last {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                (false, true) => {
                    if key.nulls_last {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (false, false) => {
                    let o = x.compare(y).unwrap_or(Ordering::Equal);
                    if key.descending { o.reverse() } else { o }
                }
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        sa.cmp(sb)
    });
    for (slot, (_, seq)) in rows.iter_mut().zip(keyed) {
        *slot = seq;
    }
}
