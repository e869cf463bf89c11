//! Kestrel's log events, one function per event id, called by every crate.
//!
//! Each event is a `tracing` event whose fields `event_id` and `event_name`
//! carry Kestrel's `KestrelTrace` id and name, on the target Kestrel's
//! category maps to (`kestrel`, `kestrel::connections`,
//! `kestrel::bad_requests`, `kestrel::http2`, `kestrel::http3`). Nothing outside this module
//! writes `event_id = …`: a new event gets a function here, so ids, names,
//! targets and levels stay in one table.
//!
//! | id | name | target | level |
//! |---|---|---|---|
//! | 1 | ConnectionStart | kestrel::connections | debug |
//! | 2 | ConnectionStop | kestrel::connections | debug |
//! | 9 | ConnectionKeepAlive | kestrel::connections | debug |
//! | 13 | ApplicationError | kestrel | error |
//! | 16 | NotAllConnectionsClosedGracefully | kestrel::connections | debug |
//! | 17 | ConnectionBadRequest | kestrel::bad_requests | debug |
//! | 21 | NotAllConnectionsAborted | kestrel::connections | debug |
//! | 22 | HeartbeatSlow | kestrel | warn |
//! | 24 | ConnectionRejected | kestrel::connections | warn |
//! | 27 | RequestBodyMinimumDataRateNotSatisfied | kestrel::bad_requests | debug |
//! | 28 | ResponseMinimumDataRateNotSatisfied | kestrel::bad_requests | debug |
//! | 29 | Http2ConnectionError | kestrel::http2 | debug |
//! | 30 | Http2StreamError | kestrel::http2 | debug |
//! | 33 | RequestBodyDrainTimedOut | kestrel | debug |
//! | 35 | Http2StreamResetAbort | kestrel::http2 | debug |
//! | 36 | Http2ConnectionClosing | kestrel::http2 | debug |
//! | 41 | InvalidResponseHeaderRemoved | kestrel | debug |
//! | 42 | Http3ConnectionError | kestrel::http3 | debug |
//! | 44 | Http3ConnectionClosed | kestrel::http3 | debug |
//! | 45 | Http3StreamAbort | kestrel::http3 | debug |
//! | 48 | Http2ConnectionClosed | kestrel::http2 | debug |
//! | 54 | PossibleInvalidHttpVersionDetected | kestrel::bad_requests | debug |
//! | 64 | Http2TooManyEnhanceYourCalms | kestrel::http2 | debug |
//! | 66 | RequestAborted | kestrel | debug |
//!
//! Where an event concerns one HTTP/2 (or HTTP/3) stream, `stream_id` names
//! it; HTTP/1 passes `None` and the field is left out.
//!
//! Every request also runs in a `request` span ([`request_span`]), entered
//! around each poll of the application's future, so that a subscriber can
//! tie the app's own events to the request, connection and stream.

use std::fmt::Display;
use std::time::Duration;

use http::{Method, Version};

use crate::connection::ConnectionId;

/// 1: a connection was accepted and is about to be served.
pub fn connection_start(id: ConnectionId, remote: &dyn Display, endpoint: &dyn Display) {
    tracing::debug!(target: "kestrel::connections", event_id = 1u32, event_name = "ConnectionStart", connection_id = %id, remote = %remote, endpoint = %endpoint, "connection started");
}

/// 2: a connection ended.
pub fn connection_stop(id: ConnectionId) {
    tracing::debug!(target: "kestrel::connections", event_id = 2u32, event_name = "ConnectionStop", connection_id = %id, "connection stopped");
}

/// 9: the keep-alive timeout closed an idle connection.
pub fn connection_keep_alive(id: ConnectionId) {
    tracing::debug!(target: "kestrel::connections", event_id = 9u32, event_name = "ConnectionKeepAlive", connection_id = %id, "keep-alive timeout: closing the idle connection");
}

/// 13: the application failed (an error, a panic, or a malformed response).
pub fn application_error(id: ConnectionId, stream_id: Option<u32>, error: &dyn Display) {
    tracing::error!(target: "kestrel", event_id = 13u32, event_name = "ApplicationError", connection_id = %id, stream_id, error = %error, "an unhandled error was raised by the application");
}

/// 16: the shutdown timeout passed with connections still open.
pub fn not_all_connections_closed_gracefully(remaining: usize) {
    tracing::debug!(target: "kestrel::connections", event_id = 16u32, event_name = "NotAllConnectionsClosedGracefully", remaining, "some connections failed to close gracefully during server shutdown");
}

/// 17: a request was rejected with `status`; `reason` is the rejection's name.
pub fn connection_bad_request(
    id: ConnectionId,
    stream_id: Option<u32>,
    reason: &str,
    status: u16,
    message: &dyn Display,
) {
    tracing::debug!(target: "kestrel::bad_requests", event_id = 17u32, event_name = "ConnectionBadRequest", connection_id = %id, stream_id, reason, status, "bad request: {message}");
}

/// 21: connections were still running a second after being aborted.
pub fn not_all_connections_aborted() {
    tracing::debug!(target: "kestrel::connections", event_id = 21u32, event_name = "NotAllConnectionsAborted", "some connections failed to abort during server shutdown");
}

/// 22: a heartbeat took longer than its interval.
pub fn heartbeat_slow(took: Duration, interval: Duration) {
    tracing::warn!(target: "kestrel", event_id = 22u32, event_name = "HeartbeatSlow", took_ms = took.as_millis() as u64, interval_ms = interval.as_millis() as u64, "heartbeat took longer than the interval");
}

/// 24: a connection was refused (`MaxConcurrentConnections`).
pub fn connection_rejected(id: ConnectionId, why: &dyn Display) {
    tracing::warn!(target: "kestrel::connections", event_id = 24u32, event_name = "ConnectionRejected", connection_id = %id, "Connection id \"{id}\" rejected because {why}.");
}

/// 27: the request body arrived below the minimum data rate.
pub fn request_body_minimum_data_rate_not_satisfied(id: ConnectionId, stream_id: Option<u32>) {
    tracing::debug!(target: "kestrel::bad_requests", event_id = 27u32, event_name = "RequestBodyMinimumDataRateNotSatisfied", connection_id = %id, stream_id, "the request body arrived below the minimum data rate");
}

/// 28: the client read the response below the minimum data rate.
pub fn response_minimum_data_rate_not_satisfied(id: ConnectionId, stream_id: Option<u32>) {
    tracing::debug!(target: "kestrel::bad_requests", event_id = 28u32, event_name = "ResponseMinimumDataRateNotSatisfied", connection_id = %id, stream_id, "the client read the response below the minimum data rate; aborting the connection");
}

/// 29: an HTTP/2 connection failed (`during_handshake`: before the preface completed).
pub fn http2_connection_error(id: ConnectionId, error: &dyn Display, during_handshake: bool) {
    tracing::debug!(target: "kestrel::http2", event_id = 29u32, event_name = "Http2ConnectionError", connection_id = %id, error = %error, during_handshake, "HTTP/2 connection error");
}

/// 30: an HTTP/2 stream was reset for a protocol error.
pub fn http2_stream_error(
    id: ConnectionId,
    stream_id: u32,
    error_code: u32,
    message: &dyn Display,
) {
    tracing::debug!(target: "kestrel::http2", event_id = 30u32, event_name = "Http2StreamError", connection_id = %id, stream_id, error_code, "HTTP/2 stream error: {message}");
}

/// 33: the unread request body could not be drained within the drain timeout.
pub fn request_body_drain_timed_out(id: ConnectionId) {
    tracing::debug!(target: "kestrel", event_id = 33u32, event_name = "RequestBodyDrainTimedOut", connection_id = %id, "the unread request body could not be drained in time; closing the connection");
}

/// 35: the server reset an HTTP/2 stream (`why` says what asked for it).
pub fn http2_stream_reset_abort(
    id: ConnectionId,
    stream_id: u32,
    error_code: u32,
    why: &dyn Display,
) {
    tracing::debug!(target: "kestrel::http2", event_id = 35u32, event_name = "Http2StreamResetAbort", connection_id = %id, stream_id, error_code, "trace id \"{id}:{stream_id}\": HTTP/2 stream reset, {why}");
}

/// 36: an HTTP/2 connection is closing: with an error code (a GOAWAY for an
/// error), or gracefully with `active_streams` still to finish.
pub fn http2_connection_closing(
    id: ConnectionId,
    error_code: Option<u32>,
    active_streams: Option<usize>,
) {
    tracing::debug!(target: "kestrel::http2", event_id = 36u32, event_name = "Http2ConnectionClosing", connection_id = %id, error_code, active_streams, "HTTP/2 connection closing");
}

/// 41: a connection-specific response header was removed (HTTP/2 and HTTP/3).
pub fn invalid_response_header_removed(id: ConnectionId, stream_id: u32, header: &str) {
    tracing::debug!(target: "kestrel", event_id = 41u32, event_name = "InvalidResponseHeaderRemoved", connection_id = %id, stream_id, header, "one or more of the following response headers have been removed because they are invalid for HTTP/2 and HTTP/3 responses: 'Connection', 'Transfer-Encoding', 'Keep-Alive', 'Upgrade' and 'Proxy-Connection'");
}

/// 42: an HTTP/3 connection failed.
pub fn http3_connection_error(id: ConnectionId, error: &dyn Display) {
    tracing::debug!(target: "kestrel::http3", event_id = 42u32, event_name = "Http3ConnectionError", connection_id = %id, error = %error, "HTTP/3 connection error");
}

/// 44: an HTTP/3 connection closed.
pub fn http3_connection_closed(id: ConnectionId) {
    tracing::debug!(target: "kestrel::http3", event_id = 44u32, event_name = "Http3ConnectionClosed", connection_id = %id, "HTTP/3 connection closed");
}

/// 45: an HTTP/3 stream was aborted (reset by the server, or it failed
/// before its request was complete), with the `H3_*` error code.
pub fn http3_stream_abort(id: ConnectionId, stream_id: u64, error_code: u64, why: &dyn Display) {
    tracing::debug!(target: "kestrel::http3", event_id = 45u32, event_name = "Http3StreamAbort", connection_id = %id, stream_id, error_code, "trace id \"{id}:{stream_id}\": HTTP/3 stream aborted, {why}");
}

/// 48: an HTTP/2 connection closed.
pub fn http2_connection_closed(id: ConnectionId, last_stream_id: u32) {
    tracing::debug!(target: "kestrel::http2", event_id = 48u32, event_name = "Http2ConnectionClosed", connection_id = %id, last_stream_id, "HTTP/2 connection closed");
}

/// 54: an HTTP/1.x request arrived on an HTTP/2-only endpoint.
pub fn possible_invalid_http_version_detected(id: ConnectionId) {
    tracing::debug!(target: "kestrel::bad_requests", event_id = 54u32, event_name = "PossibleInvalidHttpVersionDetected", connection_id = %id, "Possible invalid HTTP version detected. Expected HTTP/2 but received HTTP/1.x.");
}

/// 64: a connection was refused too many streams with ENHANCE_YOUR_CALM.
pub fn http2_too_many_enhance_your_calms(id: ConnectionId, count: u32) {
    tracing::debug!(target: "kestrel::http2", event_id = 64u32, event_name = "Http2TooManyEnhanceYourCalms", connection_id = %id, count, "the connection exceeded the maximum number of streams refused with ENHANCE_YOUR_CALM");
}

/// 66: a request's `RequestAborted` fired (`why` says what happened).
pub fn request_aborted(id: Option<ConnectionId>, stream_id: Option<u32>, why: &str) {
    let id = id.map(tracing::field::display);
    tracing::debug!(target: "kestrel", event_id = 66u32, event_name = "RequestAborted", connection_id = id, stream_id, reason = why, "the request was aborted");
}

/// The span of one request (debug level, target `kestrel`): its method,
/// path, protocol version, connection id and, for HTTP/2 and HTTP/3, its
/// stream id. Every driver builds its request span here; a disabled span
/// costs next to nothing.
#[inline]
pub fn request_span(
    method: &Method,
    path: &str,
    version: Version,
    id: ConnectionId,
    stream_id: Option<u32>,
) -> tracing::Span {
    tracing::debug_span!(
        target: "kestrel",
        "request",
        method = %method,
        path = %path,
        protocol = ?version,
        connection_id = %id,
        stream_id,
    )
}
