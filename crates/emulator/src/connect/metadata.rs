//! Reads an OData 4.0 service's `$metadata` (CSDL XML) into the entity sets Validate and
//! Sync offers as tables: each set's name, key and typed properties.
//!
//! Only what sync needs is read: `Schema` namespaces and aliases, `EntityType` with `Key`
//! and `Property` (type, `Nullable`, `MaxLength`, `Precision`, `Scale`), `BaseType`
//! inheritance, and `EntityContainer/EntitySet`. Anything else (navigation properties,
//! annotations, functions) is skipped, as the adapter ignores it.

use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// One property of an entity type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub name: String,
    /// The type as written, e.g. `Edm.String`.
    pub edm_type: String,
    pub nullable: bool,
    /// `MaxLength`: `None` when absent, `Some(None)` for `max`.
    pub max_length: Option<Option<u32>>,
    pub precision: Option<u32>,
    pub scale: Option<u32>,
}

/// An entity set with its entity type resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitySet {
    pub name: String,
    /// Key property names, in key order.
    pub key: Vec<String>,
    pub properties: Vec<Property>,
}

#[derive(Debug, Default)]
struct EntityType {
    base: Option<String>,
    key: Vec<String>,
    properties: Vec<Property>,
}

/// Parses a CSDL document; the error says what is wrong with it.
pub fn parse(text: &str) -> Result<Vec<EntitySet>, String> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut types: HashMap<String, EntityType> = HashMap::new();
    let mut sets: Vec<(String, String)> = Vec::new();
    let mut aliases: HashMap<String, String> = HashMap::new();
    let mut namespace = String::new();
    let mut current: Option<(String, EntityType)> = None;
    let mut in_key = false;
    let mut saw_root = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("not XML at byte {}: {e}", reader.buffer_position()))?;
        let (element, closes) = match &event {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            Event::End(e) => {
                match e.local_name().as_ref() {
                    b"EntityType" => {
                        if let Some((name, entity)) = current.take() {
                            types.insert(name, entity);
                        }
                    }
                    b"Key" => in_key = false,
                    _ => {}
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let Some(element) = element else { continue };
        match element.local_name().as_ref() {
            b"Edmx" => {
                saw_root = true;
                let version = attribute(&element, "Version")?.unwrap_or_default();
                if !version.starts_with('4') {
                    return Err(format!(
                        "the service speaks OData {version}, not 4.0 (edmx:Edmx Version)"
                    ));
                }
            }
            b"Schema" => {
                namespace = attribute(&element, "Namespace")?.unwrap_or_default();
                if let Some(alias) = attribute(&element, "Alias")? {
                    aliases.insert(alias, namespace.clone());
                }
            }
            b"EntityType" => {
                let name = required(&element, "Name")?;
                let entity = EntityType {
                    base: attribute(&element, "BaseType")?,
                    ..EntityType::default()
                };
                if closes {
                    types.insert(format!("{namespace}.{name}"), entity);
                } else {
                    current = Some((format!("{namespace}.{name}"), entity));
                }
            }
            b"Key" => in_key = !closes,
            b"PropertyRef" if in_key => {
                if let Some((_, entity)) = current.as_mut() {
                    entity.key.push(required(&element, "Name")?);
                }
            }
            b"Property" => {
                if let Some((_, entity)) = current.as_mut() {
                    entity.properties.push(property(&element)?);
                }
            }
            b"EntitySet" => {
                sets.push((
                    required(&element, "Name")?,
                    required(&element, "EntityType")?,
                ));
            }
            _ => {}
        }
    }
    if !saw_root {
        return Err("not a CSDL document (no edmx:Edmx element)".to_owned());
    }
    sets.into_iter()
        .map(|(name, type_name)| resolve(&types, &aliases, name, &type_name))
        .collect()
}

/// An entity set with its type's key and properties, base types first.
fn resolve(
    types: &HashMap<String, EntityType>,
    aliases: &HashMap<String, String>,
    name: String,
    type_name: &str,
) -> Result<EntitySet, String> {
    let mut key = Vec::new();
    let mut chain: Vec<&EntityType> = Vec::new();
    let mut next = Some(type_name.to_owned());
    while let Some(type_name) = next {
        let full = qualified(aliases, &type_name);
        let entity = types.get(&full).ok_or_else(|| {
            format!("entity set {name:?}: its entity type {type_name:?} is not declared")
        })?;
        if chain.len() > 32 {
            return Err(format!("entity set {name:?}: BaseType chain does not end"));
        }
        if key.is_empty() {
            key.clone_from(&entity.key);
        }
        chain.push(entity);
        next = entity.base.clone();
    }
    let properties: Vec<Property> = chain
        .iter()
        .rev()
        .flat_map(|t| t.properties.iter().cloned())
        .collect();
    if key.is_empty() {
        return Err(format!("entity set {name:?}: its entity type has no Key"));
    }
    if let Some(missing) = key
        .iter()
        .find(|k| !properties.iter().any(|p| &p.name == *k))
    {
        return Err(format!(
            "entity set {name:?}: key property {missing:?} is not a property"
        ));
    }
    Ok(EntitySet {
        name,
        key,
        properties,
    })
}

/// `Alias.Type` → `Namespace.Type`.
fn qualified(aliases: &HashMap<String, String>, name: &str) -> String {
    match name.rsplit_once('.') {
        Some((prefix, local)) => match aliases.get(prefix) {
            Some(namespace) => format!("{namespace}.{local}"),
            None => name.to_owned(),
        },
        None => name.to_owned(),
    }
}

fn property(element: &BytesStart<'_>) -> Result<Property, String> {
    let name = required(element, "Name")?;
    let number = |attr: &str| -> Result<Option<u32>, String> {
        Ok(attribute(element, attr)?.and_then(|v| v.parse().ok()))
    };
    let max_length = attribute(element, "MaxLength")?.map(|v| {
        if v.eq_ignore_ascii_case("max") {
            None
        } else {
            v.parse().ok()
        }
    });
    Ok(Property {
        edm_type: required(element, "Type")?,
        nullable: attribute(element, "Nullable")?.is_none_or(|v| v != "false"),
        max_length,
        precision: number("Precision")?,
        scale: number("Scale")?,
        name,
    })
}

fn attribute(element: &BytesStart<'_>, name: &str) -> Result<Option<String>, String> {
    let attr = element
        .try_get_attribute(name)
        .map_err(|e| format!("attribute {name}: {e}"))?;
    attr.map(|a| {
        a.unescape_value()
            .map(|v| v.into_owned())
            .map_err(|e| format!("attribute {name}: {e}"))
    })
    .transpose()
}

fn required(element: &BytesStart<'_>, name: &str) -> Result<String, String> {
    attribute(element, name)?.ok_or_else(|| {
        format!(
            "<{}> has no {name} attribute",
            String::from_utf8_lossy(element.local_name().as_ref())
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSDL: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="pgforce" Alias="pg" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="orders">
        <Key><PropertyRef Name="id"/></Key>
        <Property Name="id" Type="Edm.Int32" Nullable="false"/>
        <Property Name="title" Type="Edm.String" MaxLength="80"/>
        <Property Name="notes" Type="Edm.String" MaxLength="max"/>
        <Property Name="amount" Type="Edm.Decimal" Precision="12" Scale="2"/>
        <NavigationProperty Name="lines" Type="Collection(pgforce.lines)"/>
      </EntityType>
      <EntityType Name="lines">
        <Key><PropertyRef Name="order_id"/><PropertyRef Name="line"/></Key>
        <Property Name="order_id" Type="Edm.Int32" Nullable="false"/>
        <Property Name="line" Type="Edm.Int16" Nullable="false"/>
      </EntityType>
      <EntityContainer Name="Container">
        <EntitySet Name="public$orders" EntityType="pg.orders"/>
        <EntitySet Name="public$lines" EntityType="pgforce.lines"/>
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>"#;

    #[test]
    fn entity_sets_come_with_keys_and_typed_properties() {
        let sets = parse(CSDL).unwrap();
        assert_eq!(sets.len(), 2);
        let orders = &sets[0];
        assert_eq!(orders.name, "public$orders");
        assert_eq!(orders.key, vec!["id"]);
        assert_eq!(orders.properties.len(), 4);
        assert!(!orders.properties[0].nullable);
        assert_eq!(orders.properties[1].max_length, Some(Some(80)));
        assert_eq!(orders.properties[2].max_length, Some(None));
        assert_eq!(orders.properties[3].precision, Some(12));
        assert_eq!(sets[1].key, vec!["order_id", "line"]);
    }

    #[test]
    fn documents_that_are_not_csdl_are_refused() {
        assert!(parse("{\"value\":[]}").unwrap_err().contains("CSDL"));
        assert!(parse("<html><body>login</body></html>").is_err());
        let v2 = CSDL.replace("Version=\"4.0\"", "Version=\"1.0\"");
        assert!(parse(&v2).unwrap_err().contains("OData 1.0"));
        let keyless = CSDL.replace("<Key><PropertyRef Name=\"id\"/></Key>", "");
        assert!(parse(&keyless).unwrap_err().contains("no Key"));
    }
}
