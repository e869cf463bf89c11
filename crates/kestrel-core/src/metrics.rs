//! Kestrel's metrics (meter `Microsoft.AspNetCore.Server.Kestrel`), recorded
//! through the [`metrics`](https://docs.rs/metrics) facade so that any
//! exporter works. Compiled in with the `metrics` cargo feature; without it
//! every function here is an empty inline function and [`ENABLED`] is false,
//! so callers skip even the clock reads: zero cost.
//!
//! | Instrument | Kind, unit | Tags |
//! |---|---|---|
//! | `kestrel.active_connections` | gauge (up/down), `{connection}` | common |
//! | `kestrel.connection.duration` | histogram, `s` | common + `network.protocol.name`, `network.protocol.version`, `error.type` |
//! | `kestrel.rejected_connections` | counter, `{connection}` | common |
//! | `kestrel.queued_connections` | gauge, `{connection}` | common (always 0: connections are served as they are accepted) |
//! | `kestrel.queued_requests` | gauge, `{request}` | `network.protocol.name`, `network.protocol.version` (HTTP/3: request streams accepted whose head has not reached the app yet; HTTP/2 streams start at once, so it records none) |
//! | `kestrel.upgraded_connections` | gauge, `{connection}` | — |
//! | `kestrel.tls_handshake.duration` | histogram, `s` | common + `tls.protocol.version`, `error.type` |
//! | `kestrel.active_tls_handshakes` | gauge, `{handshake}` | common |
//! | `http.server.request.duration` | histogram, `s` | `http.request.method`, `http.response.status_code`, `network.protocol.name`, `network.protocol.version` |
//! | `http.server.active_requests` | gauge, `{request}` | `http.request.method` |
//!
//! Common tags: `server.address`, `server.port`, `network.type` (`ipv4`/`ipv6`),
//! `network.transport` (`tcp`/`unix`, `udp` for QUIC).

use std::time::Duration;

use kestrel_transport::Address;

use crate::connection::ConnectionEndReason;

/// Whether metrics are compiled in.
pub const ENABLED: bool = cfg!(feature = "metrics");

/// The common tags of an endpoint, computed once per listener.
#[derive(Debug, Clone, Default)]
pub struct EndpointTags {
    #[cfg(feature = "metrics")]
    labels: std::sync::Arc<[metrics::Label]>,
}

impl EndpointTags {
    /// The tags of a listener bound at `local`.
    pub fn new(local: &Address) -> Self {
        Self::with_transport(local, "tcp")
    }

    /// The tags of a QUIC listener bound at `local` (`network.transport`
    /// `udp`, as Kestrel tags QUIC).
    pub fn quic(local: &Address) -> Self {
        Self::with_transport(local, "udp")
    }

    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    fn with_transport(local: &Address, ip_transport: &'static str) -> Self {
        #[cfg(feature = "metrics")]
        {
            let mut labels = Vec::with_capacity(4);
            match local {
                Address::Ip(a) => {
                    labels.push(metrics::Label::new("server.address", a.ip().to_string()));
                    labels.push(metrics::Label::new("server.port", a.port().to_string()));
                    labels.push(metrics::Label::new(
                        "network.type",
                        if a.is_ipv4() { "ipv4" } else { "ipv6" },
                    ));
                    labels.push(metrics::Label::new("network.transport", ip_transport));
                }
                Address::Unix(p) => {
                    labels.push(metrics::Label::new(
                        "server.address",
                        p.display().to_string(),
                    ));
                    labels.push(metrics::Label::new("network.transport", "unix"));
                }
                other => labels.push(metrics::Label::new("server.address", other.to_string())),
            }
            EndpointTags {
                labels: labels.into(),
            }
        }
        #[cfg(not(feature = "metrics"))]
        EndpointTags {}
    }

    #[cfg(feature = "metrics")]
    fn with(&self, extra: &[(&'static str, metrics::SharedString)]) -> Vec<metrics::Label> {
        let mut v: Vec<metrics::Label> = self.labels.to_vec();
        v.extend(
            extra
                .iter()
                .map(|(k, val)| metrics::Label::new(*k, val.clone())),
        );
        v
    }
}

/// A connection was accepted and admitted.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub fn connection_started(tags: &EndpointTags) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("kestrel.active_connections", tags.labels.to_vec()).increment(1.0);
}

/// A connection ended after `elapsed`, having spoken `protocol_version`
/// (`"1.1"`, `"2"`), for `reason` if it did not end gracefully.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub fn connection_stopped(
    tags: &EndpointTags,
    elapsed: Duration,
    protocol_version: Option<&'static str>,
    reason: Option<ConnectionEndReason>,
) {
    #[cfg(feature = "metrics")]
    {
        metrics::gauge!("kestrel.active_connections", tags.labels.to_vec()).decrement(1.0);
        let mut extra: Vec<(&'static str, metrics::SharedString)> = Vec::with_capacity(3);
        if let Some(v) = protocol_version {
            extra.push(("network.protocol.name", "http".into()));
            extra.push(("network.protocol.version", v.into()));
        }
        if let Some(r) = reason {
            extra.push(("error.type", r.as_str().into()));
        }
        metrics::histogram!("kestrel.connection.duration", tags.with(&extra))
            .record(elapsed.as_secs_f64());
    }
}

/// A connection was refused under `max_concurrent_connections`. As in
/// Kestrel, it also ends with a duration (closed at once) whose `error.type`
/// is `max_concurrent_connections_exceeded`.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub fn connection_rejected(tags: &EndpointTags) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("kestrel.rejected_connections", tags.labels.to_vec()).increment(1);
        let reason = ConnectionEndReason::MaxConcurrentConnectionsExceeded;
        let extra = [("error.type", metrics::SharedString::from(reason.as_str()))];
        metrics::histogram!("kestrel.connection.duration", tags.with(&extra)).record(0.0);
    }
}

/// The queued-request count of `protocol_version` changed by `delta` (+1
/// when a request stream is accepted, -1 when its request reaches the app
/// or the stream ends first).
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub fn queued_request(protocol_version: &'static str, delta: f64) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("kestrel.queued_requests", "network.protocol.name" => "http", "network.protocol.version" => protocol_version).increment(delta);
}

/// The upgraded-connection count changed by `delta` (+1 or -1).
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub fn upgraded_connection(delta: f64) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("kestrel.upgraded_connections").increment(delta);
}

/// A TLS handshake started.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub fn tls_handshake_started(tags: &EndpointTags) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("kestrel.active_tls_handshakes", tags.labels.to_vec()).increment(1.0);
}

/// A TLS handshake ended after `elapsed` with `tls_version` (e.g. `"1.3"`),
/// or failed.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub fn tls_handshake_stopped(
    tags: &EndpointTags,
    elapsed: Duration,
    tls_version: Option<&'static str>,
    failed: bool,
) {
    #[cfg(feature = "metrics")]
    {
        metrics::gauge!("kestrel.active_tls_handshakes", tags.labels.to_vec()).decrement(1.0);
        let mut extra: Vec<(&'static str, metrics::SharedString)> = Vec::with_capacity(2);
        if let Some(v) = tls_version {
            extra.push(("tls.protocol.version", v.into()));
        }
        if failed {
            extra.push((
                "error.type",
                ConnectionEndReason::TlsHandshakeFailed.as_str().into(),
            ));
        }
        metrics::histogram!("kestrel.tls_handshake.duration", tags.with(&extra))
            .record(elapsed.as_secs_f64());
    }
}

#[cfg(feature = "metrics")]
const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE", "_OTHER",
];

#[cfg(feature = "metrics")]
fn method_index(method: &http::Method) -> usize {
    match *method {
        http::Method::GET => 0,
        http::Method::POST => 1,
        http::Method::PUT => 2,
        http::Method::DELETE => 3,
        http::Method::HEAD => 4,
        http::Method::OPTIONS => 5,
        http::Method::PATCH => 6,
        http::Method::CONNECT => 7,
        http::Method::TRACE => 8,
        // Unknown methods are reported as `_OTHER` (OpenTelemetry semantic conventions).
        _ => 9,
    }
}

/// Per-connection request metrics (`http.server.request.duration`,
/// `http.server.active_requests`). The registered handles are looked up once
/// per connection and label set, then reused, so a request costs two atomic
/// updates and a clock read. Zero-sized, and every method empty, without the
/// `metrics` feature.
#[derive(Default)]
pub struct RequestMetrics {
    #[cfg(feature = "metrics")]
    version: &'static str,
    #[cfg(feature = "metrics")]
    active: [Option<metrics::Gauge>; 10],
    #[cfg(feature = "metrics")]
    durations: Vec<(usize, u16, metrics::Histogram)>,
}

impl std::fmt::Debug for RequestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestMetrics").finish_non_exhaustive()
    }
}

impl RequestMetrics {
    /// Metrics for requests over `protocol_version` (`"1.1"`, `"2"`).
    #[cfg_attr(
        not(feature = "metrics"),
        allow(unused_variables, clippy::needless_update)
    )]
    pub fn new(protocol_version: &'static str) -> Self {
        RequestMetrics {
            #[cfg(feature = "metrics")]
            version: protocol_version,
            ..Default::default()
        }
    }

    /// A request started.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub fn started(&mut self, method: &http::Method) {
        #[cfg(feature = "metrics")]
        {
            let i = method_index(method);
            self.active[i]
                .get_or_insert_with(|| metrics::gauge!("http.server.active_requests", "http.request.method" => METHODS[i]))
                .increment(1.0);
        }
    }

    /// A request ended with `status` after `elapsed`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub fn stopped(&mut self, method: &http::Method, status: http::StatusCode, elapsed: Duration) {
        #[cfg(feature = "metrics")]
        {
            let i = method_index(method);
            if let Some(g) = &self.active[i] {
                g.decrement(1.0);
            }
            let code = status.as_u16();
            let version = self.version;
            let pos = match self
                .durations
                .iter()
                .position(|(m, c, _)| *m == i && *c == code)
            {
                Some(p) => p,
                None => {
                    let h = metrics::histogram!(
                        "http.server.request.duration",
                        "http.request.method" => METHODS[i],
                        "http.response.status_code" => code.to_string(),
                        "network.protocol.name" => "http",
                        "network.protocol.version" => version
                    );
                    // A connection sees few (method, status) pairs; keep the cache small.
                    if self.durations.len() >= 32 {
                        let _ = self.durations.remove(0);
                    }
                    self.durations.push((i, code, h));
                    self.durations.len() - 1
                }
            };
            self.durations[pos].2.record(elapsed.as_secs_f64());
        }
    }
}
