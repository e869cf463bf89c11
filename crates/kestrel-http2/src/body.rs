//! The state one stream shares between its driver and the application: the
//! request body (a [`BodySource`] over `h2`'s `RecvStream`), the request to
//! send `100 Continue`, and the application's request to reset the stream
//! ([`StreamReset`](kestrel_core::StreamReset)).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use h2::RecvStream;
use http_body::{Frame, SizeHint};
use kestrel_core::aborted::{AbortSignal, AbortSource};
use kestrel_core::body_state::{BodyPhase, BodyRejection, RequestBodyState, StreamReadStart};
use kestrel_core::connection::TimeoutReason;
use kestrel_core::data_rate::DataRateControl;
use kestrel_core::features::ResetSource;
use kestrel_core::request_limits::LimitsCell;
use kestrel_core::{BodyError, BodySource};

/// One stream's shared state.
pub(crate) struct StreamState {
    inner: Mutex<Inner>,
    /// Wakes the stream's driver (to send `100 Continue` or a reset).
    driver: AtomicWaker,
    stream_id: u32,
    /// The request's limits (Kestrel's `IHttpMaxRequestBodySizeFeature`):
    /// the app may change them until it first reads the body.
    limits: LimitsCell,
    /// This stream's minimum request body and response data rates, checked
    /// by the connection's driver once per heartbeat interval.
    rates: DataRateControl,
    /// The request-aborted signal (`RequestAborted`).
    abort: AbortSignal,
    /// Response DATA bytes handed to `h2`.
    sent: AtomicU64,
    /// The request's span ([`kestrel_core::events::request_span`]), entered
    /// around each poll of the app's future.
    span: tracing::Span,
}

struct Inner {
    recv: Option<RecvStream>,
    /// The shared request-body state machine (phase, counters, rate switch).
    body: RequestBodyState,
    /// The driver should send `100 Continue`.
    want_continue: bool,
    /// The DATA frames ended; the trailers (if any) are next.
    data_done: bool,
    completed: bool,
    /// A reset the application asked for, not yet sent.
    reset: Option<u32>,
}

/// What the driver must do for the application.
pub(crate) struct Control {
    pub reset: Option<u32>,
    pub send_continue: bool,
}

impl StreamState {
    pub fn new(
        stream_id: u32,
        recv: RecvStream,
        limits: LimitsCell,
        declared_len: Option<u64>,
        expect_continue: bool,
        span: tracing::Span,
    ) -> Arc<Self> {
        Arc::new(StreamState {
            span,
            limits,
            rates: DataRateControl::default(),
            abort: AbortSignal::new(),
            sent: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                recv: Some(recv),
                // The limit comes from the request's limits at the first read.
                body: RequestBodyState::new(true, declared_len, expect_continue, None),
                want_continue: false,
                data_done: false,
                completed: false,
                reset: None,
            }),
            driver: AtomicWaker::new(),
            stream_id,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Called by the driver on each poll: register for wake-ups and take
    /// what the application asked for.
    pub fn poll_control(&self, cx: &mut Context<'_>) -> Control {
        self.driver.register(cx.waker());
        let mut s = self.lock();
        Control {
            reset: s.reset.take(),
            send_continue: std::mem::take(&mut s.want_continue),
        }
    }

    /// Whether the body went over the request's size limit.
    pub fn is_too_large(&self) -> bool {
        self.lock().body.rejection() == Some(BodyRejection::TooLarge)
    }

    /// The stream is over: later reads fail with `RequestCompleted`, and the
    /// receive half goes back to `h2` (which resets it if the client is
    /// still sending).
    pub fn complete(&self) {
        let recv = {
            let mut s = self.lock();
            s.completed = true;
            s.recv.take()
        };
        self.limits.end();
        self.rates.end_read();
        drop(recv);
    }

    /// The request was aborted (the client reset the stream, the connection
    /// is gone, or the stream was reset): fire `RequestAborted`.
    pub fn abort(&self) {
        if self.abort.abort() {
            kestrel_core::events::request_aborted(
                None,
                Some(self.stream_id),
                "the stream ended before its response completed",
            );
        }
    }

    /// The request's span.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The HTTP/2 stream id.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// Whether the stream is over.
    pub fn is_completed(&self) -> bool {
        self.lock().completed
    }

    /// This stream's data-rate tracking.
    pub fn rates(&self) -> &DataRateControl {
        &self.rates
    }

    /// The response starts: its minimum data rate is the request's (the app
    /// may have changed it). Returns whether there is one.
    pub fn start_response_rate(&self) -> bool {
        self.rates.begin_response(&self.limits)
    }

    /// Check the rates at `now_ms` (the driver, once per heartbeat interval);
    /// see [`DataRateControl::on_tick_with`].
    pub fn tick_rates(&self, now_ms: u64, count_reads: bool) -> Option<TimeoutReason> {
        self.rates.on_tick_with(now_ms, count_reads)
    }

    /// Request body bytes `h2` holds for this stream that the app has not
    /// read yet: they take up the connection's receive window.
    pub fn buffered(&self) -> usize {
        self.lock()
            .recv
            .as_mut()
            .map_or(0, |r| r.flow_control().used_capacity())
    }

    /// The body arrived below its minimum rate: the app's reads fail with
    /// [`BodyError::Timeout`] (the driver closes the connection).
    pub fn time_out_body(&self) {
        self.lock().body.reject_if_open(BodyRejection::Timeout);
    }

    /// Take the receive half for an accepted extended CONNECT: its DATA
    /// frames now belong to the tunnel, not to a request body.
    pub fn take_recv(&self) -> Option<RecvStream> {
        self.lock().recv.take()
    }

    /// Count response DATA bytes handed to `h2`.
    pub fn add_sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Response DATA bytes handed to `h2` so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Take the receive half if the client has not finished sending the
    /// request body (the response is complete and the driver drains the rest).
    pub fn take_unfinished_recv(&self) -> Option<RecvStream> {
        let mut s = self.lock();
        if s.recv.as_ref().is_some_and(|r| !r.is_end_stream()) {
            s.recv.take()
        } else {
            None
        }
    }

    fn request_reset(&self, code: u32) {
        let mut s = self.lock();
        if !s.completed {
            s.reset = Some(code);
        }
        drop(s);
        self.driver.wake();
    }
}

/// A reset of the stream (by the client, or by us) or the end of the
/// connection: either way the client is gone (`err`, from the body state).
fn aborted(e: h2::Error, err: BodyError) -> BodyError {
    tracing::trace!(target: "kestrel::http2", error = %e, "request body read failed");
    err
}

impl BodySource for StreamState {
    fn poll_frame(
        &self,
        _token: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut guard = self.lock();
        let s = &mut *guard;
        if s.body.rejection() == Some(BodyRejection::Timeout) {
            // Below the minimum data rate: that stays the answer.
            return Poll::Ready(Some(Err(BodyError::Timeout)));
        }
        match s
            .body
            .start_stream_read(s.completed, &self.limits, &self.rates)
        {
            StreamReadStart::Read => {}
            StreamReadStart::End => return Poll::Ready(None),
            StreamReadStart::Fail(e) => return Poll::Ready(Some(Err(e))),
            StreamReadStart::Rejected(e) => {
                // The declared length is over the limit: the driver answers 413.
                drop(guard);
                self.driver.wake();
                return Poll::Ready(Some(Err(e)));
            }
        }
        let Some(recv) = s.recv.as_mut() else {
            return Poll::Ready(None);
        };
        while !s.data_done {
            match recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    let n = data.len();
                    s.body.read_waiting(&self.rates, false);
                    s.body.read_bytes(&self.rates, n);
                    // Hand the window back as the app consumes: h2 buffers at
                    // most one stream window of unread data.
                    let _ = recv.flow_control().release_capacity(n);
                    if n == 0 {
                        continue;
                    }
                    if let Err(e) = s.body.data_received(n) {
                        // Over the limit: the driver answers 413.
                        drop(guard);
                        self.driver.wake();
                        return Poll::Ready(Some(Err(e)));
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => {
                    s.body.end_rate(&self.rates);
                    let err = s.body.reject(BodyRejection::ClientGone);
                    drop(guard);
                    self.abort();
                    return Poll::Ready(Some(Err(aborted(e, err))));
                }
                Poll::Ready(None) => {
                    // Only DATA is timed (trailers are a header block).
                    s.body.end_rate(&self.rates);
                    s.data_done = true;
                }
                Poll::Pending => {
                    // Time spent waiting on the client counts toward the
                    // minimum request body data rate; the app's own pauses do not.
                    s.body.read_waiting(&self.rates, true);
                    if s.body.phase() == BodyPhase::ContinueOwed {
                        // Kestrel sends `100 Continue` when the app first
                        // reads the body and none of it has arrived yet.
                        s.body.continue_answered();
                        s.want_continue = true;
                        drop(guard);
                        self.driver.wake();
                    }
                    return Poll::Pending;
                }
            }
        }
        match recv.poll_trailers(cx) {
            Poll::Ready(Ok(Some(trailers))) => {
                s.body.finish();
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Poll::Ready(Ok(None)) => {
                s.body.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => {
                let err = s.body.reject(BodyRejection::ClientGone);
                drop(guard);
                self.abort();
                Poll::Ready(Some(Err(aborted(e, err))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self, _token: u64) -> bool {
        let s = self.lock();
        s.body.is_done() || s.recv.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self, _token: u64) -> SizeHint {
        let s = self.lock();
        match s.body.declared_len() {
            Some(n) => SizeHint::with_exact(n.saturating_sub(s.body.received())),
            None => SizeHint::default(),
        }
    }
}

impl AbortSource for StreamState {
    fn abort_signal(&self) -> &AbortSignal {
        &self.abort
    }
}

impl ResetSource for StreamState {
    fn reset(&self, code: u32) {
        self.request_reset(code);
    }

    fn stream_id(&self) -> u64 {
        u64::from(self.stream_id)
    }
}
