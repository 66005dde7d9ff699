//! External objects (`…__x`) as Validate and Sync creates them from an entity set: the API
//! names, the standard fields `ExternalId` and `DisplayUrl`, one `<property>__c` field per
//! property with the OData 4.0 type mapping, and the conversion of an entity's JSON back to a
//! query record.
//!
//! Composite keys: the External ID is the key predicate's inside, `Key1=lit1,Key2=lit2`
//! with each value as an OData literal (`OrderID=10248,ProductID=11`,
//! `code='A''B',line=2`), so it reads back into a key without ambiguity. A single key's
//! External ID is the bare value (`CACTU`, `42`).

use serde_json::{Map, Value as Json};

use super::metadata::{EntitySet, Property};
use crate::datetime;
use crate::org::{FieldDef, FieldType};

/// Salesforce's length for Text fields created from strings without `MaxLength`.
const DEFAULT_TEXT_LENGTH: u32 = 128;
/// The longest Text field; longer strings become Long Text Area.
const MAX_TEXT_LENGTH: u32 = 255;
/// Long Text Area's largest length, used for `MaxLength="max"`.
const MAX_LONG_TEXT_LENGTH: u32 = 131_072;
/// Number fields created from integers: Number(18, 0).
const NUMBER_PRECISION: u32 = 18;

/// The Edm primitive types the OData 4.0 adapter maps; others are not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edm {
    String,
    Boolean,
    Integer,
    Decimal,
    Floating,
    Date,
    DateTimeOffset,
    Guid,
    Binary,
}

impl Edm {
    fn parse(edm_type: &str) -> Option<Self> {
        Some(match edm_type {
            "Edm.String" => Self::String,
            "Edm.Boolean" => Self::Boolean,
            "Edm.Byte" | "Edm.SByte" | "Edm.Int16" | "Edm.Int32" | "Edm.Int64" => Self::Integer,
            "Edm.Decimal" => Self::Decimal,
            "Edm.Double" | "Edm.Single" => Self::Floating,
            "Edm.Date" => Self::Date,
            "Edm.DateTimeOffset" => Self::DateTimeOffset,
            "Edm.Guid" => Self::Guid,
            "Edm.Binary" => Self::Binary,
            _ => return None,
        })
    }
}

/// What a field of an external object reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldSource {
    /// The Salesforce Id the org maps the External ID to (ID mapping).
    Id,
    /// The entity key (one or more properties).
    ExternalId,
    /// The entity's URL at the producer.
    DisplayUrl,
    /// One property.
    Property { name: String, edm: Edm },
}

/// One field of an external object.
#[derive(Debug, Clone)]
pub struct ExternalField {
    pub def: FieldDef,
    pub source: FieldSource,
}

/// An external object synced from an entity set.
#[derive(Debug, Clone)]
pub struct ExternalObject {
    /// `public_purchase_orders__x`.
    pub name: String,
    pub label: String,
    /// The External Data Source it reads through.
    pub source: String,
    /// The entity set (`externalName`): `public$purchase_orders`.
    pub entity_set: String,
    /// Key properties with their types, in key order.
    pub key: Vec<(String, Edm)>,
    pub fields: Vec<ExternalField>,
    pub writable: bool,
    pub searchable: bool,
    /// Whether records get Salesforce Ids (the source is not High Data Volume).
    pub id_mapping: bool,
    /// The key prefix describe reports (`x00`, `x01`, …), set when the object is installed.
    pub key_prefix: String,
}

/// What sync made of one entity set: the object, and the properties it left out.
#[derive(Debug, Clone)]
pub struct Synced {
    pub object: ExternalObject,
    pub skipped: Vec<String>,
}

/// An API name from an external name: every character that is not a letter or digit becomes
/// `_`, runs of `_` collapse (API names never hold `__`), and none leads or trails.
pub fn api_name(external: &str) -> String {
    let mut name = String::with_capacity(external.len());
    for c in external.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if c == '_' && (name.is_empty() || name.ends_with('_')) {
            continue;
        }
        name.push(c);
    }
    while name.ends_with('_') {
        name.pop();
    }
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, 'X');
    }
    name
}

/// The external object Validate and Sync creates for an entity set; an error when a key
/// property's type cannot be mapped.
pub fn from_entity_set(
    set: &EntitySet,
    settings: &super::source::DataSource,
) -> Result<Synced, String> {
    let source = settings.name.as_str();
    let writable = settings.writable;
    let searchable = settings.search_enabled;
    let id_mapping = !settings.no_id_mapping;
    let mut key = Vec::with_capacity(set.key.len());
    for name in &set.key {
        let property = set
            .properties
            .iter()
            .find(|p| &p.name == name)
            .ok_or_else(|| format!("entity set {:?}: no key property {name:?}", set.name))?;
        let edm = Edm::parse(&property.edm_type).ok_or_else(|| {
            format!(
                "entity set {:?}: key property {name:?} has type {} that Salesforce Connect cannot map",
                set.name, property.edm_type
            )
        })?;
        key.push((name.clone(), edm));
    }
    let mut external_id = field("ExternalId", "External ID", FieldType::String, 255);
    external_id.external_id = true;
    external_id.id_lookup = true;
    external_id.nillable = false;
    external_id.custom = false;
    external_id.createable = writable;
    let mut display_url = field("DisplayUrl", "Display URL", FieldType::Url, 1000);
    display_url.custom = false;
    let mut fields = Vec::with_capacity(set.properties.len() + 3);
    if id_mapping {
        let mut id = field("Id", "Record ID", FieldType::Id, 18);
        id.nillable = false;
        id.id_lookup = true;
        id.custom = false;
        id.system = true;
        fields.push(ExternalField {
            def: id,
            source: FieldSource::Id,
        });
    }
    fields.extend([
        ExternalField {
            def: external_id,
            source: FieldSource::ExternalId,
        },
        ExternalField {
            def: display_url,
            source: FieldSource::DisplayUrl,
        },
    ]);
    let mut skipped = Vec::new();
    for property in &set.properties {
        let Some(edm) = Edm::parse(&property.edm_type) else {
            skipped.push(format!("{} ({})", property.name, property.edm_type));
            continue;
        };
        let is_key = set.key.contains(&property.name);
        let mut def = property_field(property, edm);
        def.nillable = property.nullable && !is_key;
        def.createable = writable;
        def.updateable = writable && !is_key;
        def.defaulted_on_create = false;
        fields.push(ExternalField {
            def,
            source: FieldSource::Property {
                name: property.name.clone(),
                edm,
            },
        });
    }
    Ok(Synced {
        object: ExternalObject {
            name: format!("{}__x", api_name(&set.name)),
            label: set.name.clone(),
            source: source.to_owned(),
            entity_set: set.name.clone(),
            key,
            fields,
            writable,
            searchable,
            id_mapping,
            key_prefix: String::new(),
        },
        skipped,
    })
}

/// The `<property>__c` field of a property, typed per Salesforce's OData 4.0 mapping.
fn property_field(property: &Property, edm: Edm) -> FieldDef {
    let name = format!("{}__c", api_name(&property.name));
    match edm {
        Edm::String => {
            let length = match property.max_length {
                None => DEFAULT_TEXT_LENGTH,
                Some(None) => MAX_LONG_TEXT_LENGTH,
                Some(Some(n)) => n.clamp(1, MAX_LONG_TEXT_LENGTH),
            };
            let kind = if length > MAX_TEXT_LENGTH {
                FieldType::Textarea
            } else {
                FieldType::String
            };
            field(&name, &property.name, kind, length)
        }
        Edm::Guid => field(&name, &property.name, FieldType::String, 36),
        Edm::Binary => field(&name, &property.name, FieldType::Textarea, MAX_TEXT_LENGTH),
        Edm::Boolean => {
            let mut def = field(&name, &property.name, FieldType::Boolean, 0);
            def.nillable = false;
            def
        }
        Edm::Date | Edm::DateTimeOffset => field(&name, &property.name, FieldType::Datetime, 0),
        Edm::Integer => number(&name, &property.name, NUMBER_PRECISION, 0),
        Edm::Decimal | Edm::Floating => {
            let precision = property
                .precision
                .unwrap_or(NUMBER_PRECISION)
                .min(NUMBER_PRECISION);
            let scale = property.scale.unwrap_or(0).min(precision);
            number(&name, &property.name, precision, scale)
        }
    }
}

fn number(name: &str, label: &str, precision: u32, scale: u32) -> FieldDef {
    let mut def = field(name, label, FieldType::Double, 0);
    def.precision = precision;
    def.scale = scale;
    def
}

fn field(name: &str, label: &str, field_type: FieldType, length: u32) -> FieldDef {
    FieldDef {
        name: name.to_owned(),
        label: label.to_owned(),
        field_type,
        length,
        precision: 0,
        scale: 0,
        digits: 0,
        nillable: true,
        createable: false,
        updateable: false,
        unique: false,
        external_id: false,
        case_sensitive: false,
        id_lookup: false,
        name_field: false,
        auto_number: false,
        calculated: false,
        defaulted_on_create: false,
        default_value: None,
        picklist_values: Vec::new(),
        restricted_picklist: false,
        reference_to: Vec::new(),
        relationship_name: None,
        custom: true,
        system: false,
        readable: true,
        deleted: false,
        compound: None,
    }
}

impl ExternalObject {
    /// The field with this API name, case-insensitively.
    #[cfg(test)]
    pub fn field(&self, name: &str) -> Option<&ExternalField> {
        self.fields
            .iter()
            .find(|f| f.def.name.eq_ignore_ascii_case(name))
    }

    /// The type of a key property.
    pub fn key_type(&self, property: &str) -> Option<Edm> {
        self.key
            .iter()
            .find(|(name, _)| name == property)
            .map(|(_, edm)| *edm)
    }

    /// The External ID of an entity, from its key values; `None` when a key value is
    /// missing.
    pub fn external_id(&self, entity: &Map<String, Json>) -> Option<String> {
        if let [(name, _)] = self.key.as_slice() {
            return match entity.get(name)? {
                Json::String(s) => Some(s.clone()),
                Json::Null => None,
                other => Some(other.to_string()),
            };
        }
        let mut parts = Vec::with_capacity(self.key.len());
        for (name, edm) in &self.key {
            let literal = json_literal(entity.get(name)?, *edm)?;
            parts.push(format!("{name}={literal}"));
        }
        Some(parts.join(","))
    }

    /// The key predicate's inside for an External ID: `'CACTU'`, `42`, or the composite form
    /// as it is; an error when a single numeric key is not a number.
    pub fn key_predicate(&self, external_id: &str) -> Result<String, String> {
        match self.key.as_slice() {
            [(name, edm)] => text_literal(external_id, *edm)
                .ok_or_else(|| format!("External ID {external_id:?} is not a value of key {name}")),
            _ => Ok(external_id.to_owned()),
        }
    }

    /// The `$filter` that selects the entity with this External ID.
    pub fn key_filter(&self, external_id: &str) -> Result<String, String> {
        match self.key.as_slice() {
            [(name, _)] => Ok(format!("{name} eq {}", self.key_predicate(external_id)?)),
            _ => {
                let mut terms = Vec::with_capacity(self.key.len());
                for part in split_composite(external_id) {
                    let (name, literal) = part.split_once('=').ok_or_else(|| {
                        format!("External ID {external_id:?} is not of the form Key=value,…")
                    })?;
                    if self.key_type(name).is_none() {
                        return Err(format!(
                            "External ID {external_id:?} names {name:?}, which is not a key property"
                        ));
                    }
                    terms.push(format!("{name} eq {literal}"));
                }
                if terms.len() != self.key.len() {
                    return Err(format!(
                        "External ID {external_id:?} does not give every key property"
                    ));
                }
                Ok(terms.join(" and "))
            }
        }
    }

    /// An entity as a query record's fields (`attributes` excluded), for the fields asked.
    pub fn record_fields(
        &self,
        entity: &Map<String, Json>,
        fields: &[usize],
        entity_url: &str,
        id: Option<&str>,
    ) -> Map<String, Json> {
        let mut out = Map::with_capacity(fields.len());
        for &index in fields {
            let Some(field) = self.fields.get(index) else {
                continue;
            };
            let value = match &field.source {
                FieldSource::Id => id.map_or(Json::Null, |id| Json::String(id.to_owned())),
                FieldSource::ExternalId => {
                    self.external_id(entity).map_or(Json::Null, Json::String)
                }
                FieldSource::DisplayUrl => Json::String(entity_url.to_owned()),
                FieldSource::Property { name, edm } => {
                    salesforce_value(entity.get(name).unwrap_or(&Json::Null), *edm)
                }
            };
            out.insert(field.def.name.clone(), value);
        }
        out
    }
}

/// An Edm JSON value as Salesforce returns the mapped field's value.
fn salesforce_value(value: &Json, edm: Edm) -> Json {
    match (edm, value) {
        (_, Json::Null) => Json::Null,
        (Edm::Date, Json::String(text)) => datetime::parse_date(text).map_or_else(
            || value.clone(),
            |days| Json::String(datetime::format_datetime(i64::from(days) * 86_400_000)),
        ),
        (Edm::DateTimeOffset, Json::String(text)) => datetime::parse_datetime(text).map_or_else(
            || value.clone(),
            |millis| Json::String(datetime::format_datetime(millis)),
        ),
        // Int64 and Decimal come as strings from IEEE754Compatible producers.
        (Edm::Integer | Edm::Decimal | Edm::Floating, Json::String(text)) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| value.clone(), Json::Number),
        _ => value.clone(),
    }
}

/// A JSON key value as an OData literal.
fn json_literal(value: &Json, edm: Edm) -> Option<String> {
    match value {
        Json::String(s) => text_literal(s, edm),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Text as an OData literal of a type: quoted with doubled quotes for strings, checked and
/// bare for numbers, bare otherwise.
pub fn text_literal(text: &str, edm: Edm) -> Option<String> {
    match edm {
        Edm::String | Edm::Binary => Some(quote(text)),
        Edm::Integer => text.parse::<i64>().ok().map(|n| n.to_string()),
        Edm::Decimal | Edm::Floating => text.parse::<f64>().ok().map(|_| text.to_owned()),
        _ => Some(text.to_owned()),
    }
}

/// A string literal: `'O''Neil'`.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Splits `a='x,y',b=2` at the commas outside quotes.
fn split_composite(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::metadata;

    fn settings(name: &str) -> crate::connect::source::DataSource {
        serde_json::from_value(serde_json::json!({ "name": name, "endpoint": "http://h/" }))
            .unwrap()
    }

    fn set(properties: &[(&str, &str, Option<Option<u32>>)], key: &[&str]) -> EntitySet {
        EntitySet {
            name: "public$purchase_orders".to_owned(),
            key: key.iter().map(|k| (*k).to_owned()).collect(),
            properties: properties
                .iter()
                .map(|(name, edm_type, max_length)| metadata::Property {
                    name: (*name).to_owned(),
                    edm_type: (*edm_type).to_owned(),
                    nullable: true,
                    max_length: *max_length,
                    precision: None,
                    scale: None,
                })
                .collect(),
        }
    }

    #[test]
    fn names_replace_dollars_and_other_punctuation() {
        assert_eq!(api_name("public$purchase_orders"), "public_purchase_orders");
        assert_eq!(api_name("a--b$"), "a_b");
        assert_eq!(api_name("9lives"), "X9lives");
        assert_eq!(api_name("net sum"), "net_sum");
    }

    #[test]
    fn types_follow_the_odata_4_mapping() {
        let synced = from_entity_set(
            &set(
                &[
                    ("id", "Edm.Int64", None),
                    ("name", "Edm.String", None),
                    ("code", "Edm.String", Some(Some(20))),
                    ("body", "Edm.String", Some(Some(4000))),
                    ("due", "Edm.Date", None),
                    ("paid", "Edm.Boolean", None),
                    ("at", "Edm.TimeOfDay", None),
                ],
                &["id"],
            ),
            &settings("Archive"),
        )
        .unwrap();
        let o = &synced.object;
        assert_eq!(o.name, "public_purchase_orders__x");
        let f = |n: &str| &o.field(n).unwrap().def;
        assert_eq!(
            (f("id__c").field_type, f("id__c").precision),
            (FieldType::Double, 18)
        );
        assert_eq!(
            (f("name__c").field_type, f("name__c").length),
            (FieldType::String, 128)
        );
        assert_eq!(f("code__c").length, 20);
        assert_eq!(
            (f("body__c").field_type, f("body__c").length),
            (FieldType::Textarea, 4000)
        );
        assert_eq!(f("due__c").field_type, FieldType::Datetime);
        assert_eq!(f("paid__c").field_type, FieldType::Boolean);
        assert!(f("ExternalId").external_id);
        assert_eq!(synced.skipped, vec!["at (Edm.TimeOfDay)"]);
    }

    #[test]
    fn composite_keys_round_trip_through_the_external_id() {
        let synced = from_entity_set(
            &set(
                &[("code", "Edm.String", None), ("line", "Edm.Int32", None)],
                &["code", "line"],
            ),
            &settings("S"),
        )
        .unwrap();
        let entity: Map<String, Json> =
            serde_json::from_str(r#"{"code":"A'B,C","line":2}"#).unwrap();
        let id = synced.object.external_id(&entity).unwrap();
        assert_eq!(id, "code='A''B,C',line=2");
        assert_eq!(
            synced.object.key_filter(&id).unwrap(),
            "code eq 'A''B,C' and line eq 2"
        );
    }

    #[test]
    fn dates_read_as_midnight_datetimes() {
        assert_eq!(
            salesforce_value(&Json::String("2024-01-31".to_owned()), Edm::Date),
            Json::String("2024-01-31T00:00:00.000+0000".to_owned())
        );
        assert_eq!(
            salesforce_value(
                &Json::String("2024-01-31T10:00:00+02:00".to_owned()),
                Edm::DateTimeOffset
            ),
            Json::String("2024-01-31T08:00:00.000+0000".to_owned())
        );
    }
}
