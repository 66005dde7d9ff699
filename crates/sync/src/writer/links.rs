//! Which mapped tables depend on which: children naming a parent by its external id.

use crate::mapping::Mapping;

/// A child table's column that names a parent row by the parent's upsert field: the
/// child's insert depends on the parent's.
#[derive(Debug, Clone)]
pub(crate) struct ParentLink {
    /// The child table.
    pub child_table: String,
    /// The child's relationship external-id column.
    pub child_column: String,
    /// The parent table.
    pub parent_table: String,
    /// The parent's upsert column (holding the value the child names).
    pub parent_column: String,
}

/// The parent links among the mapped tables (parents mapped with a matching upsert field).
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
