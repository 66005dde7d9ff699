//! Where pgforce writes: stdout carries only a command's output, logs go to stderr,
//! coloured only on a terminal, and as one JSON object per line with `--log-format json`.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use pgforce_emulator::testing::TestOrg;
use pgforce_store::testing::TestDatabase;

use crate::run::{ACCOUNT_MAPPING, config_file, pgforce, seeded_org, stop, wait_for_count};

const ANSI_ESCAPE: &str = "\x1b[";

/// An org with 20 Accounts, synced into a database by a `pgforce run` that has stopped.
async fn synced() -> (TestOrg, TestDatabase, PathBuf) {
    let org = seeded_org(20).await;
    let db = TestDatabase::create().await;
    let config = config_file(&org, &db, ACCOUNT_MAPPING);
    let daemon = pgforce(&["run", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_count(&db, "select count(*) from salesforce.account", 20).await;
    stop(daemon).await;
    (org, db, config)
}

/// Runs `pgforce status` with info logs (it logs in to Salesforce) and `extra` arguments.
async fn status(config: &std::path::Path, extra: &[&str]) -> Output {
    let mut args = vec!["status", "--config", config.to_str().unwrap()];
    args.extend(extra);
    tokio::time::timeout(
        Duration::from_secs(60),
        pgforce(&args).env("RUST_LOG", "info").output(),
    )
    .await
    .expect("pgforce status answers")
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses every line of `stderr` as a JSON object with the envelope log shippers need.
fn json_lines(stderr: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    assert!(!stderr.trim().is_empty(), "there are log lines");
    stderr
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nstderr:\n{stderr}"));
            let object = value.as_object().cloned().expect("each line is an object");
            for key in ["timestamp", "level", "target", "message"] {
                assert!(
                    object.get(key).and_then(|v| v.as_str()).is_some(),
                    "{key} missing in {line}"
                );
            }
            object
        })
        .collect()
}

#[tokio::test]
async fn status_prints_only_its_table_on_stdout() {
    let (_org, _db, config) = synced().await;
    let output = status(&config, &[]).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");

    assert!(
        stdout.starts_with("CONNECTION"),
        "stdout starts with the table's header:\n{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("main") && l.contains("Account")),
        "{stdout}"
    );
    assert!(!stdout.contains(ANSI_ESCAPE), "{stdout:?}");
    assert!(
        !stdout.contains("logged in") && !stdout.contains("INFO"),
        "no log line on stdout:\n{stdout}"
    );
    // The log line is there, on stderr, without colour codes (stderr is a pipe here).
    assert!(stderr.contains("logged in to salesforce"), "{stderr}");
    assert!(!stderr.contains(ANSI_ESCAPE), "{stderr:?}");
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn logs_are_coloured_only_on_a_terminal_and_never_with_no_color() {
    let (_org, _db, config) = synced().await;
    // `script` gives the command a terminal; stdout goes to /dev/null, stderr is captured.
    let on_terminal = |no_color: Option<&str>| {
        let line = format!(
            "'{}' status --config '{}' > /dev/null",
            env!("CARGO_BIN_EXE_pgforce"),
            config.display()
        );
        let mut command = tokio::process::Command::new("script");
        command
            .args(["--quiet", "--return", "--command", &line, "/dev/null"])
            .env(
                "PGFORCE_TEST_SF_PASSWORD",
                pgforce_emulator::DEFAULT_PASSWORD,
            )
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(value) = no_color {
            command.env("NO_COLOR", value);
        }
        async move {
            let output = tokio::time::timeout(Duration::from_secs(60), command.output())
                .await
                .expect("pgforce status answers")
                .expect("script (util-linux) runs");
            assert!(output.status.success(), "{}", text(&output.stdout));
            text(&output.stdout)
        }
    };

    let coloured = on_terminal(None).await;
    assert!(coloured.contains("logged in to salesforce"), "{coloured}");
    assert!(
        coloured.contains(ANSI_ESCAPE),
        "a terminal gets colour: {coloured:?}"
    );

    let plain = on_terminal(Some("1")).await;
    assert!(plain.contains("logged in to salesforce"), "{plain}");
    assert!(
        !plain.contains(ANSI_ESCAPE),
        "NO_COLOR is honoured: {plain:?}"
    );
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn log_format_json_writes_one_object_per_line_on_stderr() {
    let (_org, _db, config) = synced().await;
    let output = status(&config, &["--log-format", "json"]).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");

    let lines = json_lines(&stderr);
    let login = lines
        .iter()
        .find(|l| l["message"] == "logged in to salesforce")
        .unwrap_or_else(|| panic!("the login is logged:\n{stderr}"));
    assert_eq!(login["level"], "INFO");
    assert_eq!(login["target"], "pgforce_salesforce::auth");
    assert!(
        login["login_url"].as_str().is_some(),
        "fields are keys of the object: {login:?}"
    );
    assert!(
        stdout.starts_with("CONNECTION"),
        "stdout is the table:\n{stdout}"
    );
    assert!(!stdout.contains('{'), "{stdout}");
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn under_json_logs_a_failing_command_ends_with_a_json_error_line() {
    let db = TestDatabase::create().await;
    let org = TestOrg::start().await;
    let config = config_file(&org, &db, ACCOUNT_MAPPING);
    let output = pgforce(&["status", "--config", config.to_str().unwrap()])
        .env("PGFORCE_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .env("DATABASE_URL", "postgres://app@127.0.0.1:1/app")
        .output()
        .await
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");

    let lines = json_lines(&stderr);
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{stderr}");
    let error = last["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("opening the catalog at") && error.contains("Connection refused"),
        "the error and its causes: {error}"
    );
    let _ = std::fs::remove_file(config);
}
