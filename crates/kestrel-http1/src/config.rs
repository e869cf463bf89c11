use std::time::Duration;

use kestrel_core::request_limits::LimitValues;
use kestrel_core::{KestrelServerOptions, MinDataRate};

use crate::codec::HeadParser;

/// How long an unread request body is drained after its response before the
/// connection is closed instead (Kestrel's `RequestBodyDrainTimeout`).
pub const REQUEST_BODY_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The most the driver reads ahead while the app runs (see
/// [`Http1Config::read_ahead`]).
pub const READ_AHEAD: usize = 64 * 1024;

/// The HTTP/1 driver's settings, derived from [`KestrelServerOptions`].
#[derive(Debug, Clone)]
pub struct Http1Config {
    /// Request-head parsing limits and switches.
    pub parser: HeadParser,
    /// Request body bytes at most (413), unless the request changes it.
    pub max_request_body_size: Option<u64>,
    /// Response bytes buffered before the driver waits for the client.
    pub max_response_buffer_size: Option<usize>,
    /// Idle time allowed between requests.
    pub keep_alive_timeout: Duration,
    /// Time allowed for a whole request head, from its first byte (408).
    pub request_headers_timeout: Duration,
    /// Time allowed to drain an unread request body after the response.
    pub request_body_drain_timeout: Duration,
    /// Add `Server: Kestrel`.
    pub add_server_header: bool,
    /// Minimum request body data rate, unless the request changes it.
    pub min_request_body_data_rate: Option<MinDataRate>,
    /// Minimum response data rate, unless the request changes it.
    pub min_response_data_rate: Option<MinDataRate>,
    /// What the driver may read ahead while the app runs, to notice the
    /// client leaving: `READ_AHEAD`, or `max_request_buffer_size` if smaller.
    pub read_ahead: usize,
}

impl Http1Config {
    /// Settings from the server options.
    pub fn from_options(o: &KestrelServerOptions) -> Self {
        let l = &o.limits;
        Http1Config {
            parser: HeadParser {
                max_request_line_size: l.max_request_line_size,
                max_request_headers_total_size: l.max_request_headers_total_size,
                max_request_header_count: l.max_request_header_count,
                allow_bare_lf: o.http1.allow_bare_lf,
                allow_host_header_override: o.allow_host_header_override,
            },
            max_request_body_size: l.max_request_body_size,
            max_response_buffer_size: l.max_response_buffer_size,
            keep_alive_timeout: l.keep_alive_timeout,
            request_headers_timeout: l.request_headers_timeout,
            request_body_drain_timeout: REQUEST_BODY_DRAIN_TIMEOUT,
            add_server_header: o.add_server_header,
            min_request_body_data_rate: l.min_request_body_data_rate,
            min_response_data_rate: l.min_response_data_rate,
            read_ahead: l
                .max_request_buffer_size
                .map_or(READ_AHEAD, |n| n.min(READ_AHEAD)),
        }
    }

    /// The per-request limits every request starts with.
    pub fn limit_values(&self) -> LimitValues {
        LimitValues {
            max_request_body_size: self.max_request_body_size,
            min_request_body_data_rate: self.min_request_body_data_rate,
            min_response_data_rate: self.min_response_data_rate,
        }
    }
}

impl Default for Http1Config {
    fn default() -> Self {
        Http1Config::from_options(&KestrelServerOptions::default())
    }
}
