//! [`Http3Connection`]: serve an [`Application`] over one multiplexed (QUIC)
//! connection with h3, each request stream built on the shared request core.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use h3::error::Code;
use h3::server::{RequestResolver, RequestStream};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body;
use kestrel_core::app::{poll_body, CatchUnwind};
use kestrel_core::connection::{
    ConnectionEndReason, ConnectionGuard, ConnectionHandle, ConnectionId, Signal, TimeoutReason,
};
use kestrel_core::framing::{self, Framing, RequestFacts};
use kestrel_core::heartbeat::{Clock, DateSlot};
use kestrel_core::request_limits::LimitsCell;
use kestrel_core::runtime::AdmittedMultiplexed;
use kestrel_core::{
    events, Application, BoxError, ConnectionInfo, RequestAborted, RequestBody, RequestFeatures,
    StreamReset,
};
use kestrel_transport::multiplexed::MultiplexedConnection;

use crate::body::StreamState;
use crate::config::Http3Config;
use crate::goaway::GoawayGate;
use crate::guard::GuardedStreams;
use crate::quic::{H3Conn, H3Send};

/// Why an HTTP/3 connection ended with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Http3Error {
    /// The connection failed: a protocol error of either end, or the
    /// transport closed it (h3's error carries the `H3_*` code).
    #[error("HTTP/3 connection error: {0}")]
    Connection(#[from] h3::error::ConnectionError),
}

impl Http3Error {
    /// Why the connection ended, as Kestrel reports it (`error.type` of
    /// `kestrel.connection.duration`).
    pub fn end_reason(&self) -> Option<ConnectionEndReason> {
        match self {
            // A protocol error of either end, or the transport went away.
            Http3Error::Connection(e) if e.is_h3_no_error() => None,
            Http3Error::Connection(_) => Some(ConnectionEndReason::ProtocolError),
        }
    }
}

/// How an HTTP/3 connection ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Http3Close {
    /// The client closed it, or a graceful shutdown completed.
    Done,
    /// No request stream was open for the keep-alive timeout (the driver's
    /// own timer, or QUIC's idle timeout, which is the same value): closed
    /// with GOAWAY and H3_NO_ERROR.
    KeepAliveTimeout,
    /// The connection runtime aborted it (the shutdown timeout passed).
    Aborted,
}

impl Http3Close {
    /// Why the connection ended, as Kestrel reports it; `None` for a plain
    /// close.
    pub fn end_reason(&self) -> Option<ConnectionEndReason> {
        match self {
            Http3Close::KeepAliveTimeout => Some(ConnectionEndReason::KeepAliveTimeout),
            Http3Close::Done | Http3Close::Aborted => None,
        }
    }
}

/// An HTTP/3 connection, ready to serve an [`Application`].
pub struct Http3Connection {
    conn: MultiplexedConnection,
    config: Arc<Http3Config>,
    clock: Arc<Clock>,
    id: ConnectionId,
    info: Option<ConnectionInfo>,
    /// The runtime's slot and handle (from [`from_admitted`](Self::from_admitted)).
    guard: Option<ConnectionGuard>,
}

impl std::fmt::Debug for Http3Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http3Connection")
            .field("conn", &self.conn)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Http3Connection {
    /// A connection over `conn` (its handshake done, ALPN `h3`), with time
    /// and the `Date` header from `clock`.
    pub fn new(
        conn: MultiplexedConnection,
        config: Arc<Http3Config>,
        clock: Arc<Clock>,
        id: ConnectionId,
    ) -> Self {
        Http3Connection {
            conn,
            config,
            clock,
            id,
            info: None,
            guard: None,
        }
    }

    /// A connection admitted by the connection runtime
    /// (`ConnectionRuntime::admit_multiplexed`): it holds the slot until it
    /// ends, its requests see the `ConnectionInfo`, and it follows the
    /// handle's signals: a close request (graceful shutdown) stops accepting
    /// request streams, sends GOAWAY and lets the ones in flight finish; an
    /// abort ends the connection at once.
    pub fn from_admitted(admitted: AdmittedMultiplexed, config: Arc<Http3Config>) -> Self {
        let parts = admitted.into_parts();
        Http3Connection {
            conn: parts.conn,
            config,
            clock: parts.clock,
            id: parts.guard.id(),
            info: Some(parts.info),
            guard: Some(parts.guard),
        }
    }

    /// Put this connection's info into every request's extensions.
    pub fn with_connection_info(mut self, info: ConnectionInfo) -> Self {
        self.info = Some(info);
        self
    }

    /// Serve request streams until the connection closes. A close by the
    /// client with `H3_NO_ERROR`, a graceful shutdown or the keep-alive
    /// timeout is a clean end.
    pub async fn serve<A: Application>(self, app: &A) -> Result<Http3Close, Http3Error> {
        let Http3Connection {
            conn,
            config,
            clock,
            id,
            info,
            guard,
        } = self;
        let handle: Option<Arc<ConnectionHandle>> = guard.as_ref().map(|g| g.handle().clone());
        let _guard = guard;
        let gate = Arc::new(GoawayGate::new());
        let streams = Box::new(GuardedStreams::new(conn.streams, &config, id));
        let h3_conn = H3Conn::new(streams, gate.clone(), id);
        let closed = h3_conn.closed_watch();
        let mut server = match config.builder().build::<_, Bytes>(h3_conn).await {
            Ok(server) => server,
            Err(e) => return end(id, e),
        };
        let ctx = StreamCtx {
            config: &config,
            date: Mutex::new(DateSlot::new(clock.date())),
            clock: &clock,
            info: info.as_ref(),
            id,
            metrics: Mutex::new(kestrel_core::metrics::RequestMetrics::new("3")),
            rated: Mutex::new(Vec::new()),
        };
        let mut rate_check = RateCheck::default();
        let mut keep_alive_armed = false;
        let mut streams = FuturesUnordered::new();
        // Serving: until the client is done, the connection fails, or the
        // runtime asks to close or abort.
        let next = loop {
            let next = {
                let mut accept = pin!(server.accept());
                poll_fn(|cx| {
                    // Drive the running streams while waiting for the next one.
                    while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
                    rate_check.poll(cx, &ctx);
                    if let Some(h) = &handle {
                        // The keep-alive deadline runs while no request
                        // stream is open (a client's QUIC PINGs keep QUIC's
                        // idle timer alive, not this one).
                        let idle = streams.is_empty();
                        if idle && !keep_alive_armed {
                            h.timeout().set(
                                TimeoutReason::KeepAlive,
                                config.keep_alive_timeout,
                                clock.ticks(),
                                clock.interval(),
                            );
                            keep_alive_armed = true;
                        } else if !idle && keep_alive_armed {
                            h.timeout().cancel();
                            keep_alive_armed = false;
                        }
                        match h.poll_signal(cx) {
                            Poll::Ready(Signal::Aborted) => return Poll::Ready(Next::Abort),
                            Poll::Ready(Signal::CloseRequested) => return Poll::Ready(Next::Close),
                            Poll::Ready(Signal::TimedOut(TimeoutReason::KeepAlive)) if idle => {
                                return Poll::Ready(Next::KeepAlive)
                            }
                            _ => {}
                        }
                    }
                    accept.as_mut().poll(cx).map(Next::Accepted)
                })
                .await
            };
            match next {
                Next::Accepted(Ok(Some(resolver))) => {
                    streams.push(serve_request(app, &ctx, resolver))
                }
                other => break other,
            }
        };
        if keep_alive_armed {
            if let Some(h) = &handle {
                h.timeout().cancel();
            }
        }
        let client_done = matches!(next, Next::Accepted(Ok(None)));
        let mut close = Http3Close::Done;
        let result = match next {
            Next::Abort => {
                events::http3_connection_closed(id);
                return Ok(Http3Close::Aborted);
            }
            Next::KeepAlive => {
                events::connection_keep_alive(id);
                close = Http3Close::KeepAliveTimeout;
                server.shutdown(1).await
            }
            Next::Close => {
                // Graceful shutdown: GOAWAY with the first request stream not
                // processed (the gate's id, RFC 9114 §5.2); streams at or
                // past it are refused with H3_REQUEST_REJECTED.
                match server.shutdown(1).await {
                    Ok(()) => {
                        tracing::debug!(target: "kestrel::http3", connection_id = %id, goaway = ?gate.announced(), "close requested: GOAWAY sent");
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            // The client is done (its GOAWAY, and no request left): h3
            // answered with a last GOAWAY of its own (the gate's id).
            Next::Accepted(Ok(None)) => Ok(()),
            Next::Accepted(Err(e)) => Err(e),
            Next::Accepted(Ok(Some(_))) => Ok(()),
        };
        // Closing: the streams in flight finish while new ones are refused.
        // Once none is left the connection lingers (up to CLOSE_LINGER, or
        // until the client closes it): dropping h3's connection closes QUIC
        // at once, and QUIC discards stream data not yet delivered, so the
        // last responses and GOAWAY could be lost. An abort ends it at once.
        {
            // Request streams h3 still accepts (below the GOAWAY id; the
            // gate refuses the others), until the client closes.
            let accepted = futures_util::stream::unfold(&mut server, |server| async move {
                match server.accept().await {
                    Ok(Some(resolver)) => Some((resolver, server)),
                    Ok(None) | Err(_) => None,
                }
            });
            let mut accepted = pin!(accepted);
            // After an error h3's connection is done; after the client's
            // GOAWAY it answers `None` at once, again and again.
            let mut accept_done = result.is_err() || client_done;
            let mut linger = None;
            poll_fn(|cx| {
                if let Some(h) = &handle {
                    if let Poll::Ready(Signal::Aborted) = h.poll_signal(cx) {
                        return Poll::Ready(());
                    }
                }
                while !accept_done {
                    match accepted.as_mut().poll_next_unpin(cx) {
                        Poll::Ready(Some(resolver)) => {
                            streams.push(serve_request(app, &ctx, resolver))
                        }
                        Poll::Ready(None) => accept_done = true,
                        Poll::Pending => break,
                    }
                }
                while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
                rate_check.poll(cx, &ctx);
                if streams.is_empty() {
                    if closed.poll_closed(cx).is_ready() {
                        return Poll::Ready(());
                    }
                    let linger =
                        linger.get_or_insert_with(|| Box::pin(tokio::time::sleep(CLOSE_LINGER)));
                    if linger.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(());
                    }
                }
                Poll::Pending
            })
            .await;
        }
        drop(streams);
        match result {
            Ok(()) => {
                // Dropping h3's connection closes the QUIC connection with
                // H3_NO_ERROR (Kestrel's close code).
                events::http3_connection_closed(id);
                Ok(close)
            }
            Err(e) => end(id, e),
        }
    }
}

/// How long a connection closed by a graceful shutdown stays open after its
/// last response, for that response's data to reach the client before the
/// QUIC close (which discards undelivered stream data), unless the client
/// closes first.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// The connection's check of its streams' minimum data rates, once per
/// heartbeat interval while a stream has one (as HTTP/2's).
#[derive(Default)]
struct RateCheck {
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl RateCheck {
    fn poll(&mut self, cx: &mut std::task::Context<'_>, ctx: &StreamCtx<'_>) {
        let mut rated = lock(&ctx.rated);
        rated.retain(|s| !s.is_completed());
        if rated.is_empty() {
            self.timer = None;
            return;
        }
        let interval = ctx.clock.interval();
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(interval)));
        while timer.as_mut().poll(cx).is_ready() {
            timer.as_mut().reset(tokio::time::Instant::now() + interval);
            let now = ctx.clock.precise_ticks();
            for s in rated.iter() {
                let id = u32::try_from(kestrel_core::features::ResetSource::stream_id(&**s)).ok();
                match s.check_rates(now) {
                    Some(TimeoutReason::ReadDataRate) => {
                        events::request_body_minimum_data_rate_not_satisfied(ctx.id, id)
                    }
                    Some(TimeoutReason::WriteDataRate) => {
                        events::response_minimum_data_rate_not_satisfied(ctx.id, id)
                    }
                    _ => {}
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the connection's accept loop woke up for.
enum Next<T> {
    Accepted(T),
    Close,
    KeepAlive,
    Abort,
}

/// The end of a connection: a graceful close or a timeout is not an error.
fn end(id: ConnectionId, e: h3::error::ConnectionError) -> Result<Http3Close, Http3Error> {
    if e.is_h3_no_error() {
        events::http3_connection_closed(id);
        Ok(Http3Close::Done)
    } else if is_timeout(&e) {
        // QUIC's idle timeout is the keep-alive timeout.
        events::http3_connection_closed(id);
        Ok(Http3Close::KeepAliveTimeout)
    } else {
        events::http3_connection_error(id, &e);
        Err(e.into())
    }
}

fn is_timeout(e: &h3::error::ConnectionError) -> bool {
    matches!(
        e,
        h3::error::ConnectionError::Timeout { .. }
            | h3::error::ConnectionError::Remote {
                0: h3::quic::ConnectionErrorIncoming::Timeout,
                ..
            }
    )
}

/// What every stream of a connection borrows from its driver.
struct StreamCtx<'a> {
    config: &'a Http3Config,
    clock: &'a Clock,
    date: Mutex<DateSlot>,
    info: Option<&'a ConnectionInfo>,
    id: ConnectionId,
    /// `http.server.request.duration` / active requests, with
    /// `network.protocol.version` "3" (zero-sized without `metrics`).
    metrics: Mutex<kestrel_core::metrics::RequestMetrics>,
    /// Streams whose minimum data rates the connection checks.
    rated: Mutex<Vec<Arc<StreamState>>>,
}

type Send = RequestStream<H3Send, Bytes>;

impl StreamCtx<'_> {
    fn date(&self) -> HeaderValue {
        match self.date.lock() {
            Ok(mut slot) => slot.get(self.clock.date()).clone(),
            Err(_) => self.clock.date().get(),
        }
    }

    /// A response without a body, with `Date` and `Server`.
    fn simple(&self, status: StatusCode) -> Response<()> {
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
    async fn send_simple(&self, send: &mut Send, status: StatusCode, stream_id: u64) {
        let sent = async {
            send.send_response(self.simple(status)).await?;
            send.finish().await
        };
        if let Err(e) = sent.await {
            tracing::debug!(target: "kestrel::http3", connection_id = %self.id, stream_id, error = %e, "sending a response failed");
        }
    }

    fn bad_request(&self, stream_id: u64, status: StatusCode, reason: &str) {
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
async fn serve_request<A: Application>(
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
            if let Some(code) = state.poll_reset(cx) {
                return Poll::Ready(AppEvent::AppReset(code));
            }
            if let Some(reason) = state.poll_timed_out(cx) {
                return Poll::Ready(AppEvent::TimedOut(reason));
            }
            if state.take_continue() {
                return Poll::Ready(AppEvent::SendContinue);
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

/// Send the app's response: the head framed by the shared planner, the
/// body's data, then its trailers.
async fn respond<B>(
    ctx: &StreamCtx<'_>,
    send: &mut Send,
    state: &StreamState,
    resp: Response<B>,
    is_head: bool,
    stream_id: u64,
) where
    B: Body<Data = Bytes, Error: Into<BoxError>>,
{
    let (parts, body) = resp.into_parts();
    let status = parts.status;
    let mut head = Response::from_parts(parts, ());
    let headers = head.headers_mut();
    framing::strip_connection_specific(headers, |name| {
        events::invalid_response_header_removed(ctx.id, stream_id as u32, name)
    });
    let facts = RequestFacts {
        is_head,
        version: Version::HTTP_3,
        keep_alive: true,
        add_server_header: ctx.config.add_server_header,
    };
    let plan = match framing::plan(&facts, status, headers, &body.size_hint()) {
        Ok(plan) => plan,
        Err(e) => {
            // An informational final status or a malformed Content-Length.
            events::application_error(ctx.id, u32::try_from(stream_id).ok(), &e);
            ctx.send_simple(send, StatusCode::INTERNAL_SERVER_ERROR, stream_id)
                .await;
            return;
        }
    };
    framing::apply_to_headers(&plan, headers, || ctx.date());
    *head.version_mut() = Version::HTTP_3;
    let declared = match plan.framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    let mut body = pin!(body);
    // The body's first frame, if it is ready: a body that fails at once, or
    // ends short of its Content-Length before anything was sent, still
    // becomes a 500 (the head is held until then).
    let mut next = if plan.framing == Framing::NoBody {
        None
    } else {
        match poll_fn(|cx| Poll::Ready(poll_body(body.as_mut(), cx))).await {
            Poll::Ready(Some(Err(e))) => {
                events::application_error(ctx.id, u32::try_from(stream_id).ok(), &e);
                ctx.send_simple(send, StatusCode::INTERNAL_SERVER_ERROR, stream_id)
                    .await;
                return;
            }
            Poll::Ready(None) if declared.is_some_and(|n| n > 0) => {
                let e = format!(
                    "the response body ended after 0 of its {} Content-Length bytes",
                    declared.unwrap_or(0)
                );
                events::application_error(ctx.id, u32::try_from(stream_id).ok(), &e);
                ctx.send_simple(send, StatusCode::INTERNAL_SERVER_ERROR, stream_id)
                    .await;
                return;
            }
            Poll::Ready(None) => Some(None),
            Poll::Ready(Some(Ok(frame))) => Some(Some(frame)),
            Poll::Pending => None,
        }
    };
    if let Err(e) = send.send_response(head).await {
        tracing::debug!(target: "kestrel::http3", connection_id = %ctx.id, stream_id, error = %e, "sending the response head failed");
        state.abort();
        return;
    }
    if plan.framing != Framing::NoBody {
        // Time spent waiting for the client's flow control counts toward the
        // response's minimum data rate (the request's, the app may change it).
        let timed = state.start_response_rate();
        let mut written: u64 = 0;
        loop {
            let polled = match next.take() {
                Some(polled) => polled.map(Ok),
                None => poll_fn(|cx| poll_body(body.as_mut(), cx)).await,
            };
            let frame = match polled {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return fail_started(ctx, send, state, stream_id, &e),
                None => {
                    if let Some(n) = declared.filter(|n| written < *n) {
                        let e = format!("the response body ended after {written} of its {n} Content-Length bytes");
                        return fail_started(ctx, send, state, stream_id, &e);
                    }
                    break;
                }
            };
            let sent = match frame.into_data() {
                Ok(mut data) => {
                    let mut overflow = false;
                    if let Some(n) = declared {
                        let remaining = n - written;
                        if data.len() as u64 > remaining {
                            data.truncate(remaining as usize);
                            overflow = true;
                        }
                    }
                    written += data.len() as u64;
                    let sent = if data.is_empty() {
                        Ok(())
                    } else {
                        let _timing = timed.then(|| {
                            state
                                .rates()
                                .start_write(data.len(), ctx.clock.precise_ticks());
                            WriteTiming(state.rates())
                        });
                        send.send_data(data).await
                    };
                    if overflow && sent.is_ok() {
                        let e = format!(
                            "the response body is longer than its Content-Length of {} bytes",
                            declared.unwrap_or(0)
                        );
                        return fail_started(ctx, send, state, stream_id, &e);
                    }
                    sent
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(mut trailers) => {
                        if let Some(n) = declared.filter(|n| written < *n) {
                            let e = format!("the response body ended after {written} of its {n} Content-Length bytes");
                            return fail_started(ctx, send, state, stream_id, &e);
                        }
                        framing::strip_connection_specific(&mut trailers, |name| {
                            events::invalid_response_header_removed(ctx.id, stream_id as u32, name)
                        });
                        match send.send_trailers(trailers).await {
                            // Nothing may follow the trailers.
                            Ok(()) => break,
                            Err(e) => Err(e),
                        }
                    }
                    Err(_) => Ok(()),
                },
            };
            if let Err(e) = sent {
                tracing::debug!(target: "kestrel::http3", connection_id = %ctx.id, stream_id, error = %e, "sending the response body failed");
                state.abort();
                return;
            }
        }
    }
    if let Err(e) = send.finish().await {
        tracing::debug!(target: "kestrel::http3", connection_id = %ctx.id, stream_id, error = %e, "finishing the response failed");
        state.abort();
    }
}

/// Ends a write's timing however the write ends.
struct WriteTiming<'a>(&'a kestrel_core::data_rate::DataRateControl);

impl Drop for WriteTiming<'_> {
    fn drop(&mut self) {
        self.0.stop_write();
    }
}

/// A minimum data rate was not met: the stream is reset and stopped with
/// H3_REQUEST_CANCELLED (Kestrel's stream error code), the request aborted;
/// the connection's other streams go on.
fn abandon(
    ctx: &StreamCtx<'_>,
    send: &mut Send,
    state: &StreamState,
    stream_id: u64,
    reason: TimeoutReason,
) {
    events::http3_stream_abort(
        ctx.id,
        stream_id,
        u64::from(Code::H3_REQUEST_CANCELLED),
        &format_args!("{reason:?}"),
    );
    send.stop_stream(Code::H3_REQUEST_CANCELLED);
    if let Some(mut recv) = state.complete() {
        recv.stop_sending(Code::H3_REQUEST_CANCELLED);
    }
    state.abort();
}

/// The response started and cannot be completed (the body failed or
/// panicked, or broke its Content-Length): reset the stream with
/// H3_INTERNAL_ERROR, as Kestrel does for an app error after the head.
fn fail_started(
    ctx: &StreamCtx<'_>,
    send: &mut Send,
    state: &StreamState,
    stream_id: u64,
    e: &dyn std::fmt::Display,
) {
    events::application_error(ctx.id, u32::try_from(stream_id).ok(), e);
    events::http3_stream_abort(
        ctx.id,
        stream_id,
        u64::from(Code::H3_INTERNAL_ERROR),
        &"the response could not be completed",
    );
    send.stop_stream(Code::H3_INTERNAL_ERROR);
    state.abort();
}
