//! `pgforce status`: every mapping's state, row count, last sync, last error and what it
//! is busy with (a running Bulk API job); then each
//! connection's writer: who holds it, its queue by state, and the changes it is stuck on
//! (FAILED and HELD trigger-log rows with Salesforce's message).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::{config, output};

/// Options of `pgforce status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The configuration file (for the database URL).
    #[arg(long, short, default_value = "pgforce.toml")]
    config: PathBuf,
}

/// Prints the status table.
pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let pg = pgforce_store::connect(&config.database.url)
        .await
        .with_context(|| format!("connecting to {}", output::redact_url(&config.database.url)))?;
    let rows = pg
        .query(
            "select c.name, m.object_name, c.schema_name, m.table_name, m.state,
                    coalesce(to_char(m.last_sync_at, 'YYYY-MM-DD HH24:MI:SS'), '-'), coalesce(m.last_error, ''),
                    m.activity,
                    (m.drift - 'checked_at' - 'salesforce_records' - 'postgres_rows')::text,
                    to_char((m.drift ->> 'checked_at')::timestamptz, 'YYYY-MM-DD HH24:MI:SS')
             from pgforce.mappings m join pgforce.connections c on c.id = m.connection_id
             order by c.name, m.object_name",
            &[],
        )
        .await
        .context("reading the catalog (has `pgforce run` set it up?)")?;
    // Live Salesforce counts, one COUNT() per mapping; a connection that cannot log in shows "?".
    let mut clients = std::collections::HashMap::new();
    for connection in &config.connections {
        if let Ok(client_config) = connection.client_config()
            && let Ok(client) = pgforce_salesforce::Client::new(client_config)
        {
            clients.insert(connection.name.clone(), client);
        }
    }
    output::say(&format!(
        "{:<10} {:<16} {:<20} {:>9} {:>9} {:<20} {}",
        "CONNECTION", "OBJECT", "STATE", "SF ROWS", "PG ROWS", "LAST SYNC", "LAST ERROR"
    ));
    for row in rows {
        let (connection, object): (String, String) = (row.get(0), row.get(1));
        let salesforce = match (
            clients.get(&connection),
            pgforce_salesforce::soql::name(&object),
        ) {
            (Some(client), Ok(object)) => client
                .count(&format!("SELECT COUNT() FROM {object}"))
                .await
                .map_or_else(|_| "?".to_owned(), |n| n.to_string()),
            _ => "?".to_owned(),
        };
        let (schema, table): (String, String) = (row.get(2), row.get(3));
        let schema = pgforce_store::Ident::new(&schema)?;
        let table = pgforce_store::Ident::new(&table)?;
        let postgres: i64 = pg
            .query_one(&format!("select count(*) from {schema}.{table}"), &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(-1);
        output::say(&format!(
            "{:<10} {:<16} {:<20} {:>9} {:>9} {:<20} {}",
            connection,
            object,
            row.get::<_, String>(4),
            salesforce,
            postgres,
            row.get::<_, String>(5),
            row.get::<_, String>(6)
        ));
        if let Some(activity) = row.get::<_, Option<String>>(7) {
            output::say(&format!("{:<10} ↳ {activity}", ""));
        }
        if let Some(drift) = row.get::<_, Option<String>>(8) {
            let drift: serde_json::Value = serde_json::from_str(&drift).unwrap_or_default();
            let kinds: Vec<String> = drift
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, n)| n.as_u64().unwrap_or_default() > 0)
                .map(|(kind, n)| format!("{n} {}", kind.replace('_', " ")))
                .collect();
            let when = row.get::<_, Option<String>>(9).unwrap_or_default();
            if !kinds.is_empty() {
                output::say(&format!(
                    "{:<10} ↳ drift at the last reconcile ({when}): {}",
                    "",
                    kinds.join(", ")
                ));
            }
        }
    }
    writers(&pg).await
}

/// Trigger-log rows listed per connection when the writer is stuck on some.
const STUCK_SHOWN: i64 = 10;

/// The writer section: lease holder, queue counts, and the first stuck changes.
async fn writers(pg: &tokio_postgres::Client) -> anyhow::Result<()> {
    let connections = pg
        .query(
            "select c.name, c.schema_name, l.holder from pgforce.connections c
             left join pgforce.leases l on l.name = 'writer:' || c.name and l.expires_at >= now()
             where exists (select 1 from pgforce.mappings m where m.connection_id = c.id and m.access = 'read_write')
             order by c.name",
            &[],
        )
        .await
        .context("reading the writers")?;
    for connection in connections {
        let (name, schema, holder): (String, String, Option<String>) =
            (connection.get(0), connection.get(1), connection.get(2));
        let schema = pgforce_store::Ident::new(&schema)?;
        let counts = pg
            .query_one(
                &format!(
                    "select count(*) filter (where state = 'NEW'), count(*) filter (where state = 'PENDING'),
                            count(*) filter (where state = 'HELD'), count(*) filter (where state = 'FAILED')
                     from {schema}._trigger_log"
                ),
                &[],
            )
            .await
            .context("counting the trigger log")?;
        let count = |i: usize| counts.get::<_, i64>(i);
        output::say("");
        output::say(&format!(
            "writer {name}: {}; queue: {} new, {} pending, {} held back, {} failed",
            holder.map_or_else(|| "not running".to_owned(), |h| format!("held by {h}")),
            count(0),
            count(1),
            count(2),
            count(3)
        ));
        let stuck = pg
            .query(
                &format!(
                    "select state::text, table_name::text, record_id, action::text, coalesce(sf_message, '')
                     from {schema}._trigger_log where state in ('FAILED', 'HELD') order by id limit $1"
                ),
                &[&STUCK_SHOWN],
            )
            .await
            .context("reading failed changes")?;
        for row in stuck {
            output::say(&format!(
                "  {:<6} {}.{} row {} {}: {}",
                row.get::<_, String>(0),
                schema,
                row.get::<_, String>(1),
                row.get::<_, Option<i32>>(2).unwrap_or_default(),
                row.get::<_, String>(3),
                row.get::<_, String>(4)
            ));
        }
    }
    Ok(())
}
