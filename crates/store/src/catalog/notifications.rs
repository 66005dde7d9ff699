//! Notifications: events an operator should hear about, stored per connection, listed and
//! acknowledged through the management API, and delivered to webhooks.
//!
//! An event is not stored again while an unacknowledged one of the same type and subject
//! exists for the connection: a mapping that fails every poll raises one notification,
//! not one a second. Delivery is at least once: a row is marked delivered after the
//! webhook answered 2xx, and failed attempts are retried later with growing delays.

use tokio_postgres::GenericClient;

use crate::MappingId;
use crate::error::{Context as _, Result};

/// What a notification is about: one mapping, or a whole connection.
#[derive(Debug, Clone, Copy)]
pub enum About<'a> {
    /// A mapping, by id.
    Mapping(MappingId),
    /// A connection, by name.
    Connection(&'a str),
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Its id.
    pub id: i64,
    /// Its connection's name.
    pub connection: String,
    /// When it was raised (UTC, ISO 8601).
    pub created_at: String,
    /// `mapping-error`, `schema-changed`, `connection-paused`, …
    pub event_type: String,
    /// What it is about (`mapping Account`, `connection main`).
    pub subject: String,
    /// What happened, for people.
    pub message: String,
    /// Whether an operator acknowledged it.
    pub acknowledged: bool,
    /// Deliveries tried so far.
    pub delivery_attempts: i32,
}

const COLUMNS: &str = "n.id, c.name,
    to_char(n.created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
    n.event_type, n.subject, n.message, n.acknowledged_at is not null, n.delivery_attempts";

fn from_row(row: &tokio_postgres::Row) -> Notification {
    Notification {
        id: row.get(0),
        connection: row.get(1),
        created_at: row.get(2),
        event_type: row.get(3),
        subject: row.get(4),
        message: row.get(5),
        acknowledged: row.get(6),
        delivery_attempts: row.get(7),
    }
}

/// Stores a notification unless an unacknowledged one of the same type and subject
/// exists; `true` when stored.
pub async fn raise(
    client: &impl GenericClient,
    about: About<'_>,
    event_type: &str,
    subject: &str,
    message: &str,
) -> Result<bool> {
    let (mapping, connection) = match about {
        About::Mapping(id) => (Some(id.get()), None),
        About::Connection(name) => (None, Some(name)),
    };
    let stored = client
        .execute(
            "insert into pgforce.notifications (connection_id, event_type, subject, message)
             select c.id, $3, $4, $5 from pgforce.connections c
             where c.id = coalesce((select connection_id from pgforce.mappings where id = $1), c.id)
               and ($2::text is null or c.name = $2) and ($1::bigint is not null or $2::text is not null)
               and not exists (select 1 from pgforce.notifications n
                               where n.connection_id = c.id and n.event_type = $3 and n.subject = $4
                                 and n.acknowledged_at is null)",
            &[&mapping, &connection, &event_type, &subject, &message],
        )
        .await
        .context(|| format!("storing a {event_type} notification about {subject}"))?;
    Ok(stored > 0)
}

/// Which notifications a list or an acknowledgement means.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Raised after this time (ISO 8601).
    pub after: Option<String>,
    /// Raised before this time (ISO 8601).
    pub before: Option<String>,
    /// Of this type only.
    pub event_type: Option<String>,
}

/// A connection's notifications, newest first, at most `limit`.
pub async fn list(
    client: &impl GenericClient,
    connection: &str,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<Notification>> {
    let rows = client
        .query(
            &format!(
                "select {COLUMNS} from pgforce.notifications n join pgforce.connections c on c.id = n.connection_id
                 where c.name = $1 and ($2::text is null or n.created_at > $2::timestamptz)
                   and ($3::text is null or n.created_at < $3::timestamptz)
                   and ($4::text is null or n.event_type = $4)
                 order by n.id desc limit $5"
            ),
            &[&connection, &filter.after, &filter.before, &filter.event_type, &limit],
        )
        .await
        .context(|| format!("listing the notifications of connection {connection}"))?;
    Ok(rows.iter().map(from_row).collect())
}

/// Acknowledges a connection's notifications; returns how many.
pub async fn acknowledge(
    client: &impl GenericClient,
    connection: &str,
    filter: &Filter,
) -> Result<u64> {
    client
        .execute(
            "update pgforce.notifications n set acknowledged_at = now()
             from pgforce.connections c
             where c.id = n.connection_id and c.name = $1 and n.acknowledged_at is null
               and ($2::text is null or n.created_at > $2::timestamptz)
               and ($3::text is null or n.created_at < $3::timestamptz)
               and ($4::text is null or n.event_type = $4)",
            &[
                &connection,
                &filter.after,
                &filter.before,
                &filter.event_type,
            ],
        )
        .await
        .context(|| format!("acknowledging the notifications of connection {connection}"))
}

/// Claims notifications due for delivery (never delivered, next attempt due), oldest
/// first, at most `limit`: their next attempt moves `claim_seconds` ahead, so another
/// process does not deliver them meanwhile.
pub async fn claim_due(
    client: &impl GenericClient,
    limit: i64,
    claim_seconds: f64,
) -> Result<Vec<Notification>> {
    let rows = client
        .query(
            &format!(
                "with due as (
                     select id from pgforce.notifications
                     where delivered_at is null and next_delivery_at <= now()
                     order by id limit $1 for update skip locked),
                 claimed as (
                     update pgforce.notifications n set next_delivery_at = now() + make_interval(secs => $2)
                     from due where n.id = due.id
                     returning n.*)
                 select {COLUMNS} from claimed n join pgforce.connections c on c.id = n.connection_id
                 order by n.id"
            ),
            &[&limit, &claim_seconds],
        )
        .await
        .context(|| "claiming notifications due for delivery".to_owned())?;
    Ok(rows.iter().map(from_row).collect())
}

/// Records that notification `id` was delivered.
pub async fn delivered(client: &impl GenericClient, id: i64) -> Result<()> {
    client
        .execute(
            "update pgforce.notifications set delivered_at = now(), delivery_attempts = delivery_attempts + 1,
                 last_delivery_error = null where id = $1",
            &[&id],
        )
        .await
        .context(|| format!("recording the delivery of notification {id}"))?;
    Ok(())
}

/// Records a failed delivery of notification `id`: tried again after `retry_in`
/// seconds, or never (`None`: given up; the error stays for the operator).
pub async fn delivery_failed(
    client: &impl GenericClient,
    id: i64,
    error: &str,
    retry_in: Option<f64>,
) -> Result<()> {
    client
        .execute(
            "update pgforce.notifications set delivery_attempts = delivery_attempts + 1,
                 last_delivery_error = $2,
                 next_delivery_at = coalesce(now() + make_interval(secs => $3), 'infinity')
             where id = $1",
            &[&id, &error, &retry_in],
        )
        .await
        .context(|| format!("recording a failed delivery of notification {id}"))?;
    Ok(())
}
