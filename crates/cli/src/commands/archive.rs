//! `pgforce archive`: move an object's records matching a condition out of Salesforce
//! into `<schema>_archive.<table>`, and `pgforce unarchive`.
//!
//! The engine does the work (see `pgforce_sync::Engine::create_archive` and
//! `run_archive`): the condition is checked against the object's describe, the job is
//! recorded, then run here under its lease (copy, verify, delete), with a progress bar.
//! A job stopped anywhere (Ctrl-C, a crash, an org-wide Salesforce error) resumes with
//! `--resume JOB`, or is taken up by `pgforce run`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use pgforce_sync::{ArchiveJob, ArchiveRequest, ArchiveState, UnarchiveRequest};

use crate::{config, output};

/// Options of `pgforce archive`.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "pgforce.toml")]
    config: PathBuf,
    /// The connection (by name; default: the only one).
    #[arg(long)]
    connection: Option<String>,
    /// The object to archive (API name); it must be mapped on the connection.
    #[arg(required_unless_present = "resume")]
    object: Option<String>,
    /// Which records: a SOQL condition on the object's fields (field op value, AND, OR,
    /// NOT, parentheses, IN, LIKE, date and datetime literals, null).
    #[arg(long = "where", required_unless_present = "resume")]
    where_clause: Option<String>,
    /// Records per transaction and per delete call (at most 200 per call).
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Delete with Bulk hardDelete (skipping the recycle bin; the user needs the "Bulk API
    /// Hard Delete" permission).
    #[arg(long)]
    hard_delete: bool,
    /// Publish the archive table as an entity set of the connection's OData service (at
    /// once: Salesforce Connect sees records as they arrive).
    #[arg(long)]
    publish: bool,
    /// Resume job JOB where it stopped instead of starting a new one.
    #[arg(long, value_name = "JOB", conflicts_with_all = ["object", "where_clause", "hard_delete"])]
    resume: Option<i64>,
}

/// Options of `pgforce unarchive`.
#[derive(Debug, Args)]
pub struct UnarchiveArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "pgforce.toml")]
    config: PathBuf,
    /// The connection (by name; default: the only one).
    #[arg(long)]
    connection: Option<String>,
    /// The archived object (it must be mapped on the connection).
    object: String,
    /// Which archived records (the same condition language as `archive --where`).
    #[arg(long = "where")]
    where_clause: Option<String>,
    /// The records one archive job moved.
    #[arg(long, conflicts_with = "where_clause")]
    job: Option<i64>,
    /// Records per create call (at most 200).
    #[arg(long, default_value_t = 200)]
    batch: usize,
}

fn describe(job: &ArchiveJob) -> String {
    format!(
        "archive job {} ({} where {}): {} — {} copied, {} verified, {} deleted in Salesforce, {} refused",
        job.id,
        job.object,
        job.where_clause,
        job.state.as_str(),
        job.selected,
        job.verified,
        job.deleted,
        job.failed
    )
}

/// Records an archive job and runs it here.
pub async fn run(args: ArchiveArgs) -> anyhow::Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let config = config::load(&args.config)?;
    let engine = config::open_engine(&config, None).await?;
    engine
        .apply()
        .await
        .context("setting up the configured mappings")?;
    let id = match args.resume {
        Some(id) => id,
        None => {
            let connection = engine.pick_connection(args.connection.as_deref())?;
            let request = ArchiveRequest {
                connection,
                // Both are required by clap unless --resume is given.
                object: args.object.clone().unwrap_or_default(),
                where_clause: args.where_clause.clone().unwrap_or_default(),
                hard_delete: args.hard_delete,
            };
            let job = engine
                .create_archive(&request)
                .await
                .with_context(|| format!("starting to archive {}", request.object))?;
            output::say(&format!("archive job {} recorded", job.id));
            if args.publish {
                publish(&engine, job.id).await?;
            }
            job.id
        }
    };
    let mut progress = output::archive_progress();
    let result = engine.run_archive(id, args.batch, &mut progress).await;
    drop(progress);
    let job = result.with_context(|| {
        format!("running archive job {id} (resume it with `pgforce archive --resume {id}`)")
    })?;
    output::say(&describe(&job));
    match job.state {
        ArchiveState::Finished => Ok(()),
        _ => bail!(
            "archive job {id} ended {}: {}",
            job.state.as_str(),
            job.error.as_deref().unwrap_or("no reason recorded")
        ),
    }
}

/// Publishes a job's archive table on the connection's OData service, and says so.
async fn publish(engine: &pgforce_sync::Engine, job: i64) -> anyhow::Result<()> {
    let (entity_set, enabled) = engine
        .publish_archive(job)
        .await
        .with_context(|| format!("publishing the archive table of job {job}"))?;
    output::say(&format!(
        "published as OData entity set {entity_set}{}",
        if enabled {
            ""
        } else {
            " (the connection's OData service is disabled: enable it to serve it)"
        }
    ));
    Ok(())
}

/// Re-creates archived records in Salesforce.
pub async fn unarchive(args: UnarchiveArgs) -> anyhow::Result<()> {
    if args.where_clause.is_some() {
        bail!(
            "unarchive --where is not supported yet: choose the records with --job, or restore every archived {}",
            args.object
        );
    }
    let config = config::load(&args.config)?;
    let engine = config::open_engine(&config, None).await?;
    engine
        .apply()
        .await
        .context("setting up the configured mappings")?;
    let request = UnarchiveRequest {
        connection: engine.pick_connection(args.connection.as_deref())?,
        object: args.object.clone(),
        job: args.job,
        batch: args.batch,
    };
    let done = engine
        .unarchive(&request)
        .await
        .with_context(|| format!("restoring archived {}", args.object))?;
    output::say(&format!(
        "{} {} records re-created in Salesforce ({} found already created by an interrupted run)",
        done.restored, args.object, done.found
    ));
    if !done.refused.is_empty() {
        let shown: Vec<String> = done
            .refused
            .iter()
            .take(10)
            .map(|(sfid, why)| format!("{sfid}: {why}"))
            .collect();
        bail!(
            "Salesforce refused {} records (they stay archived): {}",
            done.refused.len(),
            shown.join("; ")
        );
    }
    Ok(())
}
