//! Credentials revoked and restored (`/__emulator/credentials/…`): while revoked, every
//! session answers 401 and every grant fails as Salesforce answers it; after restore logins
//! work again and old sessions stay ended.

use std::time::{SystemTime, UNIX_EPOCH};

use pgforce_emulator::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, DEFAULT_REFRESH_TOKEN,
    DEFAULT_USERNAME,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::auth::{jwt, soap_login_envelope, token_request};
use crate::support::{Org, password_login, single_error};

const JWT_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn password_form() -> Vec<(&'static str, &'static str)> {
    vec![
        ("grant_type", "password"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", DEFAULT_CLIENT_SECRET),
        ("username", DEFAULT_USERNAME),
        ("password", DEFAULT_PASSWORD),
    ]
}

fn refresh_form() -> Vec<(&'static str, &'static str)> {
    vec![
        ("grant_type", "refresh_token"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", DEFAULT_CLIENT_SECRET),
        ("refresh_token", DEFAULT_REFRESH_TOKEN),
    ]
}

fn client_credentials_form() -> Vec<(&'static str, &'static str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", DEFAULT_CLIENT_SECRET),
    ]
}

fn assertion() -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 180;
    jwt(&json!({ "iss": DEFAULT_CLIENT_ID, "sub": DEFAULT_USERNAME,
                 "aud": "https://login.salesforce.com", "exp": exp }))
}

/// Every OAuth grant's answer: `(status, body)` in the order password, refresh token, client
/// credentials, JWT bearer.
async fn every_grant(org: &Org) -> Vec<(StatusCode, Value)> {
    let assertion = assertion();
    let jwt_form = vec![("grant_type", JWT_GRANT), ("assertion", assertion.as_str())];
    let mut answers = Vec::new();
    for form in [
        password_form(),
        refresh_form(),
        client_credentials_form(),
        jwt_form,
    ] {
        answers.push(token_request(&org.http, &org.base, &form).await);
    }
    answers
}

/// The SOAP login's status and body.
async fn soap_login(org: &Org) -> (StatusCode, String) {
    let response = org
        .http
        .post(format!(
            "{}/services/Soap/u/{}",
            org.base,
            crate::support::VERSION
        ))
        .header("Content-Type", "text/xml; charset=UTF-8")
        .header("SOAPAction", "login")
        .body(soap_login_envelope(DEFAULT_USERNAME, DEFAULT_PASSWORD))
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn revoked_credentials_end_every_session_and_refuse_every_login() {
    let org = Org::start().await;
    let revoked = org
        .control_call(Method::POST, "/credentials/revoke", None)
        .await;
    assert_eq!(revoked, json!({ "revoked": true, "sessionsEnded": 1 }));

    let (status, _, body) = org.call(Method::GET, "/limits", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        single_error(&body),
        (
            "INVALID_SESSION_ID".to_owned(),
            "Session expired or invalid".to_owned()
        )
    );
    let userinfo = org
        .http
        .get(format!("{}/services/oauth2/userinfo", org.base))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), StatusCode::UNAUTHORIZED);

    let descriptions: Vec<(StatusCode, Value)> = every_grant(&org).await;
    let expected = [
        "authentication failure",
        "expired access/refresh token",
        "authentication failure",
        "user hasn't approved this consumer",
    ];
    for ((status, body), description) in descriptions.iter().zip(expected) {
        assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            *body,
            json!({ "error": "invalid_grant", "error_description": description })
        );
    }
    let (status, xml) = soap_login(&org).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        xml.contains("<faultcode>sf:INVALID_LOGIN</faultcode>"),
        "{xml}"
    );
    let state = org.control_call(Method::GET, "/credentials", None).await;
    assert_eq!(state, json!({ "revoked": true }));
}

#[tokio::test]
async fn client_checks_come_before_the_revoked_user() {
    let org = Org::start().await;
    org.control_call(Method::POST, "/credentials/revoke", None)
        .await;
    let mut form = password_form();
    form[1] = ("client_id", "someone-else");
    let (status, body) = token_request(&org.http, &org.base, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client_id");
}

#[tokio::test]
async fn restored_credentials_log_in_again_while_old_sessions_stay_ended() {
    let org = Org::start().await;
    org.control_call(Method::POST, "/credentials/revoke", None)
        .await;
    let restored = org
        .control_call(Method::POST, "/credentials/restore", None)
        .await;
    assert_eq!(restored, json!({ "revoked": false }));
    assert_eq!(
        org.call(Method::GET, "/limits", None).await.0,
        StatusCode::UNAUTHORIZED,
        "the session ended at the revocation stays ended"
    );
    for (status, body) in every_grant(&org).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(soap_login(&org).await.0, StatusCode::OK);
    let login = password_login(&org.http, &org.base).await;
    let token = login["access_token"].as_str().unwrap();
    let response = org
        .http
        .get(org.url("/limits"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
