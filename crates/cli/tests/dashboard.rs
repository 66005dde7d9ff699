//! The dashboard in a real browser (headless Chromium driven by ChromeDriver over the
//! W3C WebDriver protocol): a wrong token is refused, a person logs in with an `operate`
//! token, watches the mapping reach DATA_SYNCED with its counts, sees a refused write with
//! Salesforce's message, fixes the row, presses Retry and sees it go through. Screenshots
//! go to `target/screenshots/`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use pgforce_store::testing::TestDatabase;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::run::{config_file, pgforce_ok, seeded_org, wait_for_count};
use crate::server::{READ_WRITE_ACCOUNTS, serving};

/// A browser session through ChromeDriver.
struct Browser {
    _driver: Child,
    http: reqwest::Client,
    session: String,
}

impl Browser {
    async fn start() -> Self {
        let driver_path = "/usr/bin/chromedriver";
        assert!(
            std::path::Path::new(driver_path).exists(),
            "{driver_path} is missing: install Debian's chromium and chromium-driver (.ci/run does)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"],
            },
        } } });
        let deadline = Instant::now() + Duration::from_secs(30);
        let session = loop {
            if let Ok(response) = http
                .post(format!("{base}/session"))
                .json(&capabilities)
                .send()
                .await
            {
                let answer: Value = response.json().await.unwrap();
                let id = answer["value"]["sessionId"].as_str().map(str::to_owned);
                break id.unwrap_or_else(|| panic!("no browser session: {answer}"));
            }
            assert!(Instant::now() < deadline, "chromedriver never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Self {
            _driver: driver,
            http,
            session: format!("{base}/session/{session}"),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        answer["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Waits (bounded) until the current page holds `text`: after a click, the browser
    /// may still be loading the next page.
    async fn showing(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let source = self.source().await;
            if source.contains(text) {
                return source;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {text:?}:\n{source}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Reloads the page until its source holds `text` (bounded).
    async fn wait_for(&self, url: &str, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.open(url).await;
            let source = self.source().await;
            if source.contains(text) {
                return source;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {text:?}:\n{source}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// The value the page's styles give `property` of the first `css` element.
    async fn computed_style(&self, css: &str, property: &str) -> String {
        let script = "return getComputedStyle(document.querySelector(arguments[0])).getPropertyValue(arguments[1]);";
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [css, property] })),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    async fn screenshot(&self, name: &str) {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let (http, session) = (self.http.clone(), self.session.clone());
        tokio::spawn(async move {
            let _ = http.delete(session).send().await;
        });
    }
}

#[tokio::test]
async fn a_person_logs_in_watches_the_sync_and_retries_a_refused_write_in_a_browser() {
    let org = seeded_org(12).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, READ_WRITE_ACCOUNTS);
    let path = config.to_str().unwrap();
    let (_daemon, base) = serving(path).await;
    let token = pgforce_ok(&[
        "token",
        "--config",
        path,
        "create",
        "--name",
        "ops-person",
        "--role",
        "operate",
    ])
    .await
    .trim()
    .to_owned();
    let browser = Browser::start().await;

    // Not logged in: the login page; a wrong token is refused there.
    browser.open(&format!("{base}/dashboard")).await;
    browser.type_into("#token", "pgf_wrong").await;
    browser.click("#log-in").await;
    browser.showing("unknown, expired or revoked").await;
    browser.screenshot("dashboard-login-refused").await;

    browser.type_into("#token", &token).await;
    browser.click("#log-in").await;
    browser.showing("Log out").await;
    let synced = browser
        .wait_for(&format!("{base}/dashboard"), "DATA_SYNCED")
        .await;
    assert!(synced.contains("ops-person"), "who is logged in is shown");
    assert!(
        synced.contains("<td>12</td>"),
        "Postgres and Salesforce counts: {synced}"
    );
    assert!(
        !synced.contains("Audit trail"),
        "an operate token sees no audit trail"
    );
    assert!(
        synced.contains("id=\"activity\"") && synced.contains(" read, 0 written</title>"),
        "the load is in the activity chart: {synced}"
    );
    // The content security policy lets the dashboard's own stylesheet through.
    assert_eq!(
        browser.computed_style("th", "background-color").await,
        "rgb(243, 245, 247)",
        "the stylesheet is applied"
    );
    browser.screenshot("dashboard-synced").await;

    // A write Salesforce refuses appears with its message and the buttons to act on it.
    let pg = db.client().await;
    pg.batch_execute("insert into salesforce.account (industry) values ('Banking')")
        .await
        .unwrap();
    let failed = browser
        .wait_for(&format!("{base}/dashboard"), "REQUIRED_FIELD_MISSING")
        .await;
    let log_id: i64 = pg
        .query_one(
            "select id::bigint from salesforce._trigger_log where state = 'FAILED'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        failed.contains(&format!("id=\"retry-{log_id}\"")),
        "{failed}"
    );
    browser.screenshot("dashboard-refused-write").await;

    // Fixed and retried from the browser: it goes through and leaves the list.
    pg.batch_execute(
        "update salesforce.account set name = 'Fixed in the dashboard' where sfid is null",
    )
    .await
    .unwrap();
    browser.click(&format!("#retry-{log_id}")).await;
    wait_for_count(
        &db,
        "select count(*) from salesforce.account where name = 'Fixed in the dashboard' and sfid is not null",
        1,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        browser.open(&format!("{base}/dashboard")).await;
        let page = browser.source().await;
        if !page.contains("REQUIRED_FIELD_MISSING") {
            assert!(
                page.contains("<td>13</td>"),
                "the row counts once more: {page}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the retried write never left the list: {page}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    browser.screenshot("dashboard-retried").await;
    let audited = crate::run::count(
        &db,
        &format!("select count(*) from pgforce.audit_log where actor = 'ops-person' and action = 'write.retry' and target like '%row {log_id}'"),
    )
    .await;
    assert_eq!(audited, 1, "the retry is in the audit trail");
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_deploy_token_adds_a_mapping_by_ticking_fields_from_the_orgs_describe() {
    let org = seeded_org(3).await;
    org.control(
        reqwest::Method::POST,
        "/seed",
        Some(json!({ "Contact": 7 })),
    )
    .await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, READ_WRITE_ACCOUNTS);
    let path = config.to_str().unwrap();
    let (_daemon, base) = serving(path).await;
    let token = pgforce_ok(&[
        "token", "--config", path, "create", "--name", "deployer", "--role", "deploy",
    ])
    .await
    .trim()
    .to_owned();
    let browser = Browser::start().await;
    browser.open(&format!("{base}/dashboard/login")).await;
    browser.type_into("#token", &token).await;
    browser.click("#log-in").await;
    browser.showing("Add or change a mapping").await;
    browser.click("a[id^=new-mapping-]").await;
    browser.type_into("#object", "Contact").await;
    browser.click("#show-fields").await;
    browser.showing("id=\"field-LastName\"").await;
    browser.click("#field-LastName").await;
    browser.click("#field-Email").await;
    browser.screenshot("dashboard-mapping-editor").await;
    browser.click("#save-mapping").await;
    browser.showing("data-object=\"Contact\"").await;
    wait_for_count(
        &db,
        "select count(*) from salesforce.contact where lastname is not null",
        7,
    )
    .await;
    let synced = browser
        .wait_for(&format!("{base}/dashboard"), "<td>7</td>")
        .await;
    assert!(synced.contains("data-object=\"Contact\""), "{synced}");
    let audited = crate::run::count(
        &db,
        "select count(*) from pgforce.audit_log where actor = 'deployer' and action = 'mapping.create' and target = 'mapping main/Contact'",
    )
    .await;
    assert_eq!(audited, 1);
    let _ = std::fs::remove_file(config);
}

/// Logs in to the dashboard with `token` without a browser; returns a client that does
/// not follow redirects and the session cookie as the server set it.
pub async fn log_in_over_http(base: &str, token: &str) -> (reqwest::Client, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = crate::hardening::log_in(&http, base, token, Some(base)).await;
    assert_eq!(login.status().as_u16(), 303, "logged in");
    let cookie = crate::hardening::set_cookie(&login, "pgforce_session");
    (http, cookie)
}

#[tokio::test]
async fn forms_without_the_session_token_change_nothing() {
    let org = seeded_org(2).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, READ_WRITE_ACCOUNTS);
    let path = config.to_str().unwrap();
    let (_daemon, base) = serving(path).await;
    let token = pgforce_ok(&[
        "token", "--config", path, "create", "--name", "p", "--role", "operate",
    ])
    .await
    .trim()
    .to_owned();
    let (http, cookie) = log_in_over_http(&base, &token).await;
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();
    let forged = http
        .post(format!("{base}/dashboard/writes"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=guess&connection=1&log_id=1&decision=ignore")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    // Without a session, the dashboard sends people to log in.
    let anonymous = http.get(format!("{base}/dashboard")).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 303);
    assert_eq!(anonymous.headers()["location"], "/dashboard/login");
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_running_load_shows_how_far_it_got() {
    let org = seeded_org(3000).await;
    org.control(
        reqwest::Method::PUT,
        "/faults",
        Some(json!({ "latencyMs": 120 })),
    )
    .await;
    let db = TestDatabase::create().await;
    let mappings = format!("query_batch_size = 200\n{READ_WRITE_ACCOUNTS}");
    let config = config_file(&org, &db, &mappings);
    let path = config.to_str().unwrap();
    let (_daemon, base) = serving(path).await;
    let token = pgforce_ok(&[
        "token", "--config", path, "create", "--name", "watcher", "--role", "view",
    ])
    .await
    .trim()
    .to_owned();
    let (http, cookie) = log_in_over_http(&base, &token).await;
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = || {
        let (http, session, base) = (http.clone(), session.clone(), base.clone());
        async move {
            http.get(format!("{base}/dashboard"))
                .header("cookie", session)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    // 15 pages of 200 at 120 ms each: the page shows the count growing, then the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let html = page().await;
        if let Some(at) = html.find("loading: ") {
            let number: String = html[at + 9..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            seen.push(number.parse::<u64>().unwrap());
        }
        if html.contains("DATA_SYNCED") {
            assert!(!html.contains("records so far"), "no progress once loaded");
            break;
        }
        assert!(Instant::now() < deadline, "the load never finished: {html}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !seen.is_empty(),
        "the load's progress was shown while it ran"
    );
    assert!(seen.iter().all(|n| *n <= 3000), "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "progress only grows: {seen:?}"
    );
    let _ = std::fs::remove_file(config);
}
