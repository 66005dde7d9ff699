//! gRPC message framing: every message on an HTTP/2 stream is prefixed with one byte (1
//! when compressed) and its length as a 4-byte big-endian number.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The largest message accepted (4 MiB, gRPC's usual default).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// The compressed flag is set; no compression is negotiated here.
    Compressed,
    /// A message longer than [`MAX_MESSAGE_BYTES`].
    TooLarge(usize),
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Compressed => write!(
                f,
                "compressed gRPC message, but no compression was negotiated"
            ),
            Self::TooLarge(n) => write!(f, "gRPC message of {n} bytes exceeds {MAX_MESSAGE_BYTES}"),
        }
    }
}

impl std::error::Error for FramingError {}

/// A message with its 5-byte prefix.
pub fn encode_message(message: &impl prost::Message) -> Bytes {
    let length = message.encoded_len();
    let mut buffer = BytesMut::with_capacity(5 + length);
    buffer.put_u8(0);
    // A prost message longer than 4 GiB cannot be built in memory here.
    buffer.put_u32(u32::try_from(length).unwrap_or(u32::MAX));
    message.encode_raw(&mut buffer);
    buffer.freeze()
}

/// Collects bytes as they arrive and hands out whole messages.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: BytesMut,
}

impl FrameDecoder {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, without its prefix; `Ok(None)` until one is complete.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, FramingError> {
        let Some(prefix) = self.buffer.get(..5) else {
            return Ok(None);
        };
        if prefix[0] != 0 {
            return Err(FramingError::Compressed);
        }
        let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if length > MAX_MESSAGE_BYTES {
            return Err(FramingError::TooLarge(length));
        }
        if self.buffer.len() < 5 + length {
            return Ok(None);
        }
        self.buffer.advance(5);
        Ok(Some(self.buffer.split_to(length).freeze()))
    }

    /// Whether bytes of an incomplete message are waiting.
    pub fn has_partial(&self) -> bool {
        !self.buffer.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TopicRequest;

    #[test]
    fn messages_split_across_chunks_are_reassembled() {
        let message = TopicRequest {
            topic_name: "/data/ChangeEvents".to_owned(),
        };
        let framed = encode_message(&message);
        assert_eq!(framed[0], 0);
        assert_eq!(&framed[1..5], &(framed.len() as u32 - 5).to_be_bytes());
        let mut decoder = FrameDecoder::default();
        let mut both = framed.to_vec();
        both.extend_from_slice(&framed);
        decoder.push(&both[..3]);
        assert_eq!(decoder.next_message(), Ok(None));
        decoder.push(&both[3..]);
        let first = decoder.next_message().unwrap().unwrap();
        let second = decoder.next_message().unwrap().unwrap();
        assert_eq!(first, second);
        assert_eq!(
            <TopicRequest as prost::Message>::decode(first).unwrap(),
            message
        );
        assert_eq!(decoder.next_message(), Ok(None));
        assert!(!decoder.has_partial());
    }

    #[test]
    fn compressed_and_oversized_messages_are_refused() {
        let mut decoder = FrameDecoder::default();
        decoder.push(&[1, 0, 0, 0, 1, 0]);
        assert_eq!(decoder.next_message(), Err(FramingError::Compressed));
        let mut decoder = FrameDecoder::default();
        decoder.push(&[0, 0xFF, 0, 0, 0]);
        assert!(matches!(
            decoder.next_message(),
            Err(FramingError::TooLarge(_))
        ));
    }
}
