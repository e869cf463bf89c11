//! Which HTTP versions an endpoint speaks (Kestrel's `HttpProtocols`).

use std::fmt;
use std::str::FromStr;

/// The HTTP versions an endpoint accepts; a set of flags like Kestrel's enum
/// (None 0, Http1 1, Http2 2, Http3 4).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HttpProtocols(u8);

impl HttpProtocols {
    /// No protocol.
    pub const NONE: HttpProtocols = HttpProtocols(0);
    /// HTTP/1.x only.
    pub const HTTP1: HttpProtocols = HttpProtocols(1);
    /// HTTP/2 only.
    pub const HTTP2: HttpProtocols = HttpProtocols(2);
    /// HTTP/3 only (not implemented yet).
    pub const HTTP3: HttpProtocols = HttpProtocols(4);
    /// HTTP/1.x and HTTP/2: the default for every endpoint.
    pub const HTTP1_AND_HTTP2: HttpProtocols = HttpProtocols(3);
    /// HTTP/1.x, HTTP/2 and HTTP/3.
    pub const HTTP1_AND_HTTP2_AND_HTTP3: HttpProtocols = HttpProtocols(7);

    /// Whether every protocol in `other` is in `self`.
    pub const fn contains(self, other: HttpProtocols) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// The raw flag bits.
    pub const fn bits(self) -> u8 {
        self.0
    }
}

impl Default for HttpProtocols {
    fn default() -> Self {
        HttpProtocols::HTTP1_AND_HTTP2
    }
}

impl fmt::Debug for HttpProtocols {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for HttpProtocols {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0 => "None",
            1 => "Http1",
            2 => "Http2",
            3 => "Http1AndHttp2",
            4 => "Http3",
            5 => "Http1AndHttp3",
            6 => "Http2AndHttp3",
            _ => "Http1AndHttp2AndHttp3",
        };
        f.write_str(name)
    }
}

/// A protocols name that is not one of Kestrel's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown HTTP protocols value {0:?} (expected None, Http1, Http2, Http3, Http1AndHttp2 or Http1AndHttp2AndHttp3)")]
pub struct ParseProtocolsError(pub String);

impl FromStr for HttpProtocols {
    type Err = ParseProtocolsError;

    /// Parses Kestrel's names case-insensitively (`Http1AndHttp2`, `http2`, …).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let p = match s.trim().to_ascii_lowercase().as_str() {
            "none" => HttpProtocols::NONE,
            "http1" => HttpProtocols::HTTP1,
            "http2" => HttpProtocols::HTTP2,
            "http3" => HttpProtocols::HTTP3,
            "http1andhttp2" => HttpProtocols::HTTP1_AND_HTTP2,
            "http1andhttp2andhttp3" => HttpProtocols::HTTP1_AND_HTTP2_AND_HTTP3,
            _ => return Err(ParseProtocolsError(s.to_string())),
        };
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_names() {
        assert_eq!(HttpProtocols::default(), HttpProtocols::HTTP1_AND_HTTP2);
        assert!(HttpProtocols::HTTP1_AND_HTTP2.contains(HttpProtocols::HTTP1));
        assert!(HttpProtocols::HTTP1_AND_HTTP2.contains(HttpProtocols::HTTP2));
        assert!(!HttpProtocols::HTTP1_AND_HTTP2.contains(HttpProtocols::HTTP3));
        assert!(!HttpProtocols::HTTP1.contains(HttpProtocols::NONE));
        assert_eq!(HttpProtocols::HTTP1_AND_HTTP2_AND_HTTP3.bits(), 7);
        assert_eq!(
            "http1ANDhttp2".parse::<HttpProtocols>(),
            Ok(HttpProtocols::HTTP1_AND_HTTP2)
        );
        assert!("http4".parse::<HttpProtocols>().is_err());
        assert_eq!(HttpProtocols::HTTP2.to_string(), "Http2");
    }
}
