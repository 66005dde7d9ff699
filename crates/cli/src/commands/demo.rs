//! `pgforce demo`: see pgforce work in one command.
//!
//! Starts the bundled emulator in-process with a realistic seeded org, uses `DATABASE_URL`
//! or the local PostgreSQL (creating a `pgforce_demo` database), maps Account, Contact and
//! Opportunity read-write, loads them, then edits an Account in the org and shows the
//! change arriving in Postgres, and renames another Account in Postgres and shows the
//! change arriving in Salesforce, each with its latency. Without `--exit` it keeps syncing
//! both ways, with the emulator's workload generator editing the org, until Ctrl-C.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use pgforce_emulator::{Emulator, EmulatorConfig, Listeners, WorkloadSpec, demo_plan};
use pgforce_salesforce::{Client, ClientConfig, Credentials, SecretString};
use pgforce_store::Ident;
use pgforce_store::cursor::{ensure_connection, ensure_mapping};
use pgforce_store::ddl::{Access, create_mapped_table, ensure_connection_schema};
use pgforce_sync::mapping::{Mapping, MappingSpec};
use pgforce_sync::reader::{Target, initial_load, poll_once};
use pgforce_sync::write_worker::WriteWorker;
use pgforce_sync::writer::WritePolicy;
use tokio::net::TcpListener;
use tokio_postgres::NoTls;

use crate::output;

/// Where the demo database lives unless `DATABASE_URL` says otherwise.
const DEFAULT_DEMO_URL: &str = "postgres://postgres@127.0.0.1:5432/pgforce_demo";

/// Objects the demo maps, with their fields.
const DEMO_MAPPINGS: [(&str, &[&str]); 3] = [
    (
        "Account",
        &[
            "Name",
            "Type",
            "Industry",
            "AnnualRevenue",
            "NumberOfEmployees",
            "BillingCity",
            "BillingCountry",
            "Phone",
            "Website",
            "CreatedDate",
        ],
    ),
    (
        "Contact",
        &[
            "FirstName",
            "LastName",
            "Name",
            "Email",
            "Phone",
            "Title",
            "AccountId",
            "CreatedDate",
        ],
    ),
    (
        "Opportunity",
        &[
            "Name",
            "StageName",
            "Amount",
            "CloseDate",
            "Probability",
            "AccountId",
            "CreatedDate",
        ],
    ),
];

/// Options of `pgforce demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// End after the tour instead of syncing until Ctrl-C.
    #[arg(long)]
    exit: bool,
    /// Database URL (default: $DATABASE_URL, else the local pgforce_demo database).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DEMO_URL, hide_env_values = true)]
    database_url: String,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let emulator = Emulator::new(EmulatorConfig::default()).context("building the demo org")?;
    let seeded = emulator
        .seed(&demo_plan())
        .context("seeding the demo org")?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("opening a port for the emulator")?;
    let base = format!(
        "http://{}",
        listener
            .local_addr()
            .context("reading the emulator's address")?
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let emulator = emulator.clone();
        async move {
            let listeners = Listeners {
                http: Some(listener),
                https: None,
            };
            emulator
                .run(listeners, async {
                    let _ = stopped.await;
                })
                .await;
        }
    });
    let summary: Vec<String> = seeded.iter().map(|(o, n)| format!("{n} {o}")).collect();
    output::say(&format!(
        "Salesforce emulator at {base} with {}",
        summary.join(", ")
    ));

    let result = tour(&args, &emulator, &base, started).await;
    let _ = stop.send(());
    let _ = server.await;
    result
}

async fn tour(
    args: &DemoArgs,
    emulator: &Emulator,
    base: &str,
    started: Instant,
) -> anyhow::Result<()> {
    let mut pg = connect_creating(&args.database_url).await?;
    output::say(&format!(
        "PostgreSQL: {}",
        output::redact_url(&args.database_url)
    ));
    pgforce_store::catalog::migrate(&mut pg)
        .await
        .context("applying the pgforce catalog migrations")?;
    let schema = Ident::new("salesforce")?;
    ensure_connection_schema(&pg, &schema)
        .await
        .context("creating the salesforce schema")?;
    let connection = ensure_connection(&pg, "demo", schema.as_str())
        .await
        .context("registering the demo connection")?;

    let credentials = Credentials::Password {
        client_id: pgforce_emulator::DEFAULT_CLIENT_ID.to_owned(),
        client_secret: SecretString::from(pgforce_emulator::DEFAULT_CLIENT_SECRET),
        username: pgforce_emulator::DEFAULT_USERNAME.to_owned(),
        password: SecretString::from(pgforce_emulator::DEFAULT_PASSWORD),
    };
    let sf = Client::new(ClientConfig::new(base, credentials))
        .context("building the Salesforce client")?;

    let mut mappings = Vec::new();
    for (object, fields) in DEMO_MAPPINGS {
        let describe = sf
            .describe(object)
            .await
            .with_context(|| format!("describing {object}"))?;
        let spec = MappingSpec {
            object: object.to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            access: Access::ReadWrite,
            upsert_field: None,
            polling_seconds: 1,
            max_daily_api_calls: 30_000,
            bulk_threshold: pgforce_sync::mapping::DEFAULT_BULK_THRESHOLD,
        };
        let mapping = Mapping::resolve(spec, &describe)?;
        create_mapped_table(&mut pg, &mapping.table_spec(&schema))
            .await
            .with_context(|| format!("creating table for {object}"))?;
        let id = ensure_mapping(
            &pg,
            connection,
            &mapping.object,
            mapping.table.as_str(),
            true,
        )
        .await?;
        mappings.push((mapping, id));
    }
    for (mapping, id) in &mappings {
        let target = Target {
            schema: &schema,
            mapping,
            mapping_id: *id,
        };
        let total = sf
            .count(&format!("SELECT COUNT() FROM {}", mapping.object))
            .await?;
        let bar = output::progress(total, &format!("loading {}", mapping.object));
        let load_started = Instant::now();
        let outcome =
            initial_load(&sf, &mut pg, &target, &mut |done| bar.set_position(done)).await?;
        bar.finish_and_clear();
        output::say(&format!(
            "{:<12} {:>6} rows loaded into salesforce.{} ({:.2} s)",
            mapping.object,
            outcome.applied,
            mapping.table.as_str(),
            load_started.elapsed().as_secs_f64()
        ));
    }
    output::say(&format!(
        "initial sync done in {:.1} s",
        started.elapsed().as_secs_f64()
    ));

    let account_mapping = &mappings[0];
    let account_target = Target {
        schema: &schema,
        mapping: &account_mapping.0,
        mapping_id: account_mapping.1,
    };
    let latency = show_a_change(&sf, &mut pg, &account_target).await?;
    output::say(&format!(
        "Salesforce → Postgres latency: {} ms (edit in the org until the row changed here)",
        latency.as_millis()
    ));

    let (stop_writer, writer_shutdown) = tokio::sync::watch::channel(false);
    let writer = WriteWorker {
        database_url: args.database_url.clone(),
        connection: "demo".to_owned(),
        salesforce: sf.clone(),
        schema: schema.clone(),
        mappings: mappings.clone(),
        policy: WritePolicy::default(),
        archive_after: Duration::from_secs(600),
        archive_retention: Duration::from_secs(31 * 86_400),
    };
    let writer = tokio::spawn(writer.run(writer_shutdown));
    let result = async {
        let latency = show_a_write(&sf, &pg).await?;
        output::say(&format!(
            "Postgres → Salesforce latency: {} ms (commit in Postgres until Salesforce had it)",
            latency.as_millis()
        ));
        if args.exit {
            return Ok(());
        }
        keep_syncing(emulator, &sf, &mut pg, &schema, &mappings).await
    }
    .await;
    let _ = stop_writer.send(true);
    let _ = writer.await;
    result
}

/// Polls every mapping every second while the emulator's users edit the org (the writer
/// runs beside it), until Ctrl-C.
async fn keep_syncing(
    emulator: &Emulator,
    sf: &Client,
    pg: &mut tokio_postgres::Client,
    schema: &Ident,
    mappings: &[(Mapping, i64)],
) -> anyhow::Result<()> {
    output::say("syncing every second while the emulator's users edit the org; Ctrl-C to stop");
    emulator
        .start_workload(WorkloadSpec {
            rate_per_second: 5.0,
            ..WorkloadSpec::default()
        })
        .await
        .map_err(|message| anyhow::anyhow!("starting the emulator's workload: {message}"))?;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => {
                for (mapping, id) in mappings {
                    let target = Target { schema, mapping, mapping_id: *id };
                    let outcome = poll_once(sf, pg, &target).await?;
                    if outcome.applied + outcome.deleted > 0 {
                        output::say(&format!("{:<12} {} changed, {} deleted", mapping.object, outcome.applied, outcome.deleted));
                    }
                }
            }
        }
    }
    output::say("stopped");
    Ok(())
}

/// Renames one Account in Postgres, as an app would, and waits until Salesforce has it.
async fn show_a_write(sf: &Client, pg: &tokio_postgres::Client) -> anyhow::Result<Duration> {
    let row = pg
        .query_one(
            "select id, sfid, name from salesforce.account order by id offset 1 limit 1",
            &[],
        )
        .await
        .context("picking an account")?;
    let (id, sfid, old_name): (i32, String, String) = (row.get(0), row.get(1), row.get(2));
    let new_name = format!("{old_name} (edited in Postgres)");
    let committed = Instant::now();
    pg.execute(
        "update salesforce.account set name = $2 where id = $1",
        &[&id, &new_name],
    )
    .await
    .context("editing the account in Postgres")?;
    output::say(&format!(
        "updated salesforce.account row {id} in Postgres: name = {new_name:?}"
    ));
    while committed.elapsed() < Duration::from_secs(30) {
        let record = sf
            .get("Account", &sfid, Some(&["Name"]))
            .await
            .context("reading the account in the org")?;
        if record.get("Name").and_then(|n| n.as_str()) == Some(new_name.as_str()) {
            let latency = committed.elapsed();
            output::say(&format!(
                "Account {sfid} in Salesforce now reads Name = {new_name:?}"
            ));
            return Ok(latency);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("the edit did not reach Salesforce within 30 s")
}

/// Edits one Account in the org and polls until Postgres has the change.
async fn show_a_change(
    sf: &Client,
    pg: &mut tokio_postgres::Client,
    target: &Target<'_>,
) -> anyhow::Result<Duration> {
    let row = pg
        .query_one(
            "select sfid, name from salesforce.account order by id limit 1",
            &[],
        )
        .await
        .context("picking an account")?;
    let (sfid, old_name): (String, String) = (row.get(0), row.get(1));
    let new_name = format!("{old_name} (edited in Salesforce)");
    let mut fields = pgforce_salesforce::rest::Record::new();
    fields.insert(
        "Name".to_owned(),
        serde_json::Value::String(new_name.clone()),
    );
    let edited = Instant::now();
    sf.update("Account", &sfid, &fields)
        .await
        .context("editing the account in the org")?;
    output::say(&format!(
        "edited Account {sfid} in Salesforce: Name = {new_name:?}"
    ));
    for _ in 0..100 {
        poll_once(sf, pg, target).await?;
        let name: String = pg
            .query_one(
                "select name from salesforce.account where sfid = $1",
                &[&sfid],
            )
            .await
            .context("reading the account back")?
            .get(0);
        if name == new_name {
            let latency = edited.elapsed();
            output::say(&format!(
                "salesforce.account row {sfid} now reads Name = {name:?}"
            ));
            return Ok(latency);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the edit did not arrive in Postgres within 100 polls")
}

/// Connects to the database, creating it first when it is missing.
async fn connect_creating(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    match connect(url).await {
        Ok(client) => Ok(client),
        Err(error)
            if error.code() == Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME) =>
        {
            let (server, name) = url
                .rsplit_once('/')
                .context("the database URL must end with a database name")?;
            let name = name.split('?').next().unwrap_or(name);
            let name = Ident::new(name).with_context(|| format!("database name {name:?}"))?;
            let admin = connect(&format!("{server}/postgres"))
                .await
                .with_context(|| {
                    format!(
                        "connecting to {} to create the demo database",
                        output::redact_url(server)
                    )
                })?;
            admin
                .batch_execute(&format!("create database {name}"))
                .await
                .with_context(|| format!("creating database {name}"))?;
            output::say(&format!("created database {name}"));
            connect(url)
                .await
                .with_context(|| format!("connecting to {}", output::redact_url(url)))
        }
        Err(error) => Err(anyhow::Error::new(error).context(format!(
            "connecting to PostgreSQL at {} (start it, or set DATABASE_URL)",
            output::redact_url(url)
        ))),
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::error!(error = %error, "database connection lost");
        }
    });
    Ok(client)
}
