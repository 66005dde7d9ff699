//! A database with a connection schema and an Account table like the ones the reader
//! will create.

use pgforce_store::ddl::{
    ColumnSpec, KeyColumn, MappedTable, PgType, create_mapped_table, ensure_connection_schema,
};
use pgforce_store::testing::TestDatabase;
use pgforce_store::{Access, Ident};
use tokio_postgres::Client;

fn column(name: &str, pg_type: PgType) -> ColumnSpec {
    ColumnSpec {
        name: Ident::new(name).unwrap(),
        pg_type,
    }
}

/// The Account mapping used by the tests.
pub fn account_table(access: Access) -> MappedTable {
    MappedTable {
        schema: Ident::new("salesforce").unwrap(),
        table: Ident::new("account").unwrap(),
        columns: vec![
            column("name", PgType::Varchar(255)),
            column("annualrevenue", PgType::DoublePrecision),
            column("numberofemployees", PgType::Integer),
            column("createddate", PgType::Timestamp),
            column("description", PgType::Text),
            column("external_id__c", PgType::Varchar(40)),
            column("systemmodstamp", PgType::Timestamp),
        ],
        key_column: Some(KeyColumn {
            name: Ident::new("external_id__c").unwrap(),
            unique: true,
        }),
        access,
    }
}

/// A database with the `salesforce` schema and an account table.
pub async fn database_with_account(access: Access) -> (TestDatabase, Client) {
    let db = TestDatabase::create().await;
    let mut client = db.client().await;
    ensure_connection_schema(&client, &Ident::new("salesforce").unwrap())
        .await
        .unwrap();
    create_mapped_table(&mut client, &account_table(access))
        .await
        .unwrap();
    (db, client)
}
