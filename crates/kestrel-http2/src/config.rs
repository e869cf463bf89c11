//! The HTTP/2 driver's settings, and how they map onto `h2::server::Builder`.

use std::time::Duration;

use kestrel_core::request_limits::LimitValues;
use kestrel_core::{Http2Limits, KestrelServerOptions, MinDataRate};

/// How long a closed or reset stream is remembered, so that late frames for
/// it are ignored rather than treated as a protocol error (Kestrel keeps a
/// closed stream for 5 s before it leaves the stream pool).
pub const RESET_STREAM_DURATION: Duration = Duration::from_secs(5);

/// Remotely reset streams `h2` may hold before the driver accepts them; one
/// more is a rapid-reset attack (CVE-2023-44487): GOAWAY ENHANCE_YOUR_CALM.
/// The same number as Kestrel's `MaxEnhanceYourCalmCount` and `h2`'s and
/// hyper's default.
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// The window (in heartbeat ticks) over which streams refused with
/// ENHANCE_YOUR_CALM are counted (Kestrel: 5 ticks).
pub const ENHANCE_YOUR_CALM_WINDOW_TICKS: u64 = 5;

/// The smallest per-stream send buffer: one default-sized frame, so that a
/// response always makes progress even when `max_response_buffer_size` is 0.
const MIN_SEND_BUFFER: usize = 16 * 1024;
/// The per-stream send buffer when `max_response_buffer_size` is unlimited.
const UNLIMITED_SEND_BUFFER: usize = 1024 * 1024;
/// `h2`'s floor for the small-DATA-frame budget.
const MIN_DATA_FRAME_BUDGET: usize = 25_600;

/// The HTTP/2 driver's settings, derived from [`KestrelServerOptions`].
///
/// Every field that reaches `h2` is set on its builder explicitly; see
/// `docs/http2.md` for the mapping.
#[derive(Debug, Clone)]
pub struct Http2Config {
    /// Kestrel's `Http2Limits`.
    pub limits: Http2Limits,
    /// Request header fields at most (431 on the stream).
    pub max_request_header_count: usize,
    /// Total size of the request header fields (431 on the stream; sent as
    /// `SETTINGS_MAX_HEADER_LIST_SIZE`).
    pub max_request_headers_total_size: usize,
    /// Sum of the pseudo-header lengths (`:method`, `:scheme`, `:authority`,
    /// `:path`); above it the stream is reset with PROTOCOL_ERROR.
    pub max_request_line_size: usize,
    /// Request body bytes at most, per stream (413, or RST_STREAM once the
    /// response started).
    pub max_request_body_size: Option<u64>,
    /// Minimum request body data rate per stream (Kestrel's
    /// `MinRequestBodyDataRate`); the app may change it for its request.
    pub min_request_body_data_rate: Option<MinDataRate>,
    /// Minimum response data rate per stream (Kestrel's
    /// `MinResponseDataRate`); the app may change it for its request.
    pub min_response_data_rate: Option<MinDataRate>,
    /// Idle time allowed while no stream is active.
    pub keep_alive_timeout: Duration,
    /// Time allowed for the connection preface.
    pub request_headers_timeout: Duration,
    /// Add `Server: Kestrel`.
    pub add_server_header: bool,
    /// `h2`: remotely reset streams not yet accepted, before GOAWAY
    /// ENHANCE_YOUR_CALM (`MAX_PENDING_ACCEPT_RESET_STREAMS`).
    pub max_pending_accept_reset_streams: usize,
    /// `h2`: streams it resets because of the client's protocol errors,
    /// before GOAWAY ENHANCE_YOUR_CALM. Default: the tracked-streams cap.
    pub max_local_error_reset_streams: usize,
    /// `h2`: locally reset streams remembered at once (the oldest is
    /// forgotten beyond it). Default: the tracked-streams cap.
    pub max_concurrent_reset_streams: usize,
    /// `h2`: how long a reset stream is remembered (`RESET_STREAM_DURATION`).
    pub reset_stream_duration: Duration,
    /// `h2`: response bytes buffered per stream before the driver waits for
    /// the client: `max_response_buffer_size` (at least 16 KiB; 1 MiB when
    /// unlimited).
    pub max_send_buffer_size: usize,
    /// `h2`: the budget of small request DATA frames buffered per connection
    /// (half the connection window, at least 25,600 bytes).
    pub data_frame_budget: usize,
    /// Streams the driver serves at once, counting ones the client already
    /// reset (Kestrel's `MaxTrackedStreams` = max(2 × streams, 100)). A new
    /// stream beyond it is reset with ENHANCE_YOUR_CALM.
    pub max_tracked_streams: usize,
    /// Streams refused with ENHANCE_YOUR_CALM within
    /// `ENHANCE_YOUR_CALM_WINDOW_TICKS` heartbeats before the connection is
    /// closed with GOAWAY ENHANCE_YOUR_CALM (Kestrel: 5 × 20).
    pub max_enhance_your_calm: u32,
}

impl Http2Config {
    /// Settings from the server options.
    pub fn from_options(o: &KestrelServerOptions) -> Self {
        let l = &o.limits;
        let h2 = l.http2.clone();
        let tracked = (2 * h2.max_streams_per_connection as usize).max(100);
        Http2Config {
            max_request_header_count: l.max_request_header_count,
            max_request_headers_total_size: l.max_request_headers_total_size,
            max_request_line_size: l.max_request_line_size,
            max_request_body_size: l.max_request_body_size,
            min_request_body_data_rate: l.min_request_body_data_rate,
            min_response_data_rate: l.min_response_data_rate,
            keep_alive_timeout: l.keep_alive_timeout,
            request_headers_timeout: l.request_headers_timeout,
            add_server_header: o.add_server_header,
            max_pending_accept_reset_streams: MAX_PENDING_ACCEPT_RESET_STREAMS,
            max_local_error_reset_streams: tracked,
            max_concurrent_reset_streams: tracked,
            reset_stream_duration: RESET_STREAM_DURATION,
            max_send_buffer_size: l
                .max_response_buffer_size
                .map_or(UNLIMITED_SEND_BUFFER, |n| n.max(MIN_SEND_BUFFER)),
            data_frame_budget: (h2.initial_connection_window_size as usize / 2)
                .max(MIN_DATA_FRAME_BUDGET),
            max_tracked_streams: tracked,
            max_enhance_your_calm: 5 * MAX_PENDING_ACCEPT_RESET_STREAMS as u32,
            limits: h2,
        }
    }

    /// The per-request limits every stream starts with (the app may change
    /// them through its `RequestLimits` until it reads the body).
    pub fn limit_values(&self) -> LimitValues {
        LimitValues {
            max_request_body_size: self.max_request_body_size,
            min_request_body_data_rate: self.min_request_body_data_rate,
            min_response_data_rate: self.min_response_data_rate,
        }
    }

    /// The `h2` builder with every knob set from these settings (never
    /// `h2`'s defaults).
    pub(crate) fn builder(&self) -> h2::server::Builder {
        let l = &self.limits;
        let mut b = h2::server::Builder::new();
        b.max_concurrent_streams(l.max_streams_per_connection)
            .header_table_size(l.header_table_size)
            .max_frame_size(l.max_frame_size.clamp(1 << 14, (1 << 24) - 1))
            .max_header_list_size(clamp_u32(self.max_request_headers_total_size))
            .initial_connection_window_size(l.initial_connection_window_size)
            .initial_window_size(l.initial_stream_window_size)
            .max_pending_accept_reset_streams(self.max_pending_accept_reset_streams)
            .max_local_error_reset_streams(Some(self.max_local_error_reset_streams))
            .max_concurrent_reset_streams(self.max_concurrent_reset_streams)
            .reset_stream_duration(self.reset_stream_duration)
            .max_send_buffer_size(self.max_send_buffer_size.min(u32::MAX as usize))
            .data_frame_budget(self.data_frame_budget);
        if l.enable_connect_protocol {
            // SETTINGS_ENABLE_CONNECT_PROTOCOL = 1: RFC 8441 extended CONNECT
            // (WebSockets over HTTP/2), surfaced as an `UpgradeFeature`.
            b.enable_connect_protocol();
        }
        b
    }
}

fn clamp_u32(n: usize) -> u32 {
    n.min(u32::MAX as usize) as u32
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config::from_options(&KestrelServerOptions::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_kestrel() {
        let c = Http2Config::default();
        assert_eq!(c.limits.max_streams_per_connection, 100);
        assert_eq!(c.max_tracked_streams, 200);
        assert_eq!(c.max_request_headers_total_size, 32 * 1024);
        assert_eq!(c.max_send_buffer_size, 64 * 1024);
        assert_eq!(c.data_frame_budget, 512 * 1024);
        assert_eq!(c.max_enhance_your_calm, 100);
        let mut o = KestrelServerOptions::default();
        o.limits.max_response_buffer_size = Some(0);
        o.limits.http2.max_streams_per_connection = 10;
        let c = Http2Config::from_options(&o);
        assert_eq!(c.max_send_buffer_size, 16 * 1024, "always room for a frame");
        assert_eq!(c.max_tracked_streams, 100);
        o.limits.max_response_buffer_size = None;
        assert_eq!(
            Http2Config::from_options(&o).max_send_buffer_size,
            1024 * 1024
        );
    }
}
