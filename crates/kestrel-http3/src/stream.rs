//! One request stream, on the shared request core: the head checked and
//! turned into an `http::Request` with its features, the app called (with
//! `100 Continue`, resets and data-rate timeouts), the response sent by
//! [`crate::respond`], then an unread request body drained.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::Bytes;
use h3::error::Code;
use h3::server::{RequestResolver, RequestStream};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use kestrel_core::app::CatchUnwind;
use kestrel_core::connection::{ConnectionId, TimeoutReason};
use kestrel_core::heartbeat::{Clock, DateSlot};
use kestrel_core::request_limits::LimitsCell;
use kestrel_core::{
    events, Application, BoxError, ConnectionInfo, RequestAborted, RequestBody, RequestFeatures,
    StreamReset,
};

use crate::body::{DriverEvent, StreamState};
use crate::config::Http3Config;
use crate::quic::{H3Conn, H3Send};
use crate::respond::{abandon, respond};

/// What every stream of a connection borrows from its driver.
pub(crate) struct StreamCtx<'a> {
    pub(crate) config: &'a Http3Config,
    pub(crate) clock: &'a Clock,
    pub(crate) date: Mutex<DateSlot>,
    pub(crate) info: Option<&'a ConnectionInfo>,
    pub(crate) id: ConnectionId,
    /// `http.server.request.duration` / active requests, with
    /// `network.protocol.version` "3" (zero-sized without `metrics`).
    pub(crate) metrics: Mutex<kestrel_core::metrics::RequestMetrics>,
    /// Streams whose minimum data rates the connection checks.
    pub(crate) rated: Mutex<Vec<Arc<StreamState>>>,
}

pub(crate) type Send = RequestStream<H3Send, Bytes>;

impl StreamCtx<'_> {
    pub(crate) fn date(&self) -> HeaderValue {
        match self.date.lock() {
            Ok(mut slot) => slot.get(self.clock.date()).clone(),
            Err(_) => self.clock.date().get(),
        }
    }

    /// A response without a body, with `Date` and `Server`.
    pub(crate) fn simple(&self, status: StatusCode) -> Response<()> {
        let mut r = Response::new(());
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        h.insert(header::DATE, self.date());
        if self.config.add_server_header {
            h.insert(header::SERVER, HeaderValue::from_static("Kestrel"));
        }
        r
    }

    /// Send a response without a body and finish the stream.
    pub(crate) async fn send_simple(&self, send: &mut Send, status: StatusCode, stream_id: u64) {
        let sent = async {
            send.send_response(self.simple(status)).await?;
            send.finish().await
        };
        if let Err(e) = sent.await {
            tracing::debug!(target: "kestrel::http3", connection_id = %self.id, stream_id, error = %e, "sending a response failed");
        }
    }

    pub(crate) fn bad_request(&self, stream_id: u64, status: StatusCode, reason: &str) {
        events::connection_bad_request(
            self.id,
            u32::try_from(stream_id).ok(),
            reason,
            status.as_u16(),
            &reason,
        );
    }

    /// Check the decoded head against the limits h3 does not enforce: the
    /// number of fields, one field's size, and the total (h3 checks
    /// `SETTINGS_MAX_FIELD_SECTION_SIZE` on the encoded size).
    fn check_head(&self, headers: &HeaderMap, stream_id: u64) -> Result<(), StatusCode> {
        let c = self.config;
        let too_large = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
        if headers.len() > c.max_request_header_count {
            self.bad_request(stream_id, too_large, "TooManyHeaders");
            return Err(too_large);
        }
        let mut total = 0usize;
        for (name, value) in headers {
            let size = name.as_str().len() + value.len();
            total += size;
            if size > c.max_request_header_field_size {
                self.bad_request(stream_id, too_large, "HeaderFieldTooLarge");
                return Err(too_large);
            }
        }
        if total > c.max_request_headers_total_size {
            self.bad_request(stream_id, too_large, "HeadersExceedMaxTotalSize");
            return Err(too_large);
        }
        Ok(())
    }
}

/// One request stream counted in `kestrel.queued_requests` while it lives.
struct Queued;

impl Queued {
    fn new() -> Queued {
        kestrel_core::metrics::queued_request("3", 1.0);
        Queued
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        kestrel_core::metrics::queued_request("3", -1.0);
    }
}

enum AppEvent<R> {
    Done(R),
    AppReset(u32),
    SendContinue,
    TimedOut(TimeoutReason),
}

/// Serve one request stream to completion.
pub(crate) async fn serve_request<A: Application>(
    app: &A,
    ctx: &StreamCtx<'_>,
    resolver: RequestResolver<H3Conn, Bytes>,
) {
    // `kestrel.queued_requests`: accepted, its head not yet with the app.
    let queued = Queued::new();
    let timeout = ctx.config.request_headers_timeout;
    let resolved = tokio::time::timeout(timeout, resolver.resolve_request()).await;
    drop(queued);
    let (req, stream) = match resolved {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            // A malformed head, a field section over the limit, or a stream
            // the client gave up on: h3 answered (or reset) already.
            tracing::debug!(target: "kestrel::http3", connection_id = %ctx.id, error = %e, "request stream refused");
            return;
        }
        Err(_) => {
            // The head did not arrive in time: the stream (dropped with the
            // resolver) is reset and stopped with H3_REQUEST_CANCELLED.
            tracing::debug!(target: "kestrel::http3", connection_id = %ctx.id, ?timeout, reason = "RequestHeadersTimeout", "the request head did not arrive in time; the stream is abandoned");
            return;
        }
    };
    let stream_id = stream.id().into_inner();
    let (mut send, recv) = stream.split();
    if let Err(status) = ctx.check_head(req.headers(), stream_id) {
        ctx.send_simple(&mut send, status, stream_id).await;
        return;
    }
    let (mut parts, ()) = req.into_parts();
    // In HTTP/3 `:authority` stands for Host (Kestrel copies it over Host).
    if let Some(authority) = parts.uri.authority() {
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(header::HOST, v);
        }
    }
    let declared_len = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    let values = ctx.config.limit_values();
    let cell = LimitsCell::new(values);
    let limits = cell.begin(1, values);
    let span = events::request_span(
        &parts.method,
        parts.uri.path(),
        Version::HTTP_3,
        ctx.id,
        u32::try_from(stream_id).ok(),
    );
    // `Expect: 100-continue` (RFC 9110 §10.1.1): the interim response goes
    // out when the app first waits for the body.
    let expect_continue = parts
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let state = StreamState::new(stream_id, recv, cell, declared_len, expect_continue, span);
    if values.min_request_body_data_rate.is_some() || values.min_response_data_rate.is_some() {
        // The app may turn a rate off for its request, not on: a stream
        // without either is never checked.
        lock(&ctx.rated).push(state.clone());
    }
    parts.version = Version::HTTP_3;
    parts.extensions.insert(
        RequestFeatures::new()
            .with_connection(ctx.info.cloned())
            .with_limits(limits)
            .with_aborted(RequestAborted::new(
                state.clone() as Arc<dyn kestrel_core::aborted::AbortSource>
            ))
            .with_reset(StreamReset::new(state.clone())),
    );
    let is_head = parts.method == Method::HEAD;
    let method = parts.method.clone();
    let start = ctx.clock.now();
    if let Ok(mut m) = ctx.metrics.lock() {
        m.started(&method);
    }
    let body = RequestBody::from_source(state.clone(), 0);
    let mut fut = CatchUnwind::new(app.call(Request::from_parts(parts, body)));
    let event = loop {
        let event = poll_fn(|cx| {
            match state.poll_driver(cx) {
                Some(DriverEvent::Reset(code)) => return Poll::Ready(AppEvent::AppReset(code)),
                Some(DriverEvent::TimedOut(reason)) => {
                    return Poll::Ready(AppEvent::TimedOut(reason))
                }
                Some(DriverEvent::SendContinue) => return Poll::Ready(AppEvent::SendContinue),
                None => {}
            }
            let _in_span = state.span().enter();
            Pin::new(&mut fut).poll(cx).map(AppEvent::Done)
        })
        .await;
        if let AppEvent::SendContinue = event {
            let mut interim = Response::new(());
            *interim.status_mut() = StatusCode::CONTINUE;
            if let Err(e) = send.send_response(interim).await {
                tracing::debug!(target: "kestrel::http3", connection_id = %ctx.id, stream_id, error = %e, "sending 100 Continue failed");
            }
            continue;
        }
        break event;
    };
    drop(fut);
    let status = match event {
        AppEvent::SendContinue => StatusCode::CONTINUE,
        AppEvent::TimedOut(reason) => {
            abandon(ctx, &mut send, &state, stream_id, reason);
            StatusCode::REQUEST_TIMEOUT
        }
        AppEvent::AppReset(code) => {
            events::http3_stream_abort(
                ctx.id,
                stream_id,
                u64::from(code),
                &"requested by the application",
            );
            send.stop_stream(Code::from(u64::from(code)));
            state.abort();
            StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
        }
        AppEvent::Done(result) => {
            let result = match result {
                Ok(r) => r,
                Err(panic) => Err(Box::new(panic) as BoxError),
            };
            if state.is_too_large() {
                // The body broke the size limit: that decides the answer,
                // whatever the app made of it.
                ctx.bad_request(
                    stream_id,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestBodyTooLarge",
                );
                ctx.send_simple(&mut send, StatusCode::PAYLOAD_TOO_LARGE, stream_id)
                    .await;
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                match result {
                    Ok(resp) => {
                        let status = resp.status();
                        let timed_out = {
                            let mut responding =
                                pin!(respond(ctx, &mut send, &state, resp, is_head, stream_id));
                            poll_fn(|cx| {
                                if let Some(reason) = state.poll_timed_out(cx) {
                                    return Poll::Ready(Some(reason));
                                }
                                responding.as_mut().poll(cx).map(|()| None)
                            })
                            .await
                        };
                        if let Some(reason) = timed_out {
                            abandon(ctx, &mut send, &state, stream_id, reason);
                        }
                        status
                    }
                    Err(e) => {
                        events::application_error(ctx.id, u32::try_from(stream_id).ok(), &e);
                        ctx.send_simple(&mut send, StatusCode::INTERNAL_SERVER_ERROR, stream_id)
                            .await;
                        StatusCode::INTERNAL_SERVER_ERROR
                    }
                }
            }
        }
    };
    let unread = state.complete();
    if let Ok(mut m) = ctx.metrics.lock() {
        m.stopped(
            &method,
            status,
            ctx.clock.now().saturating_duration_since(start),
        );
    }
    if let Some(recv) = unread {
        drain(ctx, recv, stream_id).await;
    }
}

/// How long a complete response's stream waits for the rest of a request
/// body the app did not read, and how much of it it reads (as HTTP/2's
/// drain, Kestrel's): a late FIN, or a short remainder, then needs no
/// STOP_SENDING.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
const DRAIN_MAX_BYTES: usize = 64 * 1024;

/// The response is complete and the request body was not read to its end:
/// read and discard what the client still sends, up to [`DRAIN_MAX_BYTES`]
/// within [`DRAIN_TIMEOUT`]; past either, ask it to stop with H3_NO_ERROR
/// (RFC 9114 §4.1.1: "the server ... MAY abort reading the request stream").
async fn drain(ctx: &StreamCtx<'_>, mut recv: crate::body::Recv, stream_id: u64) {
    let ended = tokio::time::timeout(DRAIN_TIMEOUT, async {
        let mut read = 0usize;
        loop {
            match recv.recv_data().await {
                Ok(Some(data)) => {
                    read += bytes::Buf::remaining(&data);
                    if read > DRAIN_MAX_BYTES {
                        return false;
                    }
                }
                // The end (trailers may follow: read them too), or the
                // client reset it: nothing to stop.
                Ok(None) => {
                    let _ = recv.recv_trailers().await;
                    return true;
                }
                Err(_) => return true,
            }
        }
    })
    .await
    .unwrap_or(false);
    if !ended {
        tracing::debug!(target: "kestrel::http3", connection_id = %ctx.id, stream_id, "the request body was not read to its end: STOP_SENDING H3_NO_ERROR");
        recv.stop_sending(Code::H3_NO_ERROR);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
