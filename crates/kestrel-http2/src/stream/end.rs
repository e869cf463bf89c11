//! How a stream ends: completed (metrics recorded, the stream state
//! completed), failed or reset, or aborted by being dropped; and the drain
//! of a request body the app left unread.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::StatusCode;
use kestrel_core::BoxError;

use super::{Sent, Started, StreamCtx};
use crate::body::StreamState;

/// The answer is sent (or the stream reset): record the metrics, complete
/// the stream, and return the request body still to drain, if any.
pub(super) fn end_stream(
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
pub(super) async fn drain_request_body(
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
pub(super) struct AbortOnDrop(Option<Arc<StreamState>>);

impl AbortOnDrop {
    /// Armed for `state` until [`disarm`](Self::disarm)ed.
    pub(super) fn new(state: Arc<StreamState>) -> Self {
        AbortOnDrop(Some(state))
    }

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

/// The response failed before its headers were sent: 500.
pub(super) fn fail_started(
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
pub(super) fn fail_started_tx(
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

pub(super) fn reset_tx(
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
