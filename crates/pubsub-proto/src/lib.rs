//! The Salesforce Pub/Sub API (`eventbus.v1`) for pgforce's emulator and client: the
//! protobuf messages and the tonic client and server, generated from `proto/pubsub.proto`,
//! plus the metadata names and error codes Salesforce uses around them.
//!
//! Nothing here is written by hand from the wire format: a hand-written type shared by the
//! client and the emulator would let both agree on a wrong format. The code in
//! `src/generated/` comes from the proto through protox and tonic-prost-build (no
//! `protoc`) and is checked in, so that building the workspace does not compile a code
//! generator. To regenerate it after changing the proto:
//!
//! ```text
//! cargo run -p pgforce-pubsub-proto --features codegen --bin pubsub-proto-codegen
//! ```
//!
//! `cargo test -p pgforce-pubsub-proto --features codegen` (run by CI) fails while the
//! checked-in code differs from what the proto generates. Third-party clients load the
//! same proto file.
//!
//! It owns no transport: the emulator serves [`pub_sub_server::PubSubServer`] on its own
//! TLS listener and the client calls through [`pub_sub_client::PubSubClient`] over a
//! tonic channel.
//!
//! Layout:
//! - `generated/eventbus.v1.rs`: the messages, [`pub_sub_client`] and [`pub_sub_server`].
//! - `codegen` (feature `codegen`): regenerating and checking that file.

#[cfg(feature = "codegen")]
pub mod codegen;

#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::str_to_string,
    clippy::uninlined_format_args,
    clippy::semicolon_if_nothing_returned,
    rustdoc::broken_intra_doc_links
)]
mod generated {
    include!("generated/eventbus.v1.rs");
}

pub use generated::{
    CommitReplayRequest, CommitReplayResponse, ConsumerEvent, Error, ErrorCode, EventHeader,
    FetchRequest, FetchResponse, ManagedFetchRequest, ManagedFetchResponse, ProducerEvent,
    PublishRequest, PublishResponse, PublishResult, ReplayPreset, SchemaInfo, SchemaRequest,
    TopicInfo, TopicRequest, pub_sub_client, pub_sub_server,
};

/// gRPC metadata names the Pub/Sub API uses.
pub mod metadata {
    /// The OAuth access token.
    pub const ACCESS_TOKEN: &str = "accesstoken";
    /// The org's instance URL.
    pub const INSTANCE_URL: &str = "instanceurl";
    /// The org id.
    pub const TENANT_ID: &str = "tenantid";
    /// Trailer carrying Salesforce's own error code next to the gRPC status.
    pub const ERROR_CODE: &str = "error-code";
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
