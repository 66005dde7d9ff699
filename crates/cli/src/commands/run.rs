//! `pgforce run`: the sync daemon.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use pgforce_sync::Engine;
use tokio::sync::watch;

use crate::{config, output};

/// Options of `pgforce run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "pgforce.toml")]
    config: PathBuf,
}

/// Applies the configuration to the catalog, then syncs until SIGINT or SIGTERM.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let engine = config::open_engine(&config, Some(output::load_progress())).await?;
    let applied = engine
        .apply()
        .await
        .context("setting up the configured mappings")?;
    output::say(&format!(
        "syncing {} mapping(s) of {} connection(s); Ctrl-C to stop",
        applied.mappings, applied.connections
    ));
    run_until_signal(&engine).await?;
    output::say("stopped");
    Ok(())
}

/// Runs the engine until SIGINT or SIGTERM.
pub async fn run_until_signal(engine: &Engine) -> anyhow::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let signals = tokio::spawn(async move {
        crate::commands::emulator::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let result = engine.run(stopped).await;
    signals.abort();
    result.context("running the sync engine")
}
