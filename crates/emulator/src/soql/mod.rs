//! Placeholder with the agreed API; replaced by the real lexer and parser.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: Name,
    pub where_clause: Option<Expr>,
    pub order_by: Vec<OrderItem>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    Field(FieldPath),
    CountAll { pos: Pos },
}
#[derive(Debug, Clone, PartialEq)]
pub struct Name {
    pub text: String,
    pub pos: Pos,
}
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath {
    pub parts: Vec<Name>,
}
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
    Like {
        field: FieldPath,
        pattern: String,
    },
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    String(String),
    Number(f64),
    Date(i32),
    DateTime(i64),
}
#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub field: FieldPath,
    pub descending: bool,
    pub nulls_last: bool,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub row: u32,
    pub column: u32,
}
#[derive(Debug, Clone, PartialEq)]
pub struct SoqlError {
    pub kind: SoqlErrorKind,
    pub message: String,
    pub pos: Pos,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoqlErrorKind {
    MalformedQuery,
}
impl SoqlError {
    pub fn salesforce_message(&self, soql: &str) -> String {
        format!("{soql}{}", self.message)
    }
}
pub fn parse(soql: &str) -> Result<Query, SoqlError> {
    Err(SoqlError {
        kind: SoqlErrorKind::MalformedQuery,
        message: soql.to_owned(),
        pos: Pos { row: 1, column: 1 },
    })
}
