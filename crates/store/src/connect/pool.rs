//! A bounded pool of catalog sessions for short work: API requests, metric scrapes,
//! commands.
//!
//! Opening a session costs a TCP connect, a TLS handshake and SCRAM, and Postgres allows
//! only `max_connections` of them: a few hundred callers each opening their own would
//! leave none for pgforce's workers or the app. [`Pool`] keeps at most `size` sessions,
//! opened through the same [`Target`] as every other session (libpq's `sslmode` rules,
//! root certificates, client certificates), and makes callers beyond that wait, for a
//! bounded time, for one to come back.
//!
//! Key concepts:
//! - **Health check on hand-out.** An idle session is checked before it is handed out
//!   again: one whose connection ended is dropped at once, and the others run a reset
//!   (`RESET ALL`, `UNLISTEN *`, advisory locks released, temporary tables and portals
//!   dropped). A session Postgres ended (`pg_terminate_backend`, a restart) fails that
//!   reset and is replaced by a new one, so the caller never sees it.
//! - **Nothing leaks between borrowers.** The reset returns any `SET` a borrower made to
//!   the server's defaults; a transaction a borrower left open is rolled back when its
//!   [`tokio_postgres::Transaction`] is dropped, before the session's next statement.
//! - **Bounded waits.** A caller waits at most the pool's wait timeout; then it gets
//!   [`Error::PoolExhausted`] (the API answers 503), never an endless wait.
//!
//! Pooled sessions show as `application_name = 'pgforce pool'` in `pg_stat_activity`
//! unless the connection string sets its own.
//!
//! Workers (readers, writers, subscribers, lease keepers, LISTEN) do not use the pool:
//! they hold their own sessions for long transactions and notifications.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Connect, Manager, ManagerConfig, PoolError, RecyclingMethod, Runtime, Timeouts,
};
use tokio_postgres::Client;

use super::Target;
use crate::error::{Error, Result};

/// How long a caller waits for a pooled session before [`Error::PoolExhausted`].
pub const POOL_WAIT: Duration = Duration::from_secs(10);

/// The `application_name` of pooled sessions (in `pg_stat_activity`), unless the
/// connection string names one.
pub const APPLICATION_NAME: &str = "pgforce pool";

/// What every session is reset with before it is handed out again: the defaults of
/// every setting, no LISTEN, no advisory lock, no temporary table or open cursor. A
/// session whose connection ended fails it and is replaced.
const RESET: &str =
    "close all; reset all; unlisten *; select pg_advisory_unlock_all(); discard temp";

/// A bounded pool of sessions on one database. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct Pool {
    inner: deadpool_postgres::Pool,
    /// `host:port` list and mode, for messages (never the password).
    target: Arc<str>,
    wait: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.inner.status();
        f.debug_struct("Pool")
            .field("target", &self.target)
            .field("size", &status.max_size)
            .field("open", &status.size)
            .finish_non_exhaustive()
    }
}

/// A session borrowed from a [`Pool`]; it goes back to the pool when dropped. Derefs to
/// the driver's client, so store functions take `&*session` (or `&mut *session`).
pub struct PooledSession {
    object: deadpool_postgres::Object,
}

impl Deref for PooledSession {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.object
    }
}

impl DerefMut for PooledSession {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.object
    }
}

/// How many sessions a pool holds and how long callers wait for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most sessions open at once (at least 1).
    pub size: usize,
    /// How long a caller waits for one before [`Error::PoolExhausted`].
    pub wait: Duration,
}

impl Pool {
    /// A pool on the database `url` names (a libpq connection string, as for
    /// [`crate::connect`]). Opens no session until one is asked for; a malformed string
    /// is an error now.
    pub fn new(url: &str, options: PoolOptions) -> Result<Self> {
        if options.size == 0 {
            return Err(Error::Catalog {
                what: "the database pool size must be at least 1".to_owned(),
            });
        }
        let mut target = Target::parse(url)?;
        if target.config.get_application_name().is_none() {
            target.config.application_name(APPLICATION_NAME);
        }
        let target = Arc::new(target);
        let shown: Arc<str> = Arc::from(format!("{} with sslmode={}", target.hosts(), target.mode));
        let manager = Manager::from_connect(
            target.config.clone(),
            Opener {
                target: Arc::clone(&target),
            },
            ManagerConfig {
                recycling_method: RecyclingMethod::Custom(RESET.to_owned()),
            },
        );
        let inner = deadpool_postgres::Pool::builder(manager)
            .max_size(options.size)
            .runtime(Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(options.wait),
                create: Some(options.wait),
                recycle: Some(options.wait),
            })
            .build()
            .map_err(|error| Error::Catalog {
                what: format!("building the database pool: {error}"),
            })?;
        Ok(Self {
            inner,
            target: shown,
            wait: options.wait,
        })
    }

    /// A session: an idle one that passes its health check, a new one while fewer than
    /// the pool's size are open, else the first one given back within the wait timeout.
    pub async fn get(&self) -> Result<PooledSession> {
        match self.inner.get().await {
            Ok(object) => Ok(PooledSession { object }),
            Err(PoolError::Timeout(_)) => Err(Error::PoolExhausted {
                size: self.inner.status().max_size,
                waited: self.wait,
            }),
            Err(PoolError::Backend(source)) => Err(Error::Postgres {
                context: format!("connecting to PostgreSQL at {}", self.target),
                source,
            }),
            Err(other) => Err(Error::Catalog {
                what: format!(
                    "taking a session from the database pool ({}): {other}",
                    self.target
                ),
            }),
        }
    }

    /// Sessions open now (idle or lent), for benchmarks and diagnostics.
    pub fn open_sessions(&self) -> usize {
        self.inner.status().size
    }

    /// The most sessions the pool opens.
    pub fn max_size(&self) -> usize {
        self.inner.status().max_size
    }
}

/// Opens the pool's sessions the way [`crate::connect`] does, TLS modes included.
struct Opener {
    target: Arc<Target>,
}

impl Connect for Opener {
    fn connect(
        &self,
        _config: &tokio_postgres::Config,
    ) -> futures_util::future::BoxFuture<
        '_,
        std::result::Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
    > {
        Box::pin(async move {
            let (client, connection) = self.target.open_driver().await?;
            let driver = tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(error = %error, "pooled database session ended");
                }
            });
            Ok((client, driver))
        })
    }
}
