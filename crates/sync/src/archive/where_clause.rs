//! The WHERE condition of an archive job: a safe subset of SOQL, parsed and checked
//! against the object's describe, then written out again by pgforce.
//!
//! The operator's text never reaches Salesforce as typed. It is parsed into a
//! [`Condition`] (comparisons `field op literal`, `IN`/`NOT IN` lists, `LIKE`, combined
//! with `AND`, `OR`, `NOT` and parentheses; literals are strings, numbers, `true`/`false`,
//! `null`, dates, datetimes and the date literals `TODAY`, `YESTERDAY`, `LAST_N_DAYS:n`),
//! every field is looked up in the describe (unknown or unfilterable fields are refused),
//! each literal must suit its field's type, and [`Condition::to_soql`] writes the SOQL
//! with names from the describe and strings re-quoted by `pgforce_salesforce::soql`.
//! Anything else is refused with an error naming its position (1-based character).

use std::fmt;

use pgforce_salesforce::rest::describe::{FieldType, ObjectDescribe};
use pgforce_salesforce::soql;

/// Why a condition was refused: what, and where (1-based character position).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("where clause, at character {position}: {what}")]
pub struct WhereError {
    /// 1-based character position in the text.
    pub position: usize,
    /// What is wrong there.
    pub what: String,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `'text'` (unescaped).
    Text(String),
    /// A number as written (digits, optional sign and fraction).
    Number(String),
    /// `true` / `false`.
    Boolean(bool),
    /// `null`.
    Null,
    /// `YYYY-MM-DD`.
    Date(String),
    /// `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)`.
    DateTime(String),
    /// `TODAY`, `YESTERDAY`, `LAST_N_DAYS:n` (as written, upper-cased).
    Relative(String),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.write_str(&soql::quote(text)),
            Self::Number(n) | Self::Date(n) | Self::DateTime(n) | Self::Relative(n) => {
                f.write_str(n)
            }
            Self::Boolean(b) => write!(f, "{b}"),
            Self::Null => f.write_str("null"),
        }
    }
}

/// A parsed, checked condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `field op literal`.
    Compare {
        /// The field's API name as the describe spells it.
        field: String,
        /// The operator.
        op: Op,
        /// The value.
        value: Literal,
    },
    /// `field [NOT] IN (literal, …)`.
    In {
        /// The field's API name.
        field: String,
        /// Whether `NOT IN`.
        negated: bool,
        /// The values.
        values: Vec<Literal>,
    },
    /// `field LIKE 'pattern'`.
    Like {
        /// The field's API name.
        field: String,
        /// The pattern.
        pattern: String,
    },
    /// `a AND b`.
    And(Box<Condition>, Box<Condition>),
    /// `a OR b`.
    Or(Box<Condition>, Box<Condition>),
    /// `NOT a`.
    Not(Box<Condition>),
}

impl Condition {
    /// The condition as SOQL, every name from the describe and every string quoted.
    pub fn to_soql(&self) -> String {
        match self {
            Self::Compare { field, op, value } => format!("{field} {} {value}", op.as_str()),
            Self::In {
                field,
                negated,
                values,
            } => {
                let list: Vec<String> = values.iter().map(ToString::to_string).collect();
                let not = if *negated { "NOT " } else { "" };
                format!("{field} {not}IN ({})", list.join(", "))
            }
            Self::Like { field, pattern } => format!("{field} LIKE {}", soql::quote(pattern)),
            Self::And(a, b) => format!("({} AND {})", a.to_soql(), b.to_soql()),
            Self::Or(a, b) => format!("({} OR {})", a.to_soql(), b.to_soql()),
            Self::Not(a) => format!("(NOT {})", a.to_soql()),
        }
    }
}

/// Parses `text` and checks it against `describe`.
pub fn parse(text: &str, describe: &ObjectDescribe) -> Result<Condition, WhereError> {
    let tokens = lex(text)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        describe,
        end: text.chars().count() + 1,
    };
    let condition = parser.or()?;
    if let Some(token) = parser.tokens.get(parser.at) {
        return Err(WhereError {
            position: token.position,
            what: format!("unexpected {} after a complete condition", token.kind),
        });
    }
    Ok(condition)
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Word(String),
    Text(String),
    Number(String),
    Op(Op),
    Open,
    Close,
    Comma,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Word(w) => write!(f, "{w:?}"),
            Self::Text(_) => f.write_str("a string"),
            Self::Number(n) => write!(f, "number {n}"),
            Self::Op(op) => write!(f, "operator {}", op.as_str()),
            Self::Open => f.write_str("\"(\""),
            Self::Close => f.write_str("\")\""),
            Self::Comma => f.write_str("\",\""),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    position: usize,
}

fn lex(text: &str) -> Result<Vec<Token>, WhereError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let position = i + 1;
        let at = |what: String| WhereError { position, what };
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let (kind, next) = match c {
            '(' => (Kind::Open, i + 1),
            ')' => (Kind::Close, i + 1),
            ',' => (Kind::Comma, i + 1),
            '=' => (Kind::Op(Op::Eq), i + 1),
            '!' if chars.get(i + 1) == Some(&'=') => (Kind::Op(Op::Ne), i + 2),
            '<' if chars.get(i + 1) == Some(&'>') => (Kind::Op(Op::Ne), i + 2),
            '<' if chars.get(i + 1) == Some(&'=') => (Kind::Op(Op::Le), i + 2),
            '<' => (Kind::Op(Op::Lt), i + 1),
            '>' if chars.get(i + 1) == Some(&'=') => (Kind::Op(Op::Ge), i + 2),
            '>' => (Kind::Op(Op::Gt), i + 1),
            '\'' => {
                let mut value = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => return Err(at("a string that never ends".to_owned())),
                        Some('\'') => break,
                        Some('\\') => {
                            let escaped = match chars.get(j + 1) {
                                Some('\'') => '\'',
                                Some('"') => '"',
                                Some('\\') => '\\',
                                Some('n') => '\n',
                                Some('r') => '\r',
                                Some('t') => '\t',
                                Some('b') => '\u{8}',
                                Some('f') => '\u{c}',
                                Some('_') | Some('%') => {
                                    value.push('\\');
                                    chars[j + 1]
                                }
                                _ => {
                                    return Err(WhereError {
                                        position: j + 1,
                                        what: "an escape SOQL does not know".to_owned(),
                                    });
                                }
                            };
                            value.push(escaped);
                            j += 2;
                        }
                        Some(&other) => {
                            value.push(other);
                            j += 1;
                        }
                    }
                }
                (Kind::Text(value), j + 1)
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let mut j = i + 1;
                while chars.get(j).is_some_and(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '+')
                }) {
                    j += 1;
                }
                let word: String = chars.get(i..j).unwrap_or_default().iter().collect();
                (Kind::Number(word), j)
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while chars
                    .get(j)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.'))
                {
                    j += 1;
                }
                let word: String = chars.get(i..j).unwrap_or_default().iter().collect();
                (Kind::Word(word), j)
            }
            other => return Err(at(format!("unexpected character {other:?}"))),
        };
        tokens.push(Token { kind, position });
        i = next;
    }
    Ok(tokens)
}

/// The kind of value a field compares with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    Text,
    Number,
    Boolean,
    Date,
    DateTime,
}

fn value_kind(field_type: &FieldType) -> Option<ValueKind> {
    Some(match field_type {
        FieldType::Id
        | FieldType::Reference
        | FieldType::String
        | FieldType::Textarea
        | FieldType::Picklist
        | FieldType::Multipicklist
        | FieldType::Combobox
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Url => ValueKind::Text,
        FieldType::Boolean => ValueKind::Boolean,
        FieldType::Int
        | FieldType::Long
        | FieldType::Double
        | FieldType::Currency
        | FieldType::Percent => ValueKind::Number,
        FieldType::Date => ValueKind::Date,
        FieldType::DateTime => ValueKind::DateTime,
        _ => return None,
    })
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    describe: &'a ObjectDescribe,
    end: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self, expected: &str) -> Result<Token, WhereError> {
        let token = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or_else(|| WhereError {
                position: self.end,
                what: format!("the condition ends where {expected} should follow"),
            })?;
        self.at += 1;
        Ok(token)
    }

    fn keyword(&mut self, word: &str) -> bool {
        let found = matches!(self.peek(), Some(Token { kind: Kind::Word(w), .. }) if w.eq_ignore_ascii_case(word));
        if found {
            self.at += 1;
        }
        found
    }

    fn or(&mut self) -> Result<Condition, WhereError> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            let right = self.and()?;
            left = Condition::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, WhereError> {
        let mut left = self.not()?;
        while self.keyword("AND") {
            let right = self.not()?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Condition, WhereError> {
        if self.keyword("NOT") {
            return Ok(Condition::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Condition, WhereError> {
        let token = self.next("a field or \"(\"")?;
        match token.kind {
            Kind::Open => {
                let inner = self.or()?;
                let close = self.next("\")\"")?;
                if close.kind != Kind::Close {
                    return Err(WhereError {
                        position: close.position,
                        what: format!("expected \")\", found {}", close.kind),
                    });
                }
                Ok(inner)
            }
            Kind::Word(name) => self.comparison(&name, token.position),
            other => Err(WhereError {
                position: token.position,
                what: format!("expected a field name, found {other}"),
            }),
        }
    }

    fn comparison(&mut self, name: &str, position: usize) -> Result<Condition, WhereError> {
        let at = |what: String| WhereError { position, what };
        if name.contains('.') {
            return Err(at(format!(
                "field {name:?}: relationship paths are not supported, name a field of {}",
                self.describe.object.name
            )));
        }
        let field = self.describe.field(name).ok_or_else(|| {
            at(format!(
                "field {name:?} does not exist on {}",
                self.describe.object.name
            ))
        })?;
        if !field.filterable {
            return Err(at(format!(
                "field {} on {} cannot be filtered on",
                field.name, self.describe.object.name
            )));
        }
        let kind = value_kind(&field.field_type).ok_or_else(|| {
            at(format!(
                "field {} on {} has type {}, which archive conditions do not support",
                field.name,
                self.describe.object.name,
                field.field_type.as_str()
            ))
        })?;
        let field_name = field.name.clone();
        let token = self.next("an operator")?;
        match token.kind {
            Kind::Op(op) => {
                let value = self.literal(kind, &field_name)?;
                if value == Literal::Null && !matches!(op, Op::Eq | Op::Ne) {
                    return Err(WhereError {
                        position: token.position,
                        what: format!("null compares only with = or != (field {field_name})"),
                    });
                }
                Ok(Condition::Compare {
                    field: field_name,
                    op,
                    value,
                })
            }
            Kind::Word(w) if w.eq_ignore_ascii_case("LIKE") => {
                if kind != ValueKind::Text {
                    return Err(WhereError {
                        position: token.position,
                        what: format!("LIKE needs a text field, {field_name} is not one"),
                    });
                }
                let value = self.next("a string pattern")?;
                match value.kind {
                    Kind::Text(pattern) => Ok(Condition::Like {
                        field: field_name,
                        pattern,
                    }),
                    other => Err(WhereError {
                        position: value.position,
                        what: format!("LIKE takes a string, found {other}"),
                    }),
                }
            }
            Kind::Word(w) if w.eq_ignore_ascii_case("IN") || w.eq_ignore_ascii_case("NOT") => {
                let negated = w.eq_ignore_ascii_case("NOT");
                if negated && !self.keyword("IN") {
                    return Err(WhereError {
                        position: token.position,
                        what: format!("NOT after field {field_name} must be followed by IN"),
                    });
                }
                let open = self.next("\"(\"")?;
                if open.kind != Kind::Open {
                    return Err(WhereError {
                        position: open.position,
                        what: format!("IN takes a list in parentheses, found {}", open.kind),
                    });
                }
                let mut values = Vec::new();
                loop {
                    values.push(self.literal(kind, &field_name)?);
                    let sep = self.next("\",\" or \")\"")?;
                    match sep.kind {
                        Kind::Comma => {}
                        Kind::Close => break,
                        other => {
                            return Err(WhereError {
                                position: sep.position,
                                what: format!("expected \",\" or \")\", found {other}"),
                            });
                        }
                    }
                }
                Ok(Condition::In {
                    field: field_name,
                    negated,
                    values,
                })
            }
            other => Err(WhereError {
                position: token.position,
                what: format!("expected an operator after {field_name}, found {other}"),
            }),
        }
    }

    fn literal(&mut self, kind: ValueKind, field: &str) -> Result<Literal, WhereError> {
        let token = self.next("a value")?;
        let position = token.position;
        let mismatch = |found: &str| WhereError {
            position,
            what: format!("field {field} takes {kind:?} values, found {found}").to_lowercase(),
        };
        let value = match token.kind {
            Kind::Word(w) if w.eq_ignore_ascii_case("null") => return Ok(Literal::Null),
            Kind::Word(w) if w.eq_ignore_ascii_case("true") || w.eq_ignore_ascii_case("false") => {
                Literal::Boolean(w.eq_ignore_ascii_case("true"))
            }
            Kind::Word(w) => {
                let upper = w.to_ascii_uppercase();
                let known = upper == "TODAY"
                    || upper == "YESTERDAY"
                    || upper
                        .strip_prefix("LAST_N_DAYS:")
                        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
                if !known {
                    return Err(WhereError {
                        position,
                        what: format!(
                            "{w:?} is not a value this subset knows (strings are quoted)"
                        ),
                    });
                }
                Literal::Relative(upper)
            }
            Kind::Text(text) => Literal::Text(text),
            Kind::Number(n) => classify_number(&n).ok_or_else(|| WhereError {
                position,
                what: format!("{n:?} is neither a number, a date nor a datetime"),
            })?,
            other => {
                return Err(WhereError {
                    position,
                    what: format!("expected a value, found {other}"),
                });
            }
        };
        let fits = matches!(
            (kind, &value),
            (ValueKind::Text, Literal::Text(_))
                | (ValueKind::Number, Literal::Number(_))
                | (ValueKind::Boolean, Literal::Boolean(_))
                | (ValueKind::Date, Literal::Date(_) | Literal::Relative(_))
                | (
                    ValueKind::DateTime,
                    Literal::DateTime(_) | Literal::Relative(_)
                )
        );
        if !fits {
            let found = match &value {
                Literal::Text(_) => "a string",
                Literal::Number(_) => "a number",
                Literal::Boolean(_) => "a boolean",
                Literal::Date(_) => "a date",
                Literal::DateTime(_) => "a datetime",
                Literal::Relative(_) => "a date literal",
                Literal::Null => "null",
            };
            return Err(mismatch(found));
        }
        Ok(value)
    }
}

/// A number, a date (`2020-01-01`) or a datetime (`2020-01-01T00:00:00Z`), by its shape.
fn classify_number(text: &str) -> Option<Literal> {
    let digits = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_digit());
    let is_date = |s: &str| {
        let parts: Vec<&str> = s.split('-').collect();
        parts.len() == 3 && digits(parts[0], 4) && digits(parts[1], 2) && digits(parts[2], 2)
    };
    if is_date(text) {
        return Some(Literal::Date(text.to_owned()));
    }
    if let Some((date, time)) = text.split_once('T') {
        let (clock, zone_ok) = if let Some(clock) = time.strip_suffix('Z') {
            (clock, true)
        } else if time.len() > 6 {
            let (clock, zone) = time.split_at(time.len() - 6);
            let zone_ok = (zone.starts_with('+') || zone.starts_with('-'))
                && digits(&zone[1..3], 2)
                && &zone[3..4] == ":"
                && digits(&zone[4..6], 2);
            (clock, zone_ok)
        } else {
            return None;
        };
        let (whole, fraction) = clock.split_once('.').unwrap_or((clock, "0"));
        let hms: Vec<&str> = whole.split(':').collect();
        let clock_ok = hms.len() == 3
            && hms.iter().all(|p| digits(p, 2))
            && !fraction.is_empty()
            && fraction.chars().all(|c| c.is_ascii_digit());
        return (is_date(date) && zone_ok && clock_ok).then(|| Literal::DateTime(text.to_owned()));
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let number = !whole.is_empty()
        && whole.chars().all(|c| c.is_ascii_digit())
        && fraction.chars().all(|c| c.is_ascii_digit());
    number.then(|| Literal::Number(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe() -> ObjectDescribe {
        serde_json::from_value(serde_json::json!({
            "name": "Case", "label": "Case", "custom": false, "queryable": true,
            "createable": true, "updateable": true, "deletable": true, "replicateable": true,
            "fields": [
                {"name": "Id", "label": "Id", "type": "id", "filterable": true},
                {"name": "Subject", "label": "Subject", "type": "string", "filterable": true},
                {"name": "ClosedDate", "label": "ClosedDate", "type": "datetime", "filterable": true},
                {"name": "Due__c", "label": "Due__c", "type": "date", "filterable": true},
                {"name": "Amount__c", "label": "Amount__c", "type": "currency", "filterable": true},
                {"name": "IsClosed", "label": "IsClosed", "type": "boolean", "filterable": true},
                {"name": "Notes__c", "label": "Notes__c", "type": "textarea", "filterable": false}
            ]
        }))
        .expect("a describe")
    }

    fn soql(text: &str) -> String {
        parse(text, &describe()).expect("valid").to_soql()
    }

    fn refused(text: &str) -> WhereError {
        parse(text, &describe()).expect_err("refused")
    }

    #[test]
    fn conditions_are_rewritten_with_describe_names_and_quoted_strings() {
        assert_eq!(
            soql("closeddate < 2020-01-01T00:00:00Z"),
            "ClosedDate < 2020-01-01T00:00:00Z"
        );
        assert_eq!(
            soql("Subject = 'O\\'Brien' and (IsClosed = true or not Amount__c >= -1.5)"),
            "(Subject = 'O\\'Brien' AND (IsClosed = true OR (NOT Amount__c >= -1.5)))"
        );
        assert_eq!(
            soql("Subject NOT IN ('a', 'b') AND Subject LIKE 'x%'"),
            "(Subject NOT IN ('a', 'b') AND Subject LIKE 'x%')"
        );
        assert_eq!(
            soql("Due__c < LAST_N_DAYS:30 OR Due__c = null"),
            "(Due__c < LAST_N_DAYS:30 OR Due__c = null)"
        );
        assert_eq!(soql("Due__c <= 2019-12-31"), "Due__c <= 2019-12-31");
    }

    #[test]
    fn unknown_fields_are_refused_naming_the_field_and_position() {
        let error = refused("Subject = 'a' AND Colour__c = 'red'");
        assert_eq!(error.position, 19);
        assert!(error.what.contains("Colour__c"), "{error}");
    }

    #[test]
    fn injection_attempts_are_refused() {
        // A second clause smuggled after a complete condition.
        let error = refused("Subject = 'a' LIMIT 1");
        assert_eq!(error.position, 15);
        // A subquery in an IN list.
        assert_eq!(refused("Id IN (SELECT Id FROM Account)").position, 8);
        // A quote that never closes.
        assert!(refused("Subject = 'a").what.contains("never ends"));
        // A relationship path reaching another object.
        assert!(refused("Account.Name = 'x'").what.contains("relationship"));
        // Semicolons and comments are not part of the language.
        assert_eq!(refused("Subject = 'a'; delete").position, 14);
    }

    #[test]
    fn literals_must_suit_their_field() {
        assert!(
            refused("ClosedDate < '2020-01-01'")
                .what
                .contains("datetime")
        );
        assert!(refused("Amount__c = 'ten'").what.contains("number"));
        assert!(refused("Subject LIKE 3").what.contains("LIKE"));
        assert!(
            refused("Notes__c = 'x'")
                .what
                .contains("cannot be filtered")
        );
        assert!(refused("Amount__c > null").what.contains("null"));
        assert!(refused("ClosedDate < 2020-13").what.contains("neither"));
    }
}
