//! The state one request stream shares between its driver and the
//! application: the request body (a [`BodySource`] over h3's receive half,
//! on the shared [`RequestBodyState`]), when to send `100 Continue`, the
//! stream's minimum data rates, `RequestAborted`, and the app's request to
//! reset the stream ([`StreamReset`](kestrel_core::StreamReset)).

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use bytes::{Buf, Bytes};
use h3::server::RequestStream;
use http_body::{Frame, SizeHint};
use kestrel_core::aborted::{AbortSignal, AbortSource};
use kestrel_core::body_state::{BodyPhase, BodyRejection, RequestBodyState, StreamReadStart};
use kestrel_core::connection::TimeoutReason;
use kestrel_core::data_rate::DataRateControl;
use kestrel_core::features::ResetSource;
use kestrel_core::request_limits::LimitsCell;
use kestrel_core::{BodyError, BodySource};

use crate::quic::H3Recv;

/// The receiving half of a request stream.
pub(crate) type Recv = RequestStream<H3Recv, Bytes>;

/// What the driver must do before polling the app again.
pub(crate) enum DriverEvent {
    /// The app asked for the stream to be reset with this code.
    Reset(u32),
    /// A minimum data rate was not met.
    TimedOut(TimeoutReason),
    /// Send `100 Continue`.
    SendContinue,
}

/// One request stream's shared state.
pub(crate) struct StreamState {
    inner: Mutex<Inner>,
    /// Wakes the stream's driver (the app asked for a reset, the body went
    /// over its limit, `100 Continue` is owed, or a data rate timed out).
    driver: AtomicWaker,
    stream_id: u64,
    limits: LimitsCell,
    rates: DataRateControl,
    abort: AbortSignal,
    span: tracing::Span,
    /// `Inner::timed_out` is set: read without the lock on every poll of
    /// the response.
    any_timeout: std::sync::atomic::AtomicBool,
    /// `Inner::completed`, for the connection's rate check without the lock.
    done: std::sync::atomic::AtomicBool,
}

struct Inner {
    recv: Option<Recv>,
    body: RequestBodyState,
    /// The DATA frames ended; the trailers (if any) are next.
    data_done: bool,
    /// The client finished the request stream (everything was read).
    finished: bool,
    completed: bool,
    reset: Option<u32>,
    /// The app waits for a body the client holds back for `100 Continue`.
    want_continue: bool,
    /// A minimum data rate was not met (the connection's rate check).
    timed_out: Option<TimeoutReason>,
}

impl StreamState {
    pub fn new(
        stream_id: u64,
        recv: Recv,
        limits: LimitsCell,
        declared_len: Option<u64>,
        expect_continue: bool,
        span: tracing::Span,
    ) -> Arc<Self> {
        Arc::new(StreamState {
            span,
            any_timeout: std::sync::atomic::AtomicBool::new(false),
            done: std::sync::atomic::AtomicBool::new(false),
            limits,
            rates: DataRateControl::default(),
            abort: AbortSignal::new(),
            inner: Mutex::new(Inner {
                recv: Some(recv),
                body: RequestBodyState::new(true, declared_len, expect_continue, None),
                data_done: false,
                finished: false,
                completed: false,
                reset: None,
                want_continue: false,
                timed_out: None,
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

    /// Called by the driver on each poll of the app: register for wake-ups
    /// and take what the driver must do first, under one lock: a reset the
    /// application asked for, a data rate not met, or `100 Continue` to send
    /// (the app reads a body the client holds back until then).
    pub fn poll_driver(&self, cx: &mut Context<'_>) -> Option<DriverEvent> {
        self.driver.register(cx.waker());
        let mut s = self.lock();
        if let Some(code) = s.reset.take() {
            return Some(DriverEvent::Reset(code));
        }
        if let Some(reason) = s.timed_out {
            return Some(DriverEvent::TimedOut(reason));
        }
        std::mem::take(&mut s.want_continue).then_some(DriverEvent::SendContinue)
    }

    /// A minimum data rate the connection's check found unmet, if any
    /// (registering for the wake-up that reports one).
    pub fn poll_timed_out(&self, cx: &mut Context<'_>) -> Option<TimeoutReason> {
        self.driver.register(cx.waker());
        if !self.any_timeout.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.lock().timed_out
    }

    /// Whether the stream is over.
    pub fn is_completed(&self) -> bool {
        self.done.load(std::sync::atomic::Ordering::Acquire)
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

    /// Check the rates at `now_ms` (the connection, once per heartbeat
    /// interval). A rate not met ends the stream: the app's reads fail with
    /// [`BodyError::Timeout`] and the driver resets the stream.
    pub fn check_rates(&self, now_ms: u64) -> Option<TimeoutReason> {
        let reason = self.rates.on_tick(now_ms)?;
        let mut s = self.lock();
        if s.completed || s.timed_out.is_some() {
            return None;
        }
        if reason == TimeoutReason::ReadDataRate {
            s.body.reject_if_open(BodyRejection::Timeout);
        }
        s.timed_out = Some(reason);
        self.any_timeout
            .store(true, std::sync::atomic::Ordering::Release);
        drop(s);
        self.driver.wake();
        Some(reason)
    }

    /// Whether the body went over the request's size limit.
    pub fn is_too_large(&self) -> bool {
        self.lock().body.rejection() == Some(BodyRejection::TooLarge)
    }

    /// The stream is over: later reads fail with `RequestCompleted`. Returns
    /// the receive half if the client has not finished sending (the driver
    /// asks it to stop).
    pub fn complete(&self) -> Option<Recv> {
        let recv = {
            let mut s = self.lock();
            s.completed = true;
            self.done.store(true, std::sync::atomic::Ordering::Release);
            let finished = s.finished;
            s.recv.take().filter(|_| !finished)
        };
        self.limits.end();
        self.rates.end_read();
        recv
    }

    /// The request was aborted: fire `RequestAborted`.
    pub fn abort(&self) {
        if self.abort.abort() {
            kestrel_core::events::request_aborted(
                None,
                u32::try_from(self.stream_id).ok(),
                "the stream ended before its response completed",
            );
        }
    }

    /// The request's span.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }
}

impl BodySource for StreamState {
    fn poll_frame(
        &self,
        _token: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut guard = self.lock();
        let s = &mut *guard;
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
            match recv.poll_recv_data(cx) {
                Poll::Ready(Ok(Some(mut data))) => {
                    let data = data.copy_to_bytes(data.remaining());
                    let n = data.len();
                    s.body.read_waiting(&self.rates, false);
                    s.body.read_bytes(&self.rates, n);
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
                Poll::Ready(Ok(None)) => {
                    s.body.read_waiting(&self.rates, false);
                    s.body.end_rate(&self.rates);
                    s.data_done = true;
                }
                Poll::Ready(Err(e)) => {
                    tracing::debug!(target: "kestrel::http3", stream_id = self.stream_id, error = %e, "request body read failed");
                    s.body.end_rate(&self.rates);
                    let err = s.body.reject(BodyRejection::ClientGone);
                    drop(guard);
                    self.abort();
                    return Poll::Ready(Some(Err(err)));
                }
                Poll::Pending => {
                    // Waiting on the client counts toward the minimum rate.
                    s.body.read_waiting(&self.rates, true);
                    if s.body.phase() == BodyPhase::ContinueOwed {
                        // The app waits for a body the client holds back:
                        // the driver sends `100 Continue` now.
                        s.body.continue_answered();
                        s.want_continue = true;
                        drop(guard);
                        self.driver.wake();
                    }
                    return Poll::Pending;
                }
            }
        }
        match recv.poll_recv_trailers(cx) {
            Poll::Ready(Ok(trailers)) => {
                s.body.finish();
                s.finished = true;
                Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))))
            }
            Poll::Ready(Err(e)) => {
                tracing::debug!(target: "kestrel::http3", stream_id = self.stream_id, error = %e, "request trailers read failed");
                let err = s.body.reject(BodyRejection::ClientGone);
                drop(guard);
                self.abort();
                Poll::Ready(Some(Err(err)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self, _token: u64) -> bool {
        let s = self.lock();
        s.body.is_done() || s.finished
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
        let mut s = self.lock();
        if !s.completed {
            s.reset = Some(code);
        }
        drop(s);
        self.driver.wake();
    }

    fn stream_id(&self) -> u64 {
        self.stream_id
    }
}
