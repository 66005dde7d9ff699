//! A database created for one benchmark run and dropped after it.

use anyhow::Context;

/// A fresh database on the server of `DATABASE_URL`.
pub struct ScratchDatabase {
    admin: tokio_postgres::Client,
    name: String,
    /// Its connection URL.
    pub url: String,
}

impl ScratchDatabase {
    /// Creates `pgforce_bench_<scenario>_<pid>` (dropping a leftover of that name first).
    pub async fn create(server_url: &str, scenario: &str) -> anyhow::Result<Self> {
        let (server, _) = server_url
            .rsplit_once('/')
            .context("DATABASE_URL must end with a database name")?;
        let name = format!("pgforce_bench_{scenario}_{}", std::process::id());
        let admin = pgforce_store::connect(server_url).await?;
        // One statement per call: DROP/CREATE DATABASE cannot run in a transaction block.
        admin
            .batch_execute(&format!("drop database if exists {name}"))
            .await?;
        admin
            .batch_execute(&format!("create database {name}"))
            .await?;
        Ok(Self {
            admin,
            url: format!("{server}/{name}"),
            name,
        })
    }

    /// Drops the database, disconnecting whoever still uses it.
    pub async fn drop(self) -> anyhow::Result<()> {
        self.admin
            .batch_execute(&format!(
                "drop database if exists {} with (force)",
                self.name
            ))
            .await
            .context("dropping the benchmark database")
    }
}
