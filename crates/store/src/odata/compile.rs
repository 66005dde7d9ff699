//! `$filter` and `$search` to SQL: a boolean condition whose every literal is a bind
//! parameter of the compared column's own type (so an indexed `eq` or range uses the
//! index), and whose every name is a checked, quoted property.
//!
//! OData compares with two-valued logic where SQL has three: `null eq null` is true and
//! `x ne 'a'` is true when `x` is null. So `ne` becomes `is distinct from`, `eq` between
//! two expressions `is not distinct from`, and `not` treats an unknown operand as false.

use super::filter::{ArithOp, CmpOp, Expr, Literal};
use super::functions;
use super::json::{Binds, Param, base_type, has_time_zone};
use super::{EdmType, EntitySet, Property, QueryError, quote};

/// The type of a compiled expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ty {
    Bool,
    Int,
    Decimal,
    Float,
    String,
    Date,
    DateTimeOffset,
    TimeOfDay,
    Guid,
    Binary,
}

impl Ty {
    fn of(edm: EdmType) -> Self {
        match edm {
            EdmType::Boolean => Self::Bool,
            EdmType::Int16 | EdmType::Int32 | EdmType::Int64 => Self::Int,
            EdmType::Decimal { .. } => Self::Decimal,
            EdmType::Single | EdmType::Double => Self::Float,
            EdmType::String { .. } => Self::String,
            EdmType::Date => Self::Date,
            EdmType::DateTimeOffset => Self::DateTimeOffset,
            EdmType::TimeOfDay => Self::TimeOfDay,
            EdmType::Guid => Self::Guid,
            EdmType::Binary => Self::Binary,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Bool => "Edm.Boolean",
            Self::Int => "an integer",
            Self::Decimal => "Edm.Decimal",
            Self::Float => "Edm.Double",
            Self::String => "Edm.String",
            Self::Date => "Edm.Date",
            Self::DateTimeOffset => "Edm.DateTimeOffset",
            Self::TimeOfDay => "Edm.TimeOfDay",
            Self::Guid => "Edm.Guid",
            Self::Binary => "Edm.Binary",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Self::Int | Self::Decimal | Self::Float)
    }
}

/// A compiled expression.
pub(super) struct Sql<'a> {
    pub(super) text: String,
    pub(super) ty: Ty,
    /// The property it is, when it is one (literals compared with it take its type).
    pub(super) property: Option<&'a Property>,
    /// For timestamps: whether the value is a `timestamptz`.
    pub(super) time_zone: bool,
    /// What it is, for error messages: `property Name`, `tolower(…)`.
    pub(super) what: String,
}

pub(super) fn invalid(
    code: &'static str,
    at: usize,
    message: impl std::fmt::Display,
) -> QueryError {
    QueryError::new(
        code,
        Some("$filter".to_owned()),
        format!("$filter at offset {at}: {message}"),
    )
}

/// Compiles a parsed `$filter` into a boolean SQL condition.
pub(crate) fn filter(
    set: &EntitySet,
    expr: &Expr,
    binds: &mut Binds,
) -> Result<String, QueryError> {
    let sql = compile(set, expr, binds)?;
    if sql.ty != Ty::Bool {
        return Err(invalid(
            "InvalidFilter",
            expr.at(),
            format_args!("the filter is {}, not a condition", sql.what),
        ));
    }
    Ok(sql.text)
}

/// `$search`: the phrase (case-sensitive) in any String property.
pub(crate) fn search(set: &EntitySet, phrase: &str, binds: &mut Binds) -> String {
    let strings: Vec<&Property> = set
        .properties
        .iter()
        .filter(|p| matches!(p.edm, EdmType::String { .. }))
        .collect();
    if strings.is_empty() {
        return "false".to_owned();
    }
    let placeholder = binds.push(Param::Text(phrase.to_owned()));
    let terms: Vec<String> = strings
        .iter()
        .map(|p| {
            format!(
                "strpos({}::pg_catalog.text, {placeholder}::pg_catalog.text) > 0",
                quote(&p.name)
            )
        })
        .collect();
    format!("({})", terms.join(" or "))
}

fn condition(set: &EntitySet, expr: &Expr, binds: &mut Binds) -> Result<String, QueryError> {
    let sql = compile(set, expr, binds)?;
    if sql.ty == Ty::Bool {
        Ok(sql.text)
    } else {
        Err(invalid(
            "TypeMismatch",
            expr.at(),
            format_args!(
                "{} is {}, where a condition was expected",
                sql.what,
                sql.ty.name()
            ),
        ))
    }
}

pub(super) fn compile<'a>(
    set: &'a EntitySet,
    expr: &Expr,
    binds: &mut Binds,
) -> Result<Sql<'a>, QueryError> {
    match expr {
        Expr::Literal { value, at } => natural_literal(value, *at, binds),
        Expr::Property { name, at } => {
            let property = set.property(name).ok_or_else(|| {
                QueryError::new(
                    "UnknownProperty",
                    Some(name.clone()),
                    format!(
                        "$filter at offset {at}: {} has no property {name}",
                        set.name
                    ),
                )
            })?;
            Ok(Sql {
                text: quote(&property.name),
                ty: Ty::of(property.edm),
                property: Some(property),
                time_zone: has_time_zone(property),
                what: format!("property {name}"),
            })
        }
        Expr::Not { operand, .. } => {
            let operand = condition(set, operand, binds)?;
            Ok(boolean(format!("(not coalesce({operand}, false))"), "not"))
        }
        Expr::And(items) | Expr::Or(items) => {
            let joiner = if matches!(expr, Expr::And(_)) {
                " and "
            } else {
                " or "
            };
            let parts = items
                .iter()
                .map(|item| condition(set, item, binds))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(boolean(format!("({})", parts.join(joiner)), joiner.trim()))
        }
        Expr::Compare {
            op,
            left,
            right,
            at,
        } => compare(set, *op, left, right, *at, binds),
        Expr::Call { function, args, at } => functions::call(set, function, args, *at, binds),
        Expr::Arith {
            op,
            left,
            right,
            at,
        } => arithmetic(set, *op, left, right, *at, binds),
    }
}

fn boolean<'a>(text: String, what: &str) -> Sql<'a> {
    Sql {
        text,
        ty: Ty::Bool,
        property: None,
        time_zone: false,
        what: what.to_owned(),
    }
}

fn literal_name(value: &Literal) -> &'static str {
    match value {
        Literal::Null => "null",
        Literal::Bool(_) => "a boolean",
        Literal::Int(_) | Literal::Decimal(_) | Literal::Double(_) => "a number",
        Literal::String(_) => "a string",
        Literal::Date(_) => "a date",
        Literal::DateTimeOffset(_) => "a date and time",
        Literal::TimeOfDay(_) => "a time of day",
        Literal::Guid(_) => "a GUID",
    }
}

/// A literal on its own (or compared with another literal): its own type.
fn natural_literal<'a>(
    value: &Literal,
    at: usize,
    binds: &mut Binds,
) -> Result<Sql<'a>, QueryError> {
    let text = |binds: &mut Binds, value: &str, cast: &str| {
        format!(
            "{}::pg_catalog.text::pg_catalog.{cast}",
            binds.push(Param::Text(value.to_owned()))
        )
    };
    let (sql, ty) = match value {
        Literal::Null => {
            return Err(invalid(
                "InvalidFilter",
                at,
                "null can only be compared with eq or ne",
            ));
        }
        Literal::Bool(b) => (text(binds, &b.to_string(), "bool"), Ty::Bool),
        Literal::Int(i) => (
            format!("{}::pg_catalog.int8", binds.push(Param::Int(*i))),
            Ty::Int,
        ),
        Literal::Decimal(d) => (text(binds, d, "numeric"), Ty::Decimal),
        Literal::Double(d) => (text(binds, d, "float8"), Ty::Float),
        Literal::String(s) => (
            format!("{}::pg_catalog.text", binds.push(Param::Text(s.clone()))),
            Ty::String,
        ),
        Literal::Date(d) => (text(binds, d, "date"), Ty::Date),
        Literal::DateTimeOffset(d) => (text(binds, d, "timestamptz"), Ty::DateTimeOffset),
        Literal::TimeOfDay(t) => (text(binds, t, "time"), Ty::TimeOfDay),
        Literal::Guid(g) => (text(binds, g, "uuid"), Ty::Guid),
    };
    Ok(Sql {
        text: sql,
        ty,
        property: None,
        time_zone: ty == Ty::DateTimeOffset,
        what: literal_name(value).to_owned(),
    })
}

/// A literal compared with `other`: bound as a value of `other`'s type.
fn literal_for<'a>(
    value: &Literal,
    other: &Sql<'_>,
    at: usize,
    binds: &mut Binds,
) -> Result<Sql<'a>, QueryError> {
    let mismatch = || {
        invalid(
            "TypeMismatch",
            at,
            format_args!(
                "{} is {}; it cannot be compared with {}",
                other.what,
                other.ty.name(),
                literal_name(value)
            ),
        )
    };
    let cast_to_property = |binds: &mut Binds, text: String, fallback: &str| {
        let placeholder = binds.push(Param::Text(text));
        match other.property {
            Some(property) => format!("{placeholder}::pg_catalog.text::{}", base_type(property)),
            None => format!("{placeholder}::pg_catalog.text::pg_catalog.{fallback}"),
        }
    };
    let number_text = match value {
        Literal::Int(i) => Some(i.to_string()),
        Literal::Decimal(d) | Literal::Double(d) => Some(d.clone()),
        _ => None,
    };
    let text = match (other.ty, value) {
        (Ty::Int, Literal::Int(i)) => format!("{}::pg_catalog.int8", binds.push(Param::Int(*i))),
        (Ty::Int, Literal::Decimal(d)) => format!(
            "{}::pg_catalog.text::pg_catalog.numeric",
            binds.push(Param::Text(d.clone()))
        ),
        (Ty::Int, Literal::Double(d)) => format!(
            "{}::pg_catalog.text::pg_catalog.float8",
            binds.push(Param::Text(d.clone()))
        ),
        (Ty::Decimal, _) if number_text.is_some() => format!(
            "{}::pg_catalog.text::pg_catalog.numeric",
            binds.push(Param::Text(number_text.unwrap_or_default()))
        ),
        (Ty::Float, _) if number_text.is_some() => {
            let text = number_text.unwrap_or_default();
            // A Single column compares with a Single value (0.1 stays equal to 0.1),
            // unless the value is beyond Single's range (then no row can equal it).
            let fits = text
                .parse::<f64>()
                .is_ok_and(|v| v.abs() <= f64::from(f32::MAX));
            if fits {
                cast_to_property(binds, text, "float8")
            } else {
                format!(
                    "{}::pg_catalog.text::pg_catalog.float8",
                    binds.push(Param::Text(text))
                )
            }
        }
        (Ty::String, Literal::String(s)) => match other.property {
            Some(p) if !matches!(p.pg_type.name.as_str(), "text" | "varchar" | "bpchar") => {
                cast_to_property(binds, s.clone(), "text")
            }
            _ => format!("{}::pg_catalog.text", binds.push(Param::Text(s.clone()))),
        },
        (Ty::Bool, Literal::Bool(b)) => format!(
            "{}::pg_catalog.text::pg_catalog.bool",
            binds.push(Param::Text(b.to_string()))
        ),
        (Ty::Date, Literal::Date(d)) => format!(
            "{}::pg_catalog.text::pg_catalog.date",
            binds.push(Param::Text(d.clone()))
        ),
        (Ty::DateTimeOffset, Literal::DateTimeOffset(_) | Literal::Date(_)) => {
            let text = match value {
                Literal::Date(d) => format!("{d}T00:00:00Z"),
                Literal::DateTimeOffset(d) => d.clone(),
                _ => return Err(mismatch()),
            };
            let placeholder = binds.push(Param::Text(text));
            if other.time_zone {
                format!("{placeholder}::pg_catalog.text::pg_catalog.timestamptz")
            } else {
                format!(
                    "({placeholder}::pg_catalog.text::pg_catalog.timestamptz at time zone 'UTC')"
                )
            }
        }
        (Ty::TimeOfDay, Literal::TimeOfDay(t)) => format!(
            "{}::pg_catalog.text::pg_catalog.time",
            binds.push(Param::Text(t.clone()))
        ),
        (Ty::Guid, Literal::Guid(g)) => format!(
            "{}::pg_catalog.text::pg_catalog.uuid",
            binds.push(Param::Text(g.clone()))
        ),
        (Ty::Guid, Literal::String(s)) if super::json::is_guid(s) => format!(
            "{}::pg_catalog.text::pg_catalog.uuid",
            binds.push(Param::Text(s.to_ascii_lowercase()))
        ),
        (Ty::Binary, _) => {
            return Err(QueryError::not_supported(
                "$filter",
                format!("$filter at offset {at}: comparing Edm.Binary values is not supported"),
            ));
        }
        _ => return Err(mismatch()),
    };
    Ok(Sql {
        text,
        ty: other.ty,
        property: None,
        time_zone: other.time_zone,
        what: literal_name(value).to_owned(),
    })
}

fn compare<'a>(
    set: &'a EntitySet,
    op: CmpOp,
    left: &Expr,
    right: &Expr,
    at: usize,
    binds: &mut Binds,
) -> Result<Sql<'a>, QueryError> {
    let is_null = |e: &Expr| {
        matches!(
            e,
            Expr::Literal {
                value: Literal::Null,
                ..
            }
        )
    };
    // Comparisons with null.
    if is_null(left) || is_null(right) {
        let other = if is_null(left) { right } else { left };
        if is_null(other) {
            let holds = matches!(op, CmpOp::Eq | CmpOp::Ge | CmpOp::Le);
            return Ok(boolean(holds.to_string(), "null comparison"));
        }
        if !matches!(op, CmpOp::Eq | CmpOp::Ne) {
            // Ordering against null is never true in OData; the other side is still
            // checked, but its parameters stay out of the statement.
            compile(set, other, &mut Binds::default())?;
            return Ok(boolean("false".to_owned(), "null comparison"));
        }
        let other = compile(set, other, binds)?;
        let test = if op == CmpOp::Eq {
            "is null"
        } else {
            "is not null"
        };
        return Ok(boolean(
            format!("({} {test})", other.text),
            "null comparison",
        ));
    }
    let literal = |e: &Expr| match e {
        Expr::Literal { value, .. } => Some(value.clone()),
        _ => None,
    };
    // `f(x) eq true` as Salesforce sends it: the condition itself (keeps LIKE indexable).
    if matches!(op, CmpOp::Eq | CmpOp::Ne) {
        let tested = match (literal(left), literal(right)) {
            (None, Some(Literal::Bool(value))) => Some((left, value)),
            (Some(Literal::Bool(value)), None) => Some((right, value)),
            _ => None,
        };
        if let Some((tested, value)) = tested {
            let sql = compile(set, tested, binds)?;
            if sql.ty != Ty::Bool {
                return Err(invalid(
                    "TypeMismatch",
                    at,
                    format_args!(
                        "{} is {}; it cannot be compared with a boolean",
                        sql.what,
                        sql.ty.name()
                    ),
                ));
            }
            return Ok(bool_test(sql.text, value, op));
        }
    }
    let (l, r) = match (literal(left), literal(right)) {
        (Some(_), Some(_)) | (None, None) => {
            (compile(set, left, binds)?, compile(set, right, binds)?)
        }
        (None, Some(value)) => {
            let l = compile(set, left, binds)?;
            let r = literal_for(&value, &l, right.at(), binds)?;
            (l, r)
        }
        (Some(value), None) => {
            // The right side first: the literal takes its type. (Placeholders need not
            // read left to right; compiling each side once keeps the work linear.)
            let r = compile(set, right, binds)?;
            let l = literal_for(&value, &r, left.at(), binds)?;
            (l, r)
        }
    };
    let compatible = l.ty == r.ty || (l.ty.numeric() && r.ty.numeric());
    if !compatible {
        return Err(invalid(
            "TypeMismatch",
            at,
            format_args!(
                "{} is {}; it cannot be compared with {} ({})",
                l.what,
                l.ty.name(),
                r.what,
                r.ty.name()
            ),
        ));
    }
    let one_literal = literal(left).is_some() || literal(right).is_some();
    let operator = match op {
        CmpOp::Eq if one_literal => "=",
        CmpOp::Eq => "is not distinct from",
        CmpOp::Ne => "is distinct from",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
    };
    Ok(boolean(
        format!("({} {operator} {})", l.text, r.text),
        "comparison",
    ))
}

/// Arithmetic, computed in `numeric` so that no input overflows; division and modulo by
/// zero give null (so the comparison is false) instead of an error.
fn arithmetic<'a>(
    set: &'a EntitySet,
    op: ArithOp,
    left: &Expr,
    right: &Expr,
    at: usize,
    binds: &mut Binds,
) -> Result<Sql<'a>, QueryError> {
    let l = compile(set, left, binds)?;
    let r = compile(set, right, binds)?;
    for side in [&l, &r] {
        if !side.ty.numeric() {
            return Err(invalid(
                "TypeMismatch",
                at,
                format_args!(
                    "{} is {}; arithmetic needs numbers",
                    side.what,
                    side.ty.name()
                ),
            ));
        }
    }
    let (a, b) = (
        format!("({})::pg_catalog.numeric", l.text),
        format!("({})::pg_catalog.numeric", r.text),
    );
    let integers = l.ty == Ty::Int && r.ty == Ty::Int;
    let text = match op {
        ArithOp::Add => format!("({a} + {b})"),
        ArithOp::Sub => format!("({a} - {b})"),
        ArithOp::Mul => format!("({a} * {b})"),
        ArithOp::Div if integers => format!("trunc({a} / nullif({b}, 0))"),
        ArithOp::Div | ArithOp::DivBy => format!("({a} / nullif({b}, 0))"),
        ArithOp::Mod => format!("mod({a}, nullif({b}, 0))"),
    };
    let ty = if integers && op != ArithOp::DivBy {
        Ty::Int
    } else {
        Ty::Decimal
    };
    Ok(Sql {
        text,
        ty,
        property: None,
        time_zone: false,
        what: "arithmetic".to_owned(),
    })
}

/// A condition compared with a boolean literal, with OData's null rules (`null eq
/// false` is false, `null ne true` is true); `eq true` stays the bare condition.
fn bool_test<'a>(condition: String, literal: bool, op: CmpOp) -> Sql<'a> {
    let text = match (op, literal) {
        (CmpOp::Eq, true) => condition,
        (CmpOp::Eq, false) => format!("(({condition}) is false)"),
        (_, true) => format!("(({condition}) is not true)"),
        (_, false) => format!("(({condition}) is not false)"),
    };
    boolean(text, "condition")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odata::filter::parse;
    use crate::odata::{PgTypeName, RelationKind};

    fn column(name: &str, edm: EdmType, pg: &str) -> Property {
        Property {
            name: name.to_owned(),
            edm,
            nullable: true,
            pg_type: PgTypeName {
                schema: "pg_catalog".to_owned(),
                name: pg.to_owned(),
            },
            has_default: false,
        }
    }

    fn people() -> EntitySet {
        EntitySet {
            name: "public$people".to_owned(),
            schema: "public".to_owned(),
            table: "people".to_owned(),
            kind: RelationKind::Table,
            key: vec!["id".to_owned()],
            properties: vec![
                column("id", EdmType::Int64, "int8"),
                column("name", EdmType::String { max_length: None }, "text"),
                column("seen", EdmType::DateTimeOffset, "timestamp"),
            ],
            etag_column: None,
            omitted: Vec::new(),
        }
    }

    fn compiled(text: &str) -> (String, Vec<Param>) {
        let mut binds = Binds::default();
        let sql = filter(&people(), &parse(text).unwrap(), &mut binds).unwrap();
        (sql, binds.into_params())
    }

    #[test]
    fn literals_are_parameters_and_names_are_quoted() {
        let (sql, params) = compiled("name eq 'x'' or 1=1 --' and id gt 5");
        assert_eq!(
            sql,
            "((\"name\" = $1::pg_catalog.text) and (\"id\" > $2::pg_catalog.int8))"
        );
        assert_eq!(
            params,
            [Param::Text("x' or 1=1 --".to_owned()), Param::Int(5)]
        );
    }

    #[test]
    fn like_patterns_escape_wildcards_and_timestamps_read_as_utc() {
        let (sql, params) = compiled("startswith(name,'50%_\\') eq true");
        assert_eq!(sql, "(\"name\" like $1::pg_catalog.text)");
        assert_eq!(params, [Param::Text("50\\%\\_\\\\%".to_owned())]);
        let (sql, _) = compiled("seen lt 2024-01-31");
        assert!(sql.contains("at time zone 'UTC'"), "{sql}");
    }
}
