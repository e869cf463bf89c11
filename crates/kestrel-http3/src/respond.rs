//! The response of one request stream: the head framed by the shared
//! planner, the body (with the Content-Length rules and the response data
//! rate), the trailers; and how a stream that cannot complete ends.

use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;

use bytes::Bytes;
use h3::error::Code;
use http::{Response, StatusCode, Version};
use http_body::Body;
use kestrel_core::app::poll_body;
use kestrel_core::connection::TimeoutReason;
use kestrel_core::framing::{self, Framing, RequestFacts};
use kestrel_core::{events, BoxError};

use crate::body::StreamState;
use crate::stream::{Send, StreamCtx};

/// Send the app's response: the head framed by the shared planner, the
/// body's data, then its trailers.
pub(crate) async fn respond<B>(
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
                if state.is_too_large() {
                    // A body streaming the request's broke its size limit
                    // before anything was sent: 413, as when the app reads it.
                    ctx.bad_request(
                        stream_id,
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "RequestBodyTooLarge",
                    );
                    ctx.send_simple(send, StatusCode::PAYLOAD_TOO_LARGE, stream_id)
                        .await;
                    return;
                }
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
pub(crate) fn abandon(
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
