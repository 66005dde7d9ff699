//! Tooling API calls pgforce needs: selecting objects for Change Data Capture.
//!
//! An object sends change events only once it is a member of the `ChangeEvents` channel
//! (Setup's "Change Data Capture" page writes the same `PlatformEventChannelMember`).

use reqwest::Method;
use serde_json::json;

use crate::client::{Call, Client, Idempotency};
use crate::error::Result;

/// The change-event entity of an object: `AccountChangeEvent`, `Invoice__ChangeEvent`.
pub fn change_event_entity(object: &str) -> String {
    match object.strip_suffix("__c") {
        Some(custom) => format!("{custom}__ChangeEvent"),
        None => format!("{object}ChangeEvent"),
    }
}

impl Client {
    /// Selects `object` for Change Data Capture; selecting an object already selected is
    /// not an error.
    pub async fn select_for_change_data_capture(&self, object: &str) -> Result<()> {
        let entity = change_event_entity(object);
        let path = self.data_path("/tooling/sobjects/PlatformEventChannelMember");
        let mut call = Call::new(Method::POST, path, Idempotency::Idempotent);
        call.json = Some(json!({
            "FullName": format!("ChangeEvents_{entity}"),
            "Metadata": { "eventChannel": "ChangeEvents", "selectedEntity": entity },
        }));
        match self.execute(&call).await {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .code()
                    .is_some_and(|code| code.as_str().starts_with("DUPLICATE")) =>
            {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }
}
