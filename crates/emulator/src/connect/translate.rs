//! SOQL on an external object → the OData 4.0 request the adapter sends: `$select`,
//! `$count`, `$filter`, `$orderby`, `$top`, `$skip`, in that order.
//!
//! Pure: no state, no I/O, so each request shape is unit-tested here. Readings of points the
//! documentation leaves open (see docs/emulator.md): `$select` lists property names sorted,
//! as in every logged example, with the key always included; `LIKE` becomes
//! `startswith`/`endswith`/`contains(…) eq true` (the form the adapter's search uses); `IN`
//! becomes an `or` chain of `eq` in parentheses (OData 4.0 has no `in`); `NOT IN` an `and`
//! chain of `ne`; ascending order is written `asc`; `NULLS FIRST/LAST` has no OData form and
//! is dropped.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use super::objects::{Edm, ExternalObject, FieldSource, quote};
use super::source::{DataSource, Pagination};
use crate::datetime;
use crate::error::ApiError;
use crate::soql::{CompareOp, Expr, FieldPath, Literal, Query, SelectItem};

/// What is escaped in a query option's value: controls, space, the characters that end or
/// confuse a query string, and `'` (as HTTP clients put it on the wire for http(s) URLs);
/// OData's other punctuation (`(`, `)`, `,`, `:`, `$`) stays.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'\'')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// What is escaped in a path segment (entity set names keep `$`).
const PATH_SEGMENT: &AsciiSet = &QUERY_VALUE.add(b'/').add(b'?').add(b'=');

/// A SOQL query made ready for OData requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Field indices of the object, in the order the query lists them.
    pub fields: Vec<usize>,
    /// `$select`: property names, sorted, the key included.
    pub select: Vec<String>,
    pub filter: Option<String>,
    pub orderby: Option<String>,
    pub limit: Option<u64>,
    pub offset: u64,
    pub count_only: bool,
}

fn unsupported(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("EXTERNAL_OBJECT_UNSUPPORTED_EXCEPTION", message)
}

fn invalid_field(object: &ExternalObject, name: &str) -> ApiError {
    ApiError::bad_request(
        "INVALID_FIELD",
        format!(
            "No such column '{name}' on entity '{}'. If you are attempting to use a custom field, \
             be sure to append the '__c' after the custom field name. Please reference your WSDL \
             or the describe call for the appropriate names.",
            object.name
        ),
    )
}

/// Resolves a Salesforce Id of an external record to its External ID (ID mapping).
pub type IdResolver<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Binds a parsed query to an external object; `ids` resolves Ids compared in `WHERE`.
pub fn plan(object: &ExternalObject, query: &Query, ids: IdResolver<'_>) -> Result<Plan, ApiError> {
    let mut fields = Vec::new();
    let mut count_only = false;
    for item in &query.select {
        match item {
            SelectItem::CountAll { .. } => count_only = true,
            SelectItem::Field(path) => {
                let index = field_index(object, path)?;
                if !fields.contains(&index) {
                    fields.push(index);
                }
            }
        }
    }
    let mut select: Vec<String> = object.key.iter().map(|(name, _)| name.clone()).collect();
    for &index in &fields {
        if let FieldSource::Property { name, .. } = &object.fields[index].source
            && !select.contains(name)
        {
            select.push(name.clone());
        }
    }
    select.sort();
    let filter = query
        .where_clause
        .as_ref()
        .map(|e| filter(object, e, false, ids))
        .transpose()?;
    let mut order = Vec::new();
    for item in &query.order_by {
        let index = field_index(object, &item.field)?;
        let direction = if item.descending { "desc" } else { "asc" };
        for property in properties_of(object, index)? {
            order.push(format!("{property} {direction}"));
        }
    }
    Ok(Plan {
        fields,
        select,
        filter,
        orderby: (!order.is_empty()).then(|| order.join(",")),
        limit: query.limit,
        offset: query.offset.unwrap_or(0),
        count_only,
    })
}

/// The field a path names; relationship paths are not emulated on external objects.
fn field_index(object: &ExternalObject, path: &FieldPath) -> Result<usize, ApiError> {
    let parts: Vec<&str> = path.parts.iter().map(|p| p.text.as_str()).collect();
    let name = match parts.as_slice() {
        [name] => *name,
        // `Obj__x.Field__c` names the object itself.
        [first, name] if first.eq_ignore_ascii_case(&object.name) => *name,
        _ => {
            return Err(unsupported(format!(
                "relationship path '{}' on external object {}: relationship queries on external \
                 objects are not supported by the emulator",
                parts.join("."),
                object.name
            )));
        }
    };
    object
        .fields
        .iter()
        .position(|f| f.def.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| invalid_field(object, name))
}

/// The properties a field reads (the key for ExternalId).
fn properties_of(object: &ExternalObject, index: usize) -> Result<Vec<String>, ApiError> {
    match &object.fields[index].source {
        FieldSource::Property { name, .. } => Ok(vec![name.clone()]),
        FieldSource::ExternalId => Ok(object.key.iter().map(|(n, _)| n.clone()).collect()),
        FieldSource::Id | FieldSource::DisplayUrl => Err(unsupported(format!(
            "field {} on {} cannot be sorted",
            object.fields[index].def.name, object.name
        ))),
    }
}

/// A WHERE condition as a `$filter` expression; `nested` asks for parentheses around
/// `and`/`or` so the expression keeps its grouping inside another.
fn filter(
    object: &ExternalObject,
    expr: &Expr,
    nested: bool,
    ids: IdResolver<'_>,
) -> Result<String, ApiError> {
    let group = |text: String, many: bool| {
        if nested && many {
            format!("({text})")
        } else {
            text
        }
    };
    match expr {
        Expr::And(items) | Expr::Or(items) => {
            let joiner = if matches!(expr, Expr::And(_)) {
                " and "
            } else {
                " or "
            };
            let parts = items
                .iter()
                .map(|e| filter(object, e, true, ids))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(group(parts.join(joiner), parts.len() > 1))
        }
        Expr::Not(inner) => Ok(format!("not ({})", filter(object, inner, false, ids)?)),
        Expr::Compare { field, op, value } => {
            let index = field_index(object, field)?;
            compare(object, index, *op, value, ids).map(|(text, many)| group(text, many))
        }
        Expr::In {
            field,
            negated,
            values,
        } => {
            let index = field_index(object, field)?;
            let op = if *negated {
                CompareOp::Ne
            } else {
                CompareOp::Eq
            };
            let parts = values
                .iter()
                .map(|v| {
                    compare(object, index, op, v, ids)
                        .map(|(t, many)| if many { format!("({t})") } else { t })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let joined = parts.join(if *negated { " and " } else { " or " });
            Ok(if parts.len() > 1 {
                format!("({joined})")
            } else {
                joined
            })
        }
        Expr::Like { field, pattern } => {
            let index = field_index(object, field)?;
            let FieldSource::Property {
                name,
                edm: Edm::String,
            } = &object.fields[index].source
            else {
                return Err(unsupported(format!(
                    "LIKE on field {} of {}: only text properties take LIKE",
                    object.fields[index].def.name, object.name
                )));
            };
            like(name, pattern)
        }
    }
}

/// `field op literal`; the flag tells whether it became several terms (composite keys).
fn compare(
    object: &ExternalObject,
    index: usize,
    op: CompareOp,
    value: &Literal,
    ids: IdResolver<'_>,
) -> Result<(String, bool), ApiError> {
    let field = &object.fields[index];
    let op_text = match op {
        CompareOp::Eq => "eq",
        CompareOp::Ne => "ne",
        CompareOp::Lt => "lt",
        CompareOp::Le => "le",
        CompareOp::Gt => "gt",
        CompareOp::Ge => "ge",
    };
    match &field.source {
        FieldSource::Property { name, edm } => Ok((
            format!("{name} {op_text} {}", literal(field, *edm, value)?),
            false,
        )),
        FieldSource::Id => {
            let Literal::String(id) = value else {
                return Err(type_error(field, "id", true));
            };
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(unsupported(format!(
                    "Id of {} compares only with = and !=",
                    object.name
                )));
            }
            let external_id = ids(id).ok_or_else(|| {
                ApiError::bad_request(
                    "INVALID_QUERY_FILTER_OPERATOR",
                    format!("invalid ID field: {id}"),
                )
            })?;
            compare(
                object,
                key_field(object),
                op,
                &Literal::String(external_id),
                ids,
            )
        }
        FieldSource::ExternalId => {
            let Literal::String(id) = value else {
                if *value == Literal::Null {
                    // The key is never null.
                    let (name, _) = &object.key[0];
                    return Ok((format!("{name} {op_text} null"), false));
                }
                return Err(type_error(field, "string", true));
            };
            if object.key.len() == 1 {
                let predicate = object
                    .key_predicate(id)
                    .map_err(|m| ApiError::bad_request("INVALID_QUERY_FILTER_OPERATOR", m))?;
                return Ok((format!("{} {op_text} {predicate}", object.key[0].0), false));
            }
            if !matches!(op, CompareOp::Eq | CompareOp::Ne) {
                return Err(unsupported(format!(
                    "ExternalId of {} has a composite key: only = and != apply",
                    object.name
                )));
            }
            let text = object
                .key_filter(id)
                .map_err(|m| ApiError::bad_request("INVALID_QUERY_FILTER_OPERATOR", m))?;
            Ok(if op == CompareOp::Ne {
                (format!("not ({text})"), false)
            } else {
                (text, true)
            })
        }
        FieldSource::DisplayUrl => Err(unsupported(format!(
            "field DisplayUrl on {} cannot be filtered",
            object.name
        ))),
    }
}

/// The index of the ExternalId field (every external object has one).
fn key_field(object: &ExternalObject) -> usize {
    object
        .fields
        .iter()
        .position(|f| f.source == FieldSource::ExternalId)
        .unwrap_or(0)
}

/// A SOQL literal as the OData literal for a property of type `edm`, or Salesforce's type
/// error.
fn literal(
    field: &super::objects::ExternalField,
    edm: Edm,
    value: &Literal,
) -> Result<String, ApiError> {
    Ok(match (edm, value) {
        (_, Literal::Null) => "null".to_owned(),
        (Edm::String | Edm::Binary, Literal::String(s)) => quote(s),
        (Edm::Guid, Literal::String(s)) => s.clone(),
        (Edm::Boolean, Literal::Bool(b)) => b.to_string(),
        (Edm::Integer | Edm::Decimal | Edm::Floating, Literal::Number(n)) => number(*n),
        (Edm::Date, Literal::Date(days)) => datetime::format_date(*days),
        (Edm::Date, Literal::DateTime(millis)) => datetime::format_date(datetime::date_of(*millis)),
        (Edm::DateTimeOffset, Literal::DateTime(millis)) => odata_datetime(*millis),
        (Edm::DateTimeOffset, Literal::Date(days)) => odata_datetime(i64::from(*days) * 86_400_000),
        (Edm::String | Edm::Binary | Edm::Guid, _) => {
            return Err(type_error(field, "string", true));
        }
        (Edm::Boolean, _) => return Err(type_error(field, "boolean", false)),
        (Edm::Integer | Edm::Decimal | Edm::Floating, _) => {
            return Err(type_error(field, "double", false));
        }
        (Edm::Date | Edm::DateTimeOffset, _) => {
            return Err(type_error(field, "dateTime", false));
        }
    })
}

fn type_error(field: &super::objects::ExternalField, expected: &str, quoted: bool) -> ApiError {
    let quoting = if quoted {
        "should be enclosed in quotes"
    } else {
        "should not be enclosed in quotes"
    };
    ApiError::bad_request(
        "INVALID_FIELD",
        format!(
            "value of filter criterion for field '{}' must be of type {expected} and {quoting}",
            field.def.name
        ),
    )
}

/// A number as OData writes it: integers without a fraction.
fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        format!("{n:.0}")
    } else {
        n.to_string()
    }
}

/// `2024-01-31T10:00:00Z` (milliseconds only when there are some).
fn odata_datetime(millis: i64) -> String {
    let text = datetime::format_datetime_z(millis);
    text.strip_suffix(".000Z")
        .map_or(text.clone(), |t| format!("{t}Z"))
}

/// A LIKE pattern as an OData string function.
fn like(property: &str, pattern: &str) -> Result<String, ApiError> {
    // Split into literal text and wildcards, honouring `\%`, `\_` and `\\`.
    let mut text = String::new();
    let mut leading = false;
    let mut trailing = false;
    let mut chars = pattern.chars().peekable();
    let mut position = 0;
    while let Some(c) = chars.next() {
        match c {
            '\\' => text.push(chars.next().unwrap_or('\\')),
            '%' if position == 0 => leading = true,
            '%' if chars.peek().is_none() => trailing = true,
            '%' | '_' => {
                return Err(unsupported(format!(
                    "LIKE '{pattern}' on {property}: only 'abc%', '%abc', '%abc%' and patterns \
                     without wildcards are translated by the emulator"
                )));
            }
            c => text.push(c),
        }
        position += 1;
    }
    let value = quote(&text);
    Ok(match (leading, trailing) {
        (false, false) => format!("{property} eq {value}"),
        (false, true) => format!("startswith({property},{value}) eq true"),
        (true, false) => format!("endswith({property},{value}) eq true"),
        (true, true) => format!("contains({property},{value}) eq true"),
    })
}

/// One page request's place in the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// `$top`, when one is sent.
    pub top: Option<u64>,
    /// `$skip` (sent when not zero).
    pub skip: u64,
}

impl Plan {
    /// The first request's page: the LIMIT up to a page (client-driven), or the LIMIT alone
    /// (server-driven, where the producer chooses page sizes).
    #[cfg(test)]
    pub fn first_page(&self, source: &DataSource) -> Page {
        self.page_after(source, 0)
    }

    /// The page after `fetched` rows (client-driven paging).
    pub fn page_after(&self, source: &DataSource, fetched: u64) -> Page {
        let remaining = self.limit.map(|l| l.saturating_sub(fetched));
        let top = match source.pagination {
            Pagination::Server => remaining,
            Pagination::Client => {
                let page = source.client_page();
                Some(remaining.map_or(page, |r| r.min(page)))
            }
        };
        Page {
            top,
            skip: self.offset + fetched,
        }
    }

    /// The request URL for a page: the service root, the entity set, then the options.
    pub fn url(&self, object: &ExternalObject, source: &DataSource, page: Page) -> String {
        let mut options: Vec<(&str, String)> = vec![("$select", self.select.join(","))];
        options.push((
            "$count",
            if source.inline_count_enabled {
                "true"
            } else {
                "false"
            }
            .to_owned(),
        ));
        if let Some(filter) = &self.filter {
            options.push(("$filter", filter.clone()));
        }
        if let Some(order) = &self.orderby {
            options.push(("$orderby", order.clone()));
        }
        if let Some(top) = page.top {
            options.push(("$top", top.to_string()));
        }
        if page.skip > 0 {
            options.push(("$skip", page.skip.to_string()));
        }
        format!(
            "{}{}?{}",
            source.service_root(),
            path_segment(&object.entity_set),
            query_string(&options)
        )
    }

    /// The `COUNT()` request: the count alone (`$top=0`), with the query's filter.
    pub fn count_url(&self, object: &ExternalObject, source: &DataSource) -> String {
        let mut options: Vec<(&str, String)> = vec![
            ("$select", self.select.join(",")),
            ("$count", "true".to_owned()),
        ];
        if let Some(filter) = &self.filter {
            options.push(("$filter", filter.clone()));
        }
        options.push(("$top", "0".to_owned()));
        format!(
            "{}{}?{}",
            source.service_root(),
            path_segment(&object.entity_set),
            query_string(&options)
        )
    }
}

/// An entity set or key predicate as a path segment.
pub fn path_segment(text: &str) -> String {
    utf8_percent_encode(text, PATH_SEGMENT).to_string()
}

/// `a=1&b=2` with values escaped.
pub fn query_string(options: &[(&str, String)]) -> String {
    options
        .iter()
        .map(|(name, value)| format!("{name}={}", utf8_percent_encode(value, QUERY_VALUE)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::metadata::{EntitySet, Property};
    use crate::connect::objects::from_entity_set;
    use crate::soql;

    fn object() -> ExternalObject {
        let property = |name: &str, edm_type: &str| Property {
            name: name.to_owned(),
            edm_type: edm_type.to_owned(),
            nullable: true,
            max_length: None,
            precision: None,
            scale: None,
        };
        let set = EntitySet {
            name: "Suppliers".to_owned(),
            key: vec!["SupplierID".to_owned()],
            properties: vec![
                property("SupplierID", "Edm.Int32"),
                property("City", "Edm.String"),
                property("Country", "Edm.String"),
                property("Since", "Edm.Date"),
                property("Seen", "Edm.DateTimeOffset"),
            ],
        };
        from_entity_set(&set, &source()).unwrap().object
    }

    fn plan_of(o: &ExternalObject, q: &Query) -> Result<Plan, ApiError> {
        plan(o, q, &|_| None)
    }

    fn source() -> DataSource {
        serde_json::from_str(r#"{"name":"S","endpoint":"http://services.example.org/my.svc"}"#)
            .unwrap()
    }

    fn url(soql: &str) -> String {
        let o = object();
        let s = source();
        let p = plan_of(&o, &soql::parse(soql).unwrap()).unwrap();
        p.url(&o, &s, p.first_page(&s))
    }

    fn filter_of(soql: &str) -> String {
        let o = object();
        plan_of(&o, &soql::parse(soql).unwrap())
            .unwrap()
            .filter
            .unwrap()
    }

    #[test]
    fn the_documented_example_has_select_filter_order_and_top() {
        assert_eq!(
            url(
                "SELECT City__c FROM Suppliers__x WHERE Country__c = 'USA' ORDER BY City__c ASC LIMIT 26"
            ),
            "http://services.example.org/my.svc/Suppliers?$select=City,SupplierID&$count=true\
             &$filter=Country%20eq%20%27USA%27&$orderby=City%20asc&$top=26"
        );
    }

    #[test]
    fn conditions_keep_their_grouping_and_literal_forms() {
        assert_eq!(
            filter_of(
                "SELECT City__c FROM S__x WHERE (City__c = 'O\\'Neil' OR City__c = null) AND NOT SupplierID__c >= 3"
            ),
            "(City eq 'O''Neil' or City eq null) and not (SupplierID ge 3)"
        );
        assert_eq!(
            filter_of("SELECT City__c FROM S__x WHERE SupplierID__c IN (1, 2, 3)"),
            "(SupplierID eq 1 or SupplierID eq 2 or SupplierID eq 3)"
        );
        assert_eq!(
            filter_of("SELECT City__c FROM S__x WHERE City__c NOT IN ('a', 'b')"),
            "(City ne 'a' and City ne 'b')"
        );
        assert_eq!(
            filter_of(
                "SELECT City__c FROM S__x WHERE Since__c > 2024-01-31T00:00:00Z AND Seen__c <= 2024-02-01T10:30:00Z"
            ),
            "Since gt 2024-01-31 and Seen le 2024-02-01T10:30:00Z"
        );
        assert_eq!(
            filter_of("SELECT City__c FROM S__x WHERE ExternalId = '42'"),
            "SupplierID eq 42"
        );
    }

    #[test]
    fn like_patterns_become_string_functions() {
        assert_eq!(
            filter_of("SELECT City__c FROM S__x WHERE City__c LIKE 'Ber%'"),
            "startswith(City,'Ber') eq true"
        );
        assert_eq!(
            filter_of("SELECT City__c FROM S__x WHERE City__c LIKE '%lin'"),
            "endswith(City,'lin') eq true"
        );
        assert_eq!(
            filter_of("SELECT City__c FROM S__x WHERE City__c LIKE '%50\\%%'"),
            "contains(City,'50%') eq true"
        );
        let o = object();
        let q = soql::parse("SELECT City__c FROM S__x WHERE City__c LIKE 'B_r%'").unwrap();
        assert_eq!(
            plan_of(&o, &q).unwrap_err().code,
            "EXTERNAL_OBJECT_UNSUPPORTED_EXCEPTION"
        );
    }

    #[test]
    fn type_mismatches_are_salesforce_errors() {
        let o = object();
        let q = soql::parse("SELECT City__c FROM S__x WHERE SupplierID__c = '3'").unwrap();
        let error = plan_of(&o, &q).unwrap_err();
        assert_eq!(error.code, "INVALID_FIELD");
        assert!(error.message.contains("must be of type double"));
        let q = soql::parse("SELECT Nope__c FROM S__x").unwrap();
        assert!(
            plan_of(&o, &q)
                .unwrap_err()
                .message
                .contains("No such column 'Nope__c'")
        );
    }

    #[test]
    fn page_sizes_follow_the_limit_and_the_row_count_setting() {
        let o = object();
        let mut s = source();
        let p = plan_of(
            &o,
            &soql::parse("SELECT City__c FROM S__x LIMIT 500").unwrap(),
        )
        .unwrap();
        assert_eq!(
            p.first_page(&s),
            Page {
                top: Some(202),
                skip: 0
            }
        );
        assert_eq!(
            p.page_after(&s, 404),
            Page {
                top: Some(96),
                skip: 404
            }
        );
        s.inline_count_enabled = false;
        assert_eq!(p.first_page(&s).top, Some(500));
        let all = plan_of(&o, &soql::parse("SELECT City__c FROM S__x").unwrap()).unwrap();
        assert_eq!(all.first_page(&s).top, Some(2000));
        s.pagination = Pagination::Server;
        assert_eq!(all.first_page(&s).top, None);
        assert_eq!(p.first_page(&s).top, Some(500));
    }
}
