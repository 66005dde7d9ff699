//! SOQL queries against the org: binding, execution, cursors and rendering.
//!
//! Data flow: text → [`crate::soql::parse`] → [`bind::bind`] (schema-checked) →
//! [`exec::execute`] (record numbers, ordered) → a cursor → pages rendered by [`render`].

pub mod bind;
pub mod cursor;
pub mod exec;
pub mod render;

pub use bind::bind;
pub use cursor::{Cursor, CursorStore};
pub use exec::execute;
