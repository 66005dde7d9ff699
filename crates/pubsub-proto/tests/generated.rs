//! The checked-in generated code against the proto (only with `--features codegen`, which
//! builds the code generator), and the generated messages against the wire format.

use pgforce_pubsub_proto::{FetchRequest, ReplayPreset};
use prost::Message as _;

#[cfg(feature = "codegen")]
#[test]
fn checked_in_code_matches_the_proto() {
    assert!(
        pgforce_pubsub_proto::codegen::is_up_to_date().unwrap(),
        "src/generated/ is out of date: run `cargo run -p pgforce-pubsub-proto --features codegen --bin pubsub-proto-codegen`"
    );
}

#[test]
fn messages_use_the_published_field_numbers() {
    let request = FetchRequest {
        topic_name: "/t".to_owned(),
        replay_preset: ReplayPreset::Custom as i32,
        replay_id: vec![7],
        num_requested: 100,
        auth_refresh: String::new(),
    };
    // Field 1 (string "/t"), 2 (varint 2), 3 (bytes [7]), 4 (varint 100).
    assert_eq!(
        request.encode_to_vec(),
        vec![0x0A, 2, b'/', b't', 0x10, 2, 0x1A, 1, 7, 0x20, 100]
    );
}
