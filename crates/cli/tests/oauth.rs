//! The OAuth web-server flow's safety on `pgforce run`: a consent is finished only in the
//! browser that opened pgforce's one-time start link (login CSRF), a renewal is refused
//! when the person consented in another org than the connection's, and `next` is only
//! ever a path on pgforce itself (no open redirect).
//!
//! A [`Browser`] plays the person: it keeps cookies as a browser does and follows no
//! redirect by itself, so each step (start link, Salesforce's consent page, callback) is
//! checked on its own.

use std::collections::BTreeMap;

use pgforce_emulator::testing::TestOrg;
use pgforce_store::testing::TestDatabase;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{Keyed, call, keyed, token};
use crate::listener::tls_files;
use crate::run::{allowing, config_file, count, pgforce_ok, seeded_org};
use crate::server::{serving_with, serving_with_flags};

/// A person's browser: keeps the cookies servers set, sends them back, follows nothing.
pub struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

/// What a page answered: status, `Location` (if any) and text.
pub struct Answer {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub text: String,
}

impl Browser {
    pub fn new() -> Self {
        Self::with_client(reqwest::Client::builder())
    }

    /// A browser that trusts the certificate `pem` (pgforce serving TLS).
    fn trusting(pem: &str) -> Self {
        let certificate = reqwest::Certificate::from_pem(pem.as_bytes()).unwrap();
        Self::with_client(reqwest::Client::builder().add_root_certificate(certificate))
    }

    fn with_client(builder: reqwest::ClientBuilder) -> Self {
        Self {
            http: builder
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    /// A browser holding a cookie it was never given (an attacker's guess).
    fn with_cookie(name: &str, value: &str) -> Self {
        let mut browser = Self::new();
        browser.cookies.insert(name.to_owned(), value.to_owned());
        browser
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let request = if self.cookies.is_empty() {
            request
        } else {
            let header: Vec<String> = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            request.header(COOKIE, header.join("; "))
        };
        let response = request.send().await.unwrap();
        let set_cookies: Vec<String> = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for cookie in &set_cookies {
            let pair = cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if cookie.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Answer {
            status: response.status(),
            location: response
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_owned()),
            set_cookies,
            text: response.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, url: &str) -> Answer {
        let request = self.http.get(url);
        self.send(request).await
    }

    /// Opens pgforce's start link: the answer sends the browser to Salesforce.
    pub async fn open_start(&mut self, start: &str) -> Answer {
        self.get(start).await
    }

    /// On Salesforce's consent page (`consent_page`, where the start link sent the
    /// browser): logs in as the administrator and answers `decision`; returns where
    /// Salesforce sends the browser back (pgforce's callback with code and state).
    pub async fn decide(&mut self, consent_page: &str, decision: &str) -> String {
        let page = self.get(consent_page).await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "the consent page: {}",
            page.text
        );
        let (authorize, query) = consent_page.split_once('?').unwrap();
        let mut form: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
        form.extend([
            ("username".to_owned(), "admin@example.com".to_owned()),
            (
                "password".to_owned(),
                pgforce_emulator::DEFAULT_PASSWORD.to_owned(),
            ),
            ("decision".to_owned(), decision.to_owned()),
        ]);
        let request = self.http.post(authorize).form(&form);
        let answer = self.send(request).await;
        assert_eq!(
            answer.status,
            StatusCode::FOUND,
            "Salesforce sends the person back: {}",
            answer.text
        );
        answer.location.unwrap()
    }

    /// The whole consent from pgforce's start link: opens it, answers `decision` on
    /// Salesforce's page and comes back to pgforce's callback; returns the callback's
    /// answer (or the start link's, when it did not send the browser on).
    pub async fn consent(&mut self, start: &str, decision: &str) -> Answer {
        let opened = self.open_start(start).await;
        let Some(consent_page) = opened.location.clone() else {
            return opened;
        };
        assert_eq!(opened.status, StatusCode::SEE_OTHER, "{}", opened.text);
        let back = self.decide(&consent_page, decision).await;
        self.get(&back).await
    }
}

/// The org Id an emulator's token answers name (`id`: `…/id/<orgId>/<userId>`).
async fn org_id_of(org: &TestOrg) -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/services/oauth2/token", org.http_url))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "pgforce"),
            ("client_secret", "pgforce"),
            ("username", "admin@example.com"),
            ("password", pgforce_emulator::DEFAULT_PASSWORD),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = answer["id"].as_str().unwrap();
    id.rsplit('/').nth(1).unwrap().to_owned()
}

async fn text(db: &TestDatabase, sql: &str) -> Option<String> {
    db.client()
        .await
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

fn consented_connection(name: &str, org: &TestOrg) -> Value {
    json!({"name": name, "schema_name": name, "login_url": org.http_url,
        "auth": "refresh_token", "client_id": "pgforce", "client_secret": "pgforce"})
}

#[tokio::test]
async fn a_consent_is_finished_only_in_the_browser_that_opened_its_one_time_start_link() {
    let Keyed {
        org,
        db,
        config,
        key: _,
        daemon: _daemon,
        base,
        admin,
    } = keyed(2).await;
    let connections = "/api/v3/connections";
    let body = consented_connection("bound", &org);

    // The API hands out pgforce's own start link, kept only as a hash, with who asked.
    let (status, started) = call(&base, Method::POST, connections, Some(&admin), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let start = started["redirect"].as_str().unwrap().to_owned();
    let ticket = start
        .strip_prefix(&format!("{base}/oauth/start/"))
        .unwrap_or_else(|| panic!("not pgforce's start link: {start}"));
    assert_eq!(
        count(
            &db,
            &format!(
                "select count(*) from pgforce.authorizations
                  where ticket_hash = sha256(convert_to('{ticket}', 'UTF8'))
                    and requested_by = 'provisioning' and browser_hash is null"
            )
        )
        .await,
        1
    );

    // The victim's browser opens it: a cookie, then Salesforce's consent page.
    let mut victim = Browser::new();
    let opened = victim.open_start(&start).await;
    assert_eq!(opened.status, StatusCode::SEE_OTHER, "{}", opened.text);
    let consent_page = opened.location.clone().unwrap();
    assert!(
        consent_page.starts_with(&format!("{}/services/oauth2/authorize?", org.http_url))
            && consent_page.contains("code_challenge_method=S256")
            && consent_page.contains("state="),
        "{consent_page}"
    );
    let cookie = opened.set_cookies.join("\n");
    assert!(
        cookie.starts_with("pgforce_consent=")
            && cookie.contains("; Path=/")
            && cookie.contains("; HttpOnly")
            && cookie.contains("; SameSite=Lax"),
        "{cookie}"
    );

    // The link works once.
    let again = Browser::new().open_start(&start).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text);
    assert!(again.location.is_none());

    // The person consents, but another browser (no cookie, or a forged one) brings the
    // code back: refused, and the consent is cancelled for the right browser too.
    let back = victim.decide(&consent_page, "allow").await;
    let forged = Browser::with_cookie("pgforce_consent", "forged")
        .get(&back)
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST, "{}", forged.text);
    assert!(
        forged
            .text
            .contains("this browser did not start the consent"),
        "{}",
        forged.text
    );
    let late = victim.get(&back).await;
    assert_eq!(late.status, StatusCode::BAD_REQUEST, "{}", late.text);
    assert!(
        late.text.contains("no consent in progress"),
        "{}",
        late.text
    );
    assert_eq!(
        count(
            &db,
            "select count(*) from pgforce.connections where name = 'bound'"
        )
        .await,
        0
    );

    // Without any cookie: refused the same way.
    let (_, started) = call(&base, Method::POST, connections, Some(&admin), Some(&body)).await;
    let mut person = Browser::new();
    let opened = person
        .open_start(started["redirect"].as_str().unwrap())
        .await;
    let back = person
        .decide(opened.location.as_deref().unwrap(), "allow")
        .await;
    let cookieless = Browser::new().get(&back).await;
    assert_eq!(
        cookieless.status,
        StatusCode::BAD_REQUEST,
        "{}",
        cookieless.text
    );
    assert!(
        cookieless
            .text
            .contains("this browser did not start the consent"),
        "{}",
        cookieless.text
    );

    // In the browser that opened the link: done, and the audit trail names who asked.
    let (_, started) = call(&base, Method::POST, connections, Some(&admin), Some(&body)).await;
    let done = Browser::new()
        .consent(started["redirect"].as_str().unwrap(), "allow")
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(done.text.contains("is authorized"), "{}", done.text);
    assert!(
        done.set_cookies.iter().any(|c| c.contains("Max-Age=0")),
        "the used cookie is cleared: {:?}",
        done.set_cookies
    );
    assert_eq!(
        text(
            &db,
            "select after ->> 'requested_by' from pgforce.audit_log
              where action = 'connection.authorized' and target = 'connection bound'"
        )
        .await
        .as_deref(),
        Some("provisioning")
    );
    assert_eq!(
        text(
            &db,
            "select org_id from pgforce.connections where name = 'bound'"
        )
        .await,
        Some(org_id_of(&org).await),
        "the consent's org is recorded"
    );
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_renewal_consented_in_another_org_is_refused_and_changes_nothing() {
    let org = seeded_org(2).await;
    let other = TestOrg::start_with(pgforce_emulator::EmulatorConfig {
        org_number: 2,
        ..pgforce_emulator::EmulatorConfig::default()
    })
    .await;
    let (org_id, other_id) = (org_id_of(&org).await, org_id_of(&other).await);
    assert_ne!(org_id, other_id);
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, "");
    // Both orgs' hosts are allowed: only the org check stands in the way.
    let hosts = |org: &TestOrg| {
        let section = allowing(org);
        let (_, list) = section.split_once("allowed_login_hosts = [").unwrap();
        list.trim_end().trim_end_matches(']').to_owned()
    };
    let security = allowing(&org);
    let both = format!(
        "[security]\nallowed_login_hosts = [{}, {}]\n",
        hosts(&org),
        hosts(&other)
    );
    let written = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&security, &both);
    std::fs::write(&config, written).unwrap();
    let path = config.to_str().unwrap();
    let key = pgforce_ok(&["key", "generate"]).await.trim().to_owned();
    let (_daemon, base) = serving_with(path, &[("PGFORCE_SECRET_KEY", &key)]).await;
    let admin = token(path, "provisioning", "manage", &[]).await;

    // Created with a password: the check against the org records which org it is.
    let (status, created) = call(
        &base,
        Method::POST,
        "/api/v3/connections",
        Some(&admin),
        Some(&json!({
            "name": "renewed", "schema_name": "renewed", "login_url": org.http_url,
            "auth": "password", "username": "admin@example.com",
            "password": pgforce_emulator::DEFAULT_PASSWORD,
            "client_id": "pgforce", "client_secret": "pgforce"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let org_of = "select org_id from pgforce.connections where name = 'renewed'";
    assert_eq!(text(&db, org_of).await.as_deref(), Some(org_id.as_str()));
    let kept = "select settings::text || encode(secrets, 'hex') from pgforce.connections where name = 'renewed'";
    let before = text(&db, kept).await;
    let authorize_url = format!("/api/v3/connections/{id}/authorize_url");
    let renew_at = |login_url: &str| json!({ "login_url": login_url });

    // A person consents as a user of the other org: refused, naming both, nothing changed,
    // and the token that org issued is revoked (no use to anyone).
    let valid_tokens = |org: &TestOrg| {
        let org = org.http_url.clone();
        async move {
            let answer: Value = reqwest::get(format!("{org}/__emulator/refresh-tokens"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["valid"].as_u64().unwrap()
        }
    };
    let other_tokens = valid_tokens(&other).await;
    let (status, renewal) = call(
        &base,
        Method::POST,
        &authorize_url,
        Some(&admin),
        Some(&renew_at(&other.http_url)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renewal}");
    let refused = Browser::new()
        .consent(renewal["redirect"].as_str().unwrap(), "allow")
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
    assert!(
        refused.text.contains(&format!("given in org {other_id}"))
            && refused.text.contains(&format!("syncs org {org_id}"))
            && refused.text.contains("nothing changed"),
        "{}",
        refused.text
    );
    assert_eq!(
        text(&db, kept).await,
        before,
        "settings and secrets unchanged"
    );
    assert_eq!(
        valid_tokens(&other).await,
        other_tokens,
        "the other org's refresh token is revoked"
    );
    assert_eq!(text(&db, org_of).await.as_deref(), Some(org_id.as_str()));
    assert_eq!(
        count(
            &db,
            &format!(
                "select count(*) from pgforce.audit_log
                  where action = 'connection.authorize_refused' and target = 'connection renewed'
                    and after ->> 'connection_org_id' = '{org_id}'
                    and after ->> 'consented_org_id' = '{other_id}'
                    and after ->> 'requested_by' = 'provisioning'"
            )
        )
        .await,
        1
    );

    // In its own org: renewed (now with a refresh token), still the same org.
    let (_, renewal) = call(
        &base,
        Method::POST,
        &authorize_url,
        Some(&admin),
        Some(&renew_at(&org.http_url)),
    )
    .await;
    let renewed = Browser::new()
        .consent(renewal["redirect"].as_str().unwrap(), "allow")
        .await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.text);
    assert_eq!(
        count(&db, "select count(*) from pgforce.connections where name = 'renewed' and settings ->> 'auth' = 'refresh_token'").await,
        1
    );
    assert_eq!(text(&db, org_of).await.as_deref(), Some(org_id.as_str()));

    // A connection whose org pgforce never learnt takes the consent's, and keeps it.
    db.client()
        .await
        .execute(
            "update pgforce.connections set org_id = null where name = 'renewed'",
            &[],
        )
        .await
        .unwrap();
    let (_, renewal) = call(
        &base,
        Method::POST,
        &authorize_url,
        Some(&admin),
        Some(&renew_at(&other.http_url)),
    )
    .await;
    let adopted = Browser::new()
        .consent(renewal["redirect"].as_str().unwrap(), "allow")
        .await;
    assert_eq!(adopted.status, StatusCode::OK, "{}", adopted.text);
    assert_eq!(
        valid_tokens(&other).await,
        other_tokens + 1,
        "the token kept stays valid"
    );
    assert_eq!(text(&db, org_of).await.as_deref(), Some(other_id.as_str()));
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn next_is_only_a_path_on_pgforce_and_the_person_lands_there_after_consenting() {
    let Keyed {
        org,
        db,
        config,
        key: _,
        daemon: _daemon,
        base,
        admin,
    } = keyed(2).await;
    let connections = "/api/v3/connections";

    // Anywhere else is refused when the consent starts, naming `next`; nothing is kept.
    for elsewhere in [
        json!("https://evil.example.com/"),
        json!("//evil.example.com/dashboard"),
        json!("/\\evil.example.com"),
        json!("javascript:alert(1)"),
        json!(7),
    ] {
        let mut body = consented_connection("landing", &org);
        body["next"] = elsewhere.clone();
        let (status, problem) =
            call(&base, Method::POST, connections, Some(&admin), Some(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{elsewhere}: {problem}");
        assert!(
            problem["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("next must be a path on pgforce")),
            "{elsewhere}: {problem}"
        );
    }
    assert_eq!(
        count(&db, "select count(*) from pgforce.authorizations").await,
        0
    );

    // A path on pgforce: the person lands there once the connection exists.
    let mut body = consented_connection("landing", &org);
    body["next"] = json!("/dashboard?connection=landing");
    let (status, started) = call(&base, Method::POST, connections, Some(&admin), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let landed = Browser::new()
        .consent(started["redirect"].as_str().unwrap(), "allow")
        .await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.text);
    assert_eq!(
        landed.location.as_deref(),
        Some("/dashboard?connection=landing")
    );
    let (_, list) = call(
        &base,
        Method::GET,
        "/api/v3/connections?app=landing",
        Some(&admin),
        None,
    )
    .await;
    let id = list["results"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{list}"))
        .to_owned();

    // The renewal's `next` is held to the same rule.
    let (status, problem) = call(
        &base,
        Method::POST,
        &format!("/api/v3/connections/{id}/authorize_url"),
        Some(&admin),
        Some(&json!({"next": "https://evil.example.com/"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(
        problem["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("next must be a path on pgforce")),
        "{problem}"
    );
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn over_tls_the_consent_cookie_is_secure_and_bound_to_this_host() {
    let org = seeded_org(1).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, "");
    let path = config.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("{}-tls", db.name));
    let (cert, cert_path, key_path) = tls_files(&dir);
    let key = pgforce_ok(&["key", "generate"]).await.trim().to_owned();
    let flags = [
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ];
    let (_daemon, base) = serving_with_flags(path, &flags, &[("PGFORCE_SECRET_KEY", &key)]).await;
    assert!(base.starts_with("https://"), "{base}");
    let admin = token(path, "provisioning", "manage", &[]).await;
    let started: Value = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .build()
        .unwrap()
        .post(format!("{base}/api/v3/connections"))
        .bearer_auth(&admin)
        .json(&consented_connection("secure", &org))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let start = started["redirect"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"));
    assert!(
        start.starts_with(&format!("{base}/oauth/start/")),
        "{start}"
    );

    let mut browser = Browser::trusting(&cert);
    let opened = browser.open_start(start).await;
    assert_eq!(opened.status, StatusCode::SEE_OTHER, "{}", opened.text);
    let cookie = opened.set_cookies.join("\n");
    assert!(
        cookie.starts_with("__Host-pgforce_consent=")
            && cookie.contains("; Path=/")
            && cookie.contains("; HttpOnly")
            && cookie.contains("; SameSite=Lax")
            && cookie.contains("; Secure"),
        "{cookie}"
    );
    let back = browser
        .decide(opened.location.as_deref().unwrap(), "allow")
        .await;
    assert!(
        back.starts_with(&format!("{base}/oauth/callback?")),
        "{back}"
    );
    let done = browser.get(&back).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(done.text.contains("is authorized"), "{}", done.text);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(config);
}
