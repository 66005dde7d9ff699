//! Header names over HTTP/1.1 are written as Salesforce writes them (`Content-Type`,
//! `Sforce-Locator`, `Sforce-NumberOfRecords`, `Sforce-Limit-Info`) on REST, Bulk, OAuth
//! and CometD answers, for clients that look them up case-sensitively. Checked on the raw bytes, since every HTTP client library
//! folds case.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Org, VERSION};

/// Sends one raw HTTP/1.1 request to the plain listener and returns the response head.
async fn raw_head(org: &Org, request: String) -> String {
    let address = org.org.http_url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let end = text.find("\r\n\r\n").expect("a complete response head");
    text[..end].to_owned()
}

fn get(org: &Org, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        org.token
    )
}

fn header_names(head: &str) -> Vec<&str> {
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':').map(|(name, _)| name))
        .collect()
}

#[tokio::test]
async fn rest_bulk_oauth_and_cometd_answers_spell_header_names_as_salesforce_does() {
    let org = Org::start().await;

    let query = raw_head(
        &org,
        get(
            &org,
            &format!("/services/data/v{VERSION}/query?q=SELECT+Id+FROM+Account"),
        ),
    )
    .await;
    let names = header_names(&query);
    assert!(names.contains(&"Content-Type"), "{query}");
    assert!(names.contains(&"Sforce-Limit-Info"), "{query}");

    let job = crate::bulk::query_job(&org, "query", "SELECT Id FROM User").await;
    crate::bulk::wait(&org, "query", &job).await;
    let results = raw_head(
        &org,
        get(
            &org,
            &format!("/services/data/v{VERSION}/jobs/query/{job}/results"),
        ),
    )
    .await;
    let names = header_names(&results);
    for expected in [
        "Content-Type",
        "Sforce-Locator",
        "Sforce-NumberOfRecords",
        "Sforce-Limit-Info",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing in:\n{results}"
        );
    }

    let form = format!(
        "grant_type=password&client_id={}&client_secret={}&username={}&password={}",
        pgforce_emulator::DEFAULT_CLIENT_ID,
        pgforce_emulator::DEFAULT_CLIENT_SECRET,
        pgforce_emulator::DEFAULT_USERNAME,
        pgforce_emulator::DEFAULT_PASSWORD,
    );
    let token = raw_head(
        &org,
        format!(
            "POST /services/oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            form.len()
        ),
    )
    .await;
    assert!(token.starts_with("HTTP/1.1 200"), "{token}");
    assert!(header_names(&token).contains(&"Content-Type"), "{token}");

    let handshake = r#"[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"id":"1"}]"#;
    let cometd = raw_head(
        &org,
        format!(
            "POST /cometd/{VERSION} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: OAuth {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{handshake}",
            org.token,
            handshake.len()
        ),
    )
    .await;
    assert!(cometd.starts_with("HTTP/1.1 200"), "{cometd}");
    let names = header_names(&cometd);
    assert!(names.contains(&"Content-Type"), "{cometd}");
    assert!(names.contains(&"Set-Cookie"), "{cometd}");
}
