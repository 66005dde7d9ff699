//! Every login flow, failures, and transparent refresh after expiry.

use pgforce_emulator::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_USERNAME, EmulatorConfig,
};
use pgforce_salesforce::{ApiErrorCode, Client, Credentials, Error, SecretString};
use reqwest::Method;

use crate::support::{self, control};

async fn limits_work(client: &Client) {
    let limits = client
        .limits()
        .await
        .expect("limits are readable with the session");
    assert!(limits.contains_key("DailyApiRequests"));
}

#[tokio::test]
async fn password_refresh_token_and_client_credentials_flows_log_in() {
    let org = support::org().await;
    limits_work(&support::client(&org)).await;
    let refresh = Credentials::RefreshToken {
        client_id: DEFAULT_CLIENT_ID.to_owned(),
        client_secret: Some(SecretString::from(DEFAULT_CLIENT_SECRET)),
        refresh_token: SecretString::from(pgforce_emulator::DEFAULT_REFRESH_TOKEN),
    };
    limits_work(&Client::new(support::config(&org, refresh)).unwrap()).await;
    let client_credentials = Credentials::ClientCredentials {
        client_id: DEFAULT_CLIENT_ID.to_owned(),
        client_secret: SecretString::from(DEFAULT_CLIENT_SECRET),
    };
    limits_work(&Client::new(support::config(&org, client_credentials)).unwrap()).await;
}

#[tokio::test]
async fn jwt_bearer_flow_signs_an_assertion_the_org_verifies() {
    let public_key = include_str!("keys/jwt_test_public.pem").to_owned();
    let org = support::org_with(EmulatorConfig {
        jwt_public_key_pem: Some(public_key),
        ..EmulatorConfig::default()
    })
    .await;
    let credentials = Credentials::JwtBearer {
        client_id: DEFAULT_CLIENT_ID.to_owned(),
        username: DEFAULT_USERNAME.to_owned(),
        private_key_pem: SecretString::from(include_str!("keys/jwt_test_key.pem")),
        audience: None,
    };
    limits_work(&Client::new(support::config(&org, credentials)).unwrap()).await;
    let wrong_user = Credentials::JwtBearer {
        client_id: DEFAULT_CLIENT_ID.to_owned(),
        username: "nobody@example.com".to_owned(),
        private_key_pem: SecretString::from(include_str!("keys/jwt_test_key.pem")),
        audience: None,
    };
    let error = Client::new(support::config(&org, wrong_user))
        .unwrap()
        .limits()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Auth { error, .. } if error == "invalid_grant"),
        "{error}"
    );
}

#[tokio::test]
async fn wrong_credentials_are_an_auth_error_naming_salesforces_reason() {
    let org = support::org().await;
    let credentials = Credentials::Password {
        client_id: DEFAULT_CLIENT_ID.to_owned(),
        client_secret: SecretString::from(DEFAULT_CLIENT_SECRET),
        username: DEFAULT_USERNAME.to_owned(),
        password: SecretString::from("wrong-password"),
    };
    let client = Client::new(support::config(&org, credentials)).unwrap();
    let error = client.limits().await.unwrap_err();
    match &error {
        Error::Auth {
            status,
            error,
            description,
            ..
        } => {
            assert_eq!(
                (*status, error.as_str(), description.as_str()),
                (400, "invalid_grant", "authentication failure")
            );
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    let text = format!("{error} {error:?}");
    assert!(
        !text.contains("wrong-password"),
        "the password never appears in errors: {text}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn an_expired_session_is_refreshed_once_for_all_concurrent_callers() {
    let org = support::org().await;
    let client = support::client(&org);
    limits_work(&client).await;
    assert_eq!(client.logins(), 1);
    control(&org, Method::POST, "/sessions/expire", None).await;
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.limits().await.map(|_| ()) })
        })
        .collect();
    for call in calls {
        call.await
            .unwrap()
            .expect("every caller succeeds after the refresh");
    }
    assert_eq!(
        client.logins(),
        2,
        "sixteen callers hitting an expired session log in once"
    );
}

#[tokio::test]
async fn a_given_access_token_cannot_be_refreshed_and_says_so() {
    let org = support::org().await;
    let session = support::client(&org).session().await.unwrap();
    control(&org, Method::POST, "/sessions/expire", None).await;
    let given = Credentials::AccessToken {
        instance_url: session.instance_url.clone(),
        access_token: SecretString::from("00D000000000001!expired"),
    };
    let client = Client::new(support::config(&org, given)).unwrap();
    let error = client.limits().await.unwrap_err();
    assert_eq!(
        error.code(),
        Some(&ApiErrorCode::InvalidSessionId),
        "{error}"
    );
    assert_eq!(error.status(), Some(401));
}
