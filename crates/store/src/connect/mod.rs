//! Opening connections to Postgres, with TLS as libpq does it.
//!
//! Managed Postgres services (Heroku, RDS, Cloud SQL, Supabase) hand out connection
//! strings with `sslmode=require` or stronger, and operators expect them to mean what they
//! mean to psql. tokio-postgres knows only `sslmode=disable|prefer|require` and brings no
//! TLS of its own, so every session pgforce opens goes through here: [`connect`] for a
//! client whose connection runs on the runtime, [`open`] for a caller that drives the
//! connection itself (the LISTEN session reads its notifications).
//!
//! Data flow: `conninfo` takes libpq's TLS options out of the connection string,
//! tokio-postgres parses the rest, and `tls` sets up rustls for each handshake. The modes
//! tokio-postgres lacks are built from the ones it has, in libpq's order:
//! - `allow`: a plain session; when the server refuses it, a TLS one;
//! - `prefer` (the default): TLS when the server offers it; when the TLS setup or handshake
//!   fails, a plain session;
//! - `require`, `verify-ca`, `verify-full`: TLS or nothing; `tls` verifies the server.
//!
//! TLS is never tried on Unix-domain sockets: the server does not offer it there and libpq
//! ignores `sslmode` for them.
//!
//! `pool` keeps a bounded set of these sessions for short work (API requests, scrapes,
//! commands); workers open their own.
//!
//! Errors name the host, port and mode, never the password or the connection string.
//! Wherever pgforce shows a connection string (messages, logs, `pgforce demo`), it shows
//! [`redact_conninfo`]'s version of it, without passwords.

mod conninfo;
mod pool;
mod tls;

pub use self::conninfo::redact as redact_conninfo;
pub use self::pool::{
    APPLICATION_NAME as POOL_APPLICATION_NAME, POOL_WAIT, Pool, PoolOptions, PooledSession,
};

use std::error::Error as _;

use tokio_postgres::config::{Host, SslMode as DriverMode};
use tokio_postgres::{Client, Config, Socket};

use self::conninfo::{ConnInfo, SslMode};
use self::tls::{Tls, TlsError, TlsStream};
use crate::error::{Error, Result};

/// tokio-postgres's default port, for error messages.
const DEFAULT_PORT: u16 = 5432;

/// A session's connection. The client works only while it is driven (awaited, or its
/// messages polled); it ends when the client is dropped or the server goes away.
pub(crate) type Connection = tokio_postgres::Connection<Socket, TlsStream<Socket>>;

/// Connects and drives the connection on the runtime until the client is dropped or the
/// server goes away (then calls fail with a closed-connection error).
///
/// `url` is a libpq connection string, URL (`postgres://…?sslmode=require`) or
/// keyword/value (`host=… sslmode=verify-full sslrootcert=…`); see
/// `docs/postgres-tls.md` for the TLS options.
pub async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = open(url).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            // The server's own words and SQLSTATE (a session ended for idling in a
            // transaction, an administrator's termination), not only "db error".
            let cause = match error.as_db_error() {
                Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
                None => error.to_string(),
            };
            tracing::error!(error = %cause, "database connection lost");
        }
    });
    Ok(client)
}

/// Opens a session and hands back its connection for the caller to drive.
pub(crate) async fn open(url: &str) -> Result<(Client, Connection)> {
    Target::parse(url)?.open().await
}

/// Where to connect and how, read from one connection string.
struct Target {
    /// Everything but TLS, as tokio-postgres parsed it.
    config: Config,
    /// libpq's mode, after the Unix-socket rule.
    mode: SslMode,
    tls: Tls,
}

impl Target {
    fn parse(conninfo: &str) -> Result<Self> {
        let info = ConnInfo::parse(conninfo);
        let (mut config, refusal) = match (info.driver.parse::<Config>(), info.problem) {
            (Ok(config), problem) => (config, problem),
            (Err(source), problem) => {
                return Err(Error::Postgres {
                    context: problem.map_or_else(
                        || "parsing the PostgreSQL connection string".to_owned(),
                        |problem| problem.to_string(),
                    ),
                    source,
                });
            }
        };
        // tokio-postgres hands the TLS handshake the `host` name and has none when only
        // `hostaddr` is given; the address then stands in as the name (libpq would accept
        // every mode but verify-full there; verify-full here checks the address).
        if config.get_hosts().is_empty() {
            for addr in config.get_hostaddrs().to_vec() {
                config.host(addr.to_string());
            }
        }
        let unix_only = !config.get_hosts().is_empty()
            && config.get_hostaddrs().is_empty()
            && config
                .get_hosts()
                .iter()
                .all(|h| !matches!(h, Host::Tcp(_)));
        let mode = match unix_only {
            true => SslMode::Disable,
            false => info.tls.mode,
        };
        // Every problem involves an option tokio-postgres does not know, so it rejected the
        // string above. Should a later version accept one, the connector refuses every
        // connection instead of connecting without what was asked for.
        let tls = Tls::new(info.tls, refusal);
        Ok(Self { config, mode, tls })
    }

    async fn open(&self) -> Result<(Client, Connection)> {
        self.open_driver().await.map_err(|source| Error::Postgres {
            context: format!(
                "connecting to PostgreSQL at {} with sslmode={}",
                self.hosts(),
                self.mode
            ),
            source,
        })
    }

    /// [`Target::open`] with the driver's error as it came (the pool adds the context).
    async fn open_driver(
        &self,
    ) -> std::result::Result<(Client, Connection), tokio_postgres::Error> {
        match self.mode {
            SslMode::Disable => self.attempt(DriverMode::Disable).await,
            SslMode::Allow => match self.attempt(DriverMode::Disable).await {
                Err(error) if error.as_db_error().is_some() => {
                    tracing::debug!(hosts = %self.hosts(), error = %error, "plain session refused under sslmode=allow, trying tls");
                    self.attempt(DriverMode::Require).await
                }
                other => other,
            },
            SslMode::Prefer => match self.attempt(DriverMode::Prefer).await {
                Err(error) if tls_failed(&error) => {
                    tracing::warn!(hosts = %self.hosts(), error = %error, "tls failed under sslmode=prefer, connecting without tls");
                    self.attempt(DriverMode::Disable).await
                }
                other => other,
            },
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                self.attempt(DriverMode::Require).await
            }
        }
    }

    async fn attempt(
        &self,
        mode: DriverMode,
    ) -> std::result::Result<(Client, Connection), tokio_postgres::Error> {
        let mut config = self.config.clone();
        config.ssl_mode(mode);
        config.connect(self.tls.clone()).await
    }

    /// `host:port` for each host, for messages.
    fn hosts(&self) -> String {
        let ports = self.config.get_ports();
        let port = |i: usize| {
            ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(DEFAULT_PORT)
        };
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| match host {
                // A raw `@` in a URL's password makes tokio-postgres read the rest of the
                // password as part of the host; no host name holds an `@`.
                Host::Tcp(name) => {
                    let name = name.rsplit('@').next().unwrap_or(name);
                    format!("{name}:{}", port(i))
                }
                #[cfg(unix)]
                Host::Unix(path) => format!("{}:{}", path.display(), port(i)),
            })
            .collect();
        hosts.join(",")
    }
}

/// Whether a connection failed in pgforce's TLS setup or handshake (not because the
/// server refused the session): `prefer` then retries without TLS, as libpq.
fn tls_failed(error: &tokio_postgres::Error) -> bool {
    error
        .source()
        .is_some_and(|source| source.downcast_ref::<TlsError>().is_some())
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn messages_name_hosts_without_password_text() {
        // tokio-postgres reads `ss@db` as the host of this URL with a raw `@` in its password.
        let target = Target::parse("postgres://app:p@ss@db:6543/app").unwrap();
        assert_eq!(target.hosts(), "db:6543");
        let target = Target::parse("host=a,b port=1,2 password=x").unwrap();
        assert_eq!(target.hosts(), "a:1,b:2");
    }
}
