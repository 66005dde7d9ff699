//! SOQL: the statements, their parser, and Salesforce-formatted errors.
//!
//! Only grammar lives here; [`crate::query`] binds names to the schema and runs queries.

mod lexer;
mod parser;

pub use parser::parse;

/// A parsed `SELECT` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: Name,
    pub where_clause: Option<Expr>,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

/// One item of the select list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    Field(FieldPath),
    /// `COUNT()`.
    CountAll {
        pos: Pos,
    },
}

/// A name as written, with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Name {
    pub text: String,
    pub pos: Pos,
}

/// A field, possibly through parent relationships: `Account.Owner.Name`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath {
    pub parts: Vec<Name>,
}

/// A WHERE condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        field: FieldPath,
        op: CompareOp,
        value: Literal,
    },
    In {
        field: FieldPath,
        negated: bool,
        values: Vec<Literal>,
    },
    /// `LIKE` with its pattern: `%` and `_` are wildcards; `\%`, `\_` and `\\` are kept
    /// escaped and match the literal character.
    Like {
        field: FieldPath,
        pattern: String,
    },
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    String(String),
    Number(f64),
    /// Days since 1970-01-01.
    Date(i32),
    /// UTC milliseconds since the epoch.
    DateTime(i64),
}

/// One ORDER BY key.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub field: FieldPath,
    pub descending: bool,
    pub nulls_last: bool,
}

/// Where a token starts: 1-based row and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub row: u32,
    pub column: u32,
}

/// A query the grammar refuses.
#[derive(Debug, Clone, PartialEq)]
pub struct SoqlError {
    pub kind: SoqlErrorKind,
    pub message: String,
    pub pos: Pos,
}

/// The Salesforce error code a grammar error is reported with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoqlErrorKind {
    MalformedQuery,
}

impl SoqlError {
    /// The message as Salesforce formats it: the offending line, a caret under the
    /// position, `ERROR at Row:R:Column:C`, then the message.
    pub fn salesforce_message(&self, soql: &str) -> String {
        let line = soql
            .lines()
            .nth(self.pos.row.saturating_sub(1) as usize)
            .unwrap_or(soql);
        let caret = format!(
            "{}^",
            " ".repeat(self.pos.column.saturating_sub(1) as usize)
        );
        format!(
            "\n{line}\n{caret}\nERROR at Row:{}:Column:{}\n{}",
            self.pos.row, self.pos.column, self.message
        )
    }
}
