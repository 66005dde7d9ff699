//! Catalog ids as their own types, so a mapping id is never passed where a connection id
//! belongs (both are `bigint` in the catalog).

use std::fmt;

macro_rules! catalog_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(i64);

        impl $name {
            /// The id as stored.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl From<i64> for $name {
            fn from(id: i64) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

catalog_id! {
    /// A connection's id (`pgforce.connections.id`).
    ConnectionId
}

catalog_id! {
    /// A mapping's id (`pgforce.mappings.id`).
    MappingId
}
