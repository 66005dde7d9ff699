//! `pgforce odata`: a connection's OData service (Heroku External Objects) from the
//! command line, through the engine's admin side like the API: enable (prints the new
//! credentials once), disable (revokes every credential), reset, publish and unpublish
//! `schema.table`, show. Every change goes to the audit trail as `cli`.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use pgforce_sync::{Admin, ODataService};

use crate::{config, output};

/// Options of `pgforce odata`.
#[derive(Debug, Args)]
pub struct ODataArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "pgforce.toml", global = true)]
    config: PathBuf,
    /// The connection whose service this is.
    #[arg(long, global = true, default_value = "")]
    connection: String,
    /// The address the service is reached at, for the URL shown (`https://host:port`;
    /// default `PGFORCE_PUBLIC_URL`, else `http://127.0.0.1:8780`).
    #[arg(long, global = true)]
    public_url: Option<String>,
    #[command(subcommand)]
    action: ODataAction,
}

/// What to do with the service.
#[derive(Debug, Subcommand)]
enum ODataAction {
    /// Enable the service; prints its URL, user and password (the password only now).
    Enable,
    /// Disable the service: every credential stops working at once.
    Disable,
    /// New credentials, printed once; the previous ones keep working for 10 minutes.
    Reset,
    /// Publish a table or view as an entity set (a table needs a primary key, a view a
    /// column named id).
    Publish {
        /// `schema.table`.
        relation: String,
    },
    /// Stop publishing a table or view.
    Unpublish {
        /// `schema.table`.
        relation: String,
    },
    /// Show the service: URL, state, published relations, usage this hour.
    Show,
}

fn split(relation: &str) -> anyhow::Result<(&str, &str)> {
    match relation.split_once('.') {
        Some((schema, table)) if !schema.is_empty() && !table.is_empty() => Ok((schema, table)),
        _ => bail!(
            "{relation:?}: name the relation as schema.table (for example salesforce.account)"
        ),
    }
}

fn url(args: &ODataArgs, service: &ODataService) -> String {
    let base = args
        .public_url
        .clone()
        .or_else(|| std::env::var("PGFORCE_PUBLIC_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8780".to_owned());
    format!("{}/odata/v4/{}/", base.trim_end_matches('/'), service.slug)
}

fn show(args: &ODataArgs, service: &ODataService) {
    output::say(&format!("url:       {}", url(args, service)));
    output::say(&format!("enabled:   {}", service.enabled));
    output::say(&format!("writable:  {}", service.writable));
    output::say(&format!(
        "user:      {}",
        service.user.as_deref().unwrap_or("-")
    ));
    output::say(&format!(
        "usage:     {} of {} requests this hour",
        service.current_hourly_api_usage, service.hourly_request_limit
    ));
    output::say(&format!("timeout:   {} ms", service.statement_timeout_ms));
    for resource in &service.resources {
        let state = match (&resource.problem, resource.exported) {
            (Some(problem), _) => format!("invalid: {problem}"),
            (None, true) => "published".to_owned(),
            (None, false) => "not published".to_owned(),
        };
        output::say(&format!(
            "resource:  {}.{} ({}) {state}",
            resource.schema_name,
            resource.table_name,
            resource.entity_set()
        ));
    }
}

async fn audit(
    admin: &Admin,
    action: &str,
    service: i64,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    admin
        .audit(
            "cli",
            action,
            &format!("odata service {service}"),
            None,
            Some(&detail),
        )
        .await
        .context("recording the change in the audit trail")?;
    Ok(())
}

/// Runs `pgforce odata`.
pub async fn run(args: ODataArgs) -> anyhow::Result<()> {
    if args.connection.is_empty() {
        bail!("--connection: name the connection whose OData service this is");
    }
    let config = config::load(&args.config)?;
    let engine = config::open_engine(&config, None).await?;
    let admin = engine.admin();
    let service = admin.odata_service_named(&args.connection).await?;
    let id = service.id;
    match &args.action {
        ODataAction::Enable => match admin.odata_enable(id).await? {
            Some(made) => {
                audit(
                    &admin,
                    "odata.enable",
                    id,
                    serde_json::json!({ "user": made.user }),
                )
                .await?;
                output::say(&format!("url:       {}", url(&args, &service)));
                output::say(&format!("user:      {}", made.user));
                output::say(&format!("password:  {} (shown only now)", made.password));
            }
            None => output::say(
                "the service is enabled already (pgforce odata reset makes new credentials)",
            ),
        },
        ODataAction::Disable => {
            admin.odata_revoke(id).await?;
            audit(
                &admin,
                "odata.revoke",
                id,
                serde_json::json!({ "enabled": false }),
            )
            .await?;
            output::say("the service is disabled: its credentials no longer work");
        }
        ODataAction::Reset => {
            let made = admin.odata_reset(id).await?;
            audit(
                &admin,
                "odata.credentials.reset",
                id,
                serde_json::json!({ "user": made.user }),
            )
            .await?;
            output::say(&format!("user:      {}", made.user));
            output::say(&format!("password:  {} (shown only now)", made.password));
            output::say("the previous credentials keep working for 10 minutes");
        }
        ODataAction::Publish { relation } => {
            let (schema, table) = split(relation)?;
            let published = admin.odata_publish(id, schema, table).await?;
            audit(
                &admin,
                "odata.publish",
                id,
                serde_json::json!({ "published": relation }),
            )
            .await?;
            output::say(&format!(
                "published {relation} as {}{}",
                url(&args, &service),
                published.entity_set()
            ));
        }
        ODataAction::Unpublish { relation } => {
            let (schema, table) = split(relation)?;
            admin.odata_unpublish(id, schema, table).await?;
            audit(
                &admin,
                "odata.unpublish",
                id,
                serde_json::json!({ "unpublished": relation }),
            )
            .await?;
            output::say(&format!("{relation} is no longer published"));
        }
        ODataAction::Show => show(&args, &admin.odata_service(id).await?),
    }
    Ok(())
}
