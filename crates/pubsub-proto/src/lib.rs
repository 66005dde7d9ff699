//! The Salesforce Pub/Sub API's wire format (`eventbus.v1`) for pgforce's emulator and
//! client: the protobuf messages, the gRPC message framing, status codes, method paths and
//! metadata names.
//!
//! The messages are written by hand with `prost`'s derive from the field numbers the Pub/Sub
//! API publishes, so the workspace needs no `protoc` and no code generation. Third-party
//! clients that need a `.proto` file can use `proto/pubsub.proto` of this crate, which
//! describes the same service.
//!
//! It owns no transport: the emulator serves and the client calls gRPC over hyper's HTTP/2
//! themselves. Only the messages the emulator serves are here; managed subscriptions
//! (`ManagedSubscribe`) are left out.
//!
//! Layout:
//! - `messages`: the protobuf messages and enums.
//! - `framing`: the 5-byte gRPC message prefix, encoding and incremental decoding.
//! - `status`: gRPC status codes, and percent-encoding of `grpc-message`.

mod framing;
mod messages;
mod status;

pub use framing::{FrameDecoder, FramingError, MAX_MESSAGE_BYTES, encode_message};
pub use messages::{
    ConsumerEvent, Error, ErrorCode, EventHeader, FetchRequest, FetchResponse, ProducerEvent,
    PublishRequest, PublishResponse, PublishResult, ReplayPreset, SchemaInfo, SchemaRequest,
    TopicInfo, TopicRequest,
};
pub use status::{Code, decode_grpc_message, encode_grpc_message};

/// gRPC method paths of the `eventbus.v1.PubSub` service.
pub mod method {
    /// Bidirectional stream: `FetchRequest` in, `FetchResponse` out.
    pub const SUBSCRIBE: &str = "/eventbus.v1.PubSub/Subscribe";
    /// Unary: `SchemaRequest` → `SchemaInfo`.
    pub const GET_SCHEMA: &str = "/eventbus.v1.PubSub/GetSchema";
    /// Unary: `TopicRequest` → `TopicInfo`.
    pub const GET_TOPIC: &str = "/eventbus.v1.PubSub/GetTopic";
    /// Unary: `PublishRequest` → `PublishResponse`.
    pub const PUBLISH: &str = "/eventbus.v1.PubSub/Publish";
    /// Bidirectional stream of publishes.
    pub const PUBLISH_STREAM: &str = "/eventbus.v1.PubSub/PublishStream";
    /// Bidirectional managed subscription (beta).
    pub const MANAGED_SUBSCRIBE: &str = "/eventbus.v1.PubSub/ManagedSubscribe";
}

/// gRPC metadata (HTTP/2 header) names the Pub/Sub API uses.
pub mod metadata {
    /// The OAuth access token.
    pub const ACCESS_TOKEN: &str = "accesstoken";
    /// The org's instance URL.
    pub const INSTANCE_URL: &str = "instanceurl";
    /// The org id.
    pub const TENANT_ID: &str = "tenantid";
    /// Trailer carrying Salesforce's own error code next to the gRPC status.
    pub const ERROR_CODE: &str = "error-code";
    /// gRPC status trailer.
    pub const GRPC_STATUS: &str = "grpc-status";
    /// gRPC status message trailer (percent-encoded).
    pub const GRPC_MESSAGE: &str = "grpc-message";
    /// The content type of gRPC requests and responses.
    pub const CONTENT_TYPE_GRPC: &str = "application/grpc";
}

/// Salesforce's error code for a replay id that is invalid or outside the retention window.
pub const REPLAY_ID_CORRUPTED: &str =
    "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted";

/// A replay id as the bytes Pub/Sub clients read: 8 bytes, big-endian.
pub fn replay_id_bytes(id: u64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

/// The number in replay id bytes: the first 8 bytes read big-endian (longer ids carry more
/// bytes after them); `None` when shorter than 8 bytes.
pub fn replay_id_number(bytes: &[u8]) -> Option<u64> {
    let first: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_ids_are_eight_big_endian_bytes() {
        assert_eq!(replay_id_bytes(1_104_717), vec![0, 0, 0, 0, 0, 16, 219, 77]);
        assert_eq!(
            replay_id_number(&[0, 0, 0, 0, 0, 16, 219, 77, 0, 0]),
            Some(1_104_717)
        );
        assert_eq!(replay_id_number(&[1, 2]), None);
    }
}
