//! The sans-IO PROXY header parser: [`parse`] is a pure function of the
//! bytes received so far. It answers "need more", a header with the number
//! of bytes it took, or why the bytes are not a valid header. The middleware
//! owns the socket and the deadline; tests feed byte literals.
//!
//! The rules (HAProxy's `proxy-protocol.txt`):
//! * v1: `PROXY TCP4|TCP6 <src ip> <dst ip> <src port> <dst port>\r\n` or
//!   `PROXY UNKNOWN[ …]\r\n`, single spaces, at most 107 bytes with the CRLF;
//!   ports are decimal without leading zeros; addresses of the named family.
//! * v2: the 12-byte signature, then the version (2) and command (`LOCAL` 0,
//!   `PROXY` 1) nibbles, the family and transport nibbles, a big-endian
//!   length, the addresses (12 bytes for IPv4, 36 for IPv6, 216 for Unix)
//!   and TLVs to the end. Here a v2 header may be at most
//!   [`MAX_V2_HEADER`] bytes in all.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use crate::header::{tlv_type, ProxyAddresses, ProxyCommand, ProxyHeader, ProxyVersion, Tlv, Tlvs};

/// The v1 prefix.
pub const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 header, CRLF included (the specification's 107 bytes).
pub const MAX_V1_HEADER: usize = 107;
/// The v2 signature.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v2 header accepted here, the 16 fixed bytes included: room for
/// Unix addresses and a few kilobytes of TLVs (AWS and GCP send a few dozen bytes).
pub const MAX_V2_HEADER: usize = 4096;

/// Why bytes are not a valid PROXY header. Each closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The connection does not start with a PROXY header (v1 or v2).
    #[error("the connection does not start with a PROXY protocol header")]
    NotProxyProtocol,
    /// A v1 line without its CRLF within 107 bytes.
    #[error("the PROXY v1 header is longer than 107 bytes")]
    V1TooLong,
    /// A v1 line that does not follow the grammar.
    #[error("malformed PROXY v1 header: {0}")]
    V1Malformed(&'static str),
    /// A v2 version nibble other than 2.
    #[error("unsupported PROXY v2 version {0}")]
    V2UnknownVersion(u8),
    /// A v2 command other than LOCAL (0) and PROXY (1).
    #[error("unknown PROXY v2 command {0}")]
    V2UnknownCommand(u8),
    /// A v2 address family or transport this server cannot use (e.g. UDP).
    #[error("unsupported PROXY v2 address family/transport 0x{0:02x}")]
    V2UnsupportedFamily(u8),
    /// A v2 header longer than [`MAX_V2_HEADER`].
    #[error("the PROXY v2 header is {0} bytes, more than the {MAX_V2_HEADER} allowed")]
    V2TooLong(usize),
    /// A v2 length too small for its addresses, or TLVs that overrun it.
    #[error("malformed PROXY v2 header: {0}")]
    V2Malformed(&'static str),
    /// The v2 CRC32C TLV does not match the header.
    #[error("the PROXY v2 header's CRC32C checksum does not match")]
    V2BadChecksum,
}

/// The outcome of [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed (at least this many in all, when known).
    Incomplete,
    /// A header, and how many bytes of the input it took (what follows is the
    /// application's stream, e.g. a TLS ClientHello or an HTTP request).
    Complete {
        /// The header.
        header: ProxyHeader,
        /// Its length in bytes.
        consumed: usize,
    },
}

/// Parse a PROXY header (v1 or v2) at the start of `buf`.
///
/// ```
/// use kestrel_proxy_protocol::parse::{parse, Parsed};
/// use kestrel_proxy_protocol::ProxyAddresses;
///
/// let bytes = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
/// let Ok(Parsed::Complete { header, consumed }) = parse(bytes) else { panic!() };
/// assert_eq!(consumed, 45);
/// assert!(matches!(header.addresses,
///     ProxyAddresses::Ip { source, .. } if source == "192.0.2.1:56324".parse().unwrap()));
/// assert_eq!(parse(b"PROXY TCP4 192.0"), Ok(Parsed::Incomplete));
/// ```
pub fn parse(buf: &[u8]) -> Result<Parsed, ParseError> {
    let n = buf.len();
    if n >= V2_SIGNATURE.len() && buf.starts_with(V2_SIGNATURE) {
        return parse_v2(buf);
    }
    if n >= V1_PREFIX.len() && buf.starts_with(V1_PREFIX) {
        return parse_v1(buf);
    }
    if V2_SIGNATURE.starts_with(buf) || V1_PREFIX.starts_with(buf) {
        return Ok(Parsed::Incomplete);
    }
    Err(ParseError::NotProxyProtocol)
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ParseError> {
    let window = &buf[..buf.len().min(MAX_V1_HEADER)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_V1_HEADER {
            Err(ParseError::V1TooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let line = window[..lf]
        .strip_suffix(b"\r")
        .ok_or(ParseError::V1Malformed("the line does not end with CRLF"))?;
    let line = std::str::from_utf8(&line[V1_PREFIX.len()..])
        .map_err(|_| ParseError::V1Malformed("not ASCII"))?;
    let consumed = lf + 1;
    let done = |addresses| {
        Ok(Parsed::Complete {
            header: ProxyHeader {
                version: ProxyVersion::V1,
                command: ProxyCommand::Proxy,
                addresses,
                tlvs: Tlvs::default(),
            },
            consumed,
        })
    };
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return done(ProxyAddresses::Unspecified);
    }
    let fields: Vec<&str> = line.split(' ').collect();
    let [proto, src, dst, sport, dport] = fields[..] else {
        return Err(ParseError::V1Malformed(
            "expected TCP4|TCP6 <src> <dst> <sport> <dport>",
        ));
    };
    let (source, destination): (IpAddr, IpAddr) = match proto {
        "TCP4" => (
            IpAddr::V4(src.parse().map_err(|_| bad_v1_addr())?),
            IpAddr::V4(dst.parse().map_err(|_| bad_v1_addr())?),
        ),
        "TCP6" => (
            IpAddr::V6(src.parse().map_err(|_| bad_v1_addr())?),
            IpAddr::V6(dst.parse().map_err(|_| bad_v1_addr())?),
        ),
        _ => {
            return Err(ParseError::V1Malformed(
                "unknown protocol (TCP4, TCP6, UNKNOWN)",
            ))
        }
    };
    done(ProxyAddresses::Ip {
        source: SocketAddr::new(source, v1_port(sport)?),
        destination: SocketAddr::new(destination, v1_port(dport)?),
    })
}

fn bad_v1_addr() -> ParseError {
    ParseError::V1Malformed("an address is not of the named family")
}

fn v1_port(s: &str) -> Result<u16, ParseError> {
    let bad =
        ParseError::V1Malformed("a port is not a decimal number 0-65535 without leading zeros");
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(bad);
    }
    s.parse().map_err(|_| bad)
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ParseError> {
    if buf.len() < 16 {
        // Check what is there already, so garbage is refused early.
        if let Some(&ver_cmd) = buf.get(12) {
            check_ver_cmd(ver_cmd)?;
        }
        return Ok(Parsed::Incomplete);
    }
    let command = check_ver_cmd(buf[12])?;
    let fam = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let total = 16 + len;
    if total > MAX_V2_HEADER {
        return Err(ParseError::V2TooLong(total));
    }
    let addr_len = match fam {
        0x00 => 0,
        0x11 => 12,
        0x21 => 36,
        0x31 => 216,
        // Known families over UDP, or anything else.
        _ if command == ProxyCommand::Local => 0,
        _ => return Err(ParseError::V2UnsupportedFamily(fam)),
    };
    if len < addr_len {
        return Err(ParseError::V2Malformed(
            "the length is too small for the addresses",
        ));
    }
    if buf.len() < total {
        return Ok(Parsed::Incomplete);
    }
    let header = &buf[..total];
    let body = &header[16..];
    let addresses = match (command, fam) {
        (ProxyCommand::Local, _) | (_, 0x00) => ProxyAddresses::Unspecified,
        (_, 0x11) => {
            let ip = |o: usize| Ipv4Addr::new(body[o], body[o + 1], body[o + 2], body[o + 3]);
            ProxyAddresses::Ip {
                source: SocketAddr::new(IpAddr::V4(ip(0)), port(body, 8)),
                destination: SocketAddr::new(IpAddr::V4(ip(4)), port(body, 10)),
            }
        }
        (_, 0x21) => {
            let ip = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&body[o..o + 16]);
                Ipv6Addr::from(b)
            };
            ProxyAddresses::Ip {
                source: SocketAddr::new(IpAddr::V6(ip(0)), port(body, 32)),
                destination: SocketAddr::new(IpAddr::V6(ip(16)), port(body, 34)),
            }
        }
        _ => ProxyAddresses::Unix {
            source: unix_path(&body[..108]),
            destination: unix_path(&body[108..216]),
        },
    };
    let tlvs = parse_tlvs(&body[addr_len..])?;
    if let Some(crc) = tlvs.iter().find(|t| t.kind == tlv_type::CRC32C) {
        verify_crc32c(header, &crc.value)?;
    }
    if let Some(ssl) = tlvs.iter().find(|t| t.kind == tlv_type::SSL) {
        match ssl.value.get(5..) {
            Some(sub) => {
                parse_tlvs(sub)?;
            }
            None => return Err(ParseError::V2Malformed("a PP2_TYPE_SSL TLV is too short")),
        }
    }
    Ok(Parsed::Complete {
        header: ProxyHeader {
            version: ProxyVersion::V2,
            command,
            addresses,
            tlvs: Tlvs::new(tlvs),
        },
        consumed: total,
    })
}

fn check_ver_cmd(ver_cmd: u8) -> Result<ProxyCommand, ParseError> {
    if ver_cmd >> 4 != 2 {
        return Err(ParseError::V2UnknownVersion(ver_cmd >> 4));
    }
    match ver_cmd & 0x0f {
        0 => Ok(ProxyCommand::Local),
        1 => Ok(ProxyCommand::Proxy),
        c => Err(ParseError::V2UnknownCommand(c)),
    }
}

fn port(body: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([body[o], body[o + 1]])
}

/// A 108-byte `sun_path`: up to the first NUL; a leading NUL is a Linux
/// abstract name, shown as `@name`.
fn unix_path(raw: &[u8]) -> PathBuf {
    let (prefix, name) = match raw.split_first() {
        Some((0, rest)) if rest.iter().any(|&b| b != 0) => ("@", rest),
        _ => ("", raw),
    };
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    PathBuf::from(format!("{prefix}{}", String::from_utf8_lossy(&name[..end])))
}

/// Split `bytes` into TLVs (type, 16-bit length, value); they must fill it exactly.
pub(crate) fn parse_tlvs(mut bytes: &[u8]) -> Result<Vec<Tlv>, ParseError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let [kind, hi, lo, rest @ ..] = bytes else {
            return Err(ParseError::V2Malformed("a truncated TLV"));
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let value = rest
            .get(..len)
            .ok_or(ParseError::V2Malformed("a TLV runs past the header"))?;
        if *kind == tlv_type::UNIQUE_ID && len > 128 {
            return Err(ParseError::V2Malformed(
                "a PP2_TYPE_UNIQUE_ID longer than 128 bytes",
            ));
        }
        out.push(Tlv {
            kind: *kind,
            value: value.to_vec(),
        });
        bytes = &rest[len..];
    }
    Ok(out)
}

/// The CRC32C of the whole header with the checksum's own 4 bytes zeroed.
fn verify_crc32c(header: &[u8], value: &[u8]) -> Result<(), ParseError> {
    let expected: [u8; 4] = value
        .try_into()
        .map_err(|_| ParseError::V2Malformed("a PP2_TYPE_CRC32C TLV is not 4 bytes"))?;
    let mut copy = header.to_vec();
    let pos = crc_value_offset(header).ok_or(ParseError::V2Malformed(
        "a PP2_TYPE_CRC32C TLV is not 4 bytes",
    ))?;
    copy[pos..pos + 4].fill(0);
    if crc32c::crc32c(&copy) == u32::from_be_bytes(expected) {
        Ok(())
    } else {
        Err(ParseError::V2BadChecksum)
    }
}

/// Where the CRC32C TLV's value starts in a complete, well-formed v2 header.
fn crc_value_offset(header: &[u8]) -> Option<usize> {
    let addr_len = match header.get(13)? {
        0x11 => 12,
        0x21 => 36,
        0x31 => 216,
        _ => 0,
    };
    let mut pos = 16 + addr_len;
    while pos + 3 <= header.len() {
        let kind = header[pos];
        let len = usize::from(u16::from_be_bytes([header[pos + 1], header[pos + 2]]));
        if kind == tlv_type::CRC32C && len == 4 {
            return Some(pos + 3);
        }
        pos += 3 + len;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn complete(bytes: &[u8]) -> (ProxyHeader, usize) {
        match parse(bytes) {
            Ok(Parsed::Complete { header, consumed }) => (header, consumed),
            other => panic!("{other:?}"),
        }
    }

    fn ip(source: &str, destination: &str) -> ProxyAddresses {
        ProxyAddresses::Ip {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    /// A v2 header: command, family byte, address bytes, TLVs.
    pub(crate) fn v2(ver_cmd: u8, fam: u8, addrs: &[u8], tlvs: &[(u8, &[u8])]) -> Vec<u8> {
        let mut body = addrs.to_vec();
        for (k, v) in tlvs {
            body.push(*k);
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(v);
        }
        let mut out = V2_SIGNATURE.to_vec();
        out.push(ver_cmd);
        out.push(fam);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    const V4_ADDRS: [u8; 12] = [192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb];

    #[test]
    fn v1_tcp4_tcp6_unknown() {
        let (h, n) = complete(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET");
        assert_eq!(n, 45);
        assert_eq!(h.version, ProxyVersion::V1);
        assert_eq!(h.command, ProxyCommand::Proxy);
        assert_eq!(h.addresses, ip("192.0.2.1:56324", "198.51.100.2:443"));
        let (h, _) = complete(b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n");
        assert_eq!(h.addresses, ip("[2001:db8::1]:65535", "[::1]:0"));
        let (h, n) = complete(b"PROXY UNKNOWN\r\n");
        assert_eq!((h.addresses, n), (ProxyAddresses::Unspecified, 15));
        let (h, _) = complete(b"PROXY UNKNOWN ffff::1 ::1 1 2\r\n");
        assert_eq!(h.addresses, ProxyAddresses::Unspecified);
        // The longest legal line (TCP6 with full addresses) is 104 bytes.
        let long = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(complete(long).1, long.len());
    }

    #[test]
    fn v1_incomplete_then_complete_byte_by_byte() {
        let line = b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n";
        for i in 0..line.len() {
            assert_eq!(parse(&line[..i]), Ok(Parsed::Incomplete), "prefix {i}");
        }
        assert_eq!(complete(line).1, line.len());
    }

    type Expect = fn(&ParseError) -> bool;

    #[test]
    fn v1_malformed() {
        use ParseError::*;
        let bad: &[(&[u8], Expect)] = &[
            (b"GET / HTTP/1.1\r\n", |e| *e == NotProxyProtocol),
            (b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\n", |e| {
                matches!(e, V1Malformed(_))
            }),
            (b"PROXY TCP4 10.0.0.1  10.0.0.2 1 2\r\n", |e| {
                matches!(e, V1Malformed(_))
            }),
            (b"PROXY TCP4 ::1 10.0.0.2 1 2\r\n", |e| {
                matches!(e, V1Malformed(_))
            }),
            (b"PROXY TCP6 10.0.0.1 ::1 1 2\r\n", |e| {
                matches!(e, V1Malformed(_))
            }),
            (b"PROXY TCP4 10.0.0.1 10.0.0.2 01 2\r\n", |e| {
                matches!(e, V1Malformed(_))
            }),
            (b"PROXY TCP4 10.0.0.1 10.0.0.2 65536 2\r\n", |e| {
                matches!(e, V1Malformed(_))
            }),
            (b"PROXY TCP4 10.0.0.1 10.0.0.2 -1 2\r\n", |e| {
                matches!(e, V1Malformed(_))
            }),
            (b"PROXY UDP4 10.0.0.1 10.0.0.2 1 2\r\n", |e| {
                matches!(e, V1Malformed(_))
            }),
            (b"PROXY TCP4 10.0.0.1 10.0.0.2 1\r\n", |e| {
                matches!(e, V1Malformed(_))
            }),
            (b"PROXY \xff\r\n", |e| matches!(e, V1Malformed(_))),
            (b"proxy TCP4 10.0.0.1 10.0.0.2 1 2\r\n", |e| {
                *e == NotProxyProtocol
            }),
        ];
        for (bytes, ok) in bad {
            let e = parse(bytes).unwrap_err();
            assert!(ok(&e), "{:?}: {e:?}", String::from_utf8_lossy(bytes));
        }
        // No CRLF within 107 bytes.
        let mut long = b"PROXY TCP4 ".to_vec();
        long.resize(107, b'1');
        assert_eq!(parse(&long[..106]), Ok(Parsed::Incomplete));
        assert_eq!(parse(&long), Err(V1TooLong));
    }

    #[test]
    fn v2_ipv4_with_tlvs() {
        let bytes = v2(
            0x21,
            0x11,
            &V4_ADDRS,
            &[
                (tlv_type::ALPN, b"h2"),
                (tlv_type::AUTHORITY, b"example.com"),
                (tlv_type::UNIQUE_ID, b"abc-123"),
                (tlv_type::NOOP, b""),
                (0xEA, b"\x01vpce-0123"),
            ],
        );
        let mut with_data = bytes.clone();
        with_data.extend_from_slice(b"\x16\x03\x01");
        let (h, n) = complete(&with_data);
        assert_eq!(n, bytes.len());
        assert_eq!(h.version, ProxyVersion::V2);
        assert_eq!(h.command, ProxyCommand::Proxy);
        assert_eq!(h.addresses, ip("192.0.2.1:56324", "198.51.100.2:443"));
        assert_eq!(h.tlvs.alpn(), Some(&b"h2"[..]));
        assert_eq!(h.tlvs.authority(), Some("example.com"));
        assert_eq!(h.tlvs.unique_id(), Some(&b"abc-123"[..]));
        assert_eq!(h.tlvs.get(0xEA), Some(&b"\x01vpce-0123"[..]));
        assert_eq!(h.tlvs.iter().count(), 5);
        // Byte by byte, it is incomplete until the last byte.
        for i in 0..bytes.len() {
            assert_eq!(parse(&bytes[..i]), Ok(Parsed::Incomplete), "prefix {i}");
        }
    }

    #[test]
    fn v2_ipv6_unix_unspec_and_local() {
        let mut addrs = Vec::new();
        addrs.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        addrs.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        addrs.extend_from_slice(&[0x30, 0x39, 0x00, 0x50]);
        let (h, _) = complete(&v2(0x21, 0x21, &addrs, &[]));
        assert_eq!(h.addresses, ip("[2001:db8::1]:12345", "[::1]:80"));

        let mut unix = [0u8; 216];
        unix[..9].copy_from_slice(b"/tmp/c.sk");
        unix[108] = 0;
        unix[109..113].copy_from_slice(b"srv1");
        let (h, _) = complete(&v2(0x21, 0x31, &unix, &[]));
        assert_eq!(
            h.addresses,
            ProxyAddresses::Unix {
                source: "/tmp/c.sk".into(),
                destination: "@srv1".into()
            }
        );

        let (h, _) = complete(&v2(0x21, 0x00, &[], &[]));
        assert_eq!(h.addresses, ProxyAddresses::Unspecified);
        // LOCAL: addresses are ignored, whatever the family.
        let (h, n) = complete(&v2(0x20, 0x11, &V4_ADDRS, &[]));
        assert_eq!(h.command, ProxyCommand::Local);
        assert_eq!(h.addresses, ProxyAddresses::Unspecified);
        assert_eq!(n, 28);
        let (h, _) = complete(&v2(0x20, 0x00, &[], &[]));
        assert_eq!(h.command, ProxyCommand::Local);
    }

    #[test]
    fn v2_bad_version_command_family_length() {
        use ParseError::*;
        assert_eq!(
            parse(&v2(0x11, 0x11, &V4_ADDRS, &[])),
            Err(V2UnknownVersion(1))
        );
        assert_eq!(
            parse(&v2(0x31, 0x11, &V4_ADDRS, &[])),
            Err(V2UnknownVersion(3))
        );
        assert_eq!(
            parse(&v2(0x2F, 0x11, &V4_ADDRS, &[])),
            Err(V2UnknownCommand(15))
        );
        // Refused as soon as the 13th byte is in.
        assert_eq!(
            parse(&v2(0x22, 0x11, &V4_ADDRS, &[])[..13]),
            Err(V2UnknownCommand(2))
        );
        // UDP over IPv4, or an unknown family.
        assert_eq!(
            parse(&v2(0x21, 0x12, &V4_ADDRS, &[])),
            Err(V2UnsupportedFamily(0x12))
        );
        assert_eq!(
            parse(&v2(0x21, 0x41, &V4_ADDRS, &[])),
            Err(V2UnsupportedFamily(0x41))
        );
        // Length too small for IPv4 addresses.
        assert!(matches!(
            parse(&v2(0x21, 0x11, &V4_ADDRS[..8], &[])),
            Err(V2Malformed(_))
        ));
        // A TLV that runs past the end, and a truncated TLV.
        let mut b = v2(0x21, 0x11, &V4_ADDRS, &[(tlv_type::ALPN, b"h2")]);
        let last = b.len() - 1;
        b[last - 2] = 0x09; // ALPN length 2 → 9 (… 0x01 0x00 0x09 'h' '2')
        assert!(matches!(parse(&b), Err(V2Malformed(_))), "{:?}", parse(&b));
        let b = v2(
            0x21,
            0x11,
            &[&V4_ADDRS[..], &[0x01, 0x00][..]].concat(),
            &[],
        );
        assert!(matches!(parse(&b), Err(V2Malformed(_))));
        // Oversized: refused from the fixed 16 bytes, before the rest arrives.
        let mut big = V2_SIGNATURE.to_vec();
        big.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&big), Err(V2TooLong(16 + 65535)));
        // Unique id over 128 bytes.
        let id = [b'x'; 129];
        assert!(matches!(
            parse(&v2(0x21, 0x11, &V4_ADDRS, &[(tlv_type::UNIQUE_ID, &id)])),
            Err(V2Malformed(_))
        ));
        // SSL TLV too short.
        assert!(matches!(
            parse(&v2(0x21, 0x11, &V4_ADDRS, &[(tlv_type::SSL, b"\x01\x00")])),
            Err(V2Malformed(_))
        ));
    }

    #[test]
    fn v2_crc32c_is_verified_and_ssl_is_read() {
        let ssl_value = [
            &[0x01u8, 0, 0, 0, 0][..],
            &[tlv_type::SSL_VERSION, 0, 7],
            b"TLSv1.3",
            &[tlv_type::SSL_CN, 0, 6],
            b"client",
        ]
        .concat();
        let mut b = v2(
            0x21,
            0x11,
            &V4_ADDRS,
            &[
                (tlv_type::SSL, &ssl_value),
                (tlv_type::CRC32C, &[0, 0, 0, 0]),
            ],
        );
        let crc = crc32c::crc32c(&b).to_be_bytes();
        let n = b.len();
        b[n - 4..].copy_from_slice(&crc);
        let (h, _) = complete(&b);
        assert!(h.tlvs.has_crc32c());
        let ssl = h.tlvs.ssl().unwrap();
        assert!(ssl.is_tls());
        assert_eq!(ssl.verify, 0);
        assert_eq!(ssl.version(), Some("TLSv1.3"));
        assert_eq!(ssl.common_name(), Some("client"));
        b[20] ^= 1; // flip a bit of an address
        assert_eq!(parse(&b), Err(ParseError::V2BadChecksum));
    }

    #[test]
    fn neither_signature() {
        assert_eq!(parse(b""), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"\r\n\r\n\0"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"PRO"), Ok(Parsed::Incomplete));
        assert_eq!(
            parse(b"\x16\x03\x01\x02"),
            Err(ParseError::NotProxyProtocol)
        );
        assert_eq!(parse(b"PRI * HTTP/2.0"), Err(ParseError::NotProxyProtocol));
        assert_eq!(
            parse(b"\r\n\r\n\0\r\nQUIX"),
            Err(ParseError::NotProxyProtocol)
        );
    }
}
