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
}

struct Inner {
    recv: Option<RecvStream>,
    limit: Option<u64>,
    declared_len: Option<u64>,
    received: u64,
    expect_continue: bool,
    continue_requested: bool,
    /// The driver should send `100 Continue`.
    want_continue: bool,
    first_read: bool,
    data_done: bool,
    done: bool,
    too_large: bool,
    completed: bool,
    /// A reset the application asked for, not yet sent.
    reset: Option<u32>,
    /// The body arrived below the minimum data rate: reads fail with `Timeout`.
    timed_out: bool,
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
    ) -> Arc<Self> {
        Arc::new(StreamState {
            limits,
            rates: DataRateControl::default(),
            abort: AbortSignal::new(),
            sent: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                recv: Some(recv),
                limit: None,
                declared_len,
                received: 0,
                expect_continue,
                continue_requested: false,
                want_continue: false,
                first_read: false,
                data_done: false,
                done: false,
                too_large: false,
                completed: false,
                reset: None,
                timed_out: false,
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
        self.lock().too_large
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
        let rate = self.limits.current().min_response_data_rate;
        self.rates.set_write_rate(rate);
        rate.is_some()
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
        self.lock().timed_out = true;
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

fn aborted(_e: h2::Error) -> BodyError {
    // A reset of the stream (by the client, or by us) or the end of the
    // connection: either way the client is gone.
    BodyError::ConnectionAborted
}

impl BodySource for StreamState {
    fn poll_frame(
        &self,
        _token: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut guard = self.lock();
        let s = &mut *guard;
        if s.timed_out {
            return Poll::Ready(Some(Err(BodyError::Timeout)));
        }
        if s.completed {
            return Poll::Ready(Some(Err(BodyError::RequestCompleted)));
        }
        if s.too_large {
            return Poll::Ready(Some(Err(BodyError::TooLarge {
                limit: s.limit.unwrap_or(0),
            })));
        }
        if s.done {
            return Poll::Ready(None);
        }
        if !s.first_read {
            s.first_read = true;
            // The app's last word on the limits is taken now, as in Kestrel.
            let values = self.limits.freeze();
            s.limit = values.max_request_body_size;
            if values.min_request_body_data_rate.is_some() {
                self.rates.begin_read(values.min_request_body_data_rate);
            }
            if let (Some(limit), Some(n)) = (s.limit, s.declared_len) {
                if n > limit {
                    s.too_large = true;
                    drop(guard);
                    self.driver.wake();
                    return Poll::Ready(Some(Err(BodyError::TooLarge { limit })));
                }
            }
        }
        let Some(recv) = s.recv.as_mut() else {
            return Poll::Ready(None);
        };
        while !s.data_done {
            match recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    let n = data.len();
                    self.rates.set_read_waiting(false);
                    self.rates.add_read_bytes(n);
                    // Hand the window back as the app consumes: h2 buffers at
                    // most one stream window of unread data.
                    let _ = recv.flow_control().release_capacity(n);
                    if n == 0 {
                        continue;
                    }
                    s.received += n as u64;
                    if let Some(limit) = s.limit {
                        if s.received > limit {
                            s.too_large = true;
                            drop(guard);
                            self.driver.wake();
                            return Poll::Ready(Some(Err(BodyError::TooLarge { limit })));
                        }
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => {
                    self.rates.end_read();
                    self.abort();
                    return Poll::Ready(Some(Err(aborted(e))));
                }
                Poll::Ready(None) => {
                    // Only DATA is timed (trailers are a header block).
                    self.rates.end_read();
                    s.data_done = true;
                }
                Poll::Pending => {
                    // Time spent waiting on the client counts toward the
                    // minimum request body data rate; the app's own pauses do not.
                    self.rates.set_read_waiting(true);
                    if s.expect_continue && !s.continue_requested && s.received == 0 {
                        // Kestrel sends `100 Continue` when the app first
                        // reads the body and none of it has arrived yet.
                        s.continue_requested = true;
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
                s.done = true;
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Poll::Ready(Ok(None)) => {
                s.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => {
                self.abort();
                Poll::Ready(Some(Err(aborted(e))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self, _token: u64) -> bool {
        let s = self.lock();
        s.done || s.recv.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self, _token: u64) -> SizeHint {
        let s = self.lock();
        match s.declared_len {
            Some(n) => SizeHint::with_exact(n.saturating_sub(s.received)),
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
