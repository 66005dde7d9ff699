//! SOQL over HTTP: filters, ordering, limits, parent fields, COUNT(), paging through
//! `nextRecordsUrl`, queryAll, ties on SystemModstamp, and query errors.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Org, single_error, urlencode};

fn names(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].as_str().unwrap_or("<null>").to_owned())
        .collect()
}

/// An org with six invoices whose fields vary in every way the filters test.
async fn invoices() -> Org {
    let org = Org::start().await;
    let account = org
        .create(
            "Account",
            json!({ "Name": "Parent Co", "External_Id__c": "P-1" }),
        )
        .await;
    let rows = [
        json!({ "Name": "Alpha", "Code__c": "A", "Amount__c": 10.0, "Paid__c": true, "Due__c": "2024-01-10", "Status__c": "Sent", "Account__c": account }),
        json!({ "Name": "beta", "Code__c": "B", "Amount__c": 20.5, "Paid__c": false, "Due__c": "2024-02-10", "Sent_At__c": "2024-02-01T12:00:00Z" }),
        json!({ "Name": "Gamma", "Code__c": "C", "Amount__c": null, "Paid__c": false, "Due__c": "2024-03-10", "Account__c": account }),
        json!({ "Name": "Delta 100%", "Code__c": "D", "Amount__c": 40.0, "Paid__c": true, "Status__c": "Paid" }),
        json!({ "Name": "epsilon", "Code__c": "E", "Amount__c": 5.0, "Lines__c": 3 }),
        json!({ "Name": "O'Brien", "Code__c": "F", "Amount__c": 60.0, "Notes__c": "line1\nline2" }),
    ];
    for mut row in rows {
        row["Short__c"] = json!("x");
        org.create("Invoice__c", row).await;
    }
    org
}

async fn names_where(org: &Org, condition: &str) -> Vec<String> {
    let mut found = names(
        &org.query(&format!(
            "SELECT Name FROM Invoice__c WHERE {condition} ORDER BY Name"
        ))
        .await,
    );
    found.sort_by_key(|n| n.to_lowercase());
    found
}

#[tokio::test]
async fn filters_follow_soql_semantics() {
    let org = invoices().await;
    let cases: [(&str, &[&str]); 16] = [
        ("Amount__c > 15", &["beta", "Delta 100%", "O'Brien"]),
        ("Amount__c <= 10", &["Alpha", "epsilon"]),
        ("Amount__c = null", &["Gamma"]),
        (
            "Amount__c != null AND Paid__c = true",
            &["Alpha", "Delta 100%"],
        ),
        ("Name = 'ALPHA'", &["Alpha"]),
        ("Name LIKE 'e%'", &["epsilon"]),
        ("Name LIKE '%a'", &["Alpha", "beta", "Gamma"]),
        ("Name LIKE '%100\\%'", &["Delta 100%"]),
        ("Name = 'O\\'Brien'", &["O'Brien"]),
        ("Code__c IN ('a', 'C', 'Z')", &["Alpha", "Gamma"]),
        ("Code__c NOT IN ('A','B','C','D')", &["epsilon", "O'Brien"]),
        (
            "(Paid__c = true OR Lines__c = 3) AND Amount__c < 30",
            &["Alpha", "epsilon"],
        ),
        ("NOT Name LIKE '%a%'", &["epsilon", "O'Brien"]),
        (
            "Due__c >= 2024-02-10 AND Due__c < 2024-12-31",
            &["beta", "Gamma"],
        ),
        (
            "Sent_At__c > 2024-02-01T11:00:00Z AND Sent_At__c < 2024-02-01T13:00:00.000000+01:00",
            &[],
        ),
        ("Sent_At__c = 2024-02-01T13:00:00+01:00", &["beta"]),
    ];
    for (condition, expected) in cases {
        assert_eq!(
            names_where(&org, condition).await,
            expected,
            "WHERE {condition}"
        );
    }
}

#[tokio::test]
async fn order_by_limit_and_offset_follow_soql() {
    let org = invoices().await;
    let page = org
        .query("SELECT Name FROM Invoice__c ORDER BY Amount__c DESC NULLS LAST, Name LIMIT 4")
        .await;
    assert_eq!(names(&page), ["O'Brien", "Delta 100%", "beta", "Alpha"]);
    assert_eq!(page["totalSize"], 4, "totalSize counts rows after LIMIT");
    let nulls_first = org
        .query("SELECT Name FROM Invoice__c ORDER BY Amount__c ASC LIMIT 2")
        .await;
    assert_eq!(
        names(&nulls_first),
        ["Gamma", "epsilon"],
        "ASC puts nulls first by default"
    );
    let offset = org
        .query("SELECT Name FROM Invoice__c ORDER BY Name ASC LIMIT 2 OFFSET 1")
        .await;
    assert_eq!(
        names(&offset),
        ["beta", "Delta 100%"],
        "text sorts case-insensitively"
    );
    let (status, _, body) = org
        .call(
            Method::GET,
            &format!(
                "/query?q={}",
                urlencode("SELECT Id FROM Account OFFSET 2001")
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(single_error(&body).0, "NUMBER_OUTSIDE_VALID_RANGE");
}

#[tokio::test]
async fn parent_fields_nest_and_count_returns_only_total_size() {
    let org = invoices().await;
    let page = org
        .query("SELECT Name, Account__r.Name, Account__r.Owner.Username FROM Invoice__c WHERE Code__c IN ('A', 'B') ORDER BY Code__c")
        .await;
    let records = page["records"].as_array().unwrap();
    let parent = &records[0]["Account__r"];
    assert_eq!(parent["attributes"]["type"], "Account");
    assert_eq!(parent["Name"], "Parent Co");
    assert_eq!(
        parent["Owner"]["Username"],
        pgforce_emulator::DEFAULT_USERNAME
    );
    assert_eq!(parent["Owner"]["attributes"]["type"], "User");
    assert_eq!(
        records[1]["Account__r"],
        Value::Null,
        "no parent renders as null"
    );
    let filtered = org
        .query("SELECT Name FROM Invoice__c WHERE Account__r.External_Id__c = 'P-1'")
        .await;
    assert_eq!(filtered["totalSize"], 2);
    let count = org
        .query("SELECT COUNT() FROM Invoice__c WHERE Paid__c = false")
        .await;
    assert_eq!(
        count,
        json!({ "totalSize": 4, "done": true, "records": [] })
    );
    let values = org.query("SELECT Amount__c, Paid__c, Due__c, Lines__c, Notes__c FROM Invoice__c WHERE Code__c = 'F'").await;
    let record = &values["records"][0];
    assert_eq!(
        record["Amount__c"].to_string(),
        "60.0",
        "currency keeps its fraction"
    );
    assert_eq!(record["Notes__c"], "line1\nline2");
    assert_eq!(record["Lines__c"], Value::Null);
}

/// Follows `nextRecordsUrl` to the end; returns every page.
async fn all_pages(org: &Org, first: Value, batch_header: Option<&str>) -> Vec<Value> {
    let mut pages = vec![first];
    while let Some(next) = pages.last().unwrap()["nextRecordsUrl"]
        .as_str()
        .map(str::to_owned)
    {
        let mut request = org
            .http
            .get(format!("{}{next}", org.base))
            .bearer_auth(&org.token);
        if let Some(header) = batch_header {
            request = request.header("Sforce-Query-Options", header);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        pages.push(response.json().await.unwrap());
    }
    pages
}

#[tokio::test]
async fn large_results_page_through_next_records_url() {
    let org = Org::start().await;
    org.seed(json!({ "Account": 4500 })).await;
    let first = org.query("SELECT Id, Name FROM Account").await;
    assert_eq!(first["totalSize"], 4500);
    assert_eq!(first["done"], false);
    let next = first["nextRecordsUrl"].as_str().unwrap();
    assert!(
        next.starts_with("/services/data/v62.0/query/0r8") && next.ends_with("-2000"),
        "{next}"
    );
    let pages = all_pages(&org, first, None).await;
    let sizes: Vec<usize> = pages
        .iter()
        .map(|p| p["records"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [2000, 2000, 500]);
    let last = pages.last().unwrap();
    assert_eq!(last["done"], true);
    assert!(
        last.get("nextRecordsUrl").is_none(),
        "the last page has no nextRecordsUrl key"
    );
    let ids: HashSet<String> = pages
        .iter()
        .flat_map(|p| {
            p["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["Id"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(ids.len(), 4500, "every record exactly once");

    let response = org
        .http
        .get(org.url(&format!("/query?q={}", urlencode("SELECT Id FROM Account"))))
        .bearer_auth(&org.token)
        .header("Sforce-Query-Options", "batchSize=1000")
        .send()
        .await
        .unwrap();
    let first: Value = response.json().await.unwrap();
    let pages = all_pages(&org, first, Some("batchSize=1000")).await;
    assert_eq!(pages.len(), 5);
    let (status, _, body) = org
        .call(Method::GET, "/query/0r8notalocator-2000", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(single_error(&body).0, "INVALID_QUERY_LOCATOR");
}

#[tokio::test]
async fn ties_on_system_modstamp_page_without_loss_in_stamp_then_id_order() {
    let org = Org::start().await;
    // Seeding writes 2,000 records per transaction, so thousands share one SystemModstamp.
    org.seed(json!({ "Account": 5000 })).await;
    let soql = "SELECT Id, SystemModstamp FROM Account WHERE SystemModstamp >= 2020-01-01T00:00:00Z ORDER BY SystemModstamp, Id";
    let pages = all_pages(&org, org.query_all(soql).await, None).await;
    let rows: Vec<(String, String)> = pages
        .iter()
        .flat_map(|p| p["records"].as_array().unwrap().iter())
        .map(|r| {
            (
                r["SystemModstamp"].as_str().unwrap().to_owned(),
                r["Id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 5000);
    let distinct_stamps: HashSet<&String> = rows.iter().map(|(s, _)| s).collect();
    assert!(
        distinct_stamps.len() < 100,
        "many records share a stamp ({} stamps)",
        distinct_stamps.len()
    );
    let mut sorted = rows.clone();
    sorted.sort();
    assert_eq!(rows, sorted, "ordered by SystemModstamp then Id");
    let last = &rows[2500];
    let resumed = org
        .query_all(&format!(
            "SELECT Id FROM Account WHERE SystemModstamp >= {} ORDER BY SystemModstamp, Id",
            last.0.replace("+0000", "Z")
        ))
        .await;
    assert!(
        resumed["totalSize"].as_u64().unwrap() >= 2500,
        "a cursor at a tied stamp re-reads the whole tie"
    );
}

#[tokio::test]
async fn query_all_includes_deleted_records_and_query_hides_them() {
    let org = invoices().await;
    let gone = org
        .query("SELECT Id FROM Invoice__c WHERE Code__c = 'A'")
        .await["records"][0]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    org.call(
        Method::DELETE,
        &format!("/sobjects/Invoice__c/{gone}"),
        None,
    )
    .await;
    assert_eq!(
        org.query("SELECT COUNT() FROM Invoice__c").await["totalSize"],
        5
    );
    let all = org
        .query_all("SELECT Id, IsDeleted FROM Invoice__c WHERE IsDeleted = true")
        .await;
    assert_eq!(all["totalSize"], 1);
    assert_eq!(all["records"][0]["Id"], gone.as_str());
    assert_eq!(all["records"][0]["IsDeleted"], true);
    let by_id = org
        .query(&format!(
            "SELECT Id FROM Invoice__c WHERE Id = '{}'",
            &gone[..15]
        ))
        .await;
    assert_eq!(by_id["totalSize"], 0);
    let by_id = org
        .query_all(&format!("SELECT Id FROM Invoice__c WHERE Id IN ('{gone}')"))
        .await;
    assert_eq!(
        by_id["totalSize"], 1,
        "15- and 18-character Ids both filter"
    );
}

#[tokio::test]
async fn query_errors_carry_salesforce_codes_and_positions() {
    let org = Org::start().await;
    let cases = [
        (
            "SELECT Id FRM Account",
            "MALFORMED_QUERY",
            "unexpected token: 'FRM'",
        ),
        (
            "SELECT Id FROM Nope",
            "INVALID_TYPE",
            "sObject type 'Nope' is not supported.",
        ),
        (
            "SELECT Id, Bogus FROM Account",
            "INVALID_FIELD",
            "No such column 'Bogus' on entity 'Account'.",
        ),
        (
            "SELECT Id FROM Account WHERE Name = 5",
            "INVALID_FIELD",
            "must be of type string",
        ),
        (
            "SELECT Id FROM Account WHERE CreatedDate > TODAY",
            "MALFORMED_QUERY",
            "not supported by the pgforce emulator",
        ),
        (
            "SELECT Id, (SELECT Id FROM Contacts) FROM Account",
            "MALFORMED_QUERY",
            "not supported by the pgforce emulator",
        ),
    ];
    for (soql, code, fragment) in cases {
        let (status, _, body) = org
            .call(Method::GET, &format!("/query?q={}", urlencode(soql)), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{soql}");
        let (actual_code, message) = single_error(&body);
        assert_eq!(actual_code, code, "{soql}: {message}");
        assert!(message.contains(fragment), "{soql}: {message}");
    }
    let (_, _, body) = org
        .call(
            Method::GET,
            &format!("/query?q={}", urlencode("SELECT Id, Bogus FROM Account")),
            None,
        )
        .await;
    let message = single_error(&body).1;
    assert!(
        message.starts_with(
            "\nSELECT Id, Bogus FROM Account\n           ^\nERROR at Row:1:Column:12\n"
        ),
        "{message:?}"
    );
    let (status, _, body) = org.call(Method::GET, "/query", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(single_error(&body).0, "MALFORMED_QUERY");
}
