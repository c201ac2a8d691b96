//! The `serde` feature's codec: any `Serialize` value through any endpoint,
//! encoded with [postcard](https://docs.rs/postcard) 1.x (`send_serialized`,
//! `recv_deserialized` and their `try_`, `_timeout` and `_deadline` forms on
//! [`MessageSender`](crate::MessageSender) and
//! [`MessageReceiver`](crate::MessageReceiver), and inherent on every kind).
//!
//! # Examples
//! ```
//! # fn main() -> shmring::Result<()> {
//! use serde::{Deserialize, Serialize};
//! use shmring::ChannelBuilder;
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! enum Order {
//!     Buy { symbol: String, qty: u32 },
//!     Cancel(u64),
//! }
//!
//! let channel = ChannelBuilder::memfd().capacity(4096).create()?;
//! let (mut tx, mut rx) = (channel.sender()?, channel.receiver()?);
//! tx.send_serialized(&Order::Buy { symbol: "ACME".into(), qty: 10 })?;
//! tx.send(&[0xff; 3])?; // not an Order: the receiver gets a typed error
//! tx.send_serialized(&Order::Cancel(7))?;
//! assert!(matches!(rx.recv_deserialized::<Order>()?, Order::Buy { qty: 10, .. }));
//! let e = rx.recv_deserialized::<Order>().unwrap_err();
//! assert!(matches!(e, shmring::RecvError::Decode(ref d) if d.len == 3));
//! assert_eq!(rx.recv_deserialized::<Order>()?, Order::Cancel(7));
//! # Ok(())
//! # }
//! ```
//!
//! # Why postcard
//! One message is one postcard encoding of one value: compact (variable-length
//! integers, no field names), with a wire format postcard 1.0 declared stable,
//! and a decoder that reads a length before it trusts it (a string or vector
//! whose length runs past the message fails, allocating nothing). bincode, the
//! usual choice, is unmaintained: RustSec advisory RUSTSEC-2025-0141
//! (16 December 2025) records that its team ceased development permanently
//! (it considers 1.3.3 complete and publishes no updates).
//!
//! # What allocates
//! - Sending: the value is encoded into the thread's scratch buffer (kept
//!   between calls up to 1 MiB; grown once, then reused), then sent as bytes.
//!   Nothing else, unless the value's own `Serialize` allocates.
//! - Receiving: the message is received into the same scratch buffer (grown
//!   once to the endpoint's largest message; an endpoint whose largest message is
//!   over 1 MiB gets a fresh buffer per call, zeroed lazily by the system), then
//!   decoded from it: the value's own heap parts (`String`, `Vec`, `Box`) are
//!   allocated, as serde builds them. The types are owned
//!   ([`DeserializeOwned`]): the buffer is reused.
//!
//! # A hostile peer
//! A message that is not a valid encoding of the type is a
//! [`Decode`](crate::RecvError::Decode) error naming the message's length and
//! the byte where decoding stopped ([`DecodeError`]); the message is consumed and
//! the next receive returns the next one. A whole value followed by more bytes is
//! refused too ([`DecodeFailure::TrailingBytes`]): a typed channel carries one
//! value per message. Lengths inside the message are checked against what is
//! left of it before anything is allocated (serde's `Vec` preallocates at most
//! 1 MiB whatever the length says). One residual risk: postcard sets no
//! recursion limit, so a *recursive* type (a `Box<Self>` field, a tree) lets a
//! peer nest values as deep as the message is long, which can overflow the
//! stack; receive recursive types only from trusted peers, or bound the message
//! length.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{DecodeError, DecodeFailure, EncodeFailure, SendError};

/// A postcard output into a `Vec` that keeps at most `max` bytes and counts the
/// rest: a value too large for the endpoint costs no memory past its largest
/// message, and the error still names its length.
struct Bounded<'a> {
    buf: &'a mut Vec<u8>,
    max: usize,
    len: usize,
}

impl postcard::ser_flavors::Flavor for Bounded<'_> {
    type Output = usize;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if self.len < self.max {
            self.buf.push(byte);
        }
        self.len = self.len.saturating_add(1);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let room = self.max.saturating_sub(self.len);
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
        self.len = self.len.saturating_add(data.len());
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.len)
    }
}

/// Encodes `value` into `buf` (cleared first) for an endpoint whose largest
/// message is `max`.
///
/// # Errors
/// [`SendError::Encode`] when the value's `Serialize` fails or asks for what
/// postcard cannot write; [`SendError::MessageTooLarge`] (with the encoded
/// length) when the encoding is longer than `max`.
pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<(), SendError> {
    buf.clear();
    let flavor = Bounded { buf, max, len: 0 };
    let len = postcard::serialize_with_flavor(value, flavor).map_err(|e| SendError::Encode {
        failure: encode_failure(e),
    })?;
    if len > max {
        return Err(SendError::MessageTooLarge { len, max });
    }
    Ok(())
}

/// Decodes one `T` from the whole of `message`.
///
/// # Errors
/// A [`DecodeError`] with the message's length, the bytes read when decoding
/// stopped, and what was wrong; [`DecodeFailure::TrailingBytes`] when a whole
/// value leaves bytes over.
pub(crate) fn decode<T: DeserializeOwned>(message: &[u8]) -> Result<T, Box<DecodeError>> {
    let mut de = postcard::Deserializer::from_bytes(message);
    let result = T::deserialize(&mut de);
    // The slice flavor's remainder is what was not read: its length gives the
    // position, whether decoding finished or stopped at a fault.
    let left = de.finalize().map_or(0, <[u8]>::len);
    let position = message.len() - left.min(message.len());
    let failure = match result {
        Ok(value) if left == 0 => return Ok(value),
        Ok(_) => DecodeFailure::TrailingBytes,
        Err(e) => decode_failure(e),
    };
    Err(Box::new(DecodeError {
        len: message.len(),
        position,
        failure,
    }))
}

/// What a postcard encoding error means here.
fn encode_failure(e: postcard::Error) -> EncodeFailure {
    use postcard::Error as P;
    match e {
        P::SerializeSeqLengthUnknown => EncodeFailure::SeqLengthUnknown,
        P::SerdeSerCustom => EncodeFailure::Custom,
        P::WontImplement | P::NotYetImplemented | P::CollectStrError => EncodeFailure::Unsupported,
        _ => EncodeFailure::Other,
    }
}

/// What a postcard decoding error means here.
fn decode_failure(e: postcard::Error) -> DecodeFailure {
    use postcard::Error as P;
    match e {
        P::DeserializeUnexpectedEnd => DecodeFailure::UnexpectedEnd,
        P::DeserializeBadVarint => DecodeFailure::BadVarint,
        P::DeserializeBadBool => DecodeFailure::BadBool,
        P::DeserializeBadChar => DecodeFailure::BadChar,
        P::DeserializeBadUtf8 => DecodeFailure::BadUtf8,
        P::DeserializeBadOption => DecodeFailure::BadOption,
        P::DeserializeBadEnum => DecodeFailure::BadEnum,
        P::DeserializeBadEncoding => DecodeFailure::BadEncoding,
        P::SerdeDeCustom => DecodeFailure::Custom,
        P::WontImplement | P::NotYetImplemented => DecodeFailure::Unsupported,
        _ => DecodeFailure::Other,
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Point,
        Circle { r: f32 },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        id: u32,
        name: String,
        shapes: Vec<Shape>,
    }

    fn sample() -> Sample {
        Sample {
            id: 300,
            name: "ab".into(),
            shapes: vec![Shape::Point, Shape::Circle { r: 1.5 }],
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode(&sample(), 64, &mut buf).unwrap();
        assert_eq!(decode::<Sample>(&buf).unwrap(), sample());
    }

    /// Too long for the endpoint: the whole encoded length in the error, no more
    /// than `max` bytes kept.
    #[test]
    fn too_large_names_the_encoded_length() {
        let mut buf = Vec::new();
        encode(&sample(), 1024, &mut buf).unwrap();
        let len = buf.len();
        assert_eq!(
            encode(&sample(), 4, &mut buf),
            Err(SendError::MessageTooLarge { len, max: 4 })
        );
        assert!(buf.len() <= 4);
    }

    /// An iterator's `Serialize` does not know its length: postcard cannot write
    /// it, and says so as an error, not a panic.
    #[test]
    fn a_sequence_of_unknown_length_is_an_encode_error() {
        struct Unsized;
        impl Serialize for Unsized {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq((0..3u8).filter(|_| true))
            }
        }
        assert_eq!(
            encode(&Unsized, 64, &mut Vec::new()),
            Err(SendError::Encode {
                failure: EncodeFailure::SeqLengthUnknown
            })
        );
    }

    /// Each fault names where decoding stopped: `id` is a varint (2 bytes for
    /// 300), then `name`'s length (1 byte) and bytes.
    #[test]
    fn a_bad_message_names_its_length_and_the_position() {
        let mut good = Vec::new();
        encode(&sample(), 64, &mut good).unwrap();
        let fault = |bytes: &[u8]| *decode::<Sample>(bytes).unwrap_err();
        // Invalid UTF-8 in `name`: read up to the end of the string (2 + 1 + 2).
        let mut bad = good.clone();
        bad[3] = 0xff;
        assert_eq!(
            fault(&bad),
            DecodeError {
                len: good.len(),
                position: 5,
                failure: DecodeFailure::BadUtf8
            }
        );
        // A string length that runs past the message: stopped after the length.
        let mut bad = good.clone();
        bad[2] = 100;
        assert_eq!(
            fault(&bad),
            DecodeError {
                len: good.len(),
                position: 3,
                failure: DecodeFailure::UnexpectedEnd
            }
        );
        // Cut short inside the value.
        assert_eq!(
            fault(&good[..4]),
            DecodeError {
                len: 4,
                position: 3,
                failure: DecodeFailure::UnexpectedEnd
            }
        );
        // An enum variant index the type does not have (the first shape): the
        // derived `Deserialize` refuses it.
        let mut bad = good.clone();
        bad[6] = 7;
        assert_eq!(
            fault(&bad),
            DecodeError {
                len: good.len(),
                position: 7,
                failure: DecodeFailure::Custom
            }
        );
        // A bool byte other than 0 or 1 (a `(bool,)` from the first byte).
        assert_eq!(
            *decode::<(bool,)>(&[2]).unwrap_err(),
            DecodeError {
                len: 1,
                position: 1,
                failure: DecodeFailure::BadBool
            }
        );
        // A whole value, then more.
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            fault(&long),
            DecodeError {
                len: good.len() + 1,
                position: good.len(),
                failure: DecodeFailure::TrailingBytes
            }
        );
        // The empty message.
        assert_eq!(fault(&[]).failure, DecodeFailure::UnexpectedEnd);
    }
}
