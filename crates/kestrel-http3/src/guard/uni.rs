//! Unidirectional streams: their type read within the request-headers
//! timeout, and the QPACK encoder and decoder streams checked against a
//! dynamic table of capacity 0.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;
use std::time::Duration;

use bytes::{Buf, Bytes};
use kestrel_transport::multiplexed::{BoxRecvStream, StreamError};

use crate::varint;

use super::*;

/// A unidirectional stream whose type has not arrived yet.
pub(super) struct Untyped {
    pub(super) stream: BoxRecvStream,
    /// The type's bytes so far (a QUIC variable-length integer: 1 to 8).
    pub(super) raw: Vec<u8>,
    pub(super) deadline: Pin<Box<tokio::time::Sleep>>,
}

pub(super) enum TypeOutcome {
    /// The stream ended, or was reset, before its type (tolerated).
    Ended,
    TimedOut,
    Typed {
        ty: u64,
        raw: Bytes,
        rest: Bytes,
    },
}

impl Untyped {
    pub(super) fn new(stream: BoxRecvStream, timeout: Duration) -> Untyped {
        Untyped {
            stream,
            raw: Vec::with_capacity(8),
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    pub(super) fn poll_type(&mut self, cx: &mut Context<'_>) -> Poll<TypeOutcome> {
        loop {
            match self.stream.poll_data(cx) {
                Poll::Ready(Ok(Some(mut data))) => {
                    while data.has_remaining() {
                        self.raw.push(data.get_u8());
                        if let Some(ty) = varint::decode(&self.raw) {
                            return Poll::Ready(TypeOutcome::Typed {
                                ty,
                                raw: Bytes::copy_from_slice(&self.raw),
                                rest: data,
                            });
                        }
                    }
                }
                Poll::Ready(Ok(None)) | Poll::Ready(Err(_)) => {
                    return Poll::Ready(TypeOutcome::Ended)
                }
                Poll::Pending => {
                    return match self.deadline.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(TypeOutcome::TimedOut),
                        Poll::Pending => Poll::Pending,
                    }
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum QpackKind {
    Encoder,
    Decoder,
}

/// The peer's QPACK encoder or decoder stream, its instructions checked
/// against a dynamic table of capacity 0.
pub(super) struct QpackStream {
    pub(super) kind: QpackKind,
    pub(super) stream: BoxRecvStream,
    /// Inside a Stream Cancellation's multi-byte stream id: bytes so far.
    pub(super) continuation: Option<u8>,
    /// The connection ended under it: nothing more to check.
    pub(super) gone: bool,
    /// Whether the stream woke the connection since it was last read: the
    /// connection's task polls for new unidirectional streams on every
    /// wake-up, and reading a QUIC stream each time costs a lock of the
    /// QUIC connection.
    pub(super) wake: Arc<WakeFlag>,
    pub(super) waker: Waker,
}

/// Set by the stream's own waker, which then wakes the connection's task.
#[derive(Default)]
pub(super) struct WakeFlag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

pub(super) type Violation = (u64, &'static str);

impl QpackStream {
    pub(super) fn new(kind: QpackKind, stream: BoxRecvStream) -> QpackStream {
        let wake = Arc::new(WakeFlag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        QpackStream {
            kind,
            stream,
            continuation: None,
            gone: false,
            waker: Waker::from(wake.clone()),
            wake,
        }
    }

    pub(super) fn check(&mut self, data: &[u8]) -> Result<(), Violation> {
        for &b in data {
            match self.kind {
                // RFC 9204 §4.3: 001xxxxx Set Dynamic Table Capacity is the
                // only valid instruction, with capacity 0 (our maximum);
                // an insert (1xxxxxxx, 01xxxxxx) cannot fit a table of
                // capacity 0 and a Duplicate (000xxxxx) has no entry.
                QpackKind::Encoder if b == 0x20 => {}
                QpackKind::Encoder => {
                    return Err((
                        QPACK_ENCODER_STREAM_ERROR,
                        "an encoder instruction other than a table capacity of 0",
                    ))
                }
                QpackKind::Decoder => match self.continuation {
                    // RFC 9204 §4.4: a prefix integer goes on while the
                    // high bit is set; a stream id fits in 9 bytes.
                    Some(n) if n >= 9 => {
                        return Err((QPACK_DECODER_STREAM_ERROR, "an overlong integer"))
                    }
                    Some(n) => self.continuation = (b & 0x80 != 0).then_some(n + 1),
                    // 01xxxxxx Stream Cancellation (6-bit prefix).
                    None if b & 0xc0 == 0x40 => {
                        self.continuation = (b & 0x3f == 0x3f).then_some(0);
                    }
                    // 1xxxxxxx Section Acknowledgment: the server never
                    // sends a field section that refers to the table;
                    // 00xxxxxx Insert Count Increment: it inserts nothing.
                    None => {
                        return Err((
                            QPACK_DECODER_STREAM_ERROR,
                            "a section acknowledgment or insert count increment for a table the server never used",
                        ))
                    }
                },
            }
        }
        Ok(())
    }

    /// Read and check what arrived; `Ready(Err)` is a connection error.
    pub(super) fn poll_check(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Violation>> {
        if self.gone {
            return Poll::Ready(Ok(()));
        }
        self.wake.task.register(cx.waker());
        if !self.wake.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = self.waker.clone();
        let mut own = Context::from_waker(&waker);
        loop {
            match self.stream.poll_data(&mut own) {
                Poll::Ready(Ok(Some(data))) => self.check(&data)?,
                Poll::Ready(Ok(None)) | Poll::Ready(Err(StreamError::Reset { .. })) => {
                    return Poll::Ready(Err((
                        H3_CLOSED_CRITICAL_STREAM,
                        "a QPACK encoder or decoder stream was closed",
                    )))
                }
                Poll::Ready(Err(_)) => {
                    // The connection is gone: h3 learns it elsewhere.
                    self.gone = true;
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
