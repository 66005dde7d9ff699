//! OData services (Heroku External Objects): one per connection, reached at
//! `/odata/v4/<slug>/`, with its HTTP Basic credentials, the relations it publishes and
//! the requests it answered per hour.
//!
//! Key concepts:
//! - **Passwords are kept as hashes.** A password is 24 random bytes from the system's
//!   generator (32 characters of base64url), shown once by the call that made it; the
//!   catalog keeps PBKDF2-HMAC-SHA256 of it with a per-credential salt and compares in
//!   constant time. The password carries 192 bits of entropy, so stretching is not what
//!   protects it: the iteration count ([`ITERATIONS`]) stays low because every OData
//!   request is checked, and it is stored per credential so it can be raised later.
//! - **Resets overlap.** A reset makes a new credential and gives the one it replaces
//!   until now + the service's `credential_overlap_seconds` (600, as Heroku's 10
//!   minutes); a revoke (disable) ends every credential at once.
//! - **Usage is one upsert per request.** A request is counted in its service's current
//!   hour only while the hour's count is under the service's limit, in the same statement,
//!   so concurrent requests cannot overshoot it.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};
use tokio_postgres::GenericClient;

use crate::error::{Context as _, Error, Result};
use crate::ids::ConnectionId;

/// PBKDF2 iterations of new credentials (see the module doc for why so few).
pub const ITERATIONS: u32 = 1_000;

/// An OData service as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    /// Its id.
    pub id: i64,
    /// The connection it belongs to.
    pub connection_id: ConnectionId,
    /// The URL segment: 32 lowercase hex digits.
    pub slug: String,
    /// Whether it answers (false: revoked or never enabled).
    pub enabled: bool,
    /// Whether entity sets take POST, PATCH and DELETE.
    pub writable: bool,
    /// Whether `$search` is accepted.
    pub search_enabled: bool,
    /// Requests answered per hour at most.
    pub hourly_request_limit: i32,
    /// Each request's statement timeout, in milliseconds.
    pub statement_timeout_ms: i32,
    /// How long a replaced credential keeps working, in seconds.
    pub credential_overlap_seconds: i32,
}

/// A relation a service knows, published (`exported`) or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRow {
    /// Its id.
    pub id: i64,
    /// Its schema.
    pub schema_name: String,
    /// Its table or view.
    pub table_name: String,
    /// Whether it is published.
    pub exported: bool,
}

/// Changes of a service's settings; `None` leaves one as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    /// Whether entity sets take writes.
    pub writable: Option<bool>,
    /// Whether `$search` is accepted.
    pub search_enabled: Option<bool>,
    /// Requests per hour at most (at least 1).
    pub hourly_request_limit: Option<i32>,
    /// Statement timeout per request, in milliseconds (100 to 120,000).
    pub statement_timeout_ms: Option<i32>,
    /// How long a replaced credential keeps working, in seconds (at least 0).
    pub credential_overlap_seconds: Option<i32>,
}

const SERVICE_COLUMNS: &str = "id, connection_id, slug, enabled, writable, search_enabled,
    hourly_request_limit, statement_timeout_ms, credential_overlap_seconds";

fn service_from(row: &tokio_postgres::Row) -> ServiceRow {
    ServiceRow {
        id: row.get(0),
        connection_id: ConnectionId::from(row.get::<_, i64>(1)),
        slug: row.get(2),
        enabled: row.get(3),
        writable: row.get(4),
        search_enabled: row.get(5),
        hourly_request_limit: row.get(6),
        statement_timeout_ms: row.get(7),
        credential_overlap_seconds: row.get(8),
    }
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0_u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Catalog {
            what: "the system's random generator failed".to_owned(),
        })?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The connection's service, made (disabled, with a new random slug) if it has none.
pub async fn ensure(client: &impl GenericClient, connection: ConnectionId) -> Result<ServiceRow> {
    // Read first: an insert that meets the row would still spend a sequence value.
    if let Some(row) = by_connection(client, connection).await? {
        return Ok(row);
    }
    let slug = hex(&random::<16>()?);
    client
        .execute(
            "insert into pgforce.odata_services (connection_id, slug) values ($1, $2)
             on conflict (connection_id) do nothing",
            &[&connection.get(), &slug],
        )
        .await
        .context(|| format!("making the OData service of connection {connection}"))?;
    by_connection(client, connection)
        .await?
        .ok_or_else(|| Error::Catalog {
            what: format!("connection {connection} has no OData service after making one"),
        })
}

async fn one(
    client: &impl GenericClient,
    filter: &str,
    value: &(dyn tokio_postgres::types::ToSql + Sync),
    what: &str,
) -> Result<Option<ServiceRow>> {
    let sql = format!("select {SERVICE_COLUMNS} from pgforce.odata_services where {filter} = $1");
    let row = client
        .query_opt(&sql, &[value])
        .await
        .context(|| format!("reading the OData service {what}"))?;
    Ok(row.as_ref().map(service_from))
}

/// The service with this id.
pub async fn by_id(client: &impl GenericClient, id: i64) -> Result<Option<ServiceRow>> {
    one(client, "id", &id, &format!("with id {id}")).await
}

/// The connection's service, if it has one.
pub async fn by_connection(
    client: &impl GenericClient,
    connection: ConnectionId,
) -> Result<Option<ServiceRow>> {
    one(
        client,
        "connection_id",
        &connection.get(),
        &format!("of connection {connection}"),
    )
    .await
}

/// The service reached at `slug`.
pub async fn by_slug(client: &impl GenericClient, slug: &str) -> Result<Option<ServiceRow>> {
    one(client, "slug", &slug, "of a slug").await
}

/// Every service, by id.
pub async fn list(client: &impl GenericClient) -> Result<Vec<ServiceRow>> {
    let sql = format!("select {SERVICE_COLUMNS} from pgforce.odata_services order by id");
    let rows = client
        .query(&sql, &[])
        .await
        .context(|| "listing the OData services".to_owned())?;
    Ok(rows.iter().map(service_from).collect())
}

/// Enables the service (it answers again with its current credential).
pub async fn enable(client: &impl GenericClient, id: i64) -> Result<()> {
    client
        .execute(
            "update pgforce.odata_services set enabled = true, updated_at = now() where id = $1",
            &[&id],
        )
        .await
        .context(|| format!("enabling OData service {id}"))?;
    Ok(())
}

/// Disables the service and ends every credential it has at once.
pub async fn revoke(client: &impl GenericClient, id: i64) -> Result<()> {
    client
        .execute(
            "with ended as (
                 update pgforce.odata_credentials set expires_at = now()
                 where service_id = $1 and (expires_at is null or expires_at > now())
             )
             update pgforce.odata_services set enabled = false, updated_at = now() where id = $1",
            &[&id],
        )
        .await
        .context(|| format!("revoking OData service {id}"))?;
    Ok(())
}

/// Changes the service's settings; the error names a value the catalog refuses.
pub async fn update_settings(
    client: &impl GenericClient,
    id: i64,
    settings: Settings,
) -> Result<()> {
    client
        .execute(
            "update pgforce.odata_services set
                 writable = coalesce($2, writable),
                 search_enabled = coalesce($3, search_enabled),
                 hourly_request_limit = coalesce($4, hourly_request_limit),
                 statement_timeout_ms = coalesce($5, statement_timeout_ms),
                 credential_overlap_seconds = coalesce($6, credential_overlap_seconds),
                 updated_at = now()
             where id = $1",
            &[
                &id,
                &settings.writable,
                &settings.search_enabled,
                &settings.hourly_request_limit,
                &settings.statement_timeout_ms,
                &settings.credential_overlap_seconds,
            ],
        )
        .await
        .context(|| format!("changing the settings of OData service {id}"))?;
    Ok(())
}

fn derive(salt: &[u8], iterations: NonZeroU32, password: &str) -> [u8; 32] {
    let mut hash = [0_u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        password.as_bytes(),
        &mut hash,
    );
    hash
}

/// Makes a new credential for the service; the one it replaces keeps working for the
/// service's overlap. Returns the user name and the password (kept nowhere).
pub async fn new_credential(client: &impl GenericClient, id: i64) -> Result<(String, String)> {
    let user = format!("odata_{}", hex(&random::<6>()?));
    let password = URL_SAFE_NO_PAD.encode(random::<24>()?);
    let salt = random::<16>()?;
    let iterations = NonZeroU32::new(ITERATIONS).ok_or_else(|| Error::Catalog {
        what: "the PBKDF2 iteration count is zero".to_owned(),
    })?;
    let hash = derive(&salt, iterations, &password);
    let iterations = i32::try_from(ITERATIONS).unwrap_or(i32::MAX);
    client
        .execute(
            "with replaced as (
                 update pgforce.odata_credentials c
                 set expires_at = now() + make_interval(secs => s.credential_overlap_seconds)
                 from pgforce.odata_services s
                 where s.id = c.service_id and c.service_id = $1 and c.expires_at is null
             )
             insert into pgforce.odata_credentials
                 (service_id, user_name, password_salt, password_iterations, password_hash)
             values ($1, $2, $3, $4, $5)",
            &[&id, &user, &salt.as_slice(), &iterations, &hash.as_slice()],
        )
        .await
        .context(|| format!("making a credential for OData service {id}"))?;
    Ok((user, password))
}

/// The current credential's user name, if the service has one.
pub async fn current_user(client: &impl GenericClient, id: i64) -> Result<Option<String>> {
    let row = client
        .query_opt(
            "select user_name from pgforce.odata_credentials
             where service_id = $1 and expires_at is null
             order by id desc limit 1",
            &[&id],
        )
        .await
        .context(|| format!("reading the credential of OData service {id}"))?;
    Ok(row.map(|row| row.get(0)))
}

/// Whether `user` and `password` are a live credential of the service. The comparison
/// is constant-time, and an unknown user costs the same derivation as a known one.
pub async fn verify(
    client: &impl GenericClient,
    id: i64,
    user: &str,
    password: &str,
) -> Result<bool> {
    let rows = client
        .query(
            "select password_salt, password_iterations, password_hash
             from pgforce.odata_credentials
             where service_id = $1 and user_name = $2
               and (expires_at is null or expires_at > now())",
            &[&id, &user],
        )
        .await
        .context(|| format!("reading the credentials of OData service {id}"))?;
    if rows.is_empty() {
        let iterations = NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN);
        let _ = derive(&[0_u8; 16], iterations, password);
        return Ok(false);
    }
    let mut granted = false;
    for row in rows {
        let salt: Vec<u8> = row.get(0);
        let iterations: i32 = row.get(1);
        let hash: Vec<u8> = row.get(2);
        let iterations = u32::try_from(iterations)
            .ok()
            .and_then(NonZeroU32::new)
            .unwrap_or(NonZeroU32::MIN);
        granted |= pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            password.as_bytes(),
            &hash,
        )
        .is_ok();
    }
    Ok(granted)
}

/// What counting a request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Counted; this many requests this hour, this one included.
    Within(i64),
    /// Not counted: the hour's limit is reached; the next hour starts in this many seconds.
    Over {
        /// Seconds until the next hour (at least 1).
        retry_after: u64,
    },
}

/// Counts a request in the service's current hour unless the hour holds `limit` already.
///
/// Its commit does not wait for the write-ahead log to reach the disk
/// (`synchronous_commit = off` for this statement's transaction alone): that wait was the
/// largest part of every OData request's cost (about 2 ms of fsync here), and a crash
/// loses at most the last fraction of a second of counts of a rate limit, never data.
pub async fn count_request(client: &impl GenericClient, id: i64, limit: i64) -> Result<Counted> {
    let row = client
        .query_opt(
            "with unflushed as (select set_config('synchronous_commit', 'off', true))
             insert into pgforce.odata_usage as u (service_id, hour, requests)
             select $1, date_trunc('hour', now()), 1 from unflushed
             on conflict (service_id, hour)
             do update set requests = u.requests + 1 where u.requests < $2
             returning requests",
            &[&id, &limit],
        )
        .await
        .context(|| format!("counting a request of OData service {id}"))?;
    if let Some(row) = row {
        return Ok(Counted::Within(row.get(0)));
    }
    let seconds: f64 = client
        .query_one(
            "select extract(epoch from date_trunc('hour', now()) + interval '1 hour' - now())::float8",
            &[],
        )
        .await
        .context(|| "reading the time to the next hour".to_owned())?
        .get(0);
    Ok(Counted::Over {
        retry_after: (seconds.ceil() as u64).max(1),
    })
}

/// Requests the service answered this hour.
pub async fn current_usage(client: &impl GenericClient, id: i64) -> Result<i64> {
    let row = client
        .query_opt(
            "select requests from pgforce.odata_usage
             where service_id = $1 and hour = date_trunc('hour', now())",
            &[&id],
        )
        .await
        .context(|| format!("reading the usage of OData service {id}"))?;
    Ok(row.map_or(0, |row| row.get(0)))
}

/// Deletes what no longer counts: credentials past their expiry (they are refused
/// already) and usage older than a day (the limit reads only the current hour). Returns
/// how many rows went.
pub async fn purge(client: &impl GenericClient) -> Result<u64> {
    let credentials = client
        .execute(
            "delete from pgforce.odata_credentials where expires_at < now()",
            &[],
        )
        .await
        .context(|| "deleting expired OData credentials".to_owned())?;
    let usage = client
        .execute(
            "delete from pgforce.odata_usage where hour < now() - interval '1 day'",
            &[],
        )
        .await
        .context(|| "deleting old OData usage".to_owned())?;
    Ok(credentials + usage)
}

/// Every relation the service knows, by schema and name.
pub async fn resources(client: &impl GenericClient, id: i64) -> Result<Vec<ResourceRow>> {
    let rows = client
        .query(
            "select id, schema_name, table_name, exported from pgforce.odata_resources
             where service_id = $1 order by schema_name, table_name",
            &[&id],
        )
        .await
        .context(|| format!("listing the resources of OData service {id}"))?;
    Ok(rows
        .iter()
        .map(|row| ResourceRow {
            id: row.get(0),
            schema_name: row.get(1),
            table_name: row.get(2),
            exported: row.get(3),
        })
        .collect())
}

/// Publishes `schema.table` (validated by the caller); returns its resource.
pub async fn publish(
    client: &impl GenericClient,
    id: i64,
    schema: &str,
    table: &str,
) -> Result<ResourceRow> {
    let row = client
        .query_one(
            "insert into pgforce.odata_resources (service_id, schema_name, table_name, exported)
             values ($1, $2, $3, true)
             on conflict (service_id, schema_name, table_name) do update set exported = true
             returning id, schema_name, table_name, exported",
            &[&id, &schema, &table],
        )
        .await
        .context(|| format!("publishing {schema}.{table} on OData service {id}"))?;
    Ok(ResourceRow {
        id: row.get(0),
        schema_name: row.get(1),
        table_name: row.get(2),
        exported: row.get(3),
    })
}

/// Stops publishing `schema.table`; `false` when the service did not publish it.
pub async fn unpublish(
    client: &impl GenericClient,
    id: i64,
    schema: &str,
    table: &str,
) -> Result<bool> {
    let changed = client
        .execute(
            "update pgforce.odata_resources set exported = false
             where service_id = $1 and schema_name = $2 and table_name = $3 and exported",
            &[&id, &schema, &table],
        )
        .await
        .context(|| format!("unpublishing {schema}.{table} on OData service {id}"))?;
    Ok(changed > 0)
}
