//! Server limits, with Kestrel's defaults (`KestrelServerLimits`, `Http2Limits`).

use std::time::Duration;

use crate::options::OptionsError;

/// The heartbeat interval: timeouts are checked once per interval, and a
/// minimum data rate's grace period must be longer than it.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);

/// A minimum data rate (Kestrel's `MinDataRate`): after `grace_period`, a
/// transfer averaging fewer than `bytes_per_second` is cut off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinDataRate {
    /// The rate, in bytes per second; must be > 0.
    pub bytes_per_second: f64,
    /// How long a transfer may run below the rate at its start; must be
    /// longer than the 1 s heartbeat.
    pub grace_period: Duration,
}

impl MinDataRate {
    /// A validated rate.
    pub fn new(bytes_per_second: f64, grace_period: Duration) -> Result<Self, OptionsError> {
        let rate = MinDataRate {
            bytes_per_second,
            grace_period,
        };
        rate.validate("min_data_rate")?;
        Ok(rate)
    }

    pub(crate) fn validate(&self, name: &'static str) -> Result<(), OptionsError> {
        if !(self.bytes_per_second > 0.0 && self.bytes_per_second.is_finite()) {
            return Err(OptionsError::Invalid {
                name,
                reason: "bytes_per_second must be a finite number greater than 0",
            });
        }
        if self.grace_period <= HEARTBEAT_INTERVAL {
            return Err(OptionsError::Invalid {
                name,
                reason: "grace_period must be longer than the 1 s heartbeat interval",
            });
        }
        Ok(())
    }
}

impl Default for MinDataRate {
    /// 240 bytes/s with a 5 s grace period (Kestrel's default for both directions).
    fn default() -> Self {
        MinDataRate {
            bytes_per_second: 240.0,
            grace_period: Duration::from_secs(5),
        }
    }
}

/// Limits that apply to every connection and request (Kestrel's `KestrelServerLimits`).
///
/// `None` means "no limit" where Kestrel allows `null`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerLimits {
    /// Open connections at most (upgraded ones are counted separately). Default: no limit.
    pub max_concurrent_connections: Option<u64>,
    /// Upgraded (e.g. WebSocket) connections at most. Default: no limit.
    pub max_concurrent_upgraded_connections: Option<u64>,
    /// Request body bytes at most, per request (413 when exceeded). Default 30,000,000.
    pub max_request_body_size: Option<u64>,
    /// Request bytes buffered while the app is not reading. Default 1 MiB.
    pub max_request_buffer_size: Option<usize>,
    /// Request header fields at most (431). Default 100.
    pub max_request_header_count: usize,
    /// Total size of the request header section (431). Default 32 KiB.
    pub max_request_headers_total_size: usize,
    /// Request line length, including its CRLF (414). Default 8 KiB.
    pub max_request_line_size: usize,
    /// Response bytes buffered before writes wait for the client. Default 64 KiB.
    pub max_response_buffer_size: Option<usize>,
    /// How long an idle keep-alive connection is kept. Default 130 s.
    pub keep_alive_timeout: Duration,
    /// Time allowed to receive a whole request head, from its first byte (408). Default 30 s.
    pub request_headers_timeout: Duration,
    /// Minimum request body data rate. Default 240 B/s, 5 s grace.
    pub min_request_body_data_rate: Option<MinDataRate>,
    /// Minimum response data rate. Default 240 B/s, 5 s grace.
    pub min_response_data_rate: Option<MinDataRate>,
    /// HTTP/2 limits.
    pub http2: Http2Limits,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_concurrent_connections: None,
            max_concurrent_upgraded_connections: None,
            max_request_body_size: Some(30_000_000),
            max_request_buffer_size: Some(1024 * 1024),
            max_request_header_count: 100,
            max_request_headers_total_size: 32 * 1024,
            max_request_line_size: 8 * 1024,
            max_response_buffer_size: Some(64 * 1024),
            keep_alive_timeout: Duration::from_secs(130),
            request_headers_timeout: Duration::from_secs(30),
            min_request_body_data_rate: Some(MinDataRate::default()),
            min_response_data_rate: Some(MinDataRate::default()),
            http2: Http2Limits::default(),
        }
    }
}

impl ServerLimits {
    /// Check every limit, as Kestrel does when the server starts.
    pub fn validate(&self) -> Result<(), OptionsError> {
        fn positive(name: &'static str, v: u64) -> Result<(), OptionsError> {
            if v == 0 {
                Err(OptionsError::Invalid {
                    name,
                    reason: "must be greater than 0",
                })
            } else {
                Ok(())
            }
        }
        if let Some(n) = self.max_concurrent_connections {
            positive("max_concurrent_connections", n)?;
        }
        positive(
            "max_request_header_count",
            self.max_request_header_count as u64,
        )?;
        positive(
            "max_request_headers_total_size",
            self.max_request_headers_total_size as u64,
        )?;
        positive("max_request_line_size", self.max_request_line_size as u64)?;
        if let Some(n) = self.max_request_buffer_size {
            positive("max_request_buffer_size", n as u64)?;
            if n < self.max_request_line_size {
                return Err(OptionsError::Invalid {
                    name: "max_request_buffer_size",
                    reason: "must be at least max_request_line_size",
                });
            }
            if n < self.max_request_headers_total_size {
                return Err(OptionsError::Invalid {
                    name: "max_request_buffer_size",
                    reason: "must be at least max_request_headers_total_size",
                });
            }
        }
        if self.keep_alive_timeout.is_zero() {
            return Err(OptionsError::Invalid {
                name: "keep_alive_timeout",
                reason: "must be greater than 0",
            });
        }
        if self.request_headers_timeout.is_zero() {
            return Err(OptionsError::Invalid {
                name: "request_headers_timeout",
                reason: "must be greater than 0",
            });
        }
        if let Some(r) = &self.min_request_body_data_rate {
            r.validate("min_request_body_data_rate")?;
        }
        if let Some(r) = &self.min_response_data_rate {
            r.validate("min_response_data_rate")?;
        }
        self.http2.validate()
    }
}

/// HTTP/2 limits (Kestrel's `Http2Limits`). Data for now: the HTTP/2 driver
/// maps every one of them onto its codec.
#[derive(Debug, Clone, PartialEq)]
pub struct Http2Limits {
    /// Concurrent streams per connection. Default 100.
    pub max_streams_per_connection: u32,
    /// HPACK dynamic table size. Default 4096.
    pub header_table_size: u32,
    /// Largest frame payload the server accepts. Default 16,384 (2^14 ..= 2^24-1).
    pub max_frame_size: u32,
    /// Largest request header field (name + value). Default 32 KiB.
    pub max_request_header_field_size: u32,
    /// Connection-level receive window. Default 1 MiB (65,535 ..= 2^31-1).
    pub initial_connection_window_size: u32,
    /// Stream-level receive window. Default 768 KiB (65,535 ..= 2^31-1).
    pub initial_stream_window_size: u32,
    /// Idle time before the server pings the client; `None` = never (default).
    pub keep_alive_ping_delay: Option<Duration>,
    /// How long to wait for a ping's answer before closing. Default 20 s.
    pub keep_alive_ping_timeout: Duration,
    /// Send `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1` and accept RFC 8441
    /// extended CONNECT requests (WebSockets over HTTP/2). Default on.
    /// Not one of Kestrel's `Http2Limits`: Kestrel (.NET 7+) has no such switch.
    pub enable_connect_protocol: bool,
    /// PING and SETTINGS frames (those asking for an ACK) a client may send
    /// within one second; one more closes the connection with GOAWAY
    /// ENHANCE_YOUR_CALM. Default 1,000; `None` = no limit (as in Kestrel,
    /// which has none). Not one of Kestrel's `Http2Limits`.
    pub max_control_frames_per_second: Option<u32>,
}

impl Default for Http2Limits {
    fn default() -> Self {
        Http2Limits {
            max_streams_per_connection: 100,
            header_table_size: 4096,
            max_frame_size: 16 * 1024,
            max_request_header_field_size: 32 * 1024,
            initial_connection_window_size: 1024 * 1024,
            initial_stream_window_size: 768 * 1024,
            keep_alive_ping_delay: None,
            keep_alive_ping_timeout: Duration::from_secs(20),
            enable_connect_protocol: true,
            max_control_frames_per_second: Some(1_000),
        }
    }
}

impl Http2Limits {
    /// Check the ranges Kestrel enforces.
    pub fn validate(&self) -> Result<(), OptionsError> {
        const MAX_WINDOW: u32 = (1 << 31) - 1;
        let invalid = |name, reason| Err(OptionsError::Invalid { name, reason });
        if self.max_streams_per_connection == 0 {
            return invalid("http2.max_streams_per_connection", "must be greater than 0");
        }
        if !(1 << 14..(1 << 24)).contains(&self.max_frame_size) {
            return invalid("http2.max_frame_size", "must be between 2^14 and 2^24-1");
        }
        if self.max_request_header_field_size == 0 {
            return invalid(
                "http2.max_request_header_field_size",
                "must be greater than 0",
            );
        }
        if !(65_535..=MAX_WINDOW).contains(&self.initial_connection_window_size) {
            return invalid(
                "http2.initial_connection_window_size",
                "must be between 65,535 and 2^31-1",
            );
        }
        if !(65_535..=MAX_WINDOW).contains(&self.initial_stream_window_size) {
            return invalid(
                "http2.initial_stream_window_size",
                "must be between 65,535 and 2^31-1",
            );
        }
        if let Some(d) = self.keep_alive_ping_delay {
            if d < Duration::from_secs(1) {
                return invalid("http2.keep_alive_ping_delay", "must be at least 1 s");
            }
        }
        if self.keep_alive_ping_timeout.is_zero() {
            return invalid("http2.keep_alive_ping_timeout", "must be greater than 0");
        }
        if self.max_control_frames_per_second == Some(0) {
            return invalid(
                "http2.max_control_frames_per_second",
                "must be greater than 0 (None turns the limit off)",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_kestrel() {
        let l = ServerLimits::default();
        assert_eq!(l.max_concurrent_connections, None);
        assert_eq!(l.max_concurrent_upgraded_connections, None);
        assert_eq!(l.max_request_body_size, Some(30_000_000));
        assert_eq!(l.max_request_buffer_size, Some(1_048_576));
        assert_eq!(l.max_request_header_count, 100);
        assert_eq!(l.max_request_headers_total_size, 32_768);
        assert_eq!(l.max_request_line_size, 8_192);
        assert_eq!(l.max_response_buffer_size, Some(65_536));
        assert_eq!(l.keep_alive_timeout, Duration::from_secs(130));
        assert_eq!(l.request_headers_timeout, Duration::from_secs(30));
        let rate = l.min_request_body_data_rate.expect("on by default");
        assert_eq!(rate.bytes_per_second, 240.0);
        assert_eq!(rate.grace_period, Duration::from_secs(5));
        assert_eq!(l.min_response_data_rate, Some(rate));
        let h2 = l.http2;
        assert_eq!(h2.max_streams_per_connection, 100);
        assert_eq!(h2.header_table_size, 4096);
        assert_eq!(h2.max_frame_size, 16_384);
        assert_eq!(h2.max_request_header_field_size, 32_768);
        assert_eq!(h2.initial_connection_window_size, 1_048_576);
        assert_eq!(h2.initial_stream_window_size, 786_432);
        assert_eq!(h2.keep_alive_ping_delay, None);
        assert_eq!(h2.keep_alive_ping_timeout, Duration::from_secs(20));
        ServerLimits::default()
            .validate()
            .expect("defaults are valid");
    }

    #[test]
    fn buffer_must_hold_line_and_headers() {
        let l = ServerLimits {
            max_request_buffer_size: Some(4096),
            ..Default::default()
        };
        let err = l.validate().unwrap_err();
        assert!(err.to_string().contains("max_request_buffer_size"), "{err}");
        let l = ServerLimits {
            max_request_buffer_size: Some(16 * 1024),
            max_request_line_size: 1024,
            ..Default::default()
        };
        assert!(
            l.validate().is_err(),
            "headers total 32 KiB > buffer 16 KiB"
        );
        let l = ServerLimits {
            max_request_buffer_size: None,
            ..Default::default()
        };
        l.validate().expect("no buffer limit is fine");
    }

    #[test]
    fn rates_and_http2_ranges() {
        assert!(MinDataRate::new(0.0, Duration::from_secs(5)).is_err());
        assert!(MinDataRate::new(100.0, Duration::from_secs(1)).is_err());
        assert!(MinDataRate::new(100.0, Duration::from_millis(1001)).is_ok());
        let mut l = ServerLimits::default();
        l.http2.max_frame_size = 1 << 24;
        assert!(l.validate().is_err());
        l.http2.max_frame_size = (1 << 24) - 1;
        l.validate().expect("upper bound is valid");
        l.http2.initial_stream_window_size = 65_534;
        assert!(l.validate().is_err());
        l.http2.initial_stream_window_size = 65_535;
        l.http2.max_control_frames_per_second = Some(0);
        assert!(l.validate().is_err());
        l.http2.max_control_frames_per_second = None;
        l.validate().expect("no control frame limit is valid");
        l.http2.max_streams_per_connection = 0;
        assert!(l.validate().is_err());
        let l = ServerLimits {
            max_concurrent_connections: Some(0),
            ..Default::default()
        };
        assert!(l.validate().is_err());
    }
}
