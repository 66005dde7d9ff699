//! What merged writes add to a pass: refused inserts retried on a later update, parents
//! ordered before children.

use std::collections::{BTreeSet, HashMap};

use pgforce_store::{Ident, Session as Postgres};

use crate::error::{Error, Result};
use crate::mapping::Mapping;
use crate::plan::{Action, Change};

use super::claim;

/// Merged writes retry a refused insert on a later update: an update of a record that has
/// no `sfid` (and no insert in this pass) becomes an insert of the row as it is now.
pub(super) async fn retry_failed_inserts(
    pg: &Postgres,
    schema: &Ident,
    mappings: &HashMap<&str, &Mapping>,
    changes: &mut [Change],
) -> Result<()> {
    let inserted: BTreeSet<(String, i64)> = changes
        .iter()
        .filter(|c| c.action == Action::Insert)
        .map(|c| (c.table.clone(), c.record_id))
        .collect();
    for change in changes.iter_mut() {
        if change.action != Action::Update
            || change.sfid.is_some()
            || inserted.contains(&(change.table.clone(), change.record_id))
        {
            continue;
        }
        let (Some(mapping), Ok(record_id)) = (
            mappings.get(change.table.as_str()),
            i32::try_from(change.record_id),
        ) else {
            continue;
        };
        if let Some(sfid) = claim::current_sfids(pg, schema, mapping, &[record_id])
            .await?
            .remove(&change.record_id)
        {
            change.sfid = Some(sfid);
            continue;
        }
        if let Some(values) = claim::current_values(pg, schema, mapping, record_id).await? {
            let pairs = pgforce_store::hstore::parse(&values)
                .map_err(|e| Error::config(&change.table, format!("row {record_id}: {e}")))?;
            change.action = Action::Insert;
            change.values = pairs.into_iter().collect();
        }
    }
    Ok(())
}

/// Parents before children: a table's depth is one more than the deepest mapped table
/// it references through a relationship external-id column.
pub(super) fn parent_depths(mappings: &[Mapping]) -> HashMap<String, usize> {
    let mut depth: HashMap<String, usize> = mappings
        .iter()
        .map(|m| (m.table.as_str().to_owned(), 0))
        .collect();
    // Relationship names do not say the parent object; a table referencing any other
    // mapped table by external id goes after the tables that reference nothing.
    for mapping in mappings {
        if !mapping.references.is_empty() {
            depth.insert(mapping.table.as_str().to_owned(), 1);
        }
    }
    depth
}
