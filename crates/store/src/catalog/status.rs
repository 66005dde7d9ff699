//! What `pgforce status` (and, later, the dashboard) shows from the catalog: every mapping
//! with its state and what it is busy with, and every connection's writer with its holder.

use tokio_postgres::GenericClient;

use crate::error::{Context as _, Result};
use crate::ids::{ConnectionId, MappingId};
use crate::states::{Access, ConnectionState, MappingState};

/// One mapping's line of the status report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingReport {
    /// The mapping's id.
    pub id: MappingId,
    /// Its connection's name.
    pub connection: String,
    /// The object's API name.
    pub object: String,
    /// The connection's schema.
    pub schema: String,
    /// The mapping's table.
    pub table: String,
    /// Its state.
    pub state: MappingState,
    /// Whether it (or its connection) is paused by an operator.
    pub paused: bool,
    /// When it was last in sync (`YYYY-MM-DD HH:MI:SS`, UTC).
    pub last_sync: Option<String>,
    /// Whole seconds since then, by the database's clock.
    pub seconds_since_sync: Option<u64>,
    /// Its last error.
    pub last_error: Option<String>,
    /// What it is busy with (a running Bulk API job).
    pub activity: Option<String>,
    /// The drift counts of the last reconcile (JSON object text, kinds → counts).
    pub drift: Option<String>,
    /// When that reconcile ran.
    pub drift_checked: Option<String>,
    /// The change-event transport keeping it fresh (`pubsub`, `cometd`), if events flow.
    pub events_transport: Option<String>,
    /// When the last change event for it came (`YYYY-MM-DD HH:MI:SS`, UTC).
    pub last_event: Option<String>,
}

/// Every mapping, by connection and object.
pub async fn mappings(client: &impl GenericClient) -> Result<Vec<MappingReport>> {
    let rows = client
        .query(
            "select m.id, c.name, m.object_name, c.schema_name, m.table_name, m.state, m.paused or c.paused,
                    to_char(m.last_sync_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS'), m.last_error,
                    m.activity, (m.drift - 'checked_at' - 'salesforce_records' - 'postgres_rows')::text,
                    to_char((m.drift ->> 'checked_at')::timestamptz at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
                    floor(extract(epoch from now() - m.last_sync_at))::bigint,
                    m.events_transport, to_char(m.last_event_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS')
             from pgforce.mappings m join pgforce.connections c on c.id = m.connection_id
             order by c.name, m.object_name",
            &[],
        )
        .await
        .context(|| "reading the mappings for the status report".to_owned())?;
    Ok(rows
        .iter()
        .map(|row| MappingReport {
            id: MappingId::from(row.get::<_, i64>(0)),
            connection: row.get(1),
            object: row.get(2),
            schema: row.get(3),
            table: row.get(4),
            state: MappingState::parse(row.get(5)),
            paused: row.get(6),
            last_sync: row.get(7),
            last_error: row.get(8),
            activity: row.get(9),
            drift: row.get(10),
            drift_checked: row.get(11),
            seconds_since_sync: row
                .get::<_, Option<i64>>(12)
                .map(|s| u64::try_from(s).unwrap_or_default()),
            events_transport: row.get(13),
            last_event: row.get(14),
        })
        .collect())
}

/// One connection's writer line of the status report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterReport {
    /// The connection's id.
    pub connection: ConnectionId,
    /// Its name.
    pub name: String,
    /// Its schema.
    pub schema: String,
    /// The process holding its writer lease, if one does.
    pub holder: Option<String>,
    /// The connection's state.
    pub state: ConnectionState,
    /// Why it is paused or in error.
    pub last_error: Option<String>,
}

/// Every connection that has a read-write mapping, by name.
pub async fn writers(client: &impl GenericClient) -> Result<Vec<WriterReport>> {
    let rows = client
        .query(
            "select c.id, c.name, c.schema_name, l.holder, c.state, c.last_error from pgforce.connections c
             left join pgforce.leases l on l.name = $1 || c.name and l.expires_at >= now()
             where exists (select 1 from pgforce.mappings m where m.connection_id = c.id and m.access = $2)
             order by c.name",
            &[&super::leases::WRITER_PREFIX, &Access::ReadWrite.as_str()],
        )
        .await
        .context(|| "reading the writers for the status report".to_owned())?;
    Ok(rows
        .iter()
        .map(|row| WriterReport {
            connection: ConnectionId::from(row.get::<_, i64>(0)),
            name: row.get(1),
            schema: row.get(2),
            holder: row.get(3),
            state: ConnectionState::parse(row.get(4)),
            last_error: row.get(5),
        })
        .collect())
}
