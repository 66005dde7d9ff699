//! The query options of a read, checked against the entity set before any SQL is built.

use super::filter::{self, Expr};
use super::page::{self, Token};
use super::{EdmType, EntitySet, QueryError};

/// What the service allows on reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The server-driven page size: no page holds more rows (Salesforce Connect accepts
    /// at most 2,000).
    pub max_page_size: u32,
    /// Whether `$search` is answered (else it is refused as not supported).
    pub search_enabled: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_page_size: 2000,
            search_enabled: false,
        }
    }
}

/// A parsed read: the query options of one request, checked against its entity set.
#[derive(Debug, Clone)]
pub struct ReadQuery {
    /// The selected properties (indexes into the entity set's properties).
    pub(crate) select: Vec<usize>,
    pub(crate) filter: Option<Expr>,
    pub(crate) search: Option<String>,
    /// The total order: `$orderby` then the key; (property index, descending).
    pub(crate) order: Vec<(usize, bool)>,
    pub(crate) top: Option<u64>,
    pub(crate) skip: u64,
    pub(crate) count: bool,
    /// Where this page starts, from `$skiptoken`.
    pub(crate) token: Option<Token>,
    /// What a skip token must have been made for (the options that shape the result).
    pub(crate) fingerprint: u64,
    pub(crate) max_page_size: u32,
}

impl ReadQuery {
    /// Whether `$count=true` was asked.
    pub fn wants_count(&self) -> bool {
        self.count
    }

    /// The names of the properties each row holds, in order (for the context URL).
    pub fn selected<'a>(&self, set: &'a EntitySet) -> Vec<&'a str> {
        self.select
            .iter()
            .filter_map(|index| set.properties.get(*index))
            .map(|property| property.name.as_str())
            .collect()
    }

    /// Whether `$select` named a subset of the properties (else every row holds all).
    pub fn selects_subset(&self, set: &EntitySet) -> bool {
        self.select.len() != set.properties.len()
    }
}

/// System query options this service does not answer.
const UNSUPPORTED: &[&str] = &[
    "$expand",
    "$apply",
    "$compute",
    "$levels",
    "$index",
    "$schemaversion",
    "$deltatoken",
    "$id",
    "$inlinecount",
];

fn invalid(option: &str, message: String) -> QueryError {
    QueryError::new("InvalidQueryOption", Some(option.to_owned()), message)
}

/// Parses the decoded query-string pairs of a read. Unknown system options (`$expand`,
/// `$apply`, a `$format` other than JSON…) are refused as not supported, naming the
/// option; custom options (without `$`) are ignored.
pub fn parse_read(
    set: &EntitySet,
    pairs: &[(String, String)],
    limits: &Limits,
) -> Result<ReadQuery, QueryError> {
    let mut seen: Vec<String> = Vec::new();
    let raw = |name: &str| -> Option<&str> {
        pairs
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    };
    for (key, value) in pairs {
        if !key.starts_with('$') {
            continue;
        }
        let name = key.to_ascii_lowercase();
        if seen.contains(&name) {
            return Err(invalid(key, format!("{key} is given more than once")));
        }
        seen.push(name.clone());
        match name.as_str() {
            "$select" | "$filter" | "$orderby" | "$top" | "$skip" | "$count" | "$search"
            | "$skiptoken" => {}
            "$format" => {
                let json = value.eq_ignore_ascii_case("json")
                    || value.to_ascii_lowercase().starts_with("application/json");
                if !json {
                    return Err(QueryError::not_supported(
                        key,
                        format!("$format={value} is not supported (only json)"),
                    ));
                }
            }
            _ if UNSUPPORTED.contains(&name.as_str()) => {
                return Err(QueryError::not_supported(
                    key,
                    format!("{key} is not supported"),
                ));
            }
            _ => {
                return Err(QueryError::not_supported(
                    key,
                    format!("{key} is not a system query option this service knows"),
                ));
            }
        }
    }
    let select = parse_select(set, raw("$select"))?;
    let filter = match raw("$filter") {
        Some(text) => Some(filter::parse(text)?),
        None => None,
    };
    // Checks names and types now, so a bad filter is the caller's error, never a 500.
    if let Some(expr) = &filter {
        super::compile::filter(set, expr, &mut super::json::Binds::default())?;
    }
    let search = match raw("$search") {
        None => None,
        Some(_) if !limits.search_enabled => {
            return Err(QueryError::not_supported(
                "$search",
                "$search is not enabled for this service".to_owned(),
            ));
        }
        Some(text) => {
            let trimmed = text.trim();
            let phrase = trimmed
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(trimmed);
            if phrase.is_empty() {
                return Err(invalid("$search", "$search is empty".to_owned()));
            }
            if phrase.contains('\0') {
                return Err(invalid(
                    "$search",
                    "$search may not contain the NUL character".to_owned(),
                ));
            }
            Some(phrase.to_owned())
        }
    };
    let order = parse_order(set, raw("$orderby"))?;
    let top = number(raw("$top"), "$top")?;
    let skip = number(raw("$skip"), "$skip")?.unwrap_or(0);
    let count = match raw("$count") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(invalid(
                "$count",
                format!("$count must be true or false, not {other:?}"),
            ));
        }
    };
    let fingerprint = page::fingerprint(&[
        raw("$filter").unwrap_or_default(),
        raw("$search").unwrap_or_default(),
        raw("$orderby").unwrap_or_default(),
        raw("$top").unwrap_or_default(),
        raw("$skip").unwrap_or_default(),
        &set.name,
    ]);
    let token = match raw("$skiptoken") {
        Some(text) => Some(Token::decode(text, fingerprint, order.len())?),
        None => None,
    };
    Ok(ReadQuery {
        select,
        filter,
        search,
        order,
        top,
        skip,
        count,
        token,
        fingerprint,
        max_page_size: limits.max_page_size.max(1),
    })
}

fn unknown(set: &EntitySet, option: &str, name: &str) -> QueryError {
    QueryError::new(
        "UnknownProperty",
        Some(name.to_owned()),
        format!("{option}: {} has no property {name:?}", set.name),
    )
}

fn property_index(set: &EntitySet, option: &str, name: &str) -> Result<usize, QueryError> {
    set.properties
        .iter()
        .position(|p| p.name == name)
        .ok_or_else(|| unknown(set, option, name))
}

/// `$select`: a comma list of properties, or `*`; all properties when absent.
pub(crate) fn parse_select(set: &EntitySet, raw: Option<&str>) -> Result<Vec<usize>, QueryError> {
    let all = || (0..set.properties.len()).collect();
    let Some(raw) = raw else { return Ok(all()) };
    let mut select = Vec::new();
    for item in raw.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(invalid(
                "$select",
                format!("$select={raw:?} has an empty item"),
            ));
        }
        if item == "*" {
            return Ok(all());
        }
        let index = property_index(set, "$select", item)?;
        if !select.contains(&index) {
            select.push(index);
        }
    }
    Ok(select)
}

/// `$orderby`, completed by the key into a total order.
fn parse_order(set: &EntitySet, raw: Option<&str>) -> Result<Vec<(usize, bool)>, QueryError> {
    let mut order: Vec<(usize, bool)> = Vec::new();
    if let Some(raw) = raw {
        for item in raw.split(',') {
            let item = item.trim();
            // The direction is the last word; the property is the rest (names are as is).
            let (name, descending) = match item.rsplit_once(char::is_whitespace) {
                Some((name, direction)) if direction.eq_ignore_ascii_case("asc") => {
                    (name.trim_end(), false)
                }
                Some((name, direction)) if direction.eq_ignore_ascii_case("desc") => {
                    (name.trim_end(), true)
                }
                _ => (item, false),
            };
            if item.is_empty()
                || (set.property(name).is_none() && name.contains(char::is_whitespace))
            {
                return Err(invalid(
                    "$orderby",
                    format!("$orderby item {item:?} is not `property [asc|desc]`"),
                ));
            }
            let index = property_index(set, "$orderby", name)?;
            if set.properties.get(index).map(|p| p.edm) == Some(EdmType::Binary) {
                return Err(QueryError::not_supported(
                    "$orderby",
                    format!("$orderby on the Edm.Binary property {name} is not supported"),
                ));
            }
            if !order.iter().any(|(i, _)| *i == index) {
                order.push((index, descending));
            }
        }
    }
    // The key follows the requested direction when every item agrees, so a descending
    // order stays one row-value comparison and one backward index scan.
    let key_descending = !order.is_empty() && order.iter().all(|(_, descending)| *descending);
    for key in &set.key {
        let index = property_index(set, "key", key)?;
        if !order.iter().any(|(i, _)| *i == index) {
            order.push((index, key_descending));
        }
    }
    Ok(order)
}

fn number(raw: Option<&str>, option: &str) -> Result<Option<u64>, QueryError> {
    raw.map(|text| {
        text.trim().parse::<u64>().map_err(|_| {
            invalid(
                option,
                format!("{option} must be a non-negative integer, not {text:?}"),
            )
        })
    })
    .transpose()
}
