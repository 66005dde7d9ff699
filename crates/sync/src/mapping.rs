//! What to sync for one object, checked against the org's describe.
//!
//! A [`MappingSpec`] is what the user configures; [`Mapping::resolve`] checks it against
//! describe (the object is queryable and not a big object or platform event, every field
//! exists and has a mappable type, the upsert field is an External ID) and fixes the
//! columns: `Id` becomes `sfid`, names are lower-cased, and `SystemModstamp` and
//! `IsDeleted` are always read.

use pgforce_salesforce::rest::describe::ObjectDescribe;
use pgforce_salesforce::soql;
use pgforce_store::ddl::{ColumnSpec, KeyColumn, MappedTable, PgType};
use pgforce_store::table::RowShape;
use pgforce_store::{Access, Ident};

use crate::convert;
use crate::error::{Error, Result};

/// A mapping as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingSpec {
    /// The object's API name.
    pub object: String,
    /// Fields to sync (API names).
    pub fields: Vec<String>,
    /// Whether app changes go back to Salesforce.
    pub access: Access,
    /// An External ID field to match and upsert by.
    pub upsert_field: Option<String>,
    /// Seconds between polls.
    pub polling_seconds: u64,
    /// API calls the mapping may use per day (UTC); polls pause beyond it.
    pub max_daily_api_calls: u64,
    /// Loads and polls of more records than this go through Bulk API 2.0
    /// (`u64::MAX`: never).
    pub bulk_threshold: u64,
}

/// One synced field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedField {
    /// API name as describe spells it.
    pub api_name: String,
    /// The column (`sfid` for `Id`).
    pub column: Ident,
    /// The column type.
    pub pg_type: PgType,
    /// Whether Salesforce accepts a value for it on create.
    pub createable: bool,
    /// Whether Salesforce accepts a value for it on update.
    pub updateable: bool,
    /// Whether SOQL may filter on it.
    pub filterable: bool,
    /// Where a Change Data Capture event carries its value.
    pub in_events: EventSource,
}

/// Where a Change Data Capture event carries a field's value. Salesforce nests the
/// components of compound fields (a Contact's `Name` holds `FirstName` and `LastName`,
/// `BillingAddress` holds `City`) and leaves formula fields and values derived from other
/// records out of change events altogether.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSource {
    /// Under its own name.
    Flat,
    /// Inside a compound field: `BillingCity` is `City` of `BillingAddress`.
    Component {
        /// The compound field (`BillingAddress`).
        compound: String,
        /// The component's name inside it (`City`).
        component: String,
    },
    /// Nowhere: a formula field, or a value derived from other records.
    Absent,
}

/// Fields Salesforce derives from other records and leaves out of change events
/// (Object Reference, "Change Event Fields").
const DERIVED_FIELDS: [&str; 5] = [
    "LastActivityDate",
    "PhotoUrl",
    "LastViewedDate",
    "LastReferencedDate",
    "MasterRecordId",
];

impl EventSource {
    /// How an update's changed fields name this field (`BillingAddress.City` for
    /// `BillingCity`); `None` when events do not carry it.
    pub fn changed_field_name(&self, api_name: &str) -> Option<String> {
        match self {
            Self::Flat => Some(api_name.to_owned()),
            Self::Component {
                compound,
                component,
            } => Some(format!("{compound}.{component}")),
            Self::Absent => None,
        }
    }

    /// Where events carry `field`, from its describe.
    pub fn of(field: &pgforce_salesforce::rest::describe::FieldDescribe) -> Self {
        let name = field.name.as_str();
        // Roll-up summaries are calculated too but are carried; formulas are not.
        if field.calculated_formula.is_some() || DERIVED_FIELDS.contains(&name) {
            return Self::Absent;
        }
        let Some(compound) = field.compound_field_name.as_deref() else {
            return Self::Flat;
        };
        // `BillingCity` of `BillingAddress` is `City`; a Lead's `City` of `Address` is
        // `City`; a geolocation's `Site__Latitude__s` of `Site__c` is `Latitude`; a
        // name's components keep their names.
        let component = match compound.strip_suffix("Address") {
            Some(prefix) => name.strip_prefix(prefix).unwrap_or(name),
            None => name
                .strip_suffix("__s")
                .and_then(|rest| rest.rsplit_once("__"))
                .map_or(name, |(_, part)| part),
        };
        Self::Component {
            compound: compound.to_owned(),
            component: component.to_owned(),
        }
    }
}

/// A relationship external-id column (`account__r__code__c` for `Account__r.Code__c`):
/// write-only, it lets a child reference its parent by the parent's external id, so both
/// can be inserted in one transaction before the parent has an `sfid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationshipReference {
    /// The relationship's name (`Account`, `Parent__r`).
    pub relationship: String,
    /// The object the relationship points to (`Account`, `Parent__c`).
    pub parent_object: String,
    /// The parent's External ID field (`Code__c`).
    pub external_field: String,
    /// The column: relationship name, `__`, field name, lower-cased.
    pub column: Ident,
}

/// Width of relationship external-id columns.
const REFERENCE_COLUMN_LENGTH: u32 = 255;

/// A mapping checked against the org.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// What was configured.
    pub spec: MappingSpec,
    /// The object's API name as describe spells it.
    pub object: String,
    /// The table.
    pub table: Ident,
    /// Every field read, `Id`, `SystemModstamp` and (when the object has it) `IsDeleted`
    /// included.
    pub fields: Vec<MappedField>,
    /// The upsert field's column.
    pub upsert_column: Option<Ident>,
    /// Whether Salesforce holds the upsert field's values unique (its describe's
    /// `unique`); the column's index follows it.
    pub upsert_unique: bool,
    /// Relationship external-id columns (configured as `Relationship.ExternalField`).
    pub references: Vec<RelationshipReference>,
}

impl Mapping {
    /// Checks a spec against the object's describe.
    pub fn resolve(spec: MappingSpec, describe: &ObjectDescribe) -> Result<Self> {
        let object = describe.object.name.clone();
        let fail = |problem: String| Error::config(&spec.object, problem);
        if object.ends_with("__b") || object.ends_with("__e") {
            return Err(fail(
                "big objects (__b) and platform events (__e) cannot be synced".to_owned(),
            ));
        }
        if !describe.object.queryable {
            return Err(fail(format!("{object} is not queryable")));
        }
        let table = Ident::from_salesforce(&object).map_err(|e| fail(e.to_string()))?;
        let mut wanted: Vec<String> = vec!["Id".to_owned(), "SystemModstamp".to_owned()];
        if describe.field("IsDeleted").is_some() {
            wanted.push("IsDeleted".to_owned());
        }
        if describe.field("SystemModstamp").is_none() {
            return Err(fail(format!("{object} has no SystemModstamp to poll by")));
        }
        let (paths, plain): (Vec<&String>, Vec<&String>) =
            spec.fields.iter().partition(|f| f.contains('.'));
        wanted.extend(plain.into_iter().cloned());
        let references = paths
            .into_iter()
            .map(|path| resolve_reference(&spec.object, describe, path))
            .collect::<Result<Vec<_>>>()?;
        let mut fields: Vec<MappedField> = Vec::with_capacity(wanted.len());
        let mut missing: Vec<String> = Vec::new();
        for name in &wanted {
            soql::name(name).map_err(|_| {
                fail(format!(
                    "field {name:?} is not a valid Salesforce field name"
                ))
            })?;
            let Some(field) = describe.field(name) else {
                missing.push(name.clone());
                continue;
            };
            if fields.iter().any(|f| f.api_name == field.name) {
                continue;
            }
            let pg_type =
                convert::pg_type(field).map_err(|problem| fail(format!("field {problem}")))?;
            let column = if field.name == "Id" {
                Ident::new("sfid")
            } else {
                Ident::from_salesforce(&field.name)
            };
            let column = column.map_err(|e| fail(format!("field {}: {e}", field.name)))?;
            fields.push(MappedField {
                api_name: field.name.clone(),
                column,
                pg_type,
                createable: field.createable,
                updateable: field.updateable,
                filterable: field.filterable,
                in_events: EventSource::of(field),
            });
        }
        if !missing.is_empty() {
            let problem = match missing.as_slice() {
                [one] => format!("field {one} does not exist on {object}"),
                several => format!("fields {} do not exist on {object}", several.join(", ")),
            };
            return Err(Error::MissingFields {
                object: spec.object.clone(),
                fields: missing,
                problem,
            });
        }
        let upsert_unique = spec
            .upsert_field
            .as_deref()
            .and_then(|name| describe.field(name))
            .is_some_and(|field| field.unique);
        let upsert_column = match &spec.upsert_field {
            None => None,
            Some(name) => {
                let field = describe.field(name).ok_or_else(|| {
                    fail(format!("upsert field {name} does not exist on {object}"))
                })?;
                if !field.external_id {
                    return Err(fail(format!(
                        "upsert field {} is not an External ID field",
                        field.name
                    )));
                }
                let column = fields
                    .iter()
                    .find(|f| f.api_name == field.name)
                    .ok_or_else(|| {
                        fail(format!(
                            "upsert field {} must also be one of the mapped fields",
                            field.name
                        ))
                    })?
                    .column
                    .clone();
                Some(column)
            }
        };
        Ok(Self {
            spec,
            object,
            table,
            fields,
            upsert_column,
            upsert_unique,
            references,
        })
    }

    /// The table to create in a connection's schema.
    pub fn table_spec(&self, schema: &Ident) -> MappedTable {
        MappedTable {
            schema: schema.clone(),
            table: self.table.clone(),
            columns: self
                .fields
                .iter()
                .map(|f| ColumnSpec {
                    name: f.column.clone(),
                    pg_type: f.pg_type,
                })
                .chain(self.references.iter().map(|r| ColumnSpec {
                    name: r.column.clone(),
                    pg_type: PgType::Varchar(REFERENCE_COLUMN_LENGTH),
                }))
                .collect(),
            key_column: self.upsert_column.clone().map(|name| KeyColumn {
                name,
                unique: self.upsert_unique,
            }),
            access: self.spec.access,
        }
    }

    /// Where records read from Salesforce go: the mapped columns in [`Mapping::fields`]
    /// order (`sfid` first).
    pub fn row_shape(&self, schema: &Ident) -> crate::Result<RowShape> {
        let columns = self
            .fields
            .iter()
            .map(|f| ColumnSpec {
                name: f.column.clone(),
                pg_type: f.pg_type,
            })
            .collect();
        RowShape::new(
            schema.clone(),
            self.table.clone(),
            columns,
            self.upsert_column.clone(),
        )
        .map_err(|e| Error::store(&self.object, e))
    }

    /// The SOQL field list, in [`Mapping::fields`] order.
    pub fn select_list(&self) -> String {
        self.fields
            .iter()
            .map(|f| f.api_name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Checks `Relationship.ExternalField` against the object's relationships.
fn resolve_reference(
    object: &str,
    describe: &ObjectDescribe,
    path: &str,
) -> Result<RelationshipReference> {
    let fail = |problem: String| Error::config(object, problem);
    let (relationship, external_field) = path.split_once('.').unwrap_or((path, ""));
    for part in [relationship, external_field] {
        soql::name(part).map_err(|_| {
            fail(format!(
                "{path:?} is not Relationship.ExternalIdField of valid names"
            ))
        })?;
    }
    let lookup = describe
        .fields
        .iter()
        .find(|f| {
            f.relationship_name
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(relationship))
        })
        .ok_or_else(|| {
            fail(format!(
                "{path}: {} has no relationship named {relationship}",
                describe.object.name
            ))
        })?;
    let relationship = lookup.relationship_name.clone().unwrap_or_default();
    let parent_object = lookup.reference_to.first().cloned().unwrap_or_default();
    let column = Ident::from_salesforce(&format!("{relationship}__{external_field}"))
        .map_err(|e| fail(format!("{path}: {e}")))?;
    Ok(RelationshipReference {
        relationship,
        parent_object,
        external_field: external_field.to_owned(),
        column,
    })
}
