//! `pgforce.leases`: who works on what, so two `pgforce run` processes on one catalog
//! never do the same work twice.
//!
//! A lease is a row in `pgforce.leases` naming its holder and when it expires. The holder
//! renews it well before expiry (heartbeat); anyone may take it once it has expired, so
//! work moves to another process within one lease period when its holder dies. Taking and
//! renewing are the same single statement, so two processes racing for a lease cannot
//! both win.

use std::time::Duration;

use tokio_postgres::Client;

use crate::error::{Context as _, Result};
use crate::ids::MappingId;

/// How writer lease names begin: `writer:<connection name>`.
pub const WRITER_PREFIX: &str = "writer:";
/// How reader lease names begin: `reader:<mapping id>`.
pub const READER_PREFIX: &str = "reader:";

/// The lease of a connection's writer.
pub fn writer_lease(connection: &str) -> String {
    format!("{WRITER_PREFIX}{connection}")
}

/// The lease of a mapping's reader.
pub fn reader_lease(mapping: MappingId) -> String {
    format!("{READER_PREFIX}{mapping}")
}

/// A name for this process as a lease holder: host, pid and a random part, so a restarted
/// process never mistakes an old lease for its own.
pub fn holder_name() -> String {
    let host = host_name().unwrap_or_else(|| "unknown-host".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}:{}:{nanos:08x}", std::process::id())
}

/// This machine's host name (the kernel's, else `$HOSTNAME`), without `:` so it can lead a
/// holder name; `None` when neither is known.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().replace(':', "_"))
        .filter(|h| !h.is_empty())
}

/// Takes or renews the lease `name` for `ttl`. `true` when `holder` holds it afterwards.
pub async fn acquire(client: &Client, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
    let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let row = client
        .query_opt(
            "insert into pgforce.leases (name, holder, expires_at)
             values ($1, $2, now() + make_interval(secs => $3::bigint / 1000.0))
             on conflict (name) do update
                 set holder = excluded.holder, expires_at = excluded.expires_at
                 where leases.holder = excluded.holder or leases.expires_at < now()
             returning holder",
            &[&name, &holder, &millis],
        )
        .await
        .context(|| format!("taking lease {name}"))?;
    Ok(row.is_some())
}

/// Takes the lease from `dead`, a holder known to have died (a process of this host that
/// no longer runs), without waiting for it to expire. `true` when it was taken.
pub async fn take_over(
    client: &Client,
    name: &str,
    dead: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool> {
    let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    client
        .execute(
            "update pgforce.leases set holder = $3, expires_at = now() + make_interval(secs => $4::bigint / 1000.0)
             where name = $1 and holder = $2",
            &[&name, &dead, &holder, &millis],
        )
        .await
        .context(|| format!("taking over lease {name}"))
        .map(|n| n == 1)
}

/// Whether `holder` names a process of this host that no longer runs (Linux: no
/// `/proc/<pid>`). Holders of other hosts are never judged dead here.
pub fn is_dead_local(holder: &str) -> bool {
    let mut parts = holder.split(':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    // Without a known host name no holder can be told apart from one on another machine.
    let Some(ours) = host_name() else {
        return false;
    };
    host == ours
        && pid.parse::<u32>().is_ok()
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Takes or renews the lease like [`acquire`], and also takes it from a holder that is a
/// dead process of this host (a restart after a kill need not wait for expiry).
pub async fn acquire_or_take_over(
    client: &Client,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool> {
    if acquire(client, name, holder, ttl).await? {
        return Ok(true);
    }
    match self::holder(client, name).await? {
        Some(other) if is_dead_local(&other) => {
            tracing::info!(lease = name, previous = %other, "the previous holder died; taking over");
            take_over(client, name, &other, holder, ttl).await
        }
        _ => Ok(false),
    }
}

/// Gives the lease up, if `holder` holds it.
pub async fn release(client: &Client, name: &str, holder: &str) -> Result<()> {
    client
        .execute(
            "delete from pgforce.leases where name = $1 and holder = $2",
            &[&name, &holder],
        )
        .await
        .context(|| format!("releasing lease {name}"))
        .map(|_| ())
}

/// Who holds the lease `name` now (expired leases count as free).
pub async fn holder(client: &Client, name: &str) -> Result<Option<String>> {
    client
        .query_opt(
            "select holder from pgforce.leases where name = $1 and expires_at >= now()",
            &[&name],
        )
        .await
        .context(|| format!("reading lease {name}"))
        .map(|row| row.map(|r| r.get(0)))
}

/// Holds a lease in the background: tries to take it, then renews it, every `every`, on
/// its own connection, so long work (an initial load) never lets it lapse. Dropping the
/// keeper stops it; [`LeaseKeeper::release`] also gives the lease up.
#[derive(Debug)]
pub struct LeaseKeeper {
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    url: String,
    name: String,
    holder: String,
}

impl LeaseKeeper {
    /// Starts keeping lease `name` for `holder`.
    pub fn start(url: &str, name: &str, holder: &str, ttl: Duration, every: Duration) -> Self {
        use std::sync::atomic::Ordering;
        let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (task_url, task_name, task_holder, task_held) = (
            url.to_owned(),
            name.to_owned(),
            holder.to_owned(),
            std::sync::Arc::clone(&held),
        );
        let task = tokio::spawn(async move {
            let mut client: Option<Client> = None;
            loop {
                if client.as_ref().is_none_or(Client::is_closed) {
                    client = crate::connect(&task_url).await.ok();
                }
                let now_held = match &client {
                    Some(client) => acquire_or_take_over(client, &task_name, &task_holder, ttl)
                        .await
                        .unwrap_or(false),
                    None => false,
                };
                task_held.store(now_held, Ordering::SeqCst);
                tokio::time::sleep(every).await;
            }
        });
        Self {
            held,
            task,
            url: url.to_owned(),
            name: name.to_owned(),
            holder: holder.to_owned(),
        }
    }

    /// Whether the lease was held at the last try.
    pub fn is_held(&self) -> bool {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops renewing and gives the lease up.
    pub async fn release(self) {
        self.task.abort();
        if let Ok(client) = crate::connect(&self.url).await {
            let _ = release(&client, &self.name, &self.holder).await;
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
