//! Regenerates `src/generated/` from `proto/pubsub.proto`; with `--check`, only says
//! whether the checked-in code is up to date (exit status 1 when it is not).

use std::process::ExitCode;

use pgforce_pubsub_proto::codegen;

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let outcome = if check {
        codegen::is_up_to_date().inspect(|fresh| {
            if !fresh {
                eprintln!(
                    "{} differs from what proto/pubsub.proto generates: run this command without --check",
                    codegen::generated_path().display()
                );
            }
        })
    } else {
        codegen::write().map(|()| true)
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("generating the Pub/Sub code failed: {error}");
            ExitCode::FAILURE
        }
    }
}
