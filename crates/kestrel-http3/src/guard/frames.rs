//! Frame-delimited streams: unknown frames dropped as they arrive, frames
//! h3 would buffer whole bounded, a request stream's wait for its head, and
//! the sending half reset once its receiving half refused the stream.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use kestrel_core::connection::ConnectionId;
use kestrel_transport::multiplexed::{
    BoxRecvStream, BoxSendStream, ConnectionError, RecvStream, SendStream, StreamError, StreamId,
};

use crate::varint;

use super::*;

/// What a frame-delimited stream is.
pub(super) enum Role {
    /// The peer's control stream.
    Control,
    /// A request stream: HEADERS frames are limited.
    Request {
        max_headers_frame: u64,
        /// Shared with the stream's sending half: once the stream is
        /// refused, the code its reset and stop carry (0 until then).
        refused: Arc<AtomicU64>,
        /// HEADERS frames passed so far (the first is the request's head).
        heads: u32,
    },
}

/// Where a [`FrameFilter`] is in its stream.
pub(super) enum FrameState {
    /// Reading a frame's type and length (up to 16 bytes).
    Header(Vec<u8>),
    /// Passing this many payload bytes on.
    Pass(u64),
    /// Collecting the request's head (the first HEADERS frame): h3 gets it
    /// whole or not at all.
    Head {
        header: Bytes,
        need: u64,
        payload: BytesMut,
    },
    /// Dropping this many payload bytes of an unknown frame.
    Skip(u64),
    /// Everything on as it comes.
    Raw,
}

/// A request stream's wait for its head.
pub(super) struct HeadWait {
    pub(super) deadline: Option<tokio::time::Instant>,
    /// Set once the head is late to arrive.
    pub(super) sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// An empty field section in a HEADERS frame: what h3 is given for a
/// request stream that ends, is reset or times out before its head. h3
/// refuses it as malformed, and that is the only way h3 0.0.8 forgets a
/// stream it accepted (it keeps every accepted stream's id until a request
/// built from a head is dropped): without it each such stream stayed in
/// h3's set for the connection's life, and h3's `accept` never ended after
/// the client's GOAWAY.
pub(super) const EMPTY_HEAD: &[u8] = &[0x01, 0x02, 0x00, 0x00];

/// A receiving half delimited into frames: unknown frames are dropped,
/// oversized ones refused (module docs).
pub(super) struct FrameFilter {
    pub(super) inner: BoxRecvStream,
    pub(super) conn: ConnectionId,
    pub(super) role: Role,
    /// A request stream whose head has not arrived yet.
    pub(super) head: Option<HeadWait>,
    pub(super) closer: SharedOpener,
    pub(super) state: FrameState,
    /// Bytes for h3, before reading more.
    pub(super) out: VecDeque<Bytes>,
    /// The inner stream ended or failed: `out`, then this.
    pub(super) end: Option<Result<(), StreamError>>,
}

impl FrameFilter {
    pub(super) fn new(
        inner: BoxRecvStream,
        conn: ConnectionId,
        role: Role,
        closer: SharedOpener,
    ) -> FrameFilter {
        FrameFilter {
            inner,
            conn,
            role,
            closer,
            head: None,
            state: FrameState::Header(Vec::with_capacity(16)),
            out: VecDeque::new(),
            end: None,
        }
    }

    /// Delimit `data`, queueing what h3 gets.
    pub(super) fn feed(&mut self, mut data: Bytes) -> Result<(), Violation> {
        while data.has_remaining() {
            match &mut self.state {
                FrameState::Raw => {
                    self.out.push_back(data);
                    return Ok(());
                }
                FrameState::Pass(n) => {
                    let k = (*n).min(data.len() as u64) as usize;
                    self.out.push_back(data.split_to(k));
                    *n -= k as u64;
                    if *n == 0 {
                        self.state = FrameState::Header(Vec::with_capacity(16));
                    }
                }
                FrameState::Head { need, payload, .. } => {
                    let k = (*need).min(data.len() as u64) as usize;
                    let part = data.split_to(k);
                    *need -= k as u64;
                    let whole = *need == 0 && payload.is_empty();
                    if !whole {
                        payload.extend_from_slice(&part);
                    }
                    if *need == 0 {
                        let state = std::mem::replace(
                            &mut self.state,
                            FrameState::Header(Vec::with_capacity(16)),
                        );
                        if let FrameState::Head {
                            header, payload, ..
                        } = state
                        {
                            self.out.push_back(header);
                            self.out
                                .push_back(if whole { part } else { payload.freeze() });
                        }
                        self.head = None;
                    }
                }
                FrameState::Skip(n) => {
                    let k = (*n).min(data.len() as u64) as usize;
                    data.advance(k);
                    *n -= k as u64;
                    if *n == 0 {
                        self.state = FrameState::Header(Vec::with_capacity(16));
                    }
                }
                FrameState::Header(buf) => {
                    buf.push(data.get_u8());
                    let Some(ty) = varint::decode(buf) else {
                        continue;
                    };
                    let ty_len = varint::encoded_len(buf[0]);
                    if ty == FRAME_WEBTRANSPORT_STREAM {
                        self.out.push_back(Bytes::copy_from_slice(buf));
                        self.state = FrameState::Raw;
                        continue;
                    }
                    let Some(len) = varint::decode(&buf[ty_len..]) else {
                        continue;
                    };
                    let header = Bytes::copy_from_slice(buf);
                    self.state = self.frame(ty, len, header)?;
                }
            }
        }
        Ok(())
    }

    /// A frame's type and length are in: what to do with its payload.
    pub(super) fn frame(
        &mut self,
        ty: u64,
        len: u64,
        header: Bytes,
    ) -> Result<FrameState, Violation> {
        let next = |len: u64, pass: bool| match (len, pass) {
            (0, _) => FrameState::Header(Vec::with_capacity(16)),
            (n, true) => FrameState::Pass(n),
            (n, false) => FrameState::Skip(n),
        };
        if ty == FRAME_DATA {
            self.out.push_back(header);
            return Ok(next(len, true));
        }
        if ty == FRAME_HEADERS {
            if let Role::Request {
                max_headers_frame,
                refused,
                heads,
            } = &mut self.role
            {
                if len > *max_headers_frame {
                    if *heads == 0 {
                        refused.store(H3_REQUEST_REJECTED, Ordering::Relaxed);
                        return Err((
                            H3_REQUEST_REJECTED,
                            "the request's HEADERS frame is over twice the header size limit",
                        ));
                    }
                    return Err((
                        H3_REQUEST_CANCELLED,
                        "a trailing HEADERS frame over twice the header size limit",
                    ));
                }
                let first = *heads == 0;
                *heads = heads.saturating_add(1);
                if first && len > 0 {
                    return Ok(FrameState::Head {
                        header,
                        need: len,
                        payload: BytesMut::new(),
                    });
                }
                self.head = None;
                self.out.push_back(header);
                return Ok(next(len, true));
            }
        }
        if ty == FRAME_HEADERS || is_buffered_known_frame(ty) {
            if len > MAX_CONTROL_FRAME {
                return Err((H3_EXCESSIVE_LOAD, "a frame h3 buffers whole is too large"));
            }
            self.out.push_back(header);
            return Ok(next(len, true));
        }
        // An unknown (reserved or extension) frame: dropped.
        Ok(next(len, false))
    }

    /// A violation: a stream error refuses this stream, a connection error
    /// closes the connection.
    pub(super) fn violation(&mut self, (code, reason): Violation) -> StreamError {
        tracing::debug!(target: "kestrel::http3", connection_id = %self.conn, stream_id = self.inner.id().as_u64(), code = format_args!("{code:#x}"), reason, "refused");
        self.out.clear();
        self.inner.stop_sending(code);
        if code == H3_EXCESSIVE_LOAD || code == H3_FRAME_ERROR {
            if let Ok(mut closer) = self.closer.lock() {
                closer.close(code, reason.as_bytes());
            }
            let e = StreamError::Connection(ConnectionError::LocallyClosed { code });
            self.end = Some(Err(e.clone()));
            return e;
        }
        let e = StreamError::Reset { code };
        self.end = Some(Err(e.clone()));
        e
    }

    /// The request stream ended, was reset or timed out before its head:
    /// h3 gets [`EMPTY_HEAD`] and the stream's end, and refuses the stream
    /// (its reset and stop carry `code`).
    pub(super) fn refuse(&mut self, code: u64, reason: &'static str) {
        tracing::debug!(target: "kestrel::http3", connection_id = %self.conn, stream_id = self.inner.id().as_u64(), code = format_args!("{code:#x}"), reason, "request stream refused before its head");
        if let Role::Request { refused, .. } = &self.role {
            refused.store(code, Ordering::Relaxed);
        }
        self.head = None;
        self.state = FrameState::Raw;
        self.out.clear();
        self.out.push_back(Bytes::from_static(EMPTY_HEAD));
        self.end = Some(Ok(()));
    }

    /// The head's deadline, polled while the stream has nothing to read.
    pub(super) fn poll_head_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(head) = self.head.as_mut() else {
            return Poll::Pending;
        };
        let Some(deadline) = head.deadline else {
            return Poll::Pending;
        };
        let sleep = head
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        sleep.as_mut().poll(cx)
    }
}

impl RecvStream for FrameFilter {
    fn id(&self) -> StreamId {
        self.inner.id()
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>> {
        loop {
            if let Some(b) = self.out.pop_front() {
                return Poll::Ready(Ok(Some(b)));
            }
            if let Some(end) = &self.end {
                return Poll::Ready(end.clone().map(|()| None));
            }
            let polled = match self.inner.poll_data(cx) {
                Poll::Ready(r) => r,
                Poll::Pending => {
                    if self.poll_head_deadline(cx).is_ready() {
                        // The request-headers timeout.
                        self.refuse(H3_REQUEST_REJECTED, "RequestHeadersTimeout");
                        continue;
                    }
                    return Poll::Pending;
                }
            };
            match polled {
                Ok(Some(data)) => {
                    if let Err(v) = self.feed(data) {
                        return Poll::Ready(Err(self.violation(v)));
                    }
                }
                Ok(None) => {
                    let cut = match &self.state {
                        FrameState::Header(buf) => !buf.is_empty(),
                        FrameState::Pass(_) | FrameState::Skip(_) | FrameState::Head { .. } => true,
                        FrameState::Raw => false,
                    };
                    if cut {
                        // RFC 9114 §7.1: a frame cut short by the stream's
                        // end is H3_FRAME_ERROR. h3 0.0.8 takes a DATA frame
                        // cut so for the body's end, then panics on an
                        // assertion when the trailers are read.
                        let v = (H3_FRAME_ERROR, "a frame cut short by the end of its stream");
                        return Poll::Ready(Err(self.violation(v)));
                    }
                    if self.head.is_some() {
                        // RFC 9114 §4.1.1: no complete request.
                        self.refuse(H3_REQUEST_INCOMPLETE, "the stream ended before its head");
                        continue;
                    }
                    self.end = Some(Ok(()));
                }
                Err(StreamError::Reset { .. }) if self.head.is_some() => {
                    self.refuse(
                        H3_REQUEST_CANCELLED,
                        "the client reset the stream before its head",
                    );
                }
                Err(e) => self.end = Some(Err(e)),
            }
        }
    }

    fn stop_sending(&mut self, code: u64) {
        let code = match &self.role {
            Role::Request { refused, .. } => match refused.load(Ordering::Relaxed) {
                0 => code,
                refused => refused,
            },
            Role::Control => code,
        };
        self.inner.stop_sending(code);
    }
}

/// A request stream's sending half: once its receiving half refused the
/// stream, reset with the refusal's code.
pub(super) struct GuardedSend {
    pub(super) inner: BoxSendStream,
    pub(super) refused: Arc<AtomicU64>,
}

impl SendStream for GuardedSend {
    fn id(&self) -> StreamId {
        self.inner.id()
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, StreamError>> {
        self.inner.poll_write(cx, buf)
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamError>> {
        self.inner.poll_finish(cx)
    }

    fn reset(&mut self, code: u64) {
        match self.refused.load(Ordering::Relaxed) {
            0 => self.inner.reset(code),
            refused => self.inner.reset(refused),
        }
    }
}
