//! `pgforce run`: the sync daemon, with its health checks and metrics on HTTP.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use pgforce_server::Server;
use pgforce_sync::Engine;
use tokio::sync::watch;

use crate::{config, output};

/// Options of `pgforce run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "pgforce.toml")]
    config: PathBuf,
    /// Where to serve `/healthz`, `/readyz` and `/metrics` (`host:port`; port 0 picks a
    /// free one; `off` serves nothing).
    #[arg(long, env = "PGFORCE_LISTEN", default_value = "127.0.0.1:8780")]
    listen: String,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "PGFORCE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "PGFORCE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Applies the configuration to the catalog, then syncs until SIGINT or SIGTERM.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    // A taken port is reported before any work starts.
    let server = match args.listen.as_str() {
        "off" => None,
        address => {
            let server = Server::bind(address).await?;
            match (&args.tls_cert, &args.tls_key) {
                (Some(cert), Some(key)) => {
                    Some(server.with_tls(cert, key).map_err(anyhow::Error::msg)?)
                }
                _ => Some(server),
            }
        }
    };
    let engine = config::open_engine(&config, Some(output::load_progress())).await?;
    let applied = engine
        .apply()
        .await
        .context("setting up the configured mappings")?;
    output::say(&format!(
        "syncing {} mapping(s) of {} connection(s); Ctrl-C to stop",
        applied.mappings, applied.connections
    ));
    if let Some(server) = &server {
        let address = server
            .local_addr()
            .context("reading the listening address")?;
        output::say(&format!(
            "health checks and metrics on {}://{address}/metrics",
            server.scheme()
        ));
    }
    run_until_signal(&engine, server).await?;
    output::say("stopped");
    Ok(())
}

/// Runs the engine (and `server`, when given) until SIGINT or SIGTERM.
async fn run_until_signal(engine: &Engine, server: Option<Server>) -> anyhow::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let signals = tokio::spawn(async move {
        crate::commands::emulator::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let serving = server.map(|server| tokio::spawn(server.serve(engine.clone(), stopped.clone())));
    let result = engine.run(stopped).await;
    signals.abort();
    if let Some(serving) = serving {
        // The engine stopped (by a signal or an error): so does the server.
        serving.abort();
        let _ = serving.await;
    }
    result.context("running the sync engine")
}
