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

/// Progress bars for the initial loads `pgforce run` performs, one per loading object,
/// showing records and rate.
pub fn load_progress() -> pgforce_sync::LoadProgress {
    let bars = indicatif::MultiProgress::new();
    let active: std::sync::Mutex<std::collections::HashMap<String, indicatif::ProgressBar>> =
        Default::default();
    std::sync::Arc::new(move |object: &str, done: u64, finished: bool| {
        let mut active = active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bar = active.entry(object.to_owned()).or_insert_with(|| {
            let bar = bars.add(indicatif::ProgressBar::new_spinner());
            let style =
                indicatif::ProgressStyle::with_template("{msg:>22} {pos} records ({per_sec})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.set_message(format!("loading {object}"));
            bar
        });
        bar.set_position(done);
        if finished {
            bar.finish_with_message(format!("loaded {object}"));
            active.remove(object);
        }
    })
}
