//! The OData query engine on a real Postgres: describe, every filter operator and
//! function, paging, counts, keys, writes with ETags, capture of writes to synced
//! tables, and index use.

use std::collections::HashSet;
use std::time::Duration;

use pgforce_store::Access;
use pgforce_store::odata::{
    self, DeleteOutcome, EdmType, EntitySet, Limits, QueryError, RelationKind, UpdateOutcome,
};
use pgforce_store::testing::TestDatabase;
use serde_json::{Value, json};
use tokio_postgres::Client;

use crate::support::database_with_account;

fn pairs(options: &[(&str, &str)]) -> Vec<(String, String)> {
    options
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn database(setup: &str) -> (TestDatabase, Client) {
    let db = TestDatabase::create().await;
    let client = db.client().await;
    client.batch_execute(setup).await.unwrap();
    (db, client)
}

async fn set(client: &Client, schema: &str, table: &str) -> EntitySet {
    odata::describe(client, schema, table)
        .await
        .unwrap()
        .unwrap()
}

fn parse_error(set: &EntitySet, options: &[(&str, &str)]) -> QueryError {
    odata::parse_read(set, &pairs(options), &Limits::default()).unwrap_err()
}

/// Follows every page of a read; returns the rows in order and the number of pages.
async fn read_all(
    client: &Client,
    set: &EntitySet,
    options: &[(&str, &str)],
    limits: &Limits,
) -> (Vec<serde_json::Map<String, Value>>, usize) {
    let mut rows = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut request = pairs(options);
        if let Some(token) = &token {
            request.push(("$skiptoken".to_owned(), token.clone()));
        }
        let query = odata::parse_read(set, &request, limits).unwrap();
        let page = odata::read(client, set, &query).await.unwrap();
        assert!(page.rows.len() <= limits.max_page_size as usize);
        pages += 1;
        rows.extend(page.rows);
        match page.next_skiptoken {
            Some(next) => token = Some(next),
            None => return (rows, pages),
        }
    }
}

async fn ids(client: &Client, set: &EntitySet, filter: &str) -> Vec<i64> {
    let (rows, _) = read_all(
        client,
        set,
        &[("$filter", filter), ("$select", "id")],
        &Limits::default(),
    )
    .await;
    rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

const PEOPLE: &str = "
    create table people (
        id int8 primary key, name text, age int4, score numeric(10,2), ratio float8,
        born date, seen timestamptz, local_seen timestamp, active bool, uid uuid, wake time,
        code varchar(10), photo bytea);
    insert into people values
        (1, 'Ann', 30, 10.50, 0.5, '1990-01-31', '2024-01-31T10:00:00Z', '2024-01-31 10:00:00',
         true, 'abcdef01-2345-6789-abcd-ef0123456789', '07:30', 'A1', '\\x0102'),
        (2, 'O''Neil', 45, 20.25, 1.5, '1980-06-15', '2024-02-01T12:30:15.5Z', '2024-02-01 12:30:15.5',
         false, '00000000-0000-0000-0000-000000000002', '22:00', 'B_2', null),
        (3, 'bob%', null, null, null, null, null, null, null, null, null, null, null),
        (4, 'a'' or 1=1 --', 18, 0, -2, '2000-02-29', '2023-12-31T23:59:59+01:00', '2023-12-31 22:59:59',
         true, null, '00:00', 'x\\y', null);";

#[tokio::test]
async fn describe_maps_types_keys_and_refuses_unpublishable_relations() {
    let (_db, client) = database(
        "create extension if not exists hstore;
         create domain short_name as varchar(20);
         create table t (id serial primary key, label short_name not null, amount numeric(12, 3),
             tags text[], doc json, extra hstore, systemmodstamp timestamp, \"we\"\"ird\" text);
         create view v as select id, label from t;
         create view v_no_id as select label from t;
         create table no_pk (a int);
         create table composite (a int, b text, primary key (b, a));",
    )
    .await;
    let t = set(&client, "public", "t").await;
    assert_eq!(t.name, "public$t");
    assert_eq!(t.kind, RelationKind::Table);
    assert_eq!(t.key, vec!["id".to_owned()]);
    assert_eq!(t.etag_column.as_deref(), Some("systemmodstamp"));
    let label = t.property("label").unwrap();
    assert_eq!(
        label.edm,
        EdmType::String {
            max_length: Some(20)
        }
    );
    assert!(!label.nullable);
    assert_eq!(
        t.property("amount").unwrap().edm,
        EdmType::Decimal {
            precision: Some(12),
            scale: Some(3)
        }
    );
    assert!(t.property("id").unwrap().has_default);
    assert!(t.property("we\"ird").is_some());
    let omitted: Vec<&str> = t.omitted.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(omitted, ["tags", "doc", "extra"]);

    let v = set(&client, "public", "v").await;
    assert_eq!(
        (v.kind, v.key.clone()),
        (RelationKind::View, vec!["id".to_owned()])
    );
    assert_eq!(set(&client, "public", "composite").await.key, ["b", "a"]);

    let no_id = odata::describe(&client, "public", "v_no_id")
        .await
        .unwrap_err();
    assert!(
        no_id.to_string().contains("views need a column named id"),
        "{no_id}"
    );
    let no_pk = odata::describe(&client, "public", "no_pk")
        .await
        .unwrap_err();
    assert!(no_pk.to_string().contains("primary key"), "{no_pk}");
    assert!(
        odata::describe(&client, "public", "missing")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn every_operator_function_and_literal_type_filters_as_odata_says() {
    let (_db, client) = database(PEOPLE).await;
    let people = set(&client, "public", "people").await;
    let cases: &[(&str, &[i64])] = &[
        ("id eq 1", &[1]),
        ("id ne 1", &[2, 3, 4]),
        ("age gt 30", &[2]),
        ("age ge 30", &[1, 2]),
        ("age lt 30", &[4]),
        ("age le 30", &[1, 4]),
        ("age eq null", &[3]),
        ("age ne null", &[1, 2, 4]),
        ("null eq age", &[3]),
        ("age ne 30", &[2, 3, 4]),
        ("not (age gt 20)", &[3, 4]),
        ("age gt 20 and active eq true", &[1]),
        ("age lt 20 or name eq 'Ann'", &[1, 4]),
        ("(id eq 1 or id eq 2) and not (id eq 2)", &[1]),
        ("name eq 'O''Neil'", &[2]),
        ("active", &[1, 4]),
        ("active eq false", &[2]),
        ("score eq 10.5", &[1]),
        ("score gt 10", &[1, 2]),
        ("score lt 20.25M", &[1, 4]),
        ("ratio lt 1e0", &[1, 4]),
        ("ratio eq -2", &[4]),
        ("age eq 45L", &[2]),
        ("born eq 1990-01-31", &[1]),
        ("born gt 1985-01-01", &[1, 4]),
        ("seen eq 2024-01-31T10:00:00Z", &[1]),
        ("seen eq 2024-01-31T11:00:00+01:00", &[1]),
        ("seen eq 2024-02-01T12:30:15.5Z", &[2]),
        ("seen lt 2024-01-01T00:00:00Z", &[4]),
        ("local_seen eq 2024-01-31T10:00:00Z", &[1]),
        ("local_seen ge 2024-01-31", &[1, 2]),
        ("uid eq abcdef01-2345-6789-abcd-ef0123456789", &[1]),
        ("uid eq 'ABCDEF01-2345-6789-abcd-ef0123456789'", &[1]),
        ("wake lt 08:00", &[1, 4]),
        ("wake eq 22:00:00", &[2]),
        ("contains(name,'n') eq true", &[1]),
        ("contains(name, 'N')", &[2]),
        ("startswith(name,'bob%')", &[3]),
        ("startswith(name,'bo%x')", &[]),
        ("contains(name,'%')", &[3]),
        ("contains(code,'_')", &[2]),
        ("contains(code,'\\')", &[4]),
        ("endswith(name,'eil') eq true", &[2]),
        ("endswith(name,'eil') eq false", &[1, 3, 4]),
        ("tolower(name) eq 'ann'", &[1]),
        ("toupper(name) eq 'BOB%'", &[3]),
        ("length(name) eq 3", &[1]),
        ("trim(' Ann ') eq name", &[1]),
        ("concat(name, code) eq 'AnnA1'", &[1]),
        ("indexof(name,'Ne') eq 2", &[2]),
        ("substring(name, 1) eq 'nn'", &[1]),
        ("substring(name, 0, 2) eq 'O'''", &[2]),
        ("substring(name, 9223372036854775807) eq ''", &[1, 2, 3, 4]),
        ("substring(name, -3, 99999999999) eq name", &[1, 2, 3, 4]),
        ("startswith(name, substring(code, 0, 1))", &[1]),
        ("year(born) eq 1980", &[2]),
        ("month(seen) eq 12", &[4]),
        ("day(local_seen) eq 31", &[1, 4]),
        ("hour(seen) eq 22", &[4]),
        ("minute(wake) eq 30", &[1]),
        ("second(seen) eq 15", &[2]),
        ("date(seen) eq 2024-02-01", &[2]),
        ("time(seen) eq 10:00:00", &[1]),
        ("age add 5 eq 35", &[1]),
        ("age sub 5 gt 30", &[2]),
        ("age mul 2 eq 90", &[2]),
        ("age div 4 eq 7", &[1]),
        ("age divby 4 eq 7.5", &[1]),
        ("age mod 7 eq 3", &[2]),
        ("age div 0 eq 1 or age mod 0 eq 1", &[]),
        ("score mul 2 gt 21", &[2]),
        ("ratio add 1 lt 2", &[1, 4]),
        ("age add 1 mul 2 eq 32", &[1]),
        ("(age add 1) mul 2 eq 62", &[1]),
        ("length(name) sub 1 eq 2", &[1]),
        (
            "age mul 9223372036854775807 mul 9223372036854775807 gt 0",
            &[1, 2, 4],
        ),
        ("name eq name", &[1, 2, 3, 4]),
        ("age eq age", &[1, 2, 3, 4]),
        ("1 eq 1", &[1, 2, 3, 4]),
        ("'a' eq 'b'", &[]),
    ];
    for (filter, expected) in cases {
        let mut got = ids(&client, &people, filter).await;
        got.sort_unstable();
        assert_eq!(&got, expected, "$filter={filter}");
    }
}

#[tokio::test]
async fn injection_attempts_and_odd_names_stay_data() {
    let (_db, client) = database(&format!(
        "{PEOPLE} create table \"we\"\"ird\" (\"i\"\"d\" int primary key, \"na me\" text);
         insert into \"we\"\"ird\" values (1, 'x');"
    ))
    .await;
    let people = set(&client, "public", "people").await;
    assert_eq!(ids(&client, &people, "name eq 'a'' or 1=1 --'").await, [4]);
    assert_eq!(
        ids(&client, &people, "name eq '''; drop table people; --'").await,
        Vec::<i64>::new()
    );
    assert_eq!(ids(&client, &people, "id eq 1").await, [1]);
    assert_eq!(
        parse_error(&people, &[("$filter", "name eq 'a\u{0}'")]).code,
        "InvalidFilter"
    );
    let error = odata::insert(
        &client,
        &people,
        json!({"id": 9, "name": "a\u{0}"}).as_object().unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.query_error().map(|e| e.code), Some("InvalidValue"));

    let weird = set(&client, "public", "we\"ird").await;
    assert_eq!(weird.key, ["i\"d"]);
    let query = odata::parse_read(
        &weird,
        &pairs(&[("$select", "i\"d,na me"), ("$orderby", "na me desc")]),
        &Limits::default(),
    )
    .unwrap();
    let page = odata::read(&client, &weird, &query).await.unwrap();
    assert_eq!(
        page.rows,
        [json!({"i\"d": 1, "na me": "x"})
            .as_object()
            .unwrap()
            .clone()]
    );
    // A name that closes the quote is only ever an unknown property.
    let error = parse_error(&weird, &[("$select", "i\" from people; --")]);
    assert_eq!(error.code, "UnknownProperty");
}

#[tokio::test]
async fn bad_input_is_a_query_error_naming_what_and_where() {
    let (_db, client) = database(PEOPLE).await;
    let people = set(&client, "public", "people").await;
    let error = parse_error(&people, &[("$filter", "nmae eq 'x'")]);
    assert_eq!(error.code, "UnknownProperty");
    assert!(
        error.message.contains("nmae") && error.message.contains("offset 0"),
        "{}",
        error.message
    );
    assert_eq!(error.target.as_deref(), Some("nmae"));

    let error = parse_error(&people, &[("$filter", "name eq 5")]);
    assert_eq!(error.code, "TypeMismatch");
    assert!(
        error.message.contains("property name") && error.message.contains("Edm.String"),
        "{}",
        error.message
    );
    let error = parse_error(&people, &[("$filter", "age eq 'x'")]);
    assert_eq!(error.code, "TypeMismatch");

    let error = parse_error(&people, &[("$filter", "name eq 'x' and")]);
    assert_eq!(error.code, "InvalidFilter");
    assert!(error.message.contains("offset 15"), "{}", error.message);
    let error = parse_error(&people, &[("$filter", "name eq 'x")]);
    assert!(error.message.contains("offset 8") && error.message.contains("not closed"));
    let error = parse_error(&people, &[("$filter", "age in (1, 2)")]);
    assert_eq!(error.code, QueryError::NOT_SUPPORTED);
    let error = parse_error(&people, &[("$filter", "name add 1 eq 2")]);
    assert_eq!(error.code, "TypeMismatch");
    let error = parse_error(&people, &[("$filter", "age has 1")]);
    assert_eq!(error.code, QueryError::NOT_SUPPORTED);
    let error = parse_error(&people, &[("$filter", "duration'P1D' eq age")]);
    assert_eq!(error.code, QueryError::NOT_SUPPORTED);
    let error = parse_error(&people, &[("$filter", "geo.distance(a, b) lt 1")]);
    assert_eq!(error.code, QueryError::NOT_SUPPORTED);
    let error = parse_error(&people, &[("$filter", "age")]);
    assert_eq!(error.code, "InvalidFilter");
    let error = parse_error(&people, &[("$filter", "contains(age, 'x')")]);
    assert_eq!(error.code, "TypeMismatch");
    let deep = format!("{}id eq 1{}", "(".repeat(200), ")".repeat(200));
    assert!(
        parse_error(&people, &[("$filter", &deep)])
            .message
            .contains("nest")
    );

    for (option, value) in [
        ("$expand", "x"),
        ("$apply", "x"),
        ("$format", "xml"),
        ("$search", "x"),
    ] {
        let error = parse_error(&people, &[(option, value)]);
        assert_eq!(error.code, QueryError::NOT_SUPPORTED, "{option}");
        assert_eq!(error.target.as_deref(), Some(option));
    }
    assert_eq!(
        parse_error(&people, &[("$top", "-1")]).code,
        "InvalidQueryOption"
    );
    assert_eq!(
        parse_error(&people, &[("$count", "yes")]).code,
        "InvalidQueryOption"
    );
    assert_eq!(
        parse_error(&people, &[("$orderby", "age sideways")]).code,
        "InvalidQueryOption"
    );
    assert_eq!(
        parse_error(&people, &[("$orderby", "nope")]).code,
        "UnknownProperty"
    );
    assert_eq!(
        parse_error(&people, &[("$select", "id,nope")]).code,
        "UnknownProperty"
    );
    assert_eq!(
        parse_error(&people, &[("$skiptoken", "garbage!")]).code,
        "InvalidSkipToken"
    );
    // Custom options are ignored; $format=json is fine.
    odata::parse_read(
        &people,
        &pairs(&[("custom", "x"), ("$format", "json")]),
        &Limits::default(),
    )
    .unwrap();
}

#[tokio::test]
async fn values_are_odata_json_and_search_finds_phrases_when_enabled() {
    let (_db, client) = database(PEOPLE).await;
    let people = set(&client, "public", "people").await;
    let query = odata::parse_read(
        &people,
        &pairs(&[("$filter", "id eq 2")]),
        &Limits::default(),
    )
    .unwrap();
    let page = odata::read(&client, &people, &query).await.unwrap();
    assert_eq!(
        Value::Object(page.rows[0].clone()),
        json!({"id": 2, "name": "O'Neil", "age": 45, "score": 20.25, "ratio": 1.5,
               "born": "1980-06-15", "seen": "2024-02-01T12:30:15.5Z",
               "local_seen": "2024-02-01T12:30:15.5Z", "active": false,
               "uid": "00000000-0000-0000-0000-000000000002", "wake": "22:00:00",
               "code": "B_2", "photo": null})
    );
    let query = odata::parse_read(
        &people,
        &pairs(&[("$filter", "id eq 1"), ("$select", "photo,seen")]),
        &Limits::default(),
    )
    .unwrap();
    let page = odata::read(&client, &people, &query).await.unwrap();
    assert_eq!(
        Value::Object(page.rows[0].clone()),
        json!({"photo": "AQI=", "seen": "2024-01-31T10:00:00Z"})
    );

    let limits = Limits {
        max_page_size: 2000,
        search_enabled: true,
    };
    let query = odata::parse_read(
        &people,
        &pairs(&[("$search", "Neil"), ("$count", "true")]),
        &limits,
    )
    .unwrap();
    let page = odata::read(&client, &people, &query).await.unwrap();
    assert_eq!((page.rows.len(), page.count), (1, Some(1)));
    assert_eq!(page.rows[0]["id"], json!(2));
    // Case-sensitive, as Salesforce sends it.
    let query = odata::parse_read(&people, &pairs(&[("$search", "\"neil\"")]), &limits).unwrap();
    assert!(
        odata::read(&client, &people, &query)
            .await
            .unwrap()
            .rows
            .is_empty()
    );
}

const MANY: &str = "
    create table many (id int8 primary key, grp int4 not null, maybe text, at timestamptz not null,
        amount numeric(14, 4), ratio float4, local timestamp);
    insert into many
        select i, i % 37, case when i % 5 = 0 then null else 'v' || (i % 101) end,
               '2024-01-01T00:00:00Z'::timestamptz + (i % 997) * interval '1 second',
               (i % 211) / 7.0 + 1234567890.0001, (i % 13) / 3.0,
               case when i % 7 = 0 then null
                    else '2024-01-01'::timestamp + (i % 89) * interval '1.000001 second' end
        from generate_series(1, 10007) i;
    create index many_grp on many (grp);
    create index many_at on many (at);
    analyze many;";

fn check_order(rows: &[serde_json::Map<String, Value>], order: &str) {
    let key = |row: &serde_json::Map<String, Value>| -> (Value, i64) {
        let column = order.split_whitespace().next().unwrap();
        (row[column].clone(), row["id"].as_i64().unwrap())
    };
    let descending = order.ends_with("desc");
    for pair in rows.windows(2) {
        let (a, b) = (key(&pair[0]), key(&pair[1]));
        let cmp = match (&a.0, &b.0) {
            (Value::Null, Value::Null) => std::cmp::Ordering::Equal,
            // Nulls last ascending, first descending.
            (Value::Null, _) => std::cmp::Ordering::Greater,
            (_, Value::Null) => std::cmp::Ordering::Less,
            (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()).unwrap(),
            (x, y) => x.as_str().cmp(&y.as_str()),
        };
        // The key breaks ties in the same direction when every item is descending.
        let cmp = cmp.then(a.1.cmp(&b.1));
        let cmp = if descending { cmp.reverse() } else { cmp };
        assert!(cmp.is_lt(), "{order}: {a:?} before {b:?}");
    }
}

#[tokio::test]
async fn paging_visits_every_row_once_in_every_order() {
    let (_db, client) = database(MANY).await;
    let many = set(&client, "public", "many").await;
    let limits = Limits {
        max_page_size: 1000,
        search_enabled: false,
    };
    for order in [
        "id",
        "id desc",
        "grp",
        "grp desc",
        "maybe",
        "maybe desc",
        "at desc",
        "amount desc",
        "ratio",
        "local",
        "local desc",
    ] {
        let (rows, pages) = read_all(
            &client,
            &many,
            &[("$orderby", order), ("$count", "true")],
            &limits,
        )
        .await;
        assert_eq!(pages, 11, "{order}");
        let seen: HashSet<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!((rows.len(), seen.len()), (10007, 10007), "{order}");
        check_order(&rows, order);
    }
    // Two directions (the expanded keyset form) with a filter.
    let (rows, _) = read_all(
        &client,
        &many,
        &[("$orderby", "maybe desc,grp asc"), ("$filter", "grp lt 10")],
        &limits,
    )
    .await;
    let expected: i64 = client
        .query_one("select count(*) from many where grp < 10", &[])
        .await
        .unwrap()
        .get(0);
    let seen: HashSet<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!((rows.len() as i64, seen.len() as i64), (expected, expected));
}

#[tokio::test]
async fn top_skip_and_count_combine_as_odata_says() {
    let (_db, client) = database(MANY).await;
    let many = set(&client, "public", "many").await;
    let limits = Limits {
        max_page_size: 1000,
        search_enabled: false,
    };
    let first = |options: Vec<(&'static str, &'static str)>| {
        let client = &client;
        let many = &many;
        async move {
            let query = odata::parse_read(many, &pairs(&options), &limits).unwrap();
            odata::read(client, many, &query).await.unwrap()
        }
    };
    let page = first(vec![("$top", "5"), ("$skip", "10"), ("$count", "true")]).await;
    let got: Vec<i64> = page
        .rows
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, [11, 12, 13, 14, 15]);
    assert_eq!((page.count, page.next_skiptoken), (Some(10007), None));

    let page = first(vec![
        ("$filter", "grp eq 3"),
        ("$count", "true"),
        ("$top", "0"),
    ])
    .await;
    assert!(page.rows.is_empty());
    assert_eq!(page.count, Some(10007 / 37 + 1));
    assert_eq!(first(vec![("$count", "false")]).await.count, None);
    // A Single column compares with Single values; values beyond its range are no error.
    let thirds = 10007 / 13 + 1;
    let page = first(vec![("$filter", "ratio eq 0.33333334"), ("$count", "true")]).await;
    assert_eq!(page.count, Some(thirds));
    let page = first(vec![("$filter", "ratio lt 1e300"), ("$count", "true")]).await;
    assert_eq!(page.count, Some(10007));

    // $top across pages: 2,500 rows after skipping 7, in three pages.
    let (rows, pages) =
        read_all(&client, &many, &[("$top", "2500"), ("$skip", "7")], &limits).await;
    assert_eq!((rows.len(), pages), (2500, 3));
    assert_eq!(rows[0]["id"], json!(8));
    assert_eq!(rows[2499]["id"], json!(2507));

    // A token is bound to the query it came from.
    let query = odata::parse_read(&many, &pairs(&[("$orderby", "grp")]), &limits).unwrap();
    let token = odata::read(&client, &many, &query)
        .await
        .unwrap()
        .next_skiptoken
        .unwrap();
    let error = odata::parse_read(
        &many,
        &pairs(&[("$orderby", "grp desc"), ("$skiptoken", &token)]),
        &limits,
    )
    .unwrap_err();
    assert_eq!(error.code, "InvalidSkipToken");
    let mut tampered = token;
    tampered.insert(3, 'A');
    let error = odata::parse_read(
        &many,
        &pairs(&[("$orderby", "grp"), ("$skiptoken", &tampered)]),
        &limits,
    )
    .unwrap_err();
    assert_eq!(error.code, "InvalidSkipToken");
}

#[tokio::test]
async fn keys_read_single_and_composite_entities() {
    let (_db, client) = database(&format!(
        "{PEOPLE} create table lines (order_id int4, code text, qty int4, primary key (order_id, code));
         insert into lines values (1, 'a', 5), (1, 'b''c', 7);
         create table words (w text primary key, n int4); insert into words values ('it''s', 1);"
    ))
    .await;
    let people = set(&client, "public", "people").await;
    let key = odata::parse_key(&people, "(2)").unwrap();
    let (row, etag) = odata::read_one(&client, &people, &key, &pairs(&[("$select", "name")]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (Value::Object(row), etag),
        (json!({"name": "O'Neil"}), None)
    );
    let key = odata::parse_key(&people, "(id=99)").unwrap();
    assert!(
        odata::read_one(&client, &people, &key, &[])
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        odata::parse_key(&people, "('x')").unwrap_err().code,
        "InvalidValue"
    );
    assert_eq!(
        odata::parse_key(&people, "(nope=1)").unwrap_err().code,
        "InvalidKey"
    );

    let lines = set(&client, "public", "lines").await;
    let key = odata::parse_key(&lines, "(order_id=1,code='b''c')").unwrap();
    let (row, _) = odata::read_one(&client, &lines, &key, &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row["qty"], json!(7));
    assert_eq!(
        odata::parse_key(&lines, "(1)").unwrap_err().code,
        "InvalidKey"
    );

    let words = set(&client, "public", "words").await;
    let key = odata::parse_key(&words, "('it''s')").unwrap();
    let (row, _) = odata::read_one(&client, &words, &key, &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row["n"], json!(1));
}

#[tokio::test]
async fn writes_convert_json_honour_etags_and_refuse_bad_bodies() {
    let (_db, mut client) = database(
        "create table items (id serial primary key, name varchar(5) not null, price numeric(8,2),
             day date, systemmodstamp timestamptz not null default now());
         create view items_view as select id, name from items;",
    )
    .await;
    let items = set(&client, "public", "items").await;
    let tx = odata::request_transaction(&mut client, Duration::from_secs(5), true)
        .await
        .unwrap();
    let body = json!({"name": "pen", "price": 1.25, "day": "2024-02-29"});
    let row = odata::insert(&tx, &items, body.as_object().unwrap())
        .await
        .unwrap();
    assert_eq!(
        (row["id"].clone(), row["name"].clone(), row["price"].clone()),
        (json!(1), json!("pen"), json!(1.25))
    );
    let etag = odata::etag_of(&items, &row).unwrap();
    let key = odata::parse_key(&items, "(1)").unwrap();
    let (_, read_etag) = odata::read_one(&tx, &items, &key, &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read_etag.as_deref(), Some(etag.as_str()));

    let patch = json!({"name": "ink", "systemmodstamp": "2030-01-01T00:00:00Z"});
    let patch = patch.as_object().unwrap();
    assert_eq!(
        odata::update(
            &tx,
            &items,
            &key,
            patch,
            Some("W/\"1999-01-01T00:00:00.000000Z\"")
        )
        .await
        .unwrap(),
        UpdateOutcome::EtagMismatch
    );
    let UpdateOutcome::Updated(row) = odata::update(&tx, &items, &key, patch, Some(&etag))
        .await
        .unwrap()
    else {
        panic!("the update matches the ETag");
    };
    assert_eq!(row["name"], json!("ink"));
    let new_etag = odata::etag_of(&items, &row).unwrap();
    assert_eq!(new_etag, "W/\"2030-01-01T00:00:00.000000Z\"");
    let missing = odata::parse_key(&items, "(42)").unwrap();
    assert_eq!(
        odata::update(&tx, &items, &missing, patch, None)
            .await
            .unwrap(),
        UpdateOutcome::NotFound
    );

    for (body, code) in [
        (json!({"nope": 1}), "UnknownProperty"),
        (json!({"name": 5}), "InvalidValue"),
        (json!({"name": "toolong"}), "InvalidValue"),
        (json!({"name": null}), "InvalidValue"),
        (json!({"day": "2023-02-29"}), "InvalidValue"),
        (json!({"price": "abc"}), "InvalidValue"),
    ] {
        let error = odata::insert(&tx, &items, body.as_object().unwrap())
            .await
            .unwrap_err();
        assert_eq!(error.query_error().map(|e| e.code), Some(code), "{body}");
    }
    let view = odata::describe(&tx, "public", "items_view")
        .await
        .unwrap()
        .unwrap();
    let error = odata::insert(
        &tx,
        &view,
        json!({"id": 5, "name": "x"}).as_object().unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.query_error().map(|e| e.code), Some("ReadOnly"));

    assert_eq!(
        odata::delete(&tx, &items, &key, Some(&etag)).await.unwrap(),
        DeleteOutcome::EtagMismatch
    );
    assert_eq!(
        odata::delete(&tx, &items, &key, Some("*")).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        odata::delete(&tx, &items, &key, None).await.unwrap(),
        DeleteOutcome::NotFound
    );
    tx.commit().await.unwrap();

    // A read-only request transaction refuses writes.
    let tx = odata::request_transaction(&mut client, Duration::from_secs(5), false)
        .await
        .unwrap();
    let error = odata::insert(&tx, &items, json!({"name": "x"}).as_object().unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.sqlstate(), Some("25006"));
}

#[tokio::test]
async fn writes_to_a_synced_table_are_captured_by_its_trigger() {
    let (_db, mut client) = database_with_account(Access::ReadWrite).await;
    // As in pgforce's own sessions: the triggers skip writes made with 'hex'.
    client.batch_execute("set xmlbinary = 'hex'").await.unwrap();
    let account = set(&client, "salesforce", "account").await;
    let tx = odata::request_transaction(&mut client, Duration::from_secs(5), true)
        .await
        .unwrap();
    let body = json!({"name": "Acme", "external_id__c": "E-1"});
    let row = odata::insert(&tx, &account, body.as_object().unwrap())
        .await
        .unwrap();
    for (column, value) in [
        ("sfid", "x"),
        ("_hc_lastop", "x"),
        ("systemmodstamp", "2030-01-01T00:00:00Z"),
    ] {
        let body = json!({ column: value });
        let error = odata::insert(&tx, &account, body.as_object().unwrap())
            .await
            .unwrap_err();
        assert_eq!(
            error.query_error().map(|e| e.code),
            Some("ReadOnlyProperty"),
            "{column}"
        );
    }
    // Every field sent back unchanged (as Salesforce's UI edits do), one of them edited.
    let key = odata::parse_key(&account, &format!("({})", row["id"])).unwrap();
    let mut edit = row.clone();
    edit.insert("name".to_owned(), json!("Acme Inc"));
    let UpdateOutcome::Updated(updated) = odata::update(&tx, &account, &key, &edit, None)
        .await
        .unwrap()
    else {
        panic!("the row exists");
    };
    assert_eq!(updated["name"], json!("Acme Inc"));
    edit.insert("sfid".to_owned(), json!("001000000000001AAA"));
    let error = odata::update(&tx, &account, &key, &edit, None)
        .await
        .unwrap_err();
    assert_eq!(
        error.query_error().map(|e| e.code),
        Some("ReadOnlyProperty")
    );
    tx.commit().await.unwrap();
    let logged: Vec<(String, i32)> = client
        .query(
            "select action::text, record_id from salesforce._trigger_log where state = 'NEW' order by id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let id = i32::try_from(row["id"].as_i64().unwrap()).unwrap();
    assert_eq!(
        logged,
        [("INSERT".to_owned(), id), ("UPDATE".to_owned(), id)]
    );
}

fn plan_text(plan: &Value) -> String {
    plan.to_string()
}

#[tokio::test]
async fn indexed_reads_use_their_indexes() {
    let (_db, client) = database(&format!(
        "{MANY} create index many_maybe on many (maybe text_pattern_ops); analyze many;"
    ))
    .await;
    let many = set(&client, "public", "many").await;
    let limits = Limits {
        max_page_size: 1000,
        search_enabled: false,
    };
    let explain = |options: Vec<(String, String)>| {
        let (client, many) = (&client, &many);
        async move {
            let query = odata::parse_read(many, &options, &limits).unwrap();
            plan_text(&odata::explain(client, many, &query).await.unwrap())
        }
    };
    let plan = explain(pairs(&[("$filter", "id eq 4242")])).await;
    assert!(plan.contains("many_pkey"), "{plan}");
    let plan = explain(pairs(&[("$filter", "grp eq 7")])).await;
    assert!(plan.contains("many_grp"), "{plan}");
    let plan = explain(pairs(&[(
        "$filter",
        "at ge 2024-01-01T00:16:00Z and at lt 2024-01-01T00:16:02Z",
    )]))
    .await;
    assert!(plan.contains("many_at"), "{plan}");
    let plan = explain(pairs(&[("$orderby", "at desc"), ("$top", "10")])).await;
    assert!(
        plan.contains("many_at") && !plan.contains("\"Sort\""),
        "{plan}"
    );
    let plan = explain(pairs(&[("$filter", "startswith(maybe,'v10')")])).await;
    assert!(plan.contains("many_maybe"), "{plan}");

    // The next page of a keyset read starts in the index, without a sort or an offset.
    let query = odata::parse_read(&many, &pairs(&[]), &limits).unwrap();
    let token = odata::read(&client, &many, &query)
        .await
        .unwrap()
        .next_skiptoken
        .unwrap();
    let plan = explain(pairs(&[("$skiptoken", &token)])).await;
    assert!(
        plan.contains("many_pkey") && plan.contains("Index Cond") && !plan.contains("\"Sort\""),
        "{plan}"
    );
    // Descending too, on an index that holds the whole order.
    client
        .batch_execute("create index many_at_id on many (at, id); analyze many;")
        .await
        .unwrap();
    let options = [("$orderby", "at desc")];
    let query = odata::parse_read(&many, &pairs(&options), &limits).unwrap();
    let token = odata::read(&client, &many, &query)
        .await
        .unwrap()
        .next_skiptoken
        .unwrap();
    let plan = explain(pairs(&[("$orderby", "at desc"), ("$skiptoken", &token)])).await;
    assert!(
        plan.contains("many_at_id") && plan.contains("Backward") && !plan.contains("\"Sort\""),
        "{plan}"
    );
    // An equality on a text column, and $orderby with a filter and $top.
    let plan = explain(pairs(&[("$filter", "maybe eq 'v10'")])).await;
    assert!(plan.contains("many_maybe"), "{plan}");
    let plan = explain(pairs(&[
        ("$filter", "grp eq 3"),
        ("$orderby", "id"),
        ("$top", "5"),
    ]))
    .await;
    assert!(plan.contains("Index"), "{plan}");
}

#[tokio::test]
async fn garbage_filters_are_query_errors_never_panics() {
    let (_db, client) = database(PEOPLE).await;
    let people = set(&client, "public", "people").await;
    let pieces = [
        "(",
        ")",
        "'",
        "''",
        ",",
        " ",
        "eq",
        "and",
        "or",
        "not",
        "name",
        "age",
        "1",
        "-",
        "1.5e",
        "2024-01-3",
        "T",
        ":",
        "contains(",
        "length(",
        "null",
        "true",
        "é",
        "\u{0}",
        "$",
        "/",
        "abcdef01-2345-6789-abcd-ef012345678",
        "9999999999999999999999",
        "e",
        "M",
        "INF",
        "'a\u{0}b'",
        "add",
        "mul",
        "div",
        "mod",
        "divby",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut parsed = 0;
    for _ in 0..5000 {
        let length = next() % 12;
        let filter: String = (0..length)
            .map(|_| pieces[(next() % pieces.len() as u64) as usize])
            .collect();
        if let Ok(query) =
            odata::parse_read(&people, &pairs(&[("$filter", &filter)]), &Limits::default())
        {
            // Whatever parses also runs: no database error for a query the parser accepted.
            odata::read(&client, &people, &query)
                .await
                .unwrap_or_else(|e| panic!("$filter={filter:?}: {e}"));
            parsed += 1;
        }
    }
    assert!(parsed > 0);
}

#[tokio::test]
async fn views_page_by_id_and_keys_are_required_and_fixed() {
    let (_db, client) = database(&format!(
        "{MANY} create view many_view as select id, maybe from many where grp < 20;
         create table codes (code text primary key, label text);"
    ))
    .await;
    let view = set(&client, "public", "many_view").await;
    let limits = Limits {
        max_page_size: 500,
        search_enabled: false,
    };
    let (rows, pages) = read_all(&client, &view, &[("$orderby", "maybe desc")], &limits).await;
    let expected: i64 = client
        .query_one("select count(*) from many where grp < 20", &[])
        .await
        .unwrap()
        .get(0);
    let seen: HashSet<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!((rows.len() as i64, seen.len() as i64), (expected, expected));
    assert_eq!(pages as i64, (expected + 499) / 500);
    check_order(&rows, "maybe desc");

    let codes = set(&client, "public", "codes").await;
    let error = odata::insert(&client, &codes, json!({"label": "x"}).as_object().unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.query_error().map(|e| e.code), Some("MissingKey"));
    odata::insert(
        &client,
        &codes,
        json!({"code": "a", "label": "x"}).as_object().unwrap(),
    )
    .await
    .unwrap();
    let key = odata::parse_key(&codes, "('a')").unwrap();
    // The key may come back unchanged in the body (Salesforce sends every field)…
    let same = json!({"code": "a", "label": "y"});
    let UpdateOutcome::Updated(row) =
        odata::update(&client, &codes, &key, same.as_object().unwrap(), None)
            .await
            .unwrap()
    else {
        panic!("the row exists");
    };
    assert_eq!(row["label"], json!("y"));
    // …but cannot change.
    let changed = json!({"code": "b"});
    let error = odata::update(&client, &codes, &key, changed.as_object().unwrap(), None)
        .await
        .unwrap_err();
    assert_eq!(error.query_error().map(|e| e.code), Some("KeyChange"));
}

#[tokio::test]
async fn garbage_options_and_tokens_are_query_errors() {
    let (_db, client) = database(PEOPLE).await;
    let people = set(&client, "public", "people").await;
    let limits = Limits {
        max_page_size: 2,
        search_enabled: true,
    };
    let garbage = [
        "",
        " ",
        ",",
        "id,,name",
        "id desc desc",
        "name asc,",
        "*,id",
        "-1",
        "1e3",
        "eyJ2IjpbXX0",
        "e30",
        "%00",
        "\u{0}",
        "id eq",
        "🙂",
    ];
    for option in [
        "$select",
        "$orderby",
        "$top",
        "$skip",
        "$count",
        "$skiptoken",
        "$search",
    ] {
        for value in garbage {
            let request = pairs(&[(option, value)]);
            if let Ok(query) = odata::parse_read(&people, &request, &limits) {
                odata::read(&client, &people, &query)
                    .await
                    .unwrap_or_else(|e| panic!("{option}={value:?}: {e}"));
            }
        }
    }
    // A valid token of another entity set is refused as well.
    let query = odata::parse_read(&people, &[], &limits).unwrap();
    let token = odata::read(&client, &people, &query)
        .await
        .unwrap()
        .next_skiptoken
        .unwrap();
    let (_db2, other) = database(PEOPLE).await;
    other
        .batch_execute("alter table people rename to persons")
        .await
        .unwrap();
    let persons = set(&other, "public", "persons").await;
    let error =
        odata::parse_read(&persons, &pairs(&[("$skiptoken", &token)]), &limits).unwrap_err();
    assert_eq!(error.code, "InvalidSkipToken");
}

#[tokio::test]
async fn request_transactions_on_pooled_sessions_are_bounded_in_time() {
    let (db, client) = database(
        "create view slow as select 1 as id, pg_sleep(5)::text as slept;
         create table t (id int primary key);",
    )
    .await;
    let slow = set(&client, "public", "slow").await;
    let pool = pgforce_store::Pool::new(
        &db.url,
        pgforce_store::PoolOptions {
            size: 1,
            wait: Duration::from_secs(5),
        },
    )
    .unwrap();
    let mut session = pool.get().await.unwrap();
    let tx = odata::request_transaction(&mut session, Duration::from_millis(200), false)
        .await
        .unwrap();
    let query = odata::parse_read(&slow, &[], &Limits::default()).unwrap();
    let error = odata::read(&tx, &slow, &query).await.unwrap_err();
    // 57014: query_canceled (statement timeout).
    assert_eq!(error.sqlstate(), Some("57014"), "{error}");
    drop(tx);
    let tx = odata::request_transaction(&mut session, Duration::from_secs(5), false)
        .await
        .unwrap();
    let t = odata::describe(&tx, "public", "t").await.unwrap().unwrap();
    let error = odata::insert(&tx, &t, json!({"id": 1}).as_object().unwrap())
        .await
        .unwrap_err();
    // 25006: read_only_sql_transaction.
    assert_eq!(error.sqlstate(), Some("25006"), "{error}");
}

/// A small xorshift generator: the same sequence on every run.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// A random, mostly well-formed filter expression.
    fn expression(&mut self, depth: usize) -> String {
        const ATOMS: &[&str] = &[
            "id",
            "name",
            "age",
            "score",
            "ratio",
            "born",
            "seen",
            "local_seen",
            "active",
            "uid",
            "wake",
            "code",
            "photo",
            "null",
            "true",
            "false",
            "0",
            "-1",
            "2147483648",
            "9223372036854775807",
            "99999999999999999999999",
            "1.5",
            "-0.001M",
            "1e308",
            "3.4e39",
            "1e-300",
            "''",
            "'a''b'",
            "'%_\\'",
            "'ünï'",
            "2024-02-29",
            "2024-01-31T10:00:00Z",
            "0001-01-01T00:00:00-14:00",
            "9999-12-31T23:59:59.999999999+14:00",
            "23:59:59.999",
            "00000000-0000-0000-0000-000000000000",
        ];
        const FUNCTIONS: &[&str] = &[
            "contains",
            "startswith",
            "endswith",
            "tolower",
            "toupper",
            "trim",
            "length",
            "indexof",
            "concat",
            "substring",
            "year",
            "month",
            "day",
            "hour",
            "minute",
            "second",
            "date",
            "time",
        ];
        const BINARY: &[&str] = &[
            "eq", "ne", "gt", "ge", "lt", "le", "and", "or", "add", "sub", "mul", "div", "divby",
            "mod",
        ];
        if depth == 0 {
            return self.pick(ATOMS).to_owned();
        }
        match self.below(5) {
            0 => self.pick(ATOMS).to_owned(),
            1 => {
                let function = self.pick(FUNCTIONS);
                let args: Vec<String> = (0..1 + self.below(3))
                    .map(|_| self.expression(depth - 1))
                    .collect();
                format!("{function}({})", args.join(","))
            }
            2 => format!("not ({})", self.expression(depth - 1)),
            3 => format!("({})", self.expression(depth - 1)),
            _ => {
                let op = self.pick(BINARY);
                format!(
                    "{} {op} {}",
                    self.expression(depth - 1),
                    self.expression(depth - 1)
                )
            }
        }
    }
}

#[tokio::test]
async fn random_well_formed_filters_never_fail_in_postgres() {
    let (_db, client) = database(PEOPLE).await;
    let people = set(&client, "public", "people").await;
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..4000 {
        let filter = random.expression(4);
        match odata::parse_read(&people, &pairs(&[("$filter", &filter)]), &Limits::default()) {
            Ok(query) => {
                accepted += 1;
                odata::read(&client, &people, &query)
                    .await
                    .unwrap_or_else(|e| panic!("$filter={filter:?}: {e:?}"));
            }
            Err(error) => {
                refused += 1;
                assert!(!error.message.is_empty());
            }
        }
    }
    // Both outcomes are exercised.
    assert!(
        accepted > 100 && refused > 100,
        "{accepted} accepted, {refused} refused"
    );
}

#[tokio::test]
async fn random_write_bodies_and_keys_are_input_errors_or_values_postgres_refuses() {
    let (_db, mut client) = database(PEOPLE).await;
    let people = set(&client, "public", "people").await;
    let values = [
        json!(null),
        json!(true),
        json!(0),
        json!(-1),
        json!(32768),
        json!(2147483648_i64),
        json!(1.5),
        json!(1e300),
        json!("x"),
        json!(""),
        json!("2024-02-29"),
        json!("2024-02-30"),
        json!("2024-01-31T10:00:00Z"),
        json!("25:00"),
        json!("10:00"),
        json!("AQI="),
        json!("not base64!"),
        json!("abcdef01-2345-6789-abcd-ef0123456789"),
        json!("NaN"),
        json!("12345678901.5"),
        json!([1]),
        json!({"a": 1}),
    ];
    let names: Vec<String> = people.properties.iter().map(|p| p.name.clone()).collect();
    let mut random = Random(0x5eed);
    let mut stored = 0;
    for round in 0..600 {
        let mut body = serde_json::Map::new();
        body.insert("id".to_owned(), json!(1000 + round));
        for _ in 0..1 + random.below(4) {
            let name = &names[random.below(names.len())];
            body.insert(name.clone(), values[random.below(values.len())].clone());
        }
        let tx = odata::request_transaction(&mut client, Duration::from_secs(5), true)
            .await
            .unwrap();
        match odata::insert(&tx, &people, &body).await {
            Ok(row) => {
                stored += 1;
                let key = odata::parse_key(&people, &format!("({})", row["id"])).unwrap();
                let (again, _) = odata::read_one(&tx, &people, &key, &[])
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(again, row, "{body:?}");
            }
            Err(error) if error.query_error().is_some() => {}
            Err(error) => {
                // Only values Postgres itself finds out of range (class 22) or duplicate
                // keys (class 23) are left to it.
                let class = error.sqlstate().map(|code| &code[..2]);
                assert!(matches!(class, Some("22" | "23")), "{body:?}: {error:?}");
            }
        }
        tx.rollback().await.unwrap();
        let predicate = format!("({})", values[random.below(values.len())]);
        let _ = odata::parse_key(&people, &predicate);
    }
    assert!(stored > 10, "{stored}");
}
