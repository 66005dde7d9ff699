//! Which events a CometD channel name stands for.
//!
//! Salesforce names Change Data Capture channels after the change event entity
//! (`/data/AccountChangeEvent`, `/data/Invoice__ChangeEvent` for `Invoice__c`, and
//! `/data/ChangeEvents` for every selected object) and PushTopic channels after the topic
//! (`/topic/<Name>`). A name is resolved once, at subscribe time, so delivery compares
//! object indexes and record references instead of strings.

use crate::org::{ObjectIndex, Org, RecordRef, Schema};

/// The channel carrying every Change Data Capture event of the org.
pub const ALL_CHANGE_EVENTS: &str = "/data/ChangeEvents";

/// What a subscription listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `/data/ChangeEvents`: every object selected for Change Data Capture.
    AllChanges,
    /// `/data/<Entity>ChangeEvent`: one object's change events.
    Entity(ObjectIndex),
    /// `/topic/<Name>`: a PushTopic, by its record.
    Topic(RecordRef),
}

/// Resolves a channel name, or None when no such channel exists.
pub fn resolve(org: &Org, name: &str) -> Option<Channel> {
    if name == ALL_CHANGE_EVENTS {
        return Some(Channel::AllChanges);
    }
    if let Some(entity) = name.strip_prefix("/data/") {
        return object_of_change_entity(org.schema(), entity).map(Channel::Entity);
    }
    let topic = name.strip_prefix("/topic/")?;
    super::push_topic::by_name(org, topic).map(Channel::Topic)
}

/// The object a change event entity name stands for: `AccountChangeEvent` → Account,
/// `Invoice__ChangeEvent` → Invoice__c.
pub fn object_of_change_entity(schema: &Schema, entity: &str) -> Option<ObjectIndex> {
    if let Some(custom) = entity.strip_suffix("__ChangeEvent") {
        return schema
            .object_index(&format!("{custom}__c"))
            .filter(|o| schema.object(*o).custom);
    }
    let standard = entity.strip_suffix("ChangeEvent")?;
    schema
        .object_index(standard)
        .filter(|o| !schema.object(*o).custom)
}

/// The change event entity name of an object: `AccountChangeEvent`, `Invoice__ChangeEvent`.
pub fn change_entity_name(schema: &Schema, object: ObjectIndex) -> String {
    let name = &schema.object(object).name;
    match name.strip_suffix("__c") {
        Some(custom) => format!("{custom}__ChangeEvent"),
        None => format!("{name}ChangeEvent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_entity_names_map_to_standard_and_custom_objects() {
        let schema = Schema::standard().unwrap();
        let account = schema.object_index("Account").unwrap();
        assert_eq!(
            object_of_change_entity(&schema, "AccountChangeEvent"),
            Some(account)
        );
        assert_eq!(change_entity_name(&schema, account), "AccountChangeEvent");
        assert_eq!(object_of_change_entity(&schema, "Account"), None);
        assert_eq!(object_of_change_entity(&schema, "NoSuchChangeEvent"), None);
        assert_eq!(
            object_of_change_entity(&schema, "Account__ChangeEvent"),
            None
        );
    }
}
