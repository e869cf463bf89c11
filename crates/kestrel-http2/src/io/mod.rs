//! The connection's stream, wrapped on the read side ([`CountingIo`]):
//!
//! * it counts the bytes read ([`ReadCounter`]): the keep-alive PING is sent
//!   only after a period with no frame from the client, and `h2` does not
//!   tell when frames arrive;
//! * it follows the frame boundaries of what `h2` reads ([`FrameCheck`], in
//!   [`frame_check`]) to give the error codes RFC 9113 asks for where `h2`
//!   gives another one, and to see WINDOW_UPDATEs `h2` ignores (see
//!   `docs/http2.md`, "Conformance"), to bound PING and SETTINGS floods
//!   ([`CONTROL_FRAME_PERIOD`]), and to tell when a header block is in
//!   progress (the request-headers deadline runs then).

mod frame_check;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use h2::Reason;
use kestrel_core::heartbeat::Clock;
use kestrel_transport::BoxIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(crate) use frame_check::{FrameCheck, CONTROL_FRAME_PERIOD};

/// The largest flow-control window (RFC 9113 §6.9.1).
const MAX_WINDOW: i64 = (1 << 31) - 1;
/// No violation recorded.
const NONE: u32 = u32::MAX;

/// What the read side shares with the driver: bytes read, the connection
/// error a frame check found, and the streams whose windows it watches.
#[derive(Debug)]
pub(crate) struct ReadCounter {
    bytes: AtomicU64,
    /// The error code of the connection error found ([`NONE`] if none).
    violation: AtomicU32,
    /// The number (from 1) of the header block in progress, 0 if none: its
    /// HEADERS frame's header was read, and the whole frame with END_HEADERS
    /// (the HEADERS itself or its last CONTINUATION) not yet. The
    /// request-headers deadline runs meanwhile, each block its own.
    open_block: AtomicU64,
    /// How many streams are in `watched` (checked before locking it).
    watching: AtomicUsize,
    watched: Mutex<Vec<Watch>>,
}

#[derive(Debug)]
struct Watch {
    stream_id: u32,
    /// DATA bytes the server sent on the stream.
    sent: u64,
    /// WINDOW_UPDATE increments received since the watch began.
    increments: i64,
    overflowed: bool,
    waker: Option<Waker>,
}

impl Default for ReadCounter {
    fn default() -> Self {
        ReadCounter {
            bytes: AtomicU64::new(0),
            violation: AtomicU32::new(NONE),
            open_block: AtomicU64::new(0),
            watching: AtomicUsize::new(0),
            watched: Mutex::new(Vec::new()),
        }
    }
}

impl ReadCounter {
    /// Bytes read so far.
    pub fn get(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The connection error a frame check found: the driver closes the
    /// connection with GOAWAY and this code (`h2` has not seen the frame).
    pub fn violation(&self) -> Option<Reason> {
        match self.violation.load(Ordering::Acquire) {
            NONE => None,
            code => Some(Reason::from(code)),
        }
    }

    /// The header block in progress, if any, as the number of blocks begun
    /// so far: its HEADERS frame's header was read and the whole frame with
    /// END_HEADERS not yet (`h2` surfaces a stream only once its block is
    /// complete, and reads nothing else meanwhile).
    pub fn header_block_open(&self) -> Option<u64> {
        match self.open_block.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Watch>> {
        self.watched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watch the send window of `stream_id`, on which the server sent its
    /// whole response (`sent` DATA bytes): `h2` ignores WINDOW_UPDATE on a
    /// stream it can no longer send on, so an increment past 2^31−1 there
    /// (RFC 9113 §6.9.1: the stream must be terminated with
    /// FLOW_CONTROL_ERROR) is seen here.
    pub fn watch_window(self: &Arc<Self>, stream_id: u32, sent: u64) -> WindowWatch {
        self.lock().push(Watch {
            stream_id,
            sent,
            increments: 0,
            overflowed: false,
            waker: None,
        });
        self.watching.fetch_add(1, Ordering::Release);
        WindowWatch {
            reads: self.clone(),
            stream_id,
        }
    }

    /// A WINDOW_UPDATE of `increment` on `stream_id`, with the client's
    /// SETTINGS_INITIAL_WINDOW_SIZE now `initial`.
    fn window_update(&self, stream_id: u32, increment: u32, initial: u32) {
        if self.watching.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut watched = self.lock();
        if let Some(w) = watched.iter_mut().find(|w| w.stream_id == stream_id) {
            w.increments += i64::from(increment);
            // The window is the initial size, minus what was sent, plus every
            // increment; those before the watch began only add to it, so
            // this is a lower bound: past the maximum, it overflowed.
            let sent = i64::try_from(w.sent).unwrap_or(i64::MAX);
            let at_least = i64::from(initial) - sent + w.increments;
            if at_least > MAX_WINDOW && !w.overflowed {
                w.overflowed = true;
                if let Some(waker) = w.waker.take() {
                    waker.wake();
                }
            }
        }
    }
}

/// A stream whose send window is watched ([`ReadCounter::watch_window`]);
/// the watch ends when this is dropped.
pub(crate) struct WindowWatch {
    reads: Arc<ReadCounter>,
    stream_id: u32,
}

impl WindowWatch {
    /// Ready once a WINDOW_UPDATE took the stream's window past 2^31−1.
    pub fn poll_overflow(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut watched = self.reads.lock();
        match watched.iter_mut().find(|w| w.stream_id == self.stream_id) {
            Some(w) if w.overflowed => Poll::Ready(()),
            Some(w) => {
                w.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for WindowWatch {
    fn drop(&mut self) {
        let mut watched = self.reads.lock();
        if let Some(i) = watched.iter().position(|w| w.stream_id == self.stream_id) {
            watched.swap_remove(i);
            self.reads.watching.fetch_sub(1, Ordering::Release);
        }
    }
}

pub(crate) struct CountingIo {
    inner: BoxIo,
    counter: Arc<ReadCounter>,
    clock: Arc<Clock>,
    check: FrameCheck,
}

impl CountingIo {
    /// `control_limit`: PING/SETTINGS frames allowed per second (`None`: no limit).
    /// Time comes from `clock`.
    pub fn new(
        inner: BoxIo,
        counter: Arc<ReadCounter>,
        control_limit: Option<u32>,
        clock: Arc<Clock>,
    ) -> Self {
        CountingIo {
            inner,
            counter,
            clock,
            check: FrameCheck::with_control_limit(control_limit),
        }
    }
}

impl AsyncRead for CountingIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.check.failed {
            // The connection is closing with GOAWAY: nothing more is read.
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            let this = &mut *self;
            this.counter.bytes.fetch_add(n as u64, Ordering::Relaxed);
            if let Some((at, reason)) = this.check.feed(
                &buf.filled()[before..],
                &this.counter,
                this.clock.precise_ticks(),
            ) {
                if reason == Reason::ENHANCE_YOUR_CALM {
                    tracing::debug!(target: "kestrel::http2", limit = ?this.check.control_limit, "PING/SETTINGS flood from the client: closing the connection with GOAWAY ENHANCE_YOUR_CALM");
                } else {
                    tracing::debug!(target: "kestrel::http2", error_code = u32::from(reason), "a frame from the client is malformed: closing the connection with GOAWAY");
                }
                this.check.failed = true;
                buf.set_filled(before + at);
                this.counter
                    .violation
                    .store(u32::from(reason), Ordering::Release);
                // The driver sees it on its next poll.
                cx.waker().wake_by_ref();
                if at == 0 {
                    return Poll::Pending;
                }
            }
        }
        r
    }
}

impl AsyncWrite for CountingIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
