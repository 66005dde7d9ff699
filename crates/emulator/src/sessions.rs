//! Access and refresh tokens.
//!
//! Access tokens look like Salesforce's (`<org id 15>!<opaque>`) and expire after the
//! configured lifetime; an expired or unknown token is answered with 401
//! INVALID_SESSION_ID on every data call, which is what makes clients refresh.
//!
//! An administrator may also take the integration user's access away (freeze the user,
//! block the connected app) and give it back later: while credentials are revoked every
//! token has ended and no login succeeds; once restored, logins work again, and a client
//! must log in anew because its old tokens stay ended.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distr::Alphanumeric;

use crate::org::RecordRef;

/// One live access token.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    pub user: RecordRef,
    pub expires_at: Instant,
}

/// An authorization code of the web-server flow, waiting to be exchanged once.
#[derive(Debug, Clone)]
pub struct AuthorizationCode {
    /// The connected app it was issued to.
    pub client_id: String,
    /// Where it was sent; the exchange must name the same.
    pub redirect_uri: String,
    /// The PKCE challenge (`S256`), when the request carried one.
    pub code_challenge: Option<String>,
    /// Who consented.
    pub user: RecordRef,
    /// When it stops being accepted.
    pub expires_at: Instant,
}

/// How long an authorization code may wait for its exchange.
const CODE_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Every token the org has issued.
#[derive(Debug)]
pub struct Sessions {
    access: HashMap<String, Session>,
    refresh: HashSet<String>,
    codes: HashMap<String, AuthorizationCode>,
    lifetime: Duration,
    /// Set by the control API: no token is issued or accepted until restored.
    revoked: bool,
}

impl Sessions {
    /// A store that accepts `initial_refresh_token` from the start.
    pub fn new(lifetime: Duration, initial_refresh_token: &str) -> Self {
        let mut refresh = HashSet::new();
        if !initial_refresh_token.is_empty() {
            refresh.insert(initial_refresh_token.to_owned());
        }
        Self {
            access: HashMap::new(),
            refresh,
            codes: HashMap::new(),
            lifetime,
            revoked: false,
        }
    }

    /// Issues an access token for a user; none while credentials are revoked.
    pub fn issue(&mut self, org_id15: &str, user: RecordRef) -> Option<String> {
        if self.revoked {
            return None;
        }
        let opaque: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(96)
            .map(char::from)
            .collect();
        let token = format!("{org_id15}!{opaque}");
        self.access.insert(
            token.clone(),
            Session {
                user,
                expires_at: Instant::now() + self.lifetime,
            },
        );
        self.access.retain(|_, s| s.expires_at > Instant::now());
        Some(token)
    }

    /// The session behind a token, if it is live.
    pub fn check(&self, token: &str) -> Option<Session> {
        if self.revoked {
            return None;
        }
        self.access
            .get(token)
            .copied()
            .filter(|s| s.expires_at > Instant::now())
    }

    /// Revokes an access or refresh token; true if it existed.
    pub fn revoke(&mut self, token: &str) -> bool {
        self.access.remove(token).is_some() | self.refresh.remove(token)
    }

    /// Expires every access token now (the control API's session-expiry fault).
    pub fn expire_all(&mut self) -> usize {
        let count = self.access.len();
        self.access.clear();
        count
    }

    /// Takes the user's access away: every access token ends now and no grant succeeds until
    /// [`Sessions::restore_credentials`]. Returns how many tokens ended.
    pub fn revoke_credentials(&mut self) -> usize {
        self.revoked = true;
        self.expire_all()
    }

    /// Gives the user's access back: logins work again (ended tokens stay ended).
    pub fn restore_credentials(&mut self) {
        self.revoked = false;
    }

    /// Whether credentials are revoked now.
    pub fn credentials_revoked(&self) -> bool {
        self.revoked
    }

    /// Mints a new refresh token.
    pub fn mint_refresh_token(&mut self) -> String {
        let opaque: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(64)
            .map(char::from)
            .collect();
        let token = format!("5Aep861{opaque}");
        self.refresh.insert(token.clone());
        token
    }

    /// How many refresh tokens are valid (issued and not revoked).
    pub fn refresh_token_count(&self) -> usize {
        self.refresh.len()
    }

    /// Issues an authorization code (the web-server flow's), valid for 15 minutes.
    pub fn mint_code(&mut self, mut code: AuthorizationCode) -> String {
        let opaque: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(48)
            .map(char::from)
            .collect();
        code.expires_at = Instant::now() + CODE_LIFETIME;
        let text = format!("aPrx{opaque}");
        self.codes.insert(text.clone(), code);
        text
    }

    /// Takes an authorization code: it is accepted once, and only before it expires.
    pub fn take_code(&mut self, code: &str) -> Option<AuthorizationCode> {
        self.codes
            .remove(code)
            .filter(|c| c.expires_at > Instant::now())
    }

    /// Whether a refresh token is valid.
    pub fn is_refresh_token(&self, token: &str) -> bool {
        self.refresh.contains(token)
    }

    /// How long new tokens live.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Changes how long new tokens live.
    pub fn set_lifetime(&mut self, lifetime: Duration) {
        self.lifetime = lifetime;
    }
}
