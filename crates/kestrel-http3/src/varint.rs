//! QUIC variable-length integers (RFC 9000 §16), as HTTP/3 frames and
//! stream types use them: decoded off the peer's bytes by the stream guard,
//! and written into the GOAWAY frames the gate rewrites.

use bytes::{BufMut, BytesMut};

/// The length of the integer whose first byte is `first`: 1, 2, 4 or 8.
pub(crate) fn encoded_len(first: u8) -> usize {
    1usize << (first >> 6)
}

/// The integer at the start of `bytes`, or `None` while it is incomplete.
pub(crate) fn decode(bytes: &[u8]) -> Option<u64> {
    let first = *bytes.first()?;
    let len = encoded_len(first);
    let rest = bytes.get(1..len)?;
    Some(
        rest.iter()
            .fold(u64::from(first & 0x3f), |v, b| (v << 8) | u64::from(*b)),
    )
}

/// The integer at the start of `buf`, which then starts after it.
pub(crate) fn take(buf: &mut &[u8]) -> Option<u64> {
    let v = decode(buf)?;
    *buf = &buf[encoded_len(buf[0])..];
    Some(v)
}

/// How many bytes `v` takes.
pub(crate) fn len_of(v: u64) -> usize {
    match v {
        0..=0x3f => 1,
        0x40..=0x3fff => 2,
        0x4000..=0x3fff_ffff => 4,
        _ => 8,
    }
}

/// Write `v` (at most 2^62 - 1).
pub(crate) fn put(out: &mut BytesMut, v: u64) {
    match len_of(v) {
        1 => out.put_u8(v as u8),
        2 => out.put_u16(0x4000 | v as u16),
        4 => out.put_u32(0x8000_0000 | v as u32),
        _ => out.put_u64(0xc000_0000_0000_0000 | v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_decodes() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0x25]), Some(0x25));
        assert_eq!(decode(&[0x7b]), None);
        assert_eq!(decode(&[0x7b, 0xbd]), Some(15293));
        assert_eq!(decode(&[0x9d, 0x7f, 0x3e]), None);
        assert_eq!(decode(&[0x9d, 0x7f, 0x3e, 0x7d]), Some(494_878_333));
        assert_eq!(
            decode(&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]),
            Some(151_288_809_941_952_652)
        );
    }

    #[test]
    fn round_trips() {
        for v in [
            0,
            63,
            64,
            16383,
            16384,
            (1 << 30) - 1,
            1 << 30,
            (1 << 62) - 1,
        ] {
            let mut b = BytesMut::new();
            put(&mut b, v);
            assert_eq!(b.len(), len_of(v));
            let mut rest = &b[..];
            assert_eq!(take(&mut rest), Some(v));
            assert!(rest.is_empty());
        }
    }
}
