//! The org's compiled schema: objects and fields with every describe attribute resolved.
//!
//! Declarations come from [`SchemaFile`]s (the bundled standard objects, then the user's
//! `--schema` file). Compiling adds the system fields, fills in Salesforce's defaults for each
//! field type, assigns key prefixes and builds the case-insensitive name indexes that every
//! request uses, so that request handling never has to guess.

use std::collections::HashMap;

use super::schema_file::{CompoundSpec, FieldSpec, ObjectFlagsSpec, ObjectSpec, SchemaFile};
use super::value::Value;

/// The bundled declarations of the standard objects.
const STANDARD_OBJECTS: &str = include_str!("standard_objects.json");

/// A Salesforce field type, as describe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    Boolean,
    Int,
    Double,
    Currency,
    Percent,
    Date,
    Datetime,
}

impl FieldType {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
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
            "boolean" => Self::Boolean,
            "int" => Self::Int,
            "double" => Self::Double,
            "currency" => Self::Currency,
            "percent" => Self::Percent,
            "date" => Self::Date,
            "datetime" => Self::Datetime,
            _ => return None,
        })
    }

    /// The name describe uses (`"datetime"`, `"reference"`, …).
    pub fn describe_name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Reference => "reference",
            Self::String => "string",
            Self::Textarea => "textarea",
            Self::Picklist => "picklist",
            Self::Multipicklist => "multipicklist",
            Self::Combobox => "combobox",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Url => "url",
            Self::Boolean => "boolean",
            Self::Int => "int",
            Self::Double => "double",
            Self::Currency => "currency",
            Self::Percent => "percent",
            Self::Date => "date",
            Self::Datetime => "datetime",
        }
    }

    /// The SOAP type describe reports next to the type.
    pub fn soap_type(self) -> &'static str {
        match self {
            Self::Id | Self::Reference => "tns:ID",
            Self::Boolean => "xsd:boolean",
            Self::Int => "xsd:int",
            Self::Double | Self::Currency | Self::Percent => "xsd:double",
            Self::Date => "xsd:date",
            Self::Datetime => "xsd:dateTime",
            _ => "xsd:string",
        }
    }

    /// Whether values are text (length-limited, trimmed, empty stored as null).
    pub fn is_text(self) -> bool {
        matches!(
            self,
            Self::String
                | Self::Textarea
                | Self::Picklist
                | Self::Multipicklist
                | Self::Combobox
                | Self::Email
                | Self::Phone
                | Self::Url
        )
    }

    /// Whether values are fractional numbers.
    pub fn is_decimal(self) -> bool {
        matches!(self, Self::Double | Self::Currency | Self::Percent)
    }

    fn default_length(self) -> u32 {
        match self {
            Self::Id | Self::Reference => 18,
            Self::Email => 80,
            Self::Phone => 40,
            Self::Multipicklist => 4099,
            t if t.is_text() => 255,
            _ => 0,
        }
    }
}

/// One compiled field.
#[derive(Debug, Clone)]
pub struct FieldDef {
    pub name: String,
    pub label: String,
    pub field_type: FieldType,
    pub length: u32,
    pub precision: u32,
    pub scale: u32,
    pub digits: u32,
    pub nillable: bool,
    pub createable: bool,
    pub updateable: bool,
    pub unique: bool,
    pub external_id: bool,
    pub case_sensitive: bool,
    pub id_lookup: bool,
    pub name_field: bool,
    pub auto_number: bool,
    pub calculated: bool,
    pub defaulted_on_create: bool,
    pub default_value: Option<Value>,
    pub picklist_values: Vec<String>,
    pub restricted_picklist: bool,
    pub reference_to: Vec<String>,
    pub relationship_name: Option<String>,
    pub custom: bool,
    /// Set by the org itself (Id, audit fields, SystemModstamp, IsDeleted).
    pub system: bool,
    /// Whether the API user may read the field (field-level security); an unreadable field
    /// is absent from describe, SOQL and writes, but keeps its values.
    pub readable: bool,
    /// Removed from the object at run time. Its slot stays so that record layouts and open
    /// cursors keep their field positions; nothing can name it any more.
    pub deleted: bool,
    /// The compound field this field is a component of (describe's `compoundFieldName`);
    /// change events carry it nested in that compound.
    pub compound: Option<Compound>,
}

/// The kinds of compound field change events nest, with their components in the order of
/// Salesforce's event schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompoundKind {
    /// `BillingAddress`, `ShippingAddress`, `MailingAddress`, `OtherAddress`, `Address`.
    Address,
    /// Contact's and Lead's `Name`.
    PersonName,
}

impl CompoundKind {
    /// The kind of a compound field, by its name.
    pub fn of(field: &str) -> Option<Self> {
        if field == "Name" {
            Some(Self::PersonName)
        } else if field.ends_with("Address") {
            Some(Self::Address)
        } else {
            None
        }
    }

    /// The Avro record type Salesforce's event schemas name this kind by.
    pub fn record_name(self) -> &'static str {
        match self {
            Self::Address => "Address",
            Self::PersonName => "PersonName",
        }
    }

    /// The components, in event schema order, each with whether it is a number (a double:
    /// latitude and longitude) rather than text.
    pub fn components(self) -> &'static [(&'static str, bool)] {
        match self {
            Self::Address => &[
                ("Street", false),
                ("City", false),
                ("State", false),
                ("PostalCode", false),
                ("Country", false),
                ("StateCode", false),
                ("CountryCode", false),
                ("Latitude", true),
                ("Longitude", true),
                ("GeocodeAccuracy", false),
            ],
            Self::PersonName => &[
                ("Salutation", false),
                ("FirstName", false),
                ("LastName", false),
            ],
        }
    }
}

/// A formula field: the product of number fields times a factor.
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    /// The formula field.
    pub target: usize,
    /// The number fields multiplied.
    pub factors: Vec<usize>,
    pub factor: f64,
}

impl Formula {
    /// The formula's value for a record's values: null when a factor is null, rounded to
    /// the field's scale.
    pub fn evaluate(&self, object: &ObjectDef, values: &[Value]) -> Value {
        let mut product = self.factor;
        for &index in &self.factors {
            product *= match values.get(index) {
                Some(Value::Double(d)) => *d,
                Some(Value::Int(i)) => *i as f64,
                _ => return Value::Null,
            };
        }
        let scale = object.fields.get(self.target).map_or(0, |f| f.scale);
        let unit = 10f64.powi(i32::try_from(scale).unwrap_or(0));
        Value::Double((product * unit).round() / unit)
    }
}

/// A field's place in a compound field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compound {
    /// The compound field's name (`BillingAddress`).
    pub field: String,
    /// The component's name inside it (`Street`).
    pub component: String,
    pub kind: CompoundKind,
}

impl Compound {
    /// Checks a declaration: a known kind of compound, and one of its components.
    fn compile(spec: &CompoundSpec) -> Result<Self, String> {
        let kind = CompoundKind::of(&spec.field).ok_or_else(|| {
            format!(
                "compound field {:?} is neither an address (…Address) nor Name",
                spec.field
            )
        })?;
        if !kind.components().iter().any(|(c, _)| *c == spec.component) {
            return Err(format!(
                "{:?} is not a component of {}",
                spec.component,
                kind.record_name()
            ));
        }
        Ok(Self {
            field: spec.field.clone(),
            component: spec.component.clone(),
            kind,
        })
    }

    /// The declaration this was compiled from.
    pub(super) fn spec(&self) -> CompoundSpec {
        CompoundSpec {
            field: self.field.clone(),
            component: self.component.clone(),
        }
    }
}

impl FieldDef {
    /// Whether the API sees the field at all.
    pub fn is_visible(&self) -> bool {
        self.readable && !self.deleted
    }

    /// Whether a create without this field must fail with REQUIRED_FIELD_MISSING.
    pub fn required_on_create(&self) -> bool {
        !self.nillable && self.createable && !self.defaulted_on_create
    }

    /// Whether the field is indexed for equality lookups (upsert keys, unique checks).
    pub fn is_indexed_key(&self) -> bool {
        self.external_id || self.unique
    }
}

/// Indexes of the fields every object has, resolved once.
#[derive(Debug, Clone, Copy)]
pub struct SystemFields {
    pub id: usize,
    pub is_deleted: usize,
    pub created_date: usize,
    pub created_by: usize,
    pub last_modified_date: usize,
    pub last_modified_by: usize,
    pub system_modstamp: usize,
    pub owner: Option<usize>,
}

/// A child relationship as describe lists it.
#[derive(Debug, Clone)]
pub struct ChildRelationship {
    pub child_object: String,
    pub field: String,
    pub relationship_name: String,
    pub cascade_delete: bool,
}

/// Object-level describe flags, resolved from the declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectFlags {
    pub createable: bool,
    pub updateable: bool,
    pub deletable: bool,
    pub undeletable: bool,
    pub queryable: bool,
    pub retrieveable: bool,
    pub replicateable: bool,
    pub searchable: bool,
    pub triggerable: bool,
    pub mergeable: bool,
    pub layoutable: bool,
    pub feed_enabled: bool,
    pub mru_enabled: bool,
}

impl ObjectFlags {
    /// The declared flags, with an ordinary object's value for each one left out: every
    /// call allowed, no merge, and a feed for standard objects only.
    fn resolve(spec: &ObjectFlagsSpec, custom: bool) -> Self {
        Self {
            createable: spec.createable.unwrap_or(true),
            updateable: spec.updateable.unwrap_or(true),
            deletable: spec.deletable.unwrap_or(true),
            undeletable: spec.undeletable.unwrap_or(true),
            queryable: spec.queryable.unwrap_or(true),
            retrieveable: spec.retrieveable.unwrap_or(true),
            replicateable: spec.replicateable.unwrap_or(true),
            searchable: spec.searchable.unwrap_or(true),
            triggerable: spec.triggerable.unwrap_or(true),
            mergeable: spec.mergeable.unwrap_or(false),
            layoutable: spec.layoutable.unwrap_or(true),
            feed_enabled: spec.feed_enabled.unwrap_or(!custom),
            mru_enabled: spec.mru_enabled.unwrap_or(true),
        }
    }
}

/// One compiled object.
#[derive(Debug, Clone)]
pub struct ObjectDef {
    pub name: String,
    pub label: String,
    pub label_plural: String,
    pub key_prefix: String,
    pub custom: bool,
    pub fields: Vec<FieldDef>,
    pub system: SystemFields,
    /// `(FirstName, LastName, Name)` for person-like objects whose Name is computed.
    pub name_from: Option<(usize, usize, usize)>,
    /// What the API lets a client do with the object, as describe reports it.
    pub flags: ObjectFlags,
    /// The formula fields the org computes on every write.
    pub formulas: Vec<Formula>,
    pub child_relationships: Vec<ChildRelationship>,
    /// Fields not deleted, readable or not, by lower-case name.
    pub(super) by_lower_name: HashMap<String, usize>,
    /// Reference fields not deleted, by lower-case relationship name.
    pub(super) by_lower_relationship: HashMap<String, usize>,
}

impl ObjectDef {
    /// The field with this API name, case-insensitively, if the API user can see it.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.declared_field_index(name)
            .filter(|i| self.fields[*i].readable)
    }

    /// The field with this API name, case-insensitively, readable or not (deleted fields
    /// have no name any more).
    pub fn declared_field_index(&self, name: &str) -> Option<usize> {
        self.by_lower_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// The field with this API name, case-insensitively.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.field_index(name).map(|i| &self.fields[i])
    }

    /// The reference field whose relationship name is this, case-insensitively.
    pub fn relationship_field(&self, relationship: &str) -> Option<usize> {
        self.by_lower_relationship
            .get(&relationship.to_ascii_lowercase())
            .copied()
            .filter(|i| self.fields[*i].readable)
    }

    /// The fields the API user sees, with their positions, in describe order.
    pub fn visible_fields(&self) -> impl Iterator<Item = (usize, &FieldDef)> + '_ {
        self.fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.is_visible())
    }

    /// Indexes of the fields that are upsert keys or unique.
    pub fn indexed_keys(&self) -> impl Iterator<Item = usize> + '_ {
        self.fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.is_indexed_key())
            .map(|(i, _)| i)
    }
}

/// Index of an object in the [`Schema`].
pub type ObjectIndex = u16;

/// All objects of the org.
#[derive(Debug, Clone)]
pub struct Schema {
    objects: Vec<ObjectDef>,
    by_lower_name: HashMap<String, ObjectIndex>,
    by_prefix: HashMap<String, ObjectIndex>,
}

/// A schema declaration that cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema file is not valid JSON for the schema format")]
    Json(#[source] serde_json::Error),
    #[error("object {object:?}: {problem}")]
    Object { object: String, problem: String },
    #[error("object {object:?}, field {field:?}: {problem}")]
    Field {
        object: String,
        field: String,
        problem: String,
    },
}

impl Schema {
    /// The standard objects only.
    pub fn standard() -> Result<Self, SchemaError> {
        Self::with_files(&[])
    }

    /// The standard objects plus the given declarations, applied in order.
    pub fn with_files(files: &[SchemaFile]) -> Result<Self, SchemaError> {
        let standard: SchemaFile =
            serde_json::from_str(STANDARD_OBJECTS).map_err(SchemaError::Json)?;
        let mut specs: Vec<ObjectSpec> = standard.objects;
        for file in files {
            for object in &file.objects {
                if specs
                    .iter()
                    .any(|s| s.name.eq_ignore_ascii_case(&object.name))
                {
                    return Err(object_error(&object.name, "is declared twice"));
                }
                specs.push(object.clone());
            }
        }
        for file in files {
            for (object, fields) in &file.extend {
                let spec = specs
                    .iter_mut()
                    .find(|s| s.name.eq_ignore_ascii_case(object))
                    .ok_or_else(|| object_error(object, "is extended but not declared"))?;
                spec.fields.extend(fields.iter().cloned());
            }
        }
        Self::compile(&specs)
    }

    /// Parses a schema file's text.
    pub fn parse_file(text: &str) -> Result<SchemaFile, SchemaError> {
        serde_json::from_str(text).map_err(SchemaError::Json)
    }

    fn compile(specs: &[ObjectSpec]) -> Result<Self, SchemaError> {
        let mut objects = Vec::with_capacity(specs.len());
        let mut next_custom_prefix = 0_u32;
        for spec in specs {
            let key_prefix = match &spec.key_prefix {
                Some(prefix) => prefix.clone(),
                None => {
                    let prefix = format!("a{next_custom_prefix:02}");
                    next_custom_prefix += 1;
                    prefix
                }
            };
            objects.push(compile_object(spec, key_prefix)?);
        }
        let mut schema = Self {
            objects,
            by_lower_name: HashMap::new(),
            by_prefix: HashMap::new(),
        };
        for (index, object) in schema.objects.iter().enumerate() {
            let index = ObjectIndex::try_from(index)
                .map_err(|_| object_error(&object.name, "too many objects"))?;
            schema
                .by_lower_name
                .insert(object.name.to_ascii_lowercase(), index);
            if schema
                .by_prefix
                .insert(object.key_prefix.clone(), index)
                .is_some()
            {
                return Err(object_error(&object.name, "key prefix is used twice"));
            }
        }
        schema.check_references()?;
        schema.link_children();
        Ok(schema)
    }

    /// The object at an index, to change it (run-time schema changes).
    pub(super) fn object_mut(&mut self, index: ObjectIndex) -> &mut ObjectDef {
        &mut self.objects[usize::from(index)]
    }

    /// Lists every object's child relationships anew, after reference fields changed.
    pub(super) fn relink_children(&mut self) {
        for object in &mut self.objects {
            object.child_relationships.clear();
        }
        self.link_children();
    }

    fn check_references(&self) -> Result<(), SchemaError> {
        for object in &self.objects {
            for field in &object.fields {
                for target in &field.reference_to {
                    if self.object_index(target).is_none() {
                        return Err(field_error(
                            &object.name,
                            &field.name,
                            &format!("references unknown object {target:?}"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn link_children(&mut self) {
        let mut links: Vec<(ObjectIndex, ChildRelationship)> = Vec::new();
        for object in &self.objects {
            for field in &object.fields {
                if field.system || field.deleted || field.field_type != FieldType::Reference {
                    continue;
                }
                for target in &field.reference_to {
                    let Some(target_index) = self.object_index(target) else {
                        continue;
                    };
                    let relationship_name = child_relationship_name(object, field, target);
                    links.push((
                        target_index,
                        ChildRelationship {
                            child_object: object.name.clone(),
                            field: field.name.clone(),
                            relationship_name,
                            cascade_delete: false,
                        },
                    ));
                }
            }
        }
        for (target, link) in links {
            self.objects[usize::from(target)]
                .child_relationships
                .push(link);
        }
    }

    /// All objects, in declaration order.
    pub fn objects(&self) -> &[ObjectDef] {
        &self.objects
    }

    /// The object with this API name, case-insensitively.
    pub fn object_index(&self, name: &str) -> Option<ObjectIndex> {
        self.by_lower_name.get(&name.to_ascii_lowercase()).copied()
    }

    /// The object at an index returned by this schema.
    pub fn object(&self, index: ObjectIndex) -> &ObjectDef {
        &self.objects[usize::from(index)]
    }

    /// The object whose Ids start with this prefix.
    pub fn object_by_prefix(&self, prefix: &str) -> Option<ObjectIndex> {
        self.by_prefix.get(prefix).copied()
    }
}

fn child_relationship_name(child: &ObjectDef, field: &FieldDef, target: &str) -> String {
    if child.custom || field.custom {
        let base = child.name.trim_end_matches("__c");
        return format!("{base}s__r");
    }
    if child.name.eq_ignore_ascii_case(target) {
        return format!("Child{}", child.label_plural.replace(' ', ""));
    }
    child.label_plural.replace(' ', "")
}

pub(super) fn object_error(object: &str, problem: &str) -> SchemaError {
    SchemaError::Object {
        object: object.to_owned(),
        problem: problem.to_owned(),
    }
}

pub(super) fn field_error(object: &str, field: &str, problem: &str) -> SchemaError {
    SchemaError::Field {
        object: object.to_owned(),
        field: field.to_owned(),
        problem: problem.to_owned(),
    }
}

fn label_from_name(name: &str) -> String {
    name.trim_end_matches("__c").replace('_', " ")
}

fn is_valid_api_name(name: &str) -> bool {
    let base = name.strip_suffix("__c").unwrap_or(name);
    let mut chars = base.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !base.contains("__")
        && !base.ends_with('_')
        && name.len() <= 43
}

pub(super) const SYSTEM_FIELD_NAMES: [&str; 8] = [
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
    "OwnerId",
];

fn compile_object(spec: &ObjectSpec, key_prefix: String) -> Result<ObjectDef, SchemaError> {
    if !is_valid_api_name(&spec.name) {
        return Err(object_error(
            &spec.name,
            "is not a valid Salesforce API name",
        ));
    }
    if key_prefix.len() != 3 || !key_prefix.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(object_error(
            &spec.name,
            "key prefix must be three letters or digits",
        ));
    }
    let custom = spec.name.ends_with("__c");
    let label = spec
        .label
        .clone()
        .unwrap_or_else(|| label_from_name(&spec.name));
    let label_plural = spec
        .label_plural
        .clone()
        .unwrap_or_else(|| format!("{label}s"));

    let mut fields = vec![
        system_field("Id", &format!("{label} ID"), FieldType::Id),
        system_field("IsDeleted", "Deleted", FieldType::Boolean),
    ];
    for field in &spec.fields {
        if SYSTEM_FIELD_NAMES
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&field.name))
        {
            return Err(field_error(
                &spec.name,
                &field.name,
                "is a system field and is added by the org",
            ));
        }
        fields.push(compile_field(&spec.name, field)?);
    }
    let owner = if spec.owned {
        let mut owner = system_field("OwnerId", "Owner ID", FieldType::Reference);
        owner.reference_to = vec!["User".to_owned()];
        owner.relationship_name = Some("Owner".to_owned());
        owner.createable = true;
        owner.updateable = true;
        owner.defaulted_on_create = true;
        fields.push(owner);
        Some(fields.len() - 1)
    } else {
        None
    };
    let audit_start = fields.len();
    fields.push(system_field(
        "CreatedDate",
        "Created Date",
        FieldType::Datetime,
    ));
    let mut created_by = system_field("CreatedById", "Created By ID", FieldType::Reference);
    created_by.reference_to = vec!["User".to_owned()];
    created_by.relationship_name = Some("CreatedBy".to_owned());
    fields.push(created_by);
    fields.push(system_field(
        "LastModifiedDate",
        "Last Modified Date",
        FieldType::Datetime,
    ));
    let mut modified_by = system_field(
        "LastModifiedById",
        "Last Modified By ID",
        FieldType::Reference,
    );
    modified_by.reference_to = vec!["User".to_owned()];
    modified_by.relationship_name = Some("LastModifiedBy".to_owned());
    fields.push(modified_by);
    fields.push(system_field(
        "SystemModstamp",
        "System Modstamp",
        FieldType::Datetime,
    ));

    let mut by_lower_name = HashMap::new();
    let mut by_lower_relationship = HashMap::new();
    for (index, field) in fields.iter().enumerate() {
        if by_lower_name
            .insert(field.name.to_ascii_lowercase(), index)
            .is_some()
        {
            return Err(field_error(&spec.name, &field.name, "is declared twice"));
        }
        if let Some(relationship) = &field.relationship_name {
            by_lower_relationship.insert(relationship.to_ascii_lowercase(), index);
        }
    }
    let formulas = compile_formulas(spec, &fields, &by_lower_name)?;
    let name_from = match &spec.name_from {
        Some([first, last]) => {
            let find = |n: &str| {
                by_lower_name
                    .get(&n.to_ascii_lowercase())
                    .copied()
                    .ok_or_else(|| {
                        field_error(&spec.name, n, "is named in nameFrom but not declared")
                    })
            };
            Some((find(first)?, find(last)?, find("Name")?))
        }
        None => None,
    };
    Ok(ObjectDef {
        name: spec.name.clone(),
        label,
        label_plural,
        key_prefix,
        custom,
        system: SystemFields {
            id: 0,
            is_deleted: 1,
            created_date: audit_start,
            created_by: audit_start + 1,
            last_modified_date: audit_start + 2,
            last_modified_by: audit_start + 3,
            system_modstamp: audit_start + 4,
            owner,
        },
        fields,
        name_from,
        flags: ObjectFlags::resolve(&spec.describe, custom),
        formulas,
        child_relationships: Vec::new(),
        by_lower_name,
        by_lower_relationship,
    })
}

/// Resolves the formulas an object declares: each factor must be a number field of it.
fn compile_formulas(
    spec: &ObjectSpec,
    fields: &[FieldDef],
    by_lower_name: &HashMap<String, usize>,
) -> Result<Vec<Formula>, SchemaError> {
    let mut formulas = Vec::new();
    for field_spec in &spec.fields {
        let Some(formula) = &field_spec.formula else {
            continue;
        };
        let index_of = |name: &str| by_lower_name.get(&name.to_ascii_lowercase()).copied();
        let target = index_of(&field_spec.name)
            .ok_or_else(|| field_error(&spec.name, &field_spec.name, "is not declared"))?;
        let mut factors = Vec::new();
        for name in &formula.product {
            let index = index_of(name)
                .filter(|&i| {
                    matches!(fields[i].field_type, FieldType::Int)
                        || fields[i].field_type.is_decimal()
                })
                .ok_or_else(|| {
                    field_error(
                        &spec.name,
                        &field_spec.name,
                        &format!("formula factor {name:?} is not a number field of the object"),
                    )
                })?;
            factors.push(index);
        }
        formulas.push(Formula {
            target,
            factors,
            factor: formula.factor,
        });
    }
    Ok(formulas)
}

fn system_field(name: &str, label: &str, field_type: FieldType) -> FieldDef {
    FieldDef {
        name: name.to_owned(),
        label: label.to_owned(),
        field_type,
        length: field_type.default_length(),
        precision: 0,
        scale: 0,
        digits: 0,
        nillable: false,
        createable: false,
        updateable: false,
        unique: false,
        external_id: false,
        case_sensitive: false,
        id_lookup: field_type == FieldType::Id,
        name_field: false,
        auto_number: false,
        calculated: false,
        defaulted_on_create: true,
        default_value: (field_type == FieldType::Boolean).then_some(Value::Bool(false)),
        picklist_values: Vec::new(),
        restricted_picklist: false,
        reference_to: Vec::new(),
        relationship_name: None,
        custom: false,
        system: true,
        readable: true,
        deleted: false,
        compound: None,
    }
}

/// Compiles one declared field of `object`, with Salesforce's defaults for its type.
pub(super) fn compile_field(object: &str, spec: &FieldSpec) -> Result<FieldDef, SchemaError> {
    let problem = |p: &str| field_error(object, &spec.name, p);
    if !is_valid_api_name(&spec.name) {
        return Err(problem("is not a valid Salesforce API name"));
    }
    let field_type = FieldType::parse(&spec.field_type)
        .filter(|t| *t != FieldType::Id)
        .ok_or_else(|| problem(&format!("unknown field type {:?}", spec.field_type)))?;
    if field_type == FieldType::Reference {
        if spec.reference_to.is_empty() {
            return Err(problem("a reference field needs referenceTo"));
        }
        if spec.relationship_name.is_none() {
            return Err(problem("a reference field needs relationshipName"));
        }
    }
    let is_picklist = matches!(field_type, FieldType::Picklist | FieldType::Multipicklist);
    if is_picklist && spec.picklist_values.is_empty() {
        return Err(problem("a picklist needs picklistValues"));
    }
    if (spec.external_id || spec.unique)
        && !field_type.is_text()
        && field_type != FieldType::Int
        && field_type != FieldType::Double
    {
        return Err(problem(
            "only text and number fields can be external ids or unique",
        ));
    }
    let (precision, scale) = match field_type {
        t if t.is_decimal() => (spec.precision.unwrap_or(18), spec.scale.unwrap_or(2)),
        _ => (0, 0),
    };
    if scale > precision {
        return Err(problem("scale is larger than precision"));
    }
    let length = if field_type.is_text() {
        let length = spec.length.unwrap_or_else(|| field_type.default_length());
        if length == 0 || length > 131_072 {
            return Err(problem("length must be between 1 and 131072"));
        }
        length
    } else {
        field_type.default_length()
    };
    let default_value = match &spec.default_value {
        Some(json) => Some(
            Value::from_declared_default(field_type, json)
                .ok_or_else(|| problem("defaultValue does not fit the field type"))?,
        ),
        None if field_type == FieldType::Boolean => Some(Value::Bool(false)),
        None => None,
    };
    let compound = spec
        .compound
        .as_ref()
        .map(Compound::compile)
        .transpose()
        .map_err(|p| problem(&p))?;
    let calculated = spec.calculated || spec.formula.is_some();
    if spec.formula.is_some() && !field_type.is_decimal() {
        return Err(problem(
            "a formula field must be a number, currency or percent field",
        ));
    }
    let read_only = calculated || spec.auto_number;
    let nillable = !spec.required && field_type != FieldType::Boolean && !spec.auto_number;
    Ok(FieldDef {
        name: spec.name.clone(),
        label: spec
            .label
            .clone()
            .unwrap_or_else(|| label_from_name(&spec.name)),
        field_type,
        length,
        precision,
        scale,
        digits: if field_type == FieldType::Int { 9 } else { 0 },
        nillable,
        createable: spec.createable && !read_only,
        updateable: spec.updateable && !read_only,
        unique: spec.unique,
        external_id: spec.external_id,
        case_sensitive: spec.case_sensitive,
        id_lookup: spec.external_id || spec.unique || spec.name_field,
        name_field: spec.name_field,
        auto_number: spec.auto_number,
        calculated,
        defaulted_on_create: default_value.is_some() || spec.auto_number,
        default_value,
        picklist_values: spec.picklist_values.clone(),
        restricted_picklist: spec.restricted_picklist,
        reference_to: spec.reference_to.clone(),
        relationship_name: spec.relationship_name.clone(),
        custom: spec.name.ends_with("__c"),
        system: false,
        readable: true,
        deleted: false,
        compound,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(json: &str) -> SchemaFile {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn formulas_multiply_number_fields_and_refuse_anything_else() {
        let schema = Schema::standard().unwrap();
        let opportunity = schema.object(schema.object_index("Opportunity").unwrap());
        let formula = &opportunity.formulas[0];
        let mut values = vec![Value::Null; opportunity.fields.len()];
        assert_eq!(formula.evaluate(opportunity, &values), Value::Null);
        values[opportunity.field_index("Amount").unwrap()] = Value::Double(1234.5);
        values[opportunity.field_index("Probability").unwrap()] = Value::Double(33.0);
        assert_eq!(
            formula.evaluate(opportunity, &values),
            Value::Double(407.39)
        );
        assert!(opportunity.field("ExpectedRevenue").unwrap().calculated);

        let text_factor = file(
            r#"{"objects": [{"name": "Thing__c", "fields": [
                {"name": "Label__c", "type": "string"},
                {"name": "Twice__c", "type": "double", "formula": {"product": ["Label__c"], "factor": 2}}
            ]}]}"#,
        );
        let error = Schema::with_files(&[text_factor]).unwrap_err().to_string();
        assert!(error.contains("Label__c"), "{error}");
        let text_formula = file(
            r#"{"objects": [{"name": "Thing__c", "fields": [
                {"name": "Code__c", "type": "string", "formula": {"product": []}}
            ]}]}"#,
        );
        assert!(Schema::with_files(&[text_formula]).is_err());
    }

    #[test]
    fn standard_objects_compile_with_system_fields() {
        let schema = Schema::standard().unwrap();
        for name in ["Account", "Contact", "Lead", "Opportunity", "Case", "User"] {
            let object = schema.object(schema.object_index(name).unwrap());
            for system in [
                "Id",
                "IsDeleted",
                "CreatedDate",
                "SystemModstamp",
                "LastModifiedById",
            ] {
                assert!(object.field(system).is_some(), "{name}.{system}");
            }
        }
        let user = schema.object(schema.object_index("user").unwrap());
        assert!(user.system.owner.is_none(), "User has no owner");
        let contact = schema.object(schema.object_index("CONTACT").unwrap());
        assert!(contact.name_from.is_some());
        assert_eq!(
            contact.fields[contact.relationship_field("account").unwrap()].name,
            "AccountId"
        );
    }

    #[test]
    fn custom_objects_get_prefixes_and_extensions_apply() {
        let file = Schema::parse_file(
            r#"{"objects":[{"name":"Invoice__c","fields":[
                {"name":"Code__c","type":"string","length":20,"externalId":true,"unique":true},
                {"name":"Account__c","type":"reference","referenceTo":["Account"],
                 "relationshipName":"Account__r"}]}],
               "extend":{"Account":[{"name":"Region__c","type":"string"}]}}"#,
        )
        .unwrap();
        let schema = Schema::with_files(&[file]).unwrap();
        let invoice = schema.object(schema.object_index("invoice__c").unwrap());
        assert_eq!(invoice.key_prefix, "a00");
        assert!(invoice.field("code__c").unwrap().id_lookup);
        let account = schema.object(schema.object_index("Account").unwrap());
        assert!(account.field("Region__c").unwrap().custom);
        assert!(
            account
                .child_relationships
                .iter()
                .any(|c| c.relationship_name == "Invoices__r"),
            "custom child relationship is listed on the parent"
        );
    }

    #[test]
    fn bad_declarations_name_object_and_field() {
        let cases = [
            (
                r#"{"objects":[{"name":"Bad Name","fields":[]}]}"#,
                "Bad Name",
            ),
            (
                r#"{"objects":[{"name":"X__c","fields":[{"name":"Id","type":"string"}]}]}"#,
                "system field",
            ),
            (
                r#"{"objects":[{"name":"X__c","fields":[{"name":"A__c","type":"blob"}]}]}"#,
                "unknown field type",
            ),
            (
                r#"{"objects":[{"name":"X__c","fields":[{"name":"R__c","type":"reference",
                   "referenceTo":["Nope__c"],"relationshipName":"R__r"}]}]}"#,
                "unknown object",
            ),
            (r#"{"extend":{"Nope":[]}}"#, "not declared"),
        ];
        for (text, expected) in cases {
            let error = Schema::parse_file(text)
                .and_then(|file| Schema::with_files(&[file]))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(expected),
                "{error:?} should mention {expected:?}"
            );
        }
    }
}
