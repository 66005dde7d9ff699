//! Following the object's schema as administrators change it in Salesforce (schema drift).
//!
//! Key concepts:
//! - **Check.** Describe the object, resolve the mapping's settings against that describe
//!   again, and compare each mapped field's type with its column. The reader checks when
//!   it starts, every `schema_check` (ten minutes by default), after a read that rejected
//!   records, and at once when a read fails on a field (the error policy's
//!   `CheckSchema`).
//! - **Widened fields** (longer text, a picklist made longer or multi-select, a long text
//!   area past 4,000 characters, a whole number made decimal): the column is widened in
//!   place, behind the other schema changes, and the reader goes on with the wider type.
//!   Salesforce numbers with decimals are all `double precision`, so their precision and
//!   scale need nothing.
//! - **Narrowed fields**: the column keeps its width (values stored could be cut); the
//!   reader goes on checking values against the column as it is.
//! - **Gone fields** (deleted, or hidden by field-level security) and fields whose new
//!   type their column cannot hold: the mapping waits in `SCHEMA_CHANGED`, naming them,
//!   until they are back or the mapping no longer maps them.
//!
//! The reader works with the mapping this check returns: the configured mapping with each
//! field's type as its column holds it, so the value check before storing matches what
//! Postgres accepts.

use std::cmp::Ordering;

use pgforce_salesforce::Client as Salesforce;
use pgforce_store::ddl::{ColumnSpec, ExistingColumn, table_columns, widen_columns};
use pgforce_store::{Ident, Session as Postgres};

use crate::error::{Error, Result};
use crate::mapping::{Mapping, MappingSpec};

/// What a schema check found.
#[derive(Debug)]
pub(crate) enum SchemaCheck {
    /// Every mapped field is there and its column holds it.
    Current {
        /// The mapping to read with: each field's type as its column holds it now.
        mapping: Box<Mapping>,
        /// Columns widened by this check, with their new types.
        widened: Vec<ColumnSpec>,
        /// Columns that needed widening and that Postgres would not widen, with why.
        refused: Option<(Vec<ColumnSpec>, pgforce_store::Error)>,
    },
    /// Mapped fields are gone, or changed to a type their column cannot hold: the mapping
    /// cannot be read as configured.
    Changed {
        /// What changed, naming the fields (the mapping's last error).
        problem: String,
    },
}

/// Describes the object, resolves `spec` against it and fits the table to it.
pub(crate) async fn check(
    sf: &Salesforce,
    pg: &mut Postgres,
    schema: &Ident,
    spec: &MappingSpec,
) -> Result<SchemaCheck> {
    let describe = sf
        .describe(&spec.object)
        .await
        .map_err(|e| Error::salesforce(&spec.object, e))?;
    match Mapping::resolve(spec.clone(), &describe) {
        Ok(mapping) => follow(pg, schema, mapping).await,
        Err(Error::MissingFields { object, fields, .. }) => Ok(SchemaCheck::Changed {
            problem: gone(&object, &fields),
        }),
        Err(error) => Err(error),
    }
}

/// Fits the table to a mapping freshly resolved against describe: widens the columns the
/// fields outgrew, and returns the mapping with each field's type as its column holds it.
pub(crate) async fn follow(
    pg: &mut Postgres,
    schema: &Ident,
    mapping: Mapping,
) -> Result<SchemaCheck> {
    let store = |e| Error::store(&mapping.object, e);
    let columns = table_columns(&*pg, schema, &mapping.table)
        .await
        .map_err(store)?;
    let Fitted {
        mut mapping,
        widen,
        retyped,
    } = fit(mapping, &columns);
    if !retyped.is_empty() {
        return Ok(SchemaCheck::Changed {
            problem: format!(
                "{}; pgforce widens columns but does not change their type: change the column or the mapping",
                retyped.join("; ")
            ),
        });
    }
    if widen.is_empty() {
        return Ok(SchemaCheck::Current {
            mapping: Box::new(mapping),
            widened: Vec::new(),
            refused: None,
        });
    }
    match widen_columns(pg, schema, &mapping.table, &widen).await {
        Ok(widened) => {
            for field in &mut mapping.fields {
                if let Some(column) = widened.iter().find(|c| c.name == field.column) {
                    field.pg_type = column.pg_type;
                }
            }
            Ok(SchemaCheck::Current {
                mapping: Box::new(mapping),
                widened,
                refused: None,
            })
        }
        Err(error) => Ok(SchemaCheck::Current {
            mapping: Box::new(mapping),
            widened: Vec::new(),
            refused: Some((widen, error)),
        }),
    }
}

/// The mapping's last error while mapped fields are missing from describe.
pub(crate) fn gone(object: &str, fields: &[String]) -> String {
    let (subject, verb) = match fields {
        [one] => (format!("field {one}"), "is"),
        several => (format!("fields {}", several.join(", ")), "are"),
    };
    format!(
        "{subject} of {object} {verb} no longer readable: deleted in Salesforce, or hidden from the integration user by field-level security; the mapping waits until it is back or no longer mapped"
    )
}

/// Why a mapping that cannot be resolved waits in `SCHEMA_CHANGED`, when it does: the
/// fields describe no longer lists are fields its table has columns for (synced before,
/// then deleted or hidden in Salesforce), not fields the org never had (a configuration
/// error).
pub(crate) async fn gone_from_org(
    pg: &Postgres,
    schema: &Ident,
    table: &str,
    error: &Error,
) -> Option<String> {
    let Error::MissingFields { object, fields, .. } = error else {
        return None;
    };
    let table = Ident::new(table).ok()?;
    let columns = match table_columns(pg, schema, &table).await {
        Ok(columns) => columns,
        Err(error) => {
            tracing::warn!(error = %crate::error::chain(&error), "could not read the mapping's columns");
            return None;
        }
    };
    let synced_before = fields.iter().all(|field| {
        let column = field.to_ascii_lowercase();
        columns.iter().any(|c| c.name == column)
    });
    (synced_before && !fields.is_empty()).then(|| gone(object, fields))
}

/// A mapping fitted to its table's columns.
#[derive(Debug)]
struct Fitted {
    /// The mapping with each field's type as its column holds it now.
    mapping: Mapping,
    /// Columns to widen to the type their field now needs.
    widen: Vec<ColumnSpec>,
    /// Fields whose new type their column cannot hold, described.
    retyped: Vec<String>,
}

/// Compares each field's type (from describe) with its column's (pure). A column of a
/// type pgforce does not create, or none, is left to the reads to judge.
fn fit(mut mapping: Mapping, columns: &[ExistingColumn]) -> Fitted {
    let mut widen = Vec::new();
    let mut retyped = Vec::new();
    for field in &mut mapping.fields {
        let Some(column_type) = columns
            .iter()
            .find(|c| c.name == field.column.as_str())
            .and_then(|c| c.pg_type)
        else {
            continue;
        };
        match column_type.width_cmp(field.pg_type) {
            Some(Ordering::Equal) => {}
            Some(Ordering::Less) => {
                widen.push(ColumnSpec {
                    name: field.column.clone(),
                    pg_type: field.pg_type,
                });
                field.pg_type = column_type;
            }
            Some(Ordering::Greater) => field.pg_type = column_type,
            None => retyped.push(format!(
                "field {} of {} changed type: Salesforce now needs {}, its column {} is {column_type}",
                field.api_name,
                mapping.object,
                field.pg_type,
                field.column.as_str()
            )),
        }
    }
    Fitted {
        mapping,
        widen,
        retyped,
    }
}

#[cfg(test)]
mod tests {
    use pgforce_salesforce::rest::describe::ObjectDescribe;
    use pgforce_store::Access;
    use pgforce_store::ddl::PgType;
    use serde_json::json;

    use super::*;

    fn mapping(fields: serde_json::Value) -> Mapping {
        let mut all = vec![
            json!({ "name": "Id", "label": "Id", "type": "id", "length": 18 }),
            json!({ "name": "SystemModstamp", "label": "S", "type": "datetime" }),
        ];
        let serde_json::Value::Array(fields) = fields else {
            unreachable!("fields are an array")
        };
        let names: Vec<String> = fields
            .iter()
            .filter_map(|f| f["name"].as_str().map(str::to_owned))
            .collect();
        all.extend(fields);
        let describe: ObjectDescribe = serde_json::from_value(
            json!({ "name": "Thing__c", "label": "Thing", "queryable": true, "fields": all }),
        )
        .unwrap();
        let spec = MappingSpec {
            object: "Thing__c".to_owned(),
            fields: names,
            access: Access::ReadOnly,
            upsert_field: None,
            polling_seconds: 600,
            max_daily_api_calls: 30_000,
            bulk_threshold: crate::config::DEFAULT_BULK_THRESHOLD,
        };
        Mapping::resolve(spec, &describe).unwrap()
    }

    fn column(name: &str, pg_type: Option<PgType>) -> ExistingColumn {
        ExistingColumn {
            name: name.to_owned(),
            pg_type,
        }
    }

    #[test]
    fn outgrown_columns_are_widened_and_wider_ones_kept() {
        let described = mapping(json!([
            { "name": "Code__c", "label": "C", "type": "string", "length": 40 },
            { "name": "Notes__c", "label": "N", "type": "textarea", "length": 32000 },
            { "name": "Count__c", "label": "N", "type": "double", "precision": 18, "scale": 2 },
            { "name": "Short__c", "label": "S", "type": "string", "length": 10 },
            { "name": "Money__c", "label": "M", "type": "currency", "precision": 18, "scale": 2 }
        ]));
        let columns = [
            column("sfid", Some(PgType::Varchar(18))),
            column("systemmodstamp", Some(PgType::Timestamp)),
            column("code__c", Some(PgType::Varchar(20))),
            column("notes__c", Some(PgType::Varchar(4000))),
            column("count__c", Some(PgType::Integer)),
            column("short__c", Some(PgType::Varchar(80))),
            column("money__c", None),
        ];
        let fitted = fit(described, &columns);
        assert!(fitted.retyped.is_empty(), "{:?}", fitted.retyped);
        let widen: Vec<(&str, PgType)> = fitted
            .widen
            .iter()
            .map(|c| (c.name.as_str(), c.pg_type))
            .collect();
        assert_eq!(
            widen,
            [
                ("code__c", PgType::Varchar(40)),
                ("notes__c", PgType::Text),
                ("count__c", PgType::DoublePrecision)
            ]
        );
        let types: Vec<(&str, PgType)> = fitted
            .mapping
            .fields
            .iter()
            .map(|f| (f.column.as_str(), f.pg_type))
            .collect();
        assert_eq!(
            &types[2..],
            [
                ("code__c", PgType::Varchar(20)),
                ("notes__c", PgType::Varchar(4000)),
                ("count__c", PgType::Integer),
                ("short__c", PgType::Varchar(80)),
                ("money__c", PgType::DoublePrecision)
            ],
            "until widened, values are checked against the columns as they are; a narrowed field keeps its wider column"
        );
    }

    #[test]
    fn a_type_the_column_cannot_hold_is_a_schema_change_naming_the_field() {
        let described = mapping(json!([
            { "name": "Code__c", "label": "C", "type": "double", "precision": 18, "scale": 2 }
        ]));
        let fitted = fit(described, &[column("code__c", Some(PgType::Varchar(20)))]);
        assert!(fitted.widen.is_empty());
        assert_eq!(
            fitted.retyped,
            [
                "field Code__c of Thing__c changed type: Salesforce now needs double precision, its column code__c is character varying(20)"
            ]
        );
    }

    #[test]
    fn gone_fields_are_named() {
        assert!(
            gone("Thing__c", &["A__c".to_owned()])
                .starts_with("field A__c of Thing__c is no longer readable")
        );
        assert!(
            gone("Thing__c", &["A__c".to_owned(), "B__c".to_owned()])
                .starts_with("fields A__c, B__c of Thing__c are no longer readable")
        );
    }
}
