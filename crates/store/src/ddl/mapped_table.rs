//! One mapped table: Heroku Connect's layout, indexes and triggers.
//!
//! Layout (reference §2.2–§2.5): `id serial` primary key, `sfid varchar(18)` with the
//! binary `ucs_basic` collation and unique index `hcu_idx_<t>_sfid`, `systemmodstamp`
//! with index `hc_idx_<t>_systemmodstamp`, `isdeleted`, `_hc_lastop varchar(32)`,
//! `_hc_err text`, one column per mapped field, an index on the upsert field (unique
//! `hcu_idx_<t>_<field>` when Salesforce holds the field unique, else `hc_idx_<t>_<field>`),
//! and the status and logger triggers. Creating a table that exists adds the
//! columns it lacks, which is how adding fields to a mapping alters the table.

use std::fmt;

use tokio_postgres::Client;

use super::{SERIAL_DDL, render};
use crate::error::{Context as _, Result};
use crate::ident::{Ident, literal};
use crate::states::{Access, LogState};

const TABLE_TRIGGERS_SQL: &str = include_str!("../../sql/table_triggers.sql");

/// Columns every mapped table has, added by pgforce whatever the mapping says.
const SYSTEM_COLUMNS: [&str; 6] = [
    "id",
    "sfid",
    "systemmodstamp",
    "isdeleted",
    "_hc_lastop",
    "_hc_err",
];

/// A column type pgforce creates (Salesforce types map onto these; reference §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    /// `character varying(n)`.
    Varchar(u32),
    /// `text`.
    Text,
    /// `boolean`.
    Boolean,
    /// `integer`.
    Integer,
    /// `double precision`.
    DoublePrecision,
    /// `date`.
    Date,
    /// `timestamp without time zone`, holding UTC.
    Timestamp,
    /// `time without time zone`.
    Time,
}

impl fmt::Display for PgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Varchar(n) => write!(f, "character varying({n})"),
            Self::Text => f.write_str("text"),
            Self::Boolean => f.write_str("boolean"),
            Self::Integer => f.write_str("integer"),
            Self::DoublePrecision => f.write_str("double precision"),
            Self::Date => f.write_str("date"),
            Self::Timestamp => f.write_str("timestamp without time zone"),
            Self::Time => f.write_str("time without time zone"),
        }
    }
}

impl PgType {
    /// How this type's width compares with `other`'s: `Less` when every value of this type
    /// fits `other` and not the reverse (`varchar(20)` < `varchar(40)` < `text`, `integer`
    /// < `double precision`), `Equal` for the same type, `None` when neither holds the
    /// other's values (`date` and `boolean`, `varchar` and `integer`).
    pub fn width_cmp(self, other: Self) -> Option<std::cmp::Ordering> {
        use std::cmp::Ordering;
        match (self, other) {
            _ if self == other => Some(Ordering::Equal),
            (Self::Varchar(a), Self::Varchar(b)) => Some(a.cmp(&b)),
            (Self::Varchar(_), Self::Text) | (Self::Integer, Self::DoublePrecision) => {
                Some(Ordering::Less)
            }
            (Self::Text, Self::Varchar(_)) | (Self::DoublePrecision, Self::Integer) => {
                Some(Ordering::Greater)
            }
            _ => None,
        }
    }

    /// The type of a column as `information_schema.columns` describes it (`data_type`,
    /// `character_maximum_length`), when it is one pgforce creates.
    pub fn from_catalog(data_type: &str, max_length: Option<i32>) -> Option<Self> {
        Some(match data_type {
            "character varying" => Self::Varchar(u32::try_from(max_length?).ok()?),
            "text" => Self::Text,
            "boolean" => Self::Boolean,
            "integer" => Self::Integer,
            "double precision" => Self::DoublePrecision,
            "date" => Self::Date,
            "timestamp without time zone" => Self::Timestamp,
            "time without time zone" => Self::Time,
            _ => return None,
        })
    }
}

/// A mapped column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    /// The lower-cased field name.
    pub name: Ident,
    /// Its type.
    pub pg_type: PgType,
}

/// Everything needed to create a mapped table.
#[derive(Debug, Clone)]
pub struct MappedTable {
    /// The connection's schema.
    pub schema: Ident,
    /// The lower-cased object name.
    pub table: Ident,
    /// Mapped fields other than the system columns (those are skipped if given).
    pub columns: Vec<ColumnSpec>,
    /// The upsert field's column, indexed.
    pub key_column: Option<KeyColumn>,
    /// Read-only or read-write.
    pub access: Access,
}

/// The upsert field's column and whether Salesforce holds its values unique (the
/// describe's `unique`): a unique External ID gets a unique index, another a plain one, so
/// records that share a value all load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    /// The column.
    pub name: Ident,
    /// Whether Salesforce holds its values unique.
    pub unique: bool,
}

/// What [`create_mapped_table`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableChange {
    /// The table did not exist and was created.
    Created,
    /// The table existed; these mapped columns were added to it (empty when none).
    Altered(Vec<Ident>),
}

/// The upsert field's index as the describe says: unique (`hcu_idx_<table>_<column>`) or
/// plain (`hc_idx_<table>_<column>`). The other kind is dropped, so a table made when the
/// field was the other kind follows (a unique index on values Salesforce lets repeat would
/// refuse the first duplicate and stop the reader).
fn key_index_sql(schema: &Ident, table: &Ident, key: &KeyColumn) -> Result<String> {
    let (t, column) = (table.as_str(), &key.name);
    let unique = Ident::derived(&["hcu_idx_", t, "_", column.as_str()])?;
    let plain = Ident::derived(&["hc_idx_", t, "_", column.as_str()])?;
    Ok(if key.unique {
        format!(
            "drop index if exists {schema}.{plain};\n\
             create unique index if not exists {unique} on {schema}.{table} ({column});\n"
        )
    } else {
        format!(
            "drop index if exists {schema}.{unique};\n\
             create index if not exists {plain} on {schema}.{table} ({column});\n"
        )
    })
}

/// Creates the table, its indexes and triggers, or adds the columns an existing one
/// lacks. Runs in one transaction.
pub async fn create_mapped_table(client: &mut Client, spec: &MappedTable) -> Result<TableChange> {
    let (schema, table) = (&spec.schema, &spec.table);
    let t = table.as_str();
    let columns: Vec<&ColumnSpec> = spec
        .columns
        .iter()
        .filter(|c| !SYSTEM_COLUMNS.contains(&c.name.as_str()))
        .collect();
    let mut sql = format!(
        "create table if not exists {schema}.{table} (\n\
         id serial primary key,\n\
         sfid character varying(18) collate \"ucs_basic\",\n\
         systemmodstamp timestamp without time zone,\n\
         isdeleted boolean,\n\
         _hc_lastop character varying(32),\n\
         _hc_err text);\n"
    );
    for column in &columns {
        sql.push_str(&format!(
            "alter table {schema}.{table} add column if not exists {} {};\n",
            column.name, column.pg_type
        ));
    }
    let sfid_index = Ident::derived(&["hcu_idx_", t, "_sfid"])?;
    let stamp_index = Ident::derived(&["hc_idx_", t, "_systemmodstamp"])?;
    sql.push_str(&format!(
        "create unique index if not exists {sfid_index} on {schema}.{table} (sfid);\n"
    ));
    sql.push_str(&format!(
        "create index if not exists {stamp_index} on {schema}.{table} (systemmodstamp);\n"
    ));
    if let Some(key) = &spec.key_column {
        sql.push_str(&key_index_sql(schema, table, key)?);
    }
    let read_write = spec.access == Access::ReadWrite;
    sql.push_str(&render(
        TABLE_TRIGGERS_SQL,
        &[
            ("schema", schema.to_string()),
            ("table", table.to_string()),
            (
                "status_fn",
                Ident::derived(&["hc_", t, "_status"])?.to_string(),
            ),
            (
                "logger_fn",
                Ident::derived(&["hc_", t, "_logger"])?.to_string(),
            ),
            (
                "status_trigger",
                Ident::derived(&["hc_", t, "_status_trigger"])?.to_string(),
            ),
            (
                "log_trigger",
                Ident::derived(&["hc_", t, "_logtrigger"])?.to_string(),
            ),
            ("log_table", literal(&format!("{schema}._trigger_log"))),
            (
                "initial_state",
                literal(if read_write {
                    LogState::New.as_str()
                } else {
                    LogState::Readonly.as_str()
                }),
            ),
            ("read_write", read_write.to_string()),
        ],
    ));
    let tx = client
        .transaction()
        .await
        .context(|| format!("starting to create table {schema}.{table}"))?;
    tx.batch_execute(SERIAL_DDL)
        .await
        .context(|| format!("waiting for other schema changes before {schema}.{table}"))?;
    let existing: Vec<String> = tx
        .query(
            "select column_name::text from information_schema.columns where table_schema = $1 and table_name = $2",
            &[&schema.as_str(), &table.as_str()],
        )
        .await
        .context(|| format!("reading the columns of {schema}.{table}"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    tx.batch_execute(&sql)
        .await
        .context(|| format!("creating mapped table {schema}.{table}"))?;
    tx.commit()
        .await
        .context(|| format!("committing table {schema}.{table}"))?;
    Ok(if existing.is_empty() {
        TableChange::Created
    } else {
        let added = columns
            .iter()
            .filter(|c| !existing.iter().any(|e| e == c.name.as_str()));
        TableChange::Altered(added.map(|c| c.name.clone()).collect())
    })
}

/// Stops capturing a table's changes (its mapping was removed): drops the status and
/// logger triggers, keeps the table and its rows. Idempotent.
pub async fn detach_mapped_table(client: &Client, schema: &Ident, table: &Ident) -> Result<()> {
    let t = table.as_str();
    let status_trigger = Ident::derived(&["hc_", t, "_status_trigger"])?;
    let log_trigger = Ident::derived(&["hc_", t, "_logtrigger"])?;
    client
        .batch_execute(&format!(
            "{SERIAL_DDL}drop trigger if exists {status_trigger} on {schema}.{table};
             drop trigger if exists {log_trigger} on {schema}.{table};"
        ))
        .await
        .context(|| format!("removing the capture triggers of {schema}.{table}"))
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use super::*;

    #[test]
    fn widths_order_only_types_whose_values_fit_each_other() {
        let cases = [
            (
                PgType::Varchar(20),
                PgType::Varchar(40),
                Some(Ordering::Less),
            ),
            (
                PgType::Varchar(40),
                PgType::Varchar(20),
                Some(Ordering::Greater),
            ),
            (
                PgType::Varchar(20),
                PgType::Varchar(20),
                Some(Ordering::Equal),
            ),
            (PgType::Varchar(4000), PgType::Text, Some(Ordering::Less)),
            (PgType::Text, PgType::Varchar(255), Some(Ordering::Greater)),
            (
                PgType::Integer,
                PgType::DoublePrecision,
                Some(Ordering::Less),
            ),
            (
                PgType::DoublePrecision,
                PgType::Integer,
                Some(Ordering::Greater),
            ),
            (PgType::Varchar(18), PgType::Integer, None),
            (PgType::Date, PgType::Timestamp, None),
            (PgType::Boolean, PgType::Text, None),
        ];
        for (from, to, expected) in cases {
            assert_eq!(from.width_cmp(to), expected, "{from} vs {to}");
        }
    }

    #[test]
    fn catalog_types_read_back_as_the_types_pgforce_creates() {
        for pg_type in [
            PgType::Varchar(80),
            PgType::Text,
            PgType::Boolean,
            PgType::Integer,
            PgType::DoublePrecision,
            PgType::Date,
            PgType::Timestamp,
            PgType::Time,
        ] {
            let text = pg_type.to_string();
            let (data_type, length) = match pg_type {
                PgType::Varchar(n) => ("character varying", Some(n as i32)),
                _ => (text.as_str(), None),
            };
            assert_eq!(PgType::from_catalog(data_type, length), Some(pg_type));
        }
        assert_eq!(PgType::from_catalog("numeric", None), None);
        assert_eq!(PgType::from_catalog("character varying", None), None);
    }
}
