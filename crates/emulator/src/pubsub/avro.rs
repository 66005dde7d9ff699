//! Avro binary encoding (the subset event payloads use): Pub/Sub payloads are a plain
//! datum, with no container header, written with the schema named by the event's
//! `schema_id`.

/// Writes one Avro datum.
#[derive(Debug, Default)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    /// The datum written so far.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }

    /// `long` (and `int`): zig-zag, then variable length, 7 bits a byte.
    pub fn long(&mut self, value: i64) {
        let mut n = ((value << 1) ^ (value >> 63)) as u64;
        while n >= 0x80 {
            self.bytes.push((n as u8 & 0x7F) | 0x80);
            n >>= 7;
        }
        self.bytes.push(n as u8);
    }

    /// `boolean`: one byte.
    pub fn boolean(&mut self, value: bool) {
        self.bytes.push(u8::from(value));
    }

    /// `double`: 8 bytes, little-endian IEEE 754.
    pub fn double(&mut self, value: f64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    /// `string`: length, then UTF-8 bytes.
    pub fn string(&mut self, value: &str) {
        self.long(i64::try_from(value.len()).unwrap_or(i64::MAX));
        self.bytes.extend_from_slice(value.as_bytes());
    }

    /// `array<string>`: one block with the count, then the end marker (an empty array is
    /// the end marker alone).
    pub fn strings(&mut self, values: &[String]) {
        if !values.is_empty() {
            self.long(i64::try_from(values.len()).unwrap_or(i64::MAX));
            for value in values {
                self.string(value);
            }
        }
        self.long(0);
    }

    /// Which branch of a union follows (`0` for `null` in `["null", T]`).
    pub fn branch(&mut self, index: i64) {
        self.long(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_are_zig_zag_varints() {
        let mut writer = Writer::default();
        for value in [0, -1, 1, -64, 64, 1_711_730_408_000] {
            writer.long(value);
        }
        assert_eq!(
            writer.finish(),
            vec![
                0x00, 0x01, 0x02, 0x7F, 0x80, 0x01, // 0, -1, 1, -64, 64
                0x80, 0xE9, 0xA9, 0xB1, 0xD1, 0x63, // 1711730408000
            ]
        );
    }

    #[test]
    fn strings_and_arrays_are_length_prefixed() {
        let mut writer = Writer::default();
        writer.string("Acme");
        writer.strings(&["0x2".to_owned()]);
        writer.strings(&[]);
        assert_eq!(
            writer.finish(),
            vec![8, b'A', b'c', b'm', b'e', 2, 6, b'0', b'x', b'2', 0, 0]
        );
    }
}
