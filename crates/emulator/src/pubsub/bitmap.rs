//! Changed-field bitmaps: how Pub/Sub names the fields of `changedFields`, `nulledFields`
//! and `diffFields`.
//!
//! Instead of names, Pub/Sub sends `"0x<HEX>"` where bit *i* set means field *i* of the
//! event schema's top-level field list (the `ChangeEventHeader` is field 0). Hex digits are
//! upper-case, as Salesforce writes them and as some clients require.

/// The bitmap array for these top-level schema positions: empty when there are none.
pub fn encode(positions: &[usize]) -> Vec<String> {
    let Some(&highest) = positions.iter().max() else {
        return Vec::new();
    };
    // One nibble per four positions, least significant first.
    let mut nibbles = vec![0u8; highest / 4 + 1];
    for &position in positions {
        nibbles[position / 4] |= 1 << (position % 4);
    }
    let hex: String = nibbles
        .iter()
        .rev()
        .map(|&n| char::from_digit(u32::from(n), 16).map_or('0', |c| c.to_ascii_uppercase()))
        .collect();
    vec![format!("0x{hex}")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_field_positions_in_upper_case_hex() {
        assert_eq!(encode(&[]), Vec::<String>::new());
        assert_eq!(encode(&[1]), vec!["0x2"]);
        assert_eq!(encode(&[1, 3, 10]), vec!["0x40A"]);
        // Salesforce's own example shape: 0x650004E0.
        assert_eq!(encode(&[5, 6, 7, 10, 24, 26, 29, 30]), vec!["0x650004E0"]);
    }
}
