//! The only place that writes to the terminal: logs, messages for the user, errors.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// Logs go to stderr, `info` by default, `RUST_LOG` to change.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Prints a message for the user on stdout.
#[allow(clippy::print_stdout)]
pub fn say(message: &str) {
    println!("{message}");
}

/// Prints an error with its causes and returns the failure exit code.
#[allow(clippy::print_stderr)]
pub fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    ExitCode::FAILURE
}
