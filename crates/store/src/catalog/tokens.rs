//! Management API tokens: created with a role, kept only as a SHA-256 hash, looked up by
//! the hash of what a caller presents, expired by time, revoked by name. Dashboard sessions
//! (a browser logged in with a token) live here too: they last only as long as their
//! token does.
//!
//! A token is `pgf_` followed by 43 characters of base64url (32 random bytes from the
//! system's generator): long enough that hashing without a salt is safe, and
//! recognisable in a leaked log or a secret scanner.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use tokio_postgres::GenericClient;

use crate::error::{Context as _, Error, Result};

/// What a token may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read everything but secrets.
    View,
    /// Also pause, resume, restart, reload, retry or ignore failed writes.
    Operate,
    /// Also create, change, import and delete mappings.
    Deploy,
    /// Also connections and their credentials, tokens and the audit trail.
    Manage,
    /// Only start and read archive jobs (for Salesforce's own callouts): outside the
    /// ladder, it grants nothing else, not even viewing.
    Archive,
}

impl Role {
    /// Every role: the ladder weakest first, then the narrow archive scope.
    pub const ALL: [Self; 5] = [
        Self::View,
        Self::Operate,
        Self::Deploy,
        Self::Manage,
        Self::Archive,
    ];

    /// Whether a token of this role may call what needs `needed`. The ladder grants every
    /// rung below its own; archive routes are open to `archive` tokens and to operators
    /// (`operate` and above); an `archive` token is granted nothing else.
    pub fn grants(self, needed: Self) -> bool {
        match (self, needed) {
            (Self::Archive, needed) => needed == Self::Archive,
            (own, Self::Archive) => own >= Self::Operate,
            (own, needed) => own >= needed,
        }
    }

    /// The role's name, as stored and typed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Operate => "operate",
            Self::Deploy => "deploy",
            Self::Manage => "manage",
            Self::Archive => "archive",
        }
    }

    /// The role a name means.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token as the catalog describes it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Its id.
    pub id: i64,
    /// Its unique name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When it was created (UTC, `YYYY-MM-DD HH:MI:SS`).
    pub created_at: String,
    /// When it stops working, if ever.
    pub expires_at: Option<String>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
    /// When it was last presented.
    pub last_used_at: Option<String>,
}

const PREFIX: &str = "pgf_";

/// A new random token.
fn new_token() -> Result<String> {
    let mut bytes = [0_u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Catalog {
            what: "the system's random generator failed".to_owned(),
        })?;
    Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

fn sha256(token: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

/// The columns of a [`TokenRow`], of `pgforce.api_tokens` named `t`.
const COLUMNS: &str = "t.id, t.name, t.role,
    to_char(t.created_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
    to_char(t.expires_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
    to_char(t.revoked_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
    to_char(t.last_used_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS')";

fn from_row(row: &tokio_postgres::Row) -> Result<TokenRow> {
    let role: String = row.get(2);
    Ok(TokenRow {
        id: row.get(0),
        role: Role::parse(&role).ok_or_else(|| Error::Catalog {
            what: format!(
                "API token {} has an unknown role {role:?}",
                row.get::<_, String>(1)
            ),
        })?,
        name: row.get(1),
        created_at: row.get(3),
        expires_at: row.get(4),
        revoked_at: row.get(5),
        last_used_at: row.get(6),
    })
}

/// Creates a token named `name` with `role`, expiring after `expires_in_days` if given;
/// returns the token, which is not kept anywhere.
pub async fn create(
    client: &impl GenericClient,
    name: &str,
    role: Role,
    expires_in_days: Option<u32>,
) -> Result<String> {
    if name.trim().is_empty() {
        return Err(Error::Catalog {
            what: "an API token needs a name".to_owned(),
        });
    }
    let token = new_token()?;
    let days = expires_in_days.map(f64::from);
    let inserted = client
        .execute(
            "insert into pgforce.api_tokens (name, role, token_sha256, expires_at)
             values ($1, $2, $3, now() + make_interval(days => $4::float8::integer))
             on conflict (name) do nothing",
            &[&name, &role.as_str(), &sha256(&token), &days],
        )
        .await
        .context(|| format!("creating API token {name}"))?;
    if inserted == 0 {
        return Err(Error::Catalog {
            what: format!(
                "an API token named {name} exists already; revoke it or pick another name"
            ),
        });
    }
    Ok(token)
}

/// The live token (not expired, not revoked) that `presented` is, noting its use.
pub async fn authenticate(
    client: &impl GenericClient,
    presented: &str,
) -> Result<Option<TokenRow>> {
    if !presented.starts_with(PREFIX) {
        return Ok(None);
    }
    let row = client
        .query_opt(
            &format!(
                "update pgforce.api_tokens t set last_used_at = now()
                 where t.token_sha256 = $1 and t.revoked_at is null
                   and (t.expires_at is null or t.expires_at > now())
                 returning {COLUMNS}"
            ),
            &[&sha256(presented)],
        )
        .await
        .context(|| "checking an API token".to_owned())?;
    row.as_ref().map(from_row).transpose()
}

/// Every token, by name.
pub async fn list(client: &impl GenericClient) -> Result<Vec<TokenRow>> {
    client
        .query(
            &format!("select {COLUMNS} from pgforce.api_tokens t order by t.name"),
            &[],
        )
        .await
        .context(|| "listing API tokens".to_owned())?
        .iter()
        .map(from_row)
        .collect()
}

/// Revokes the token named `name`; `false` when there is no live one.
pub async fn revoke(client: &impl GenericClient, name: &str) -> Result<bool> {
    let revoked = client
        .execute(
            "update pgforce.api_tokens set revoked_at = now() where name = $1 and revoked_at is null",
            &[&name],
        )
        .await
        .context(|| format!("revoking API token {name}"))?;
    Ok(revoked > 0)
}

/// Opens a dashboard session for token `token_id`, lasting `hours`; returns the session's
/// secret (for the cookie) and its form token (CSRF). Only the secret's hash is kept.
pub async fn open_session(
    client: &impl GenericClient,
    token_id: i64,
    hours: u32,
) -> Result<(String, String)> {
    let (secret, csrf) = (new_token()?, new_token()?);
    client
        .execute(
            "insert into pgforce.dashboard_sessions (id_sha256, token_id, csrf, expires_at)
             values ($1, $2, $3, now() + make_interval(hours => $4::integer))",
            &[
                &sha256(&secret),
                &token_id,
                &csrf,
                &i32::try_from(hours).unwrap_or(12),
            ],
        )
        .await
        .context(|| "opening a dashboard session".to_owned())?;
    Ok((secret, csrf))
}

/// The live session `secret` names: its token (live too) and its form token.
pub async fn session(
    client: &impl GenericClient,
    secret: &str,
) -> Result<Option<(TokenRow, String)>> {
    let row = client
        .query_opt(
            &format!(
                "select {COLUMNS}, s.csrf from pgforce.dashboard_sessions s
                 join pgforce.api_tokens t on t.id = s.token_id
                 where s.id_sha256 = $1 and s.expires_at > now() and t.revoked_at is null
                   and (t.expires_at is null or t.expires_at > now())"
            ),
            &[&sha256(secret)],
        )
        .await
        .context(|| "reading a dashboard session".to_owned())?;
    match row {
        Some(row) => Ok(Some((from_row(&row)?, row.get(7)))),
        None => Ok(None),
    }
}

/// Ends the session `secret` names.
pub async fn close_session(client: &impl GenericClient, secret: &str) -> Result<()> {
    client
        .execute(
            "delete from pgforce.dashboard_sessions where id_sha256 = $1",
            &[&sha256(secret)],
        )
        .await
        .context(|| "ending a dashboard session".to_owned())?;
    Ok(())
}

/// Deletes dashboard sessions that can no longer be used: expired, or of a token that
/// expired or was revoked. Returns how many.
pub async fn purge_sessions(client: &impl GenericClient) -> Result<u64> {
    client
        .execute(
            "delete from pgforce.dashboard_sessions s
             using pgforce.api_tokens t
             where t.id = s.token_id
               and (s.expires_at <= now() or t.revoked_at is not null
                    or (t.expires_at is not null and t.expires_at <= now()))",
            &[],
        )
        .await
        .context(|| "deleting expired dashboard sessions".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_43_characters_after_the_prefix() {
        let (a, b) = (
            new_token().unwrap_or_default(),
            new_token().unwrap_or_default(),
        );
        assert!(a.starts_with(PREFIX) && b.starts_with(PREFIX));
        assert_eq!(a.len(), PREFIX.len() + 43);
        assert_ne!(a, b);
    }

    #[test]
    fn roles_order_from_view_to_manage_and_parse_their_names() {
        assert!(
            Role::View < Role::Operate
                && Role::Operate < Role::Deploy
                && Role::Deploy < Role::Manage
        );
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("admin"), None);
    }

    #[test]
    fn the_archive_role_grants_archive_routes_only() {
        assert!(Role::Archive.grants(Role::Archive));
        for needed in [Role::View, Role::Operate, Role::Deploy, Role::Manage] {
            assert!(!Role::Archive.grants(needed), "{needed}");
        }
        assert!(!Role::View.grants(Role::Archive));
        assert!(Role::Operate.grants(Role::Archive) && Role::Manage.grants(Role::Archive));
        assert!(Role::Manage.grants(Role::View) && !Role::View.grants(Role::Operate));
    }
}
