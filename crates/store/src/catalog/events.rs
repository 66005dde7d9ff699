//! `pgforce.sync_events`: the log of what each mapping's reads and writes did, with their
//! cost in records, API calls and time, for operators and the dashboard.
//!
//! Every load, poll and writer pass appends a row, so the log is pruned: a running engine
//! deletes events older than its retention (`[engine] events_retention_days`) at start and
//! every hour, see [`prune`].

use std::time::Duration;

use tokio_postgres::GenericClient;

use crate::error::{Context as _, Result};
use crate::ids::MappingId;

/// What kind of work an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// An initial load or reload.
    Load,
    /// An incremental poll.
    Poll,
    /// A writer pass.
    Write,
}

impl EventKind {
    /// The text stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Load => "load",
            Self::Poll => "poll",
            Self::Write => "write",
        }
    }

    /// Which way the work moved records.
    pub fn direction(self) -> &'static str {
        match self {
            Self::Load | Self::Poll => "sf_to_pg",
            Self::Write => "pg_to_sf",
        }
    }
}

/// How the work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// Everything went through.
    Ok,
    /// Some records were refused or could not be stored.
    Rejected,
    /// The work failed.
    Error,
}

impl EventOutcome {
    /// The text stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Rejected => "rejected",
            Self::Error => "error",
        }
    }
}

/// One load, poll or write pass of a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncEvent {
    /// The mapping.
    pub mapping: MappingId,
    /// The mapped object (for whoever reads the event; the row names the mapping).
    pub object: String,
    /// What was done.
    pub kind: EventKind,
    /// Records applied or written.
    pub records: u64,
    /// Salesforce API calls used.
    pub api_calls: u64,
    /// How long it took.
    pub duration: Duration,
    /// How it ended.
    pub outcome: EventOutcome,
    /// Details for the operator.
    pub message: Option<String>,
}

/// Appends to the sync event log.
pub async fn record(client: &impl GenericClient, event: &SyncEvent) -> Result<()> {
    let as_int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let duration_ms = i64::try_from(event.duration.as_millis()).unwrap_or(i64::MAX);
    client
        .execute(
            "insert into pgforce.sync_events
                 (connection_id, mapping_id, kind, direction, records, api_calls, duration_ms, outcome, message)
             select connection_id, id, $2, $3, least($4::bigint, 2147483647)::integer,
                    least($5::bigint, 2147483647)::integer, least($6::bigint, 2147483647)::integer, $7, $8
             from pgforce.mappings where id = $1",
            &[
                &event.mapping.get(),
                &event.kind.as_str(),
                &event.kind.direction(),
                &as_int(event.records),
                &as_int(event.api_calls),
                &duration_ms,
                &event.outcome.as_str(),
                &event.message,
            ],
        )
        .await
        .context(|| format!("recording a sync event of mapping {}", event.mapping))
        .map(|_| ())
}

/// The longest retention [`prune`] honours: older cut-offs would fall outside the range of
/// Postgres timestamps, and nothing pgforce records is that old.
const LONGEST_RETENTION: Duration = Duration::from_secs(1_000 * 365 * 86_400);

/// Deletes the events recorded more than `retention` ago (at most 1,000 years); returns
/// how many went. Safe to run from several processes at once.
pub async fn prune(client: &impl GenericClient, retention: Duration) -> Result<u64> {
    let retention = retention.min(LONGEST_RETENTION);
    client
        .execute(
            "delete from pgforce.sync_events where created_at < now() - make_interval(secs => $1)",
            &[&retention.as_secs_f64()],
        )
        .await
        .context(|| {
            format!(
                "deleting sync events recorded more than {} s ago",
                retention.as_secs()
            )
        })
}

/// Records read (`sf_to_pg`) and written (`pg_to_sf`) in each `bucket_minutes`-long slice
/// of the last `hours`, oldest first: `(minutes before now the slice starts, read,
/// written)`. Slices without events are left out.
pub async fn activity(
    client: &impl GenericClient,
    hours: u32,
    bucket_minutes: u32,
) -> Result<Vec<(i64, i64, i64)>> {
    let (hours, bucket) = (f64::from(hours), f64::from(bucket_minutes.max(1)));
    let rows = client
        .query(
            "select (floor(extract(epoch from now() - created_at) / 60 / $2::float8) * $2::float8)::bigint as ago,
                    coalesce(sum(records) filter (where direction = 'sf_to_pg'), 0)::bigint,
                    coalesce(sum(records) filter (where direction = 'pg_to_sf'), 0)::bigint
             from pgforce.sync_events
             where created_at > now() - make_interval(secs => $1::float8 * 3600)
             group by ago order by ago desc",
            &[&hours, &bucket],
        )
        .await
        .context(|| "reading the activity of the last hours".to_owned())?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect())
}
