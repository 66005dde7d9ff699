//! Who may use the API and the dashboard: API tokens (only their hashes are kept) and the
//! dashboard's sessions opened with them.

use pgforce_store::catalog::tokens::{self, Role, TokenRow};

use super::Admin;
use crate::error::{Error, Result};

impl Admin {
    /// Creates an API token; returns it (only its hash is kept).
    pub async fn create_token(
        &self,
        name: &str,
        role: Role,
        expires_in_days: Option<u32>,
    ) -> Result<String> {
        let pg = self.engine.session().await?;
        tokens::create(&*pg, name, role, expires_in_days)
            .await
            .map_err(Error::catalog)
    }

    /// The live token `presented` is, if any.
    pub async fn authenticate(&self, presented: &str) -> Result<Option<TokenRow>> {
        let pg = self.engine.session().await?;
        tokens::authenticate(&*pg, presented)
            .await
            .map_err(Error::catalog)
    }

    /// Every API token (never the tokens themselves).
    pub async fn tokens(&self) -> Result<Vec<TokenRow>> {
        let pg = self.engine.session().await?;
        tokens::list(&*pg).await.map_err(Error::catalog)
    }

    /// Revokes the token named `name`; `false` when no live token has that name.
    pub async fn revoke_token(&self, name: &str) -> Result<bool> {
        let pg = self.engine.session().await?;
        tokens::revoke(&*pg, name).await.map_err(Error::catalog)
    }

    /// Opens a dashboard session for `token` (12 hours); returns the cookie's secret and
    /// the session's form token.
    pub async fn open_dashboard_session(&self, token: &TokenRow) -> Result<(String, String)> {
        let pg = self.engine.session().await?;
        tokens::open_session(&*pg, token.id, 12)
            .await
            .map_err(Error::catalog)
    }

    /// The live dashboard session `secret` names: its token and form token.
    pub async fn dashboard_session(&self, secret: &str) -> Result<Option<(TokenRow, String)>> {
        let pg = self.engine.session().await?;
        tokens::session(&*pg, secret).await.map_err(Error::catalog)
    }

    /// Ends a dashboard session.
    pub async fn close_dashboard_session(&self, secret: &str) -> Result<()> {
        let pg = self.engine.session().await?;
        tokens::close_session(&*pg, secret)
            .await
            .map_err(Error::catalog)
    }
}
