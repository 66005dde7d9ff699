//! `pgforce emulator`: a local Salesforce org for development and tests.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use pgforce_emulator::{
    Emulator, EmulatorConfig, FaultConfig, Listeners, demo_plan, generate_tls_identity,
};
use tokio::net::TcpListener;

use crate::output;

/// What the org holds when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeedChoice {
    /// Only the administrator user.
    None,
    /// A realistic small org: Accounts, Contacts, Opportunities, Leads and Cases.
    Demo,
}

/// Options of `pgforce emulator`.
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: String,
    /// Plain HTTP port (0 picks a free one; omit with --no-http).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// HTTPS port (0 picks a free one).
    #[arg(long, default_value_t = 8443)]
    tls_port: u16,
    /// Pub/Sub API (gRPC over TLS) port (0 picks a free one); served with HTTPS.
    #[arg(long, default_value_t = pgforce_emulator::DEFAULT_PUBSUB_PORT)]
    pubsub_port: u16,
    /// Do not serve the Pub/Sub API.
    #[arg(long)]
    no_pubsub: bool,
    /// Seconds an idle Pub/Sub subscription waits before a keepalive.
    #[arg(long, default_value_t = pgforce_emulator::DEFAULT_PUBSUB_KEEPALIVE.as_secs())]
    pubsub_keepalive_seconds: u64,
    /// Serve HTTPS only.
    #[arg(long)]
    no_http: bool,
    /// Serve plain HTTP only.
    #[arg(long)]
    no_tls: bool,
    /// Write the PEM of the CA that signs the HTTPS certificate here, for clients to trust.
    #[arg(long, default_value = "pgforce-emulator-ca.pem")]
    cert_out: PathBuf,
    /// Records to start with.
    #[arg(long, value_enum, default_value_t = SeedChoice::None)]
    seed: SeedChoice,
    /// JSON schema file with custom objects and fields (see docs/emulator.md).
    #[arg(long)]
    schema: Vec<PathBuf>,
    /// Username of the org's administrator.
    #[arg(long, default_value = pgforce_emulator::DEFAULT_USERNAME)]
    username: String,
    /// Password of the administrator.
    #[arg(long, env = "PGFORCE_EMULATOR_PASSWORD", default_value = pgforce_emulator::DEFAULT_PASSWORD)]
    password: String,
    /// Security token clients must append to the password (empty: none).
    #[arg(long, default_value = "")]
    security_token: String,
    /// Consumer key of the connected app.
    #[arg(long, default_value = pgforce_emulator::DEFAULT_CLIENT_ID)]
    client_id: String,
    /// Consumer secret of the connected app.
    #[arg(long, env = "PGFORCE_EMULATOR_CLIENT_SECRET", default_value = pgforce_emulator::DEFAULT_CLIENT_SECRET)]
    client_secret: String,
    /// A refresh token the org accepts.
    #[arg(long, default_value = pgforce_emulator::DEFAULT_REFRESH_TOKEN)]
    refresh_token: String,
    /// PEM public key that verifies JWT bearer assertions (without it only claims are checked).
    #[arg(long)]
    jwt_public_key: Option<PathBuf>,
    /// Seconds an access token stays valid.
    #[arg(long, default_value_t = 7200)]
    session_seconds: u64,
    /// Daily API request allocation.
    #[arg(long, default_value_t = 100_000)]
    api_limit: u64,
    /// URL to hand out as instance_url instead of the one each login came in on.
    #[arg(long)]
    public_url: Option<String>,
    /// Milliseconds added to every API request.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Up to this many milliseconds more, at random.
    #[arg(long, default_value_t = 0)]
    latency_jitter_ms: u64,
    /// Share of write calls failing with UNABLE_TO_LOCK_ROW (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fault_lock_row: f64,
    /// Share of API calls answered 503 SERVER_UNAVAILABLE (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fault_unavailable: f64,
    /// Share of API calls whose connection is dropped (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fault_drop: f64,
    /// Share of write calls carried out whose answer is then lost (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fault_lost_response: f64,
    /// Share of Bulk API ingest jobs that fail as a whole (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fault_bulk_job: f64,
    /// Share of records in a collections write refused with UNABLE_TO_LOCK_ROW while the
    /// others are written (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fault_record_lock: f64,
    /// Share of Bulk API ingest jobs that process part of their rows, then fail (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fault_bulk_job_partial: f64,
    /// Share of an ingest job's rows processed before a partial failure (0 to 1).
    #[arg(long, default_value_t = 0.5)]
    bulk_partial_processed_share: f64,
    /// Milliseconds a closed ingest job waits before it is processed.
    #[arg(long, default_value_t = 0)]
    bulk_job_delay_ms: u64,
    /// Share of write calls whose records become visible only after --commit-delay-ms,
    /// stamped when the call started (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fault_commit_delay: f64,
    /// How long a delayed commit waits, in milliseconds.
    #[arg(long, default_value_t = 0)]
    commit_delay_ms: u64,
    /// Open query cursors a user may hold; opening more releases the oldest (default: no
    /// limit, as Salesforce today).
    #[arg(long)]
    max_open_cursors_per_user: Option<u32>,
    /// Share of change events a streaming subscriber never receives (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fault_event_drop: f64,
    /// Share of change events a streaming subscriber receives twice (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fault_event_duplicate: f64,
    /// Share of Change Data Capture events delivered as gap events (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    fault_event_gap: f64,
    /// Milliseconds every change event waits before it is delivered.
    #[arg(long, default_value_t = 0)]
    event_delay_ms: u64,
    /// Seconds a CometD connect is held open when no event arrives.
    #[arg(long, default_value_t = 110)]
    cometd_timeout_seconds: u64,
    /// Seconds a CometD client may take to reconnect before it is forgotten.
    #[arg(long, default_value_t = 40)]
    cometd_client_expiry_seconds: u64,
}

impl EmulatorArgs {
    fn config(&self) -> anyhow::Result<EmulatorConfig> {
        let mut schema_files = Vec::new();
        for path in &self.schema {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading schema file {}", path.display()))?;
            let file = Emulator::parse_schema_file(&text)
                .with_context(|| format!("schema file {}", path.display()))?;
            schema_files.push(file);
        }
        let jwt_public_key_pem = match &self.jwt_public_key {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading JWT key {}", path.display()))?,
            ),
            None => None,
        };
        let faults = FaultConfig {
            latency_ms: self.latency_ms,
            latency_jitter_ms: self.latency_jitter_ms,
            unable_to_lock_row_rate: self.fault_lock_row,
            server_unavailable_rate: self.fault_unavailable,
            drop_connection_rate: self.fault_drop,
            lost_response_rate: self.fault_lost_response,
            bulk_job_failure_rate: self.fault_bulk_job,
            record_lock_rate: self.fault_record_lock,
            bulk_job_partial_failure_rate: self.fault_bulk_job_partial,
            bulk_partial_processed_share: self.bulk_partial_processed_share,
            bulk_job_delay_ms: self.bulk_job_delay_ms,
            commit_delay_rate: self.fault_commit_delay,
            commit_delay_ms: self.commit_delay_ms,
            max_open_cursors_per_user: self.max_open_cursors_per_user,
            // Set through the control API only (`PUT /__emulator/faults`).
            unknown_exception_value: None,
            event_drop_rate: self.fault_event_drop,
            event_duplicate_rate: self.fault_event_duplicate,
            event_delay_ms: self.event_delay_ms,
            event_gap_rate: self.fault_event_gap,
        };
        faults
            .validate()
            .map_err(|message| anyhow::anyhow!("--fault-*: {message}"))?;
        Ok(EmulatorConfig {
            username: self.username.clone(),
            password: self.password.clone(),
            security_token: self.security_token.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            refresh_token: self.refresh_token.clone(),
            org_number: pgforce_emulator::DEFAULT_ORG_NUMBER,
            jwt_public_key_pem,
            session_lifetime: Duration::from_secs(self.session_seconds),
            daily_api_limit: self.api_limit,
            public_url: self.public_url.clone(),
            schema_files,
            faults,
            cometd_timeout: Duration::from_secs(self.cometd_timeout_seconds),
            cometd_client_expiry: Duration::from_secs(self.cometd_client_expiry_seconds),
            pubsub_keepalive: Duration::from_secs(self.pubsub_keepalive_seconds.max(1)),
        })
    }
}

/// Runs the emulator until Ctrl-C or SIGTERM.
pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    if args.no_http && args.no_tls {
        bail!("--no-http and --no-tls together leave nothing to serve");
    }
    let started = Instant::now();
    let config = args.config()?;
    let emulator = Emulator::new(config).context("building the org")?;
    if args.seed == SeedChoice::Demo {
        let created = emulator
            .seed(&demo_plan())
            .context("seeding the demo org")?;
        let summary: Vec<String> = created
            .iter()
            .map(|(object, n)| format!("{n} {object}"))
            .collect();
        output::say(&format!("seeded {}", summary.join(", ")));
    }
    let mut listeners = Listeners::default();
    let mut pubsub = None;
    if !args.no_http {
        let listener = TcpListener::bind((args.bind.as_str(), args.port))
            .await
            .with_context(|| format!("listening on {}:{} (--port)", args.bind, args.port))?;
        let addr = listener.local_addr().context("reading the HTTP address")?;
        output::say(&format!(
            "http:  http://{addr}  (login URL; OAuth at /services/oauth2/token)"
        ));
        listeners.http = Some(listener);
    }
    if !args.no_tls {
        let identity = generate_tls_identity().context("generating the HTTPS certificate")?;
        std::fs::write(&args.cert_out, &identity.ca_pem).with_context(|| {
            format!(
                "writing the CA certificate to {} (--cert-out)",
                args.cert_out.display()
            )
        })?;
        let listener = TcpListener::bind((args.bind.as_str(), args.tls_port))
            .await
            .with_context(|| {
                format!("listening on {}:{} (--tls-port)", args.bind, args.tls_port)
            })?;
        let addr = listener.local_addr().context("reading the HTTPS address")?;
        output::say(&format!(
            "https: https://localhost:{}  (trust {} to verify it)",
            addr.port(),
            args.cert_out.display()
        ));
        if !args.no_pubsub {
            let listener = TcpListener::bind((args.bind.as_str(), args.pubsub_port))
                .await
                .with_context(|| {
                    format!(
                        "listening on {}:{} (--pubsub-port)",
                        args.bind, args.pubsub_port
                    )
                })?;
            let addr = listener
                .local_addr()
                .context("reading the Pub/Sub address")?;
            output::say(&format!(
                "pubsub: localhost:{}  (gRPC over TLS, same certificate)",
                addr.port()
            ));
            pubsub = Some((listener, std::sync::Arc::clone(&identity.server_config)));
        }
        listeners.https = Some((listener, identity.server_config));
    }
    output::say(&format!(
        "user {} / password {}, consumer key {} / secret {}; ready in {} ms",
        args.username,
        if args.password == pgforce_emulator::DEFAULT_PASSWORD {
            args.password.as_str()
        } else {
            "(as given)"
        },
        args.client_id,
        if args.client_secret == pgforce_emulator::DEFAULT_CLIENT_SECRET {
            args.client_secret.as_str()
        } else {
            "(as given)"
        },
        started.elapsed().as_millis()
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let signal = async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    };
    let serve_pubsub = async {
        if let Some((listener, tls)) = pubsub {
            emulator
                .run_pubsub(listener, tls, until_stopped(stopped.clone()))
                .await;
        }
    };
    tokio::join!(
        signal,
        emulator.run(listeners, until_stopped(stopped.clone())),
        serve_pubsub,
    );
    output::say("emulator stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled: a signal that arrives while the caller is still
/// starting up is kept for it instead of ending the process.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::interrupt()).and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
    };
    async move {
        #[cfg(unix)]
        if let Ok((mut interrupt, mut terminate)) = signals {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
