//! `pgforce key`: the key that seals the Salesforce secrets of connections created
//! through the management API (see docs/api.md). `generate` prints a new one; `rotate`
//! re-seals every kept secret under a new key, all or none, after which every process
//! must be given the new key.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use pgforce_sync::SecretKey;

use crate::{config, output};

/// Options of `pgforce key`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    action: KeyAction,
}

/// What to do with the key.
#[derive(Debug, Subcommand)]
enum KeyAction {
    /// Print a new random key (base64 of 32 bytes) for PGFORCE_SECRET_KEY.
    Generate,
    /// Re-seal every kept connection secret under the key in FILE (the current key comes
    /// from PGFORCE_SECRET_KEY or PGFORCE_SECRET_KEY_FILE).
    Rotate {
        /// The configuration file.
        #[arg(long, short, default_value = "pgforce.toml")]
        config: PathBuf,
        /// A file holding the new key.
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

/// Runs `pgforce key`.
pub async fn run(args: KeyArgs) -> anyhow::Result<()> {
    match args.action {
        KeyAction::Generate => output::say(&SecretKey::generate()?),
        KeyAction::Rotate {
            config,
            new_key_file,
        } => {
            let text = std::fs::read_to_string(&new_key_file)
                .with_context(|| format!("reading the new key file {}", new_key_file.display()))?;
            let new = SecretKey::from_base64(&text)
                .with_context(|| format!("the new key in {}", new_key_file.display()))?;
            let config = config::load(&config)?;
            let engine = config::open_engine(&config, None).await?;
            let resealed = engine.rotate_secret_key(&new).await?;
            engine
                .audit(
                    "cli",
                    "key.rotate",
                    &format!("key {}", new.fingerprint()),
                    None,
                    Some(&serde_json::json!({ "connections": resealed })),
                )
                .await?;
            output::say(&format!(
                "secrets of {resealed} connection(s) sealed under key {}; give every pgforce the new key",
                new.fingerprint()
            ));
        }
    }
    Ok(())
}
