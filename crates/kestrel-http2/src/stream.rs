//! One stream: check the request against Kestrel's limits, run the
//! application, and send its response under HTTP/2 flow control.

use std::future::{poll_fn, Future};
use std::ops::ControlFlow;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{self, Either, FutureExt};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame};
use kestrel_core::app::{CatchUnwind, PanicError};
use kestrel_core::connection::{ConnectionHandle, ConnectionId};
use kestrel_core::data_rate::DataRateControl;
use kestrel_core::events;
use kestrel_core::framing::{self, Framing, RequestFacts};
use kestrel_core::heartbeat::{Clock, DateSlot};
use kestrel_core::request_limits::LimitsCell;
use kestrel_core::{
    Application, BoxError, ConnectionInfo, RequestAborted, RequestBody, RequestFeatures,
    StreamReset, UpgradeFeature, Upgraded,
};
use tokio::sync::oneshot;

use crate::body::StreamState;
use crate::config::Http2Config;
use crate::io::ReadCounter;
use crate::tunnel::Tunnel;

/// What every stream of a connection borrows from its driver.
pub(crate) struct StreamCtx<'a> {
    pub config: &'a Http2Config,
    pub clock: &'a Clock,
    pub date: Mutex<DateSlot>,
    /// The connection's read side (its frame check watches the windows of
    /// draining streams).
    pub reads: &'a Arc<ReadCounter>,
    pub info: Option<&'a ConnectionInfo>,
    pub conn_id: ConnectionId,
    pub handle: &'a Arc<ConnectionHandle>,
    /// Streams whose minimum data rates the driver checks once per
    /// heartbeat interval (completed ones are dropped at the next check).
    pub rated: &'a Mutex<Vec<Arc<StreamState>>>,
    /// `http.server.request.duration` / active requests (zero-sized without
    /// the `metrics` feature).
    pub metrics: Mutex<kestrel_core::metrics::RequestMetrics>,
}

/// How a stream's response ended.
enum Sent {
    Done,
    Reset,
}

impl StreamCtx<'_> {
    fn date(&self) -> HeaderValue {
        match self.date.lock() {
            Ok(mut slot) => slot.get(self.clock.date()).clone(),
            Err(_) => self.clock.date().get(),
        }
    }

    /// Remove the connection-specific headers `h2` refuses to send (RFC
    /// 9113 §8.2.2, event 41); for a head of the server's own (not planned),
    /// also add `Date` and `Server` unless present.
    fn prepare_headers(&self, headers: &mut HeaderMap, stream_id: u32, trailers: bool) {
        framing::strip_connection_specific(headers, |name| {
            self.log_header_removed(name, stream_id)
        });
        if trailers {
            return;
        }
        if !headers.contains_key(header::DATE) {
            headers.insert(header::DATE, self.date());
        }
        if self.config.add_server_header && !headers.contains_key(header::SERVER) {
            headers.insert(header::SERVER, HeaderValue::from_static("Kestrel"));
        }
    }

    fn log_header_removed(&self, name: &str, stream_id: u32) {
        events::invalid_response_header_removed(self.conn_id, stream_id, name);
    }

    fn log_stream_error(&self, stream_id: u32, reason: Reason, message: &str) {
        events::http2_stream_error(self.conn_id, stream_id, u32::from(reason), &message);
    }

    fn log_app_error(&self, stream_id: u32, e: &BoxError) {
        events::application_error(self.conn_id, Some(stream_id), e);
    }

    fn log_reset_abort(&self, stream_id: u32, reason: Reason, why: &str) {
        events::http2_stream_reset_abort(self.conn_id, stream_id, u32::from(reason), &why);
    }

    fn log_bad_request(&self, stream_id: u32, status: StatusCode, reason: &str) {
        events::connection_bad_request(
            self.conn_id,
            Some(stream_id),
            reason,
            status.as_u16(),
            &reason,
        );
    }

    /// A response without a body.
    fn simple(&self, status: StatusCode, stream_id: u32) -> Response<()> {
        let mut r = Response::new(());
        *r.status_mut() = status;
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        self.prepare_headers(r.headers_mut(), stream_id, false);
        r
    }

    /// Check the request head against the limits `h2` does not enforce:
    /// `Err` is the answer the stream gets instead of running the app.
    fn check_head(&self, req: &Request<RecvStream>, stream_id: u32) -> Result<(), Rejection> {
        let c = self.config;
        // Kestrel applies MaxRequestLineSize to the pseudo-headers.
        let uri = req.uri();
        let pseudo = req.method().as_str().len()
            + uri.scheme_str().map_or(0, str::len)
            + uri.authority().map_or(0, |a| a.as_str().len())
            + uri.path_and_query().map_or(0, |p| p.as_str().len());
        if pseudo > c.max_request_line_size {
            self.log_stream_error(
                stream_id,
                Reason::PROTOCOL_ERROR,
                "the request pseudo-headers are longer than max_request_line_size",
            );
            return Err(Rejection::Reset(Reason::PROTOCOL_ERROR));
        }
        // `h2` checks CONNECT's pseudo-headers but lets one without
        // :authority through (RFC 9113 §8.5 requires it; an extended CONNECT
        // may omit it, RFC 8441 §4).
        if req.method() == Method::CONNECT
            && uri.authority().is_none()
            && req.extensions().get::<h2::ext::Protocol>().is_none()
        {
            self.log_stream_error(
                stream_id,
                Reason::PROTOCOL_ERROR,
                "a CONNECT request without :authority",
            );
            return Err(Rejection::Reset(Reason::PROTOCOL_ERROR));
        }
        let headers = req.headers();
        if headers.len() > c.max_request_header_count {
            self.log_bad_request(
                stream_id,
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "TooManyHeaders",
            );
            return Err(Rejection::Status(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ));
        }
        let field_max = c.limits.max_request_header_field_size as usize;
        let mut total = 0usize;
        for (name, value) in headers {
            let size = name.as_str().len() + value.len();
            total += size;
            if size > field_max {
                self.log_bad_request(
                    stream_id,
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "HeaderFieldTooLarge",
                );
                return Err(Rejection::Status(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                ));
            }
        }
        if total > c.max_request_headers_total_size {
            self.log_bad_request(
                stream_id,
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "HeadersExceedMaxTotalSize",
            );
            return Err(Rejection::Status(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ));
        }
        Ok(())
    }
}

enum Rejection {
    Status(StatusCode),
    Reset(Reason),
}

enum AppEvent<R> {
    Done(R),
    ClientReset(Reason),
    AppReset(u32),
}

/// What the app's future resolves to: its response or error, or its panic.
type AppResult<B> = Result<Result<Response<B>, BoxError>, PanicError>;

/// What a stream that passed its checks holds while it runs: the app's
/// future (boxed by [`CatchUnwind`]; `None` once it is done), dropped before
/// the rest.
struct Running<F> {
    app: Option<CatchUnwind<F>>,
    s: Started,
}

/// The stream's side of a request handed to the app.
struct Started {
    /// Until the stream completes, dropping its future (the connection
    /// closed or was lost) aborts the request.
    abort_on_drop: AbortOnDrop,
    state: Arc<StreamState>,
    /// An extended CONNECT's upgrade.
    upgrade: Option<UpgradeFeature>,
    /// When the request started and its method (only with metrics).
    metrics_start: Option<(tokio::time::Instant, Method)>,
    is_head: bool,
}

/// What the stream does once the app has answered.
enum Next<B> {
    /// Answered (or reset) already.
    Done(Sent),
    /// Send the app's response.
    Respond(Response<B>),
    /// Accept the extended CONNECT with the app's response.
    Tunnel(Response<B>),
}

/// The app's response with its head ready to send.
struct Head<B> {
    head: Response<()>,
    body: B,
    /// The body's Content-Length, when it must match.
    declared: Option<u64>,
}

/// Serve one stream to completion.
///
/// A plain `fn`: the stream's future is moved into the connection's
/// `FuturesUnordered` (one allocation per stream), so it is kept small. On
/// its first poll (as before, not when accepted) the request head is checked
/// and turned into the app's request by a sync helper, so neither is kept in
/// the future once the app runs ([`future::lazy`] then the running stream,
/// which take the same room in turn); the steps between awaits are sync
/// helpers too, and the rare paths (the extended CONNECT tunnel, draining an
/// unread request body) are boxed.
pub(crate) fn serve_stream<'a, A: Application>(
    app: &'a A,
    ctx: &'a StreamCtx<'a>,
    req: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) -> impl Future<Output = ()> + Send + 'a {
    future::lazy(move |_| {
        let stream_id = u32::from(respond.stream_id());
        let running = match start_request(ctx, req, stream_id) {
            Ok((request, s)) => Some(Running {
                app: Some(CatchUnwind::new(app.call(request))),
                s,
            }),
            Err(rejection) => {
                match rejection {
                    Rejection::Status(status) => {
                        let _ = respond.send_response(ctx.simple(status, stream_id), true);
                    }
                    Rejection::Reset(reason) => respond.send_reset(reason),
                }
                None
            }
        };
        (respond, running, stream_id)
    })
    .then(move |(respond, running, stream_id)| run_stream(ctx, respond, running, stream_id))
}

/// Check the request head and build the app's request (a plain `fn`, so the
/// head is not part of the stream's future).
fn start_request(
    ctx: &StreamCtx<'_>,
    req: Request<RecvStream>,
    stream_id: u32,
) -> Result<(Request<RequestBody>, Started), Rejection> {
    ctx.check_head(&req, stream_id)?;
    // An extended CONNECT (RFC 8441): `h2` checked the pseudo-headers
    // (CONNECT with :scheme and :path, and SETTINGS_ENABLE_CONNECT_PROTOCOL sent).
    let upgrade = req
        .extensions()
        .get::<h2::ext::Protocol>()
        .filter(|_| req.method() == Method::CONNECT)
        .map(|p| UpgradeFeature::extended_connect(ctx.handle.clone(), p.as_str()));
    let (mut parts, recv) = req.into_parts();
    let end_stream = recv.is_end_stream();
    let declared_len = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    let expect_continue = !end_stream
        && parts
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let values = ctx.config.limit_values();
    let cell = LimitsCell::new(values);
    let limits = cell.begin(1, values);
    if upgrade.is_some() {
        // Its DATA frames are the tunnel's, not a body: no body-size limit,
        // no data rate, and nothing for the app to change (as in Kestrel).
        cell.freeze();
        cell.remove_body_size_limit();
    }
    let state = StreamState::new(stream_id, recv, cell, declared_len, expect_continue);
    if upgrade.is_none() {
        // A tunnel has no data rates; every other stream may have them (the
        // app can turn them on or off for its request).
        match ctx.rated.lock() {
            Ok(mut rated) => rated.push(state.clone()),
            Err(poisoned) => poisoned.into_inner().push(state.clone()),
        }
    }
    // In HTTP/2 `:authority` stands for Host (Kestrel copies it over Host).
    if let Some(authority) = parts.uri.authority() {
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(header::HOST, v);
        }
    }
    // Every feature in one extension value: one allocation, not one per feature.
    parts.extensions.insert(
        RequestFeatures::new()
            .with_connection(ctx.info.cloned())
            .with_limits(limits)
            .with_aborted(RequestAborted::new(
                state.clone() as Arc<dyn kestrel_core::aborted::AbortSource>
            ))
            .with_upgrade(upgrade.clone())
            .with_reset(StreamReset::new(state.clone())),
    );
    let abort_on_drop = AbortOnDrop(Some(state.clone()));
    let is_head = parts.method == Method::HEAD;
    let metrics_start = kestrel_core::metrics::ENABLED.then(|| {
        if let Ok(mut m) = ctx.metrics.lock() {
            m.started(&parts.method);
        }
        (ctx.clock.now(), parts.method.clone())
    });
    let body = if end_stream || upgrade.is_some() {
        RequestBody::empty()
    } else {
        RequestBody::from_source(state.clone(), 0)
    };
    let started = Started {
        abort_on_drop,
        state,
        upgrade,
        metrics_start,
        is_head,
    };
    Ok((Request::from_parts(parts, body), started))
}

/// The stream after its first poll: run the app, send its answer, and
/// drain what the client still sends.
// Not an `async fn`: that would store `running` and `respond` twice.
#[allow(clippy::manual_async_fn)]
fn run_stream<'a, F, B>(
    ctx: &'a StreamCtx<'a>,
    mut respond: SendResponse<Bytes>,
    mut running: Option<Running<F>>,
    stream_id: u32,
) -> impl Future<Output = ()> + 'a
where
    F: Future<Output = Result<Response<B>, BoxError>> + 'a,
    B: Body<Data = Bytes, Error: Into<BoxError>> + 'a,
{
    async move {
        // Refused by the checks (answered already).
        let Some(Running { app, s: run }) = running.as_mut() else {
            return;
        };
        let event = poll_fn(|cx| poll_app(app, &run.state, &mut respond, cx)).await;
        // Done, or cancelled (the client or the app reset the stream).
        *app = None;
        // What remains to send, as one future; `next` ends with this block,
        // so it is not kept in the stream's future while that runs.
        let (status, send) =
            {
                let (status, next) = on_app_event(ctx, &mut respond, run, event, stream_id);
                let send =
                    match next {
                        Next::Done(sent) => Either::Left(future::ready(sent)),
                        Next::Respond(resp) => {
                            match start_response(ctx, &mut respond, resp, run.is_head, stream_id) {
                                ControlFlow::Continue(head) => Either::Right(Either::Left(
                                    send_body(ctx, &mut respond, &run.state, head, stream_id),
                                )),
                                ControlFlow::Break(sent) => Either::Left(future::ready(sent)),
                            }
                        }
                        // Boxed: tunnels are rare, and the stream's future would
                        // otherwise reserve room for this path.
                        Next::Tunnel(resp) => match &run.upgrade {
                            Some(u) => Either::Right(Either::Right(Box::pin(accept_tunnel(
                                ctx,
                                &mut respond,
                                &run.state,
                                resp,
                                u,
                                stream_id,
                            )))),
                            None => Either::Left(future::ready(Sent::Done)),
                        },
                    };
                (status, send)
            };
        let outcome = send.await;
        if let Some(recv) = end_stream(ctx, run, status, outcome) {
            // Boxed: only when the app answered before the request body ended.
            Box::pin(drain_request_body(
                ctx,
                &mut respond,
                recv,
                run.state.sent(),
                stream_id,
            ))
            .await;
        }
    }
}

/// Poll the app, and meanwhile the app's control requests (reset, `100
/// Continue`) and the client's reset.
fn poll_app<F, B>(
    app: &mut Option<CatchUnwind<F>>,
    state: &StreamState,
    respond: &mut SendResponse<Bytes>,
    cx: &mut std::task::Context<'_>,
) -> Poll<AppEvent<AppResult<B>>>
where
    F: Future<Output = Result<Response<B>, BoxError>>,
{
    let control = state.poll_control(cx);
    if let Some(code) = control.reset {
        return Poll::Ready(AppEvent::AppReset(code));
    }
    if control.send_continue {
        send_continue(respond);
    }
    if let Some(fut) = app {
        if let Poll::Ready(r) = std::pin::Pin::new(fut).poll(cx) {
            return Poll::Ready(AppEvent::Done(r));
        }
    }
    match respond.poll_reset(cx) {
        Poll::Ready(Ok(reason)) => Poll::Ready(AppEvent::ClientReset(reason)),
        // The connection is gone.
        Poll::Ready(Err(_)) => Poll::Ready(AppEvent::ClientReset(Reason::CANCEL)),
        Poll::Pending => Poll::Pending,
    }
}

/// Decide what the app's answer becomes: the status it is logged with, and
/// what remains to send (the answers that need no waiting are sent here).
fn on_app_event<B>(
    ctx: &StreamCtx<'_>,
    respond: &mut SendResponse<Bytes>,
    run: &Started,
    event: AppEvent<AppResult<B>>,
    stream_id: u32,
) -> (StatusCode, Next<B>) {
    let upgrade = &run.upgrade;
    // An accepted upgrade answered with 101 (the status an HTTP/1.1 app
    // returns) or a 2xx becomes the tunnel; otherwise it is refused.
    let tunnel = match (upgrade, &event) {
        (Some(u), AppEvent::Done(Ok(Ok(r)))) if u.is_accepted() => {
            r.status() == StatusCode::SWITCHING_PROTOCOLS || r.status().is_success()
        }
        _ => false,
    };
    if let (Some(u), false) = (upgrade, tunnel) {
        u.cancel();
    }
    let status = match &event {
        AppEvent::Done(Ok(Ok(r))) if tunnel && r.status() == StatusCode::SWITCHING_PROTOCOLS => {
            StatusCode::OK
        }
        AppEvent::Done(Ok(Ok(r))) => r.status(),
        AppEvent::Done(_) => StatusCode::INTERNAL_SERVER_ERROR,
        // 499, as Kestrel logs a request the client aborted.
        AppEvent::ClientReset(_) | AppEvent::AppReset(_) => {
            StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
        }
    };
    let next = match event {
        AppEvent::ClientReset(reason) => {
            // Like hyper, stop the application when the client cancels: an
            // accepted-then-reset stream must not keep costing CPU (rapid reset).
            tracing::debug!(target: "kestrel::http2", connection_id = %ctx.conn_id, stream_id, error_code = u32::from(reason), "the client reset the stream before the response; the application was cancelled");
            Next::Done(Sent::Reset)
        }
        AppEvent::AppReset(code) => {
            let reason = Reason::from(code);
            ctx.log_reset_abort(stream_id, reason, "requested by the application");
            respond.send_reset(reason);
            Next::Done(Sent::Reset)
        }
        AppEvent::Done(result) => {
            let result = match result {
                Ok(r) => r,
                Err(panic) => Err(Box::new(panic) as BoxError),
            };
            if run.state.is_too_large() {
                // The body broke the size limit: that decides the answer,
                // whatever the app made of it.
                ctx.log_bad_request(
                    stream_id,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestBodyTooLarge",
                );
                let _ = respond
                    .send_response(ctx.simple(StatusCode::PAYLOAD_TOO_LARGE, stream_id), true);
                Next::Done(Sent::Done)
            } else {
                match result {
                    Ok(resp) if tunnel => Next::Tunnel(resp),
                    Ok(resp) => Next::Respond(resp),
                    Err(e) => {
                        ctx.log_app_error(stream_id, &e);
                        let _ = respond.send_response(
                            ctx.simple(StatusCode::INTERNAL_SERVER_ERROR, stream_id),
                            true,
                        );
                        Next::Done(Sent::Done)
                    }
                }
            }
        }
    };
    (status, next)
}

/// The answer is sent (or the stream reset): record the metrics, complete
/// the stream, and return the request body still to drain, if any.
fn end_stream(
    ctx: &StreamCtx<'_>,
    run: &mut Started,
    status: StatusCode,
    outcome: Sent,
) -> Option<RecvStream> {
    if let Some((started, method)) = run.metrics_start.take() {
        if let Ok(mut m) = ctx.metrics.lock() {
            m.stopped(&method, status, started.elapsed());
        }
    }
    if let Sent::Reset = outcome {
        run.state.abort();
    }
    run.abort_on_drop.disarm();
    // The response is complete; if the client is still sending the request
    // body, read the rest of it for a moment before letting the stream go.
    let unfinished = match outcome {
        Sent::Done => run.state.take_unfinished_recv(),
        Sent::Reset => None,
    };
    run.state.complete();
    unfinished
}

/// How long a stream whose response is complete keeps reading the rest of
/// its request body ([`drain_request_body`]).
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// How many more request body bytes it reads at most.
pub(crate) const DRAIN_MAX_BYTES: usize = 64 * 1024;

/// The response is complete but the client has not finished its request
/// body (the app answered without reading it all). Before the stream is let
/// go — `h2` then resets it with NO_ERROR, after the queued response (RFC
/// 9113 §8.1) — the rest of the body is read and discarded, its window
/// released, until it ends, for at most [`DRAIN_TIMEOUT`] and
/// [`DRAIN_MAX_BYTES`]. So an error in what the client sent along with the
/// request (more or less DATA than its `content-length`, trailers without
/// END_STREAM or with pseudo-headers, a stream window overflow) is still
/// answered with `h2`'s RST_STREAM PROTOCOL_ERROR / FLOW_CONTROL_ERROR
/// instead of being hidden by the NO_ERROR reset, whichever of the response
/// and those frames came first. An explicit reset here would discard the
/// response frames not yet written.
///
/// `h2` ignores WINDOW_UPDATE on a stream it no longer sends on, so the
/// connection's frame check watches the stream's window meanwhile: an
/// increment past 2^31−1 (RFC 9113 §6.9.1) resets it with
/// FLOW_CONTROL_ERROR, as `h2` does while the response is still going out.
async fn drain_request_body(
    ctx: &StreamCtx<'_>,
    respond: &mut SendResponse<Bytes>,
    mut recv: RecvStream,
    sent: u64,
    stream_id: u32,
) {
    let watch = ctx.reads.watch_window(stream_id, sent);
    let mut drained = 0usize;
    let mut data_done = false;
    let drain = poll_fn(|cx| {
        if watch.poll_overflow(cx).is_ready() {
            ctx.log_stream_error(
                stream_id,
                Reason::FLOW_CONTROL_ERROR,
                "a WINDOW_UPDATE took the stream's send window past 2^31-1",
            );
            respond.send_reset(Reason::FLOW_CONTROL_ERROR);
            return Poll::Ready(Ok(()));
        }
        while !data_done {
            match recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    drained += data.len();
                    let _ = recv.flow_control().release_capacity(data.len());
                    if drained > DRAIN_MAX_BYTES {
                        return Poll::Ready(Err("more than the drain limit"));
                    }
                }
                // Reset by `h2` (the client broke the protocol) or by the client.
                Poll::Ready(Some(Err(_))) => return Poll::Ready(Ok(())),
                Poll::Ready(None) => data_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        recv.poll_trailers(cx).map(|_| Ok(()))
    });
    let outcome = match tokio::time::timeout(DRAIN_TIMEOUT, drain).await {
        Ok(r) => r,
        Err(_) => Err("not ended in time"),
    };
    if let Err(why) = outcome {
        tracing::debug!(
            target: "kestrel::http2",
            connection_id = %ctx.conn_id,
            stream_id,
            drained,
            "the application completed without reading the entire request body ({why}); the stream is reset with NO_ERROR"
        );
    }
}

/// Fires a stream's `RequestAborted` if its future is dropped before it
/// completed (the connection closed, was lost, or was aborted).
struct AbortOnDrop(Option<Arc<StreamState>>);

impl AbortOnDrop {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(state) = self.0.take() {
            state.abort();
        }
    }
}

/// Accept an extended CONNECT: send the app's response head (a `101`
/// becomes `200`) without END_STREAM, hand the stream to the app as an
/// [`Upgraded`], and wait until the app drops it, so that the stream counts
/// as active (no keep-alive timeout, graceful shutdown waits for it).
async fn accept_tunnel<B>(
    ctx: &StreamCtx<'_>,
    respond: &mut SendResponse<Bytes>,
    state: &Arc<StreamState>,
    resp: Response<B>,
    upgrade: &UpgradeFeature,
    stream_id: u32,
) -> Sent {
    // A 2xx response to CONNECT has no body, no Content-Length (RFC 9110
    // §9.3.6) and none of HTTP/1.1's upgrade headers (RFC 8441 §5).
    let (mut parts, _body) = resp.into_parts();
    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        parts.status = StatusCode::OK;
    }
    for name in [header::UPGRADE, header::CONNECTION, header::CONTENT_LENGTH] {
        parts.headers.remove(name);
    }
    let mut head = Response::from_parts(parts, ());
    ctx.prepare_headers(head.headers_mut(), stream_id, false);
    let Some(recv) = state.take_recv() else {
        upgrade.cancel();
        respond.send_reset(Reason::INTERNAL_ERROR);
        return Sent::Reset;
    };
    let send = match respond.send_response(head, false) {
        Ok(send) => send,
        Err(e) => {
            tracing::debug!(target: "kestrel::http2", connection_id = %ctx.conn_id, stream_id, error = %e, "could not accept the extended CONNECT");
            upgrade.cancel();
            return Sent::Reset;
        }
    };
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let tunnel = Tunnel::new(send, recv, state.clone(), done_tx);
    tracing::debug!(target: "kestrel::http2", connection_id = %ctx.conn_id, stream_id, protocol = upgrade.protocol().unwrap_or(""), "HTTP/2 stream upgraded (extended CONNECT)");
    match upgrade.complete(Upgraded::new(Box::new(tunnel), Bytes::new(), None)) {
        // Resolves (with an error) when the app drops the stream.
        Ok(()) => {
            let _ = done_rx.await;
        }
        // The app dropped its `OnUpgrade`: the stream ends here.
        Err(unwanted) => drop(unwanted),
    }
    Sent::Done
}

fn send_continue(respond: &mut SendResponse<Bytes>) {
    let mut r = Response::new(());
    *r.status_mut() = StatusCode::CONTINUE;
    // Fails only if the final response already went out or the stream is
    // gone; either way there is nothing left to do.
    let _ = respond.send_informational(r);
}

enum BodyEvent {
    Frame(Frame<Bytes>),
    End,
    Failed(BoxError),
    Reset(Reason, &'static str),
}

/// The app's response up to its body (a plain `fn`, so the response is not
/// part of the stream's future): an informational status becomes a 500,
/// `Date`/`Server` are added and Content-Length set, and a response without
/// a body (HEAD, 204, 304) is sent here. `Break` is a stream answered already.
fn start_response<B>(
    ctx: &StreamCtx<'_>,
    respond: &mut SendResponse<Bytes>,
    resp: Response<B>,
    is_head: bool,
    stream_id: u32,
) -> ControlFlow<Sent, Head<B>>
where
    B: Body<Data = Bytes, Error: Into<BoxError>>,
{
    let (parts, body) = resp.into_parts();
    let status = parts.status;
    let mut head = Response::from_parts(parts, ());
    let headers = head.headers_mut();
    framing::strip_connection_specific(headers, |name| ctx.log_header_removed(name, stream_id));
    let facts = RequestFacts {
        is_head,
        version: Version::HTTP_2,
        keep_alive: true,
        add_server_header: ctx.config.add_server_header,
    };
    let plan = match framing::plan(&facts, status, headers, &body.size_hint()) {
        Ok(plan) => plan,
        Err(e) => {
            // An informational final status or a malformed Content-Length.
            ctx.log_app_error(stream_id, &e.into());
            let _ = respond.send_response(
                ctx.simple(StatusCode::INTERNAL_SERVER_ERROR, stream_id),
                true,
            );
            return ControlFlow::Break(Sent::Done);
        }
    };
    framing::apply_to_headers(&plan, headers, || ctx.date());
    let declared = match plan.framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    if plan.framing == Framing::NoBody {
        // HEAD, 204 and 304 have no body: whatever the app would write is dropped.
        let _ = respond.send_response(head, true);
        return ControlFlow::Break(Sent::Done);
    }
    ControlFlow::Continue(Head {
        head,
        body,
        declared,
    })
}

/// Send the app's response: headers, then data under flow control, then
/// trailers. (A plain `fn` returning the future, whose steps between awaits
/// are sync helpers, so that no value is stored in it twice.)
fn send_body<'s, B>(
    ctx: &'s StreamCtx<'s>,
    respond: &'s mut SendResponse<Bytes>,
    state: &'s Arc<StreamState>,
    head: Head<B>,
    stream_id: u32,
) -> impl Future<Output = Sent> + 's
where
    B: Body<Data = Bytes, Error: Into<BoxError>> + 's,
{
    let Head {
        mut head,
        body,
        declared,
    } = head;
    async move {
        let mut body = pin!(body);
        // (In blocks, so that the first frame is not kept in the future
        // while the rest of the body is sent.)
        let (mut tx, first) = {
            let started = poll_fn(|cx| {
                let head = std::mem::replace(&mut head, Response::new(()));
                Poll::Ready(send_head(
                    ctx,
                    respond,
                    state,
                    head,
                    body.as_mut(),
                    declared,
                    stream_id,
                    cx,
                ))
            })
            .await;
            match started {
                ControlFlow::Continue(started) => started,
                ControlFlow::Break(sent) => return sent,
            }
        };
        // Time spent waiting for the client's window counts toward the
        // response's minimum data rate (the request's, which the app may change).
        let clock = state.start_response_rate().then_some(ctx.clock);
        let mut written: u64 = 0;
        let mut ev = next_body_event(state, &mut tx, body.as_mut(), first).await;
        loop {
            let frame = match on_body_event(ctx, &mut tx, ev, declared, written, stream_id) {
                ControlFlow::Continue(f) => f,
                ControlFlow::Break(sent) => return sent,
            };
            match frame.into_data() {
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
                    let eos = !overflow && body.is_end_stream();
                    if eos {
                        if let Some(n) = declared.filter(|n| written < *n) {
                            return fail_started_tx(ctx, &mut tx, stream_id, format!("the response body ended after {written} of its {n} Content-Length bytes").into());
                        }
                    }
                    if let Err((reason, why)) = send_data(&mut tx, state, data, eos, clock).await {
                        return reset_tx(ctx, &mut tx, stream_id, reason, why);
                    }
                    if overflow {
                        return fail_started_tx(
                            ctx,
                            &mut tx,
                            stream_id,
                            format!(
                                "the response body is longer than its Content-Length of {} bytes",
                                declared.unwrap_or(0)
                            )
                            .into(),
                        );
                    }
                    if eos {
                        return Sent::Done;
                    }
                }
                Err(frame) => {
                    if let Ok(mut trailers) = frame.into_trailers() {
                        if let Some(n) = declared.filter(|n| written < *n) {
                            return fail_started_tx(ctx, &mut tx, stream_id, format!("the response body ended after {written} of its {n} Content-Length bytes").into());
                        }
                        ctx.prepare_headers(&mut trailers, stream_id, true);
                        let _ = tx.send_trailers(trailers);
                        return Sent::Done;
                    }
                }
            }
            ev = next_body_event(state, &mut tx, body.as_mut(), None).await;
        }
    }
}

/// Poll the body for its first frame, then send the headers: held until
/// the first frame, so that a body that fails at once still becomes a 500;
/// if it is not ready, they are sent now. `Ok` has the stream to send the
/// body on and the first frame, if there was one.
#[allow(clippy::too_many_arguments)]
fn send_head<B>(
    ctx: &StreamCtx<'_>,
    respond: &mut SendResponse<Bytes>,
    state: &StreamState,
    head: Response<()>,
    body: std::pin::Pin<&mut B>,
    declared: Option<u64>,
    stream_id: u32,
    cx: &mut std::task::Context<'_>,
) -> ControlFlow<Sent, (SendStream<Bytes>, Option<Frame<Bytes>>)>
where
    B: Body<Data = Bytes, Error: Into<BoxError>>,
{
    let first = match poll_body(body, cx) {
        Poll::Ready(BodyEvent::Failed(e)) => {
            ctx.log_app_error(stream_id, &e);
            let _ = respond.send_response(
                ctx.simple(StatusCode::INTERNAL_SERVER_ERROR, stream_id),
                true,
            );
            return ControlFlow::Break(Sent::Done);
        }
        Poll::Ready(BodyEvent::End) => {
            if let Some(n) = declared.filter(|n| *n > 0) {
                return ControlFlow::Break(fail_started(
                    ctx,
                    respond,
                    stream_id,
                    format!("the response body ended after 0 of its {n} Content-Length bytes")
                        .into(),
                ));
            }
            let _ = respond.send_response(head, true);
            return ControlFlow::Break(Sent::Done);
        }
        Poll::Ready(BodyEvent::Frame(f)) => Some(f),
        Poll::Ready(BodyEvent::Reset(..)) => None,
        Poll::Pending => None,
    };
    // The app may have asked for `100 Continue` while we polled its body
    // (say, a response body that streams the request body back).
    let control = state.poll_control(cx);
    if control.send_continue {
        send_continue(respond);
    }
    if let Some(code) = control.reset {
        let reason = Reason::from(code);
        ctx.log_reset_abort(stream_id, reason, "requested by the application");
        respond.send_reset(reason);
        return ControlFlow::Break(Sent::Reset);
    }
    match respond.send_response(head, false) {
        Ok(tx) => ControlFlow::Continue((tx, first)),
        Err(e) => {
            tracing::debug!(target: "kestrel::http2", connection_id = %ctx.conn_id, stream_id, error = %e, "could not send the response headers");
            ControlFlow::Break(Sent::Reset)
        }
    }
}

/// The body's next frame (`first`, if the headers came with one), the
/// app's reset, or the client's.
fn next_body_event<'s, B>(
    state: &'s StreamState,
    tx: &'s mut SendStream<Bytes>,
    mut body: std::pin::Pin<&'s mut B>,
    mut first: Option<Frame<Bytes>>,
) -> impl Future<Output = BodyEvent> + 's
where
    B: Body<Data = Bytes, Error: Into<BoxError>>,
{
    poll_fn(move |cx| {
        if let Some(f) = first.take() {
            return Poll::Ready(BodyEvent::Frame(f));
        }
        if let Some(code) = state.poll_control(cx).reset {
            return Poll::Ready(BodyEvent::Reset(
                Reason::from(code),
                "requested by the application",
            ));
        }
        if let Poll::Ready(r) = tx.poll_reset(cx) {
            return Poll::Ready(client_reset(r));
        }
        poll_body(body.as_mut(), cx)
    })
}

/// A frame to send, or how the response ended (sent or reset here).
fn on_body_event(
    ctx: &StreamCtx<'_>,
    tx: &mut SendStream<Bytes>,
    ev: BodyEvent,
    declared: Option<u64>,
    written: u64,
    stream_id: u32,
) -> ControlFlow<Sent, Frame<Bytes>> {
    match ev {
        BodyEvent::Frame(f) => ControlFlow::Continue(f),
        BodyEvent::End => {
            if let Some(n) = declared.filter(|n| written < *n) {
                return ControlFlow::Break(fail_started_tx(
                    ctx,
                    tx,
                    stream_id,
                    format!(
                        "the response body ended after {written} of its {n} Content-Length bytes"
                    )
                    .into(),
                ));
            }
            let _ = tx.send_data(Bytes::new(), true);
            ControlFlow::Break(Sent::Done)
        }
        BodyEvent::Failed(e) => ControlFlow::Break(fail_started_tx(ctx, tx, stream_id, e)),
        BodyEvent::Reset(reason, why) => {
            ControlFlow::Break(reset_tx(ctx, tx, stream_id, reason, why))
        }
    }
}

fn client_reset(r: Result<Reason, h2::Error>) -> BodyEvent {
    match r {
        Ok(reason) => BodyEvent::Reset(reason, "reset by the client"),
        Err(_) => BodyEvent::Reset(Reason::CANCEL, "the connection ended"),
    }
}

/// Poll the app's body once, catching a panic.
fn poll_body<B>(body: std::pin::Pin<&mut B>, cx: &mut std::task::Context<'_>) -> Poll<BodyEvent>
where
    B: Body<Data = Bytes, Error: Into<BoxError>>,
{
    kestrel_core::app::poll_body(body, cx).map(|polled| match polled {
        Some(Ok(f)) => BodyEvent::Frame(f),
        Some(Err(e)) => BodyEvent::Failed(e),
        None => BodyEvent::End,
    })
}

/// Stops timing a response write when dropped.
struct WriteTiming<'a>(&'a DataRateControl);

impl Drop for WriteTiming<'_> {
    fn drop(&mut self) {
        self.0.stop_write();
    }
}

/// Send `data` as the window allows: reserve capacity, wait for it, send
/// what was granted, repeat. `h2` never buffers more than
/// `max_send_buffer_size` per stream this way. With `clock` (a minimum
/// response data rate is set), the write is timed until `h2` has taken it
/// all: `deadline += max(grace, bytes / rate)`, checked by the driver.
// Not an `async fn`: that would store `data` twice.
#[allow(clippy::manual_async_fn)]
fn send_data<'s>(
    tx: &'s mut SendStream<Bytes>,
    state: &'s StreamState,
    mut data: Bytes,
    eos: bool,
    clock: Option<&'s Clock>,
) -> impl Future<Output = Result<(), (Reason, &'static str)>> + 's {
    async move {
        if data.is_empty() {
            return if eos {
                tx.send_data(data, true)
                    .map_err(|_| (Reason::CANCEL, "the stream is gone"))
            } else {
                Ok(())
            };
        }
        let _timing = clock.map(|c| {
            state.rates().start_write(data.len(), c.precise_ticks());
            WriteTiming(state.rates())
        });
        while !data.is_empty() {
            tx.reserve_capacity(data.len());
            let mut granted = tx.capacity();
            if granted == 0 {
                granted = poll_fn(|cx| {
                    if let Some(code) = state.poll_control(cx).reset {
                        return Poll::Ready(Err((
                            Reason::from(code),
                            "requested by the application",
                        )));
                    }
                    match tx.poll_capacity(cx) {
                        Poll::Ready(Some(Ok(n))) => Poll::Ready(Ok(n)),
                        Poll::Ready(Some(Err(_))) | Poll::Ready(None) => Poll::Ready(Err((
                            Reason::CANCEL,
                            "the stream was reset or the connection ended",
                        ))),
                        Poll::Pending => match tx.poll_reset(cx) {
                            Poll::Ready(r) => match client_reset(r) {
                                BodyEvent::Reset(reason, why) => Poll::Ready(Err((reason, why))),
                                _ => Poll::Pending,
                            },
                            Poll::Pending => Poll::Pending,
                        },
                    }
                })
                .await?;
                if granted == 0 {
                    continue;
                }
            }
            let chunk = data.split_to(granted.min(data.len()));
            state.add_sent(chunk.len());
            tx.send_data(chunk, eos && data.is_empty())
                .map_err(|_| (Reason::CANCEL, "the stream is gone"))?;
        }
        Ok(())
    }
}

/// The response failed before its headers were sent: 500.
fn fail_started(
    ctx: &StreamCtx<'_>,
    respond: &mut SendResponse<Bytes>,
    stream_id: u32,
    e: BoxError,
) -> Sent {
    ctx.log_app_error(stream_id, &e);
    let _ = respond.send_response(
        ctx.simple(StatusCode::INTERNAL_SERVER_ERROR, stream_id),
        true,
    );
    Sent::Done
}

/// The response failed after its headers were sent: RST_STREAM INTERNAL_ERROR.
fn fail_started_tx(
    ctx: &StreamCtx<'_>,
    tx: &mut SendStream<Bytes>,
    stream_id: u32,
    e: BoxError,
) -> Sent {
    ctx.log_app_error(stream_id, &e);
    ctx.log_reset_abort(
        stream_id,
        Reason::INTERNAL_ERROR,
        "the response failed after it started",
    );
    tx.send_reset(Reason::INTERNAL_ERROR);
    Sent::Reset
}

fn reset_tx(
    ctx: &StreamCtx<'_>,
    tx: &mut SendStream<Bytes>,
    stream_id: u32,
    reason: Reason,
    why: &'static str,
) -> Sent {
    ctx.log_reset_abort(stream_id, reason, why);
    tx.send_reset(reason);
    Sent::Reset
}
