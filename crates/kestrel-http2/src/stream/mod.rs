//! One stream: check the request against Kestrel's limits, run the
//! application, and send its response under HTTP/2 flow control.
//!
//! Split by job: [`request`] checks the head and builds the app's request,
//! this module runs the app and decides what its answer becomes,
//! [`respond`] sends the response (head, body under flow control, trailers,
//! `100 Continue`, the extended CONNECT tunnel), and [`end`] ends the stream
//! (completion, resets, and the drain of an unread request body).

mod end;
mod request;
mod respond;

use std::future::{poll_fn, Future};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use bytes::Bytes;
use futures_util::future::{self, Either, FutureExt};
use h2::server::SendResponse;
use h2::Reason;
use h2::RecvStream;
use http::header::{self, HeaderMap, HeaderValue};
use http::Request;
use http::{Method, Response, StatusCode};
use http_body::Body;
use kestrel_core::app::{CatchUnwind, PanicError};
use kestrel_core::connection::{ConnectionHandle, ConnectionId};
use kestrel_core::events;
use kestrel_core::framing;
use kestrel_core::heartbeat::{Clock, DateSlot};
use kestrel_core::{Application, BoxError, ConnectionInfo, UpgradeFeature};

use crate::body::StreamState;
use crate::config::Http2Config;
use crate::io::ReadCounter;
use end::{drain_request_body, end_stream, AbortOnDrop};
use request::{start_request, Rejection};
use respond::{accept_tunnel, send_body, send_continue, start_response};

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
        // In the request's span, as HTTP/1 does.
        let _in_span = state.span().enter();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `f` returns, without calling it.
    fn returned_size<'a, A: 'a, R>(
        _f: impl Fn(&'a A, &'a StreamCtx<'a>, Request<RecvStream>, SendResponse<Bytes>) -> R,
    ) -> usize {
        std::mem::size_of::<R>()
    }

    /// Each stream's future is boxed into the connection's
    /// `FuturesUnordered`: one allocation of this size per stream, so it
    /// must not grow unnoticed. Measured in a debug build for an app whose
    /// body is `Full<Bytes>` (the app's own future is boxed apart, so its
    /// size does not count): 656 bytes, with or without kestrel-core's
    /// `metrics` feature (the request's start time and method fit in room
    /// the future has anyway); the budget is that plus about 10%.
    const STREAM_FUTURE_BUDGET: usize = 720;

    #[test]
    fn the_stream_future_stays_within_its_budget() {
        async fn app(
            _req: Request<kestrel_core::RequestBody>,
        ) -> Response<http_body_util::Full<Bytes>> {
            Response::new(http_body_util::Full::new(Bytes::from_static(b"ok")))
        }
        fn stream_size<A: Application>(_app: &A) -> usize {
            returned_size(serve_stream::<A>)
        }
        let size = stream_size(&app);
        eprintln!("HTTP/2 stream future: {size} bytes");
        assert!(
            size <= STREAM_FUTURE_BUDGET,
            "the HTTP/2 stream future is {size} bytes, over its budget of {STREAM_FUTURE_BUDGET}"
        );
    }
}
