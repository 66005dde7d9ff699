//! Schema changes at run time: an administrator adds, alters or deletes a custom field, or
//! takes the API user's read access to a field away, while a sync engine is running.
//!
//! Key concepts:
//! - Field positions never move. Records store values by field position, and open query
//!   cursors and Bulk results hold positions too; so an added field is appended, and a
//!   deleted one stays as a nameless, invisible slot whose values are cleared.
//! - Existing values follow the change as Salesforce's field type conversions do: kept where
//!   they fit, text cut to a shorter length, numbers rounded to a new scale, and lost (null;
//!   false for a checkbox) where the types do not convert. Converting is not a write: no
//!   `SystemModstamp` moves, as Salesforce raises no change for conversions that keep or
//!   truncate values.
//! - Describe, SOQL and writes read the schema at every call, so they see a change at once.

use std::sync::Arc;

use serde::Deserialize;

use super::Org;
use super::schema::{
    Compound, FieldDef, FieldType, ObjectIndex, Schema, SchemaError, compile_field, field_error,
};
use super::schema_file::FieldSpec;
use super::value::Value;

/// A change to one field (`PATCH /__emulator/schema/{Object}/fields/{Field}`); what is left
/// out stays as it is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FieldChange {
    /// New label.
    pub label: Option<String>,
    /// New type; references cannot change type and no field can become one. A type change
    /// drops the field's default value.
    #[serde(rename = "type")]
    pub field_type: Option<String>,
    /// New length, for text types.
    pub length: Option<u32>,
    /// New total digits, for double, currency and percent.
    pub precision: Option<u32>,
    /// New digits after the decimal point, for double, currency and percent.
    pub scale: Option<u32>,
    /// Whether a value is required (describe's `nillable: false`); existing nulls stay.
    pub required: Option<bool>,
    /// New picklist values; stored values stay even when no longer listed.
    pub picklist_values: Option<Vec<String>>,
    /// Whether values outside the picklist are refused from now on.
    pub restricted_picklist: Option<bool>,
}

/// Why a schema change was refused.
#[derive(Debug, thiserror::Error)]
pub enum SchemaChangeError {
    #[error("no object named {0:?}")]
    UnknownObject(String),
    #[error("object {object:?} has no field {field:?}")]
    UnknownField { object: String, field: String },
    #[error(transparent)]
    Invalid(#[from] SchemaError),
}

impl Org {
    /// Adds a custom field to an object; existing records hold null (false for a checkbox,
    /// its default when declared; the next numbers for an auto-number field). Returns the
    /// compiled field.
    pub fn add_field(
        &mut self,
        object_name: &str,
        spec: &FieldSpec,
    ) -> Result<FieldDef, SchemaChangeError> {
        let object = self.object_named(object_name)?;
        let name = self.schema.object(object).name.clone();
        if !spec.name.ends_with("__c") {
            return Err(field_error(
                &name,
                &spec.name,
                "added fields must be custom (end in __c)",
            )
            .into());
        }
        let field = compile_field(&name, spec)?;
        for target in &field.reference_to {
            if self.schema.object_index(target).is_none() {
                let problem = format!("references unknown object {target:?}");
                return Err(field_error(&name, &field.name, &problem).into());
            }
        }
        let schema = Arc::make_mut(&mut self.schema);
        let def = schema.object_mut(object);
        if def.declared_field_index(&field.name).is_some() {
            return Err(field_error(&name, &field.name, "is declared twice").into());
        }
        let index = def.fields.len();
        def.fields.push(field.clone());
        def.by_lower_name
            .insert(field.name.to_ascii_lowercase(), index);
        if let Some(relationship) = &field.relationship_name {
            def.by_lower_relationship
                .insert(relationship.to_ascii_lowercase(), index);
        }
        if field.field_type == FieldType::Reference {
            schema.relink_children();
        }
        let fill = match (&field.default_value, field.field_type) {
            (Some(value), FieldType::Boolean) => value.clone(),
            _ => Value::Null,
        };
        self.tables[usize::from(object)].add_column(&fill, field.auto_number);
        self.reindex(object);
        Ok(field)
    }

    /// Alters a custom field: label, type, length, precision and scale, required, picklist.
    /// Existing values are converted as described in the module documentation. Returns the
    /// field as it is now.
    pub fn alter_field(
        &mut self,
        object_name: &str,
        field_name: &str,
        change: &FieldChange,
    ) -> Result<FieldDef, SchemaChangeError> {
        let (object, index) = self.custom_field_named(object_name, field_name)?;
        let def = self.schema.object(object);
        let old = def.fields[index].clone();
        let spec = changed_spec(&old, change, &self.schema);
        let new = compile_field(&def.name, &spec)?;
        check_type_change(&def.name, &old, new.field_type)?;
        let new = FieldDef {
            readable: old.readable,
            ..new
        };
        let schema = Arc::make_mut(&mut self.schema);
        schema.object_mut(object).fields[index] = new.clone();
        self.tables[usize::from(object)].convert_column(index, |value| convert(&old, &new, value));
        self.reindex(object);
        Ok(new)
    }

    /// Deletes a custom field: it disappears from describe, SOQL and writes, and its values
    /// are gone.
    pub fn remove_field(
        &mut self,
        object_name: &str,
        field_name: &str,
    ) -> Result<(), SchemaChangeError> {
        let (object, index) = self.custom_field_named(object_name, field_name)?;
        let schema = Arc::make_mut(&mut self.schema);
        let def = schema.object_mut(object);
        let field = &mut def.fields[index];
        def.by_lower_name.remove(&field.name.to_ascii_lowercase());
        if let Some(relationship) = field.relationship_name.take() {
            def.by_lower_relationship
                .remove(&relationship.to_ascii_lowercase());
        }
        retire(field);
        let was_reference = field.field_type == FieldType::Reference;
        if was_reference {
            schema.relink_children();
        }
        self.tables[usize::from(object)].convert_column(index, |_| Value::Null);
        self.reindex(object);
        Ok(())
    }

    /// Gives or takes the API user's read access to a field. An unreadable field is absent
    /// from describe, SOQL and writes; its values stay and come back with access. Fields a
    /// record cannot do without (required, the name field) and system fields stay readable.
    pub fn set_field_readable(
        &mut self,
        object_name: &str,
        field_name: &str,
        readable: bool,
    ) -> Result<(), SchemaChangeError> {
        let (object, index) = self.declared_field(object_name, field_name)?;
        let def = self.schema.object(object);
        let field = &def.fields[index];
        let problem = if field.system {
            Some("is a system field and is always readable")
        } else if field.required_on_create() || field.name_field {
            Some("is required and cannot be made unreadable")
        } else {
            None
        };
        if let (Some(problem), false) = (problem, readable) {
            return Err(field_error(&def.name, &field.name, problem).into());
        }
        Arc::make_mut(&mut self.schema).object_mut(object).fields[index].readable = readable;
        Ok(())
    }

    fn object_named(&self, name: &str) -> Result<ObjectIndex, SchemaChangeError> {
        self.schema
            .object_index(name)
            .ok_or_else(|| SchemaChangeError::UnknownObject(name.to_owned()))
    }

    /// A field of an object, readable or not: the object's index and the field's.
    fn declared_field(
        &self,
        object_name: &str,
        field_name: &str,
    ) -> Result<(ObjectIndex, usize), SchemaChangeError> {
        let object = self.object_named(object_name)?;
        let def = self.schema.object(object);
        let index = def
            .declared_field_index(field_name)
            .ok_or_else(|| unknown_field(&def.name, field_name))?;
        Ok((object, index))
    }

    /// A custom field, readable or not, that may be altered or deleted.
    fn custom_field_named(
        &self,
        object_name: &str,
        field_name: &str,
    ) -> Result<(ObjectIndex, usize), SchemaChangeError> {
        let (object, index) = self.declared_field(object_name, field_name)?;
        let def = self.schema.object(object);
        let field = &def.fields[index];
        if !field.custom || field.system {
            let problem = "is a standard field; only custom fields can be altered or deleted";
            return Err(field_error(&def.name, &field.name, problem).into());
        }
        Ok((object, index))
    }

    fn reindex(&mut self, object: ObjectIndex) {
        let schema = Arc::clone(&self.schema);
        self.tables[usize::from(object)].reindex_keys(&schema, schema.object(object));
    }
}

fn unknown_field(object: &str, field: &str) -> SchemaChangeError {
    SchemaChangeError::UnknownField {
        object: object.to_owned(),
        field: field.to_owned(),
    }
}

/// Turns a field into the nameless slot a deleted field leaves.
fn retire(field: &mut FieldDef) {
    field.deleted = true;
    field.createable = false;
    field.updateable = false;
    field.nillable = true;
    field.unique = false;
    field.external_id = false;
    field.id_lookup = false;
    field.auto_number = false;
    field.default_value = None;
    field.reference_to.clear();
}

/// References keep their type, no field becomes a reference, and nothing becomes an Id.
fn check_type_change(object: &str, old: &FieldDef, to: FieldType) -> Result<(), SchemaError> {
    let from = old.field_type;
    if from != to && (from == FieldType::Reference || to == FieldType::Reference) {
        let problem = "reference fields cannot change type, and no field can become one";
        return Err(field_error(object, &old.name, problem));
    }
    Ok(())
}

/// The declaration a field would have after the change: its own attributes, with what the
/// change names replaced. Length, precision, scale and default follow a type change.
fn changed_spec(old: &FieldDef, change: &FieldChange, schema: &Schema) -> FieldSpec {
    let old_type = old.field_type.describe_name();
    let new_type = change.field_type.as_deref().unwrap_or(old_type);
    let same_type = new_type == old_type;
    let kept_length = (old.field_type.is_text() && same_type).then_some(old.length);
    let kept_digits = old.field_type.is_decimal() && same_type;
    FieldSpec {
        name: old.name.clone(),
        field_type: new_type.to_owned(),
        label: Some(change.label.clone().unwrap_or_else(|| old.label.clone())),
        length: change.length.or(kept_length),
        precision: change.precision.or(kept_digits.then_some(old.precision)),
        scale: change.scale.or(kept_digits.then_some(old.scale)),
        required: change.required.unwrap_or(!old.nillable && !old.auto_number)
            && new_type != "boolean",
        createable: old.createable || old.calculated || old.auto_number,
        updateable: old.updateable || old.calculated || old.auto_number,
        external_id: old.external_id,
        unique: old.unique,
        case_sensitive: old.case_sensitive,
        name_field: old.name_field,
        auto_number: old.auto_number,
        calculated: old.calculated,
        picklist_values: change
            .picklist_values
            .clone()
            .unwrap_or_else(|| old.picklist_values.clone()),
        restricted_picklist: change
            .restricted_picklist
            .unwrap_or(old.restricted_picklist),
        reference_to: old.reference_to.clone(),
        relationship_name: old.relationship_name.clone(),
        compound: old.compound.as_ref().map(Compound::spec),
        // The object keeps computing a declared formula; a spec carries none.
        formula: None,
        default_value: same_type
            .then(|| old.default_value.as_ref().map(|v| v.to_json(schema)))
            .flatten(),
    }
}

/// A stored value of `old` as `new` keeps it. Values are lost (null; false for a checkbox,
/// which is never null) where Salesforce's conversions lose them: to or from date,
/// datetime, checkbox and multi-select picklist, and text that is not a number.
fn convert(old: &FieldDef, new: &FieldDef, value: &Value) -> Value {
    let (from, to) = (old.field_type, new.field_type);
    let lost = || {
        if to == FieldType::Boolean {
            Value::Bool(false)
        } else {
            Value::Null
        }
    };
    let loses = |t: FieldType| {
        matches!(
            t,
            FieldType::Date | FieldType::Datetime | FieldType::Boolean | FieldType::Multipicklist
        )
    };
    if from != to && (loses(from) || loses(to) && to != FieldType::Multipicklist) {
        return lost();
    }
    match value {
        Value::Text(text) if to.is_text() => truncated(text, new.length),
        Value::Text(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(|n| number(n, new))
            .unwrap_or(Value::Null),
        Value::Int(i) if to.is_text() => truncated(&i.to_string(), new.length),
        Value::Double(d) if to.is_text() => truncated(&decimal_text(*d, old.scale), new.length),
        Value::Int(i) => number(*i as f64, new).unwrap_or(Value::Null),
        Value::Double(d) => number(*d, new).unwrap_or(Value::Null),
        other => other.clone(),
    }
}

/// Text cut to `length` characters.
fn truncated(text: &str, length: u32) -> Value {
    Value::Text(
        text.chars()
            .take(length as usize)
            .collect::<String>()
            .into(),
    )
}

/// A decimal as a number field shows it: with its scale's digits (`12.50`).
fn decimal_text(value: f64, scale: u32) -> String {
    format!("{value:.*}", scale as usize)
}

/// A number stored as a number field of `field`'s type and scale holds it; None where it
/// cannot (an integer field takes 9 digits). Digits beyond a lowered precision are kept.
fn number(value: f64, field: &FieldDef) -> Option<Value> {
    if !value.is_finite() {
        return None;
    }
    if field.field_type == FieldType::Int {
        let rounded = value.round();
        return (rounded.abs() < 1e9).then_some(Value::Int(rounded as i64));
    }
    let factor = 10_f64.powi(i32::try_from(field.scale).unwrap_or(0));
    Some(Value::Double((value * factor).round() / factor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::value::tests::field;

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn text_keeps_its_value_and_is_cut_to_a_shorter_length() {
        let long = field(r#"{"name":"S__c","type":"string","length":10}"#);
        let short = field(r#"{"name":"S__c","type":"string","length":3}"#);
        let area = field(r#"{"name":"S__c","type":"textarea","length":1000}"#);
        assert_eq!(convert(&long, &short, &text("abcdef")), text("abc"));
        assert_eq!(convert(&short, &long, &text("abc")), text("abc"));
        assert_eq!(convert(&long, &area, &text("abcdef")), text("abcdef"));
        assert_eq!(convert(&long, &short, &Value::Null), Value::Null);
    }

    #[test]
    fn numbers_and_text_convert_where_they_can() {
        let string = field(r#"{"name":"N__c","type":"string","length":5}"#);
        let currency = field(r#"{"name":"N__c","type":"currency","precision":10,"scale":2}"#);
        let int = field(r#"{"name":"N__c","type":"int"}"#);
        assert_eq!(
            convert(&string, &currency, &text(" 12.345 ")),
            Value::Double(12.35)
        );
        assert_eq!(convert(&string, &currency, &text("12,5")), Value::Null);
        assert_eq!(
            convert(&currency, &string, &Value::Double(1234.5)),
            text("1234."),
            "1234.50 cut to 5 characters"
        );
        assert_eq!(convert(&currency, &int, &Value::Double(2.5)), Value::Int(3));
        assert_eq!(convert(&int, &string, &Value::Int(42)), text("42"));
        assert_eq!(
            convert(&currency, &int, &Value::Double(1e12)),
            Value::Null,
            "too large for an integer field"
        );
    }

    #[test]
    fn a_smaller_scale_rounds_and_a_smaller_precision_keeps_digits() {
        let wide = field(r#"{"name":"N__c","type":"double","precision":18,"scale":4}"#);
        let narrow = field(r#"{"name":"N__c","type":"double","precision":4,"scale":1}"#);
        assert_eq!(
            convert(&wide, &narrow, &Value::Double(123_456.789)),
            Value::Double(123_456.8)
        );
    }

    #[test]
    fn incompatible_types_lose_their_values() {
        let date = field(r#"{"name":"D__c","type":"date"}"#);
        let string = field(r#"{"name":"D__c","type":"string"}"#);
        let checkbox = field(r#"{"name":"D__c","type":"boolean"}"#);
        let multi = field(r#"{"name":"D__c","type":"multipicklist","picklistValues":["a","b"]}"#);
        assert_eq!(convert(&date, &string, &Value::Date(19_723)), Value::Null);
        assert_eq!(
            convert(&string, &checkbox, &text("yes")),
            Value::Bool(false)
        );
        assert_eq!(convert(&checkbox, &string, &Value::Bool(true)), Value::Null);
        assert_eq!(convert(&multi, &string, &text("a;b")), Value::Null);
        assert_eq!(
            convert(&string, &multi, &text("a")),
            text("a"),
            "text becomes a one-value multi-select"
        );
    }
}
