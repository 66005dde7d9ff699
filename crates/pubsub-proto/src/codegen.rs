//! Regenerating `src/generated/` from `proto/pubsub.proto`, without `protoc`: protox parses
//! the proto into descriptors, tonic-prost-build writes the prost messages and the tonic
//! client and server from them.
//!
//! The generated code is checked in, so that building the workspace never compiles the
//! generator. `cargo run -p pgforce-pubsub-proto --features codegen --bin
//! pubsub-proto-codegen` rewrites it; with `--check` it only compares, and the crate's test
//! `checked_in_code_matches_the_proto` (run with `--features codegen`) fails when the
//! checked-in code and the proto disagree.

use std::error::Error;
use std::path::{Path, PathBuf};

/// The proto file, relative to [`proto_dir`].
const PROTO_FILE: &str = "pubsub.proto";

/// The file prost names after the proto's package.
const GENERATED_FILE: &str = "eventbus.v1.rs";

/// The folder holding the proto.
pub fn proto_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("proto")
}

/// Where the generated code is checked in.
pub fn generated_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/generated")
        .join(GENERATED_FILE)
}

/// The Rust code for the proto as it is now.
pub fn generate() -> Result<String, Box<dyn Error>> {
    let descriptors = protox::compile([PROTO_FILE], [proto_dir()])?;
    let out_dir = std::env::temp_dir().join(format!(
        "pgforce-pubsub-proto-codegen-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&out_dir)?;
    let generated = tonic_prost_build::configure()
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .out_dir(&out_dir)
        .compile_fds(descriptors)
        .map_err(Box::<dyn Error>::from)
        .and_then(|()| Ok(std::fs::read_to_string(out_dir.join(GENERATED_FILE))?));
    std::fs::remove_dir_all(&out_dir)?;
    generated
}

/// Whether the checked-in code is what [`generate`] writes now.
pub fn is_up_to_date() -> Result<bool, Box<dyn Error>> {
    let checked_in = std::fs::read_to_string(generated_path())?;
    Ok(checked_in == generate()?)
}

/// Writes the generated code over the checked-in file.
pub fn write() -> Result<(), Box<dyn Error>> {
    std::fs::write(generated_path(), generate()?)?;
    Ok(())
}
