//! DDL for what pgforce creates in a connection's schema, laid out as Heroku Connect lays
//! it out so that apps and custom triggers written for Heroku Connect work unchanged.
//!
//! Tables follow their objects' schema as it changes: columns Salesforce widened are
//! widened in place (`columns`); nothing is ever narrowed.
//!
//! Statement bodies live in `sql/*.sql` with `{placeholders}`; only [`crate::Ident`]
//! renderings and [`crate::ident::literal`]s are substituted into them.
//!
//! `create … if not exists` is not safe against itself: two `pgforce run` processes
//! starting together on a fresh database both find the extension or table missing and one
//! fails on the other's catalog row. Every DDL batch here therefore starts by taking
//! [`SERIAL_DDL`], so they run one after the other.

mod columns;
mod connection_schema;
mod mapped_table;

pub use columns::{ExistingColumn, table_columns, widen_columns};
pub use connection_schema::{ensure_connection_schema, relations_in, trigger_log_channel};
pub use mapped_table::{
    ColumnSpec, KeyColumn, MappedTable, PgType, TableChange, create_mapped_table,
    detach_mapped_table,
};

/// The first statement of every DDL transaction: a transaction-scoped advisory lock
/// ("pgf-ddl" in ASCII) that serialises pgforce's schema changes.
pub(crate) const SERIAL_DDL: &str = "select pg_advisory_xact_lock(31638885937472620);\n";

/// Fills `{name}` placeholders of a SQL template.
fn render(template: &str, values: &[(&str, String)]) -> String {
    values
        .iter()
        .fold(template.to_owned(), |sql, (name, value)| {
            sql.replace(&format!("{{{name}}}"), value)
        })
}
