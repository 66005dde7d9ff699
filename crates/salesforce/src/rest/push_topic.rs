//! PushTopics: the Streaming API's older way to hear of record changes, for objects Change
//! Data Capture does not cover. An org may select only a few entities for Change Data
//! Capture without an add-on licence; Heroku Connect's accelerated polling used one
//! PushTopic per object (`hconnect_<Object>`, `SELECT Id FROM <Object>`, every operation,
//! `NotifyForFields = All`), and so does pgforce for the objects beyond the allocation.

use futures_util::TryStreamExt as _;
use serde_json::{Value, json};

use super::Record;
use crate::client::Client;
use crate::error::{ApiErrorCode, Result};
use crate::soql;

/// The longest PushTopic name Salesforce accepts.
const MAX_NAME_CHARS: usize = 25;
/// The prefix Heroku Connect gave its topics.
const NAME_PREFIX: &str = "hconnect_";
/// The API version topics are created for (Salesforce requires more than 20.0).
const TOPIC_API_VERSION: f64 = 30.0;

/// The PushTopic pgforce keeps for `object`: `hconnect_<Object>`, or, when that is longer
/// than Salesforce's 25 characters, the object's first letters and a short hash of its
/// whole name (stable, so every process finds the same topic).
pub fn push_topic_name(object: &str) -> String {
    let full = format!("{NAME_PREFIX}{object}");
    if full.chars().count() <= MAX_NAME_CHARS {
        return full;
    }
    // FNV-1a: small, stable across builds and platforms.
    let hash = object.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    let suffix = format!("_{:05x}", hash & 0xf_ffff);
    let room = MAX_NAME_CHARS - NAME_PREFIX.len() - suffix.len();
    let head: String = object.chars().take(room).collect();
    format!("{NAME_PREFIX}{head}{suffix}")
}

/// What a topic reporting every change of `object` holds.
fn topic_fields(object: &str) -> Record {
    let mut fields = Record::new();
    fields.insert(
        "Query".to_owned(),
        json!(format!("SELECT Id FROM {object}")),
    );
    fields.insert("ApiVersion".to_owned(), json!(TOPIC_API_VERSION));
    fields.insert("NotifyForFields".to_owned(), json!("All"));
    for operation in ["Create", "Update", "Delete", "Undelete"] {
        fields.insert(format!("NotifyForOperation{operation}"), json!(true));
    }
    fields.insert("IsActive".to_owned(), json!(true));
    fields
}

impl Client {
    /// Makes sure the PushTopic `name` exists, is active and reports every change of
    /// `object`, creating or correcting it. Returns its channel (`/topic/<name>`).
    pub async fn ensure_push_topic(&self, name: &str, object: &str) -> Result<String> {
        let object = soql::name(object)?;
        let wanted = topic_fields(object);
        let existing: Vec<Record> = self
            .query(&format!(
                "SELECT Id, Query, NotifyForFields, NotifyForOperationCreate, NotifyForOperationUpdate, NotifyForOperationDelete, NotifyForOperationUndelete, IsActive FROM PushTopic WHERE Name = {}",
                soql::quote(name)
            ))
            .try_collect()
            .await?;
        match existing.first() {
            Some(topic) => {
                let differs = wanted
                    .iter()
                    .filter(|(field, _)| *field != "ApiVersion")
                    .any(|(field, value)| topic.get(field.as_str()) != Some(value));
                if differs {
                    let id = topic.get("Id").and_then(Value::as_str).unwrap_or_default();
                    let mut changes = wanted.clone();
                    changes.remove("ApiVersion");
                    self.update("PushTopic", id, &changes).await?;
                }
            }
            None => {
                let mut fields = wanted;
                fields.insert("Name".to_owned(), Value::from(name));
                match self.create("PushTopic", &fields).await {
                    Ok(_) => {}
                    // Another process created it meanwhile.
                    Err(error) if error.code() == Some(&ApiErrorCode::DuplicateValue) => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(format!("/topic/{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::push_topic_name;

    #[test]
    fn topic_names_follow_heroku_connect_and_fit_salesforce_s_limit() {
        assert_eq!(push_topic_name("Account"), "hconnect_Account");
        assert_eq!(push_topic_name("Invoice__c"), "hconnect_Invoice__c");
        let long = push_topic_name("Very_Long_Custom_Object__c");
        assert_eq!(long.chars().count(), 25, "{long}");
        assert!(long.starts_with("hconnect_Very_Long"), "{long}");
        assert_ne!(long, push_topic_name("Very_Long_Custom_Object2__c"));
        assert_eq!(long, push_topic_name("Very_Long_Custom_Object__c"));
    }
}
