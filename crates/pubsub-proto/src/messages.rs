//! The `eventbus.v1` protobuf messages, with the Pub/Sub API's field numbers.

/// `TopicRequest`: which topic to describe.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TopicRequest {
    #[prost(string, tag = "1")]
    pub topic_name: String,
}

/// `TopicInfo`: a topic and what the caller may do with it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TopicInfo {
    #[prost(string, tag = "1")]
    pub topic_name: String,
    #[prost(string, tag = "2")]
    pub tenant_guid: String,
    #[prost(bool, tag = "3")]
    pub can_publish: bool,
    #[prost(bool, tag = "4")]
    pub can_subscribe: bool,
    /// The id of the topic's current schema.
    #[prost(string, tag = "5")]
    pub schema_id: String,
    #[prost(string, tag = "6")]
    pub rpc_id: String,
}

/// `SchemaRequest`: which schema to return.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaRequest {
    #[prost(string, tag = "1")]
    pub schema_id: String,
}

/// `SchemaInfo`: an Avro schema as JSON text.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaInfo {
    #[prost(string, tag = "1")]
    pub schema_json: String,
    #[prost(string, tag = "2")]
    pub schema_id: String,
    #[prost(string, tag = "3")]
    pub rpc_id: String,
}

/// `EventHeader`: a key and value attached to an event (reserved by Salesforce).
#[derive(Clone, PartialEq, prost::Message)]
pub struct EventHeader {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `ProducerEvent`: one event as published, its payload an Avro binary datum.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProducerEvent {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub schema_id: String,
    #[prost(bytes = "vec", tag = "3")]
    pub payload: Vec<u8>,
    #[prost(message, repeated, tag = "4")]
    pub headers: Vec<EventHeader>,
}

/// `ConsumerEvent`: an event as delivered, with its replay id.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConsumerEvent {
    #[prost(message, optional, tag = "1")]
    pub event: Option<ProducerEvent>,
    #[prost(bytes = "vec", tag = "2")]
    pub replay_id: Vec<u8>,
}

/// `FetchRequest`: opens a subscription (first request) or adds credit (later ones).
#[derive(Clone, PartialEq, prost::Message)]
pub struct FetchRequest {
    #[prost(string, tag = "1")]
    pub topic_name: String,
    #[prost(enumeration = "ReplayPreset", tag = "2")]
    pub replay_preset: i32,
    #[prost(bytes = "vec", tag = "3")]
    pub replay_id: Vec<u8>,
    #[prost(int32, tag = "4")]
    pub num_requested: i32,
    #[prost(string, tag = "5")]
    pub auth_refresh: String,
}

/// `FetchResponse`: events (or none, as a keepalive) and the stream's position.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FetchResponse {
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<ConsumerEvent>,
    #[prost(bytes = "vec", tag = "2")]
    pub latest_replay_id: Vec<u8>,
    #[prost(string, tag = "3")]
    pub rpc_id: String,
    #[prost(int32, tag = "4")]
    pub pending_num_requested: i32,
}

/// `PublishRequest`: events to publish on a topic.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishRequest {
    #[prost(string, tag = "1")]
    pub topic_name: String,
    #[prost(message, repeated, tag = "2")]
    pub events: Vec<ProducerEvent>,
    #[prost(string, tag = "3")]
    pub auth_refresh: String,
}

/// `PublishResponse`: one result per published event.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishResponse {
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<PublishResult>,
    #[prost(string, tag = "2")]
    pub schema_id: String,
    #[prost(string, tag = "3")]
    pub rpc_id: String,
}

/// `PublishResult`: the replay id of a published event, or why it was refused.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PublishResult {
    #[prost(bytes = "vec", tag = "1")]
    pub replay_id: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Error>,
    #[prost(string, tag = "3")]
    pub correlation_key: String,
}

/// `Error`: a per-event publish error.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Error {
    #[prost(enumeration = "ErrorCode", tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub msg: String,
}

/// `ReplayPreset`: where a subscription starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ReplayPreset {
    /// Events published from now on.
    Latest = 0,
    /// Every retained event.
    Earliest = 1,
    /// The events after `replay_id`.
    Custom = 2,
}

/// `ErrorCode`: why a publish failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ErrorCode {
    Unknown = 0,
    Publish = 1,
    Commit = 2,
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn fetch_request_uses_the_published_field_numbers() {
        let request = FetchRequest {
            topic_name: "/data/AccountChangeEvent".to_owned(),
            replay_preset: ReplayPreset::Custom as i32,
            replay_id: vec![0, 0, 0, 0, 0, 0, 0, 7],
            num_requested: 100,
            auth_refresh: String::new(),
        };
        let bytes = request.encode_to_vec();
        // Field 1 (string, wire type 2): tag byte 0x0A, then the length.
        assert_eq!(bytes[0], 0x0A);
        assert_eq!(bytes[1] as usize, "/data/AccountChangeEvent".len());
        // Field 2 (varint): tag 0x10, value 2; field 3 (bytes): tag 0x1A; field 4: tag 0x20.
        let rest = &bytes[2 + bytes[1] as usize..];
        assert_eq!(&rest[..2], &[0x10, 2]);
        assert_eq!(&rest[2..4], &[0x1A, 8]);
        assert_eq!(&rest[12..14], &[0x20, 100]);
        assert_eq!(FetchRequest::decode(bytes.as_slice()).unwrap(), request);
    }

    #[test]
    fn fetch_response_numbers_pending_as_field_four() {
        let response = FetchResponse {
            events: vec![],
            latest_replay_id: vec![1],
            rpc_id: String::new(),
            pending_num_requested: 3,
        };
        assert_eq!(response.encode_to_vec(), vec![0x12, 1, 1, 0x20, 3]);
    }
}
