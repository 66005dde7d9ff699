//! DDL for what pgforce creates in a connection's schema, laid out as Heroku Connect lays
//! it out so that apps and custom triggers written for Heroku Connect work unchanged.
//!
//! Statement bodies live in `sql/*.sql` with `{placeholders}`; only [`crate::Ident`]
//! renderings and [`crate::ident::literal`]s are substituted into them.

mod connection_schema;
mod mapped_table;

pub use connection_schema::{ensure_connection_schema, trigger_log_channel};
pub use mapped_table::{
    ColumnSpec, MappedTable, PgType, TableChange, create_mapped_table, detach_mapped_table,
};

/// Fills `{name}` placeholders of a SQL template.
fn render(template: &str, values: &[(&str, String)]) -> String {
    values
        .iter()
        .fold(template.to_owned(), |sql, (name, value)| {
            sql.replace(&format!("{{{name}}}"), value)
        })
}
