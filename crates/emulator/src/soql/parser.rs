//! A recursive-descent parser for the SOQL subset sync tools send.
//!
//! It knows the grammar only; names are checked against the schema by the binder. Rules
//! kept from Salesforce: keywords are case-insensitive, `AND` and `OR` may not be mixed
//! without parentheses, `NOT` applies to one condition, the default null ordering is
//! first for ascending and last for descending, and constructs the emulator does not
//! serve fail with MALFORMED_QUERY naming them rather than being half-understood.

use super::lexer::{Spanned, Token, tokenize};
use super::{
    CompareOp, Expr, FieldPath, Literal, Name, OrderItem, Pos, Query, SelectItem, SoqlError,
    SoqlErrorKind,
};

/// Words that start clauses the emulator does not serve.
const UNSUPPORTED_CLAUSES: [&str; 6] = ["GROUP", "HAVING", "WITH", "FOR", "USING", "UPDATE"];
/// Relative date literals Salesforce has and the emulator does not.
const RELATIVE_DATES: [&str; 12] = [
    "TODAY",
    "YESTERDAY",
    "TOMORROW",
    "LAST_WEEK",
    "THIS_WEEK",
    "NEXT_WEEK",
    "LAST_MONTH",
    "THIS_MONTH",
    "NEXT_MONTH",
    "LAST_N_DAYS",
    "NEXT_N_DAYS",
    "THIS_YEAR",
];

/// Parses SOQL text.
pub fn parse(source: &str) -> Result<Query, SoqlError> {
    let tokens = tokenize(source)?;
    let mut parser = Parser { tokens, at: 0 };
    let query = parser.query()?;
    parser.expect_end()?;
    Ok(query)
}

struct Parser {
    tokens: Vec<Spanned>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> &Spanned {
        self.tokens
            .get(self.at)
            .unwrap_or_else(|| self.tokens.last().expect("tokens end with Eof"))
    }

    fn peek_at(&self, offset: usize) -> &Spanned {
        self.tokens
            .get(self.at + offset)
            .unwrap_or_else(|| self.tokens.last().expect("tokens end with Eof"))
    }

    fn advance(&mut self) -> Spanned {
        let token = self.peek().clone();
        if self.at < self.tokens.len() {
            self.at += 1;
        }
        token
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(&self.peek().token, Token::Ident(word) if word.eq_ignore_ascii_case(keyword))
    }

    fn is_symbol(&self, symbol: &str) -> bool {
        self.peek().token == Token::Symbol(symbol_static(symbol))
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let found = self.is_keyword(keyword);
        if found {
            self.at += 1;
        }
        found
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        let found = self.is_symbol(symbol);
        if found {
            self.at += 1;
        }
        found
    }

    fn unexpected(&self) -> SoqlError {
        let token = self.peek();
        let shown = if token.token == Token::Eof {
            "<EOF>".to_owned()
        } else {
            format!("'{}'", token.text)
        };
        error(token.pos, format!("unexpected token: {shown}"))
    }

    fn unsupported(&self, what: &str) -> SoqlError {
        error(
            self.peek().pos,
            format!("{what} is not supported by the pgforce emulator"),
        )
    }

    fn expect_keyword(&mut self, keyword: &str) -> Result<(), SoqlError> {
        if self.eat_keyword(keyword) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn expect_symbol(&mut self, symbol: &str, what: &str) -> Result<(), SoqlError> {
        if self.eat_symbol(symbol) {
            return Ok(());
        }
        let token = self.peek();
        let shown = if token.token == Token::Eof {
            "<EOF>".to_owned()
        } else {
            format!("'{}'", token.text)
        };
        Err(error(token.pos, format!("expecting {what}, found {shown}")))
    }

    fn expect_end(&self) -> Result<(), SoqlError> {
        if self.peek().token == Token::Eof {
            return Ok(());
        }
        if UNSUPPORTED_CLAUSES.iter().any(|k| self.is_keyword(k)) {
            return Err(
                self.unsupported(&format!("the {} clause", self.peek().text.to_uppercase()))
            );
        }
        Err(self.unexpected())
    }

    fn query(&mut self) -> Result<Query, SoqlError> {
        self.expect_keyword("SELECT")?;
        let select = self.select_list()?;
        self.expect_keyword("FROM")?;
        let from = self.name()?;
        let where_clause = if self.eat_keyword("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        let mut order_by = Vec::new();
        if self.eat_keyword("ORDER") {
            self.expect_keyword("BY")?;
            loop {
                order_by.push(self.order_item()?);
                if !self.eat_symbol(",") {
                    break;
                }
            }
        }
        let limit = if self.eat_keyword("LIMIT") {
            Some(self.integer()?)
        } else {
            None
        };
        let offset = if self.eat_keyword("OFFSET") {
            Some(self.integer()?)
        } else {
            None
        };
        if select
            .iter()
            .any(|s| matches!(s, SelectItem::CountAll { .. }))
            && select.len() > 1
        {
            let pos = select.iter().find_map(|s| match s {
                SelectItem::CountAll { pos } => Some(*pos),
                SelectItem::Field(_) => None,
            });
            return Err(error(
                pos.unwrap_or(Pos { row: 1, column: 1 }),
                "COUNT() cannot be selected with other fields".to_owned(),
            ));
        }
        Ok(Query {
            select,
            from,
            where_clause,
            order_by,
            limit,
            offset,
        })
    }

    fn select_list(&mut self) -> Result<Vec<SelectItem>, SoqlError> {
        let mut items = Vec::new();
        loop {
            if self.is_symbol("(") {
                return Err(self.unsupported("a child relationship subquery"));
            }
            if self.is_keyword("TYPEOF") {
                return Err(self.unsupported("TYPEOF"));
            }
            if self.is_keyword("COUNT") && self.peek_at(1).token == Token::Symbol("(") {
                let pos = self.advance().pos;
                self.advance();
                if !self.eat_symbol(")") {
                    return Err(self.unsupported("COUNT of a field"));
                }
                items.push(SelectItem::CountAll { pos });
            } else {
                let path = self.field_path()?;
                if self.is_symbol("(") {
                    let function = path
                        .parts
                        .first()
                        .map(|p| p.text.to_uppercase())
                        .unwrap_or_default();
                    return Err(error(
                        path.parts[0].pos,
                        format!(
                            "the function {function}() is not supported by the pgforce emulator"
                        ),
                    ));
                }
                items.push(SelectItem::Field(path));
            }
            if !self.eat_symbol(",") {
                return Ok(items);
            }
        }
    }

    fn name(&mut self) -> Result<Name, SoqlError> {
        match &self.peek().token {
            Token::Ident(text) => {
                let name = Name {
                    text: text.clone(),
                    pos: self.peek().pos,
                };
                self.at += 1;
                Ok(name)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn field_path(&mut self) -> Result<FieldPath, SoqlError> {
        let mut parts = vec![self.name()?];
        while self.eat_symbol(".") {
            parts.push(self.name()?);
        }
        Ok(FieldPath { parts })
    }

    fn integer(&mut self) -> Result<u64, SoqlError> {
        match &self.peek().token {
            Token::Number(text) if text.chars().all(|c| c.is_ascii_digit()) => {
                let value = text.parse().map_err(|_| self.unexpected())?;
                self.at += 1;
                Ok(value)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn order_item(&mut self) -> Result<OrderItem, SoqlError> {
        let field = self.field_path()?;
        let descending = if self.eat_keyword("DESC") {
            true
        } else {
            self.eat_keyword("ASC");
            false
        };
        let nulls_last = if self.eat_keyword("NULLS") {
            if self.eat_keyword("LAST") {
                true
            } else if self.eat_keyword("FIRST") {
                false
            } else {
                return Err(self.unexpected());
            }
        } else {
            descending
        };
        Ok(OrderItem {
            field,
            descending,
            nulls_last,
        })
    }

    /// A condition list: conditions joined by all-AND or all-OR.
    fn expr(&mut self) -> Result<Expr, SoqlError> {
        let first = self.unary()?;
        for (joiner, other) in [("AND", "OR"), ("OR", "AND")] {
            if self.is_keyword(joiner) {
                let mut items = vec![first];
                while self.eat_keyword(joiner) {
                    items.push(self.unary()?);
                }
                if self.is_keyword(other) {
                    return Err(self.unexpected());
                }
                return Ok(if joiner == "AND" {
                    Expr::And(items)
                } else {
                    Expr::Or(items)
                });
            }
        }
        Ok(first)
    }

    fn unary(&mut self) -> Result<Expr, SoqlError> {
        if self.eat_keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat_symbol("(") {
            let inner = self.expr()?;
            self.expect_symbol(")", "a right parentheses")?;
            return Ok(inner);
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr, SoqlError> {
        let field = self.field_path()?;
        let op = match &self.peek().token {
            Token::Symbol("=") => Some(CompareOp::Eq),
            Token::Symbol("!=" | "<>") => Some(CompareOp::Ne),
            Token::Symbol("<") => Some(CompareOp::Lt),
            Token::Symbol("<=") => Some(CompareOp::Le),
            Token::Symbol(">") => Some(CompareOp::Gt),
            Token::Symbol(">=") => Some(CompareOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.at += 1;
            let value = self.literal()?;
            return Ok(Expr::Compare { field, op, value });
        }
        if self.eat_keyword("LIKE") {
            return match &self.peek().token {
                Token::Str { pattern, .. } => {
                    let pattern = pattern.clone();
                    self.at += 1;
                    Ok(Expr::Like { field, pattern })
                }
                _ => Err(self.unexpected()),
            };
        }
        let negated = if self.is_keyword("NOT")
            && matches!(&self.peek_at(1).token, Token::Ident(w) if w.eq_ignore_ascii_case("IN"))
        {
            self.at += 1;
            true
        } else {
            false
        };
        if self.eat_keyword("IN") {
            self.expect_symbol("(", "a left parentheses")?;
            if self.is_keyword("SELECT") {
                return Err(self.unsupported("a semi-join subquery"));
            }
            let mut values = vec![self.literal()?];
            while self.eat_symbol(",") {
                values.push(self.literal()?);
            }
            self.expect_symbol(")", "a right parentheses")?;
            return Ok(Expr::In {
                field,
                negated,
                values,
            });
        }
        if self.is_keyword("INCLUDES") || self.is_keyword("EXCLUDES") {
            return Err(self.unsupported(&self.peek().text.to_uppercase()));
        }
        Err(self.unexpected())
    }

    fn literal(&mut self) -> Result<Literal, SoqlError> {
        let token = self.peek().clone();
        let literal = match &token.token {
            Token::Str { value, .. } => Literal::String(value.clone()),
            Token::Number(text) => Literal::Number(text.parse().map_err(|_| self.unexpected())?),
            Token::Symbol("-") => {
                self.at += 1;
                return match &self.peek().token {
                    Token::Number(text) => {
                        let value: f64 = text.parse().map_err(|_| self.unexpected())?;
                        self.at += 1;
                        Ok(Literal::Number(-value))
                    }
                    _ => Err(self.unexpected()),
                };
            }
            Token::Date(text) => {
                Literal::Date(crate::datetime::parse_date(text).ok_or_else(|| self.unexpected())?)
            }
            Token::DateTime(text) => Literal::DateTime(
                crate::datetime::parse_datetime(text).ok_or_else(|| self.unexpected())?,
            ),
            Token::Ident(word) if word.eq_ignore_ascii_case("NULL") => Literal::Null,
            Token::Ident(word) if word.eq_ignore_ascii_case("TRUE") => Literal::Bool(true),
            Token::Ident(word) if word.eq_ignore_ascii_case("FALSE") => Literal::Bool(false),
            Token::Ident(word)
                if RELATIVE_DATES.iter().any(|r| word.eq_ignore_ascii_case(r))
                    || word.to_uppercase().starts_with("LAST_N_")
                    || word.to_uppercase().starts_with("NEXT_N_") =>
            {
                return Err(error(
                    token.pos,
                    format!(
                        "relative date literal '{word}' is not supported by the pgforce emulator"
                    ),
                ));
            }
            _ => return Err(self.unexpected()),
        };
        self.at += 1;
        Ok(literal)
    }
}

fn symbol_static(symbol: &str) -> &'static str {
    match symbol {
        "(" => "(",
        ")" => ")",
        "," => ",",
        "." => ".",
        _ => "",
    }
}

fn error(pos: Pos, message: String) -> SoqlError {
    SoqlError {
        kind: SoqlErrorKind::MalformedQuery,
        message,
        pos,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| (*p).to_owned()).collect()
    }

    fn names(field: &FieldPath) -> Vec<String> {
        field.parts.iter().map(|p| p.text.clone()).collect()
    }

    #[test]
    fn a_full_query_parses_into_its_parts() {
        let q = parse(
            "select Id, Account.Owner.Name from Contact where (Name like 'A%' or Email = null) \
             and not CreatedDate < 2024-01-01T00:00:00Z and Id in ('a', 'b') \
             order by LastName desc nulls first, Id limit 10 offset 5",
        )
        .unwrap();
        assert_eq!(q.select.len(), 2);
        let SelectItem::Field(parent) = &q.select[1] else {
            panic!("a field")
        };
        assert_eq!(names(parent), path(&["Account", "Owner", "Name"]));
        assert_eq!(q.from.text, "Contact");
        let Some(Expr::And(items)) = &q.where_clause else {
            panic!("an AND list")
        };
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[0], Expr::Or(or) if or.len() == 2));
        assert!(matches!(&items[1], Expr::Not(_)));
        assert!(matches!(&items[2], Expr::In { negated: false, values, .. } if values.len() == 2));
        assert_eq!(q.order_by.len(), 2);
        assert!(q.order_by[0].descending && !q.order_by[0].nulls_last);
        assert!(!q.order_by[1].descending && !q.order_by[1].nulls_last);
        assert_eq!((q.limit, q.offset), (Some(10), Some(5)));
    }

    #[test]
    fn literals_of_every_kind_parse() {
        let q = parse("SELECT Id FROM A WHERE a = -3.5 AND b = TRUE AND c != NULL AND d = 2024-01-31 AND e NOT IN (1, 2)").unwrap();
        let Some(Expr::And(items)) = q.where_clause else {
            panic!("AND")
        };
        assert!(matches!(&items[0], Expr::Compare { value: Literal::Number(n), .. } if *n == -3.5));
        assert!(matches!(
            &items[1],
            Expr::Compare {
                value: Literal::Bool(true),
                ..
            }
        ));
        assert!(matches!(
            &items[2],
            Expr::Compare {
                op: CompareOp::Ne,
                value: Literal::Null,
                ..
            }
        ));
        assert!(matches!(
            &items[3],
            Expr::Compare {
                value: Literal::Date(_),
                ..
            }
        ));
        assert!(matches!(&items[4], Expr::In { negated: true, .. }));
    }

    #[test]
    fn count_parses_alone_and_not_with_fields() {
        let q = parse("SELECT COUNT() FROM Account").unwrap();
        assert!(matches!(q.select[0], SelectItem::CountAll { .. }));
        assert!(parse("SELECT Id, COUNT() FROM Account").is_err());
    }

    fn message(source: &str) -> (String, Pos) {
        let e = parse(source).unwrap_err();
        (e.message, e.pos)
    }

    #[test]
    fn errors_name_the_token_and_its_position() {
        assert_eq!(
            message("SELECT Id FRM Account"),
            (
                "unexpected token: 'FRM'".to_owned(),
                Pos { row: 1, column: 11 }
            )
        );
        assert_eq!(message("SELECT Id FROM").0, "unexpected token: <EOF>");
        assert_eq!(
            message("SELECT Id FROM Account;").0,
            "unexpected token: ';'"
        );
        assert_eq!(
            message("SELECT Id FROM A WHERE a = 1 AND b = 2 OR c = 3").0,
            "unexpected token: 'OR'"
        );
        assert!(
            message("SELECT Id FROM A WHERE (a = 1")
                .0
                .starts_with("expecting a right parentheses")
        );
        assert!(
            message("SELECT Id FROM A WHERE d > LAST_N_DAYS:3")
                .0
                .contains("'LAST_N_DAYS'")
        );
        assert!(
            message("SELECT Id, (SELECT Id FROM Contacts) FROM Account")
                .0
                .contains("subquery")
        );
        assert!(
            message("SELECT Name FROM A GROUP BY Name")
                .0
                .contains("GROUP")
        );
        assert!(message("SELECT MAX(Amount) FROM A").0.contains("MAX()"));
        assert!(
            message("SELECT Id FROM A WHERE Id IN (SELECT x FROM B)")
                .0
                .contains("semi-join")
        );
    }

    #[test]
    fn salesforce_message_points_at_the_error() {
        let source = "SELECT Xyzzy FROM Xyzzy";
        let e = SoqlError {
            kind: SoqlErrorKind::MalformedQuery,
            message: "sObject type 'Xyzzy' is not supported.".to_owned(),
            pos: Pos { row: 1, column: 19 },
        };
        assert_eq!(
            e.salesforce_message(source),
            "\nSELECT Xyzzy FROM Xyzzy\n                  ^\nERROR at Row:1:Column:19\nsObject type 'Xyzzy' is not supported."
        );
    }

    #[test]
    fn no_prefix_of_a_query_panics() {
        let queries = [
            "SELECT Id, Name FROM Account WHERE (Name LIKE 'a\\%' OR Id IN ('x')) AND NOT X = 2024-01-01T00:00:00Z ORDER BY Name DESC NULLS LAST LIMIT 5 OFFSET 1",
            "SELECT COUNT() FROM Contact WHERE Account.Name != null",
        ];
        for query in queries {
            for end in 0..=query.len() {
                if query.is_char_boundary(end) {
                    let _ = parse(&query[..end]);
                }
            }
        }
    }
}
