//! The crate's one integration binary.

mod generated;
