//! The service's `$metadata`: CSDL XML (OData 4.0 has no JSON CSDL), one schema with an
//! entity type per published relation and a container listing their entity sets.
//!
//! Names: entity sets and types are named `<schema>$<table>`, as Heroku External Objects
//! names them, so external objects synced from a Heroku service keep their external
//! names. `$` is not an identifier character in OData 4.0's ABNF (letters, digits and
//! `_`); Salesforce Connect accepts it, as Heroku's services show, and a strict client
//! may not (docs/odata.md says so).
//!
//! Precision: Postgres keeps microseconds, so `DateTimeOffset` and `TimeOfDay` declare
//! `Precision="6"` (OData's default is 0, whole seconds); a `numeric` without a declared
//! scale declares `Scale="variable"` (OData's default is 0, integers).

use std::fmt::Write as _;

use pgforce_store::odata::{EdmType, EntitySet};

/// The schema's namespace (entity types are `pgforce.<set>`).
pub const NAMESPACE: &str = "pgforce";

/// The entity container's name.
const CONTAINER: &str = "pgforce";

/// Escapes text for an XML attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            other => out.push(other),
        }
    }
    out
}

/// The `Type` and facets of a property of this Edm type.
fn type_and_facets(edm: &EdmType) -> (&'static str, String) {
    match edm {
        EdmType::Boolean => ("Edm.Boolean", String::new()),
        EdmType::Int16 => ("Edm.Int16", String::new()),
        EdmType::Int32 => ("Edm.Int32", String::new()),
        EdmType::Int64 => ("Edm.Int64", String::new()),
        EdmType::Decimal { precision, scale } => {
            let mut facets = String::new();
            if let Some(precision) = precision {
                let _ = write!(facets, " Precision=\"{precision}\"");
            }
            match scale {
                Some(scale) => {
                    let _ = write!(facets, " Scale=\"{scale}\"");
                }
                None => facets.push_str(" Scale=\"variable\""),
            }
            ("Edm.Decimal", facets)
        }
        EdmType::Single => ("Edm.Single", String::new()),
        EdmType::Double => ("Edm.Double", String::new()),
        EdmType::String { max_length } => (
            "Edm.String",
            max_length.map_or_else(String::new, |n| format!(" MaxLength=\"{n}\"")),
        ),
        EdmType::Date => ("Edm.Date", String::new()),
        EdmType::DateTimeOffset => ("Edm.DateTimeOffset", " Precision=\"6\"".to_owned()),
        EdmType::TimeOfDay => ("Edm.TimeOfDay", " Precision=\"6\"".to_owned()),
        EdmType::Guid => ("Edm.Guid", String::new()),
        EdmType::Binary => ("Edm.Binary", String::new()),
    }
}

/// The metadata document of a service publishing `sets`.
pub fn document(sets: &[EntitySet]) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\" Version=\"4.0\">\n\
         <edmx:DataServices>\n",
    );
    let _ = writeln!(
        xml,
        "<Schema xmlns=\"http://docs.oasis-open.org/odata/ns/edm\" Namespace=\"{NAMESPACE}\">"
    );
    for set in sets {
        let _ = writeln!(xml, "<EntityType Name=\"{}\">", escape(&set.name));
        xml.push_str("<Key>");
        for key in &set.key {
            let _ = write!(xml, "<PropertyRef Name=\"{}\"/>", escape(key));
        }
        xml.push_str("</Key>\n");
        for property in &set.properties {
            let (edm, facets) = type_and_facets(&property.edm);
            let nullable = if property.nullable && !set.key.contains(&property.name) {
                "true"
            } else {
                "false"
            };
            let _ = writeln!(
                xml,
                "<Property Name=\"{}\" Type=\"{edm}\" Nullable=\"{nullable}\"{facets}/>",
                escape(&property.name)
            );
        }
        xml.push_str("</EntityType>\n");
    }
    let _ = writeln!(xml, "<EntityContainer Name=\"{CONTAINER}\">");
    for set in sets {
        let name = escape(&set.name);
        let _ = writeln!(
            xml,
            "<EntitySet Name=\"{name}\" EntityType=\"{NAMESPACE}.{name}\"/>"
        );
    }
    xml.push_str("</EntityContainer>\n</Schema>\n</edmx:DataServices>\n</edmx:Edmx>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_values_are_escaped() {
        assert_eq!(escape("a\"b<c>&'"), "a&quot;b&lt;c&gt;&amp;&apos;");
    }

    #[test]
    fn facets_follow_the_column() {
        assert_eq!(
            type_and_facets(&EdmType::Decimal {
                precision: Some(18),
                scale: Some(2)
            }),
            ("Edm.Decimal", " Precision=\"18\" Scale=\"2\"".to_owned())
        );
        assert_eq!(
            type_and_facets(&EdmType::Decimal {
                precision: None,
                scale: None
            })
            .1,
            " Scale=\"variable\""
        );
        assert_eq!(
            type_and_facets(&EdmType::String {
                max_length: Some(80)
            })
            .1,
            " MaxLength=\"80\""
        );
    }
}
