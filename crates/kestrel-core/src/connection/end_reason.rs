//! Why a connection ended (Kestrel's `ConnectionEndReason`).

/// Why a connection ended, when it did not end gracefully: Kestrel's
/// `ConnectionEndReason`, reported as the `error.type` tag of
/// `kestrel.connection.duration`. The first reason recorded wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum ConnectionEndReason {
    /// The idle keep-alive timeout passed.
    KeepAliveTimeout = 1,
    /// A request head did not arrive in time.
    RequestHeadersTimeout,
    /// The request body arrived below the minimum rate.
    MinRequestBodyDataRate,
    /// The client read the response below the minimum rate.
    MinResponseDataRate,
    /// The request line was malformed or too long.
    InvalidRequestLine,
    /// The request headers were malformed, too large or too many.
    InvalidRequestHeaders,
    /// The request body's framing was malformed.
    InvalidRequestBody,
    /// An HTTP version the server does not speak.
    InvalidHttpVersion,
    /// The request body was larger than allowed.
    MaxRequestBodySizeExceeded,
    /// The connection limit was reached.
    MaxConcurrentConnectionsExceeded,
    /// The response body did not match its Content-Length.
    ResponseContentLengthMismatch,
    /// The app failed after the response had started.
    ErrorAfterStartingResponse,
    /// The TLS handshake failed or timed out.
    TlsHandshakeFailed,
    /// The server aborted the connection at the end of the shutdown timeout.
    AppShutdownTimeout,
    /// The connection was reset or failed with an I/O error.
    ConnectionReset,
    /// A deadline set by the app (connection timeout feature) passed.
    ServerTimeout,
    /// An HTTP/2 protocol error.
    ProtocolError,
}

impl ConnectionEndReason {
    const ALL: [ConnectionEndReason; 17] = [
        Self::KeepAliveTimeout,
        Self::RequestHeadersTimeout,
        Self::MinRequestBodyDataRate,
        Self::MinResponseDataRate,
        Self::InvalidRequestLine,
        Self::InvalidRequestHeaders,
        Self::InvalidRequestBody,
        Self::InvalidHttpVersion,
        Self::MaxRequestBodySizeExceeded,
        Self::MaxConcurrentConnectionsExceeded,
        Self::ResponseContentLengthMismatch,
        Self::ErrorAfterStartingResponse,
        Self::TlsHandshakeFailed,
        Self::AppShutdownTimeout,
        Self::ConnectionReset,
        Self::ServerTimeout,
        Self::ProtocolError,
    ];

    /// Kestrel's name for the reason (the `error.type` tag value).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::KeepAliveTimeout => "keep_alive_timeout",
            Self::RequestHeadersTimeout => "request_headers_timeout",
            Self::MinRequestBodyDataRate => "min_request_body_data_rate",
            Self::MinResponseDataRate => "min_response_data_rate",
            Self::InvalidRequestLine => "invalid_request_line",
            Self::InvalidRequestHeaders => "invalid_request_headers",
            Self::InvalidRequestBody => "invalid_request_body",
            Self::InvalidHttpVersion => "invalid_http_version",
            Self::MaxRequestBodySizeExceeded => "max_request_body_size_exceeded",
            Self::MaxConcurrentConnectionsExceeded => "max_concurrent_connections_exceeded",
            Self::ResponseContentLengthMismatch => "response_content_length_mismatch",
            Self::ErrorAfterStartingResponse => "error_after_starting_response",
            Self::TlsHandshakeFailed => "tls_handshake_failed",
            Self::AppShutdownTimeout => "app_shutdown_timeout",
            Self::ConnectionReset => "connection_reset",
            Self::ServerTimeout => "server_timeout",
            Self::ProtocolError => "protocol_error",
        }
    }

    pub(super) fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.get((v as usize).checked_sub(1)?).copied()
    }
}
