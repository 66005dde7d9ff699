//! Which mapped tables depend on which: children naming a parent by its external id.

use pgforce_store::trigger_log::claim::ParentLink;

use crate::mapping::Mapping;

/// The parent links among the mapped tables (parents mapped with a matching upsert field):
/// a child table's column that names a parent row by the parent's upsert field makes the
/// child's insert depend on the parent's.
pub(crate) fn parent_links(mappings: &[Mapping]) -> Vec<ParentLink> {
    let mut links = Vec::new();
    for child in mappings {
        for reference in &child.references {
            let parent = mappings
                .iter()
                .find(|m| m.object.eq_ignore_ascii_case(&reference.parent_object));
            if let Some(parent) = parent
                && let Some(upsert) = &parent.upsert_column
                && upsert
                    .as_str()
                    .eq_ignore_ascii_case(&reference.external_field)
            {
                links.push(ParentLink {
                    child_table: child.table.as_str().to_owned(),
                    child_column: reference.column.as_str().to_owned(),
                    parent_table: parent.table.as_str().to_owned(),
                    parent_column: upsert.as_str().to_owned(),
                });
            }
        }
    }
    links
}
