//! OData JSON envelopes (`odata.metadata=minimal`): the service document, a collection
//! page with its count and next link, one entity, and the key predicate that addresses
//! an entity in a URL (for `Location`).

use pgforce_store::odata::{EntitySet, Map, Page};
use serde_json::{Value, json};

/// The `Content-Type` of every JSON answer.
pub const CONTENT_TYPE: &str = "application/json;odata.metadata=minimal";

/// The query option that carries the server's paging token.
const SKIPTOKEN: &str = "$skiptoken";

/// The service document: every published entity set, by name.
pub fn service_document(root: &str, names: &[String]) -> Value {
    let value: Vec<Value> = names
        .iter()
        .map(|name| json!({ "name": name, "kind": "EntitySet", "url": name }))
        .collect();
    json!({ "@odata.context": format!("{root}$metadata"), "value": value })
}

/// `row` with its ETag first, as `@odata.etag`, when it has one.
fn with_etag(row: Map, etag: Option<&str>) -> Map {
    let Some(etag) = etag else {
        return row;
    };
    let mut entity = Map::with_capacity(row.len() + 1);
    entity.insert("@odata.etag".to_owned(), Value::String(etag.to_owned()));
    entity.extend(row);
    entity
}

/// The next page's absolute URL: the same query options with the new `$skiptoken`.
pub fn next_link(root: &str, set: &str, pairs: &[(String, String)], token: &str) -> String {
    let mut options: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(name, _)| name != SKIPTOKEN)
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    options.push((SKIPTOKEN, token));
    let query = serde_urlencoded::to_string(&options).unwrap_or_default();
    format!("{root}{}?{query}", path_segment(set))
}

/// An entity set's name as a path segment (`$` stays; anything unsafe is escaped).
pub fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"$-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The context URL of a collection: `<root>$metadata#<set>`, with the selected
/// properties in parentheses when `$select` named a subset (OData JSON Format §10).
pub fn collection_context(root: &str, set: &str, selected: Option<&[&str]>) -> String {
    match selected {
        Some(names) => format!("{root}$metadata#{set}({})", names.join(",")),
        None => format!("{root}$metadata#{set}"),
    }
}

/// A collection page.
pub fn collection(context: String, page: Page, next: Option<String>) -> Value {
    let Page {
        rows, count, etags, ..
    } = page;
    let value: Vec<Value> = rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let etag = etags.get(i).and_then(Option::as_deref);
            Value::Object(with_etag(row, etag))
        })
        .collect();
    let mut body = Map::new();
    body.insert("@odata.context".to_owned(), Value::String(context));
    if let Some(count) = count {
        body.insert("@odata.count".to_owned(), json!(count));
    }
    body.insert("value".to_owned(), Value::Array(value));
    if let Some(next) = next {
        body.insert("@odata.nextLink".to_owned(), Value::String(next));
    }
    Value::Object(body)
}

/// One entity.
pub fn entity(root: &str, set: &str, row: Map, etag: Option<&str>) -> Value {
    let mut body = Map::new();
    body.insert(
        "@odata.context".to_owned(),
        Value::String(format!("{root}$metadata#{set}/$entity")),
    );
    body.extend(with_etag(row, etag));
    Value::Object(body)
}

/// A key value as an OData literal: strings quoted with quotes doubled, numbers and
/// others as they are.
fn literal(value: &Value) -> String {
    match value {
        Value::String(text) => format!("'{}'", text.replace('\'', "''")),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

/// The key predicate of `row` in `set`: `(42)` for one key property, `(a=1,b='x')` for
/// several; `None` when the row lacks a key value.
pub fn key_predicate(set: &EntitySet, row: &Map) -> Option<String> {
    let values: Option<Vec<(&String, &Value)>> = set
        .key
        .iter()
        .map(|name| row.get(name).map(|value| (name, value)))
        .collect();
    let values = values?;
    let inner = match values.as_slice() {
        [(_, value)] => literal(value),
        several => several
            .iter()
            .map(|(name, value)| format!("{name}={}", literal(value)))
            .collect::<Vec<_>>()
            .join(","),
    };
    // The predicate goes into a URL: escape what a path cannot hold as is.
    let escaped: String = inner
        .chars()
        .map(|c| match c {
            ' ' => "%20".to_owned(),
            '#' => "%23".to_owned(),
            '?' => "%3F".to_owned(),
            '/' => "%2F".to_owned(),
            '%' => "%25".to_owned(),
            other => other.to_string(),
        })
        .collect();
    Some(format!("({escaped})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_keeps_the_options_and_replaces_the_token() {
        let pairs = vec![
            ("$select".to_owned(), "name,id".to_owned()),
            ("$filter".to_owned(), "name eq 'a b'".to_owned()),
            ("$skiptoken".to_owned(), "old".to_owned()),
        ];
        let link = next_link("https://h/odata/v4/s/", "salesforce$account", &pairs, "new");
        assert_eq!(
            link,
            "https://h/odata/v4/s/salesforce$account?%24select=name%2Cid&%24filter=name+eq+%27a+b%27&%24skiptoken=new"
        );
    }

    #[test]
    fn literals_double_quotes_in_strings() {
        assert_eq!(literal(&json!("O'Neil")), "'O''Neil'");
        assert_eq!(literal(&json!(42)), "42");
    }
}
