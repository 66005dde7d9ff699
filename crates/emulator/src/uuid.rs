//! Ids in the 8-4-4-4-12 hex shape Salesforce uses for transaction keys, RPC ids and
//! event ids.

/// A random id.
pub fn random() -> String {
    shaped(rand::random::<u128>())
}

/// The id whose 32 hex digits are `n`'s (stable: the same number, the same id).
pub fn shaped(n: u128) -> String {
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
