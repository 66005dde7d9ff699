//! The `$filter` expression language (OData 4.0 URL conventions): a lexer and a
//! recursive-descent parser into an [`Expr`] tree.
//!
//! The parser knows nothing of the entity set: names stay names until `compile` checks
//! them against the properties and their types. Every error names the character offset
//! (0-based, in the `$filter` value) where the problem starts. Input is bounded twice so
//! that no request can exhaust the stack: by its length and by how deeply expressions
//! nest (parentheses, `not`, function arguments); `and`/`or` chains are kept flat.

use super::QueryError;

/// The longest `$filter` accepted, in characters.
pub(crate) const MAX_FILTER_CHARS: usize = 65_536;
/// How deeply parentheses, `not` and function calls may nest.
pub(crate) const MAX_DEPTH: usize = 100;

/// A literal as written in the filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    /// An integer, kept as written (without a suffix).
    Int(i64),
    /// A decimal number, kept as written (without a suffix).
    Decimal(String),
    /// A number with an exponent, or a `D`/`F` suffix.
    Double(String),
    String(String),
    /// `YYYY-MM-DD`.
    Date(String),
    /// `YYYY-MM-DDThh:mm[:ss[.f]](Z|±hh:mm)`.
    DateTimeOffset(String),
    /// `hh:mm[:ss[.f]]`.
    TimeOfDay(String),
    /// A GUID, lower-cased.
    Guid(String),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    /// Integer division when both sides are integers.
    Div,
    /// Decimal division (OData 4.01).
    DivBy,
    Mod,
}

/// A parsed `$filter` expression; `at` is the character offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Literal {
        value: Literal,
        at: usize,
    },
    Property {
        name: String,
        at: usize,
    },
    Not {
        operand: Box<Expr>,
        at: usize,
    },
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Compare {
        op: CmpOp,
        left: Box<Expr>,
        right: Box<Expr>,
        at: usize,
    },
    Call {
        function: String,
        args: Vec<Expr>,
        at: usize,
    },
    Arith {
        op: ArithOp,
        left: Box<Expr>,
        right: Box<Expr>,
        at: usize,
    },
}

impl Expr {
    /// Where the expression starts.
    pub(crate) fn at(&self) -> usize {
        match self {
            Self::Literal { at, .. }
            | Self::Property { at, .. }
            | Self::Not { at, .. }
            | Self::Compare { at, .. }
            | Self::Call { at, .. } => *at,
            Self::Arith { left, .. } => left.at(),
            Self::And(items) | Self::Or(items) => items.first().map_or(0, Self::at),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Comma,
    Word(String),
    Literal(Literal),
}

fn invalid(at: usize, message: impl std::fmt::Display) -> QueryError {
    QueryError::new(
        "InvalidFilter",
        Some("$filter".to_owned()),
        format!("$filter at offset {at}: {message}"),
    )
}

/// Splits the filter into tokens with their offsets.
fn lex(text: &[char]) -> Result<Vec<(Token, usize)>, QueryError> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = text.get(i) {
        let start = i;
        match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                tokens.push((Token::Open, start));
                i += 1;
            }
            ')' => {
                tokens.push((Token::Close, start));
                i += 1;
            }
            ',' => {
                tokens.push((Token::Comma, start));
                i += 1;
            }
            '\'' => {
                let (value, end) = lex_string(text, start)?;
                tokens.push((Token::Literal(Literal::String(value)), start));
                i = end;
            }
            c if c.is_ascii_digit() || c == '-' || c.is_alphabetic() || c == '_' => {
                if let Some(guid) = guid_at(text, start) {
                    tokens.push((Token::Literal(Literal::Guid(guid)), start));
                    i = start + 36;
                } else if c.is_ascii_digit() || c == '-' {
                    let end = run_end(text, start, |c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '+' | '-')
                    });
                    let run: String = text.get(start..end).unwrap_or_default().iter().collect();
                    tokens.push((Token::Literal(classify_literal(&run, start)?), start));
                    i = end;
                } else {
                    let end = run_end(text, start, |c| c.is_alphanumeric() || c == '_');
                    let word: String = text.get(start..end).unwrap_or_default().iter().collect();
                    if text.get(end) == Some(&'\'') {
                        return Err(QueryError::not_supported(
                            "$filter",
                            format!(
                                "$filter at offset {start}: {word}'…' literals are not supported"
                            ),
                        ));
                    }
                    if matches!(text.get(end), Some('/' | '.')) {
                        return Err(QueryError::not_supported(
                            "$filter",
                            format!(
                                "$filter at offset {end}: paths ({word}{}…) are not supported",
                                text.get(end).copied().unwrap_or(' ')
                            ),
                        ));
                    }
                    tokens.push((Token::Word(word), start));
                    i = end;
                }
            }
            other => {
                return Err(invalid(
                    start,
                    format_args!("unexpected character {other:?}"),
                ));
            }
        }
    }
    Ok(tokens)
}

fn run_end(text: &[char], start: usize, keep: impl Fn(char) -> bool) -> usize {
    let mut end = start + 1;
    while text.get(end).is_some_and(|&c| keep(c)) {
        end += 1;
    }
    end
}

/// A quoted string starting at `start` (quotes doubled inside); returns it and the
/// offset after the closing quote.
fn lex_string(text: &[char], start: usize) -> Result<(String, usize), QueryError> {
    let mut value = String::new();
    let mut i = start + 1;
    loop {
        match text.get(i) {
            None => return Err(invalid(start, "the string is not closed")),
            Some('\'') if text.get(i + 1) == Some(&'\'') => {
                value.push('\'');
                i += 2;
            }
            Some('\'') => return Ok((value, i + 1)),
            // Postgres text cannot hold it.
            Some('\0') => return Err(invalid(i, "strings may not contain the NUL character")),
            Some(&c) => {
                value.push(c);
                i += 1;
            }
        }
    }
}

/// A GUID (8-4-4-4-12 hex digits) starting at `start`, not followed by a name character.
fn guid_at(text: &[char], start: usize) -> Option<String> {
    let candidate = text.get(start..start + 36)?;
    let shaped = candidate.iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == '-',
        _ => c.is_ascii_hexdigit(),
    });
    let ends = text
        .get(start + 36)
        .is_none_or(|c| !(c.is_alphanumeric() || *c == '_' || *c == '-'));
    (shaped && ends).then(|| candidate.iter().collect::<String>().to_ascii_lowercase())
}

/// What a run of digits, letters and `.:+-` is: a number, date, time or timestamp.
fn classify_literal(run: &str, at: usize) -> Result<Literal, QueryError> {
    if let Some(value) = parse_date(run) {
        return Ok(Literal::Date(value));
    }
    if let Some(value) = parse_date_time_offset(run) {
        return Ok(Literal::DateTimeOffset(value));
    }
    if parse_time(run) {
        return Ok(Literal::TimeOfDay(run.to_owned()));
    }
    parse_number(run).ok_or_else(|| invalid(at, format_args!("{run:?} is not a valid literal")))
}

fn digits(text: &str, count: usize) -> Option<u32> {
    (text.len() == count && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// `YYYY-MM-DD` with a real month and day.
pub(crate) fn parse_date(text: &str) -> Option<String> {
    let mut parts = text.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (year, month, day) = (digits(year, 4)?, digits(month, 2)?, digits(day, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (year >= 1 && (1..=days).contains(&day)).then(|| text.to_owned())
}

/// `hh:mm[:ss[.fffffffffffff]]` within a day.
pub(crate) fn parse_time(text: &str) -> bool {
    let (main, fraction) = match text.split_once('.') {
        Some((main, fraction)) => (main, Some(fraction)),
        None => (text, None),
    };
    let parts: Vec<&str> = main.split(':').collect();
    let valid_fraction = fraction
        .is_none_or(|f| !f.is_empty() && f.len() <= 12 && f.bytes().all(|b| b.is_ascii_digit()));
    let hour_minute = parts.len() >= 2
        && digits(parts.first().copied().unwrap_or_default(), 2).is_some_and(|h| h < 24)
        && digits(parts.get(1).copied().unwrap_or_default(), 2).is_some_and(|m| m < 60);
    let seconds = match parts.get(2) {
        None => fraction.is_none(),
        Some(s) => digits(s, 2).is_some_and(|s| s < 60),
    };
    parts.len() <= 3 && hour_minute && seconds && valid_fraction
}

/// `date T time (Z | ±hh:mm)`; returned as written with `T` and `Z` upper-cased.
pub(crate) fn parse_date_time_offset(text: &str) -> Option<String> {
    let (date, rest) = text.split_at_checked(10)?;
    parse_date(date)?;
    let rest = rest.strip_prefix(['T', 't'])?;
    let (time, zone) = if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        (time, "Z".to_owned())
    } else {
        let split = rest.len().checked_sub(6)?;
        let (time, zone) = rest.split_at_checked(split)?;
        let sign = zone.starts_with(['+', '-']);
        let hours = zone
            .get(1..3)
            .and_then(|h| digits(h, 2))
            .is_some_and(|h| h < 24);
        let minutes = zone
            .get(4..6)
            .and_then(|m| digits(m, 2))
            .is_some_and(|m| m < 60);
        if !(sign && hours && minutes && zone.get(3..4) == Some(":")) {
            return None;
        }
        (time, zone.to_owned())
    };
    parse_time(time).then(|| format!("{date}T{time}{zone}"))
}

/// `-?digits[.digits][e[±]digits]` with an optional `M`, `L`, `D` or `F` suffix.
fn parse_number(run: &str) -> Option<Literal> {
    let (body, suffix) = match run.char_indices().last() {
        Some((i, c)) if matches!(c.to_ascii_lowercase(), 'm' | 'l' | 'd' | 'f') => {
            (run.get(..i)?, Some(c.to_ascii_lowercase()))
        }
        _ => (run, None),
    };
    let unsigned = body.strip_prefix('-').unwrap_or(body);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['+', '-']).unwrap_or(e))),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !fraction.is_none_or(all_digits) || !exponent.is_none_or(all_digits) {
        return None;
    }
    if exponent.is_some() || matches!(suffix, Some('d' | 'f')) {
        body.parse::<f64>().ok().filter(|f| f.is_finite())?;
        return Some(Literal::Double(body.to_owned()));
    }
    if fraction.is_some() || suffix == Some('m') {
        return Some(Literal::Decimal(body.to_owned()));
    }
    match body.parse::<i64>() {
        Ok(value) => Some(Literal::Int(value)),
        // Too large for Int64: still a valid Edm.Decimal.
        Err(_) => Some(Literal::Decimal(body.to_owned())),
    }
}

/// Parses a `$filter` value.
pub(crate) fn parse(filter: &str) -> Result<Expr, QueryError> {
    let text: Vec<char> = filter.chars().collect();
    if text.len() > MAX_FILTER_CHARS {
        return Err(invalid(
            MAX_FILTER_CHARS,
            format_args!("the filter is longer than {MAX_FILTER_CHARS} characters"),
        ));
    }
    let tokens = lex(&text)?;
    let mut parser = Parser {
        tokens,
        next: 0,
        depth: 0,
        end: text.len(),
    };
    if parser.tokens.is_empty() {
        return Err(invalid(0, "the filter is empty"));
    }
    let expr = parser.or()?;
    match parser.tokens.get(parser.next) {
        None => Ok(expr),
        Some((token, at)) => Err(invalid(*at, format_args!("unexpected {}", describe(token)))),
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Open => "'('".to_owned(),
        Token::Close => "')'".to_owned(),
        Token::Comma => "','".to_owned(),
        Token::Word(word) => format!("{word:?}"),
        Token::Literal(_) => "literal".to_owned(),
    }
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    next: usize,
    depth: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next).map(|(t, _)| t)
    }

    fn at(&self) -> usize {
        self.tokens.get(self.next).map_or(self.end, |(_, at)| *at)
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == word)
    }

    fn deeper(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(invalid(
                self.at(),
                format_args!("expressions nest more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut items = vec![self.and()?];
        while self.peek_word("or") {
            self.next += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut items = vec![self.unary()?];
        while self.peek_word("and") {
            self.next += 1;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.peek_word("not") {
            let at = self.at();
            self.next += 1;
            self.deeper()?;
            let operand = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not {
                operand: Box::new(operand),
                at,
            });
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, QueryError> {
        let left = self.additive()?;
        let at = self.at();
        let op = match self.peek() {
            Some(Token::Word(word)) => match word.as_str() {
                "eq" => CmpOp::Eq,
                "ne" => CmpOp::Ne,
                "gt" => CmpOp::Gt,
                "ge" => CmpOp::Ge,
                "lt" => CmpOp::Lt,
                "le" => CmpOp::Le,
                "has" | "in" => {
                    return Err(QueryError::not_supported(
                        "$filter",
                        format!("$filter at offset {at}: the operator {word} is not supported"),
                    ));
                }
                _ => return Ok(left),
            },
            _ => return Ok(left),
        };
        self.next += 1;
        let right = self.additive()?;
        Ok(Expr::Compare {
            op,
            left: Box::new(left),
            right: Box::new(right),
            at,
        })
    }

    /// The arithmetic operator at the cursor, if it is one of `ops`.
    fn arith_op(&self, ops: &[(&str, ArithOp)]) -> Option<ArithOp> {
        match self.peek() {
            Some(Token::Word(word)) => ops.iter().find(|(name, _)| name == word).map(|(_, op)| *op),
            _ => None,
        }
    }

    /// `a add b sub c`; each operator nests the tree one level deeper, so chains count
    /// towards the depth limit.
    fn additive(&mut self) -> Result<Expr, QueryError> {
        self.arithmetic(
            &[("add", ArithOp::Add), ("sub", ArithOp::Sub)],
            Self::multiplicative,
        )
    }

    fn multiplicative(&mut self) -> Result<Expr, QueryError> {
        self.arithmetic(
            &[
                ("mul", ArithOp::Mul),
                ("div", ArithOp::Div),
                ("divby", ArithOp::DivBy),
                ("mod", ArithOp::Mod),
            ],
            Self::primary,
        )
    }

    fn arithmetic(
        &mut self,
        ops: &[(&str, ArithOp)],
        operand: fn(&mut Self) -> Result<Expr, QueryError>,
    ) -> Result<Expr, QueryError> {
        let depth = self.depth;
        let mut left = operand(self)?;
        while let Some(op) = self.arith_op(ops) {
            let at = self.at();
            self.next += 1;
            self.deeper()?;
            let right = operand(self)?;
            left = Expr::Arith {
                op,
                left: Box::new(left),
                right: Box::new(right),
                at,
            };
        }
        self.depth = depth;
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        let at = self.at();
        let Some((token, _)) = self.tokens.get(self.next).cloned() else {
            return Err(invalid(at, "the filter ends where a value was expected"));
        };
        self.next += 1;
        match token {
            Token::Open => {
                self.deeper()?;
                let inner = self.or()?;
                self.depth -= 1;
                self.expect_close(at)?;
                Ok(inner)
            }
            Token::Literal(value) => Ok(Expr::Literal { value, at }),
            Token::Word(word) => match word.as_str() {
                "null" => Ok(Expr::Literal {
                    value: Literal::Null,
                    at,
                }),
                "true" => Ok(Expr::Literal {
                    value: Literal::Bool(true),
                    at,
                }),
                "false" => Ok(Expr::Literal {
                    value: Literal::Bool(false),
                    at,
                }),
                "INF" | "NaN" => Err(QueryError::not_supported(
                    "$filter",
                    format!("$filter at offset {at}: {word} is not supported"),
                )),
                "and" | "or" | "not" | "eq" | "ne" | "gt" | "ge" | "lt" | "le" => Err(invalid(
                    at,
                    format_args!("{word:?} where a value was expected"),
                )),
                _ if self.peek() == Some(&Token::Open) => self.call(word, at),
                _ => Ok(Expr::Property { name: word, at }),
            },
            other => Err(invalid(
                at,
                format_args!("{} where a value was expected", describe(&other)),
            )),
        }
    }

    fn call(&mut self, function: String, at: usize) -> Result<Expr, QueryError> {
        // The opening parenthesis.
        self.next += 1;
        self.deeper()?;
        let mut args = Vec::new();
        if self.peek() == Some(&Token::Close) {
            self.next += 1;
        } else {
            loop {
                args.push(self.or()?);
                match self.peek() {
                    Some(Token::Comma) => self.next += 1,
                    Some(Token::Close) => {
                        self.next += 1;
                        break;
                    }
                    _ => {
                        return Err(invalid(
                            self.at(),
                            format_args!("expected ',' or ')' in the arguments of {function}"),
                        ));
                    }
                }
            }
        }
        self.depth -= 1;
        Ok(Expr::Call { function, args, at })
    }

    fn expect_close(&mut self, open: usize) -> Result<(), QueryError> {
        if self.peek() == Some(&Token::Close) {
            self.next += 1;
            Ok(())
        } else {
            Err(invalid(
                self.at(),
                format_args!("expected ')' to close the '(' at offset {open}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_typed_as_written() {
        let cases = [
            ("42", Literal::Int(42)),
            ("-7", Literal::Int(-7)),
            ("1.5", Literal::Decimal("1.5".to_owned())),
            ("2M", Literal::Decimal("2".to_owned())),
            ("3L", Literal::Int(3)),
            ("1e3", Literal::Double("1e3".to_owned())),
            ("2024-01-31", Literal::Date("2024-01-31".to_owned())),
            (
                "2024-01-31T10:00:00.25+01:00",
                Literal::DateTimeOffset("2024-01-31T10:00:00.25+01:00".to_owned()),
            ),
            ("10:30:00", Literal::TimeOfDay("10:30:00".to_owned())),
            (
                "ABCDEF01-2345-6789-abcd-ef0123456789",
                Literal::Guid("abcdef01-2345-6789-abcd-ef0123456789".to_owned()),
            ),
            ("'O''Neil'", Literal::String("O'Neil".to_owned())),
        ];
        for (text, expected) in cases {
            assert_eq!(
                parse(text).unwrap(),
                Expr::Literal {
                    value: expected,
                    at: 0
                },
                "{text}"
            );
        }
    }

    #[test]
    fn errors_name_the_offset() {
        let error = parse("Name eq 'x' and (Age gt 3").unwrap_err();
        assert_eq!(error.code, "InvalidFilter");
        assert!(error.message.contains("offset 25"), "{}", error.message);
        let error = parse("Name eq 2024-13-01").unwrap_err();
        assert!(error.message.contains("offset 8"), "{}", error.message);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}true{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse(&deep).unwrap_err().message.contains("nest"));
        let nots = format!("{}true", "not ".repeat(5000));
        assert!(parse(&nots).unwrap_err().message.contains("nest"));
        let long = "a eq 1 or ".repeat(6000) + "a eq 1";
        assert!(parse(&long).is_ok());
        let sums = "a add ".repeat(5000) + "1 eq 2";
        assert!(parse(&sums).unwrap_err().message.contains("nest"));
    }
}
