//! Two connections cannot sync into one schema: the second is refused with an error
//! naming both connections and the schema, not a raw unique violation.

use std::process::Stdio;
use std::time::Duration;

use pgforce_store::testing::TestDatabase;

use crate::run::{ACCOUNT_MAPPING, config_file, count, pgforce, seeded_org, stop, wait_for_count};

/// A `[[connection]]` named `name` on schema `salesforce` of the org at `login_url`.
fn connection(name: &str, login_url: &str) -> String {
    format!(
        r#"
[[connection]]
name = "{name}"
schema = "salesforce"
login_url = "{login_url}"
auth = "password"
username = "admin@example.com"
password = "${{PGFORCE_TEST_SF_PASSWORD}}"
client_id = "pgforce"
client_secret = "pgforce"

[[connection.mapping]]
object = "Contact"
access = "read_only"
fields = ["LastName"]
"#
    )
}

/// Runs `pgforce run` on `config` expecting it to fail; returns stderr.
async fn failing_run(config: &std::path::Path) -> String {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        pgforce(&["run", "--config", config.to_str().unwrap()]).output(),
    )
    .await
    .expect("a schema conflict fails fast")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "should fail:\n{stderr}");
    stderr
}

fn assert_names_both(stderr: &str, owner: &str, claimant: &str) {
    let expected = format!(
        "connection {claimant}: schema salesforce already belongs to connection {owner}; give connection {claimant} its own schema"
    );
    assert!(
        stderr.contains(&expected),
        "{stderr:?} should say {expected:?}"
    );
    assert!(
        !stderr.contains("duplicate key") && !stderr.contains("23505"),
        "no raw unique violation: {stderr}"
    );
}

#[tokio::test]
async fn two_connections_of_one_file_on_one_schema_are_refused_naming_both() {
    let org = seeded_org(3).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNT_MAPPING);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&connection("second", &org.http_url));
    std::fs::write(&config, text).unwrap();

    let stderr = failing_run(&config).await;

    assert_names_both(&stderr, "main", "second");
    assert_eq!(
        count(
            &db,
            "select count(*) from pgforce.connections where name = 'second'"
        )
        .await,
        0,
        "the refused connection is not registered"
    );
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_connection_claiming_a_schema_another_config_registered_is_refused() {
    let org = seeded_org(3).await;
    let db = TestDatabase::create().await;
    let first = config_file(&org, &db, ACCOUNT_MAPPING);
    let daemon = pgforce(&["run", "--config", first.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", 3).await;
    stop(daemon).await;

    // Another deployment's file, with its own connection on the same database and schema.
    let text = std::fs::read_to_string(&first).unwrap();
    let database = &text[..text.find("[[connection]]").unwrap()];
    let other = first.with_extension("other.toml");
    std::fs::write(
        &other,
        format!("{database}{}", connection("other", &org.http_url)),
    )
    .unwrap();

    let stderr = failing_run(&other).await;

    assert_names_both(&stderr, "main", "other");
    assert_eq!(
        count(&db, "select count(*) from salesforce.account").await,
        3,
        "the first connection's table is untouched"
    );
    let _ = std::fs::remove_file(first);
    let _ = std::fs::remove_file(other);
}
