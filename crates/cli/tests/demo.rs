//! `pgforce demo --exit` syncs a seeded org into Postgres and shows an edit arriving;
//! `pgforce demo` serves its dashboard and API with a view token it prints.

use pgforce_store::testing::TestDatabase;

use crate::run::pgforce_ok;

#[tokio::test]
async fn demo_loads_the_org_and_shows_an_edit_arriving() {
    let db = TestDatabase::create().await;
    let stdout = pgforce_ok(&[
        "demo",
        "--exit",
        "--database-url",
        &db.url,
        "--listen",
        "127.0.0.1:0",
    ])
    .await;
    assert!(
        stdout.contains("2000 rows loaded into salesforce.account"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Salesforce → Postgres latency:"),
        "{stdout}"
    );
    let pg = db.client().await;
    for (table, expected) in [
        ("account", 2000_i64),
        ("contact", 5000),
        ("opportunity", 3000),
    ] {
        let count: i64 = pg
            .query_one(&format!("select count(*) from salesforce.{table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, expected, "{table}");
    }
    let edited: i64 = pg
        .query_one(
            "select count(*) from salesforce.account where name like '%(edited in Salesforce)'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(edited, 1, "the edit made in the org is in Postgres");
    let states: Vec<String> = pg
        .query("select distinct state from pgforce.mappings", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(states, ["DATA_SYNCED"]);
}

#[tokio::test]
async fn the_demo_runs_the_engine_with_its_leases_and_sync_events() {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    let db = TestDatabase::create().await;
    let mut demo =
        crate::run::pgforce(&["demo", "--database-url", &db.url, "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut dashboard = None;
    let toured = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(told) = line.strip_prefix("Dashboard: ") {
                dashboard = Some(told.to_owned());
            }
            if line.contains("syncing both ways") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(toured.ok(), Some(true), "the demo never finished its tour");
    let dashboard = dashboard.expect("the demo says where its dashboard is");
    let words: Vec<&str> = dashboard.split_whitespace().collect();
    let page = words[0];
    let token = words[words.iter().position(|w| *w == "token").unwrap() + 1].trim_end_matches(';');
    let base = page.trim_end_matches("/dashboard");
    let login = reqwest::get(format!("{base}/dashboard/login"))
        .await
        .unwrap();
    assert_eq!(login.status(), reqwest::StatusCode::OK, "{dashboard}");
    let (status, connections) = crate::api::call(
        base,
        reqwest::Method::GET,
        "/api/v3/connections",
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{connections}");
    assert_eq!(connections["results"][0]["name"], "demo", "{connections}");
    let pid = demo.id().unwrap().to_string();
    let held_by_demo = |name: &str| {
        format!(
            "select count(*) from pgforce.leases where name like '{name}' and split_part(holder, ':', 2) = '{pid}' and expires_at > now()"
        )
    };
    let pg = db.client().await;
    let count = |sql: String| {
        let pg = &pg;
        async move { pg.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(
        count(held_by_demo("reader:%")).await,
        3,
        "a reader lease per mapping"
    );
    assert_eq!(
        count(held_by_demo("writer:demo")).await,
        1,
        "the writer's lease"
    );
    assert_eq!(
        count("select count(*) from pgforce.sync_events where kind = 'load' and outcome = 'ok' and records > 0".to_owned()).await,
        3,
        "each load is in the event log"
    );
    // The tour saw its write in Salesforce; the writer's event follows the recording.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count(
        "select count(*) from pgforce.sync_events where kind = 'write' and records > 0".to_owned(),
    )
    .await
        < 1
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the tour's write is in the event log"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let exit = tokio::time::timeout(std::time::Duration::from_secs(30), demo.wait())
        .await
        .expect("the demo stops on Ctrl-C")
        .unwrap();
    assert!(exit.success(), "the demo exits 0 on Ctrl-C");
    assert_eq!(
        count("select count(*) from pgforce.leases".to_owned()).await,
        0,
        "its leases are given back"
    );
}
