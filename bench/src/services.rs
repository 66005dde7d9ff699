//! Where a scenario finds its emulator binary and its PostgreSQL server.

use std::path::PathBuf;

use clap::Args;

/// Options every scenario that needs both services shares.
#[derive(Debug, Args)]
pub struct Services {
    /// The `pgforce` binary that serves the emulator.
    #[arg(long, default_value = "target/release/pgforce")]
    pub emulator_bin: PathBuf,
    /// PostgreSQL server (a database is created on it and dropped afterwards).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
}
