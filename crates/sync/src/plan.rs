//! Planning writes to Salesforce from captured changes (pure).
//!
//! The writer claims trigger-log entries in id order and asks this module how to send
//! them. Two algorithms, as Heroku Connect names them (reference §7.2):
//! - **Ordered**: every change sent on its own, each record's in capture order, up to 200
//!   per call (sObject Collections' limit). [`grouped`] lets inserts and updates of one
//!   table join an earlier call of their kind when they pass only other records' changes
//!   of that table; [`ordered`] keeps strict capture order (a queue that blocks behind a
//!   refused insert, a bulk job's leftovers).
//! - **Merged**: the changes of each record collapse to their net effect — an insert and
//!   its later updates become one insert with the latest values, updates become one update
//!   of every changed column with its latest value, an insert then a delete becomes
//!   nothing — and parents are written before their children.
//!
//! Every entry of the input appears in exactly one place of the plan: in a batch, or as
//! merged into another entry (its log row becomes MERGED), so no captured change is lost.

use std::collections::{BTreeMap, HashMap};

/// The most records one sObject Collections call takes.
pub const MAX_BATCH: usize = 200;

/// A captured change's action (the trigger log's).
pub(crate) use pgforce_store::LogAction as Action;

/// One trigger-log entry, as the writer read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The log row's id.
    pub log_id: i64,
    /// The mapped table.
    pub table: String,
    /// The action.
    pub action: Action,
    /// The mapped row's `id`.
    pub record_id: i64,
    /// The row's Salesforce Id, when it has one.
    pub sfid: Option<String>,
    /// The captured values (column → value; `None` is NULL).
    pub values: BTreeMap<String, Option<String>>,
}

/// Changes sent in one call: one table, one action, at most [`MAX_BATCH`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The table.
    pub table: String,
    /// The action.
    pub action: Action,
    /// The changes, in the order they are sent.
    pub changes: Vec<Change>,
    /// For each change, the log ids merged into it (their rows become MERGED).
    pub merged_log_ids: Vec<Vec<i64>>,
}

/// What to send, in order, and which log rows need no call of their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Calls to make, in order.
    pub batches: Vec<Batch>,
    /// Log rows whose changes cancelled out (an insert later deleted): MERGED, nothing sent.
    pub cancelled_log_ids: Vec<i64>,
}

/// Adds a change to the last batch when it fits: same table and action, room left, and
/// not a second change of a record already in it (one call cannot carry two changes of
/// one record, and the second must see the first applied).
fn push_batched(batches: &mut Vec<Batch>, change: Change, merged: Vec<i64>) {
    match batches.last_mut() {
        Some(last)
            if last.table == change.table
                && last.action == change.action
                && last.changes.len() < MAX_BATCH
                && !last.changes.iter().any(|c| c.record_id == change.record_id) =>
        {
            last.changes.push(change);
            last.merged_log_ids.push(merged);
        }
        _ => batches.push(Batch {
            table: change.table.clone(),
            action: change.action,
            changes: vec![change],
            merged_log_ids: vec![merged],
        }),
    }
}

/// The ordered plan in strict capture order: only runs of one table and action batched.
pub fn ordered(changes: Vec<Change>) -> Plan {
    let mut plan = Plan::default();
    for change in changes {
        push_batched(&mut plan.batches, change, Vec::new());
    }
    plan
}

/// How many batches back a change may travel to join one of its table and action.
const GROUPING_REACH: usize = 64;

/// The ordered plan with the changes of one table grouped: every change is still sent on
/// its own and each record's changes in capture order, but an insert or update joins an
/// earlier batch of its table and action when it passes only changes of other records of
/// that table. It never passes a change of another table (a parent or child may depend on
/// it), a delete (a record deleted then inserted again under the same upsert key must be
/// deleted first), nor a change naming the same upsert value (`upsert_columns`: table →
/// column). An app that inserts a record and edits it twice, record after record, sends
/// three calls per 200 records instead of three per record.
pub fn grouped(changes: Vec<Change>, upsert_columns: &HashMap<String, String>) -> Plan {
    let mut plan = Plan::default();
    for change in changes {
        match joinable(&plan.batches, &change, upsert_columns) {
            Some(index) => {
                let batch = &mut plan.batches[index];
                batch.changes.push(change);
                batch.merged_log_ids.push(Vec::new());
            }
            None => push_batched(&mut plan.batches, change, Vec::new()),
        }
    }
    plan
}

/// The earliest batch `change` may join (see [`grouped`]).
fn joinable(
    batches: &[Batch],
    change: &Change,
    upsert_columns: &HashMap<String, String>,
) -> Option<usize> {
    if change.action == Action::Delete {
        return None;
    }
    let key = |c: &Change| -> Option<String> {
        let column = upsert_columns.get(&c.table)?;
        c.values.get(column).cloned().flatten()
    };
    let own_key = key(change);
    let mut found = None;
    for (index, batch) in batches.iter().enumerate().rev().take(GROUPING_REACH) {
        let blocks = batch.table != change.table
            || batch.action == Action::Delete
            || batch.changes.iter().any(|c| {
                c.record_id == change.record_id || (own_key.is_some() && key(c) == own_key)
            });
        if blocks {
            break;
        }
        if batch.action == change.action && batch.changes.len() < MAX_BATCH {
            found = Some(index);
        }
    }
    found
}

/// A record (table, row id) in one generation: a row id inserted again after its delete
/// is a new one.
type Generation = (String, i64, usize);

/// A generation's net change so far (`None`: cancelled out) and the log ids merged into it.
type NetChange = (Option<Change>, Vec<i64>);

/// The merged plan: each record's changes collapsed, tables ordered parents first by
/// `depth` (0 for tables that reference no other mapped table, larger for their
/// children; tables missing from it count as 0).
pub fn merged(changes: Vec<Change>, depth: &HashMap<String, usize>) -> Plan {
    // Net effect per (table, record, generation), in order of first appearance. A record's
    // generation grows when its row id is inserted again after its delete: the delete (of
    // the old Salesforce record) and the insert (of a new one) are two changes, in order.
    let mut order: Vec<Generation> = Vec::new();
    let mut generations: HashMap<(String, i64), usize> = HashMap::new();
    let mut net: HashMap<Generation, NetChange> = HashMap::new();
    let mut cancelled = Vec::new();
    for change in changes {
        let record = (change.table.clone(), change.record_id);
        let generation = generations.entry(record.clone()).or_default();
        let key = (record.0.clone(), record.1, *generation);
        let reinserted = change.action == Action::Insert
            && net.get(&key).is_some_and(|(current, _)| current.is_some());
        let key = if reinserted {
            *generation += 1;
            (record.0, record.1, *generation)
        } else {
            key
        };
        let entry = net.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            (None, Vec::new())
        });
        let (current, merged) = entry;
        *current = match (current.take(), change) {
            (None, change) => Some(change),
            (Some(mut first), next) => match (first.action, next.action) {
                // Later values win; the first entry carries the net change.
                (Action::Insert | Action::Update, Action::Update) => {
                    merged.push(next.log_id);
                    first.values.extend(next.values);
                    if first.sfid.is_none() {
                        first.sfid = next.sfid;
                    }
                    Some(first)
                }
                // Inserted then deleted before reaching Salesforce: nothing to send.
                (Action::Insert, Action::Delete) if first.sfid.is_none() => {
                    cancelled.push(first.log_id);
                    cancelled.append(merged);
                    cancelled.push(next.log_id);
                    None
                }
                // A row cannot change after its delete; keep the delete.
                (Action::Delete, Action::Update) => {
                    merged.push(next.log_id);
                    Some(first)
                }
                // Anything followed by a delete is the delete.
                (_, Action::Delete) => {
                    merged.push(first.log_id);
                    Some(next)
                }
                // An insert never meets an earlier change of its generation (a row id
                // inserted again starts a new one above); should it, the later one wins.
                (_, Action::Insert) => {
                    merged.push(first.log_id);
                    Some(next)
                }
            },
        };
    }
    let mut collapsed: Vec<(usize, usize, usize, Change, Vec<i64>)> = Vec::new();
    for (position, key) in order.iter().enumerate() {
        if let Some((Some(change), merged)) = net.remove(key) {
            let level = depth.get(&change.table).copied().unwrap_or(0);
            collapsed.push((level, key.2, position, change, merged));
        }
    }
    // Parents first; within a level and generation, inserts before updates before
    // deletes, then first appearance, so batches stay large.
    collapsed.sort_by(|a, b| {
        (a.0, &a.3.table, a.1, a.3.action, a.2).cmp(&(b.0, &b.3.table, b.1, b.3.action, b.2))
    });
    let mut plan = Plan {
        batches: Vec::new(),
        cancelled_log_ids: cancelled,
    };
    for (_, _, _, change, merged) in collapsed {
        push_batched(&mut plan.batches, change, merged);
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(
        log_id: i64,
        table: &str,
        action: Action,
        record_id: i64,
        values: &[(&str, &str)],
    ) -> Change {
        Change {
            log_id,
            table: table.to_owned(),
            action,
            record_id,
            sfid: None,
            values: values
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
                .collect(),
        }
    }

    fn shape(plan: &Plan) -> Vec<(String, Action, Vec<i64>)> {
        plan.batches
            .iter()
            .map(|b| {
                (
                    b.table.clone(),
                    b.action,
                    b.changes.iter().map(|c| c.log_id).collect(),
                )
            })
            .collect()
    }

    /// Every log id of the input is sent, merged or cancelled exactly once.
    fn accounted(plan: &Plan) -> Vec<i64> {
        let mut ids: Vec<i64> = plan.cancelled_log_ids.clone();
        for batch in &plan.batches {
            ids.extend(batch.changes.iter().map(|c| c.log_id));
            ids.extend(batch.merged_log_ids.iter().flatten());
        }
        ids.sort_unstable();
        ids
    }

    #[test]
    fn ordered_plans_keep_capture_order_and_batch_runs() {
        let changes = vec![
            change(1, "account", Action::Insert, 1, &[]),
            change(2, "account", Action::Insert, 2, &[]),
            change(3, "contact", Action::Insert, 1, &[]),
            change(4, "account", Action::Update, 1, &[]),
            change(5, "account", Action::Update, 2, &[]),
        ];
        let plan = ordered(changes);
        assert_eq!(
            shape(&plan),
            vec![
                ("account".to_owned(), Action::Insert, vec![1, 2]),
                ("contact".to_owned(), Action::Insert, vec![3]),
                ("account".to_owned(), Action::Update, vec![4, 5]),
            ]
        );
    }

    #[test]
    fn a_record_changed_twice_in_a_row_goes_in_two_calls() {
        let changes = vec![
            change(1, "account", Action::Update, 1, &[("name", "a")]),
            change(2, "account", Action::Update, 2, &[("name", "b")]),
            change(3, "account", Action::Update, 1, &[("name", "c")]),
        ];
        assert_eq!(
            shape(&ordered(changes)),
            vec![
                ("account".to_owned(), Action::Update, vec![1, 2]),
                ("account".to_owned(), Action::Update, vec![3]),
            ]
        );
    }

    #[test]
    fn grouped_plans_layer_each_record_s_changes_and_keep_their_order() {
        let mut changes = Vec::new();
        for record in 1..=3 {
            let id = record * 10;
            changes.push(change(id, "account", Action::Insert, record, &[]));
            changes.push(change(id + 1, "account", Action::Update, record, &[]));
            changes.push(change(id + 2, "account", Action::Update, record, &[]));
        }
        assert_eq!(
            shape(&grouped(changes, &HashMap::new())),
            vec![
                ("account".to_owned(), Action::Insert, vec![10, 20, 30]),
                ("account".to_owned(), Action::Update, vec![11, 21, 31]),
                ("account".to_owned(), Action::Update, vec![12, 22, 32]),
            ]
        );
    }

    #[test]
    fn grouped_plans_never_pass_another_table_a_delete_or_the_same_upsert_value() {
        let upserts = HashMap::from([("account".to_owned(), "ext__c".to_owned())]);
        let changes = vec![
            change(1, "account", Action::Insert, 1, &[("ext__c", "X")]),
            change(2, "contact", Action::Insert, 1, &[]),
            // Passing the Contact would send it before its parent's insert.
            change(3, "account", Action::Insert, 2, &[("ext__c", "Y")]),
            change(4, "account", Action::Delete, 2, &[]),
            // Passing the delete could upsert into the record about to be deleted.
            change(5, "account", Action::Insert, 3, &[("ext__c", "Y")]),
            change(6, "account", Action::Update, 4, &[("ext__c", "Z")]),
            // Same upsert value as the update before: after it.
            change(7, "account", Action::Insert, 5, &[("ext__c", "Z")]),
            change(8, "account", Action::Insert, 6, &[("ext__c", "W")]),
        ];
        assert_eq!(
            shape(&grouped(changes, &upserts)),
            vec![
                ("account".to_owned(), Action::Insert, vec![1]),
                ("contact".to_owned(), Action::Insert, vec![2]),
                ("account".to_owned(), Action::Insert, vec![3]),
                ("account".to_owned(), Action::Delete, vec![4]),
                ("account".to_owned(), Action::Insert, vec![5, 8]),
                ("account".to_owned(), Action::Update, vec![6]),
                ("account".to_owned(), Action::Insert, vec![7]),
            ]
        );
    }

    #[test]
    fn batches_hold_at_most_two_hundred_changes() {
        let changes: Vec<Change> = (1..=450)
            .map(|n| change(n, "account", Action::Update, n, &[]))
            .collect();
        let sizes: Vec<usize> = ordered(changes)
            .batches
            .iter()
            .map(|b| b.changes.len())
            .collect();
        assert_eq!(sizes, [200, 200, 50]);
    }

    #[test]
    fn merged_plans_collapse_each_record_to_its_net_effect() {
        let changes = vec![
            change(
                1,
                "account",
                Action::Insert,
                1,
                &[("name", "A"), ("phone", "1")],
            ),
            change(2, "account", Action::Update, 1, &[("name", "B")]),
            change(3, "account", Action::Update, 2, &[("name", "X")]),
            change(4, "account", Action::Update, 2, &[("phone", "9")]),
            change(5, "account", Action::Insert, 3, &[("name", "temp")]),
            change(6, "account", Action::Delete, 3, &[]),
            change(7, "account", Action::Update, 4, &[("name", "gone")]),
            change(8, "account", Action::Delete, 4, &[]),
        ];
        let plan = merged(changes, &HashMap::new());
        assert_eq!(
            shape(&plan),
            vec![
                ("account".to_owned(), Action::Insert, vec![1]),
                ("account".to_owned(), Action::Update, vec![3]),
                ("account".to_owned(), Action::Delete, vec![8]),
            ]
        );
        let insert = &plan.batches[0].changes[0];
        assert_eq!(
            insert.values.get("name").cloned().flatten().as_deref(),
            Some("B"),
            "latest value wins"
        );
        assert_eq!(
            insert.values.get("phone").cloned().flatten().as_deref(),
            Some("1")
        );
        assert_eq!(plan.batches[0].merged_log_ids[0], vec![2]);
        let update = &plan.batches[1].changes[0];
        assert_eq!(
            update.values.len(),
            2,
            "every changed column, latest values"
        );
        assert_eq!(
            plan.cancelled_log_ids,
            vec![5, 6],
            "an insert deleted before it was sent cancels out"
        );
        assert_eq!(
            accounted(&plan),
            (1..=8).collect::<Vec<_>>(),
            "every change is accounted for once"
        );
    }

    #[test]
    fn merged_plans_keep_a_delete_and_a_reinsert_of_one_row_id_as_two_changes_in_order() {
        let mut delete = change(1, "account", Action::Delete, 7, &[]);
        delete.sfid = Some("001OLD".to_owned());
        let plan = merged(
            vec![
                delete,
                change(2, "account", Action::Insert, 7, &[("name", "new")]),
                change(3, "account", Action::Update, 7, &[("name", "newer")]),
                change(4, "account", Action::Insert, 8, &[("name", "other")]),
            ],
            &HashMap::new(),
        );
        assert_eq!(
            shape(&plan),
            [
                ("account".to_owned(), Action::Insert, vec![4]),
                ("account".to_owned(), Action::Delete, vec![1]),
                ("account".to_owned(), Action::Insert, vec![2]),
            ],
            "the old record is deleted before the new one is created"
        );
        let reinsert = &plan.batches[2];
        assert_eq!(reinsert.merged_log_ids, [vec![3]]);
        assert_eq!(
            reinsert.changes[0].values.get("name"),
            Some(&Some("newer".to_owned()))
        );
        assert_eq!(plan.batches[1].changes[0].sfid.as_deref(), Some("001OLD"));
    }

    #[test]
    fn merged_plans_write_parents_before_children() {
        let changes = vec![
            change(1, "contact", Action::Insert, 1, &[]),
            change(2, "account", Action::Insert, 1, &[]),
            change(3, "contact", Action::Insert, 2, &[]),
        ];
        let depth = HashMap::from([("account".to_owned(), 0), ("contact".to_owned(), 1)]);
        let plan = merged(changes, &depth);
        assert_eq!(
            shape(&plan),
            vec![
                ("account".to_owned(), Action::Insert, vec![2]),
                ("contact".to_owned(), Action::Insert, vec![1, 3])
            ]
        );
    }

    #[test]
    fn no_change_is_lost_or_counted_twice_over_random_sequences() {
        // A small linear congruential generator: deterministic, no dependency.
        let mut seed: u64 = 0x5eed;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for _ in 0..300 {
            let mut changes = Vec::new();
            let mut inserted: Vec<(String, i64)> = Vec::new();
            for log_id in 1..=(next(60) as i64 + 1) {
                let table = ["account", "contact"][next(2) as usize].to_owned();
                let action = if inserted.is_empty() || next(3) == 0 {
                    Action::Insert
                } else if next(4) == 0 {
                    Action::Delete
                } else {
                    Action::Update
                };
                let record_id = if action == Action::Insert {
                    let id = log_id;
                    inserted.push((table.clone(), id));
                    id
                } else {
                    let (t, id) = inserted[next(inserted.len() as u64) as usize].clone();
                    changes.push(change(log_id, &t, action, id, &[("name", "x")]));
                    continue;
                };
                changes.push(change(log_id, &table, action, record_id, &[("name", "x")]));
            }
            let all: Vec<i64> = changes.iter().map(|c| c.log_id).collect();
            let depth = HashMap::from([("contact".to_owned(), 1)]);
            assert_eq!(accounted(&merged(changes.clone(), &depth)), all);
            assert_eq!(accounted(&ordered(changes.clone())), all);
            let plan = grouped(changes.clone(), &HashMap::new());
            assert_eq!(accounted(&plan), all);
            // Grouped, every record's changes and every change of another table keep
            // their capture order; deletes pass nothing.
            let sent: Vec<&Change> = plan.batches.iter().flat_map(|b| &b.changes).collect();
            let position = |log_id: i64| sent.iter().position(|c| c.log_id == log_id);
            for (i, first) in changes.iter().enumerate() {
                for later in &changes[i + 1..] {
                    let bound = first.record_id == later.record_id
                        || first.table != later.table
                        || first.action == Action::Delete;
                    if bound {
                        assert!(
                            position(first.log_id) < position(later.log_id),
                            "{} must go before {}",
                            first.log_id,
                            later.log_id
                        );
                    }
                }
            }
        }
    }
}
