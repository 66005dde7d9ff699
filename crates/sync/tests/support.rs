//! An org, a database and one mapping wired together.

use std::time::Duration;

use pgforce_emulator::testing::TestOrg;
use pgforce_emulator::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PASSWORD, DEFAULT_USERNAME, EmulatorConfig,
};
use pgforce_salesforce::{Client, ClientConfig, Credentials, RetryPolicy, SecretString};
use pgforce_store::catalog::{connections, mappings};
use pgforce_store::ddl::{create_mapped_table, ensure_connection_schema};
use pgforce_store::testing::TestDatabase;
use pgforce_store::{Access, Ident, MappingId};
use pgforce_sync::ReadOutcome;
use pgforce_sync::testing::{
    Mapping, MappingSpec, ResumeOutcome, Target, WriteOutcome, WritePolicy, initial_load,
    poll_once, poll_with_overlap, resume_pending, write_once,
};

/// A custom object with every field type the reader maps.
pub const SCHEMA: &str = r#"{"objects": [{"name": "Gadget__c", "fields": [
  {"name": "Name", "type": "string", "length": 80, "nameField": true},
  {"name": "Code__c", "type": "string", "length": 20, "externalId": true, "unique": true},
  {"name": "Price__c", "type": "currency", "precision": 10, "scale": 2},
  {"name": "Stock__c", "type": "int"},
  {"name": "Ratio__c", "type": "percent", "precision": 5, "scale": 2},
  {"name": "Active__c", "type": "boolean"},
  {"name": "Launched__c", "type": "date"},
  {"name": "Checked_At__c", "type": "datetime"},
  {"name": "Notes__c", "type": "textarea", "length": 32000},
  {"name": "Kind__c", "type": "picklist", "picklistValues": ["A", "B"]},
  {"name": "Tags__c", "type": "multipicklist", "picklistValues": ["x", "y", "z"]},
  {"name": "Email__c", "type": "email"},
  {"name": "Site__c", "type": "url"},
  {"name": "Account__c", "type": "reference", "referenceTo": ["Account"], "relationshipName": "Account__r"},
  {"name": "Maker__c", "type": "reference", "referenceTo": ["Maker__c"], "relationshipName": "Maker__r"},
  {"name": "Batch_Ref__c", "type": "string", "length": 20, "externalId": true}
]}, {"name": "Maker__c", "fields": [
  {"name": "Name", "type": "string", "length": 80, "nameField": true},
  {"name": "Code__c", "type": "string", "length": 20, "externalId": true, "unique": true},
  {"name": "Email__c", "type": "email"}
]}, {"name": "Strict__c", "fields": [
  {"name": "Name", "type": "string", "length": 10, "nameField": true},
  {"name": "Status__c", "type": "picklist", "picklistValues": ["Open", "Closed"], "restrictedPicklist": true},
  {"name": "Owner_Code__c", "type": "string", "length": 10, "required": true},
  {"name": "Count__c", "type": "int"},
  {"name": "Account__c", "type": "reference", "referenceTo": ["Account"], "relationshipName": "Account__r"}
]}]}"#;

/// Every custom field of Gadget__c plus Name.
pub const FIELDS: [&str; 15] = [
    "Name",
    "Code__c",
    "Price__c",
    "Stock__c",
    "Ratio__c",
    "Active__c",
    "Launched__c",
    "Checked_At__c",
    "Notes__c",
    "Kind__c",
    "Tags__c",
    "Email__c",
    "Site__c",
    "Account__c",
    "CreatedDate",
];

/// Everything one test needs.
pub struct Harness {
    pub org: TestOrg,
    pub sf: Client,
    pub db: TestDatabase,
    pub pg: tokio_postgres::Client,
    pub schema: Ident,
    pub mapping: Mapping,
    pub mapping_id: MappingId,
}

/// Starts an org with the test schema, logs in with pages of `batch` records, creates a
/// database with the Gadget__c table and registers the mapping.
pub async fn harness(batch: u32, config: EmulatorConfig) -> Harness {
    harness_with(batch, config, Some("Code__c")).await
}

/// As [`harness`], with the given upsert field (or none).
pub async fn harness_with(
    batch: u32,
    config: EmulatorConfig,
    upsert_field: Option<&str>,
) -> Harness {
    harness_mapping(batch, config, upsert_field, &[]).await
}

/// As [`harness_with`], mapping `extra_fields` besides [`FIELDS`].
pub async fn harness_mapping(
    batch: u32,
    config: EmulatorConfig,
    upsert_field: Option<&str>,
    extra_fields: &[&str],
) -> Harness {
    let schema_file = pgforce_emulator::Emulator::parse_schema_file(SCHEMA).unwrap();
    let org = TestOrg::start_with(EmulatorConfig {
        schema_files: vec![schema_file],
        ..config
    })
    .await;
    let credentials = Credentials::Password {
        client_id: DEFAULT_CLIENT_ID.to_owned(),
        client_secret: SecretString::from(DEFAULT_CLIENT_SECRET),
        username: DEFAULT_USERNAME.to_owned(),
        password: SecretString::from(DEFAULT_PASSWORD),
    };
    let mut config = ClientConfig::new(org.https_url.clone(), credentials);
    config.allowed_hosts =
        pgforce_salesforce::AllowedHosts::with_extra(&["localhost"]).expect("a host");
    config.extra_root_certificate_pem = Some(org.ca_pem.clone());
    config.query_batch_size = Some(batch);
    config.retry = RetryPolicy {
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        ..RetryPolicy::default()
    };
    let sf = Client::new(config).unwrap();
    let describe = sf.describe("Gadget__c").await.unwrap();
    let spec = MappingSpec {
        object: "Gadget__c".to_owned(),
        fields: FIELDS
            .iter()
            .chain(extra_fields)
            .map(|f| (*f).to_owned())
            .collect(),
        access: Access::ReadWrite,
        upsert_field: upsert_field.map(str::to_owned),
        polling_seconds: 1,
        max_daily_api_calls: 30_000,
        bulk_threshold: pgforce_sync::DEFAULT_BULK_THRESHOLD,
    };
    let mapping = Mapping::resolve(spec, &describe).unwrap();
    let db = TestDatabase::create().await;
    let mut pg = db.client().await;
    let schema = Ident::new("salesforce").unwrap();
    ensure_connection_schema(&pg, &schema).await.unwrap();
    create_mapped_table(&mut pg, &mapping.table_spec(&schema))
        .await
        .unwrap();
    let mapping_id = register(&pg, &mapping).await;
    Harness {
        org,
        sf,
        db,
        pg,
        schema,
        mapping,
        mapping_id,
    }
}

/// Registers the `main` connection (schema `salesforce`) and a mapping in the catalog,
/// as the engine does; returns the mapping's id.
pub async fn register(pg: &tokio_postgres::Client, mapping: &Mapping) -> MappingId {
    let connection = connections::declare(pg, "main", "salesforce", "{}")
        .await
        .unwrap();
    mappings::declare(
        pg,
        &mappings::Declaration {
            connection,
            object: &mapping.object,
            table: mapping.table.as_str(),
            access: mapping.spec.access,
            settings: "{}",
            origin: mappings::Origin::Runtime,
            imported_config: None,
        },
    )
    .await
    .unwrap()
}

impl Harness {
    /// Settles the PENDING rows a stopped writer left, as a starting writer does (no
    /// lease, nothing left alone).
    pub async fn resume(&mut self) -> ResumeOutcome {
        resume_pending(
            &self.sf,
            &mut self.pg,
            &self.schema,
            std::slice::from_ref(&self.mapping),
            pgforce_store::trigger_log::resume::LeftAlone::default(),
            None,
        )
        .await
        .unwrap()
    }

    /// Loads the mapping (initial load), as the daemon's first pass does.
    pub async fn load(&mut self) -> ReadOutcome {
        let target = Target {
            schema: &self.schema,
            mapping: &self.mapping,
            mapping_id: self.mapping_id,
            fence: None,
        };
        initial_load(&self.sf, &mut self.pg, &target, &mut |_| {})
            .await
            .unwrap()
    }

    /// One poll of the mapping.
    pub async fn poll(&mut self) -> ReadOutcome {
        let target = Target {
            schema: &self.schema,
            mapping: &self.mapping,
            mapping_id: self.mapping_id,
            fence: None,
        };
        poll_once(&self.sf, &mut self.pg, &target).await.unwrap()
    }

    /// One poll that reads nothing again before its cursor, as a poll does once the cursor
    /// is further back than the overlap window (`poll_overlap_seconds`).
    pub async fn poll_past_overlap(&mut self) -> ReadOutcome {
        let target = Target {
            schema: &self.schema,
            mapping: &self.mapping,
            mapping_id: self.mapping_id,
            fence: None,
        };
        poll_with_overlap(&self.sf, &mut self.pg, &target, Duration::ZERO)
            .await
            .unwrap()
    }

    /// One writer pass over the mapping.
    pub async fn write(&mut self, policy: &WritePolicy) -> WriteOutcome {
        write_once(
            &self.sf,
            &mut self.pg,
            &self.schema,
            std::slice::from_ref(&self.mapping),
            policy,
        )
        .await
        .unwrap()
    }

    /// Creates a Gadget__c in the org; returns its Id.
    pub async fn create_in_salesforce(&self, fields: serde_json::Value) -> String {
        self.sf
            .create("Gadget__c", &serde_json::from_value(fields).unwrap())
            .await
            .unwrap()
    }

    /// Rows in the table.
    pub async fn count(&self) -> i64 {
        self.pg
            .query_one("select count(*) from salesforce.gadget__c", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Distinct sfids in the table.
    pub async fn distinct_sfids(&self) -> i64 {
        self.pg
            .query_one("select count(distinct sfid) from salesforce.gadget__c", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// The mapping's state and last error in the catalog.
    pub async fn mapping_state(&self) -> (String, Option<String>) {
        let row = self
            .pg
            .query_one(
                "select state, last_error from pgforce.mappings where id = $1",
                &[&self.mapping_id.get()],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    }
}
