//! The web-server flow: the authorization page refuses a wrong connected app, a wrong
//! password and a denial as Salesforce does, and a consent yields a code that is
//! exchanged once, with the same redirect URI and the right PKCE verifier, for an access
//! and a refresh token that works.

use base64::Engine as _;
use pgforce_emulator::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, DEFAULT_USERNAME,
};
use reqwest::StatusCode;
use reqwest::redirect::Policy;

use crate::auth::token_request;
use crate::support::Org;

const CALLBACK: &str = "https://app.example.com/oauth/callback";
const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-0123456789";

fn challenge() -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, VERIFIER.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Posts the consent form; returns the status and the `Location` it redirects to.
async fn consent(org: &Org, password: &str, decision: &str) -> (StatusCode, String, String) {
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let challenge = challenge();
    let response = http
        .post(format!("{}/services/oauth2/authorize", org.base))
        .form(&[
            ("response_type", "code"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("redirect_uri", CALLBACK),
            ("state", "st-42"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("username", DEFAULT_USERNAME),
            ("password", password),
            ("decision", decision),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, location, response.text().await.unwrap_or_default())
}

fn code_of(location: &str) -> String {
    let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    assert!(
        params.contains(&("state".to_owned(), "st-42".to_owned())),
        "{location}"
    );
    params
        .into_iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no code in {location}"))
}

#[tokio::test]
async fn the_consent_page_refuses_wrong_apps_passwords_and_denials() {
    let org = Org::start().await;
    let page = org
        .http
        .get(format!(
            "{}/services/oauth2/authorize?response_type=code&client_id=other&redirect_uri={CALLBACK}",
            org.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    assert!(page.text().await.unwrap().contains("invalid_client_id"));
    let page = org
        .http
        .get(format!(
            "{}/services/oauth2/authorize?response_type=code&client_id={DEFAULT_CLIENT_ID}&redirect_uri={CALLBACK}&code_challenge=x&code_challenge_method=S256",
            org.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("id=\"allow\""));

    let (status, _, body) = consent(&org, "wrong", "allow").await;
    assert_eq!(status, StatusCode::OK, "the page again");
    assert!(body.contains("check your username and password"), "{body}");
    let (status, location, _) = consent(&org, DEFAULT_PASSWORD, "deny").await;
    assert_eq!(status, StatusCode::FOUND);
    assert!(
        location.starts_with(CALLBACK)
            && location.contains("error=access_denied")
            && location.contains("state=st-42"),
        "{location}"
    );
}

#[tokio::test]
async fn a_code_is_exchanged_once_with_its_redirect_and_verifier_for_working_tokens() {
    let org = Org::start().await;
    let exchange = |code: String, redirect: &'static str, verifier: &'static str| {
        let (http, base) = (org.http.clone(), org.base.clone());
        async move {
            token_request(
                &http,
                &base,
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", DEFAULT_CLIENT_ID),
                    ("client_secret", DEFAULT_CLIENT_SECRET),
                    ("code", &code),
                    ("redirect_uri", redirect),
                    ("code_verifier", verifier),
                ],
            )
            .await
        }
    };
    let (_, location, _) = consent(&org, DEFAULT_PASSWORD, "allow").await;
    let (status, answer) = exchange(code_of(&location), CALLBACK, "another-verifier").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{answer}"
    );
    let (_, location, _) = consent(&org, DEFAULT_PASSWORD, "allow").await;
    let (status, answer) = exchange(
        code_of(&location),
        "https://elsewhere.example.com/",
        VERIFIER,
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{answer}"
    );

    let (_, location, _) = consent(&org, DEFAULT_PASSWORD, "allow").await;
    let code = code_of(&location);
    let (status, answer) = exchange(code.clone(), CALLBACK, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        answer["access_token"]
            .as_str()
            .is_some_and(|t| t.contains('!')),
        "{answer}"
    );
    let refresh = answer["refresh_token"].as_str().unwrap().to_owned();
    let (status, again) = exchange(code, CALLBACK, VERIFIER).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "a code works once"
    );
    let (status, refreshed) = token_request(
        &org.http,
        &org.base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("refresh_token", &refresh),
        ],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the refresh token works: {refreshed}"
    );
}

/// The org Id in a token answer's identity URL (`…/id/<orgId>/<userId>`).
fn org_of(answer: &serde_json::Value) -> String {
    let id = answer["id"].as_str().unwrap_or_else(|| panic!("{answer}"));
    let segments: Vec<&str> = id.rsplit('/').collect();
    assert_eq!(segments[2], "id", "{id}");
    segments[1].to_owned()
}

#[tokio::test]
async fn a_code_exchange_names_the_org_consented_in_and_each_org_number_is_another_org() {
    let mut orgs = Vec::new();
    for number in [pgforce_emulator::DEFAULT_ORG_NUMBER, 2] {
        let org = Org::start_with(pgforce_emulator::EmulatorConfig {
            org_number: number,
            ..crate::support::config()
        })
        .await;
        let (_, location, _) = consent(&org, DEFAULT_PASSWORD, "allow").await;
        let (status, answer) = token_request(
            &org.http,
            &org.base,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", DEFAULT_CLIENT_ID),
                ("client_secret", DEFAULT_CLIENT_SECRET),
                ("code", &code_of(&location)),
                ("redirect_uri", CALLBACK),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let org_id = org_of(&answer);
        assert!(org_id.len() == 18 && org_id.starts_with("00D"), "{answer}");
        let token = answer["access_token"].as_str().unwrap();
        assert_eq!(
            token.split('!').next(),
            org_id.get(..15),
            "the access token starts with the same org: {answer}"
        );
        orgs.push(org_id);
    }
    assert_ne!(orgs[0], orgs[1], "two org numbers, two orgs");
}
