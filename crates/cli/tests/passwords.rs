//! Database passwords never reach the output: whatever form the connection string takes
//! (URL credentials, a `password` URL parameter, libpq keyword/value pairs, quoted or
//! not), and whether the server refuses the login or nothing listens at all.

use std::path::PathBuf;
use std::time::Duration;

use crate::run::pgforce;

/// A config whose `[database] url` is `url` (the org is never reached: opening the
/// catalog fails first).
fn config_with_database(name: &str, url: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "pgforce-passwords-{name}-{}.toml",
        std::process::id()
    ));
    let text = format!(
        r#"[database]
url = {url}

[security]
allowed_login_hosts = ["127.0.0.1:1"]

[[connection]]
name = "main"
login_url = "http://127.0.0.1:1"
auth = "password"
username = "admin@example.com"
password = "x"
client_id = "pgforce"
client_secret = "pgforce"

[[connection.mapping]]
object = "Account"
access = "read_only"
fields = ["Name"]
"#,
        // A JSON string is a TOML basic string.
        url = serde_json::to_string(url).unwrap()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `command` (expected to fail) with debug logging; returns stdout and stderr.
async fn failing(mut command: tokio::process::Command) -> (String, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        command.env("RUST_LOG", "debug").output(),
    )
    .await
    .expect("a database that cannot be reached fails fast")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "should fail:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

fn assert_hidden(secret: &str, stdout: &str, stderr: &str) {
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "the password {secret:?} was shown:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[tokio::test]
async fn status_never_shows_the_database_password_in_any_form() {
    // (name, connection string, its password, how the string is shown, why it failed)
    let cases = [
        (
            "keyword-closed-port",
            "host=127.0.0.1 port=1 user=app password='Kw s3cret-4417' dbname=app",
            "s3cret-4417",
            "host=127.0.0.1 port=1 user=app password=*** dbname=app",
            "Connection refused",
        ),
        (
            "keyword-refused-login",
            "host=127.0.0.1 user=pgforce_no_such_role password=Kw-refused-8821 dbname=postgres sslmode=disable",
            "Kw-refused-8821",
            "user=pgforce_no_such_role password=*** dbname=postgres",
            "pgforce_no_such_role",
        ),
        (
            "url-parameter",
            "postgres://pgforce_no_such_role@127.0.0.1/postgres?sslmode=disable&password=Url-param-5520",
            "Url-param-5520",
            "?sslmode=disable&password=***",
            "pgforce_no_such_role",
        ),
        (
            "url-credentials",
            "postgres://app:Url-cred-3391@127.0.0.1:1/app",
            "Url-cred-3391",
            "postgres://app:***@127.0.0.1:1/app",
            "Connection refused",
        ),
    ];
    for (name, url, secret, shown, cause) in cases {
        let config = config_with_database(name, url);
        let (stdout, stderr) =
            failing(pgforce(&["status", "--config", config.to_str().unwrap()])).await;
        assert_hidden(secret, &stdout, &stderr);
        assert!(
            stderr.contains("opening the catalog at") && stderr.contains(shown),
            "{name}: the string is named, redacted ({shown:?}):\n{stderr}"
        );
        assert!(
            stderr.contains(cause),
            "{name}: the cause is named:\n{stderr}"
        );
        let _ = std::fs::remove_file(config);
    }
}

#[tokio::test]
async fn database_url_from_the_environment_is_hidden_too() {
    let config = config_with_database("env", "postgres://postgres@127.0.0.1/postgres");
    let url = "host=127.0.0.1 port=1 user=app password=Env-s3cret-6604";
    let (stdout, stderr) = failing({
        let mut command = pgforce(&["status", "--config", config.to_str().unwrap()]);
        command.env("DATABASE_URL", url);
        command
    })
    .await;
    assert_hidden("Env-s3cret-6604", &stdout, &stderr);
    assert!(stderr.contains("password=***"), "{stderr}");
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn demo_never_shows_the_database_password() {
    let url = "host=127.0.0.1 port=1 user=app password='Demo s3cret-7731'";
    let (stdout, stderr) = failing(pgforce(&["demo", "--exit", "--database-url", url])).await;
    assert_hidden("s3cret-7731", &stdout, &stderr);
    assert!(
        stderr.contains("connecting to PostgreSQL at host=127.0.0.1 port=1 user=app password=***"),
        "{stderr}"
    );
}
