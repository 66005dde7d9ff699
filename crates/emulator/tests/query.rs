//! Placeholder; tests land with the next commit.
