//! What a PROXY header says: [`ProxyHeader`] (version, command, addresses)
//! and the v2 TLVs ([`Tlvs`]).

use std::net::SocketAddr;
use std::path::PathBuf;

/// The PROXY protocol version of a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyVersion {
    /// The text format (`PROXY TCP4 … \r\n`).
    V1,
    /// The binary format (the 12-byte signature `\r\n\r\n\0\r\nQUIT\n`).
    V2,
}

/// The command of a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyCommand {
    /// The proxy speaks for itself (its own health check): the connection
    /// keeps its real addresses. v2 `LOCAL`.
    Local,
    /// The proxy relays a client: the header's addresses are the
    /// connection's. v1 always, v2 `PROXY`.
    Proxy,
}

/// The addresses a header carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProxyAddresses {
    /// None (v1 `UNKNOWN`, v2 `AF_UNSPEC`, or a `LOCAL` command): the
    /// connection keeps its real addresses.
    Unspecified,
    /// IPv4 or IPv6: the client (`source`) and the address it connected to
    /// on the proxy (`destination`).
    Ip {
        /// The client's address.
        source: SocketAddr,
        /// The address the client reached (on the proxy).
        destination: SocketAddr,
    },
    /// Unix socket paths (v2 `AF_UNIX`; an abstract name starts with `@`).
    Unix {
        /// The client's socket path.
        source: PathBuf,
        /// The socket path the client reached.
        destination: PathBuf,
    },
}

/// A parsed PROXY header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// v1 or v2.
    pub version: ProxyVersion,
    /// `LOCAL` or `PROXY`.
    pub command: ProxyCommand,
    /// The addresses (always [`ProxyAddresses::Unspecified`] for `LOCAL`).
    pub addresses: ProxyAddresses,
    /// The v2 TLVs (empty for v1).
    pub tlvs: Tlvs,
}

/// TLV types of the PROXY protocol v2 specification (section 2.2).
pub mod tlv_type {
    /// `PP2_TYPE_ALPN`: the application protocol the client negotiated with the proxy.
    pub const ALPN: u8 = 0x01;
    /// `PP2_TYPE_AUTHORITY`: the host name the client asked for (TLS SNI).
    pub const AUTHORITY: u8 = 0x02;
    /// `PP2_TYPE_CRC32C`: a CRC32C checksum of the whole header.
    pub const CRC32C: u8 = 0x03;
    /// `PP2_TYPE_NOOP`: padding.
    pub const NOOP: u8 = 0x04;
    /// `PP2_TYPE_UNIQUE_ID`: an opaque connection id (≤ 128 bytes).
    pub const UNIQUE_ID: u8 = 0x05;
    /// `PP2_TYPE_SSL`: the client's TLS connection to the proxy.
    pub const SSL: u8 = 0x20;
    /// `PP2_SUBTYPE_SSL_VERSION`.
    pub const SSL_VERSION: u8 = 0x21;
    /// `PP2_SUBTYPE_SSL_CN`.
    pub const SSL_CN: u8 = 0x22;
    /// `PP2_SUBTYPE_SSL_CIPHER`.
    pub const SSL_CIPHER: u8 = 0x23;
    /// `PP2_SUBTYPE_SSL_SIG_ALG`.
    pub const SSL_SIG_ALG: u8 = 0x24;
    /// `PP2_SUBTYPE_SSL_KEY_ALG`.
    pub const SSL_KEY_ALG: u8 = 0x25;
    /// `PP2_TYPE_NETNS`: the network namespace the connection came from.
    pub const NETNS: u8 = 0x30;
}

/// One TLV: its type and raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    /// The type byte (see [`tlv_type`]; `0xE0`–`0xEF` are custom, e.g. AWS's `0xEA`).
    pub kind: u8,
    /// The value.
    pub value: Vec<u8>,
}

/// The client's TLS connection to the proxy (`PP2_TYPE_SSL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslTlv {
    /// The `client` bit field (`PP2_CLIENT_SSL` 0x01, `PP2_CLIENT_CERT_CONN`
    /// 0x02, `PP2_CLIENT_CERT_SESS` 0x04).
    pub client: u8,
    /// 0 when the client presented a certificate that verified.
    pub verify: u32,
    /// The sub-TLVs (version, CN, cipher, signature and key algorithms).
    pub sub: Vec<Tlv>,
}

impl SslTlv {
    /// Whether the client connected over TLS (`PP2_CLIENT_SSL`).
    pub fn is_tls(&self) -> bool {
        self.client & 0x01 != 0
    }

    /// The TLS version the client used (`TLSv1.3`).
    pub fn version(&self) -> Option<&str> {
        self.sub_str(tlv_type::SSL_VERSION)
    }

    /// The client certificate's common name.
    pub fn common_name(&self) -> Option<&str> {
        self.sub_str(tlv_type::SSL_CN)
    }

    /// The cipher suite.
    pub fn cipher(&self) -> Option<&str> {
        self.sub_str(tlv_type::SSL_CIPHER)
    }

    fn sub_str(&self, kind: u8) -> Option<&str> {
        self.sub
            .iter()
            .find(|t| t.kind == kind)
            .and_then(|t| std::str::from_utf8(&t.value).ok())
    }
}

/// The TLVs of a v2 header, in order, with typed accessors for the ones the
/// specification defines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tlvs {
    list: Vec<Tlv>,
}

impl Tlvs {
    pub(crate) fn new(list: Vec<Tlv>) -> Self {
        Tlvs { list }
    }

    /// Every TLV, in the order received.
    pub fn iter(&self) -> impl Iterator<Item = &Tlv> {
        self.list.iter()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The first TLV of type `kind`'s value.
    pub fn get(&self, kind: u8) -> Option<&[u8]> {
        self.list
            .iter()
            .find(|t| t.kind == kind)
            .map(|t| t.value.as_slice())
    }

    /// `PP2_TYPE_ALPN`: the protocol the client negotiated with the proxy (`h2`).
    pub fn alpn(&self) -> Option<&[u8]> {
        self.get(tlv_type::ALPN)
    }

    /// `PP2_TYPE_AUTHORITY`: the host name the client asked for (SNI), as UTF-8.
    pub fn authority(&self) -> Option<&str> {
        self.get(tlv_type::AUTHORITY)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// `PP2_TYPE_UNIQUE_ID`: the proxy's id for the connection.
    pub fn unique_id(&self) -> Option<&[u8]> {
        self.get(tlv_type::UNIQUE_ID)
    }

    /// `PP2_TYPE_NETNS`: the network namespace's name.
    pub fn netns(&self) -> Option<&str> {
        self.get(tlv_type::NETNS)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Whether the header carried a `PP2_TYPE_CRC32C` (it was verified by the parser).
    pub fn has_crc32c(&self) -> bool {
        self.get(tlv_type::CRC32C).is_some()
    }

    /// `PP2_TYPE_SSL`: the client's TLS connection to the proxy. (The
    /// parser checked its layout, so this is `Some` whenever the TLV is there.)
    pub fn ssl(&self) -> Option<SslTlv> {
        let v = self.get(tlv_type::SSL)?;
        let (client, rest) = v.split_first()?;
        let verify = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        let sub = crate::parse::parse_tlvs(rest.get(4..)?).ok()?;
        Some(SslTlv {
            client: *client,
            verify,
            sub,
        })
    }
}
