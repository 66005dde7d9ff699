//! describeGlobal and sObject describe, as typed metadata.

use reqwest::Method;
use serde::Deserialize;

use crate::client::{Call, Client, Idempotency};
use crate::error::Result;

/// A field type as describe names it; unknown types are kept as spelled.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum FieldType {
    Id,
    Reference,
    String,
    Textarea,
    Picklist,
    Multipicklist,
    Combobox,
    Email,
    Phone,
    Url,
    EncryptedString,
    Boolean,
    Int,
    Long,
    Double,
    Currency,
    Percent,
    Date,
    DateTime,
    Time,
    Base64,
    Address,
    Location,
    AnyType,
    /// A type this crate does not name.
    Other(String),
}

impl From<String> for FieldType {
    fn from(name: String) -> Self {
        match name.as_str() {
            "id" => Self::Id,
            "reference" => Self::Reference,
            "string" => Self::String,
            "textarea" => Self::Textarea,
            "picklist" => Self::Picklist,
            "multipicklist" => Self::Multipicklist,
            "combobox" => Self::Combobox,
            "email" => Self::Email,
            "phone" => Self::Phone,
            "url" => Self::Url,
            "encryptedstring" => Self::EncryptedString,
            "boolean" => Self::Boolean,
            "int" => Self::Int,
            "long" => Self::Long,
            "double" => Self::Double,
            "currency" => Self::Currency,
            "percent" => Self::Percent,
            "date" => Self::Date,
            "datetime" => Self::DateTime,
            "time" => Self::Time,
            "base64" => Self::Base64,
            "address" => Self::Address,
            "location" => Self::Location,
            "anyType" => Self::AnyType,
            _ => Self::Other(name),
        }
    }
}

/// One entry of describeGlobal.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalObject {
    pub name: String,
    pub label: String,
    #[serde(default)]
    pub key_prefix: Option<String>,
    #[serde(default)]
    pub custom: bool,
    #[serde(default)]
    pub queryable: bool,
    #[serde(default)]
    pub createable: bool,
    #[serde(default)]
    pub updateable: bool,
    #[serde(default)]
    pub deletable: bool,
    #[serde(default)]
    pub replicateable: bool,
}

/// describeGlobal.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalDescribe {
    #[serde(default)]
    pub max_batch_size: u32,
    pub sobjects: Vec<GlobalObject>,
}

/// One picklist entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PicklistValue {
    pub value: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub default_value: bool,
}

/// A field's metadata: what a sync engine needs to build and fill a column.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDescribe {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default)]
    pub soap_type: String,
    #[serde(default)]
    pub length: u32,
    #[serde(default)]
    pub precision: u32,
    #[serde(default)]
    pub scale: u32,
    #[serde(default)]
    pub digits: u32,
    #[serde(default)]
    pub nillable: bool,
    #[serde(default)]
    pub createable: bool,
    #[serde(default)]
    pub updateable: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub external_id: bool,
    #[serde(default)]
    pub id_lookup: bool,
    #[serde(default)]
    pub name_field: bool,
    #[serde(default)]
    pub calculated: bool,
    #[serde(default)]
    pub auto_number: bool,
    #[serde(default)]
    pub defaulted_on_create: bool,
    #[serde(default)]
    pub case_sensitive: bool,
    #[serde(default)]
    pub custom: bool,
    #[serde(default)]
    pub restricted_picklist: bool,
    #[serde(default)]
    pub reference_to: Vec<String>,
    #[serde(default)]
    pub relationship_name: Option<String>,
    #[serde(default)]
    pub picklist_values: Vec<PicklistValue>,
}

/// A child relationship of an object.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildRelationship {
    #[serde(rename = "childSObject")]
    pub child_sobject: String,
    pub field: String,
    #[serde(default)]
    pub relationship_name: Option<String>,
    #[serde(default)]
    pub cascade_delete: bool,
}

/// sObject describe.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDescribe {
    pub name: String,
    pub label: String,
    #[serde(default)]
    pub key_prefix: Option<String>,
    #[serde(default)]
    pub custom: bool,
    #[serde(default)]
    pub queryable: bool,
    #[serde(default)]
    pub createable: bool,
    #[serde(default)]
    pub updateable: bool,
    #[serde(default)]
    pub deletable: bool,
    pub fields: Vec<FieldDescribe>,
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
