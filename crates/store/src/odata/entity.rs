//! What a published relation looks like to OData: read from `pg_catalog`.

use tokio_postgres::GenericClient;

use crate::error::{Context as _, Error, Result};

/// Whether a relation can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    /// A table (writable).
    Table,
    /// A view or materialized view (read only).
    View,
}

/// The OData primitive type of a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdmType {
    /// `Edm.Boolean`.
    Boolean,
    /// `Edm.Int16`.
    Int16,
    /// `Edm.Int32`.
    Int32,
    /// `Edm.Int64`.
    Int64,
    /// `Edm.Decimal` with the column's precision and scale, when declared.
    Decimal {
        /// Total digits.
        precision: Option<u32>,
        /// Digits after the point.
        scale: Option<u32>,
    },
    /// `Edm.Single`.
    Single,
    /// `Edm.Double`.
    Double,
    /// `Edm.String` with the column's length limit, when declared.
    String {
        /// Most characters.
        max_length: Option<u32>,
    },
    /// `Edm.Date`.
    Date,
    /// `Edm.DateTimeOffset` (a timestamp without time zone is read as UTC).
    DateTimeOffset,
    /// `Edm.TimeOfDay`.
    TimeOfDay,
    /// `Edm.Guid`.
    Guid,
    /// `Edm.Binary` (base64 in JSON).
    Binary,
}

/// The Postgres type a column stores (a domain resolved to its base type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTypeName {
    /// The type's schema (`pg_catalog` for built-in types).
    pub schema: String,
    /// The type's name as `pg_type` spells it (`int4`, `timestamptz`, `citext`).
    pub name: String,
}

/// One column published as an OData property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// The column's name, as is.
    pub name: String,
    /// Its OData type.
    pub edm: EdmType,
    /// Whether it may be null.
    pub nullable: bool,
    /// The Postgres type it stores.
    pub pg_type: PgTypeName,
    /// Whether an insert may leave it out (a default, serial or identity column).
    pub has_default: bool,
}

/// A relation published as an OData entity set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitySet {
    /// `<schema>$<table>`, as Heroku External Objects names entity sets.
    pub name: String,
    /// The relation's schema.
    pub schema: String,
    /// The relation's name.
    pub table: String,
    /// Table or view.
    pub kind: RelationKind,
    /// The key properties: the primary key's columns in order, or `id` for a view.
    pub key: Vec<String>,
    /// The published columns, in column order.
    pub properties: Vec<Property>,
    /// `systemmodstamp` when the relation has it: the rows' ETag.
    pub etag_column: Option<String>,
    /// Columns left out because OData cannot carry their type: (column, Postgres type).
    pub omitted: Vec<(String, String)>,
}

impl EntitySet {
    /// The property of that name.
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }
}

/// The relation and its kind (`r`, `p`, `v`, `m`).
const RELATION_SQL: &str = "select c.oid, c.relkind::text from pg_catalog.pg_class c \
     join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
     where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p', 'v', 'm')";

/// The columns with their base types (domains followed down to what they stand for).
const COLUMNS_SQL: &str = "select a.attname::text, a.attnotnull, \
       (a.atthasdef or a.attidentity <> '')::bool, base.nspname::text, base.typname::text, \
       base.typmod, pg_catalog.format_type(a.atttypid, a.atttypmod) \
     from pg_catalog.pg_attribute a \
     cross join lateral ( \
       with recursive chain(oid, typmod, depth) as ( \
         select a.atttypid, a.atttypmod, 0 \
         union all \
         select t.typbasetype, t.typtypmod, chain.depth + 1 from chain \
           join pg_catalog.pg_type t on t.oid = chain.oid \
           where t.typtype = 'd' and chain.depth < 32) \
       select n.nspname, t.typname, chain.typmod from chain \
         join pg_catalog.pg_type t on t.oid = chain.oid \
         join pg_catalog.pg_namespace n on n.oid = t.typnamespace \
         where t.typtype <> 'd' limit 1) base(nspname, typname, typmod) \
     where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped \
     order by a.attnum";

/// The primary key's columns in key order.
const PRIMARY_KEY_SQL: &str = "select a.attname::text from pg_catalog.pg_index i \
     cross join lateral unnest(i.indkey) with ordinality as k(attnum, position) \
     join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum \
     where i.indrelid = $1 and i.indisprimary order by k.position";

/// The column a view must have to serve as its key.
const VIEW_KEY: &str = "id";
/// The column whose value is a row's ETag.
const ETAG_COLUMN: &str = "systemmodstamp";

/// Reads `pg_catalog`: `None` if the relation does not exist; [`Error::NotPublishable`]
/// when a table has no primary key or a view has no column named `id`.
pub async fn describe(
    client: &impl GenericClient,
    schema: &str,
    table: &str,
) -> Result<Option<EntitySet>> {
    let relation = format!("{schema}.{table}");
    let Some(row) = client
        .query_opt(RELATION_SQL, &[&schema, &table])
        .await
        .context(|| format!("looking up relation {relation}"))?
    else {
        return Ok(None);
    };
    let oid: u32 = row.get(0);
    let relkind: String = row.get(1);
    let kind = if matches!(relkind.as_str(), "v" | "m") {
        RelationKind::View
    } else {
        RelationKind::Table
    };
    let mut properties = Vec::new();
    let mut omitted = Vec::new();
    for row in client
        .query(COLUMNS_SQL, &[&oid])
        .await
        .context(|| format!("reading the columns of {relation}"))?
    {
        let name: String = row.get(0);
        let pg_type = PgTypeName {
            schema: row.get(3),
            name: row.get(4),
        };
        let typmod: i32 = row.get(5);
        match edm_type(&pg_type, typmod) {
            Some(edm) => properties.push(Property {
                name,
                edm,
                nullable: !row.get::<_, bool>(1),
                pg_type,
                has_default: row.get(2),
            }),
            None => omitted.push((name, row.get(6))),
        }
    }
    let not_publishable = |reason: String| Error::NotPublishable {
        relation: relation.clone(),
        reason,
    };
    let key: Vec<String> = match kind {
        RelationKind::Table => client
            .query(PRIMARY_KEY_SQL, &[&oid])
            .await
            .context(|| format!("reading the primary key of {relation}"))?
            .iter()
            .map(|row| row.get(0))
            .collect(),
        RelationKind::View => {
            if !properties.iter().any(|p| p.name == VIEW_KEY)
                && !omitted.iter().any(|(name, _)| name == VIEW_KEY)
            {
                return Err(not_publishable(
                    "views need a column named id with unique values".to_owned(),
                ));
            }
            vec![VIEW_KEY.to_owned()]
        }
    };
    if key.is_empty() {
        return Err(not_publishable(
            "tables need a primary key (it becomes the entity key)".to_owned(),
        ));
    }
    for column in &key {
        if let Some((_, pg_type)) = omitted.iter().find(|(name, _)| name == column) {
            return Err(not_publishable(format!(
                "key column {column} has type {pg_type}, which OData cannot carry"
            )));
        }
    }
    let etag_column = properties
        .iter()
        .find(|p| p.name == ETAG_COLUMN && p.edm == EdmType::DateTimeOffset)
        .map(|p| p.name.clone());
    Ok(Some(EntitySet {
        name: format!("{schema}${table}"),
        schema: schema.to_owned(),
        table: table.to_owned(),
        kind,
        key,
        properties,
        etag_column,
        omitted,
    }))
}

/// The Edm type of a base type, `None` when OData cannot carry it.
fn edm_type(pg_type: &PgTypeName, typmod: i32) -> Option<EdmType> {
    let modifier = u32::try_from(typmod).ok().and_then(|m| m.checked_sub(4));
    if pg_type.name == "citext" {
        return Some(EdmType::String { max_length: None });
    }
    if pg_type.schema != "pg_catalog" {
        return None;
    }
    Some(match pg_type.name.as_str() {
        "bool" => EdmType::Boolean,
        "int2" => EdmType::Int16,
        "int4" => EdmType::Int32,
        "int8" => EdmType::Int64,
        "numeric" => EdmType::Decimal {
            precision: modifier.map(|m| (m >> 16) & 0xffff),
            scale: modifier.map(|m| m & 0xffff),
        },
        "float4" => EdmType::Single,
        "float8" => EdmType::Double,
        "text" => EdmType::String { max_length: None },
        "varchar" | "bpchar" => EdmType::String {
            max_length: modifier,
        },
        "date" => EdmType::Date,
        "timestamp" | "timestamptz" => EdmType::DateTimeOffset,
        "time" => EdmType::TimeOfDay,
        "uuid" => EdmType::Guid,
        "bytea" => EdmType::Binary,
        _ => return None,
    })
}

impl EdmType {
    /// The type's name in CSDL (`Edm.Int32`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Boolean => "Edm.Boolean",
            Self::Int16 => "Edm.Int16",
            Self::Int32 => "Edm.Int32",
            Self::Int64 => "Edm.Int64",
            Self::Decimal { .. } => "Edm.Decimal",
            Self::Single => "Edm.Single",
            Self::Double => "Edm.Double",
            Self::String { .. } => "Edm.String",
            Self::Date => "Edm.Date",
            Self::DateTimeOffset => "Edm.DateTimeOffset",
            Self::TimeOfDay => "Edm.TimeOfDay",
            Self::Guid => "Edm.Guid",
            Self::Binary => "Edm.Binary",
        }
    }
}
