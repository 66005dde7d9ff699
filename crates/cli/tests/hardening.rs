//! The server faces the internet: dashboard cookies are `Secure` and `__Host-` over TLS;
//! a login needs the token of its login form's cookie and every dashboard POST from
//! another origin is refused; connection changes are audited with their non-secret values
//! before and after, refusals of live tokens too (aggregated), anonymous ones not; a
//! running `pgforce run` deletes expired dashboard sessions, consents and diagnoses.

use std::process::Stdio;

use pgforce_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::api::{call, token};
use crate::run::{
    ACCOUNT_MAPPING, config_file, count, pgforce, pgforce_ok, seeded_org, stop, wait_for_count,
};
use crate::server::{READ_WRITE_ACCOUNTS, serving_with};

/// The `Set-Cookie` header that sets cookie `name`, whole (`""` when none does).
pub fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_default()
        .to_owned()
}

/// Opens the login page: the login cookie's `name=value` (the one it set, whatever its
/// name) and the form's token.
async fn login_form(http: &reqwest::Client, base: &str) -> (String, String) {
    let page = http
        .get(format!("{base}/dashboard/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("pgforce_login="))
        .unwrap_or_else(|| panic!("the login page sets a login cookie: {:?}", page.headers()))
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    let marker = "name=\"login_csrf\" value=\"";
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no login_csrf in the form: {html}"));
    let token = html[at + marker.len()..]
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    (cookie, token)
}

/// A login POST with `token`, a login cookie and form token (`form`) and `Origin: origin`
/// (none when `None`).
async fn post_login(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    form: (&str, &str),
    origin: Option<&str>,
) -> reqwest::Response {
    let mut request = http
        .post(format!("{base}/dashboard/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("login_csrf={}&token={token}", form.1));
    if !form.0.is_empty() {
        request = request.header("cookie", form.0);
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.unwrap()
}

/// Logs in as a browser on the login page would: its cookie and form token, posted from
/// `origin`.
pub async fn log_in(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    origin: Option<&str>,
) -> reqwest::Response {
    let (cookie, form_token) = login_form(http, base).await;
    post_login(http, base, token, (&cookie, &form_token), origin).await
}

/// A client that does not follow redirects, trusting `cert` (PEM) when given.
fn client(cert: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(cert) = cert {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// The dashboard's status for a request with `cookie` (`name=value`).
async fn dashboard_status(http: &reqwest::Client, base: &str, cookie: &str) -> StatusCode {
    http.get(format!("{base}/dashboard"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn logins_need_their_forms_cookie_and_dashboard_posts_from_other_origins_are_refused() {
    let org = seeded_org(2).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, READ_WRITE_ACCOUNTS);
    let path = config.to_str().unwrap();
    let (_daemon, base) = serving_with(path, &[]).await;
    let token = pgforce_ok(&[
        "token", "--config", path, "create", "--name", "p", "--role", "operate",
    ])
    .await
    .trim()
    .to_owned();
    let http = client(None);
    let (cookie, form_token) = login_form(&http, &base).await;
    let form = (cookie.as_str(), form_token.as_str());
    assert!(cookie.starts_with("pgforce_login="), "{cookie}");

    // Another site posting the victim's browser to the login, whatever it carries.
    let foreign = post_login(&http, &base, &token, form, Some("https://evil.example")).await;
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let referred = http
        .post(format!("{base}/dashboard/login"))
        .header("cookie", &cookie)
        .header("referer", "https://evil.example/page")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("login_csrf={form_token}&token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        referred.status(),
        StatusCode::FORBIDDEN,
        "a foreign Referer"
    );
    let unsaid = post_login(&http, &base, &token, form, None).await;
    assert_eq!(
        unsaid.status(),
        StatusCode::FORBIDDEN,
        "a login naming no origin"
    );
    // From here, but without the login page's cookie or with another token.
    let no_cookie = post_login(&http, &base, &token, ("", &form_token), Some(&base)).await;
    assert_eq!(no_cookie.status(), StatusCode::FORBIDDEN);
    let (other_cookie, _) = login_form(&http, &base).await;
    let crossed = post_login(
        &http,
        &base,
        &token,
        (&other_cookie, &form_token),
        Some(&base),
    )
    .await;
    assert_eq!(
        crossed.status(),
        StatusCode::FORBIDDEN,
        "another form's token"
    );
    let refused = crate::run::count(&db, "select count(*) from pgforce.dashboard_sessions").await;
    assert_eq!(refused, 0, "no refused login opened a session");

    // The real thing: same origin, the form's own cookie. On plain HTTP, plain names.
    let login = post_login(&http, &base, &token, form, Some(&base)).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let session = set_cookie(&login, "pgforce_session");
    assert!(
        session.contains("Path=/dashboard")
            && session.contains("HttpOnly")
            && !session.contains("Secure"),
        "{session}"
    );
    assert!(
        set_cookie(&login, "pgforce_login").contains("Max-Age=0"),
        "the login cookie is dropped"
    );
    let session = session.split(';').next().unwrap().to_owned();
    assert_eq!(
        dashboard_status(&http, &base, &session).await,
        StatusCode::OK
    );

    // A logged-in person's browser posted to from another site changes nothing.
    let forged = http
        .post(format!("{base}/dashboard/logout"))
        .header("cookie", &session)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        dashboard_status(&http, &base, &session).await,
        StatusCode::OK,
        "still logged in"
    );
    // Without Origin and Referer, posts other than the login go on (their form token guards
    // those that change anything).
    let out = http
        .post(format!("{base}/dashboard/logout"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(
        set_cookie(&out, "pgforce_session").contains("Max-Age=0"),
        "{:?}",
        out.headers()
    );
    assert_eq!(
        dashboard_status(&http, &base, &session).await,
        StatusCode::SEE_OTHER,
        "logged out"
    );
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn over_tls_the_session_cookie_is_secure_and_host_prefixed_and_logout_clears_it() {
    let org = seeded_org(2).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, READ_WRITE_ACCOUNTS);
    let path = config.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("{}-tls", db.name));
    let (cert, cert_path, key_path) = crate::listener::tls_files(&dir);
    let (_daemon, base) = serving_with(
        path,
        &[
            ("PGFORCE_TLS_CERT", cert_path.to_str().unwrap()),
            ("PGFORCE_TLS_KEY", key_path.to_str().unwrap()),
        ],
    )
    .await;
    assert!(base.starts_with("https://"), "{base}");
    let token = pgforce_ok(&[
        "token", "--config", path, "create", "--name", "p", "--role", "view",
    ])
    .await
    .trim()
    .to_owned();
    let http = client(Some(&cert));

    let (login_cookie, _) = login_form(&http, &base).await;
    assert!(
        login_cookie.starts_with("__Host-pgforce_login="),
        "{login_cookie}"
    );
    let login = log_in(&http, &base, &token, Some(&base)).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let set = set_cookie(&login, "__Host-pgforce_session");
    assert!(
        set.contains("; Path=/;")
            && set.contains("Secure")
            && set.contains("HttpOnly")
            && set.contains("SameSite=Strict")
            && !set.contains("Domain"),
        "{set}"
    );
    assert_eq!(
        set_cookie(&login, "pgforce_session"),
        "",
        "no plain-named cookie over TLS"
    );
    let session = set.split(';').next().unwrap().to_owned();
    assert_eq!(
        dashboard_status(&http, &base, &session).await,
        StatusCode::OK
    );
    // The plain name is not read over TLS.
    let plain = session.replace("__Host-pgforce_session", "pgforce_session");
    assert_eq!(
        dashboard_status(&http, &base, &plain).await,
        StatusCode::SEE_OTHER
    );

    let out = http
        .post(format!("{base}/dashboard/logout"))
        .header("cookie", &session)
        .header("origin", &base)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let cleared = set_cookie(&out, "__Host-pgforce_session");
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("Secure") && cleared.contains("Path=/;"),
        "{cleared}"
    );
    assert_eq!(
        dashboard_status(&http, &base, &session).await,
        StatusCode::SEE_OTHER,
        "the session ended"
    );
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(config);
}

/// Adds a token named `name` expiring `expires` from now (`null`: never), revoked if
/// asked, with one dashboard session expiring `session_expires` from now.
async fn token_with_session(
    db: &TestDatabase,
    name: &str,
    expires: Option<&str>,
    revoked: bool,
    session_expires: &str,
) {
    db.client()
        .await
        .execute(
            "with t as (
                 insert into pgforce.api_tokens (name, role, token_sha256, expires_at, revoked_at)
                 values ($1, 'view', sha256($1::text::bytea), now() + $2::text::interval,
                         case when $3 then now() end)
                 returning id)
             insert into pgforce.dashboard_sessions (id_sha256, token_id, csrf, expires_at)
             select sha256(('session of ' || $1)::bytea), id, 'csrf', now() + $4::text::interval
             from t",
            &[&name, &expires, &revoked, &session_expires],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn run_deletes_expired_sessions_consents_and_diagnoses_and_keeps_live_ones() {
    let org = seeded_org(2).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNT_MAPPING);
    token_with_session(&db, "live", None, false, "1 hour").await;
    token_with_session(&db, "live-expired-session", None, false, "-1 minute").await;
    token_with_session(&db, "expired-token", Some("-1 minute"), false, "1 hour").await;
    token_with_session(&db, "revoked-token", None, true, "1 hour").await;
    let pg = db.client().await;
    pg.batch_execute(
        "insert into pgforce.authorizations (state, code_verifier, redirect_uri, created_at)
         values ('fresh', 'v', 'http://x/oauth/callback', now() - interval '10 minutes'),
                ('stale', 'v', 'http://x/oauth/callback', now() - interval '61 minutes');
         insert into pgforce.connections (name, schema_name) values ('elsewhere', 'elsewhere');
         insert into pgforce.validations (connection_id, result, created_at)
         select id, '{\"age\": \"fresh\"}'::jsonb, now() - interval '1 hour' from pgforce.connections
         union all
         select id, '{\"age\": \"stale\"}'::jsonb, now() - interval '25 hours' from pgforce.connections",
    )
    .await
    .unwrap();

    let daemon = pgforce(&["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(
        &db,
        "select count(*) from pgforce.authorizations where state = 'stale'",
        0,
    )
    .await;
    wait_for_count(&db, "select count(*) from pgforce.dashboard_sessions", 1).await;
    wait_for_count(
        &db,
        "select count(*) from pgforce.validations where result->>'age' = 'stale'",
        0,
    )
    .await;
    stop(daemon).await;

    let live_session = count(
        &db,
        "select count(*) from pgforce.dashboard_sessions s join pgforce.api_tokens t on t.id = s.token_id where t.name = 'live'",
    )
    .await;
    assert_eq!(live_session, 1, "a live token's live session stays");
    assert_eq!(
        count(
            &db,
            "select count(*) from pgforce.authorizations where state = 'fresh'"
        )
        .await,
        1,
        "a consent younger than an hour stays"
    );
    assert_eq!(
        count(
            &db,
            "select count(*) from pgforce.validations where result->>'age' = 'fresh'"
        )
        .await,
        1,
        "a diagnosis younger than a day stays"
    );
    assert_eq!(
        count(&db, "select count(*) from pgforce.api_tokens").await,
        4,
        "tokens themselves stay (listed, audited)"
    );
    let _ = std::fs::remove_file(config);
}

/// The audit entries of `action`, oldest first: (actor, target, before, after) as JSON.
async fn audited(db: &TestDatabase, action: &str) -> Vec<(String, String, Value, Value)> {
    db.client()
        .await
        .query(
            "select actor, target, coalesce(before, 'null')::text, coalesce(after, 'null')::text
             from pgforce.audit_log where action = $1 order by id",
            &[&action],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let json = |i: usize| serde_json::from_str(r.get::<_, &str>(i)).unwrap();
            (r.get(0), r.get(1), json(2), json(3))
        })
        .collect()
}

#[tokio::test]
async fn connection_changes_and_refusals_are_audited_without_secrets_and_anonymous_junk_is_not() {
    let org = seeded_org(2).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, "");
    let path = config.to_str().unwrap();
    let key = pgforce_ok(&["key", "generate"]).await.trim().to_owned();
    let (_daemon, base) = serving_with(path, &[("PGFORCE_SECRET_KEY", &key)]).await;
    let admin = token(path, "admin", "manage", &[]).await;
    let viewer = token(path, "watcher", "view", &[]).await;
    let connections = "/api/v3/connections";
    let created = json!({
        "name": "second", "schema_name": "second", "login_url": org.http_url, "auth": "password",
        "username": "admin@example.com", "password": pgforce_emulator::DEFAULT_PASSWORD,
        "client_id": "pgforce", "client_secret": "pgforce"});
    let (status, answer) = call(
        &base,
        Method::POST,
        connections,
        Some(&admin),
        Some(&created),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let this = format!("{connections}/{}", answer["id"].as_str().unwrap());

    // A change: the non-secret settings before and after, the secrets by name only.
    let change = json!({"api_version": "61.0", "password": pgforce_emulator::DEFAULT_PASSWORD});
    let (status, answer) = call(&base, Method::PATCH, &this, Some(&admin), Some(&change)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let updates = audited(&db, "connection.update").await;
    assert_eq!(updates.len(), 1, "{updates:?}");
    let (actor, target, before, after) = &updates[0];
    assert_eq!(
        (actor.as_str(), target.as_str()),
        ("admin", "connection second")
    );
    assert_eq!(before["api_version"], "62.0", "{before}");
    assert_eq!(after["api_version"], "61.0", "{after}");
    for shown in [before, after] {
        assert!(shown.get("password").is_none(), "{shown}");
        assert_eq!(shown["login_url"], org.http_url.as_str(), "{shown}");
        assert_eq!(shown["schema"], "second", "{shown}");
        assert_eq!(shown["client_id"], "pgforce", "{shown}");
        assert!(shown.get("pubsub_endpoint").is_some(), "{shown}");
    }
    assert_eq!(
        after["changed"],
        json!(["api_version", "password"]),
        "{after}"
    );

    // A refused change: what was asked (secrets redacted) and why.
    let wrong = "hunter2-not-the-password";
    let refused_change = json!({"api_version": "60.0", "password": wrong});
    for _ in 0..2 {
        let (status, answer) = call(
            &base,
            Method::PATCH,
            &this,
            Some(&admin),
            Some(&refused_change),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    }
    let refusals = audited(&db, "connection.update.refused").await;
    assert_eq!(
        refusals.len(),
        1,
        "a repeat is counted, not added: {refusals:?}"
    );
    let (actor, target, _, detail) = &refusals[0];
    assert_eq!(
        (actor.as_str(), target.as_str()),
        ("admin", "connection second")
    );
    assert_eq!(detail["asked"]["api_version"], "60.0", "{detail}");
    assert_eq!(detail["asked"]["password"], "[redacted]", "{detail}");
    assert_eq!(detail["attempts"], 2, "{detail}");
    assert!(
        detail["reason"]
            .as_str()
            .unwrap()
            .contains("refused the credentials"),
        "{detail}"
    );
    // (The emulator's password is "pgforce", as the client id: the wrong one stands out.)
    let leaked = count(
        &db,
        &format!("select count(*) from pgforce.audit_log where coalesce(before::text, '') || coalesce(after::text, '') like '%{wrong}%'"),
    )
    .await;
    assert_eq!(leaked, 0, "no secret in the audit trail");

    // A live token whose role is too low: recorded against the route, repeats counted.
    let pause = format!("{this}/actions/pause");
    for _ in 0..3 {
        let (status, _) = call(&base, Method::POST, &pause, Some(&viewer), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let denied = audited(&db, "access.denied").await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    let (actor, target, _, detail) = &denied[0];
    assert_eq!(actor, "watcher");
    assert_eq!(target, "POST /api/v3/connections/{id}/actions/pause");
    assert_eq!(detail["attempts"], 3, "{detail}");
    assert_eq!(
        (detail["role"].as_str(), detail["needs"].as_str()),
        (Some("view"), Some("operate"))
    );

    // The dashboard's pages for higher roles too.
    let http = client(None);
    let login = log_in(&http, &base, &viewer, Some(&base)).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let session = set_cookie(&login, "pgforce_session");
    let session = session.split(';').next().unwrap();
    let editor = http
        .get(format!("{base}/dashboard/mappings/new?connection=1"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(editor.status(), StatusCode::FORBIDDEN);
    let denied = audited(&db, "access.denied").await;
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert_eq!(
        (denied[1].0.as_str(), denied[1].1.as_str()),
        ("watcher", "GET /dashboard/mappings/new")
    );

    // Anyone's unknown or missing token adds nothing.
    let entries = count(&db, "select count(*) from pgforce.audit_log").await;
    for bearer in [Some("pgf_junk"), None] {
        let (status, _) = call(&base, Method::POST, &pause, bearer, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let junk = log_in(&http, &base, "pgf_junk", Some(&base)).await;
    assert_eq!(junk.status(), StatusCode::UNAUTHORIZED, "a dashboard login");
    assert_eq!(
        count(&db, "select count(*) from pgforce.audit_log").await,
        entries
    );
    let _ = std::fs::remove_file(config);
}
