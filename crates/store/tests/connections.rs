//! A connection created through the API is a new row with its sealed secrets, or nothing:
//! never a change of a connection that has the name already.

use pgforce_store::Error;
use pgforce_store::catalog::connections;
use pgforce_store::testing::TestDatabase;

#[tokio::test]
async fn creating_a_connection_never_replaces_one_of_that_name() {
    let db = TestDatabase::create().await;
    let client = db.client().await;
    let declared = connections::declare(&client, "main", "salesforce", r#"{"auth": "jwt"}"#)
        .await
        .unwrap();

    let again = connections::create(
        &client,
        connections::reserve_id(&client).await.unwrap(),
        "main",
        "other",
        "{}",
        ("k", b"sealed"),
    )
    .await
    .unwrap();
    assert_eq!(again, None, "the name is taken");
    let row = connections::find(&client, "main").await.unwrap().unwrap();
    assert_eq!(
        (row.id, row.schema.as_str(), row.sealed_secrets),
        (declared, "salesforce", None),
        "the existing connection is as it was"
    );

    let created = connections::create(
        &client,
        connections::reserve_id(&client).await.unwrap(),
        "second",
        "second",
        "{}",
        ("k", b"sealed"),
    )
    .await
    .unwrap()
    .unwrap();
    let row = connections::find(&client, "second").await.unwrap().unwrap();
    assert_eq!(row.id, created);
    assert_eq!(
        row.sealed_secrets,
        Some(("k".to_owned(), b"sealed".to_vec())),
        "written with its secrets"
    );

    let error = connections::create(
        &client,
        connections::reserve_id(&client).await.unwrap(),
        "third",
        "salesforce",
        "{}",
        ("k", b"s"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, Error::SchemaTaken { owner, .. } if owner == "main"),
        "{error}"
    );
}
