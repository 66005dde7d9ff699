//! Logging in: every OAuth grant, SOAP login, token expiry, and where clients are sent.

use pgforce_emulator::testing::TestOrg;
use pgforce_emulator::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, DEFAULT_USERNAME,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{self, Org, VERSION};

pub(crate) async fn token_request(
    http: &reqwest::Client,
    base: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let response = http
        .post(format!("{base}/services/oauth2/token"))
        .form(form)
        .send()
        .await
        .expect("token endpoint answers");
    let status = response.status();
    (
        status,
        response.json().await.expect("token endpoint answers JSON"),
    )
}

fn password_form<'a>(
    password: &'a str,
    client_id: &'a str,
    secret: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "password"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("username", DEFAULT_USERNAME),
        ("password", password),
    ]
}

async fn limits_status(http: &reqwest::Client, base: &str, token: &str) -> StatusCode {
    http.get(format!("{base}/services/data/v{VERSION}/limits"))
        .bearer_auth(token)
        .send()
        .await
        .expect("limits answers")
        .status()
}

#[tokio::test]
async fn password_grant_issues_a_token_shaped_like_salesforce() {
    let org = TestOrg::start().await;
    let http = support::client_for(&org);
    let login = support::password_login(&http, &org.https_url).await;
    let token = login["access_token"].as_str().unwrap();
    let (org_part, opaque) = token.split_once('!').unwrap();
    assert_eq!(
        org_part.len(),
        15,
        "token starts with the 15-character org id"
    );
    assert!(opaque.len() > 40);
    assert!(
        login["issued_at"].as_str().unwrap().parse::<i64>().is_ok(),
        "issued_at is epoch ms as a string"
    );
    assert_eq!(login["token_type"], "Bearer");
    assert!(
        login.get("expires_in").is_none(),
        "Salesforce sends no expires_in"
    );
    let id = login["id"].as_str().unwrap();
    let parts: Vec<&str> = id.rsplit('/').take(2).collect();
    assert_eq!(parts[0].len(), 18, "identity URL ends with the user id");
    assert!(
        parts[0].starts_with("005") && parts[1].starts_with("00D"),
        "{id}"
    );
    assert_eq!(
        limits_status(&http, &org.https_url, token).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn instance_url_keeps_the_scheme_host_and_port_of_the_login() {
    let org = TestOrg::start().await;
    let http = support::client_for(&org);
    let over_https = support::password_login(&http, &org.https_url).await;
    assert_eq!(over_https["instance_url"], org.https_url.as_str());
    let over_http = support::password_login(&http, &org.http_url).await;
    assert_eq!(over_http["instance_url"], org.http_url.as_str());
    assert!(over_http["id"].as_str().unwrap().starts_with(&org.http_url));
}

#[tokio::test]
async fn wrong_credentials_answer_as_salesforce_does() {
    let org = TestOrg::start().await;
    let http = support::client_for(&org);
    let base = &org.https_url;
    let cases = [
        (
            password_form("wrong", DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
            "invalid_grant",
            "authentication failure",
        ),
        (
            password_form(DEFAULT_PASSWORD, "nope", DEFAULT_CLIENT_SECRET),
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            password_form(DEFAULT_PASSWORD, DEFAULT_CLIENT_ID, "nope"),
            "invalid_client",
            "invalid client credentials",
        ),
        (
            vec![("grant_type", "magic")],
            "unsupported_grant_type",
            "grant type not supported",
        ),
    ];
    for (form, error, description) in cases {
        let (status, body) = token_request(&http, base, &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], error);
        assert_eq!(body["error_description"], description);
    }
}

#[tokio::test]
async fn refresh_token_and_client_credentials_grants_issue_tokens() {
    let org = TestOrg::start().await;
    let http = support::client_for(&org);
    let base = &org.https_url;
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("refresh_token", pgforce_emulator::DEFAULT_REFRESH_TOKEN),
    ];
    let (status, body) = token_request(&http, base, &refresh).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        limits_status(&http, base, body["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );

    let minted: Value = http
        .post(format!("{}/__emulator/refresh-tokens", org.http_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let minted = minted["refresh_token"].as_str().unwrap();
    let (status, _) = token_request(
        &http,
        base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("refresh_token", minted),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = token_request(
        &http,
        base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("refresh_token", "unknown"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_description"], "expired access/refresh token");

    let (status, body) = token_request(
        &http,
        base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        limits_status(&http, base, body["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );
}

/// Builds an unsigned-signature JWT (`alg: RS256`) with the given claims; accepted only when
/// the emulator has no public key configured.
pub(crate) fn jwt(claims: &Value) -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = engine.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = engine.encode(claims.to_string());
    format!(
        "{header}.{payload}.{}",
        engine.encode(b"not-a-real-signature")
    )
}

#[tokio::test]
async fn jwt_bearer_grant_checks_issuer_subject_audience_and_expiry() {
    let org = TestOrg::start().await;
    let http = support::client_for(&org);
    let base = &org.https_url;
    let exp = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 180) as i64;
    let grant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    let claims = |iss: &str, sub: &str, aud: &str, exp: i64| serde_json::json!({ "iss": iss, "sub": sub, "aud": aud, "exp": exp });
    let good = jwt(&claims(
        DEFAULT_CLIENT_ID,
        DEFAULT_USERNAME,
        "https://login.salesforce.com",
        exp,
    ));
    let (status, body) =
        token_request(&http, base, &[("grant_type", grant), ("assertion", &good)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        limits_status(&http, base, body["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );

    let bad = [
        (
            claims(
                DEFAULT_CLIENT_ID,
                DEFAULT_USERNAME,
                "https://elsewhere.example",
                exp,
            ),
            "Audience validation failed",
        ),
        (
            claims(
                DEFAULT_CLIENT_ID,
                DEFAULT_USERNAME,
                "https://login.salesforce.com",
                exp - 3600,
            ),
            "expired",
        ),
        (
            claims(
                "other-app",
                DEFAULT_USERNAME,
                "https://login.salesforce.com",
                exp,
            ),
            "client identifier invalid",
        ),
        (
            claims(
                DEFAULT_CLIENT_ID,
                "someone@else.example",
                "https://login.salesforce.com",
                exp,
            ),
            "approved",
        ),
    ];
    for (claims, expected) in bad {
        let (status, body) = token_request(
            &http,
            base,
            &[("grant_type", grant), ("assertion", &jwt(&claims))],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{claims}");
        assert_eq!(body["error"], "invalid_grant");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains(expected),
            "{body} should mention {expected}"
        );
    }
}

#[tokio::test]
async fn jwt_signatures_are_verified_when_a_public_key_is_configured() {
    // Any key: the unsigned test assertion must now be refused for its signature.
    let key = include_str!("keys/jwt_test_public.pem").to_owned();
    let config = pgforce_emulator::EmulatorConfig {
        jwt_public_key_pem: Some(key),
        ..support::config()
    };
    let org = TestOrg::start_with(config).await;
    let http = support::client_for(&org);
    let exp = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 180) as i64;
    let claims = serde_json::json!({
        "iss": DEFAULT_CLIENT_ID, "sub": DEFAULT_USERNAME, "aud": "https://login.salesforce.com", "exp": exp
    });
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", &jwt(&claims)),
    ];
    let (status, body) = token_request(&http, &org.https_url, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("invalid assertion"),
        "{body}"
    );
}

pub(crate) fn soap_login_envelope(username: &str, password: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:partner.soap.sforce.com">
  <env:Header><urn:CallOptions><urn:client>test</urn:client></urn:CallOptions></env:Header>
  <env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com">
    <n1:username>{username}</n1:username><n1:password>{password}</n1:password>
  </n1:login></env:Body>
</env:Envelope>"#
    )
}

fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

#[tokio::test]
async fn soap_login_returns_a_working_session_and_faults_on_bad_passwords() {
    let org = TestOrg::start().await;
    let http = support::client_for(&org);
    let url = format!("{}/services/Soap/u/59.0", org.https_url);
    let response = http
        .post(&url)
        .header("Content-Type", "text/xml; charset=UTF-8")
        .header("SOAPAction", "login")
        .body(soap_login_envelope(DEFAULT_USERNAME, DEFAULT_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let xml = response.text().await.unwrap();
    let server_url = element(&xml, "serverUrl").unwrap();
    assert!(
        server_url.starts_with(&format!("{}/services/Soap/u/59.0/00D", org.https_url)),
        "{server_url}"
    );
    assert_eq!(element(&xml, "sessionSecondsValid"), Some("7200"));
    let session = element(&xml, "sessionId").unwrap();
    assert_eq!(
        limits_status(&http, &org.https_url, session).await,
        StatusCode::OK
    );

    let response = http
        .post(&url)
        .body(soap_login_envelope(DEFAULT_USERNAME, "wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let xml = response.text().await.unwrap();
    assert!(
        xml.contains("<faultcode>sf:INVALID_LOGIN</faultcode>"),
        "{xml}"
    );
    assert!(xml.contains("Invalid username, password, security token; or user locked out."));
}

#[tokio::test]
async fn expired_sessions_answer_401_invalid_session_id() {
    let org = Org::start().await;
    assert_eq!(
        org.call(Method::GET, "/limits", None).await.0,
        StatusCode::OK
    );
    org.control_call(
        Method::PUT,
        "/sessions",
        Some(serde_json::json!({ "lifetimeSeconds": 0 })),
    )
    .await;
    let fresh = support::password_login(&org.http, &org.base).await;
    let fresh_token = fresh["access_token"].as_str().unwrap();
    assert_eq!(
        limits_status(&org.http, &org.base, fresh_token).await,
        StatusCode::UNAUTHORIZED
    );
    org.control_call(Method::POST, "/sessions/expire", None)
        .await;
    let (status, _, body) = org.call(Method::GET, "/limits", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        support::single_error(&body),
        (
            "INVALID_SESSION_ID".to_owned(),
            "Session expired or invalid".to_owned()
        )
    );
}

#[tokio::test]
async fn revoked_tokens_stop_working_and_userinfo_names_the_user() {
    let org = Org::start().await;
    let info: Value = org
        .http
        .get(format!("{}/services/oauth2/userinfo", org.base))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["preferred_username"], DEFAULT_USERNAME);
    assert!(info["organization_id"].as_str().unwrap().starts_with("00D"));
    let response = org
        .http
        .post(format!("{}/services/oauth2/revoke", org.base))
        .form(&[("token", org.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        org.call(Method::GET, "/limits", None).await.0,
        StatusCode::UNAUTHORIZED
    );
}
