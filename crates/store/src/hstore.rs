//! Reading the hstore text the trigger log stores in `old` and `"values"`.
//!
//! Heroku Connect keeps captured rows as hstore *text* (`"name"=>"Acme", "sfid"=>NULL`), and
//! tools written for it read that text, so pgforce keeps the format and parses it here:
//! keys and values are double-quoted with `\"` and `\\` escaped, `NULL` (unquoted) is a
//! null value, pairs are separated by commas. Malformed text is an error naming the
//! position, never a panic.

/// One captured column: its name and value (`None` for NULL).
pub type Pair = (String, Option<String>);

/// Why hstore text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed hstore text at character {position}: {problem}")]
pub struct HstoreError {
    /// Character offset of the problem.
    pub position: usize,
    /// What was expected.
    pub problem: &'static str,
}

/// Parses hstore text into its pairs, in the order written.
pub fn parse(text: &str) -> Result<Vec<Pair>, HstoreError> {
    let chars: Vec<char> = text.chars().collect();
    let mut at = 0;
    let mut pairs = Vec::new();
    let skip_spaces = |at: &mut usize| {
        while chars.get(*at).is_some_and(|c| c.is_whitespace()) {
            *at += 1;
        }
    };
    skip_spaces(&mut at);
    while at < chars.len() {
        let key = quoted(&chars, &mut at)?;
        skip_spaces(&mut at);
        if chars.get(at) != Some(&'=') || chars.get(at + 1) != Some(&'>') {
            return Err(HstoreError {
                position: at,
                problem: "expected =>",
            });
        }
        at += 2;
        skip_spaces(&mut at);
        let value = if chars.get(at) == Some(&'"') {
            Some(quoted(&chars, &mut at)?)
        } else if chars
            .get(at..at + 4)
            .is_some_and(|w| w.iter().collect::<String>().eq_ignore_ascii_case("null"))
        {
            at += 4;
            None
        } else {
            return Err(HstoreError {
                position: at,
                problem: "expected a quoted value or NULL",
            });
        };
        pairs.push((key, value));
        skip_spaces(&mut at);
        match chars.get(at) {
            None => break,
            Some(',') => {
                at += 1;
                skip_spaces(&mut at);
            }
            Some(_) => {
                return Err(HstoreError {
                    position: at,
                    problem: "expected , between pairs",
                });
            }
        }
    }
    Ok(pairs)
}

fn quoted(chars: &[char], at: &mut usize) -> Result<String, HstoreError> {
    if chars.get(*at) != Some(&'"') {
        return Err(HstoreError {
            position: *at,
            problem: "expected a quoted key",
        });
    }
    *at += 1;
    let mut out = String::new();
    loop {
        match chars.get(*at) {
            None => {
                return Err(HstoreError {
                    position: *at,
                    problem: "unterminated quoted string",
                });
            }
            Some('"') => {
                *at += 1;
                return Ok(out);
            }
            Some('\\') => {
                let escaped = chars.get(*at + 1).ok_or(HstoreError {
                    position: *at,
                    problem: "dangling backslash",
                })?;
                out.push(*escaped);
                *at += 2;
            }
            Some(c) => {
                out.push(*c);
                *at += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(k: &str, v: Option<&str>) -> Pair {
        (k.to_owned(), v.map(str::to_owned))
    }

    #[test]
    fn pairs_nulls_and_escapes_are_read() {
        assert_eq!(parse("").unwrap(), Vec::<Pair>::new());
        assert_eq!(
            parse(r#""id"=>"1", "name"=>"Say \"hi\" \\ there", "sfid"=>NULL"#).unwrap(),
            vec![
                pair("id", Some("1")),
                pair("name", Some("Say \"hi\" \\ there")),
                pair("sfid", None)
            ]
        );
        assert_eq!(
            parse("\"a\"=>\"line\nbreak\"").unwrap(),
            vec![pair("a", Some("line\nbreak"))]
        );
    }

    #[test]
    fn malformed_text_names_the_position() {
        for (text, position) in [
            ("\"a\"=\"b\"", 3),
            ("\"a\"=>b", 5),
            ("\"a\"=>\"b\" \"c\"", 9),
            ("\"a", 2),
            ("a=>\"b\"", 0),
        ] {
            let error = parse(text).unwrap_err();
            assert_eq!(error.position, position, "{text:?}: {error}");
        }
    }
}
