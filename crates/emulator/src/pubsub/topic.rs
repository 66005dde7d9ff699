//! Pub/Sub topic names for Change Data Capture, and the objects they stand for.

use crate::org::{ObjectDef, ObjectIndex, Schema};

/// The channel of every object selected for Change Data Capture.
pub const ALL_CHANGES: &str = "/data/ChangeEvents";

/// What a topic name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// `/data/ChangeEvents`: every selected object.
    AllChanges,
    /// `/data/<Object>ChangeEvent` (standard) or `/data/<Name>__ChangeEvent` (custom).
    Entity(ObjectIndex),
}

impl Topic {
    /// Whether an event on this object belongs to the topic.
    pub fn includes(self, object: ObjectIndex) -> bool {
        match self {
            Self::AllChanges => true,
            Self::Entity(own) => own == object,
        }
    }
}

/// Why a topic name is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicError {
    /// No such topic in this org.
    NotFound(String),
    /// A kind of topic the emulator does not serve (platform events, custom channels).
    Unsupported(String),
}

impl TopicError {
    /// The message sent to the caller.
    pub fn message(&self) -> String {
        match self {
            Self::NotFound(name) => format!("topic {name} not found"),
            Self::Unsupported(name) => format!(
                "topic {name} is not supported by the emulator: only Change Data Capture topics (/data/ChangeEvents, /data/<Object>ChangeEvent) are served"
            ),
        }
    }
}

/// The change event name of an object: `AccountChangeEvent`, `Invoice__ChangeEvent`.
pub fn event_name(object: &ObjectDef) -> String {
    match object.name.strip_suffix("__c") {
        Some(stem) if object.custom => format!("{stem}__ChangeEvent"),
        _ => format!("{}ChangeEvent", object.name),
    }
}

/// The topic name of one object's change events.
pub fn topic_name(object: &ObjectDef) -> String {
    format!("/data/{}", event_name(object))
}

/// Resolves a topic name against the org's schema.
pub fn resolve(schema: &Schema, name: &str) -> Result<Topic, TopicError> {
    if name == ALL_CHANGES {
        return Ok(Topic::AllChanges);
    }
    if name.starts_with("/event/") || name.ends_with("__chn") {
        return Err(TopicError::Unsupported(name.to_owned()));
    }
    let not_found = || TopicError::NotFound(name.to_owned());
    let event = name.strip_prefix("/data/").ok_or_else(not_found)?;
    let object_name = if let Some(stem) = event.strip_suffix("__ChangeEvent") {
        format!("{stem}__c")
    } else {
        event
            .strip_suffix("ChangeEvent")
            .ok_or_else(not_found)?
            .to_owned()
    };
    let index = schema.object_index(&object_name).ok_or_else(not_found)?;
    // Spelled as the org spells it: `/data/accountchangeevent` is not a topic.
    if topic_name(schema.object(index)) != name {
        return Err(not_found());
    }
    Ok(Topic::Entity(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_custom_and_all_topics_resolve() {
        let file = Schema::parse_file(
            r#"{"objects": [{"name": "Invoice__c", "label": "Invoice", "fields": [
                {"name": "Name", "type": "string", "nameField": true}]}]}"#,
        )
        .unwrap();
        let schema = Schema::with_files(&[file]).unwrap();
        let account = schema.object_index("Account").unwrap();
        let invoice = schema.object_index("Invoice__c").unwrap();
        assert_eq!(
            resolve(&schema, "/data/AccountChangeEvent"),
            Ok(Topic::Entity(account))
        );
        assert_eq!(
            resolve(&schema, "/data/Invoice__ChangeEvent"),
            Ok(Topic::Entity(invoice))
        );
        assert_eq!(resolve(&schema, ALL_CHANGES), Ok(Topic::AllChanges));
        for missing in [
            "/data/NopeChangeEvent",
            "/data/accountchangeevent",
            "/topic/x",
        ] {
            assert!(matches!(
                resolve(&schema, missing),
                Err(TopicError::NotFound(_))
            ));
        }
        assert!(matches!(
            resolve(&schema, "/event/Order__e"),
            Err(TopicError::Unsupported(_))
        ));
    }
}
