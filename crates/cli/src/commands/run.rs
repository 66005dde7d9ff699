//! `pgforce run`: the sync daemon.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tokio::sync::watch;

use crate::{config, output};

/// Options of `pgforce run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "pgforce.toml")]
    config: PathBuf,
}

/// Sets up every mapping, then syncs until SIGINT or SIGTERM.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let url = config.database.url.clone();
    let prepared = pgforce_sync::supervisor::prepare(&url, &config.connections)
        .await
        .context("setting up the configured mappings")?;
    let mappings: usize = prepared.iter().map(|c| c.mappings.len()).sum();
    output::say(&format!(
        "syncing {mappings} mapping(s) of {} connection(s); Ctrl-C to stop",
        prepared.len()
    ));
    let (stop, stopped) = watch::channel(false);
    let signals = tokio::spawn(async move {
        crate::commands::emulator::shutdown_signal().await;
        let _ = stop.send(true);
    });
    pgforce_sync::supervisor::run(&url, prepared, stopped, Some(output::load_progress())).await?;
    signals.abort();
    output::say("stopped");
    Ok(())
}
