//! The body of a change event: which top-level fields it has, as Salesforce lays them out.
//!
//! Change events do not carry an object's fields one for one. Components of a compound
//! field (an address, a person's name) travel nested inside it, under their short names
//! (`BillingAddress: {Street, City, …}`, `Name: {Salutation, FirstName, LastName}`), and the
//! changed ones are named `BillingAddress.City` in `changedFields`. Formula fields are not
//! in change events at all, and neither are `IsDeleted` and `SystemModstamp`. A field named
//! like a compound (Contact's full-name `Name`) gives way to the compound. Both wire
//! protocols (CometD JSON, Pub/Sub Avro) build their bodies from the same [`Slot`] list, so
//! they always agree.

use crate::org::{CompoundKind, ObjectDef};

/// One top-level field of an event body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// A plain field, by its index in the object's field list.
    Field(usize),
    /// A compound field and, for each of its kind's components in schema order, the object
    /// field behind it (none when the object has no such field or the user cannot see it).
    Compound {
        name: String,
        kind: CompoundKind,
        components: Vec<Option<usize>>,
    },
}

/// The top-level fields of an object's change events, in the object's field order (a
/// compound where its first component is).
pub fn slots(object: &ObjectDef) -> Vec<Slot> {
    let compound_names: Vec<&str> = object
        .visible_fields()
        .filter_map(|(_, f)| f.compound.as_ref().map(|c| c.field.as_str()))
        .collect();
    let mut slots: Vec<Slot> = Vec::new();
    for (index, field) in object.visible_fields() {
        let left_out = index == object.system.is_deleted
            || index == object.system.system_modstamp
            || field.calculated
            || (field.compound.is_none() && compound_names.contains(&field.name.as_str()));
        if left_out {
            continue;
        }
        let Some(compound) = &field.compound else {
            slots.push(Slot::Field(index));
            continue;
        };
        let position = compound
            .kind
            .components()
            .iter()
            .position(|(c, _)| *c == compound.component);
        let existing = slots.iter_mut().find_map(|slot| match slot {
            Slot::Compound {
                name, components, ..
            } if *name == compound.field => Some(components),
            _ => None,
        });
        let components = match existing {
            Some(components) => components,
            None => {
                slots.push(Slot::Compound {
                    name: compound.field.clone(),
                    kind: compound.kind,
                    components: vec![None; compound.kind.components().len()],
                });
                match slots.last_mut() {
                    Some(Slot::Compound { components, .. }) => components,
                    _ => continue,
                }
            }
        };
        if let Some(slot) = position.and_then(|p| components.get_mut(p)) {
            *slot = Some(index);
        }
    }
    slots
}

/// How an event names a changed field: `BillingAddress.City` for a component, the field's
/// own name otherwise; none for a field events never carry.
pub fn changed_name(object: &ObjectDef, slots: &[Slot], field: usize) -> Option<String> {
    slots.iter().find_map(|slot| match slot {
        Slot::Field(f) if *f == field => object.fields.get(field).map(|d| d.name.clone()),
        Slot::Compound {
            name,
            kind,
            components,
        } => components
            .iter()
            .position(|c| *c == Some(field))
            .and_then(|p| kind.components().get(p))
            .map(|(component, _)| format!("{name}.{component}")),
        Slot::Field(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::Schema;

    fn object_slots(schema: &Schema, name: &str) -> (Vec<Slot>, Vec<String>) {
        let object = schema.object(schema.object_index(name).unwrap());
        let slots = slots(object);
        let names = slots
            .iter()
            .map(|s| match s {
                Slot::Field(i) => object.fields[*i].name.clone(),
                Slot::Compound { name, .. } => format!("{name}{{}}"),
            })
            .collect();
        (slots, names)
    }

    #[test]
    fn addresses_and_names_nest_and_formula_fields_are_left_out() {
        let schema = Schema::standard().unwrap();
        let (_, account) = object_slots(&schema, "Account");
        assert!(account.contains(&"BillingAddress{}".to_owned()));
        assert!(account.contains(&"ShippingAddress{}".to_owned()));
        assert!(!account.iter().any(|n| n == "BillingCity"));
        assert!(
            !account
                .iter()
                .any(|n| n == "IsDeleted" || n == "SystemModstamp")
        );
        let (slots, contact) = object_slots(&schema, "Contact");
        assert_eq!(contact.iter().filter(|n| *n == "Name{}").count(), 1);
        assert!(!contact.iter().any(|n| n == "Name" || n == "FirstName"));
        let contact_def = schema.object(schema.object_index("Contact").unwrap());
        let first = contact_def.field_index("FirstName").unwrap();
        assert_eq!(
            changed_name(contact_def, &slots, first).as_deref(),
            Some("Name.FirstName")
        );
        let (_, opportunity) = object_slots(&schema, "Opportunity");
        assert!(
            !opportunity.iter().any(|n| n == "ExpectedRevenue"),
            "a formula field"
        );
        assert!(opportunity.iter().any(|n| n == "Amount"));
    }
}
