//! The schema file format: how objects and fields are declared.
//!
//! The standard objects the emulator ships (`standard_objects.json`) and the custom objects
//! a user loads with `--schema FILE` are written in this one format, so there is a single
//! path from declaration to describe output. System fields (Id, IsDeleted, CreatedDate,
//! CreatedById, LastModifiedDate, LastModifiedById, SystemModstamp and, for owned objects,
//! OwnerId) are added by the emulator and must not be declared.
//!
//! ```json
//! {
//!   "objects": [
//!     { "name": "Invoice__c", "label": "Invoice", "labelPlural": "Invoices",
//!       "fields": [
//!         { "name": "Name", "type": "string", "length": 80, "nameField": true },
//!         { "name": "External_Id__c", "type": "string", "length": 40,
//!           "externalId": true, "unique": true },
//!         { "name": "Account__c", "type": "reference", "referenceTo": ["Account"],
//!           "relationshipName": "Account__r" },
//!         { "name": "Amount__c", "type": "currency", "precision": 18, "scale": 2 },
//!         { "name": "Status__c", "type": "picklist", "picklistValues": ["Draft", "Sent"],
//!           "restrictedPicklist": true, "required": true }
//!       ] }
//!   ],
//!   "extend": { "Account": [ { "name": "Region__c", "type": "string", "length": 30 } ] }
//! }
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

/// A whole schema file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaFile {
    /// Objects to add to the org.
    #[serde(default)]
    pub objects: Vec<ObjectSpec>,
    /// Extra fields for objects that already exist (standard ones, usually), by object name.
    #[serde(default)]
    pub extend: BTreeMap<String, Vec<FieldSpec>>,
}

/// One object declaration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectSpec {
    /// API name: `Account`, or `Something__c` for custom objects.
    pub name: String,
    /// Singular label; defaults to the name without `__c`, underscores as spaces.
    #[serde(default)]
    pub label: Option<String>,
    /// Plural label; defaults to the label plus `s`.
    #[serde(default)]
    pub label_plural: Option<String>,
    /// Three-character Id prefix; custom objects get `a00`, `a01`, … when omitted.
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// Whether the object has an `OwnerId` (User) field. Defaults to true.
    #[serde(default = "yes")]
    pub owned: bool,
    /// For person-like objects (Contact, Lead, User): `Name` is computed as
    /// `FirstName LastName` from these two fields and is read-only.
    #[serde(default)]
    pub name_from: Option<[String; 2]>,
    /// Object-level describe flags where the object differs from an ordinary one
    /// (`{"replicateable": false, "undeletable": false}`).
    #[serde(default)]
    pub describe: ObjectFlagsSpec,
    /// Field declarations, in describe order (system fields are added around them).
    pub fields: Vec<FieldSpec>,
}

/// Object-level describe flags; each one left out takes the value Salesforce gives an
/// ordinary custom object (true, except `mergeable` and `feedEnabled`).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectFlagsSpec {
    pub createable: Option<bool>,
    pub updateable: Option<bool>,
    pub deletable: Option<bool>,
    pub undeletable: Option<bool>,
    pub queryable: Option<bool>,
    pub retrieveable: Option<bool>,
    /// Whether getUpdated/getDeleted serve the object (replication).
    pub replicateable: Option<bool>,
    pub searchable: Option<bool>,
    pub triggerable: Option<bool>,
    pub mergeable: Option<bool>,
    pub layoutable: Option<bool>,
    pub feed_enabled: Option<bool>,
    pub mru_enabled: Option<bool>,
}

/// One field declaration. Attributes not given take Salesforce's usual value for the type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FieldSpec {
    /// API name: `Industry`, or `Something__c` for custom fields.
    pub name: String,
    /// Salesforce field type: `string`, `textarea`, `picklist`, `multipicklist`, `combobox`,
    /// `email`, `phone`, `url`, `boolean`, `int`, `double`, `currency`, `percent`, `date`,
    /// `datetime`, `reference`.
    #[serde(rename = "type")]
    pub field_type: String,
    /// Label; defaults to the name without `__c`, underscores as spaces.
    #[serde(default)]
    pub label: Option<String>,
    /// Maximum length in characters, for text types (defaults: string 255, textarea 255,
    /// long text via `length` up to 131072, email 80, phone 40, url 255, picklist 255).
    #[serde(default)]
    pub length: Option<u32>,
    /// Total digits for double, currency and percent (default 18).
    #[serde(default)]
    pub precision: Option<u32>,
    /// Digits after the decimal point for double, currency and percent (default 2, or 0).
    #[serde(default)]
    pub scale: Option<u32>,
    /// Whether a value is required on create (`nillable: false` in describe).
    #[serde(default)]
    pub required: bool,
    /// Whether the field may be set on create. Defaults to true.
    #[serde(default = "yes")]
    pub createable: bool,
    /// Whether the field may be set on update. Defaults to true.
    #[serde(default = "yes")]
    pub updateable: bool,
    /// Whether the field is an External ID (usable as an upsert key).
    #[serde(default)]
    pub external_id: bool,
    /// Whether values must be unique across the object's records.
    #[serde(default)]
    pub unique: bool,
    /// Whether uniqueness and lookups compare case-sensitively (default false).
    #[serde(default)]
    pub case_sensitive: bool,
    /// Whether this is the object's name field (shown as the record's name).
    #[serde(default)]
    pub name_field: bool,
    /// Auto-number fields are read-only and numbered by the org (`00001000`, …).
    #[serde(default)]
    pub auto_number: bool,
    /// Read-only, computed by the org (formula or roll-up); describe shows `calculated`.
    #[serde(default)]
    pub calculated: bool,
    /// Picklist values, first one not the default unless `defaultValue` says so.
    #[serde(default)]
    pub picklist_values: Vec<String>,
    /// Whether values outside `picklistValues` are rejected.
    #[serde(default)]
    pub restricted_picklist: bool,
    /// Objects a reference field may point at.
    #[serde(default)]
    pub reference_to: Vec<String>,
    /// Relationship name used in SOQL paths (`Account`, `Account__r`).
    #[serde(default)]
    pub relationship_name: Option<String>,
    /// Value set on create when the field is not given (JSON scalar of the field's type).
    #[serde(default)]
    pub default_value: Option<serde_json::Value>,
    /// For a component of a compound field (an address, a person's name): the compound
    /// field and the component's name inside it, as change events nest it
    /// (`{"field": "BillingAddress", "component": "Street"}`).
    #[serde(default)]
    pub compound: Option<CompoundSpec>,
    /// For a formula field (read-only, `calculated` in describe): the product of some
    /// number fields of the same object times a factor, null when one of them is null
    /// (`{"product": ["Amount", "Probability"], "factor": 0.01}`, Opportunity's
    /// ExpectedRevenue). Only in schema files, not in fields added at run time.
    #[serde(default)]
    pub formula: Option<FormulaSpec>,
}

/// A formula: the product of number fields times a factor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormulaSpec {
    /// Number fields of the same object to multiply.
    pub product: Vec<String>,
    /// What the product is multiplied by (default 1).
    #[serde(default = "one")]
    pub factor: f64,
}

fn one() -> f64 {
    1.0
}

/// Which compound field a field is part of.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompoundSpec {
    /// The compound field: `BillingAddress`, `MailingAddress`, `Address` (an address), or
    /// `Name` (a person's name).
    pub field: String,
    /// The component's name inside it: `Street`, `City`, … for an address; `Salutation`,
    /// `FirstName`, `LastName` for a name.
    pub component: String,
}

fn yes() -> bool {
    true
}
