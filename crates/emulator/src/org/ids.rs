//! Salesforce record Ids: 15-character case-sensitive ids and their 18-character
//! case-insensitive form with the checksum suffix.
//!
//! Ids the org mints are `<key prefix><pod><0><record number>`: the record number is nine
//! base-36 characters in digits and upper case, so that ASCII order, case-folded order and
//! creation order agree (clients page by `Id >` and must see the order Salesforce gives).

/// The two characters standing for the emulator's "instance" in every minted Id.
const POD: &str = "8A";
const SEQ_ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const CHECKSUM_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// The largest record number a minted Id can carry.
pub const MAX_SEQ: u64 = 36_u64.pow(9) - 1;

/// The three checksum characters that turn a 15-character Id into its 18-character form.
pub fn checksum(id15: &[u8; 15]) -> [u8; 3] {
    let mut suffix = [0_u8; 3];
    for (chunk_index, chunk) in id15.chunks(5).enumerate() {
        let mut bits = 0_usize;
        for (bit, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                bits |= 1 << bit;
            }
        }
        suffix[chunk_index] = CHECKSUM_ALPHABET[bits];
    }
    suffix
}

/// The 18-character Id of a record number under a key prefix.
pub fn mint(prefix: &str, seq: u64) -> String {
    let mut id = [b'0'; 15];
    id[..3].copy_from_slice(&prefix.as_bytes()[..3]);
    id[3..5].copy_from_slice(POD.as_bytes());
    let mut n = seq;
    for slot in id[6..].iter_mut().rev() {
        *slot = SEQ_ALPHABET[usize::try_from(n % 36).unwrap_or(0)];
        n /= 36;
    }
    let suffix = checksum(&id);
    let mut text = String::with_capacity(18);
    text.extend(id.iter().map(|&b| char::from(b)));
    text.extend(suffix.iter().map(|&b| char::from(b)));
    text
}

/// Why a string is not an Id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdError {
    /// Not 15 or 18 letters and digits, or the checksum does not match.
    Malformed,
}

/// A parsed Id: its canonical 15-character form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedId {
    id15: [u8; 15],
}

impl ParsedId {
    /// Parses a 15-character (case-sensitive) or 18-character (case-insensitive) Id.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let bytes = text.as_bytes();
        if !bytes.iter().all(u8::is_ascii_alphanumeric) {
            return Err(IdError::Malformed);
        }
        match bytes.len() {
            15 => {
                let mut id15 = [0_u8; 15];
                id15.copy_from_slice(bytes);
                Ok(Self { id15 })
            }
            18 => {
                // Restore each character's case from the checksum, as Salesforce does, so an
                // 18-character Id that went through a case-folding system still resolves.
                let mut id15 = [0_u8; 15];
                for chunk in 0..3 {
                    let check = bytes[15 + chunk].to_ascii_uppercase();
                    let bits = CHECKSUM_ALPHABET
                        .iter()
                        .position(|&c| c == check)
                        .ok_or(IdError::Malformed)?;
                    for bit in 0..5 {
                        let c = bytes[chunk * 5 + bit];
                        id15[chunk * 5 + bit] = if bits & (1 << bit) != 0 {
                            c.to_ascii_uppercase()
                        } else {
                            c.to_ascii_lowercase()
                        };
                    }
                }
                let expected = checksum(&id15);
                let given: Vec<u8> = bytes[15..].iter().map(u8::to_ascii_uppercase).collect();
                if expected[..] != given[..] {
                    return Err(IdError::Malformed);
                }
                Ok(Self { id15 })
            }
            _ => Err(IdError::Malformed),
        }
    }

    /// The key prefix (first three characters).
    pub fn prefix(&self) -> &str {
        std::str::from_utf8(&self.id15[..3]).unwrap_or("")
    }

    /// The record number, when the emulator minted this Id.
    pub fn seq(&self) -> Option<u64> {
        if &self.id15[3..5] != POD.as_bytes() || self.id15[5] != b'0' {
            return None;
        }
        self.id15[6..].iter().try_fold(0_u64, |n, &c| {
            let digit = SEQ_ALPHABET.iter().position(|&a| a == c)?;
            Some(n * 36 + u64::try_from(digit).ok()?)
        })
    }

    /// The 18-character form.
    pub fn to_id18(self) -> String {
        let suffix = checksum(&self.id15);
        self.id15
            .iter()
            .chain(suffix.iter())
            .map(|&b| char::from(b))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id18(id15: &str) -> String {
        ParsedId::parse(id15).unwrap().to_id18()
    }

    #[test]
    fn checksum_matches_known_vectors() {
        assert_eq!(id18("001M000000qfPyS"), "001M000000qfPySIAU");
        assert_eq!(id18("a0RE000000IJmcN"), "a0RE000000IJmcNMAT");
        assert_eq!(id18("a01M00000062mPg"), "a01M00000062mPgIAI");
        assert_eq!(id18("aaaaaaaaaaaaaaa"), "aaaaaaaaaaaaaaaAAA");
        assert_eq!(id18("AbCdEfGhIjKlMnO"), "AbCdEfGhIjKlMnOVKV");
        assert_eq!(id18("aBcDEfgHIJKLMNO"), "aBcDEfgHIJKLMNO025");
    }

    #[test]
    fn eighteen_character_ids_are_case_insensitive() {
        let lowered = "a0re000000ijmcnmat";
        assert_eq!(
            ParsedId::parse(lowered).unwrap().to_id18(),
            "a0RE000000IJmcNMAT"
        );
        // A suffix that says a digit is upper case cannot be right.
        assert_eq!(
            ParsedId::parse("001M000000qfPySI5U"),
            Err(IdError::Malformed)
        );
        assert_eq!(
            ParsedId::parse("001M000000qfPySIA9"),
            Err(IdError::Malformed)
        );
        assert_eq!(
            ParsedId::parse("001-00000qfPySIAU"),
            Err(IdError::Malformed)
        );
        assert_eq!(ParsedId::parse("001"), Err(IdError::Malformed));
    }

    #[test]
    fn minted_ids_round_trip_and_sort_in_creation_order() {
        let ids: Vec<String> = [1, 35, 36, 1_000_000, MAX_SEQ]
            .iter()
            .map(|&n| mint("a01", n))
            .collect();
        for (id, n) in ids.iter().zip([1, 35, 36, 1_000_000, MAX_SEQ]) {
            assert_eq!(id.len(), 18);
            let parsed = ParsedId::parse(id).unwrap();
            assert_eq!(parsed.prefix(), "a01");
            assert_eq!(parsed.seq(), Some(n));
            assert_eq!(ParsedId::parse(&id[..15]).unwrap().seq(), Some(n));
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids);
        let mut folded: Vec<String> = ids.iter().map(|i| i.to_ascii_lowercase()).collect();
        folded.sort();
        assert_eq!(
            folded,
            ids.iter()
                .map(|i| i.to_ascii_lowercase())
                .collect::<Vec<_>>()
        );
    }
}
