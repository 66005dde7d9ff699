//! `pgforce run`: the sync daemon, with its health checks and metrics on HTTP.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use pgforce_server::Server;
use pgforce_sync::{Applied, Engine};
use tokio::sync::watch;

use crate::{config, output};

/// Options of `pgforce run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "pgforce.toml")]
    config: PathBuf,
    /// Where to serve the management API, the dashboard, `/healthz`, `/readyz` and
    /// `/metrics` (`host:port`; port 0 picks a free one; `off` serves nothing).
    #[arg(long, env = "PGFORCE_LISTEN", default_value = "127.0.0.1:8780")]
    listen: String,
    /// A second, private address for `/healthz`, `/readyz` and `/metrics`, which --listen
    /// then no longer serves (`/healthz` stays on both).
    #[arg(long, env = "PGFORCE_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Serve HTTPS (on both addresses) with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "PGFORCE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "PGFORCE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Applies the configuration to the catalog, then syncs until SIGINT or SIGTERM.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Listening from the first moment: a signal during start-up ends it cleanly.
    let signal = crate::commands::emulator::shutdown_signal();
    let (stop, mut stopped) = watch::channel(false);
    let signals = tokio::spawn(async move {
        signal.await;
        let _ = stop.send(true);
    });
    let result = start_and_run(&args, &mut stopped).await;
    signals.abort();
    result
}

async fn start_and_run(args: &RunArgs, stopped: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    // A taken port is reported before any work starts.
    let server = bind(args, &config).await?;
    let engine = tokio::select! {
        engine = config::open_engine(&config, Some(output::load_progress())) => engine?,
        _ = stopped.wait_for(|stop| *stop) => return stopped_early(),
    };
    let Some(applied) = apply_when_possible(&engine, stopped).await? else {
        return stopped_early();
    };
    output::say(&format!(
        "syncing {} mapping(s) of {} connection(s); Ctrl-C to stop",
        applied.mappings, applied.connections
    ));
    if let Some(server) = &server {
        let address = server
            .local_addr()
            .context("reading the listening address")?;
        let scheme = server.scheme();
        match server.metrics_addr() {
            None => output::say(&format!(
                "health checks and metrics on {scheme}://{address}/metrics"
            )),
            Some(metrics) => {
                let metrics = metrics.context("reading the metrics listening address")?;
                output::say(&format!("API and dashboard on {scheme}://{address}"));
                output::say(&format!(
                    "health checks and metrics on {scheme}://{metrics}/metrics"
                ));
            }
        }
    }
    run_until_signal(&engine, server, stopped.clone()).await?;
    output::say("stopped");
    Ok(())
}

/// The listeners the flags ask for, bound, with their TLS identity and the `[server]`
/// settings; `None` for `--listen off`.
async fn bind(args: &RunArgs, config: &config::Config) -> anyhow::Result<Option<Server>> {
    let address = match (args.listen.as_str(), &args.metrics_listen) {
        ("off", None) => return Ok(None),
        ("off", Some(_)) => bail!(
            "--metrics-listen moves /readyz and /metrics off the --listen address, and --listen is off: pass --listen with an address"
        ),
        (address, _) => address,
    };
    let mut server = Server::bind(address)
        .await?
        .with_settings(config.server.clone());
    if let Some(metrics) = &args.metrics_listen {
        server = server.with_metrics_listener(metrics).await?;
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        server = server.with_tls(cert, key).map_err(anyhow::Error::msg)?;
    }
    Ok(Some(server))
}

fn stopped_early() -> anyhow::Result<()> {
    output::say("stopped before sync started");
    Ok(())
}

/// Applies the configuration to the catalog, waiting out what passes: trouble the error
/// policy retries (a deadlock, a dropped connection, a 5xx), and an org that cannot be
/// used for now (credentials refused, API allocation spent) when every connection ran
/// before — a restart inside such a window waits, as a running engine does, while a
/// first start with wrong credentials still fails at once. `None` when told to stop.
async fn apply_when_possible(
    engine: &Engine,
    stopped: &mut watch::Receiver<bool>,
) -> anyhow::Result<Option<Applied>> {
    let mut wait = FIRST_START_RETRY;
    loop {
        let error = match engine.apply().await {
            Ok(applied) => return Ok(Some(applied)),
            Err(error) => error,
        };
        let waits_out = error.is_passing()
            || (error.pauses_connection()
                && engine.knows_declared_connections().await.unwrap_or(false));
        if !waits_out {
            return Err(anyhow::Error::new(error).context("setting up the configured mappings"));
        }
        tracing::warn!(error = %error.chain(), retry_in_s = wait.as_secs_f64(), "cannot set up the configured mappings yet; trying again");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stopped.wait_for(|stop| *stop) => return Ok(None),
        }
        wait = (wait * 2).min(LAST_START_RETRY);
    }
}

/// The first and the longest wait between attempts to set the mappings up.
const FIRST_START_RETRY: Duration = Duration::from_millis(500);
const LAST_START_RETRY: Duration = Duration::from_secs(30);

/// Runs the engine (and `server`, when given) until `stopped` turns true.
async fn run_until_signal(
    engine: &Engine,
    server: Option<Server>,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let serving = server.map(|server| tokio::spawn(server.serve(engine.clone(), stopped.clone())));
    let result = engine.run(stopped).await;
    if let Some(serving) = serving {
        // The engine stopped (by a signal or an error): so does the server.
        serving.abort();
        let _ = serving.await;
    }
    result.context("running the sync engine")
}
