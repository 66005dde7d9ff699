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

/// Account mapped in a scratch database: catalog, schema, table and catalog rows.
pub struct MappedAccount {
    /// The `salesforce` schema.
    pub schema: pgforce_store::Ident,
    /// The resolved mapping.
    pub mapping: pgforce_sync::mapping::Mapping,
    /// Its catalog id.
    pub mapping_id: i64,
}

impl MappedAccount {
    /// Sets up Account with `fields` in the database at `url`; returns a session on the
    /// database with the mapping.
    pub async fn create(
        url: &str,
        sf: &pgforce_salesforce::Client,
        fields: &[&str],
        access: pgforce_store::ddl::Access,
    ) -> anyhow::Result<(tokio_postgres::Client, Self)> {
        use pgforce_store::cursor::{ensure_connection, ensure_mapping};
        use pgforce_store::ddl::{create_mapped_table, ensure_connection_schema};
        let mut pg = pgforce_store::connect(url).await?;
        pgforce_store::catalog::migrate(&mut pg).await?;
        let schema = pgforce_store::Ident::new("salesforce")?;
        ensure_connection_schema(&pg, &schema).await?;
        let spec = pgforce_sync::mapping::MappingSpec {
            object: "Account".to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            access,
            upsert_field: None,
            polling_seconds: 1,
            max_daily_api_calls: u64::MAX,
            bulk_threshold: pgforce_sync::mapping::DEFAULT_BULK_THRESHOLD,
        };
        let mapping =
            pgforce_sync::mapping::Mapping::resolve(spec, &sf.describe("Account").await?)?;
        create_mapped_table(&mut pg, &mapping.table_spec(&schema)).await?;
        let connection = ensure_connection(&pg, "bench", "salesforce").await?;
        let read_write = access == pgforce_store::ddl::Access::ReadWrite;
        let mapping_id = ensure_mapping(&pg, connection, "Account", "account", read_write).await?;
        Ok((
            pg,
            Self {
                schema,
                mapping,
                mapping_id,
            },
        ))
    }

    /// Where the reader writes.
    pub fn target(&self) -> pgforce_sync::reader::Target<'_> {
        pgforce_sync::reader::Target {
            schema: &self.schema,
            mapping: &self.mapping,
            mapping_id: self.mapping_id,
        }
    }
}
