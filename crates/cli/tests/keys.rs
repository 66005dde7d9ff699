//! The operator's keys: `pgforce key rotate` loses no change made while it runs and
//! leaves nothing under the old key, consents in progress included; processes given
//! several keys (the sealing one first) open what any of them sealed, so they switch one
//! at a time; sealed values are bound to their connection (bytes copied to another row do
//! not open there), and values sealed before binding still open and are bound when sealed
//! again.
//!
//! The tests open and seal catalog values themselves, with ring, as docs/api.md describes
//! the format: that is an outside check of what pgforce writes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pgforce_store::testing::TestDatabase;
use reqwest::{Method, StatusCode};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde_json::{Value, json};

use crate::api::{Keyed, add_account_mapping, call, keyed, token, with_key};
use crate::oauth::Browser;
use crate::run::{config_file, pgforce, pgforce_ok, seeded_org, stop, wait_for_count};
use crate::server::serving_with;

/// The leading byte of a value sealed bound to its owner.
const BOUND_FORMAT: u8 = 2;

fn aead(key: &str) -> LessSafeKey {
    let bytes = STANDARD.decode(key).unwrap();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes).unwrap())
}

/// The fingerprint pgforce keeps beside a value `key` sealed.
fn fingerprint(key: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, &STANDARD.decode(key).unwrap());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Opens `sealed` with `key` and `aad`: nonce || ciphertext || tag.
fn open_with(key: &str, sealed: &[u8], aad: &[u8]) -> Option<Value> {
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let mut buffer = ciphertext.to_vec();
    let plaintext = aead(key)
        .open_in_place(
            Nonce::try_assume_unique_for_key(nonce).unwrap(),
            Aad::from(aad),
            &mut buffer,
        )
        .ok()?;
    Some(serde_json::from_slice(plaintext).unwrap())
}

/// The secrets of connection `id`, opened as bound to it with `key`; `None` unless the
/// value is in the bound format and opens so.
fn open_bound(key: &str, id: i64, sealed: &[u8]) -> Option<Value> {
    let (&BOUND_FORMAT, rest) = sealed.split_first()? else {
        return None;
    };
    open_with(
        key,
        rest,
        format!("pgforce:connection:{id}:secrets").as_bytes(),
    )
}

/// The secrets of connection `id` opened with `key`, bound or (as before binding) not.
fn open_any(key: &str, id: i64, sealed: &[u8]) -> Value {
    open_bound(key, id, sealed)
        .or_else(|| open_with(key, sealed, &[]))
        .unwrap_or_else(|| panic!("the secrets of connection {id} do not open with the key"))
}

/// `secrets` sealed as pgforce sealed them before binding: nonce || ciphertext || tag,
/// no associated data.
fn seal_unbound(key: &str, secrets: &Value) -> Vec<u8> {
    let nonce = [7_u8; NONCE_LEN];
    let mut buffer = serde_json::to_vec(secrets).unwrap();
    aead(key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut buffer,
        )
        .unwrap();
    [nonce.as_slice(), &buffer].concat()
}

/// A connection on the org with the password flow, for the API.
fn password_connection(name: &str, login_url: &str) -> Value {
    json!({
        "name": name, "schema_name": name, "login_url": login_url,
        "auth": "password", "username": "admin@example.com",
        "password": pgforce_emulator::DEFAULT_PASSWORD,
        "client_id": "pgforce", "client_secret": "pgforce"})
}

/// Creates `body` through the API; returns its id.
async fn create(base: &str, admin: &str, body: &Value) -> i64 {
    let (status, created) = call(
        base,
        Method::POST,
        "/api/v3/connections",
        Some(admin),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().unwrap().parse().unwrap()
}

/// PATCHes connection `id` through the API.
async fn patch(base: &str, admin: &str, id: i64, body: &Value) -> (StatusCode, Value) {
    call(
        base,
        Method::PATCH,
        &format!("/api/v3/connections/{id}"),
        Some(admin),
        Some(body),
    )
    .await
}

/// The sealed secrets of every API-created connection: `(id, name, key fingerprint,
/// bytes)`, by name.
async fn sealed_rows(db: &TestDatabase) -> Vec<(i64, String, String, Vec<u8>)> {
    db.client()
        .await
        .query(
            "select id, name, secrets_key, secrets from pgforce.connections
             where secrets is not null order by name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

/// Writes a new key to a file named after the test database; returns the key and path.
async fn new_key_file(db: &TestDatabase) -> (String, std::path::PathBuf) {
    let key = pgforce_ok(&["key", "generate"]).await.trim().to_owned();
    let path = std::env::temp_dir().join(format!("{}.key", db.name));
    std::fs::write(&path, &key).unwrap();
    (key, path)
}

#[tokio::test]
async fn a_rotation_loses_no_change_made_while_it_runs_and_leaves_nothing_under_the_old_key() {
    let org = seeded_org(1).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, "");
    let path = config.to_str().unwrap();
    let old = pgforce_ok(&["key", "generate"]).await.trim().to_owned();
    let (daemon, base) = serving_with(path, &[("PGFORCE_SECRET_KEY", &old)]).await;
    let admin = token(path, "provisioning", "manage", &[]).await;
    create(&base, &admin, &password_connection("aa", &org.http_url)).await;
    let changed = create(&base, &admin, &password_connection("bb", &org.http_url)).await;

    // The rotation reads every connection, then stops at the first one: this session
    // holds its row.
    let mut holder = db.client().await;
    let held = holder.transaction().await.unwrap();
    held.execute(
        "select 1 from pgforce.connections where name = 'aa' for update",
        &[],
    )
    .await
    .unwrap();
    let (new, new_file) = new_key_file(&db).await;
    let rotation = pgforce(&[
        "key",
        "rotate",
        "--config",
        path,
        "--new-key-file",
        new_file.to_str().unwrap(),
    ])
    .env("PGFORCE_SECRET_KEY", &old)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let started = Instant::now();
    let watcher = db.client().await;
    loop {
        let waiting: i64 = watcher
            .query_one(
                "select count(*) from pg_stat_activity
                 where datname = current_database() and wait_event_type = 'Lock'
                   and query like '%set secrets%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the rotation never reached the held row"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Meanwhile a process still on the old key changes one connection's credentials and
    // creates another.
    let (status, answer) = patch(
        &base,
        &admin,
        changed,
        &json!({"refresh_token": "changed-during-rotation"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    create(&base, &admin, &password_connection("cc", &org.http_url)).await;
    held.commit().await.unwrap();
    let output = rotation.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stop(daemon).await;

    let rows = sealed_rows(&db).await;
    let (_, _, _, sealed) = rows.iter().find(|(id, ..)| *id == changed).unwrap();
    assert_eq!(
        open_any(&new, changed, sealed)["refresh_token"],
        "changed-during-rotation",
        "the change made during the rotation is kept"
    );
    assert_eq!(rows.len(), 3);
    for (id, name, key, sealed) in &rows {
        assert_eq!(
            key,
            &fingerprint(&new),
            "{name} is sealed under the new key"
        );
        assert!(
            open_bound(&new, *id, sealed).is_some(),
            "{name} opens with the new key, bound to it"
        );
    }
    let _ = std::fs::remove_file(new_file);
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_consent_started_before_a_rotation_is_finished_after_it_with_the_new_key() {
    let org = seeded_org(1).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, "");
    let path = config.to_str().unwrap();
    let old = pgforce_ok(&["key", "generate"]).await.trim().to_owned();
    let (daemon, base) = serving_with(path, &[("PGFORCE_SECRET_KEY", &old)]).await;
    let admin = token(path, "provisioning", "manage", &[]).await;
    let consented = json!({
        "name": "consented", "schema_name": "consented", "login_url": org.http_url,
        "auth": "refresh_token", "client_id": "pgforce", "client_secret": "pgforce"});
    let (status, started) = call(
        &base,
        Method::POST,
        "/api/v3/connections",
        Some(&admin),
        Some(&consented),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let mut browser = Browser::new();
    let opened = browser
        .open_start(started["redirect"].as_str().unwrap())
        .await;
    let consent_page = opened
        .location
        .expect("the start link sends the browser on");
    let back = browser.decide(&consent_page, "allow").await;
    stop(daemon).await;

    let (new, new_file) = new_key_file(&db).await;
    let rotated = with_key(
        &[
            "key",
            "rotate",
            "--config",
            path,
            "--new-key-file",
            new_file.to_str().unwrap(),
        ],
        &old,
    )
    .await;
    let said = String::from_utf8_lossy(&rotated.stdout);
    assert!(
        rotated.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&rotated.stderr)
    );

    // The person comes back to a process that holds only the new key.
    let (_daemon, base_now) = serving_with(path, &[("PGFORCE_SECRET_KEY", &new)]).await;
    let back = back.replacen(&base, &base_now, 1);
    let answer = browser.get(&back).await;
    let (status, page) = (answer.status, answer.text);
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("is authorized"), "{page}");
    let rows = sealed_rows(&db).await;
    assert_eq!(
        rows.iter()
            .map(|(_, name, key, _)| (name.as_str(), key.clone()))
            .collect::<Vec<_>>(),
        [("consented", fingerprint(&new))]
    );
    assert!(said.contains("of 1 consent(s) in progress"), "{said}");
    let _ = std::fs::remove_file(new_file);
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn processes_given_several_keys_open_what_any_sealed_so_they_switch_one_at_a_time() {
    let org = seeded_org(2).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, "");
    let path = config.to_str().unwrap();
    let old = pgforce_ok(&["key", "generate"]).await.trim().to_owned();
    let new = pgforce_ok(&["key", "generate"]).await.trim().to_owned();
    let (daemon, base) = serving_with(path, &[("PGFORCE_SECRET_KEY", &old)]).await;
    let admin = token(path, "provisioning", "manage", &[]).await;
    let id = create(&base, &admin, &password_connection("aa", &org.http_url)).await;
    add_account_mapping(&base, &id, &admin).await;
    wait_for_count(&db, "select count(*) from aa.account", 2).await;
    stop(daemon).await;
    let reload = [
        "reload",
        "--config",
        path,
        "--connection",
        "aa",
        "--now",
        "Account",
    ];
    let runs = |keys: String| async move { with_key(&reload, &keys).await.status.success() };

    // During the switch: new processes seal with the new key and open the old one's.
    assert!(
        runs(format!("{new},{old}")).await,
        "new key first, old listed"
    );
    // The rotation seals under the first key of the environment.
    let rotated = with_key(
        &["key", "rotate", "--config", path],
        &format!("{new}\n{old}\n"),
    )
    .await;
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let rows = sealed_rows(&db).await;
    assert_eq!(rows[0].2, fingerprint(&new));
    // Processes not switched yet (old key first, new listed) open what it sealed.
    assert!(
        runs(format!("{old} {new}")).await,
        "old key first, new listed"
    );
    assert!(runs(new.clone()).await, "the new key alone");
    assert!(!runs(old.clone()).await, "the old key alone opens nothing");
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn sealed_secrets_copied_to_another_connection_do_not_open_there() {
    let Keyed {
        org,
        db,
        config,
        key,
        daemon,
        base,
        admin,
    } = keyed(1).await;
    let path = config.to_str().unwrap();
    let source = create(&base, &admin, &password_connection("aa", &org.http_url)).await;
    let target = create(&base, &admin, &password_connection("bb", &org.http_url)).await;
    stop(daemon).await;
    db.client()
        .await
        .execute(
            "update pgforce.connections as target set secrets = source.secrets,
                 secrets_key = source.secrets_key
             from pgforce.connections as source where source.id = $1 and target.id = $2",
            &[&source, &target],
        )
        .await
        .unwrap();

    // A process that did not create them reads them from the catalog.
    let (_daemon, base) = serving_with(path, &[("PGFORCE_SECRET_KEY", &key)]).await;
    let change = json!({"api_version": "61.0"});
    let (status, answer) = patch(&base, &admin, source, &change).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = patch(&base, &admin, target, &change).await;
    assert!(status.is_client_error(), "{status} {answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("cannot open its secrets"),
        "{answer}"
    );

    // A rotation opens every value before it writes any: it stops, naming the copy, and
    // leaves the others as they were.
    let before = sealed_rows(&db).await;
    let (_, new_file) = new_key_file(&db).await;
    let output = with_key(
        &[
            "key",
            "rotate",
            "--config",
            path,
            "--new-key-file",
            new_file.to_str().unwrap(),
        ],
        &key,
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("connection bb") && stderr.contains("copied"),
        "{stderr}"
    );
    assert_eq!(sealed_rows(&db).await, before, "nothing was sealed again");
    let _ = std::fs::remove_file(new_file);
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn secrets_sealed_before_binding_still_open_and_are_bound_when_sealed_again() {
    let Keyed {
        org,
        db,
        config,
        key,
        daemon,
        base,
        admin,
    } = keyed(1).await;
    let path = config.to_str().unwrap();
    let changed = create(&base, &admin, &password_connection("aa", &org.http_url)).await;
    let rotated = create(&base, &admin, &password_connection("bb", &org.http_url)).await;
    stop(daemon).await;
    let secrets = json!({
        "password": pgforce_emulator::DEFAULT_PASSWORD, "client_secret": "pgforce",
        "refresh_token": null, "private_key": null, "ca_certificate": null});
    let pg = db.client().await;
    for id in [changed, rotated] {
        pg.execute(
            "update pgforce.connections set secrets = $2 where id = $1",
            &[&id, &seal_unbound(&key, &secrets)],
        )
        .await
        .unwrap();
    }

    // They open in a process that reads them from the catalog, and a change binds them.
    let (daemon, base) = serving_with(path, &[("PGFORCE_SECRET_KEY", &key)]).await;
    let (status, answer) = patch(&base, &admin, changed, &json!({"api_version": "61.0"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    stop(daemon).await;
    // A rotation binds the others.
    let (new, new_file) = new_key_file(&db).await;
    let output = with_key(
        &[
            "key",
            "rotate",
            "--config",
            path,
            "--new-key-file",
            new_file.to_str().unwrap(),
        ],
        &key,
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (id, name, _, sealed) in sealed_rows(&db).await {
        let opened = open_bound(&new, id, &sealed)
            .unwrap_or_else(|| panic!("{name} is sealed bound to its connection"));
        assert_eq!(opened["password"], pgforce_emulator::DEFAULT_PASSWORD);
    }
    let _ = std::fs::remove_file(new_file);
    let _ = std::fs::remove_file(config);
}
