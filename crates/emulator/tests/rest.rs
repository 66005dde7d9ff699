//! REST resources: versions, describe, single-record CRUD, upsert by external id,
//! getUpdated/getDeleted, usage headers and pretty printing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Org, invoice};

fn field<'a>(describe: &'a Value, name: &str) -> &'a Value {
    describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("describe has no field {name}"))
}

#[tokio::test]
async fn versions_list_needs_no_session_and_ends_at_the_latest() {
    let org = Org::start().await;
    let response = org
        .http
        .get(format!("{}/services/data/", org.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let versions: Vec<Value> = response.json().await.unwrap();
    assert_eq!(
        versions[0],
        json!({ "label": "Winter '11", "url": "/services/data/v20.0", "version": "20.0" })
    );
    let v59 = versions.iter().find(|v| v["version"] == "59.0").unwrap();
    assert_eq!(v59["label"], "Winter '24");
    assert_eq!(
        versions.last().unwrap()["version"],
        pgforce_emulator::LATEST_API_VERSION
    );
}

#[tokio::test]
async fn resources_and_describe_global_list_standard_and_custom_objects() {
    let org = Org::start().await;
    let resources = org.get("/").await;
    assert_eq!(resources["sobjects"], "/services/data/v62.0/sobjects");
    assert_eq!(resources["query"], "/services/data/v62.0/query");
    let global = org.get("/sobjects/").await;
    assert_eq!(global["maxBatchSize"], 200);
    let names: Vec<&str> = global["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    for expected in [
        "Account",
        "Contact",
        "Lead",
        "Opportunity",
        "Case",
        "User",
        "Invoice__c",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let invoice = global["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "Invoice__c")
        .unwrap();
    assert_eq!(invoice["custom"], true);
    assert_eq!(invoice["keyPrefix"], "a00");
    assert_eq!(
        invoice["urls"]["describe"],
        "/services/data/v62.0/sobjects/Invoice__c/describe"
    );
}

#[tokio::test]
async fn describe_reports_the_attributes_sync_tools_rely_on() {
    let org = Org::start().await;
    let d = org.get("/sobjects/invoice__c/describe").await;
    assert_eq!(
        d["name"], "Invoice__c",
        "object names are case-insensitive, describe casing wins"
    );
    let id = field(&d, "Id");
    assert_eq!(
        (
            id["type"].as_str(),
            id["length"].as_u64(),
            id["idLookup"].as_bool()
        ),
        (Some("id"), Some(18), Some(true))
    );
    assert_eq!(
        (id["createable"].as_bool(), id["nillable"].as_bool()),
        (Some(false), Some(false))
    );
    let code = field(&d, "Code__c");
    assert_eq!(code["type"], "string");
    assert_eq!(code["length"], 20);
    assert_eq!(code["byteLength"], 60);
    assert_eq!(
        (
            code["externalId"].as_bool(),
            code["unique"].as_bool(),
            code["idLookup"].as_bool()
        ),
        (Some(true), Some(true), Some(true))
    );
    assert_eq!(code["custom"], true);
    let account = field(&d, "Account__c");
    assert_eq!(account["type"], "reference");
    assert_eq!(account["referenceTo"], json!(["Account"]));
    assert_eq!(account["relationshipName"], "Account__r");
    assert_eq!(account["soapType"], "tns:ID");
    let amount = field(&d, "Amount__c");
    assert_eq!(
        (
            amount["type"].as_str(),
            amount["precision"].as_u64(),
            amount["scale"].as_u64()
        ),
        (Some("currency"), Some(10), Some(2))
    );
    assert_eq!(amount["soapType"], "xsd:double");
    let status = field(&d, "Status__c");
    assert_eq!(status["restrictedPicklist"], true);
    assert_eq!(status["defaultedOnCreate"], true);
    let values: Vec<&Value> = status["picklistValues"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(values.len(), 3);
    assert_eq!(
        values[0],
        &json!({ "active": true, "defaultValue": true, "label": "Draft", "validFor": null, "value": "Draft" })
    );
    let short = field(&d, "Short__c");
    assert_eq!(
        (
            short["nillable"].as_bool(),
            short["defaultedOnCreate"].as_bool()
        ),
        (Some(false), Some(false))
    );
    let paid = field(&d, "Paid__c");
    assert_eq!(
        (
            paid["type"].as_str(),
            paid["defaultValue"].as_bool(),
            paid["nillable"].as_bool()
        ),
        (Some("boolean"), Some(false), Some(false))
    );
    for system in [
        "IsDeleted",
        "CreatedDate",
        "CreatedById",
        "LastModifiedDate",
        "LastModifiedById",
        "SystemModstamp",
        "OwnerId",
    ] {
        let f = field(&d, system);
        assert_eq!(f["custom"], false, "{system}");
    }
    assert_eq!(field(&d, "SystemModstamp")["type"], "datetime");
    assert_eq!(field(&d, "OwnerId")["referenceTo"], json!(["User"]));

    let account = org.get("/sobjects/Account/describe").await;
    assert_eq!(field(&account, "Name")["nameField"], true);
    let children = account["childRelationships"].as_array().unwrap();
    assert!(children.iter().any(|c| c["childSObject"] == "Contact"
        && c["field"] == "AccountId"
        && c["relationshipName"] == "Contacts"));
    assert!(
        children
            .iter()
            .any(|c| c["childSObject"] == "Invoice__c" && c["relationshipName"] == "Invoices__r")
    );
    let contact = org.get("/sobjects/Contact/describe").await;
    let name = field(&contact, "Name");
    assert_eq!(
        (name["createable"].as_bool(), name["updateable"].as_bool()),
        (Some(false), Some(false))
    );
}

#[tokio::test]
async fn create_read_update_delete_round_trip_with_system_fields() {
    let org = Org::start().await;
    let id = org.create("Invoice__c", json!({ "Name": "  Inv 1  ", "Code__c": "C-1", "Short__c": "abc",
        "Amount__c": 12.345, "Due__c": "2024-02-29", "Sent_At__c": "2024-03-01T10:00:00.5+02:00", "Lines__c": 3 })).await;
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("a00"));
    let record = org.get(&format!("/sobjects/Invoice__c/{id}")).await;
    assert_eq!(
        record["attributes"],
        json!({ "type": "Invoice__c", "url": format!("/services/data/v62.0/sobjects/Invoice__c/{id}") })
    );
    assert_eq!(record["Id"], id.as_str());
    assert_eq!(record["Name"], "Inv 1", "strings are trimmed");
    assert_eq!(record["Amount__c"], 12.35, "currency rounds to its scale");
    assert_eq!(
        record["Status__c"], "Draft",
        "picklist default applies on create"
    );
    assert_eq!(record["Paid__c"], false);
    assert_eq!(
        record["Notes__c"],
        Value::Null,
        "unset fields are present as null"
    );
    assert_eq!(record["Due__c"], "2024-02-29");
    assert_eq!(
        record["Sent_At__c"], "2024-03-01T08:00:00.500+0000",
        "datetimes are UTC with milliseconds"
    );
    assert_eq!(record["IsDeleted"], false);
    assert!(record["OwnerId"].as_str().unwrap().starts_with("005"));
    let created = record["SystemModstamp"].as_str().unwrap().to_owned();
    assert_eq!(record["CreatedDate"], created.as_str());

    let (status, _, body) = org
        .call(
            Method::PATCH,
            &format!("/sobjects/Invoice__c/{id}"),
            Some(json!({ "Notes__c": "late", "Lines__c": null })),
        )
        .await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let updated = org
        .get(&format!(
            "/sobjects/Invoice__c/{id}?fields=Notes__c,Lines__c,SystemModstamp,CreatedDate"
        ))
        .await;
    assert_eq!(updated["Notes__c"], "late");
    assert_eq!(updated["Lines__c"], Value::Null);
    assert!(
        updated.get("Name").is_none(),
        "?fields= limits the fields returned"
    );
    assert!(
        updated["SystemModstamp"].as_str().unwrap() >= created.as_str(),
        "SystemModstamp never goes back"
    );
    assert_eq!(updated["CreatedDate"], created.as_str());

    let (status, _, _) = org
        .call(Method::DELETE, &format!("/sobjects/Invoice__c/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = org
        .call(Method::GET, &format!("/sobjects/Invoice__c/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body[0]["errorCode"], "ENTITY_IS_DELETED");
}

#[tokio::test]
async fn system_modstamp_is_monotonic_across_writes() {
    let org = Org::start().await;
    let id = org.create("Invoice__c", invoice("M-1")).await;
    let mut last = String::new();
    for n in 0..20 {
        org.call(
            Method::PATCH,
            &format!("/sobjects/Invoice__c/{id}"),
            Some(json!({ "Lines__c": n })),
        )
        .await;
        let record = org
            .get(&format!(
                "/sobjects/Invoice__c/{id}?fields=SystemModstamp,LastModifiedDate"
            ))
            .await;
        let stamp = record["SystemModstamp"].as_str().unwrap().to_owned();
        assert_eq!(record["LastModifiedDate"], stamp.as_str());
        assert!(stamp >= last, "{stamp} after {last}");
        last = stamp;
    }
}

#[tokio::test]
async fn upsert_by_external_id_creates_updates_and_reports_multiple_matches() {
    let org = Org::start().await;
    let url = "/sobjects/Invoice__c/Code__c/U-1";
    let body = json!({ "Name": "U", "Short__c": "x" });
    let (status, _, created) = org.call(Method::PATCH, url, Some(body.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["created"], true);
    assert_eq!(created["success"], true);
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, _, updated) = org
        .call(
            Method::PATCH,
            "/sobjects/Invoice__c/Code__c/u-1",
            Some(json!({ "Lines__c": 7 })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "external ids match case-insensitively"
    );
    assert_eq!(
        updated,
        json!({ "id": id, "success": true, "errors": [], "created": false })
    );
    let old = format!(
        "{}/services/data/v45.0/sobjects/Invoice__c/Code__c/U-1",
        org.base
    );
    let (status, _, body) = org
        .call_url(Method::PATCH, &old, Some(json!({ "Lines__c": 8 })))
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::NO_CONTENT, Value::Null),
        "API 45.0 and older answer 204 on update"
    );
    let by_key = org.get("/sobjects/Invoice__c/Code__c/U-1").await;
    assert_eq!(by_key["Id"], id.as_str());
    assert_eq!(by_key["Lines__c"], 8);

    let first = org
        .create(
            "Invoice__c",
            json!({ "Code__c": "R1", "Ref__c": "shared", "Short__c": "a" }),
        )
        .await;
    let second = org
        .create(
            "Invoice__c",
            json!({ "Code__c": "R2", "Ref__c": "shared", "Short__c": "b" }),
        )
        .await;
    let (status, _, body) = org
        .call(
            Method::PATCH,
            "/sobjects/Invoice__c/Ref__c/shared",
            Some(json!({ "Lines__c": 1 })),
        )
        .await;
    assert_eq!(status, StatusCode::MULTIPLE_CHOICES);
    let urls: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        vec![
            format!("/services/data/v62.0/sobjects/Invoice__c/{first}"),
            format!("/services/data/v62.0/sobjects/Invoice__c/{second}"),
        ]
    );
}

#[tokio::test]
async fn upsert_by_id_updates_and_an_empty_id_creates() {
    let org = Org::start().await;
    let id = org.create("Account", json!({ "Name": "Before" })).await;
    let (status, _, body) = org
        .call(
            Method::PATCH,
            &format!("/sobjects/Account/Id/{id}"),
            Some(json!({ "Name": "After" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        org.get(&format!("/sobjects/Account/{id}")).await["Name"],
        "After"
    );
    let (status, _, body) = org
        .call(
            Method::PATCH,
            "/composite/sobjects/Account/Id",
            Some(json!({ "allOrNone": false,
            "records": [{ "attributes": { "type": "Account" }, "Id": null, "Name": "New" }] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["created"], true, "{body}");
}

#[tokio::test]
async fn get_updated_and_get_deleted_report_changes_in_a_window() {
    let org = Org::start().await;
    let kept = org.create("Account", json!({ "Name": "Kept" })).await;
    let gone = org.create("Account", json!({ "Name": "Gone" })).await;
    org.call(Method::DELETE, &format!("/sobjects/Account/{gone}"), None)
        .await;
    // A window from the start of the minute the records were written in, by the org's clock.
    let created = org
        .get(&format!("/sobjects/Account/{kept}?fields=CreatedDate"))
        .await;
    let start = format!(
        "{}00+00:00",
        &created["CreatedDate"].as_str().unwrap()[..17]
    );
    let end = "2999-01-01T00:00:00+00:00".to_owned();
    let window = format!(
        "?start={}&end={}",
        crate::support::urlencode(&start),
        crate::support::urlencode(&end)
    );
    let updated = org
        .get(&format!("/sobjects/Account/updated/{window}"))
        .await;
    let ids: Vec<&str> = updated["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&kept.as_str()) && !ids.contains(&gone.as_str()),
        "{updated}"
    );
    assert!(
        updated["latestDateCovered"].as_str().unwrap()
            <= end.replace("+00:00", ".000+0000").as_str()
    );
    let deleted = org
        .get(&format!("/sobjects/Account/deleted/{window}"))
        .await;
    let records = deleted["deletedRecords"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["id"], gone.as_str());
    assert!(deleted["earliestDateAvailable"].is_string());
    let (status, _, body) = org
        .call(
            Method::GET,
            "/sobjects/Account/updated/?start=yesterday&end=now",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "INVALID_REPLICATION_DATE");
}

#[tokio::test]
async fn every_response_reports_api_usage_and_pretty_prints_on_request() {
    let org = Org::start().await;
    let (_, headers, _) = org.call(Method::GET, "/limits", None).await;
    assert_eq!(headers["sforce-limit-info"], "api-usage=1/100000");
    let (_, headers, limits) = org.call(Method::GET, "/limits", None).await;
    assert_eq!(headers["sforce-limit-info"], "api-usage=2/100000");
    assert_eq!(
        limits["DailyApiRequests"],
        json!({ "Max": 100000, "Remaining": 99998 })
    );
    assert!(limits["DailyBulkV2QueryJobs"]["Max"].is_u64());
    let (_, headers, _) = org.call(Method::GET, "/sobjects/Nope/describe", None).await;
    assert_eq!(
        headers["sforce-limit-info"], "api-usage=3/100000",
        "failed calls count too"
    );
    let pretty = org
        .http
        .get(org.url("/limits"))
        .bearer_auth(&org.token)
        .header("X-PrettyPrint", "1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        pretty.contains("\n  \"ConcurrentAsyncGetReportInstances\": {\n"),
        "{}",
        &pretty[..80.min(pretty.len())]
    );
}
