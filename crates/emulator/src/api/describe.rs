//! describeGlobal, sObject describe and basic info, with Salesforce's full key sets.
//!
//! Sync tools read describe to build tables, so every key Salesforce sends is present (null
//! where the emulator has nothing to say), values have Salesforce's types, and the
//! attributes that drive a sync (type, length, precision, scale, nillable, createable,
//! updateable, externalId, unique, idLookup, referenceTo, relationshipName, calculated,
//! picklistValues, defaultedOnCreate) are exact.

use axum::http::StatusCode;
use serde_json::{Value as Json, json};

use super::context::RequestContext;
use super::rest::{ApiResult, json_response};
use crate::error::ApiError;
use crate::org::{FieldDef, FieldType, ObjectDef, ObjectFlags, ObjectIndex, Schema};

/// The Master record type every object has.
const MASTER_RECORD_TYPE_ID: &str = "012000000000000AAA";

/// Resolves an object name from a path, or 404 NOT_FOUND.
pub fn object_from_path(schema: &Schema, name: &str) -> Result<ObjectIndex, ApiError> {
    schema.object_index(name).ok_or_else(ApiError::not_found)
}

/// Resolves `{Obj}/{Field}` of an upsert or external-id path: the object and a field that
/// can identify a record (an External ID, unique or idLookup field), or Salesforce's 404.
pub fn external_id_field(
    ctx: &RequestContext,
    object_name: &str,
    field_name: &str,
) -> Result<(ObjectIndex, usize), ApiError> {
    let org = ctx.shared.org();
    let object = object_from_path(org.schema(), object_name)?;
    let def = org.schema().object(object);
    let field = def
        .field_index(field_name)
        .filter(|i| def.fields[*i].id_lookup || def.fields[*i].external_id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!(
                    "Provided external ID field does not exist or is not accessible: {field_name}"
                ),
            )
        })?;
    Ok((object, field))
}

fn object_urls(name: &str, prefix: &str) -> Json {
    json!({
        "compactLayouts": format!("{prefix}/sobjects/{name}/describe/compactLayouts"),
        "rowTemplate": format!("{prefix}/sobjects/{name}/{{ID}}"),
        "approvalLayouts": format!("{prefix}/sobjects/{name}/describe/approvalLayouts"),
        "listviews": format!("{prefix}/sobjects/{name}/listviews"),
        "describe": format!("{prefix}/sobjects/{name}/describe"),
        "quickActions": format!("{prefix}/sobjects/{name}/quickActions"),
        "layouts": format!("{prefix}/sobjects/{name}/describe/layouts"),
        "sobject": format!("{prefix}/sobjects/{name}"),
    })
}

/// What describeGlobal says about an object: enough to write its entry without an
/// [`ObjectDef`] (external objects have none).
pub(crate) struct ObjectHead<'a> {
    pub name: &'a str,
    pub label: &'a str,
    pub label_plural: &'a str,
    pub key_prefix: &'a str,
    pub custom: bool,
    pub flags: ObjectFlags,
}

impl<'a> ObjectHead<'a> {
    fn of(object: &'a ObjectDef) -> Self {
        Self {
            name: &object.name,
            label: &object.label,
            label_plural: &object.label_plural,
            key_prefix: &object.key_prefix,
            custom: object.custom,
            flags: object.flags,
        }
    }
}

/// The per-object entry of describeGlobal (also the top of describe): the same flags in
/// both, from the object's declaration.
fn global_entry(object: &ObjectDef, prefix: &str) -> Json {
    head_entry(&ObjectHead::of(object), prefix)
}

/// [`global_entry`] from an [`ObjectHead`].
pub(crate) fn head_entry(object: &ObjectHead<'_>, prefix: &str) -> Json {
    let flags = &object.flags;
    json!({
        "activateable": false,
        "associateEntityType": null,
        "associateParentEntity": null,
        "createable": flags.createable,
        "custom": object.custom,
        "customSetting": false,
        "deepCloneable": false,
        "deletable": flags.deletable,
        "deprecatedAndHidden": false,
        "feedEnabled": flags.feed_enabled,
        "hasSubtypes": false,
        "isInterface": false,
        "isSubtype": false,
        "keyPrefix": object.key_prefix,
        "label": object.label,
        "labelPlural": object.label_plural,
        "layoutable": flags.layoutable,
        "mergeable": flags.mergeable,
        "mruEnabled": flags.mru_enabled,
        "name": object.name,
        "queryable": flags.queryable,
        "replicateable": flags.replicateable,
        "retrieveable": flags.retrieveable,
        "searchable": flags.searchable,
        "triggerable": flags.triggerable,
        "undeletable": flags.undeletable,
        "updateable": flags.updateable,
        "urls": object_urls(object.name, prefix),
    })
}

/// `GET /sobjects/`.
pub fn describe_global(ctx: &RequestContext) -> ApiResult {
    let org = ctx.shared.org();
    let prefix = ctx.data_prefix();
    let sobjects: Vec<Json> = org
        .schema()
        .objects()
        .iter()
        .map(|o| global_entry(o, &prefix))
        .chain(crate::connect::api::global_entries(ctx))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects }),
    ))
}

/// `GET /sobjects/{Obj}`: basic information and recently viewed items.
pub fn basic_info(ctx: &RequestContext, name: &str) -> ApiResult {
    let org = ctx.shared.org();
    let object = org.schema().object(object_from_path(org.schema(), name)?);
    Ok(json_response(
        StatusCode::OK,
        &json!({ "objectDescribe": global_entry(object, &ctx.data_prefix()), "recentItems": [] }),
    ))
}

/// `GET /sobjects/{Obj}/describe`.
pub fn describe(ctx: &RequestContext, name: &str) -> ApiResult {
    let org = ctx.shared.org();
    let schema = org.schema();
    let object = schema.object(object_from_path(schema, name)?);
    let children = object
        .child_relationships
        .iter()
        .map(|c| {
            json!({
                "cascadeDelete": c.cascade_delete,
                "childSObject": c.child_object,
                "deprecatedAndHidden": false,
                "field": c.field,
                "junctionIdListNames": [],
                "junctionReferenceTo": [],
                "relationshipName": c.relationship_name,
                "restrictedDelete": false,
            })
        })
        .collect();
    let fields = object
        .visible_fields()
        .map(|(_, f)| field_json(f))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &describe_body(ctx, &ObjectHead::of(object), fields, children),
    ))
}

/// A full describe body from an object's head, fields and child relationships.
pub(crate) fn describe_body(
    ctx: &RequestContext,
    object: &ObjectHead<'_>,
    fields: Vec<Json>,
    children: Vec<Json>,
) -> Json {
    let prefix = ctx.data_prefix();
    let mut body = head_entry(object, &prefix);
    let base = &ctx.base_url;
    body["urls"]["uiDetailTemplate"] = json!(format!("{base}/{{ID}}"));
    body["urls"]["uiEditTemplate"] = json!(format!("{base}/{{ID}}/e"));
    body["urls"]["uiNewRecord"] = json!(format!("{base}/{}/e", object.key_prefix));
    let extra = json!({
        "actionOverrides": [],
        "childRelationships": children,
        "compactLayoutable": true,
        "defaultImplementation": null,
        "extendedBy": null,
        "extendsInterfaces": null,
        "fields": fields,
        "implementedBy": null,
        "implementsInterfaces": null,
        "listviewable": null,
        "lookupLayoutable": null,
        "namedLayoutInfos": [],
        "networkScopeFieldName": null,
        "recordTypeInfos": [{
            "active": true,
            "available": true,
            "defaultRecordTypeMapping": true,
            "developerName": "Master",
            "master": true,
            "name": "Master",
            "recordTypeId": MASTER_RECORD_TYPE_ID,
            "urls": { "layout": format!("{prefix}/sobjects/{}/describe/layouts/{MASTER_RECORD_TYPE_ID}", object.name) },
        }],
        "searchLayoutable": true,
        "sobjectDescribeOption": "FULL",
        "supportedScopes": [
            { "label": format!("All {}", object.label_plural.to_lowercase()), "name": "everything" },
            { "label": format!("My {}", object.label_plural.to_lowercase()), "name": "mine" },
        ],
    });
    if let (Json::Object(body), Json::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
        body.sort_keys();
    }
    body
}

/// One field as describe lists it.
pub(crate) fn field_json(field: &FieldDef) -> Json {
    let t = field.field_type;
    let byte_length = if t.is_text() {
        field.length * 3
    } else if matches!(t, FieldType::Id | FieldType::Reference) {
        18
    } else {
        0
    };
    let filterable = !(t == FieldType::Textarea && field.length > 255);
    let picklist_values: Vec<Json> = field
        .picklist_values
        .iter()
        .map(|v| {
            let is_default = field.default_value.as_ref().and_then(|d| d.as_text()) == Some(v.as_str());
            json!({ "active": true, "defaultValue": is_default, "label": v, "validFor": null, "value": v })
        })
        .collect();
    let default_value = match (&field.default_value, t) {
        (Some(crate::org::Value::Bool(b)), FieldType::Boolean) => json!(b),
        _ => Json::Null,
    };
    json!({
        "aggregatable": t != FieldType::Boolean && filterable,
        "aiPredictionField": false,
        "autoNumber": field.auto_number,
        "byteLength": byte_length,
        "calculated": field.calculated,
        "calculatedFormula": null,
        "cascadeDelete": false,
        "caseSensitive": field.case_sensitive,
        "compoundFieldName": field.compound.as_ref().map(|c| c.field.as_str()),
        "controllerName": null,
        "createable": field.createable,
        "custom": field.custom,
        "defaultValue": default_value,
        "defaultValueFormula": null,
        "defaultedOnCreate": field.defaulted_on_create,
        "dependentPicklist": false,
        "deprecatedAndHidden": false,
        "digits": field.digits,
        "displayLocationInDecimal": false,
        "encrypted": false,
        "externalId": field.external_id,
        "extraTypeInfo": if t == FieldType::Textarea { json!("plaintextarea") } else { Json::Null },
        "filterable": filterable,
        "filteredLookupInfo": null,
        "formulaTreatNullNumberAsZero": false,
        "groupable": filterable && !t.is_decimal(),
        "highScaleNumber": false,
        "htmlFormatted": false,
        "idLookup": field.id_lookup,
        "inlineHelpText": null,
        "label": field.label,
        "length": if t.is_text() || matches!(t, FieldType::Id | FieldType::Reference) { field.length } else { 0 },
        "mask": null,
        "maskType": null,
        "name": field.name,
        "nameField": field.name_field,
        "namePointing": false,
        "nillable": field.nillable,
        "permissionable": !field.system && field.nillable,
        "picklistValues": picklist_values,
        "polymorphicForeignKey": false,
        "precision": field.precision,
        "queryByDistance": false,
        "referenceTargetField": null,
        "referenceTo": field.reference_to,
        "relationshipName": field.relationship_name,
        "relationshipOrder": null,
        "restrictedDelete": false,
        "restrictedPicklist": field.restricted_picklist,
        "scale": field.scale,
        "searchPrefilterable": false,
        "soapType": t.soap_type(),
        "sortable": filterable,
        "type": t.describe_name(),
        "unique": field.unique,
        "updateable": field.updateable,
        "writeRequiresMasterRead": false,
    })
}
