//! Test support (feature `test-support`): a fresh database per test.
//!
//! [`TestDatabase`] creates a uniquely named database on the server named by
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), applies the
//! catalog migrations, and drops the database when dropped, so tests run in parallel and
//! leave nothing behind.

use rand::Rng as _;
use tokio_postgres::Client;

use crate::catalog;

/// Where test databases are created.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// The database's name.
    pub name: String,
    /// Its connection URL.
    pub url: String,
}

/// Connects, or panics saying how to point the tests at a server.
pub async fn connect(url: &str) -> Client {
    crate::connect(url).await.unwrap_or_else(|e| {
        panic!(
            "cannot connect to PostgreSQL at {}: {e:?} (is it running? set DATABASE_URL)",
            crate::redact_conninfo(url)
        )
    })
}

impl TestDatabase {
    /// Creates the database and applies the catalog migrations.
    pub async fn create() -> Self {
        let server = server_url();
        let name = format!("pgforce_test_{:016x}", rand::rng().random::<u64>());
        connect(&server)
            .await
            .batch_execute(&format!("create database \"{name}\""))
            .await
            .expect("the test server lets us create databases");
        let url = match server.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!(
                "DATABASE_URL must end with a database name: {}",
                crate::redact_conninfo(&server)
            ),
        };
        let mut client = connect(&url).await;
        catalog::migrate(&mut client)
            .await
            .expect("the catalog migrations apply");
        Self { name, url }
    }

    /// A new connection to the database.
    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (server_url(), self.name.clone());
        // Drop runs outside async code; a short-lived runtime on its own thread does it.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    let client = connect(&server).await;
                    let _ = client
                        .batch_execute(&format!("drop database if exists \"{name}\" with (force)"))
                        .await;
                });
            }
        });
        let _ = dropper.join();
    }
}
