//! The HTTP/3 driver's settings, and how they map onto `h3::server::Builder`.

use std::time::Duration;

use kestrel_core::request_limits::LimitValues;
use kestrel_core::{KestrelServerOptions, MinDataRate};

/// Kestrel's `Http3Limits.MaxRequestHeaderFieldSize` (32 KiB; its doc
/// comment says 16 KiB, the code 32 KiB).
pub const MAX_REQUEST_HEADER_FIELD_SIZE: usize = 32 * 1024;

/// Kestrel's `Http3Limits.HeaderTableSize`: the QPACK dynamic table's
/// capacity, 0 (no dynamic table, aspnetcore#26666). h3 decodes field
/// sections statelessly and never sends `SETTINGS_QPACK_MAX_TABLE_CAPACITY`,
/// so the capacity the client sees is RFC 9204's default, 0: a field section
/// that refers to the dynamic table fails to decode.
pub const QPACK_MAX_TABLE_CAPACITY: u64 = 0;

/// The HTTP/3 driver's settings, derived from [`KestrelServerOptions`].
///
/// Every field that reaches h3 is set on its builder explicitly; see
/// `docs/http3.md`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Http3Config {
    /// Total size of the request's field section, sent as
    /// `SETTINGS_MAX_FIELD_SECTION_SIZE` (h3's default is unlimited) and
    /// checked again on the decoded head (431).
    pub max_request_headers_total_size: usize,
    /// Request header fields at most (431).
    pub max_request_header_count: usize,
    /// One request header field's name and value at most (431).
    pub max_request_header_field_size: usize,
    /// Request body bytes at most, per stream (413, or a stream reset once
    /// the response started).
    pub max_request_body_size: Option<u64>,
    /// Minimum request body data rate (not enforced yet on HTTP/3; carried
    /// in the request's limits for the app).
    pub min_request_body_data_rate: Option<MinDataRate>,
    /// Minimum response data rate (not enforced yet on HTTP/3; carried in
    /// the request's limits for the app).
    pub min_response_data_rate: Option<MinDataRate>,
    /// Time a request stream has to deliver its whole head (HEADERS frame)
    /// from the moment it is accepted (Kestrel's `RequestHeadersTimeout`,
    /// per stream; h3 has no timeout of its own). Past it the stream is
    /// refused: reset and stopped with H3_REQUEST_REJECTED, as Kestrel does.
    /// A unidirectional stream has as long to send its type, or is stopped
    /// with H3_STREAM_CREATION_ERROR.
    pub request_headers_timeout: Duration,
    /// Add `Server: Kestrel`.
    pub add_server_header: bool,
    /// How long a connection may stay without an open request stream
    /// (Kestrel's `KeepAliveTimeout`, 130 s): then GOAWAY and a close with
    /// H3_NO_ERROR. Only with a connection runtime's handle
    /// (`Http3Connection::from_admitted`), whose heartbeat times it.
    pub keep_alive_timeout: Duration,
}

impl Http3Config {
    /// Settings from the server options.
    pub fn from_options(o: &KestrelServerOptions) -> Self {
        let l = &o.limits;
        Http3Config {
            max_request_headers_total_size: l.max_request_headers_total_size,
            max_request_header_count: l.max_request_header_count,
            max_request_header_field_size: MAX_REQUEST_HEADER_FIELD_SIZE,
            max_request_body_size: l.max_request_body_size,
            min_request_body_data_rate: l.min_request_body_data_rate,
            min_response_data_rate: l.min_response_data_rate,
            request_headers_timeout: l.request_headers_timeout,
            add_server_header: o.add_server_header,
            keep_alive_timeout: l.keep_alive_timeout,
        }
    }

    /// The per-request limits every stream starts with.
    pub fn limit_values(&self) -> LimitValues {
        LimitValues {
            max_request_body_size: self.max_request_body_size,
            min_request_body_data_rate: self.min_request_body_data_rate,
            min_response_data_rate: self.min_response_data_rate,
        }
    }

    /// The h3 builder with every setting named (never h3's defaults).
    pub(crate) fn builder(&self) -> h3::server::Builder {
        let mut b = h3::server::builder();
        b.max_field_section_size(self.max_request_headers_total_size as u64)
            // No GREASE frames or settings: nothing a client must skip.
            .send_grease(false)
            // No WebTransport, extended CONNECT or datagrams yet.
            .enable_webtransport(false)
            .enable_extended_connect(false)
            .enable_datagram(false)
            .max_webtransport_sessions(0);
        b
    }
}

impl Default for Http3Config {
    fn default() -> Self {
        Http3Config::from_options(&KestrelServerOptions::default())
    }
}
