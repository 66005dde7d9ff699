//! `pgforce token`: the management API's tokens. A token is printed once, when it is
//! created; the catalog keeps only its hash, so a lost token is revoked and replaced.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use pgforce_sync::Role;

use crate::{config, output};

/// Options of `pgforce token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The configuration file.
    #[arg(long, short, default_value = "pgforce.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    action: TokenAction,
}

/// What to do with tokens.
#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Create a token and print it (only this once).
    Create {
        /// A unique name saying who or what uses it.
        #[arg(long)]
        name: String,
        /// view (read all but secrets), operate (also pause, resume, reload), deploy (also
        /// import and delete mappings), manage (everything), or archive (only start and read
        /// archive jobs: for Salesforce's own callouts).
        #[arg(long)]
        role: String,
        /// Days until it stops working (default: never).
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// List tokens: name, role, created, expires, revoked, last used.
    List,
    /// Revoke a token by name: it stops working at once.
    Revoke {
        /// The token's name.
        name: String,
    },
}

/// Runs `pgforce token`.
pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config)?;
    let engine = config::open_engine(&config, None).await?;
    match args.action {
        TokenAction::Create {
            name,
            role,
            expires_days,
        } => {
            let Some(role) = Role::parse(&role) else {
                bail!("unknown role {role:?}: use view, operate, deploy, manage or archive");
            };
            let token = engine
                .admin()
                .create_token(&name, role, expires_days)
                .await?;
            let after = serde_json::json!({ "name": name, "role": role.as_str(), "expires_days": expires_days });
            engine
                .admin()
                .audit(
                    "cli",
                    "token.create",
                    &format!("token {name}"),
                    None,
                    Some(&after),
                )
                .await?;
            output::say(&token);
        }
        TokenAction::List => {
            let dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
            output::say(&format!(
                "{:<24} {:<8} {:<20} {:<20} {:<20} {}",
                "NAME", "ROLE", "CREATED", "EXPIRES", "REVOKED", "LAST USED"
            ));
            for token in engine.admin().tokens().await? {
                output::say(&format!(
                    "{:<24} {:<8} {:<20} {:<20} {:<20} {}",
                    token.name,
                    token.role,
                    token.created_at,
                    dash(token.expires_at),
                    dash(token.revoked_at),
                    dash(token.last_used_at)
                ));
            }
        }
        TokenAction::Revoke { name } => {
            if !engine.admin().revoke_token(&name).await? {
                bail!("no live API token named {name}");
            }
            engine
                .admin()
                .audit("cli", "token.revoke", &format!("token {name}"), None, None)
                .await?;
            output::say(&format!("token {name} revoked"));
        }
    }
    Ok(())
}
