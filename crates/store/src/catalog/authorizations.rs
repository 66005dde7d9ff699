//! `pgforce.authorizations`: OAuth web-server flows waiting for the person to come back
//! from Salesforce's consent page. Taken once, by their `state`, within an hour.
//!
//! A consent is bound to one browser: it is kept with the SHA-256 of a one-time ticket
//! (pgforce's start URL), and opening the ticket trades it for the SHA-256 of a cookie the
//! browser must show again at the callback. Only hashes are kept, so the catalog alone
//! cannot finish a consent.

use tokio_postgres::GenericClient;

use crate::ConnectionId;
use crate::error::{Context as _, Result};

/// A consent in progress.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// The random value that comes back with the person.
    pub state: String,
    /// The connection whose credentials it renews, if it exists already.
    pub connection: Option<ConnectionId>,
    /// Else the settings (JSON, no secrets) of the connection to create.
    pub settings: Option<String>,
    /// Its sealed secrets and the fingerprint of the key that sealed them.
    pub sealed_secrets: Option<(String, Vec<u8>)>,
    /// The PKCE verifier of the request.
    pub code_verifier: String,
    /// Where Salesforce sent the person back (the code exchange must name it again).
    pub redirect_uri: String,
    /// The login URL the consent went to, when not the connection's own (a sandbox, a
    /// My Domain).
    pub login_url: Option<String>,
    /// Where to send the person once it is done.
    pub next_url: Option<String>,
    /// The name of the API token that asked for the consent.
    pub requested_by: Option<String>,
    /// The SHA-256 of the cookie of the browser that opened the start URL; `None` until
    /// one did.
    pub browser_hash: Option<Vec<u8>>,
}

/// Keeps a consent in progress, reachable once through the ticket whose SHA-256 is
/// `ticket_hash`, which leads to `consent_url` (Salesforce's consent page).
pub async fn save(
    client: &impl GenericClient,
    authorization: &Authorization,
    ticket_hash: &[u8],
    consent_url: &str,
) -> Result<()> {
    let (key, sealed) = authorization
        .sealed_secrets
        .clone()
        .map_or((None, None), |(k, s)| (Some(k), Some(s)));
    client
        .execute(
            "insert into pgforce.authorizations
                 (state, connection_id, settings, secrets, secrets_key, code_verifier, redirect_uri,
                  next_url, login_url, requested_by, ticket_hash, consent_url)
             values ($1, $2, $3::text::jsonb, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                &authorization.state,
                &authorization.connection.map(ConnectionId::get),
                &authorization.settings,
                &sealed,
                &key,
                &authorization.code_verifier,
                &authorization.redirect_uri,
                &authorization.next_url,
                &authorization.login_url,
                &authorization.requested_by,
                &ticket_hash,
                &consent_url,
            ],
        )
        .await
        .context(|| "keeping an authorization in progress".to_owned())?;
    Ok(())
}

/// Opens the ticket whose SHA-256 is `ticket_hash` for the browser whose cookie hashes to
/// `browser_hash`: the ticket is spent, the consent bound to that browser; returns
/// Salesforce's consent page to send it to. `None` for an unknown, spent or expired ticket.
pub async fn open(
    client: &impl GenericClient,
    ticket_hash: &[u8],
    browser_hash: &[u8],
) -> Result<Option<String>> {
    let row = client
        .query_opt(
            "update pgforce.authorizations
                set ticket_hash = null, browser_hash = $2
              where ticket_hash = $1 and browser_hash is null
                and created_at > now() - interval '1 hour'
             returning consent_url",
            &[&ticket_hash, &browser_hash],
        )
        .await
        .context(|| "opening a consent's start ticket".to_owned())?;
    Ok(row.and_then(|r| r.get(0)))
}

/// Takes the consent `state` names, if it was started within the last hour.
pub async fn take(client: &impl GenericClient, state: &str) -> Result<Option<Authorization>> {
    let row = client
        .query_opt(
            "delete from pgforce.authorizations where state = $1
             returning state, connection_id, settings::text, secrets_key, secrets, code_verifier,
                       redirect_uri, next_url, created_at > now() - interval '1 hour', login_url,
                       requested_by, browser_hash",
            &[&state],
        )
        .await
        .context(|| "taking an authorization in progress".to_owned())?;
    Ok(row.filter(|r| r.get::<_, bool>(8)).map(|r| Authorization {
        state: r.get(0),
        connection: r.get::<_, Option<i64>>(1).map(ConnectionId::from),
        settings: r.get(2),
        sealed_secrets: r
            .get::<_, Option<String>>(3)
            .zip(r.get::<_, Option<Vec<u8>>>(4)),
        code_verifier: r.get(5),
        redirect_uri: r.get(6),
        next_url: r.get(7),
        login_url: r.get(9),
        requested_by: r.get(10),
        browser_hash: r.get(11),
    }))
}

/// The sealed secrets of every consent in progress: `(state, key fingerprint, bytes)`.
pub async fn sealed_in_progress(
    client: &impl GenericClient,
) -> Result<Vec<(String, String, Vec<u8>)>> {
    let rows = client
        .query(
            "select state, secrets_key, secrets from pgforce.authorizations
             where secrets is not null and secrets_key is not null order by state",
            &[],
        )
        .await
        .context(|| "reading the sealed secrets of consents in progress".to_owned())?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Replaces the sealed secrets of the consent `state` with `new` if they are still `old`
/// (fingerprint and bytes), as [`crate::catalog::connections::reseal`] does; `false` when
/// they changed or the consent was taken.
pub async fn reseal(
    client: &impl GenericClient,
    state: &str,
    old: (&str, &[u8]),
    new: (&str, &[u8]),
) -> Result<bool> {
    client
        .execute(
            "update pgforce.authorizations set secrets = $4, secrets_key = $5
             where state = $1 and secrets_key = $2 and secrets = $3",
            &[&state, &old.0, &old.1, &new.1, &new.0],
        )
        .await
        .context(|| "re-sealing the secrets of a consent in progress".to_owned())
        .map(|n| n == 1)
}

/// Deletes consents started more than an hour ago ([`take`] refuses them already): the
/// person never came back. Returns how many.
pub async fn purge_expired(client: &impl GenericClient) -> Result<u64> {
    client
        .execute(
            "delete from pgforce.authorizations where created_at <= now() - interval '1 hour'",
            &[],
        )
        .await
        .context(|| "deleting expired authorizations".to_owned())
}
