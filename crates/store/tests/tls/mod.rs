//! TLS on every connection pgforce opens, against real servers: the local one (its
//! certificate is whatever the machine has, so only encryption is checked there) and a
//! private TLS-only server per test with certificates the test issued (verification,
//! client certificates, channel binding, LISTEN).

mod local;
mod server;
mod tls_only;

use std::error::Error;

use tokio_postgres::Client;

/// An error and all its sources, as an operator would read them.
fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether the client's session is encrypted, as the server sees it.
async fn session_uses_tls(client: &Client) -> bool {
    client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}
