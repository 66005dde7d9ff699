//! Reads and writes of mapped tables: storing records read from Salesforce ([`apply`],
//! [`load`]), reading rows the writer and reconcile need ([`rows`]), what reconcile's
//! repair reads and writes beside a running daemon ([`repair`]), and touching a table as
//! an app would, for the demo ([`probe`]).
//!
//! Every write here is one of pgforce's own (see [`crate::own_write`]): the capture
//! triggers skip it and the table's sync lock orders it against the writer.

pub mod apply;
pub mod load;
pub mod probe;
pub mod repair;
pub mod rows;

use crate::Ident;
use crate::ddl::ColumnSpec;
use crate::error::{Error, Result};

/// Where a mapping's records go and in what shape: the columns in the order values come
/// in, `sfid` first.
#[derive(Debug, Clone)]
pub struct RowShape {
    schema: Ident,
    table: Ident,
    columns: Vec<ColumnSpec>,
    upsert_column: Option<Ident>,
}

impl RowShape {
    /// A shape whose first column must be `sfid`.
    pub fn new(
        schema: Ident,
        table: Ident,
        columns: Vec<ColumnSpec>,
        upsert_column: Option<Ident>,
    ) -> Result<Self> {
        if columns.first().map(|c| c.name.as_str()) != Some("sfid") {
            return Err(Error::Catalog {
                what: format!("the columns of {schema}.{table} must start with sfid"),
            });
        }
        Ok(Self {
            schema,
            table,
            columns,
            upsert_column,
        })
    }

    /// The connection's schema.
    pub fn schema(&self) -> &Ident {
        &self.schema
    }

    /// The table.
    pub fn table(&self) -> &Ident {
        &self.table
    }
}
