//! The TLS handshake feature.

/// The outcome of a TLS handshake (Kestrel's `ITlsConnectionFeature` and
/// `ITlsHandshakeFeature`). The TLS connection middleware records it in the
/// connection's features; the server reads `alpn` to choose HTTP/1.1 or
/// HTTP/2, and the app finds it through
/// [`RequestFeatures::tls`](super::RequestFeatures::tls).
///
/// Plain data, so that this crate needs no TLS library.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The protocol version, e.g. `"TLSv1_3"`.
    pub protocol_version: String,
    /// The negotiated cipher suite, e.g. `"TLS13_AES_128_GCM_SHA256"`.
    pub cipher_suite: String,
    /// The server name the client asked for (SNI), if any.
    pub server_name: Option<String>,
    /// The negotiated application protocol (ALPN), e.g. `b"h2"`.
    pub alpn: Option<Vec<u8>>,
    /// The client's certificate chain (DER), leaf first; empty if none was sent.
    pub peer_certificates: Vec<bytes::Bytes>,
}

impl TlsInfo {
    /// A record with the given version, cipher suite, SNI name and ALPN protocol.
    pub fn new(
        protocol_version: impl Into<String>,
        cipher_suite: impl Into<String>,
        server_name: Option<String>,
        alpn: Option<Vec<u8>>,
        peer_certificates: Vec<bytes::Bytes>,
    ) -> Self {
        TlsInfo {
            protocol_version: protocol_version.into(),
            cipher_suite: cipher_suite.into(),
            server_name,
            alpn,
            peer_certificates,
        }
    }

    /// Whether ALPN selected HTTP/2.
    pub fn is_h2(&self) -> bool {
        self.alpn.as_deref() == Some(b"h2")
    }
}
