//! Realistic records for seeding an org and for the workload generator.
//!
//! One generator serves every object, standard or custom: it fills each writable field by
//! its type, with names, cities, emails and phone numbers chosen by the field's name, picks
//! parents among existing records for references, and numbers unique and external-id
//! values so they never clash. Records go through the same validation as API writes.

use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Map, Value as Json, json};

use crate::datetime;
use crate::org::{FieldDef, FieldType, ObjectIndex, Org, RecordRef};
use crate::state::Shared;

const FIRST_NAMES: [&str; 24] = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Ken",
    "Margaret",
    "Linus",
    "Radia",
    "Tim",
    "Frances",
    "John",
    "Katherine",
    "Dennis",
    "Hedy",
    "Niklaus",
    "Sophie",
    "Bjarne",
    "Lynn",
    "Guido",
    "Annie",
    "Yukihiro",
    "Shafi",
];
const LAST_NAMES: [&str; 24] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Thompson",
    "Hamilton",
    "Torvalds",
    "Perlman",
    "Berners-Lee",
    "Allen",
    "McCarthy",
    "Johnson",
    "Ritchie",
    "Lamarr",
    "Wirth",
    "Wilson",
    "Stroustrup",
    "Conway",
    "van Rossum",
    "Easley",
    "Matsumoto",
    "Goldwasser",
];
const COMPANY_WORDS: [&str; 20] = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Wonka",
    "Gringotts",
    "Monarch",
    "Oscorp",
    "Aperture",
    "Massive",
    "Dynamic",
    "Blue Sun",
    "Nakatomi",
];
const COMPANY_SUFFIXES: [&str; 8] = [
    "Inc", "Corp", "LLC", "Ltd", "Group", "Holdings", "Labs", "GmbH",
];
const CITIES: [(&str, &str, &str); 10] = [
    ("San Francisco", "CA", "USA"),
    ("New York", "NY", "USA"),
    ("Austin", "TX", "USA"),
    ("Chicago", "IL", "USA"),
    ("Seattle", "WA", "USA"),
    ("London", "London", "United Kingdom"),
    ("Paris", "Île-de-France", "France"),
    ("Berlin", "Berlin", "Germany"),
    ("Tokyo", "Tokyo", "Japan"),
    ("São Paulo", "SP", "Brazil"),
];
const WORDS: [&str; 16] = [
    "renewal",
    "pilot",
    "expansion",
    "upgrade",
    "support",
    "migration",
    "onboarding",
    "audit",
    "integration",
    "training",
    "license",
    "rollout",
    "review",
    "escalation",
    "quote",
    "follow-up",
];

/// Makes plausible field values for records of any object.
pub struct Generator<'a> {
    org: &'a Org,
    /// A number mixed into unique values so two generators never collide.
    salt: u64,
}

impl<'a> Generator<'a> {
    /// A generator over an org's current records.
    pub fn new(org: &'a Org, salt: u64) -> Self {
        Self { org, salt }
    }

    /// A random live record of an object, if it has any.
    pub fn random_live(&self, object: ObjectIndex, rng: &mut impl Rng) -> Option<RecordRef> {
        let table = self.org.table(object);
        let upper = table.next_seq();
        if upper <= 1 || table.live_count() == 0 {
            return None;
        }
        for _ in 0..16 {
            let seq = rng.random_range(1..upper);
            if table.get(seq).is_some_and(|r| !r.is_deleted()) {
                return Some(RecordRef { object, seq });
            }
        }
        table
            .iter()
            .rev()
            .find(|(_, r)| !r.is_deleted())
            .map(|(seq, _)| RecordRef { object, seq })
    }

    /// A full record body for a create: required fields always, others most of the time.
    pub fn record(&self, object: ObjectIndex, n: u64, rng: &mut impl Rng) -> Map<String, Json> {
        let def = self.org.schema().object(object);
        let mut body = Map::new();
        let person = (
            FIRST_NAMES.choose(rng).copied().unwrap_or("Ada"),
            LAST_NAMES.choose(rng).copied().unwrap_or("Lovelace"),
        );
        for (_, field) in def.visible_fields() {
            if field.system || !field.createable {
                continue;
            }
            if !field.required_on_create()
                && !field.unique
                && !field.external_id
                && rng.random_bool(0.15)
            {
                continue;
            }
            if let Some(value) = self.value(object, field, n, person, rng) {
                body.insert(field.name.clone(), value);
            }
        }
        body
    }

    /// New values for one to three updatable, non-reference fields of a record.
    pub fn changes(&self, object: ObjectIndex, n: u64, rng: &mut impl Rng) -> Map<String, Json> {
        let def = self.org.schema().object(object);
        let candidates: Vec<&FieldDef> = def
            .visible_fields()
            .map(|(_, f)| f)
            .filter(|f| {
                f.updateable
                    && !f.system
                    && f.field_type != FieldType::Reference
                    && !f.unique
                    && !f.external_id
            })
            .collect();
        let mut body = Map::new();
        let person = (
            FIRST_NAMES.choose(rng).copied().unwrap_or("Ada"),
            LAST_NAMES.choose(rng).copied().unwrap_or("Lovelace"),
        );
        for _ in 0..rng.random_range(1..=3) {
            if let Some(field) = candidates.choose(rng)
                && let Some(value) = self.value(object, field, n, person, rng)
            {
                body.insert(field.name.clone(), value);
            }
        }
        body
    }

    fn value(
        &self,
        object: ObjectIndex,
        field: &FieldDef,
        n: u64,
        person: (&str, &str),
        rng: &mut impl Rng,
    ) -> Option<Json> {
        let name = field.name.to_ascii_lowercase();
        let value = match field.field_type {
            FieldType::Reference => {
                let target = self
                    .org
                    .schema()
                    .object_index(field.reference_to.first()?)?;
                if target == object && rng.random_bool(0.8) {
                    return None;
                }
                if self.org.schema().object(target).name == "User" {
                    return Some(json!(self.org.admin().id18(self.org.schema())));
                }
                json!(self.random_live(target, rng)?.id18(self.org.schema()))
            }
            FieldType::Picklist | FieldType::Combobox => json!(field.picklist_values.choose(rng)?),
            FieldType::Multipicklist => {
                let picked: Vec<&String> = field.picklist_values.choose_multiple(rng, 2).collect();
                json!(
                    picked
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(";")
                )
            }
            FieldType::Boolean => json!(rng.random_bool(0.3)),
            FieldType::Int => json!(rng.random_range(1..10_000)),
            FieldType::Percent => json!(rng.random_range(0..=100)),
            FieldType::Double | FieldType::Currency => {
                let digits = i32::try_from(field.precision.saturating_sub(field.scale))
                    .unwrap_or(18)
                    .min(9);
                let max = 10_f64.powi(digits) - 1.0;
                let scale = 10_f64.powi(i32::try_from(field.scale).unwrap_or(0));
                json!((rng.random_range(0.0..max.min(5_000_000.0)) * scale).round() / scale)
            }
            FieldType::Date => {
                let today = datetime::date_of(datetime::now_millis());
                json!(datetime::format_date(today + rng.random_range(-365..365)))
            }
            FieldType::Datetime => {
                json!(datetime::format_datetime(
                    datetime::now_millis() - rng.random_range(0..30 * 86_400_000)
                ))
            }
            FieldType::Email => json!(format!(
                "{}.{}{}@example.com",
                person.0.to_lowercase(),
                person.1.to_lowercase().replace(' ', ""),
                n
            )),
            FieldType::Phone => json!(format!(
                "(555) {:03}-{:04}",
                rng.random_range(100..1000),
                rng.random_range(0..10_000)
            )),
            FieldType::Url => json!(format!(
                "https://www.{}.example.com",
                COMPANY_WORDS.choose(rng)?.to_lowercase().replace(' ', "")
            )),
            FieldType::Id => return None,
            FieldType::String | FieldType::Textarea if field.unique || field.external_id => {
                let prefix: String = self
                    .org
                    .schema()
                    .object(object)
                    .name
                    .chars()
                    .filter(char::is_ascii_alphabetic)
                    .take(3)
                    .collect();
                // The counter comes first so a short field keeps values unique when truncated.
                json!(format!("{}{n}-{:x}", prefix.to_uppercase(), self.salt))
            }
            FieldType::String | FieldType::Textarea => {
                json!(self.text(object, &name, field, n, person, rng))
            }
        };
        Some(match value {
            Json::String(s)
                if field.field_type.is_text() && s.chars().count() > field.length as usize =>
            {
                Json::String(s.chars().take(field.length as usize).collect())
            }
            other => other,
        })
    }

    fn text(
        &self,
        object: ObjectIndex,
        name: &str,
        field: &FieldDef,
        n: u64,
        person: (&str, &str),
        rng: &mut impl Rng,
    ) -> String {
        let (city, state, country) = *CITIES.choose(rng).unwrap_or(&CITIES[0]);
        let company = || {
            format!(
                "{} {}",
                COMPANY_WORDS.choose(&mut rand::rng()).unwrap_or(&"Acme"),
                COMPANY_SUFFIXES.choose(&mut rand::rng()).unwrap_or(&"Inc")
            )
        };
        match name {
            "firstname" => person.0.to_owned(),
            "lastname" => person.1.to_owned(),
            n if n.contains("city") => city.to_owned(),
            n if n.contains("state") => state.to_owned(),
            n if n.contains("country") => country.to_owned(),
            n if n.contains("postalcode") => format!("{:05}", rng.random_range(10_000..99_999)),
            n if n.contains("street") => format!(
                "{} {} Street",
                rng.random_range(1..999),
                LAST_NAMES.choose(rng).unwrap_or(&"Main")
            ),
            "company" | "companyname" | "suppliedcompany" => company(),
            "name" if field.name_field => match self.org.schema().object(object).name.as_str() {
                "Opportunity" => format!("{} {}", company(), WORDS.choose(rng).unwrap_or(&"deal")),
                _ => company(),
            },
            "title" => [
                "CEO",
                "CTO",
                "VP Sales",
                "Engineer",
                "Buyer",
                "Director of IT",
            ]
            .choose(rng)
            .unwrap_or(&"CEO")
            .to_string(),
            "alias" => format!("u{n}"),
            n if n.contains("description") || n.contains("subject") || n.contains("nextstep") => {
                let words: Vec<&str> = WORDS.choose_multiple(rng, 3).copied().collect();
                format!("{} #{n}", words.join(" "))
            }
            _ => format!("{} {}", WORDS.choose(rng).unwrap_or(&"note"), n),
        }
    }
}

/// How many records of which objects to create.
pub type SeedPlan = Vec<(String, usize)>;

/// The org `pgforce emulator --seed demo` starts with.
pub fn demo_plan() -> SeedPlan {
    vec![
        ("Account".to_owned(), 2000),
        ("Contact".to_owned(), 5000),
        ("Opportunity".to_owned(), 3000),
        ("Lead".to_owned(), 1000),
        ("Case".to_owned(), 1000),
    ]
}

/// Records created per write-lock hold, so readers are not starved during large seeds.
const SEED_CHUNK: usize = 2000;

/// Creates records as planned; returns how many of each were created, or the first error.
pub fn seed(shared: &Shared, plan: &SeedPlan) -> Result<Vec<(String, usize)>, String> {
    let mut created = Vec::with_capacity(plan.len());
    let mut rng = rand::rng();
    let salt: u64 = rng.random();
    for (name, count) in plan {
        let object = shared
            .org()
            .schema()
            .object_index(name)
            .ok_or_else(|| format!("unknown object {name:?}"))?;
        let mut done = 0;
        while done < *count {
            let chunk = SEED_CHUNK.min(count - done);
            let mut org = shared.org_mut();
            let user = org.admin();
            let bodies: Vec<Map<String, Json>> = {
                let generator = Generator::new(&org, salt);
                (0..chunk)
                    .map(|i| generator.record(object, (done + i) as u64, &mut rng))
                    .collect()
            };
            let mut txn = org.begin(user);
            for body in &bodies {
                txn.create(object, body)
                    .map_err(|e| format!("seeding {name}: {}: {}", e.code, e.message))?;
            }
            done += chunk;
        }
        created.push((shared.org().schema().object(object).name.clone(), done));
    }
    Ok(created)
}
