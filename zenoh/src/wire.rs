//! The bridge's wire format: a fixed 32-byte header at the front of every Zenoh
//! payload, the local message (or a batch of them) after it.
//!
//! All fields little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `b"SHZB"` |
//! | 4 | 1 | version, [`VERSION`] (2) |
//! | 5 | 1 | kind: 1 data, 2 end of stream, 3 acknowledgement, 4 batch |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 8 | origin: the id of the bridge that published it |
//! | 16 | 8 | stream: the id of the source within that bridge |
//! | 24 | 8 | sequence number: a data message's number in its stream (from 0), a batch's first message's; an end of stream's is the number of data messages the stream sent; an acknowledgement's is the number of the source's messages its sender has delivered |
//! | 32 | rest | the local message (data); records (batch); nothing (end of stream, acknowledgement) |
//!
//! A batch carries two or more consecutive messages of its stream, numbered
//! from its header's: each a record of a 4-byte little-endian length, then that
//! many bytes, with nothing after the last. An outbound side sends one when it
//! finds more than one message waiting in its local endpoint (so a busy stream
//! pays Zenoh's per-publication cost once per batch, an idle one still sends
//! each message at once); see [`MAX_BATCH_BYTES`].
//!
//! Data and ends of stream go on the bridged key. Acknowledgements (the credit of
//! [`OutboundBuilder::window`](crate::OutboundBuilder::window)) go the other way,
//! on `<key>/_shmring_ack/<source origin>/<source stream>` (hex), with the
//! acknowledging bridge's origin in the origin field.
//!
//! The header rides in the payload, not in Zenoh's attachment, so that a message
//! is one contiguous buffer on both sides (one allocation, one copy out of the
//! local ring) and the bridge needs nothing from Zenoh beyond bytes. Every field is
//! checked on receipt ([`decode`]); a payload that fails is a [`WireError`],
//! counted and dropped by the inbound side, never a panic.

/// The first four bytes of every bridged payload.
pub const MAGIC: [u8; 4] = *b"SHZB";
/// The wire format's version; a payload of another version is refused
/// (2: batches).
pub const VERSION: u8 = 2;
/// An outbound side stops adding messages to a batch once it holds this many
/// bytes (Zenoh's own batch size): a batch goes out as one Zenoh message.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;
/// Length of a batch record's length prefix.
pub const RECORD_LEN: usize = 4;
/// Length of the header in front of every payload.
pub const HEADER_LEN: usize = 32;

/// What a bridged payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A local message, after the header.
    Data,
    /// The orderly end of a stream: its source disconnected after `seq` messages.
    EndOfStream,
    /// An inbound side's credit: it has delivered `seq` messages of the stream.
    Ack,
    /// Two or more consecutive local messages, from `seq` on, as records.
    Batch,
}

impl Kind {
    fn to_byte(self) -> u8 {
        match self {
            Kind::Data => 1,
            Kind::EndOfStream => 2,
            Kind::Ack => 3,
            Kind::Batch => 4,
        }
    }
}

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Data or end of stream.
    pub kind: Kind,
    /// The publishing bridge's origin id.
    pub origin: u64,
    /// The source's stream id within that bridge.
    pub stream: u64,
    /// The sequence number (see the module's table).
    pub seq: u64,
}

/// Why a payload is not a valid bridged message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than the header.
    #[error("payload of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort {
        /// Length of the payload.
        len: usize,
    },
    /// The first four bytes are not [`MAGIC`].
    #[error("bad magic {found:02x?}, expected {MAGIC:02x?}")]
    BadMagic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// A version this bridge does not speak.
    #[error("wire version {found}, this bridge speaks {VERSION}")]
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// A kind byte that is neither data nor end of stream.
    #[error("unknown kind {found}")]
    UnknownKind {
        /// The kind byte found.
        found: u8,
    },
    /// The reserved field is not zero.
    #[error("reserved field is {found:#06x}, must be 0")]
    Reserved {
        /// The value found.
        found: u16,
    },
    /// An end of stream or an acknowledgement with bytes after its header.
    #[error("end of stream or acknowledgement carries {len} bytes of payload, must carry none")]
    EndWithPayload {
        /// Bytes after the header.
        len: usize,
    },
    /// An acknowledgement on a data key.
    #[error("an acknowledgement on a data key")]
    MisplacedAck,
    /// A batch whose records do not fill its body exactly, or that holds fewer
    /// than two.
    #[error(
        "batch of {len} bytes is malformed at byte {at}: a record runs past the end, or fewer than two records"
    )]
    BadBatch {
        /// Bytes after the header.
        len: usize,
        /// Where (from the body's start) the problem was found.
        at: usize,
    },
}

/// Writes `header` into the first [`HEADER_LEN`] bytes of `out`.
pub fn encode_header(header: &Header, out: &mut [u8; HEADER_LEN]) {
    out[0..4].copy_from_slice(&MAGIC);
    out[4] = VERSION;
    out[5] = header.kind.to_byte();
    out[6..8].copy_from_slice(&[0, 0]);
    out[8..16].copy_from_slice(&header.origin.to_le_bytes());
    out[16..24].copy_from_slice(&header.stream.to_le_bytes());
    out[24..32].copy_from_slice(&header.seq.to_le_bytes());
}

/// Appends one batch record (`message`'s length, then `message`) to `out`.
/// Messages longer than `u32::MAX` bytes cannot be batched (no local endpoint
/// carries one).
pub fn push_record(out: &mut Vec<u8>, message: &[u8]) {
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(message);
}

/// The first record of `rest` and what follows it; `None` if it runs past the
/// end.
fn split_record(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, after) = rest.split_first_chunk::<RECORD_LEN>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    let record = after.get(..len)?;
    Some((record, &after[len..]))
}

/// The records of a batch's body, in order. A body [`decode`] accepted yields
/// them all; a malformed one stops at the first bad record.
pub fn records(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = body;
    std::iter::from_fn(move || {
        let (record, after) = split_record(rest)?;
        rest = after;
        Some(record)
    })
}

/// How many records a batch's body holds, or where it is malformed.
fn count_records(body: &[u8]) -> Result<u64, WireError> {
    let mut rest = body;
    let mut count = 0u64;
    while !rest.is_empty() {
        let Some((_, after)) = split_record(rest) else {
            return Err(WireError::BadBatch {
                len: body.len(),
                at: body.len() - rest.len(),
            });
        };
        rest = after;
        count += 1;
    }
    if count < 2 {
        return Err(WireError::BadBatch {
            len: body.len(),
            at: body.len(),
        });
    }
    Ok(count)
}

/// How many local messages a payload [`decode`] accepted carries: 1 for data,
/// its records for a batch, 0 otherwise.
pub fn message_count(kind: Kind, body: &[u8]) -> u64 {
    match kind {
        Kind::Data => 1,
        Kind::Batch => records(body).count() as u64,
        Kind::EndOfStream | Kind::Ack => 0,
    }
}

/// A whole payload: the header, then `body`.
pub fn encode(header: &Header, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    let mut head = [0u8; HEADER_LEN];
    encode_header(header, &mut head);
    out.extend_from_slice(&head);
    out.extend_from_slice(body);
    out
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Validates a payload and splits it into its header and its body.
pub fn decode(payload: &[u8]) -> Result<(Header, &[u8]), WireError> {
    if payload.len() < HEADER_LEN {
        return Err(WireError::TooShort { len: payload.len() });
    }
    let (head, body) = payload.split_at(HEADER_LEN);
    let found = [head[0], head[1], head[2], head[3]];
    if found != MAGIC {
        return Err(WireError::BadMagic { found });
    }
    if head[4] != VERSION {
        return Err(WireError::UnsupportedVersion { found: head[4] });
    }
    let kind = match head[5] {
        1 => Kind::Data,
        2 => Kind::EndOfStream,
        3 => Kind::Ack,
        4 => Kind::Batch,
        other => return Err(WireError::UnknownKind { found: other }),
    };
    let reserved = u16::from_le_bytes([head[6], head[7]]);
    if reserved != 0 {
        return Err(WireError::Reserved { found: reserved });
    }
    match kind {
        Kind::Data => {}
        Kind::Batch => {
            count_records(body)?;
        }
        Kind::EndOfStream | Kind::Ack => {
            if !body.is_empty() {
                return Err(WireError::EndWithPayload { len: body.len() });
            }
        }
    }
    let header = Header {
        kind,
        origin: u64_at(head, 8),
        stream: u64_at(head, 16),
        seq: u64_at(head, 24),
    };
    Ok((header, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_data_and_end() {
        let h = Header {
            kind: Kind::Data,
            origin: 7,
            stream: 9,
            seq: 1 << 40,
        };
        let p = encode(&h, b"hello");
        assert_eq!(p.len(), HEADER_LEN + 5);
        assert_eq!(decode(&p), Ok((h, &b"hello"[..])));
        let e = Header {
            kind: Kind::EndOfStream,
            origin: 1,
            stream: 2,
            seq: 3,
        };
        assert_eq!(decode(&encode(&e, b"")), Ok((e, &b""[..])));
    }

    #[test]
    fn every_malformation_is_a_typed_error() {
        let good = encode(
            &Header {
                kind: Kind::Data,
                origin: 1,
                stream: 2,
                seq: 3,
            },
            b"x",
        );
        assert_eq!(decode(&good[..5]), Err(WireError::TooShort { len: 5 }));
        let mut p = good.clone();
        p[0] = b'X';
        assert_eq!(decode(&p), Err(WireError::BadMagic { found: *b"XHZB" }));
        let mut p = good.clone();
        p[4] = 9;
        assert_eq!(decode(&p), Err(WireError::UnsupportedVersion { found: 9 }));
        let mut p = good.clone();
        p[5] = 0;
        assert_eq!(decode(&p), Err(WireError::UnknownKind { found: 0 }));
        let mut p = good.clone();
        p[7] = 1;
        assert_eq!(decode(&p), Err(WireError::Reserved { found: 0x100 }));
        let mut p = good;
        p[5] = 2;
        assert_eq!(decode(&p), Err(WireError::EndWithPayload { len: 1 }));
    }

    fn batch(messages: &[&[u8]]) -> Vec<u8> {
        let mut body = Vec::new();
        for m in messages {
            push_record(&mut body, m);
        }
        encode(
            &Header {
                kind: Kind::Batch,
                origin: 1,
                stream: 2,
                seq: 10,
            },
            &body,
        )
    }

    #[test]
    fn a_batch_round_trips_its_records_in_order() {
        let p = batch(&[b"one", b"", b"three"]);
        let (header, body) = decode(&p).expect("valid batch");
        assert_eq!((header.kind, header.seq), (Kind::Batch, 10));
        assert_eq!(message_count(header.kind, body), 3);
        let got: Vec<&[u8]> = records(body).collect();
        assert_eq!(got, [&b"one"[..], b"", b"three"]);
    }

    #[test]
    fn a_malformed_batch_is_a_typed_error() {
        // One record only.
        let p = batch(&[b"only"]);
        assert_eq!(decode(&p), Err(WireError::BadBatch { len: 8, at: 8 }));
        // A record running past the end, at every cut.
        let p = batch(&[b"one", b"two"]);
        for cut in HEADER_LEN + 1..p.len() {
            assert!(
                matches!(decode(&p[..cut]), Err(WireError::BadBatch { .. })),
                "cut at {cut}"
            );
        }
        // A length near u32::MAX.
        let mut p = batch(&[b"one", b"two"]);
        p[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&p), Err(WireError::BadBatch { len: 14, at: 0 }));
        // An empty batch.
        let p = batch(&[]);
        assert_eq!(decode(&p), Err(WireError::BadBatch { len: 0, at: 0 }));
    }

    #[test]
    fn no_prefix_of_any_length_panics() {
        let good = encode(
            &Header {
                kind: Kind::Data,
                origin: 1,
                stream: 2,
                seq: 3,
            },
            b"xyz",
        );
        for len in 0..good.len() {
            let _ = decode(&good[..len]);
        }
        for byte in 0..=255u8 {
            let mut p = good.clone();
            p[5] = byte;
            let _ = decode(&p);
        }
    }
}
