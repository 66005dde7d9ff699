//! Binding: a parsed SOQL statement checked against the schema.
//!
//! Parsing knows the grammar; binding knows the org. It resolves the object and every field
//! path (including parent relationships such as `Account.Owner.Name`), types every literal
//! against the field it is compared with, and reports Salesforce's INVALID_TYPE and
//! INVALID_FIELD errors with the position of the offending token.

use crate::org::{FieldType, ObjectIndex, ParsedId, RecordRef, Schema, Value};
use crate::soql::{self, CompareOp, Expr, FieldPath, Literal, Pos, Query, SelectItem};

/// A query error with Salesforce's code and multi-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub code: &'static str,
    pub message: String,
}

impl QueryError {
    fn at(code: &'static str, soql_text: &str, pos: Pos, message: String) -> Self {
        let located = soql::SoqlError {
            kind: soql::SoqlErrorKind::MalformedQuery,
            message,
            pos,
        };
        Self {
            code,
            message: located.salesforce_message(soql_text),
        }
    }
}

/// A resolved field path: reference hops, then the field read on the last object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// `(object, reference field)` for each parent hop, in order.
    pub hops: Vec<(ObjectIndex, usize)>,
    pub object: ObjectIndex,
    pub field: usize,
}

/// What a query returns for each record, as a tree of parent relationships.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    pub items: Vec<ProjectionItem>,
}

/// One entry of a [`Projection`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectionItem {
    /// A field of this object: its describe name and index.
    Field { name: String, field: usize },
    /// A parent record through a reference field, with the parent's own projection.
    Parent {
        name: String,
        reference: usize,
        object: ObjectIndex,
        projection: Projection,
    },
}

/// A condition over one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Compare {
        path: Path,
        op: CompareOp,
        value: Value,
    },
    In {
        path: Path,
        negated: bool,
        values: Vec<Value>,
    },
    Like {
        path: Path,
        pattern: Vec<LikeToken>,
    },
}

/// A compiled LIKE pattern element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LikeToken {
    /// A literal character, lower-cased (LIKE is case-insensitive).
    Char(char),
    /// `_`: any one character.
    One,
    /// `%`: any run of characters.
    Any,
}

/// One ORDER BY key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderKey {
    pub path: Path,
    pub descending: bool,
    pub nulls_last: bool,
}

/// A query ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct BoundQuery {
    pub object: ObjectIndex,
    pub count_only: bool,
    pub projection: Projection,
    pub filter: Option<Condition>,
    pub order: Vec<OrderKey>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

/// Parses and binds SOQL text.
pub fn bind(schema: &Schema, text: &str) -> Result<BoundQuery, QueryError> {
    let query: Query = soql::parse(text).map_err(|e| QueryError {
        code: "MALFORMED_QUERY",
        message: e.salesforce_message(text),
    })?;
    Binder { schema, text }.bind(&query)
}

struct Binder<'a> {
    schema: &'a Schema,
    text: &'a str,
}

impl Binder<'_> {
    fn bind(&self, query: &Query) -> Result<BoundQuery, QueryError> {
        let object = self.schema.object_index(&query.from.text).ok_or_else(|| {
            QueryError::at(
                "INVALID_TYPE",
                self.text,
                query.from.pos,
                format!(
                    "sObject type '{}' is not supported. If you are attempting to use a custom \
                     object, be sure to append the '__c' after the entity name. Please reference \
                     your WSDL or the describe call for the appropriate names.",
                    query.from.text
                ),
            )
        })?;
        let mut count_only = false;
        let mut projection = Projection::default();
        for item in &query.select {
            match item {
                SelectItem::CountAll { .. } => count_only = true,
                SelectItem::Field(path) => {
                    let resolved = self.path(object, path)?;
                    self.project(&mut projection, object, &resolved);
                }
            }
        }
        if let Some(offset) = query.offset
            && offset > 2000
        {
            return Err(QueryError {
                code: "NUMBER_OUTSIDE_VALID_RANGE",
                message: format!("Maximum SOQL offset allowed is 2000, got {offset}"),
            });
        }
        let filter = query
            .where_clause
            .as_ref()
            .map(|e| self.condition(object, e))
            .transpose()?;
        let order = query
            .order_by
            .iter()
            .map(|o| {
                Ok(OrderKey {
                    path: self.path(object, &o.field)?,
                    descending: o.descending,
                    nulls_last: o.nulls_last,
                })
            })
            .collect::<Result<_, QueryError>>()?;
        Ok(BoundQuery {
            object,
            count_only,
            projection,
            filter,
            order,
            limit: query.limit,
            offset: query.offset,
        })
    }

    fn path(&self, base: ObjectIndex, path: &FieldPath) -> Result<Path, QueryError> {
        let Some((last, parents)) = path.parts.split_last() else {
            return Err(QueryError {
                code: "MALFORMED_QUERY",
                message: "empty field path".to_owned(),
            });
        };
        let mut object = base;
        let mut hops = Vec::new();
        let mut parts = parents;
        // `SELECT Account.Name FROM Account` may qualify a field with its own object name.
        if let Some(first) = parts.first()
            && self
                .schema
                .object(object)
                .name
                .eq_ignore_ascii_case(&first.text)
            && self
                .schema
                .object(object)
                .relationship_field(&first.text)
                .is_none()
        {
            parts = &parts[1..];
        }
        for part in parts {
            let def = self.schema.object(object);
            let reference = def.relationship_field(&part.text).ok_or_else(|| {
                QueryError::at(
                    "INVALID_FIELD",
                    self.text,
                    part.pos,
                    format!(
                        "Didn't understand relationship '{}' in field path. If you are attempting \
                         to use a custom relationship, be sure to append the '__r' after the custom \
                         relationship name. Please reference your WSDL or the describe call for \
                         the appropriate names.",
                        part.text
                    ),
                )
            })?;
            let target_name = def.fields[reference]
                .reference_to
                .first()
                .cloned()
                .unwrap_or_default();
            hops.push((object, reference));
            object = self.schema.object_index(&target_name).unwrap_or(object);
        }
        let def = self.schema.object(object);
        let field = def.field_index(&last.text).ok_or_else(|| {
            QueryError::at(
                "INVALID_FIELD",
                self.text,
                last.pos,
                format!(
                    "No such column '{}' on entity '{}'. If you are attempting to use a custom \
                     field, be sure to append the '__c' after the custom field name. Please \
                     reference your WSDL or the describe call for the appropriate names.",
                    last.text, def.name
                ),
            )
        })?;
        Ok(Path {
            hops,
            object,
            field,
        })
    }

    fn project(&self, projection: &mut Projection, base: ObjectIndex, path: &Path) {
        let mut current = projection;
        let mut object = base;
        for (_, reference) in &path.hops {
            let def = self.schema.object(object);
            let field = &def.fields[*reference];
            let name = field
                .relationship_name
                .clone()
                .unwrap_or_else(|| field.name.clone());
            let target = self
                .schema
                .object_index(field.reference_to.first().map_or("", String::as_str))
                .unwrap_or(object);
            let position = current.items.iter().position(
                |item| matches!(item, ProjectionItem::Parent { reference: r, .. } if r == reference),
            );
            let position = position.unwrap_or_else(|| {
                current.items.push(ProjectionItem::Parent {
                    name,
                    reference: *reference,
                    object: target,
                    projection: Projection::default(),
                });
                current.items.len() - 1
            });
            let ProjectionItem::Parent {
                projection: inner, ..
            } = &mut current.items[position]
            else {
                unreachable!("position points at the parent entry just found or added")
            };
            current = inner;
            object = target;
        }
        let already = current.items.iter().any(
            |item| matches!(item, ProjectionItem::Field { field, .. } if *field == path.field),
        );
        if !already {
            let name = self.schema.object(path.object).fields[path.field]
                .name
                .clone();
            current.items.push(ProjectionItem::Field {
                name,
                field: path.field,
            });
        }
    }

    fn condition(&self, object: ObjectIndex, expr: &Expr) -> Result<Condition, QueryError> {
        Ok(match expr {
            Expr::And(items) => Condition::And(
                items
                    .iter()
                    .map(|e| self.condition(object, e))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Or(items) => Condition::Or(
                items
                    .iter()
                    .map(|e| self.condition(object, e))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Not(inner) => Condition::Not(Box::new(self.condition(object, inner)?)),
            Expr::Compare { field, op, value } => {
                let path = self.path(object, field)?;
                let value = self.literal(&path, field, value)?;
                Condition::Compare {
                    path,
                    op: *op,
                    value,
                }
            }
            Expr::In {
                field,
                negated,
                values,
            } => {
                let path = self.path(object, field)?;
                let values = values
                    .iter()
                    .map(|v| self.literal(&path, field, v))
                    .collect::<Result<_, _>>()?;
                Condition::In {
                    path,
                    negated: *negated,
                    values,
                }
            }
            Expr::Like { field, pattern } => {
                let path = self.path(object, field)?;
                if !self.schema.object(path.object).fields[path.field]
                    .field_type
                    .is_text()
                {
                    return Err(self.type_error(
                        field,
                        &path,
                        "string",
                        "should be enclosed in quotes",
                    ));
                }
                Condition::Like {
                    path,
                    pattern: compile_like(pattern),
                }
            }
        })
    }

    fn literal(
        &self,
        path: &Path,
        source: &FieldPath,
        literal: &Literal,
    ) -> Result<Value, QueryError> {
        let field = &self.schema.object(path.object).fields[path.field];
        let t = field.field_type;
        match (t, literal) {
            (_, Literal::Null) => Ok(Value::Null),
            (FieldType::Boolean, Literal::Bool(b)) => Ok(Value::Bool(*b)),
            (FieldType::Int, Literal::Number(n)) if n.fract() == 0.0 => Ok(Value::Int(*n as i64)),
            (FieldType::Int, Literal::Number(n)) => Ok(Value::Double(*n)),
            (t, Literal::Number(n)) if t.is_decimal() => Ok(Value::Double(*n)),
            (FieldType::Date, Literal::Date(d)) => Ok(Value::Date(*d)),
            (FieldType::Datetime, Literal::DateTime(ms)) => Ok(Value::DateTime(*ms)),
            (t, Literal::String(s)) if t.is_text() => Ok(Value::Text(s.as_str().into())),
            (FieldType::Id | FieldType::Reference, Literal::String(s)) => {
                let parsed = ParsedId::parse(s).map_err(|_| QueryError {
                    code: "INVALID_QUERY_FILTER_OPERATOR",
                    message: format!("invalid ID field: {s}"),
                })?;
                let object = self.schema.object_by_prefix(parsed.prefix());
                Ok(match (object, parsed.seq()) {
                    (Some(object), Some(seq)) => Value::Ref(RecordRef { object, seq }),
                    // An Id of some other org or object: it can never match a stored value.
                    _ => Value::Text(parsed.to_id18().into()),
                })
            }
            (FieldType::Boolean, _) => {
                Err(self.type_error(source, path, "boolean", "should not be enclosed in quotes"))
            }
            (FieldType::Date, _) => {
                Err(self.type_error(source, path, "date", "should not be enclosed in quotes"))
            }
            (FieldType::Datetime, _) => {
                Err(self.type_error(source, path, "dateTime", "should not be enclosed in quotes"))
            }
            (FieldType::Int, _) => {
                Err(self.type_error(source, path, "int", "should not be enclosed in quotes"))
            }
            (t, _) if t.is_decimal() => {
                Err(self.type_error(source, path, "double", "should not be enclosed in quotes"))
            }
            _ => Err(self.type_error(source, path, "string", "should be enclosed in quotes")),
        }
    }

    fn type_error(
        &self,
        source: &FieldPath,
        path: &Path,
        expected: &str,
        quoting: &str,
    ) -> QueryError {
        let name = &self.schema.object(path.object).fields[path.field].name;
        let pos = source
            .parts
            .last()
            .map_or(Pos { row: 1, column: 1 }, |p| p.pos);
        QueryError::at(
            "INVALID_FIELD",
            self.text,
            pos,
            format!(
                "value of filter criterion for field '{name}' must be of type {expected} and {quoting}"
            ),
        )
    }
}

/// Compiles a LIKE pattern. The parser keeps `\%` and `\_` escaped so they match literally.
fn compile_like(pattern: &str) -> Vec<LikeToken> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => LikeToken::Any,
            '_' => LikeToken::One,
            '\\' => match chars.next() {
                Some(escaped) => LikeToken::Char(escaped.to_lowercase().next().unwrap_or(escaped)),
                None => LikeToken::Char('\\'),
            },
            other => LikeToken::Char(other.to_lowercase().next().unwrap_or(other)),
        });
    }
    tokens
}

/// Whether `text` matches a compiled LIKE pattern, case-insensitively.
pub fn like_matches(pattern: &[LikeToken], text: &str) -> bool {
    let chars: Vec<char> = text
        .chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect();
    // Classic two-pointer wildcard match with backtracking to the last `%`.
    let (mut p, mut t) = (0, 0);
    let (mut star, mut star_t) = (None, 0);
    while t < chars.len() {
        match pattern.get(p) {
            Some(LikeToken::Any) => {
                star = Some(p);
                star_t = t;
                p += 1;
            }
            Some(LikeToken::One) => {
                p += 1;
                t += 1;
            }
            Some(LikeToken::Char(c)) if *c == chars[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some(s) => {
                    p = s + 1;
                    star_t += 1;
                    t = star_t;
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..]
        .iter()
        .all(|token| *token == LikeToken::Any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_is_case_insensitive_with_wildcards_and_escapes() {
        let m = |p: &str, t: &str| like_matches(&compile_like(p), t);
        assert!(m("acme%", "ACME Corp"));
        assert!(m("%corp", "Acme corp"));
        assert!(m("a_me", "acme"));
        assert!(!m("a_me", "acmee"));
        assert!(m("%", ""));
        assert!(m("100\\%", "100%"));
        assert!(!m("100\\%", "1000"));
        assert!(m("%a%b%", "xxAyyBzz"));
    }

    fn schema() -> Schema {
        Schema::standard().unwrap()
    }

    #[test]
    fn unknown_object_is_invalid_type_with_caret() {
        let error = bind(&schema(), "SELECT Xyzzy FROM Xyzzy").unwrap_err();
        assert_eq!(error.code, "INVALID_TYPE");
        assert!(error.message.starts_with("\nSELECT Xyzzy FROM Xyzzy\n                  ^\nERROR at Row:1:Column:19\nsObject type 'Xyzzy' is not supported."), "{}", error.message);
    }

    #[test]
    fn unknown_field_and_relationship_are_invalid_field() {
        let error = bind(&schema(), "SELECT Id, Nope FROM Account").unwrap_err();
        assert_eq!(error.code, "INVALID_FIELD");
        assert!(
            error
                .message
                .contains("No such column 'Nope' on entity 'Account'")
        );
        assert!(error.message.contains("ERROR at Row:1:Column:12"));
        let error = bind(&schema(), "SELECT Acount.Name FROM Contact").unwrap_err();
        assert!(
            error
                .message
                .contains("Didn't understand relationship 'Acount'")
        );
    }

    #[test]
    fn literals_must_match_field_types() {
        let s = schema();
        assert!(
            bind(
                &s,
                "SELECT Id FROM Account WHERE SystemModstamp >= 2024-01-01T00:00:00Z"
            )
            .is_ok()
        );
        let error = bind(
            &s,
            "SELECT Id FROM Account WHERE SystemModstamp >= '2024-01-01'",
        )
        .unwrap_err();
        assert!(
            error
                .message
                .contains("must be of type dateTime and should not be enclosed in quotes")
        );
        let error = bind(&s, "SELECT Id FROM Account WHERE Name = 5").unwrap_err();
        assert!(
            error
                .message
                .contains("must be of type string and should be enclosed in quotes")
        );
        assert_eq!(
            bind(&s, "SELECT Id FROM Account WHERE Id = 'bad'")
                .unwrap_err()
                .code,
            "INVALID_QUERY_FILTER_OPERATOR"
        );
    }

    #[test]
    fn parent_fields_share_one_nested_projection() {
        let q = bind(
            &schema(),
            "SELECT Id, Account.Name, Account.Owner.Username, Account.Id FROM Contact",
        )
        .unwrap();
        assert_eq!(q.projection.items.len(), 2);
        let ProjectionItem::Parent {
            name, projection, ..
        } = &q.projection.items[1]
        else {
            panic!("expected the Account parent")
        };
        assert_eq!(name, "Account");
        assert_eq!(projection.items.len(), 3, "Name, Owner, Id under Account");
    }
}
