//! describeGlobal and sObject describe, as typed metadata.

use reqwest::Method;
use serde::Deserialize;

use crate::client::{Call, Client, Idempotency};
use crate::error::Result;

/// A field type as describe names it; unknown types are kept as spelled.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum FieldType {
    /// `id`.
    Id,
    /// `reference`.
    Reference,
    /// `string`.
    String,
    /// `textarea`.
    Textarea,
    /// `picklist`.
    Picklist,
    /// `multipicklist`.
    Multipicklist,
    /// `combobox`.
    Combobox,
    /// `email`.
    Email,
    /// `phone`.
    Phone,
    /// `url`.
    Url,
    /// `encryptedstring`.
    EncryptedString,
    /// `boolean`.
    Boolean,
    /// `int`.
    Int,
    /// `long`.
    Long,
    /// `double`.
    Double,
    /// `currency`.
    Currency,
    /// `percent`.
    Percent,
    /// `date`.
    Date,
    /// `datetime`.
    DateTime,
    /// `time`.
    Time,
    /// `base64`.
    Base64,
    /// `address`.
    Address,
    /// `location`.
    Location,
    /// `anyType`.
    AnyType,
    /// A type this crate does not name.
    Other(String),
}

/// Every type this crate names, with describe's spelling.
const NAMED_TYPES: [(&str, FieldType); 24] = [
    ("id", FieldType::Id),
    ("reference", FieldType::Reference),
    ("string", FieldType::String),
    ("textarea", FieldType::Textarea),
    ("picklist", FieldType::Picklist),
    ("multipicklist", FieldType::Multipicklist),
    ("combobox", FieldType::Combobox),
    ("email", FieldType::Email),
    ("phone", FieldType::Phone),
    ("url", FieldType::Url),
    ("encryptedstring", FieldType::EncryptedString),
    ("boolean", FieldType::Boolean),
    ("int", FieldType::Int),
    ("long", FieldType::Long),
    ("double", FieldType::Double),
    ("currency", FieldType::Currency),
    ("percent", FieldType::Percent),
    ("date", FieldType::Date),
    ("datetime", FieldType::DateTime),
    ("time", FieldType::Time),
    ("base64", FieldType::Base64),
    ("address", FieldType::Address),
    ("location", FieldType::Location),
    ("anyType", FieldType::AnyType),
];

impl From<String> for FieldType {
    fn from(name: String) -> Self {
        NAMED_TYPES
            .iter()
            .find(|(spelled, _)| *spelled == name)
            .map_or(Self::Other(name), |(_, named)| named.clone())
    }
}

impl FieldType {
    /// The type as describe spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(name) => name,
            named => NAMED_TYPES
                .iter()
                .find(|(_, t)| t == named)
                .map_or("", |(spelled, _)| spelled),
        }
    }
}

/// One entry of describeGlobal; also the object-level part of a describe.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalObject {
    /// API name.
    pub name: String,
    /// Label.
    pub label: String,
    /// Id prefix of the object's records.
    #[serde(default)]
    pub key_prefix: Option<String>,
    /// Whether it is custom (`__c`).
    #[serde(default)]
    pub custom: bool,
    /// Whether SOQL can read it.
    #[serde(default)]
    pub queryable: bool,
    /// Whether records or values can be created.
    #[serde(default)]
    pub createable: bool,
    /// Whether it can be updated.
    #[serde(default)]
    pub updateable: bool,
    /// Whether records can be deleted.
    #[serde(default)]
    pub deletable: bool,
    /// Whether getUpdated/getDeleted serve it.
    #[serde(default)]
    pub replicateable: bool,
}

/// describeGlobal.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalDescribe {
    /// Most records a collections call takes.
    #[serde(default)]
    pub max_batch_size: u32,
    /// The org's objects.
    pub sobjects: Vec<GlobalObject>,
}

/// One picklist entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PicklistValue {
    /// The stored value.
    pub value: String,
    /// Label.
    #[serde(default)]
    pub label: Option<String>,
    /// Whether the value can be chosen.
    #[serde(default)]
    pub active: bool,
    /// Whether it is the default.
    #[serde(default)]
    pub default_value: bool,
}

/// A field's metadata: what a sync engine needs to build and fill a column.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDescribe {
    /// API name.
    pub name: String,
    /// Label.
    pub label: String,
    /// Salesforce type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// SOAP type (`xsd:string`, `tns:ID`, …).
    #[serde(default)]
    pub soap_type: String,
    /// Maximum characters, for text.
    #[serde(default)]
    pub length: u32,
    /// Total digits, for numbers.
    #[serde(default)]
    pub precision: u32,
    /// Digits after the point, for numbers.
    #[serde(default)]
    pub scale: u32,
    /// Digits, for integers.
    #[serde(default)]
    pub digits: u32,
    /// Whether it may be null.
    #[serde(default)]
    pub nillable: bool,
    /// Whether records or values can be created.
    #[serde(default)]
    pub createable: bool,
    /// Whether it can be updated.
    #[serde(default)]
    pub updateable: bool,
    /// Whether values are unique.
    #[serde(default)]
    pub unique: bool,
    /// Whether it is an External ID (an upsert key).
    #[serde(default)]
    pub external_id: bool,
    /// Whether it can identify a record in an upsert.
    #[serde(default)]
    pub id_lookup: bool,
    /// Whether it is the record's name.
    #[serde(default)]
    pub name_field: bool,
    /// Whether it is a formula or roll-up (read-only).
    #[serde(default)]
    pub calculated: bool,
    /// The formula, for a formula field (a roll-up summary is calculated without one).
    #[serde(default)]
    pub calculated_formula: Option<String>,
    /// The compound field this one is a component of (`BillingAddress` for
    /// `BillingCity`, `Name` for a Contact's `FirstName`).
    #[serde(default)]
    pub compound_field_name: Option<String>,
    /// Whether Salesforce numbers it.
    #[serde(default)]
    pub auto_number: bool,
    /// Whether Salesforce fills it on create when absent.
    #[serde(default)]
    pub defaulted_on_create: bool,
    /// Whether comparisons are case-sensitive.
    #[serde(default)]
    pub case_sensitive: bool,
    /// Whether SOQL may filter on it (`WHERE`): not long text areas, encrypted fields
    /// and a few others.
    #[serde(default)]
    pub filterable: bool,
    /// Whether it is custom (`__c`).
    #[serde(default)]
    pub custom: bool,
    /// Whether only listed picklist values are accepted.
    #[serde(default)]
    pub restricted_picklist: bool,
    /// Objects a reference may point at.
    #[serde(default)]
    pub reference_to: Vec<String>,
    /// Relationship name used in SOQL paths.
    #[serde(default)]
    pub relationship_name: Option<String>,
    /// Picklist entries.
    #[serde(default)]
    pub picklist_values: Vec<PicklistValue>,
}

/// A child relationship of an object.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildRelationship {
    /// The child object.
    #[serde(rename = "childSObject")]
    pub child_sobject: String,
    /// The child's reference field.
    pub field: String,
    /// Relationship name used in SOQL paths.
    #[serde(default)]
    pub relationship_name: Option<String>,
    /// Whether deleting the parent deletes the child.
    #[serde(default)]
    pub cascade_delete: bool,
}

/// sObject describe.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDescribe {
    /// The object-level attributes describeGlobal also lists.
    #[serde(flatten)]
    pub object: GlobalObject,
    /// The object's fields.
    pub fields: Vec<FieldDescribe>,
    /// Objects that reference this one.
    #[serde(default)]
    pub child_relationships: Vec<ChildRelationship>,
}

impl ObjectDescribe {
    /// The field with this API name, case-insensitively.
    pub fn field(&self, name: &str) -> Option<&FieldDescribe> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

impl Client {
    /// Lists the org's objects.
    pub async fn describe_global(&self) -> Result<GlobalDescribe> {
        let path = self.data_path("/sobjects/");
        self.execute(&Call::new(
            Method::GET,
            path.clone(),
            Idempotency::Idempotent,
        ))
        .await?
        .json(&path)
    }

    /// Describes one object.
    pub async fn describe(&self, object: &str) -> Result<ObjectDescribe> {
        let path = self.data_path(&format!(
            "/sobjects/{}/describe",
            crate::rest::segment(object)
        ));
        self.execute(&Call::new(
            Method::GET,
            path.clone(),
            Idempotency::Idempotent,
        ))
        .await?
        .json(&path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_types_read_and_spell_as_describe_does() {
        for (spelled, named) in &NAMED_TYPES {
            let read = FieldType::from((*spelled).to_owned());
            assert_eq!(&read, named);
            assert_eq!(read.as_str(), *spelled);
        }
        let unknown = FieldType::from("complexvalue".to_owned());
        assert_eq!(unknown, FieldType::Other("complexvalue".to_owned()));
        assert_eq!(unknown.as_str(), "complexvalue");
    }
}
