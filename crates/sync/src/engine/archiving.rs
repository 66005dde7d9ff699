//! Archive jobs as engine operations: start one (checked, recorded as pending), run one
//! under its lease (the CLI does, and so does `pgforce run` for pending jobs), read one.

use std::time::Duration;

use pgforce_store::catalog::archive::{self, Job};
use pgforce_store::catalog::{connections, leases, mappings};

use super::Engine;
use super::setup::LiveConnection;
use crate::archive::{Hooks, JobTarget, Progress, run_job};
use crate::error::{Error, Result};
use crate::mapping::Mapping;
use pgforce_store::Session;

/// How long a run waits for the lease of its job before saying another process runs it.
const LEASE_WAIT: Duration = Duration::from_secs(5);

/// What to archive.
#[derive(Debug, Clone)]
pub struct ArchiveRequest {
    /// The connection's name.
    pub connection: String,
    /// The object's API name (any case); it must be mapped on the connection.
    pub object: String,
    /// The condition, in the SOQL subset `pgforce archive --where` takes.
    pub where_clause: String,
    /// Delete with Bulk `hardDelete` (skipping the recycle bin).
    pub hard_delete: bool,
}

/// What to restore.
#[derive(Debug, Clone)]
pub struct UnarchiveRequest {
    /// The connection's name.
    pub connection: String,
    /// The archived object (API name, any case); it must be mapped on the connection.
    pub object: String,
    /// Only the records this archive job moved (default: every archived record).
    pub job: Option<i64>,
    /// Records per create call (at most 200).
    pub batch: usize,
}

pub use crate::archive::unarchive::Unarchived;

impl Engine {
    /// Re-creates archived records in Salesforce (see `pgforce unarchive`), under the
    /// lease `unarchive:<connection id>:<object>` so two runs never restore one object
    /// at once.
    pub async fn unarchive(&self, request: &UnarchiveRequest) -> Result<Unarchived> {
        let (live, mapping) = {
            let pg = self.session().await?;
            self.mapped(
                &pg,
                &request.connection,
                &request.object,
                "to restore its archive",
            )
            .await?
        };
        let lease = format!(
            "unarchive:{}:{}",
            live.id,
            mapping.object.to_ascii_lowercase()
        );
        let busy = || {
            format!(
                "{} of connection {} is being restored by another pgforce process",
                mapping.object, request.connection
            )
        };
        self.under_lease(&lease, busy, async |pg, fence| {
            let target = crate::archive::unarchive::UnarchiveTarget {
                salesforce: &live.salesforce,
                connection: live.id,
                schema: &live.schema,
                mapping: &mapping,
                job: request.job,
                batch: request.batch,
                fence: Some(fence),
            };
            crate::archive::unarchive::unarchive(&target, pg, &mut |_| false).await
        })
        .await
    }

    /// Checks and records an archive job (pending); a worker runs it.
    pub async fn create_archive(&self, request: &ArchiveRequest) -> Result<Job> {
        let pg = self.session().await?;
        let (live, mapping) = self
            .mapped(&pg, &request.connection, &request.object, "to archive it")
            .await?;
        crate::archive::create_job(
            &live.salesforce,
            &pg,
            live.id,
            &live.schema,
            &mapping,
            &request.where_clause,
            request.hard_delete,
        )
        .await
    }

    /// The name of connection `id` (API callers name connections by id).
    pub async fn connection_name(&self, id: pgforce_store::ConnectionId) -> Result<String> {
        let pg = self.session().await?;
        connections::get(&*pg, id)
            .await
            .map_err(Error::catalog)?
            .map(|row| row.name)
            .ok_or_else(|| Error::NotFound {
                what: format!("no connection with id {id}"),
            })
    }

    /// Publishes the archive table of job `id` as an entity set of its connection's OData
    /// service; returns the entity set's name and whether the service is enabled (a
    /// disabled one serves nothing until an operator with `manage` enables it).
    pub async fn publish_archive(&self, id: i64) -> Result<(String, bool)> {
        let job = self.archive_job(id).await?;
        let (schema, table) = {
            let pg = self.session().await?;
            let row = connections::get(&*pg, job.connection_id)
                .await
                .map_err(Error::catalog)?
                .ok_or_else(|| Error::NotFound {
                    what: format!("the connection of archive job {id} no longer exists"),
                })?;
            let mapping = mappings::find(&*pg, &row.name, &job.object)
                .await
                .map_err(Error::catalog)?
                .ok_or_else(|| Error::NotFound {
                    what: format!(
                        "{} is no longer mapped on connection {}",
                        job.object, row.name
                    ),
                })?;
            let schema = pgforce_store::Ident::new(&row.schema)
                .and_then(|s| pgforce_store::archive_table::archive_schema(&s))
                .map_err(Error::catalog)?;
            (schema, mapping.table)
        };
        let admin = self.admin();
        let service = admin.odata_service_of(job.connection_id).await?;
        let resource = admin
            .odata_publish(service.id, schema.as_str(), &table)
            .await?;
        Ok((resource.entity_set(), service.enabled))
    }

    /// The latest archive jobs, newest first (for the dashboard).
    pub async fn recent_archive_jobs(&self, limit: i64) -> Result<Vec<Job>> {
        let pg = self.session().await?;
        archive::recent_jobs(&*pg, limit)
            .await
            .map_err(Error::catalog)
    }

    /// The archive job `id`.
    pub async fn archive_job(&self, id: i64) -> Result<Job> {
        let pg = self.session().await?;
        archive::job(&*pg, id)
            .await
            .map_err(Error::catalog)?
            .ok_or_else(|| Error::NotFound {
                what: format!("archive job {id} does not exist"),
            })
    }

    /// Runs archive job `id` here, under its lease, from where it stands to its end;
    /// `progress` hears each batch. Another process running it is a conflict.
    pub async fn run_archive(
        &self,
        id: i64,
        batch: usize,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Job> {
        let job = self.archive_job(id).await?;
        let (live, mapping) = {
            let pg = self.session().await?;
            let row = connections::get(&*pg, job.connection_id)
                .await
                .map_err(Error::catalog)?
                .ok_or_else(|| Error::NotFound {
                    what: format!("the connection of archive job {id} no longer exists"),
                })?;
            self.mapped(
                &pg,
                &row.name,
                &job.object,
                &format!("for archive job {id} to go on"),
            )
            .await?
        };
        let busy = || format!("archive job {id} is running in another pgforce process");
        let done = self
            .under_lease(&archive::archive_lease(id), busy, async |pg, fence| {
                let target = JobTarget {
                    salesforce: &live.salesforce,
                    schema: &live.schema,
                    mapping: &mapping,
                    fence: Some(fence),
                    batch: batch.max(1),
                };
                let mut never = |_| false;
                let mut hooks = Hooks {
                    progress,
                    stop: &mut never,
                };
                run_job(&target, pg, id, &mut hooks).await
            })
            .await?;
        Ok(done.job)
    }

    /// The running connection `connection` and its mapping of `object`; `why` ends the
    /// error that says the object is not mapped ("… is not mapped on connection main: map
    /// it <why>").
    async fn mapped(
        &self,
        pg: &Session,
        connection: &str,
        object: &str,
        why: &str,
    ) -> Result<(LiveConnection, Mapping)> {
        let (_, live) = self.live_connection(pg, connection).await?;
        let row = mappings::find(pg, connection, object)
            .await
            .map_err(Error::catalog)?
            .ok_or_else(|| Error::NotFound {
                what: format!("{object} is not mapped on connection {connection}: map it {why}"),
            })?;
        let mapping = self.live_mapping(&live, &row).await?.mapping;
        Ok((live, mapping))
    }

    /// Runs `work` on a dedicated session while this process holds the lease `name` (an
    /// archive job's transactions come one after another for as long as it runs, which a
    /// pooled session meant for requests should not be); `busy` says who holds it when
    /// another process does.
    async fn under_lease<T>(
        &self,
        name: &str,
        busy: impl FnOnce() -> String,
        work: impl AsyncFnOnce(&mut Session, &leases::Fence) -> Result<T>,
    ) -> Result<T> {
        let timing = self.shared.options.lease;
        let keeper = leases::LeaseKeeper::start(
            &self.shared.database_url,
            name,
            &leases::holder_name(),
            timing.ttl,
            timing.heartbeat,
        );
        let Some(fence) = keeper.wait_held(LEASE_WAIT).await else {
            keeper.release().await;
            return Err(Error::Conflict { what: busy() });
        };
        let result = async {
            let mut pg = pgforce_store::connect(&self.shared.database_url)
                .await
                .map_err(Error::catalog)?;
            work(&mut pg, &fence).await
        }
        .await;
        keeper.release().await;
        result
    }
}
