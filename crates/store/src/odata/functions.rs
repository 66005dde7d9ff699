//! The `$filter` functions: each a SQL expression over compiled arguments.
//!
//! `contains`, `startswith` and `endswith` with a literal pattern become `like` with the
//! pattern's `%`, `_` and `\` escaped in the bound value, so a `text_pattern_ops` (or C
//! collation) index serves `startswith`; with a computed pattern they use `strpos` and
//! `right`. Positions are bounded before any cast so no input overflows.

use super::compile::{Sql, Ty, compile, invalid};
use super::filter::{Expr, Literal};
use super::json::{Binds, Param};
use super::{EntitySet, QueryError};

/// The largest position or length `substring` passes on (longer than any text value).
const MAX_POSITION: i64 = 1_073_741_824;

/// `%`, `_` and `\` escaped for a LIKE pattern (backslash is LIKE's escape character).
fn like_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// One function call being compiled.
struct Call<'s, 'a> {
    set: &'a EntitySet,
    function: &'s str,
    args: &'s [Expr],
    at: usize,
}

impl<'a> Call<'_, 'a> {
    /// Checks the number of arguments.
    fn arity(&self, range: std::ops::RangeInclusive<usize>) -> Result<(), QueryError> {
        if range.contains(&self.args.len()) {
            return Ok(());
        }
        let expected = if range.start() == range.end() {
            range.start().to_string()
        } else {
            format!("{} or {}", range.start(), range.end())
        };
        Err(invalid(
            "InvalidFilter",
            self.at,
            format_args!(
                "{} takes {expected} argument(s), not {}",
                self.function,
                self.args.len()
            ),
        ))
    }

    /// Compiles argument `index`, which must have one of the `wanted` types.
    fn arg(&self, binds: &mut Binds, index: usize, wanted: &[Ty]) -> Result<Sql<'a>, QueryError> {
        let expr = self.args.get(index).ok_or_else(|| {
            invalid(
                "InvalidFilter",
                self.at,
                format_args!("{} is missing an argument", self.function),
            )
        })?;
        let sql = compile(self.set, expr, binds)?;
        if wanted.contains(&sql.ty) {
            return Ok(sql);
        }
        let names: Vec<&str> = wanted.iter().map(|t| t.name()).collect();
        Err(invalid(
            "TypeMismatch",
            self.at,
            format_args!(
                "argument {} of {} is {} ({}), expected {}",
                index + 1,
                self.function,
                sql.what,
                sql.ty.name(),
                names.join(" or ")
            ),
        ))
    }

    /// The call's result.
    fn result(&self, text: String, ty: Ty) -> Sql<'a> {
        Sql {
            text,
            ty,
            property: None,
            time_zone: false,
            what: format!("{}(…)", self.function),
        }
    }
}

const STRING: &[Ty] = &[Ty::String];

/// Compiles a function call.
pub(super) fn call<'a>(
    set: &'a EntitySet,
    function: &str,
    args: &[Expr],
    at: usize,
    binds: &mut Binds,
) -> Result<Sql<'a>, QueryError> {
    let call = Call {
        set,
        function,
        args,
        at,
    };
    match function {
        "contains" | "startswith" | "endswith" => pattern(&call, binds),
        "tolower" | "toupper" | "trim" | "length" | "indexof" | "concat" | "substring" => {
            text(&call, binds)
        }
        "year" | "month" | "day" | "hour" | "minute" | "second" | "date" | "time" => {
            temporal(&call, binds)
        }
        _ => Err(QueryError::not_supported(
            "$filter",
            format!("$filter at offset {at}: the function {function} is not supported"),
        )),
    }
}

/// `contains`, `startswith`, `endswith`.
fn pattern<'a>(call: &Call<'_, 'a>, binds: &mut Binds) -> Result<Sql<'a>, QueryError> {
    call.arity(2..=2)?;
    let haystack = call.arg(binds, 0, STRING)?;
    if let Some(Expr::Literal {
        value: Literal::String(needle),
        ..
    }) = call.args.get(1)
    {
        let escaped = like_escape(needle);
        let pattern = match call.function {
            "contains" => format!("%{escaped}%"),
            "startswith" => format!("{escaped}%"),
            _ => format!("%{escaped}"),
        };
        let placeholder = binds.push(Param::Text(pattern));
        let text = format!("({} like {placeholder}::pg_catalog.text)", haystack.text);
        return Ok(call.result(text, Ty::Bool));
    }
    let needle = call.arg(binds, 1, STRING)?;
    let (h, n) = (haystack.text, needle.text);
    let text = match call.function {
        "contains" => format!("(strpos({h}, {n}) > 0)"),
        "startswith" => format!("(strpos({h}, {n}) = 1)"),
        _ => format!("(right({h}, char_length({n})) = {n})"),
    };
    Ok(call.result(text, Ty::Bool))
}

/// The string functions.
fn text<'a>(call: &Call<'_, 'a>, binds: &mut Binds) -> Result<Sql<'a>, QueryError> {
    let (text, ty) = match call.function {
        "tolower" | "toupper" | "trim" => {
            call.arity(1..=1)?;
            let s = call.arg(binds, 0, STRING)?;
            let sql = match call.function {
                "tolower" => "lower",
                "toupper" => "upper",
                _ => "btrim",
            };
            (format!("{sql}({})", s.text), Ty::String)
        }
        "length" => {
            call.arity(1..=1)?;
            let s = call.arg(binds, 0, STRING)?;
            (format!("char_length({})", s.text), Ty::Int)
        }
        "indexof" => {
            call.arity(2..=2)?;
            let s = call.arg(binds, 0, STRING)?;
            let n = call.arg(binds, 1, STRING)?;
            (format!("(strpos({}, {}) - 1)", s.text, n.text), Ty::Int)
        }
        "concat" => {
            call.arity(2..=2)?;
            let a = call.arg(binds, 0, STRING)?;
            let b = call.arg(binds, 1, STRING)?;
            (format!("({} || {})", a.text, b.text), Ty::String)
        }
        _ => (substring(call, binds)?, Ty::String),
    };
    Ok(call.result(text, ty))
}

/// `substring(s, start[, length])`, zero-based as OData counts.
fn substring(call: &Call<'_, '_>, binds: &mut Binds) -> Result<String, QueryError> {
    call.arity(2..=3)?;
    let s = call.arg(binds, 0, STRING)?;
    let start = call.arg(binds, 1, &[Ty::Int])?;
    // Bounded first: a position far beyond any string must not overflow int4.
    let bounded = |value: &str| format!("least(greatest({value}, 0), {MAX_POSITION})");
    Ok(if call.args.len() == 3 {
        let length = call.arg(binds, 2, &[Ty::Int])?;
        format!(
            "substr({}, ({} + 1)::pg_catalog.int4, {}::pg_catalog.int4)",
            s.text,
            bounded(&start.text),
            bounded(&length.text)
        )
    } else {
        format!(
            "substr({}, ({} + 1)::pg_catalog.int4)",
            s.text,
            bounded(&start.text)
        )
    })
}

/// The date and time functions, on UTC wall-clock time.
fn temporal<'a>(call: &Call<'_, 'a>, binds: &mut Binds) -> Result<Sql<'a>, QueryError> {
    call.arity(1..=1)?;
    let wanted: &[Ty] = match call.function {
        "year" | "month" | "day" => &[Ty::Date, Ty::DateTimeOffset],
        "date" | "time" => &[Ty::DateTimeOffset],
        _ => &[Ty::DateTimeOffset, Ty::TimeOfDay],
    };
    let value = call.arg(binds, 0, wanted)?;
    let source = utc(&value);
    let (text, ty) = match call.function {
        "date" => (format!("({source})::pg_catalog.date"), Ty::Date),
        "time" => (format!("({source})::pg_catalog.time"), Ty::TimeOfDay),
        "second" => (
            format!("floor(extract(second from {source}))::pg_catalog.int4"),
            Ty::Int,
        ),
        // year, month, day, hour, minute: constants, never input.
        field => (
            format!("extract({field} from {source})::pg_catalog.int4"),
            Ty::Int,
        ),
    };
    Ok(call.result(text, ty))
}

/// A timestamp expression as UTC wall-clock time (a `timestamp` already is).
fn utc(value: &Sql<'_>) -> String {
    if value.ty == Ty::DateTimeOffset && value.time_zone {
        format!("({} at time zone 'UTC')", value.text)
    } else {
        value.text.clone()
    }
}
