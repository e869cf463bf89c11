//! A stream's response: the head (framing planned by
//! `kestrel_core::framing`), the body under HTTP/2 flow control with its
//! minimum data rate, the trailers, `100 Continue`, and the head of an
//! accepted extended CONNECT.

use std::future::{poll_fn, Future};
use std::ops::ControlFlow;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, SendStream};
use http::header;
use http::{Response, StatusCode, Version};
use http_body::{Body, Frame};
use kestrel_core::data_rate::DataRateControl;
use kestrel_core::framing::{self, Framing, RequestFacts};
use kestrel_core::heartbeat::Clock;
use kestrel_core::{BoxError, UpgradeFeature, Upgraded};
use tokio::sync::oneshot;

use super::end::{fail_started, fail_started_tx, reset_tx};
use super::{Sent, StreamCtx};
use crate::body::StreamState;
use crate::tunnel::Tunnel;

/// The app's response with its head ready to send.
pub(super) struct Head<B> {
    head: Response<()>,
    body: B,
    /// The body's Content-Length, when it must match.
    declared: Option<u64>,
}

/// Accept an extended CONNECT: send the app's response head (a `101`
/// becomes `200`) without END_STREAM, hand the stream to the app as an
/// [`Upgraded`], and wait until the app drops it, so that the stream counts
/// as active (no keep-alive timeout, graceful shutdown waits for it).
pub(super) async fn accept_tunnel<B>(
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

pub(super) fn send_continue(respond: &mut SendResponse<Bytes>) {
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
pub(super) fn start_response<B>(
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
    framing::add_alt_svc(headers, ctx.info);
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
pub(super) fn send_body<'s, B>(
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
/// if it is not ready, they are sent now. `Continue` has the stream to send the
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
