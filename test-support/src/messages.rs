//! Deterministic messages: every byte follows from the message's sequence number,
//! so a receiver in another process (or thread) can check each message whole
//! without being told what was sent.
//!
//! Two kinds:
//! - stream messages ([`stream_message`], [`fill_stream`], [`check_stream`]): 0
//!   to `max` bytes, under a header of sequence number and checksum when long
//!   enough;
//! - small sequence-numbered messages ([`seq_message`], [`parse_seq`]): 8 to 72
//!   bytes, the number first.

/// SplitMix64: turns consecutive seeds into unrelated ones.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xorshift64*: a small, fast, deterministic generator.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator seeded with `seed` (any value: it goes through
    /// [`splitmix64`], and the state is never zero).
    pub fn new(seed: u64) -> Self {
        Self(splitmix64(seed) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n` for tests (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A common bound on stream messages (the `max` of [`stream_message`]).
pub const STREAM_MAX: usize = 4096;
/// Stream messages of at least this many bytes start with the sequence number
/// (8 bytes, little endian) and a checksum of the rest (8 bytes).
pub const STREAM_HEADER: usize = 16;

/// Length of stream message `seq` in a stream of messages up to `max` bytes:
/// 0 to `max`, one in eight below 17 bytes (so short and empty messages are
/// frequent).
pub fn stream_len(seq: u64, max: usize) -> usize {
    let r = splitmix64(seq ^ 0x5eed_1e75);
    let limit = if r & 7 == 0 { max.min(16) } else { max };
    ((r >> 3) % (limit as u64 + 1)) as usize
}

/// The little-endian `u64` at `bytes[at..at + 8]`.
fn le_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// A 64-bit checksum (FNV-1a over 8-byte words, then the tail).
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        h = (h ^ le_u64(w, 0)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Writes stream message `seq` into `out` (of length `stream_len(seq, max)`):
/// bytes from a generator seeded by `seq`, under a header of sequence number and
/// checksum when the message is long enough to hold one.
pub fn fill_stream(seq: u64, out: &mut [u8]) {
    let body_start = if out.len() >= STREAM_HEADER {
        STREAM_HEADER
    } else {
        0
    };
    let mut rng = XorShift::new(seq);
    let body = &mut out[body_start..];
    let mut chunks = body.chunks_exact_mut(8);
    for c in &mut chunks {
        c.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    let tail = chunks.into_remainder();
    let last = rng.next_u64().to_le_bytes();
    let n = tail.len();
    tail.copy_from_slice(&last[..n]);
    if body_start == STREAM_HEADER {
        let sum = checksum(&out[STREAM_HEADER..]);
        out[..8].copy_from_slice(&seq.to_le_bytes());
        out[8..16].copy_from_slice(&sum.to_le_bytes());
    }
}

/// Stream message `seq` of a stream of messages up to `max` bytes, in a new
/// vector ([`fill_stream`] writes one into a buffer of yours).
pub fn stream_message(seq: u64, max: usize) -> Vec<u8> {
    let mut v = vec![0u8; stream_len(seq, max)];
    fill_stream(seq, &mut v);
    v
}

/// Checks that `got` is exactly stream message `seq` of a stream of messages up to
/// `max` bytes (every byte), using `scratch` to regenerate it (keep one per
/// receiver: it saves an allocation a message). The error says what was found
/// instead.
pub fn check_stream(seq: u64, max: usize, got: &[u8], scratch: &mut Vec<u8>) -> Result<(), String> {
    let len = stream_len(seq, max);
    let header = |got: &[u8]| {
        if got.len() >= STREAM_HEADER {
            let s = le_u64(got, 0);
            let ok = le_u64(got, 8) == checksum(&got[STREAM_HEADER..]);
            format!(
                "its header says seq {s}, checksum {}",
                if ok { "ok" } else { "BAD" }
            )
        } else {
            "too short for a header".to_owned()
        }
    };
    if got.len() != len {
        return Err(format!(
            "message {seq}: length {} instead of {len}; {}",
            got.len(),
            header(got)
        ));
    }
    scratch.resize(len, 0);
    fill_stream(seq, scratch);
    if got != &scratch[..] {
        let at = got.iter().zip(scratch.iter()).position(|(a, b)| a != b);
        return Err(format!(
            "message {seq} ({len} bytes): bytes differ from offset {at:?}; {}",
            header(got)
        ));
    }
    if len >= STREAM_HEADER && le_u64(got, 8) != checksum(&got[STREAM_HEADER..]) {
        return Err(format!("message {seq}: checksum mismatch"));
    }
    Ok(())
}

/// Writes a small sequence-numbered message (8 to 72 bytes: `seq` then a pattern
/// derived from it) into `out`, replacing what it held.
pub fn seq_message(seq: u64, out: &mut Vec<u8>) {
    out.clear();
    out.resize(seq_len(seq), 0);
    fill_seq(seq, out);
}

/// Length of [`seq_message`]`(seq)`.
pub fn seq_len(seq: u64) -> usize {
    8 + (splitmix64(seq) % 65) as usize
}

/// The byte at `offset` (8 or more) of [`seq_message`]`(seq)`.
fn seq_byte(seq: u64, offset: usize) -> u8 {
    (seq as u8)
        .wrapping_add((offset - 8) as u8)
        .wrapping_mul(31)
}

/// Writes [`seq_message`]`(seq)` into `out`, of length [`seq_len`]`(seq)`.
pub fn fill_seq(seq: u64, out: &mut [u8]) {
    out[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in out.iter_mut().enumerate().skip(8) {
        *b = seq_byte(seq, i);
    }
}

/// The sequence number of a [`seq_message`], after checking its length and bytes.
pub fn parse_seq(m: &[u8]) -> Result<u64, String> {
    if m.len() < 8 {
        return Err(format!("message of {} bytes: no sequence number", m.len()));
    }
    let seq = le_u64(m, 0);
    if m.len() != seq_len(seq) {
        return Err(format!(
            "message {seq}: length {} instead of {}",
            m.len(),
            seq_len(seq)
        ));
    }
    if let Some(i) = (8..m.len()).find(|&i| m[i] != seq_byte(seq, i)) {
        return Err(format!("message {seq}: byte {i} is wrong"));
    }
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_messages_check_and_mismatches_are_named() {
        let mut scratch = Vec::new();
        for seq in 0..2000 {
            let m = stream_message(seq, 300);
            assert_eq!(m.len(), stream_len(seq, 300));
            assert_eq!(check_stream(seq, 300, &m, &mut scratch), Ok(()));
            if m.len() > STREAM_HEADER {
                let mut bad = m.clone();
                *bad.last_mut().expect("not empty") ^= 1;
                let err = check_stream(seq, 300, &bad, &mut scratch).expect_err("corrupt");
                assert!(err.contains("checksum BAD"), "{err}");
            }
        }
    }

    #[test]
    fn seq_messages_parse_and_mismatches_are_named() {
        let mut m = Vec::new();
        for seq in 0..2000 {
            seq_message(seq, &mut m);
            assert_eq!(m.len(), seq_len(seq));
            assert_eq!(parse_seq(&m), Ok(seq));
            if m.len() > 8 {
                m[8] ^= 1;
                assert_eq!(
                    parse_seq(&m),
                    Err(format!("message {seq}: byte 8 is wrong"))
                );
            }
        }
        assert!(parse_seq(&[1, 2]).is_err());
    }
}
