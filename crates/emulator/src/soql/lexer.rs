//! Tokens of a SOQL statement, each with the row and column it starts at, so that errors
//! can point at it the way Salesforce does (`ERROR at Row:1:Column:11`).

use super::{Pos, SoqlError, SoqlErrorKind};

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// A name or keyword, as written.
    Ident(String),
    /// A string literal: its value with escapes resolved, and its LIKE pattern form in
    /// which `\%`, `\_` and `\\` stay escaped so the matcher can tell them from wildcards.
    Str {
        value: String,
        pattern: String,
    },
    /// A number as written.
    Number(String),
    /// An unquoted date literal as written.
    Date(String),
    /// An unquoted datetime literal as written.
    DateTime(String),
    /// Punctuation and operators: `( ) , . : ; = != <> < <= > >= -`.
    Symbol(&'static str),
    Eof,
}

/// A token with where it starts and how it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    pub token: Token,
    pub pos: Pos,
    pub text: String,
}

const SYMBOLS: [&str; 14] = [
    "!=", "<>", "<=", ">=", "(", ")", ",", ".", ":", ";", "=", "<", ">", "-",
];

/// Splits SOQL text into tokens.
pub fn tokenize(source: &str) -> Result<Vec<Spanned>, SoqlError> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let (mut i, mut row, mut column) = (0, 1_u32, 1_u32);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            i += 1;
            row += 1;
            column = 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            column += 1;
            continue;
        }
        let pos = Pos { row, column };
        let start = i;
        let token = if c.is_ascii_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            Token::Ident(chars[start..i].iter().collect())
        } else if c.is_ascii_digit() {
            i = scan_number_or_date(&chars, i);
            let text: String = chars[start..i].iter().collect();
            classify_number(&text, pos)?
        } else if c == '\'' {
            let (value, pattern, end) = scan_string(&chars, i, pos)?;
            i = end;
            Token::Str { value, pattern }
        } else if let Some(symbol) = SYMBOLS.iter().find(|s| {
            s.chars()
                .enumerate()
                .all(|(k, sc)| chars.get(i + k) == Some(&sc))
        }) {
            i += symbol.chars().count();
            Token::Symbol(symbol)
        } else {
            return Err(SoqlError {
                kind: SoqlErrorKind::MalformedQuery,
                message: format!("unexpected token: '{c}'"),
                pos,
            });
        };
        let text: String = chars[start..i].iter().collect();
        column += u32::try_from(i - start).unwrap_or(u32::MAX);
        tokens.push(Spanned { token, pos, text });
    }
    tokens.push(Spanned {
        token: Token::Eof,
        pos: Pos { row, column },
        text: "<EOF>".to_owned(),
    });
    Ok(tokens)
}

/// Scans digits, and when they start a date (`2024-01-31`) or datetime
/// (`2024-01-31T10:00:00.000+01:00`), the whole literal.
fn scan_number_or_date(chars: &[char], start: usize) -> usize {
    let digit = |k: usize| chars.get(k).is_some_and(char::is_ascii_digit);
    let is = |k: usize, c: char| chars.get(k) == Some(&c);
    let looks_like_date = (0..4).all(|k| digit(start + k))
        && is(start + 4, '-')
        && digit(start + 5)
        && digit(start + 6)
        && is(start + 7, '-')
        && digit(start + 8)
        && digit(start + 9);
    if !looks_like_date {
        let mut i = start;
        while digit(i) {
            i += 1;
        }
        if is(i, '.') && digit(i + 1) {
            i += 1;
            while digit(i) {
                i += 1;
            }
        }
        return i;
    }
    let mut i = start + 10;
    if is(i, 'T') || is(i, 't') {
        i += 1;
        while chars
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '+' | '-'))
        {
            i += 1;
        }
    }
    i
}

fn classify_number(text: &str, pos: Pos) -> Result<Token, SoqlError> {
    let malformed = |what: &str| SoqlError {
        kind: SoqlErrorKind::MalformedQuery,
        message: format!("{what}: {text}"),
        pos,
    };
    if text.len() == 10 && text.as_bytes().get(4) == Some(&b'-') {
        crate::datetime::parse_date(text).ok_or_else(|| malformed("invalid date"))?;
        return Ok(Token::Date(text.to_owned()));
    }
    if text.len() > 10 && text.as_bytes().get(4) == Some(&b'-') {
        crate::datetime::parse_datetime(text).ok_or_else(|| malformed("invalid datetime"))?;
        return Ok(Token::DateTime(text.to_owned()));
    }
    Ok(Token::Number(text.to_owned()))
}

fn scan_string(
    chars: &[char],
    start: usize,
    pos: Pos,
) -> Result<(String, String, usize), SoqlError> {
    let mut value = String::new();
    let mut pattern = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => {
                return Err(SoqlError {
                    kind: SoqlErrorKind::MalformedQuery,
                    message: "unterminated string literal".to_owned(),
                    pos,
                });
            }
            Some('\'') => return Ok((value, pattern, i + 1)),
            Some('\\') => {
                let (escaped, in_pattern) = match chars.get(i + 1) {
                    Some('n') => ("\n", "\n"),
                    Some('r') => ("\r", "\r"),
                    Some('t') => ("\t", "\t"),
                    Some('b') => ("\u{8}", "\u{8}"),
                    Some('f') => ("\u{c}", "\u{c}"),
                    Some('\'') => ("'", "'"),
                    Some('"') => ("\"", "\""),
                    Some('\\') => ("\\", "\\\\"),
                    Some('%') => ("%", "\\%"),
                    Some('_') => ("_", "\\_"),
                    other => {
                        return Err(SoqlError {
                            kind: SoqlErrorKind::MalformedQuery,
                            message: format!(
                                "invalid escape sequence: \\{}",
                                other.map(char::to_string).unwrap_or_default()
                            ),
                            pos,
                        });
                    }
                };
                value.push_str(escaped);
                pattern.push_str(in_pattern);
                i += 2;
            }
            Some(c) => {
                value.push(*c);
                pattern.push(*c);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<Token> {
        tokenize(source)
            .unwrap()
            .into_iter()
            .map(|t| t.token)
            .collect()
    }

    #[test]
    fn literals_are_recognised_with_their_text() {
        assert_eq!(
            kinds("x >= 2024-01-31T10:00:00.000000Z AND d = 2024-02-29 AND n = 3.5"),
            vec![
                Token::Ident("x".to_owned()),
                Token::Symbol(">="),
                Token::DateTime("2024-01-31T10:00:00.000000Z".to_owned()),
                Token::Ident("AND".to_owned()),
                Token::Ident("d".to_owned()),
                Token::Symbol("="),
                Token::Date("2024-02-29".to_owned()),
                Token::Ident("AND".to_owned()),
                Token::Ident("n".to_owned()),
                Token::Symbol("="),
                Token::Number("3.5".to_owned()),
                Token::Eof,
            ]
        );
    }

    #[test]
    fn strings_resolve_escapes_but_keep_like_wildcard_escapes() {
        let str_token = |value: &str, pattern: &str| Token::Str {
            value: value.to_owned(),
            pattern: pattern.to_owned(),
        };
        assert_eq!(
            kinds(r"'O\'Brien\n'")[0],
            str_token("O'Brien\n", "O'Brien\n")
        );
        assert_eq!(kinds(r"'100\%'")[0], str_token("100%", "100\\%"));
        assert_eq!(kinds(r"'a\\b'")[0], str_token("a\\b", "a\\\\b"));
        assert!(tokenize("'open").is_err());
        assert!(tokenize(r"'bad \q'").is_err());
    }

    #[test]
    fn positions_count_rows_and_columns() {
        let tokens = tokenize("SELECT Id\nFROM  Account").unwrap();
        assert_eq!(tokens[2].pos, Pos { row: 2, column: 1 });
        assert_eq!(tokens[3].pos, Pos { row: 2, column: 7 });
    }

    #[test]
    fn impossible_dates_are_errors() {
        assert!(tokenize("d = 2023-02-29").is_err());
        assert!(tokenize("d = 2024-01-01T25:00:00Z").is_err());
    }
}
