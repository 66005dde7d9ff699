//! Creating the database a URL names, for `pgforce demo`'s first run on a fresh server.

use tokio_postgres::Client;

use crate::error::{Context as _, Error, Result};
use crate::ident::Ident;

/// Connects to the database `url` names, creating it first when it does not exist (the
/// URL form only: `postgres://…/name?…`). Returns the session and whether it was created.
pub async fn connect_creating(url: &str) -> Result<(Client, bool)> {
    match crate::connect(url).await {
        Ok(client) => Ok((client, false)),
        Err(error) if error.sqlstate() == Some("3D000") => {
            let (server, name, query) = split_url(url).ok_or_else(|| Error::Catalog {
                what: "to create the database, give it as a URL ending in /<database name>"
                    .to_owned(),
            })?;
            let name = Ident::new(name)?;
            let admin = crate::connect(&format!("{server}/postgres{query}")).await?;
            admin
                .batch_execute(&format!("create database {name}"))
                .await
                .context(|| format!("creating database {name}"))?;
            Ok((crate::connect(url).await?, true))
        }
        Err(error) => Err(error),
    }
}

/// `(server part, database name, query part)` of a `postgres://` URL.
fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let after_scheme = url.find("://")? + 3;
    let slash = after_scheme + url.get(after_scheme..)?.find('/')?;
    let (server, rest) = url.split_at(slash);
    let rest = rest.get(1..)?;
    let (name, query) = rest.find('?').map_or((rest, ""), |q| rest.split_at(q));
    (!name.is_empty()).then_some((server, name, query))
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn urls_split_into_server_name_and_query() {
        assert_eq!(
            split_url("postgres://u:p@h:5432/demo?sslmode=require"),
            Some(("postgres://u:p@h:5432", "demo", "?sslmode=require"))
        );
        assert_eq!(
            split_url("postgresql://h/demo"),
            Some(("postgresql://h", "demo", ""))
        );
        assert_eq!(split_url("postgres://h"), None);
        assert_eq!(split_url("host=h dbname=demo"), None);
    }
}
