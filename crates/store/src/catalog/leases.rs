//! `pgforce.leases`: who works on what, so two `pgforce run` processes on one catalog
//! never do the same work twice.
//!
//! A lease is a row in `pgforce.leases` naming its holder, when it expires, and a
//! **fencing token** that grows with each new holder. The holder renews it well before
//! expiry, in the background ([`LeaseKeeper`]), whatever its work is doing; anyone may take
//! it once it has expired, so work moves to another process within one lease period when
//! its holder dies. Taking and renewing are the same single statement, so two processes
//! racing for a lease cannot both win.
//!
//! Key concepts:
//! - **Fencing.** A holder's work carries its [`Fence`] (lease, holder, token). Every
//!   transaction that claims rows, records outcomes or moves a cursor calls [`check`]
//!   before it commits: it locks the lease row and fails with [`Error::Fenced`] unless the
//!   lease still carries that token. A holder that lost its lease — frozen past its expiry
//!   while another took over — commits nothing; a takeover waits for a commit in progress.
//! - **Local validity.** Outside the database (before a Salesforce call) a holder trusts
//!   its lease only until its last renewal's start plus the lease's lifetime minus one
//!   renewal period, by its own monotonic clock: a process that was frozen longer than
//!   that stops before its next call, before another process can have taken over.
//! - **Frozen transactions.** A fence cannot stop a frozen holder's open transaction from
//!   keeping its row locks (an uncommitted row the standby's insert must wait for). Fenced
//!   transactions that never wait on Salesforce are ended by Postgres once idle for
//!   [`Fence::idle_limit`] (see [`crate::OwnWrite`]), so a takeover never waits on them.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, GenericClient};

use crate::error::{Context as _, Error, Result};
use crate::ids::MappingId;

/// How writer lease names begin: `writer:<connection name>`.
pub const WRITER_PREFIX: &str = "writer:";
/// How reader lease names begin: `reader:<mapping id>`.
pub const READER_PREFIX: &str = "reader:";

/// The lease of a connection's writer.
pub fn writer_lease(connection: &str) -> String {
    format!("{WRITER_PREFIX}{connection}")
}

/// How change-event subscriber lease names begin: `subscriber:<connection id>`.
pub const SUBSCRIBER_PREFIX: &str = "subscriber:";

/// The lease of a connection's change-event subscriber.
pub fn subscriber_lease(connection: crate::ConnectionId) -> String {
    format!("{SUBSCRIBER_PREFIX}{connection}")
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

/// What work done under a lease carries to prove the lease is still its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease's name.
    pub lease: String,
    /// Its holder.
    pub holder: String,
    /// The token it was taken with.
    pub token: i64,
    /// How long it was taken or renewed for.
    pub ttl: Duration,
}

impl Fence {
    /// How long a transaction of this work may sit idle before Postgres ends it: twice the
    /// lease's lifetime (at least a second). A holder idle that long inside a transaction
    /// that never waits on Salesforce is frozen, and has lost its lease.
    pub fn idle_limit(&self) -> Duration {
        (self.ttl * 2).max(Duration::from_secs(1))
    }
}

fn fence_of(
    name: &str,
    holder: &str,
    ttl: Duration,
    row: Option<tokio_postgres::Row>,
) -> Option<Fence> {
    row.map(|row| Fence {
        lease: name.to_owned(),
        holder: holder.to_owned(),
        token: row.get(0),
        ttl,
    })
}

/// Takes or renews the lease `name` for `ttl`: its fence when `holder` holds it
/// afterwards (the same token on a renewal, a new one on a takeover).
pub async fn acquire(
    client: &Client,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<Fence>> {
    let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let row = client
        .query_opt(
            "insert into pgforce.leases (name, holder, expires_at, token)
             values ($1, $2, now() + make_interval(secs => $3::bigint / 1000.0), nextval('pgforce.lease_tokens'))
             on conflict (name) do update
                 set holder = excluded.holder, expires_at = excluded.expires_at,
                     token = case when leases.holder = excluded.holder then leases.token else excluded.token end
                 where leases.holder = excluded.holder or leases.expires_at < now()
             returning token",
            &[&name, &holder, &millis],
        )
        .await
        .context(|| format!("taking lease {name}"))?;
    Ok(fence_of(name, holder, ttl, row))
}

/// Takes the lease from `dead`, a holder known to have died (a process of this host that
/// no longer runs), without waiting for it to expire: its fence when it was taken.
pub async fn take_over(
    client: &Client,
    name: &str,
    dead: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<Fence>> {
    let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let row = client
        .query_opt(
            "update pgforce.leases set holder = $3, token = nextval('pgforce.lease_tokens'),
                 expires_at = now() + make_interval(secs => $4::bigint / 1000.0)
             where name = $1 and holder = $2
             returning token",
            &[&name, &dead, &holder, &millis],
        )
        .await
        .context(|| format!("taking over lease {name}"))?;
    Ok(fence_of(name, holder, ttl, row))
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
) -> Result<Option<Fence>> {
    if let Some(fence) = acquire(client, name, holder, ttl).await? {
        return Ok(Some(fence));
    }
    match self::holder(client, name).await? {
        Some(other) if is_dead_local(&other) => {
            tracing::info!(lease = name, previous = %other, "the previous holder died; taking over");
            take_over(client, name, &other, holder, ttl).await
        }
        _ => Ok(None),
    }
}

/// Checks, inside a transaction about to commit work done under `fence`, that the lease
/// still carries its token, and locks the lease row until the transaction ends, so no
/// other process takes over before the work is committed. Fails with
/// [`Error::Fenced`] when the lease moved on.
pub async fn check(client: &impl GenericClient, fence: &Fence) -> Result<()> {
    let held = client
        .query_opt(
            "select 1 from pgforce.leases where name = $1 and holder = $2 and token = $3 for share",
            &[&fence.lease, &fence.holder, &fence.token],
        )
        .await
        .context(|| format!("checking lease {}", fence.lease))?;
    match held {
        Some(_) => Ok(()),
        None => Err(Error::Fenced {
            lease: fence.lease.clone(),
        }),
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

/// What a keeper knows of its lease: the fence, and until when (by this process's clock)
/// it may be trusted without asking the database.
#[derive(Debug, Default)]
struct Held {
    fence: Option<Fence>,
    valid_until: Option<Instant>,
    /// Whether the keeper has tried for the lease at least once.
    tried: bool,
}

/// Holds a lease in the background: tries to take it, then renews it, every `every`, on
/// its own connection, so long work (an initial load, a slow pass) never lets it lapse.
/// Dropping the keeper stops it; [`LeaseKeeper::release`] also gives the lease up.
#[derive(Debug)]
pub struct LeaseKeeper {
    held: Arc<Mutex<Held>>,
    task: tokio::task::JoinHandle<()>,
    url: String,
    name: String,
    holder: String,
}

/// Notes the outcome of one renewal. A failed one (database unreachable) leaves the lease
/// trusted until its local deadline; a lease another holds is not ours at all.
fn record(held: &Mutex<Held>, fence: Option<Fence>, valid_until: Instant, reachable: bool) {
    let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
    match fence {
        Some(fence) => {
            held.fence = Some(fence);
            held.valid_until = Some(valid_until);
        }
        None if reachable => {
            held.fence = None;
            held.valid_until = None;
        }
        None => {}
    }
    held.tried = true;
}

impl LeaseKeeper {
    /// Starts keeping lease `name` for `holder`.
    pub fn start(url: &str, name: &str, holder: &str, ttl: Duration, every: Duration) -> Self {
        let held = Arc::new(Mutex::new(Held::default()));
        let (task_url, task_name, task_holder, task_held) = (
            url.to_owned(),
            name.to_owned(),
            holder.to_owned(),
            Arc::clone(&held),
        );
        // Trusted for the lifetime less one renewal period: a renewal that is merely late
        // never lets the lease be trusted after it could have expired.
        let trusted = ttl.saturating_sub(every);
        let task = tokio::spawn(async move {
            let mut client: Option<Client> = None;
            loop {
                if client.as_ref().is_none_or(Client::is_closed) {
                    client = crate::connect(&task_url).await.ok();
                }
                let started = Instant::now();
                let fence = match &client {
                    Some(client) => acquire_or_take_over(client, &task_name, &task_holder, ttl)
                        .await
                        .ok()
                        .flatten(),
                    None => None,
                };
                let reachable = client.as_ref().is_some_and(|c| !c.is_closed());
                record(&task_held, fence, started + trusted, reachable);
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

    /// The fence of the lease while it may be trusted: held at the last renewal, and that
    /// renewal recent enough by this process's clock.
    pub fn fence(&self) -> Option<Fence> {
        trusted(&self.held)
    }

    /// A handle that tells, from anywhere, whether the lease may still be trusted.
    pub fn watch(&self) -> LeaseWatch {
        LeaseWatch {
            held: Arc::clone(&self.held),
        }
    }

    /// Whether the keeper has tried for the lease at least once (whether [`Self::fence`]
    /// says anything yet).
    pub fn has_tried(&self) -> bool {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tried
    }

    /// The lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Who this keeper holds the lease as.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether the lease may be trusted now.
    pub fn is_held(&self) -> bool {
        self.fence().is_some()
    }

    /// Waits (at most `timeout`) until the lease is held; its fence, or `None`.
    pub async fn wait_held(&self, timeout: Duration) -> Option<Fence> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(fence) = self.fence() {
                return Some(fence);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops renewing and gives the lease up.
    pub async fn release(self) {
        self.task.abort();
        if let Ok(client) = crate::connect(&self.url).await {
            let _ = release(&client, &self.name, &self.holder).await;
        }
    }
}

fn trusted(held: &Mutex<Held>) -> Option<Fence> {
    let held = held.lock().unwrap_or_else(PoisonError::into_inner);
    let valid = held.valid_until.is_some_and(|until| Instant::now() < until);
    valid.then(|| held.fence.clone()).flatten()
}

/// Tells whether a kept lease may still be trusted (see [`LeaseKeeper::watch`]); cheap to
/// clone and to ask, for a check made right before an external call.
#[derive(Debug, Clone)]
pub struct LeaseWatch {
    held: Arc<Mutex<Held>>,
}

impl LeaseWatch {
    /// The fence while the lease may be trusted.
    pub fn fence(&self) -> Option<Fence> {
        trusted(&self.held)
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
