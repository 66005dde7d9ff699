//! The tables, columns, types, indexes, triggers and functions pgforce creates match
//! Heroku Connect's (reference §2.2–§2.5), checked through the system catalogs.

use pgforce_store::Access;
use pgforce_store::Ident;
use pgforce_store::ddl::{ColumnSpec, PgType, TableChange, create_mapped_table};
use tokio_postgres::Client;

use crate::support::{account_table, database_with_account};

async fn strings(client: &Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn mapped_table_has_heroku_connect_columns_and_types() {
    let (_db, client) = database_with_account(Access::ReadWrite).await;
    let columns = strings(
        &client,
        "select column_name || ' ' || case when data_type = 'character varying'
                then 'varchar(' || character_maximum_length || ')' else data_type end
         from information_schema.columns where table_schema = 'salesforce' and table_name = 'account'
         order by column_name",
    )
    .await;
    assert_eq!(
        columns,
        [
            "_hc_err text",
            "_hc_lastop varchar(32)",
            "annualrevenue double precision",
            "createddate timestamp without time zone",
            "description text",
            "external_id__c varchar(40)",
            "id integer",
            "isdeleted boolean",
            "name varchar(255)",
            "numberofemployees integer",
            "sfid varchar(18)",
            "systemmodstamp timestamp without time zone",
        ]
    );
    let sfid_collation = strings(&client, "select collation_name::text from information_schema.columns where table_name = 'account' and column_name = 'sfid'").await;
    assert_eq!(sfid_collation, ["ucs_basic"]);
    let id_default = strings(&client, "select column_default from information_schema.columns where table_name = 'account' and column_name = 'id'").await;
    assert_eq!(
        id_default,
        ["nextval('salesforce.account_id_seq'::regclass)"]
    );
}

#[tokio::test]
async fn indexes_and_constraints_carry_heroku_connect_names() {
    let (_db, client) = database_with_account(Access::ReadWrite).await;
    let indexes = strings(&client, "select indexname::text || ' ' || indexdef from pg_indexes where schemaname = 'salesforce' and tablename = 'account' order by 1").await;
    assert_eq!(indexes.len(), 4, "{indexes:#?}");
    assert!(indexes[0].starts_with(
        "account_pkey CREATE UNIQUE INDEX account_pkey ON salesforce.account USING btree (id)"
    ));
    assert!(indexes[1].starts_with("hc_idx_account_systemmodstamp CREATE INDEX"));
    assert!(indexes[2].starts_with("hcu_idx_account_external_id__c CREATE UNIQUE INDEX"));
    assert!(indexes[3].starts_with("hcu_idx_account_sfid CREATE UNIQUE INDEX"));
    let log_indexes = strings(&client, "select indexname::text from pg_indexes where schemaname = 'salesforce' and tablename like '\\_trigger\\_log%' order by 1").await;
    assert_eq!(
        log_indexes,
        [
            "_trigger_log_archive_idx_created_at",
            "_trigger_log_archive_idx_record_id",
            "_trigger_log_archive_idx_state_table_name",
            "_trigger_log_archive_pkey",
            "_trigger_log_idx_created_at",
            "_trigger_log_idx_state_id",
            "_trigger_log_idx_state_table_name",
            "_trigger_log_pkey",
        ]
    );
}

#[tokio::test]
async fn trigger_log_tables_have_heroku_connect_columns() {
    let (_db, client) = database_with_account(Access::ReadWrite).await;
    for table in ["_trigger_log", "_trigger_log_archive"] {
        let columns = strings(
            &client,
            &format!(
                "select column_name || ' ' || case when data_type = 'character varying'
                        then 'varchar(' || character_maximum_length || ')' else data_type end
                 from information_schema.columns where table_schema = 'salesforce' and table_name = '{table}'
                 order by ordinal_position"
            ),
        )
        .await;
        assert_eq!(
            columns,
            [
                "id integer",
                "txid bigint",
                "created_at timestamp with time zone",
                "updated_at timestamp with time zone",
                "processed_at timestamp with time zone",
                "processed_tx bigint",
                "state varchar(8)",
                "action varchar(7)",
                "table_name varchar(128)",
                "record_id integer",
                "sfid varchar(18)",
                "old text",
                "values text",
                "sf_result integer",
                "sf_message text",
            ],
            "{table}"
        );
    }
}

#[tokio::test]
async fn triggers_and_functions_carry_heroku_connect_names() {
    let (_db, client) = database_with_account(Access::ReadWrite).await;
    let triggers = strings(&client, "select event_object_table::text || '.' || trigger_name::text || ' ' || action_timing || ' ' || event_manipulation from information_schema.triggers where trigger_schema = 'salesforce' order by 1").await;
    assert_eq!(
        triggers,
        [
            "_trigger_log.tlog_insert_trigger AFTER INSERT",
            "account.hc_account_logtrigger AFTER DELETE",
            "account.hc_account_logtrigger AFTER INSERT",
            "account.hc_account_logtrigger AFTER UPDATE",
            "account.hc_account_status_trigger BEFORE INSERT",
            "account.hc_account_status_trigger BEFORE UPDATE",
        ]
    );
    let functions = strings(&client, "select n.nspname || '.' || p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname in ('salesforce', 'public') and p.proname like any (array['hc\\_%', 'tlog%', 'get_xmlbinary']) order by 1").await;
    assert_eq!(
        functions,
        [
            "public.get_xmlbinary",
            "salesforce.hc_account_logger",
            "salesforce.hc_account_status",
            "salesforce.hc_capture_insert_from_row",
            "salesforce.hc_capture_update_from_row",
            "salesforce.tlog_notify_trigger",
        ]
    );
}

#[tokio::test]
async fn creating_again_is_idempotent_and_adds_new_fields() {
    let (_db, mut client) = database_with_account(Access::ReadWrite).await;
    let mut spec = account_table(Access::ReadWrite);
    spec.columns.push(ColumnSpec {
        name: Ident::new("industry").unwrap(),
        pg_type: PgType::Varchar(255),
    });
    let added = create_mapped_table(&mut client, &spec).await.unwrap();
    assert_eq!(
        added,
        TableChange::Altered(vec![Ident::new("industry").unwrap()])
    );
    let again = create_mapped_table(&mut client, &spec).await.unwrap();
    assert_eq!(
        again,
        TableChange::Altered(Vec::new()),
        "nothing to add the second time"
    );
    let added = strings(&client, "select column_name::text from information_schema.columns where table_name = 'account' and column_name = 'industry'").await;
    assert_eq!(added, ["industry"]);
    let user = pgforce_store::ddl::MappedTable {
        table: Ident::new("user").unwrap(),
        key_column: None,
        ..spec
    };
    assert_eq!(
        create_mapped_table(&mut client, &user).await.unwrap(),
        TableChange::Created
    );
    let count: i64 = client
        .query_one("select count(*) from salesforce.\"user\"", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0, "a table named after a reserved word works quoted");
}

#[tokio::test]
async fn processes_setting_up_one_fresh_database_together_all_succeed() {
    use pgforce_store::ddl::ensure_connection_schema;
    let db = pgforce_store::testing::TestDatabase::create().await;
    let mut setups = Vec::new();
    for _ in 0..4 {
        let url = db.url.clone();
        setups.push(tokio::spawn(async move {
            let mut client = pgforce_store::testing::connect(&url).await;
            let schema = Ident::new("salesforce").unwrap();
            ensure_connection_schema(&client, &schema).await?;
            create_mapped_table(&mut client, &account_table(Access::ReadWrite)).await
        }));
    }
    let mut created = 0;
    for setup in setups {
        // Without serialised DDL, one fails on the hstore extension or the table.
        if setup.await.unwrap().unwrap() == TableChange::Created {
            created += 1;
        }
    }
    assert_eq!(
        created, 1,
        "one process created the table, the others found it"
    );
}

#[tokio::test]
async fn the_upsert_field_index_is_unique_only_while_salesforce_holds_the_field_unique() {
    let (_db, mut client) = database_with_account(Access::ReadWrite).await;
    let indexes = "select indexname::text || case when indexdef like 'CREATE UNIQUE%' then ' unique' else '' end
                   from pg_indexes where tablename = 'account' and indexdef like '%(external_id__c)'";
    assert_eq!(
        strings(&client, indexes).await,
        ["hcu_idx_account_external_id__c unique"]
    );
    // The field stops being unique in Salesforce: the table follows.
    let mut spec = account_table(Access::ReadWrite);
    if let Some(key) = spec.key_column.as_mut() {
        key.unique = false;
    }
    create_mapped_table(&mut client, &spec).await.unwrap();
    assert_eq!(
        strings(&client, indexes).await,
        ["hc_idx_account_external_id__c"]
    );
    client
        .batch_execute(
            "set xmlbinary = 'hex';
             insert into salesforce.account (name, external_id__c) values ('One', 'E'), ('Two', 'E')",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn completing_a_connection_schema_while_a_writer_claims_rows_deadlocks_nobody() {
    let (db, client) = database_with_account(Access::ReadWrite).await;
    client
        .batch_execute("insert into salesforce.account (name) values ('Claimed')")
        .await
        .unwrap();
    // A writer's claim: it reads the log row for update, then marks it.
    let mut writer = db.client().await;
    let claim = writer.transaction().await.unwrap();
    claim
        .query("select id from salesforce._trigger_log for update", &[])
        .await
        .unwrap();
    // Meanwhile an import completes the connection's schema in another session, and
    // waits for the claim.
    let importer = db.client().await;
    let importer_pid: i32 = importer
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let schema = tokio::spawn(async move {
        pgforce_store::ddl::ensure_connection_schema(&importer, &Ident::new("salesforce").unwrap())
            .await
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: bool = client
            .query_one(
                "select exists (select 1 from pg_locks where pid = $1 and not granted)",
                &[&importer_pid],
            )
            .await
            .unwrap()
            .get(0);
        if waiting {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the import never waited for the claim"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The claim goes on: it must not become a deadlock victim, nor make one.
    claim
        .execute("update salesforce._trigger_log set state = 'PENDING'", &[])
        .await
        .expect("the claim is not a deadlock victim");
    claim.commit().await.unwrap();
    schema
        .await
        .unwrap()
        .expect("the import completes once the claim commits");
}
