//! REST API resources, one module per family.

pub mod collections;
pub mod describe;
pub mod limits;
pub mod push_topic;
pub mod query;
pub mod replication;
pub mod sobject;
pub mod tooling;

/// A record as Salesforce sends it: field names to JSON values (with `attributes`).
pub type Record = serde_json::Map<String, serde_json::Value>;

/// Percent-encodes one path segment (object names, Ids, external id values).
pub(crate) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_escape_slashes_and_spaces() {
        assert_eq!(super::segment("A-1 / b"), "A-1%20%2F%20b");
        assert_eq!(super::segment("Ext__c"), "Ext__c");
    }
}
