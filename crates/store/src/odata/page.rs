//! Reading one page: keyset paging and the `$skiptoken` that carries it.
//!
//! The order of every read is total: the `$orderby` properties, then the key. A page
//! ends after at most `max_page_size` rows; when more follow, the skip token holds the
//! last row's values of that order (as exact text), what is left of `$top`, and a
//! checksum over them and the options that shape the result. The next page is the same
//! request plus the token, compiled as "after this row" — a row-value comparison when
//! every column sorts the same way and none can be null, else the expanded form — so it
//! never uses OFFSET and page 500 costs what page 1 costs. `$skip` is applied on the
//! first page only. Nulls sort as Postgres sorts them by default (last ascending, first
//! descending), which is also how a plain index is ordered.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use super::json::{self, Binds, Param};
use super::{EntitySet, Map, Property, QueryError, ReadQuery, compile, quote};
use crate::error::{Context as _, Error, Result};

/// One page of a read.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The rows, each with the selected properties as OData JSON values.
    pub rows: Vec<Map>,
    /// The number of rows matching `$filter`/`$search` when `$count=true` was asked.
    pub count: Option<i64>,
    /// The `$skiptoken` of the next page, when more rows exist.
    pub next_skiptoken: Option<String>,
    /// Each row's ETag (`W/"…"`), when the entity set has an ETag column.
    pub etags: Vec<Option<String>>,
}

/// Where a page starts: the previous page's last row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Token {
    /// The last row's order values as exact text (`None` for null).
    #[serde(rename = "v")]
    values: Vec<Option<String>>,
    /// What is left of `$top`.
    #[serde(rename = "t")]
    remaining: Option<u64>,
    /// Checksum of the above and the query's fingerprint.
    #[serde(rename = "c")]
    check: String,
}

/// FNV-1a over the parts, each followed by a separator.
pub(crate) fn fingerprint(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

fn checksum(query: u64, values: &[Option<String>], remaining: Option<u64>) -> String {
    let mut parts = vec![query.to_string(), format!("{remaining:?}")];
    parts.extend(values.iter().map(|v| format!("{v:?}")));
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    format!("{:016x}", fingerprint(&refs))
}

fn invalid_token(message: &str) -> QueryError {
    QueryError::new(
        "InvalidSkipToken",
        Some("$skiptoken".to_owned()),
        format!("$skiptoken: {message}"),
    )
}

impl Token {
    fn new(fingerprint: u64, values: Vec<Option<String>>, remaining: Option<u64>) -> Self {
        let check = checksum(fingerprint, &values, remaining);
        Self {
            values,
            remaining,
            check,
        }
    }

    fn encode(&self) -> String {
        // Serializing plain strings and numbers cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Decodes a token and checks it belongs to a query with this fingerprint and order.
    pub(crate) fn decode(
        text: &str,
        fingerprint: u64,
        order_len: usize,
    ) -> Result<Self, QueryError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| invalid_token("not a token this service issued (not base64url)"))?;
        let token: Self = serde_json::from_slice(&bytes)
            .map_err(|_| invalid_token("not a token this service issued"))?;
        if token.values.len() != order_len
            || token.check != checksum(fingerprint, &token.values, token.remaining)
        {
            return Err(invalid_token(
                "the token does not match this query's $filter, $search, $orderby, $top and $skip",
            ));
        }
        Ok(token)
    }
}

/// The statement of a page (or of its count), with its parameters.
struct Statement {
    sql: String,
    binds: Binds,
    /// How many rows the page holds at most.
    limit: u64,
    remaining: Option<u64>,
}

fn property(set: &EntitySet, index: usize) -> Result<&Property> {
    set.properties.get(index).ok_or_else(|| {
        Error::Query(QueryError::new(
            "InvalidQuery",
            None,
            format!(
                "the query was parsed for another entity set than {}",
                set.name
            ),
        ))
    })
}

/// `$filter` and `$search` as conditions.
fn conditions(set: &EntitySet, query: &ReadQuery, binds: &mut Binds) -> Result<Vec<String>> {
    let mut conditions = Vec::new();
    if let Some(expr) = &query.filter {
        conditions.push(compile::filter(set, expr, binds).map_err(Error::Query)?);
    }
    if let Some(phrase) = &query.search {
        conditions.push(compile::search(set, phrase, binds));
    }
    Ok(conditions)
}

fn relation(set: &EntitySet) -> String {
    format!("{}.{}", quote(&set.schema), quote(&set.table))
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" where {}", conditions.join(" and "))
    }
}

/// "After the token's row" in the query's order.
fn keyset(set: &EntitySet, query: &ReadQuery, token: &Token, binds: &mut Binds) -> Result<String> {
    let mut columns = Vec::new();
    for ((index, descending), value) in query.order.iter().zip(&token.values) {
        let property = property(set, *index)?;
        let key = set.key.contains(&property.name);
        let placeholder = value
            .as_ref()
            .map(|v| json::from_text(property, &binds.push(Param::Text(v.clone()))));
        columns.push((
            quote(&property.name),
            *descending,
            property.nullable && !key,
            placeholder,
        ));
    }
    let same_direction = columns.windows(2).all(|w| match w {
        [a, b] => a.1 == b.1,
        _ => true,
    });
    let no_nulls = columns.iter().all(|c| !c.2 && c.3.is_some());
    if same_direction && no_nulls {
        let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
        let values: Vec<&str> = columns.iter().filter_map(|c| c.3.as_deref()).collect();
        let operator = if columns.first().is_some_and(|c| c.1) {
            "<"
        } else {
            ">"
        };
        return Ok(format!(
            "(({}) {operator} ({}))",
            names.join(", "),
            values.join(", ")
        ));
    }
    // Expanded form: equal on the first i columns and after on column i, for each i.
    let mut alternatives = Vec::new();
    let mut equal: Vec<String> = Vec::new();
    for (column, descending, nullable, value) in &columns {
        let after = match (value, descending) {
            // Ascending, nulls last: only nulls come after a value; nothing after null.
            (Some(v), false) if *nullable => Some(format!("({column} > {v} or {column} is null)")),
            (Some(v), false) => Some(format!("{column} > {v}")),
            (None, false) => None,
            // Descending, nulls first: smaller values come after; after null, any value.
            (Some(v), true) => Some(format!("{column} < {v}")),
            (None, true) => Some(format!("{column} is not null")),
        };
        if let Some(after) = after {
            let mut terms = equal.clone();
            terms.push(after);
            alternatives.push(format!("({})", terms.join(" and ")));
        }
        equal.push(match value {
            Some(v) => format!("{column} = {v}"),
            None => format!("{column} is null"),
        });
    }
    if alternatives.is_empty() {
        return Ok("false".to_owned());
    }
    Ok(format!("({})", alternatives.join(" or ")))
}

/// The page statement: selected properties, the ETag, then the order values as text.
fn page_statement(set: &EntitySet, query: &ReadQuery) -> Result<Statement> {
    let mut binds = Binds::default();
    let mut conditions = conditions(set, query, &mut binds)?;
    if let Some(token) = &query.token {
        conditions.push(keyset(set, query, token, &mut binds)?);
    }
    let mut select = Vec::new();
    for index in &query.select {
        select.push(json::select_expr(property(set, *index)?));
    }
    if let Some(etag) = etag_property(set) {
        select.push(json::text_expr(etag, &quote(&etag.name)));
    }
    let mut order = Vec::new();
    for (index, descending) in &query.order {
        let property = property(set, *index)?;
        select.push(json::text_expr(property, &quote(&property.name)));
        let direction = if *descending { "desc" } else { "asc" };
        order.push(format!("{} {direction}", quote(&property.name)));
    }
    let remaining = match &query.token {
        Some(token) => token.remaining,
        None => query.top,
    };
    let limit = remaining
        .unwrap_or(u64::MAX)
        .min(u64::from(query.max_page_size));
    let fetch = binds.push(Param::Int(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
    // Output columns get neutral names, so ORDER BY names only the relation's columns.
    let select: Vec<String> = select
        .iter()
        .enumerate()
        .map(|(i, expr)| format!("{expr} as c{i}"))
        .collect();
    let mut sql = format!(
        "select {} from {}{} order by {} limit {fetch}",
        select.join(", "),
        relation(set),
        where_clause(&conditions),
        order.join(", "),
    );
    if query.token.is_none() && query.skip > 0 {
        let skip = binds.push(Param::Int(i64::try_from(query.skip).unwrap_or(i64::MAX)));
        sql.push_str(&format!(" offset {skip}"));
    }
    Ok(Statement {
        sql,
        binds,
        limit,
        remaining,
    })
}

fn etag_property(set: &EntitySet) -> Option<&Property> {
    set.etag_column
        .as_deref()
        .and_then(|name| set.property(name))
}

/// Runs a read and returns its page.
pub async fn read(client: &impl GenericClient, set: &EntitySet, query: &ReadQuery) -> Result<Page> {
    let count = if query.count {
        let mut binds = Binds::default();
        let conditions = conditions(set, query, &mut binds)?;
        let sql = format!(
            "select count(*) from {}{}",
            relation(set),
            where_clause(&conditions)
        );
        let row = client
            .query_one(&sql, &binds.refs())
            .await
            .context(|| format!("counting the rows of {}", set.name))?;
        Some(row.get::<_, i64>(0))
    } else {
        None
    };
    let statement = page_statement(set, query)?;
    if statement.limit == 0 {
        return Ok(Page {
            rows: Vec::new(),
            count,
            next_skiptoken: None,
            etags: Vec::new(),
        });
    }
    let mut fetched = client
        .query(&statement.sql, &statement.binds.refs())
        .await
        .context(|| format!("reading a page of {}", set.name))?;
    let more = fetched.len() as u64 > statement.limit;
    fetched.truncate(usize::try_from(statement.limit).unwrap_or(usize::MAX));
    let has_etag = etag_property(set).is_some();
    let mut rows = Vec::with_capacity(fetched.len());
    let mut etags = Vec::with_capacity(fetched.len());
    for row in &fetched {
        let mut map = Map::new();
        for (position, index) in query.select.iter().enumerate() {
            let property = property(set, *index)?;
            map.insert(
                property.name.clone(),
                json::read_value(row, position, property)?,
            );
        }
        rows.push(map);
        etags.push(if has_etag {
            row.try_get::<_, Option<String>>(query.select.len())
                .context(|| format!("reading the ETag of a row of {}", set.name))?
                .map(|text| format!("W/\"{text}\""))
        } else {
            None
        });
    }
    let remaining = statement.remaining.map(|r| r - rows.len() as u64);
    let next_skiptoken = match fetched.last() {
        Some(last) if more && remaining != Some(0) => {
            let first = query.select.len() + usize::from(has_etag);
            let mut values = Vec::with_capacity(query.order.len());
            for offset in 0..query.order.len() {
                values.push(
                    last.try_get::<_, Option<String>>(first + offset)
                        .context(|| format!("reading the order values of {}", set.name))?,
                );
            }
            Some(Token::new(query.fingerprint, values, remaining).encode())
        }
        _ => None,
    };
    Ok(Page {
        rows,
        count,
        next_skiptoken,
        etags,
    })
}

/// `EXPLAIN (FORMAT JSON)` of the statement [`read`] runs for the page's rows.
pub async fn explain(
    client: &impl GenericClient,
    set: &EntitySet,
    query: &ReadQuery,
) -> Result<serde_json::Value> {
    let statement = page_statement(set, query)?;
    let sql = format!("explain (format json) {}", statement.sql);
    let row = client
        .query_one(&sql, &statement.binds.refs())
        .await
        .context(|| format!("explaining a read of {}", set.name))?;
    let text: PlanText = row
        .try_get(0)
        .context(|| format!("reading the plan of a read of {}", set.name))?;
    serde_json::from_str(&text.0).map_err(|error| Error::Catalog {
        what: format!("the plan of a read of {} is not JSON: {error}", set.name),
    })
}

/// EXPLAIN's JSON output (type `json`, whose binary form is its text).
struct PlanText(String);

impl<'a> tokio_postgres::types::FromSql<'a> for PlanText {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(String::from_utf8(raw.to_vec())?))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        matches!(
            *ty,
            tokio_postgres::types::Type::JSON | tokio_postgres::types::Type::TEXT
        )
    }
}
