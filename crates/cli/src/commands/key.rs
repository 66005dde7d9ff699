//! `pgforce key`: the keys that seal the Salesforce secrets of connections created
//! through the management API (see docs/api.md). `generate` prints a new one; `rotate`
//! seals every kept secret again under the first key, value by value, while other
//! processes keep running (docs/api.md describes switching processes one at a time).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use pgforce_sync::{SecretKey, SecretKeys};

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
    /// Seal every kept connection and consent secret again under the first key of
    /// PGFORCE_SECRET_KEY or PGFORCE_SECRET_KEY_FILE (or under the key in --new-key-file),
    /// opening each with the key that sealed it, which those must hold.
    Rotate {
        /// The configuration file.
        #[arg(long, short, default_value = "pgforce.toml")]
        config: PathBuf,
        /// A file holding the new key, used before the keys of PGFORCE_SECRET_KEY or
        /// PGFORCE_SECRET_KEY_FILE.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
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
            let keys = rotation_keys(new_key_file.as_deref())?;
            let sealing = keys.sealing().fingerprint().to_owned();
            let config = config::load(&config)?;
            let engine = config::open_engine(&config, None).await?;
            let rotated = engine
                .rotate_secret_keys(&keys)
                .await
                .with_context(|| format!("sealing the kept secrets again under key {sealing}"))?;
            engine
                .admin()
                .audit(
                    "cli",
                    "key.rotate",
                    &format!("key {sealing}"),
                    None,
                    Some(&serde_json::json!({
                        "connections": rotated.connections,
                        "consents": rotated.consents,
                    })),
                )
                .await?;
            output::say(&format!(
                "secrets of {} connection(s) sealed under key {sealing}, and of {} consent(s) in progress; once every pgforce seals with it, the other keys can be dropped",
                rotated.connections, rotated.consents,
            ));
        }
    }
    Ok(())
}

/// The keys a rotation uses: the new key of `new_key_file` first, if given, then those of
/// the environment.
fn rotation_keys(new_key_file: Option<&std::path::Path>) -> anyhow::Result<SecretKeys> {
    let current = config::secret_keys()?;
    let Some(path) = new_key_file else {
        return current.context(
            "rotating needs the keys: PGFORCE_SECRET_KEY or PGFORCE_SECRET_KEY_FILE, the key to seal under first",
        );
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the new key file {}", path.display()))?;
    let new = SecretKey::from_base64(&text)
        .with_context(|| format!("the new key in {}", path.display()))?;
    let current = current.context(
        "rotating needs the current keys too (PGFORCE_SECRET_KEY or PGFORCE_SECRET_KEY_FILE)",
    )?;
    Ok(current.sealing_first(new))
}
