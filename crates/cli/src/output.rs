//! The only place that writes to the terminal: logs, messages for the user, errors.
//!
//! stdout carries only what a command outputs (tables, messages), so it can be piped;
//! logs, progress bars and errors go to stderr. Colour codes are written only to a
//! terminal, and never when `NO_COLOR` is set.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};

/// How log lines are written on stderr (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people; coloured when stderr is a terminal.
    Text,
    /// One JSON object per line, for log shippers: `timestamp`, `level`, `target`,
    /// `message`, the event's fields, and the span it happened in.
    Json,
}

/// The format chosen at start, for the messages written without `tracing` (errors).
static LOG_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Logs go to stderr in `format`, `info` by default, `RUST_LOG` to change.
pub fn init_logging(format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(colour(&std::io::stderr())).init(),
        LogFormat::Json => logs.json().flatten_event(true).with_ansi(false).init(),
    }
}

/// Whether to colour what goes to `stream`: only a terminal, and not when `NO_COLOR` is
/// set to anything (no-color.org).
fn colour(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

fn log_format() -> LogFormat {
    LOG_FORMAT.get().copied().unwrap_or(LogFormat::Text)
}

/// Prints a message for the user on stdout.
#[allow(clippy::print_stdout)]
pub fn say(message: &str) {
    println!("{message}");
}

/// Prints an error with its causes on stderr (as a log line under `--log-format json`)
/// and returns the failure exit code.
#[allow(clippy::print_stderr)]
pub fn fail(error: &anyhow::Error) -> ExitCode {
    match log_format() {
        LogFormat::Text => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
        }
        LogFormat::Json => eprintln!("{}", error_line(error)),
    }
    ExitCode::FAILURE
}

/// The error a command ended with, shaped as the JSON log lines before it (written
/// directly, so that no `RUST_LOG` filter can hide it).
fn error_line(error: &anyhow::Error) -> serde_json::Value {
    let mut timestamp = String::new();
    // Formatting the clock into a String cannot fail; an empty timestamp would do.
    let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
    serde_json::json!({
        "timestamp": timestamp,
        "level": "ERROR",
        "message": "command failed",
        "error": format!("{error:#}"),
        "target": env!("CARGO_PKG_NAME"),
    })
}

/// Progress bars for the initial loads `pgforce run` performs, one per loading object,
/// showing records and rate.
/// Under `--log-format json` they are not drawn: stderr then carries only JSON lines.
pub fn load_progress() -> pgforce_sync::LoadProgress {
    let bars = match log_format() {
        // Drawn on stderr, and only when it is a terminal.
        LogFormat::Text => indicatif::MultiProgress::new(),
        LogFormat::Json => {
            indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
        }
    };
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

/// A progress bar for an archive job run by the command line: one line per step, with
/// the records done of those to do.
pub fn archive_progress() -> impl FnMut(pgforce_sync::ArchiveProgress) + Send {
    let hidden = matches!(log_format(), LogFormat::Json);
    let mut current: Option<(pgforce_sync::ArchiveStep, indicatif::ProgressBar)> = None;
    move |progress: pgforce_sync::ArchiveProgress| {
        if current.as_ref().map(|(step, _)| *step) != Some(progress.step) {
            if let Some((_, bar)) = current.take() {
                bar.finish();
            }
            let bar = indicatif::ProgressBar::new(progress.total.unwrap_or(0));
            if hidden {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let style = indicatif::ProgressStyle::with_template(
                "{msg:>10} [{bar:30}] {pos}/{len} records ({per_sec})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(progress.step.as_str());
            current = Some((progress.step, bar));
        }
        if let Some((_, bar)) = &current {
            if let Some(total) = progress.total {
                bar.set_length(total);
            }
            bar.set_position(progress.done);
        }
    }
}
