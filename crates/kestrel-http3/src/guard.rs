//! [`GuardedStreams`]: the peer's streams, checked before h3 reads them.
//!
//! h3 0.0.8 leaves part of RFC 9114 and RFC 9204 undone, and some of it
//! costs memory or stream credit a client can pin. This layer sits between
//! the transport ([`MultiplexedStreams`]) and h3's adapter (`quic.rs`), so
//! h3 only ever sees streams that passed it:
//!
//! * **Unidirectional stream types** are read here, within the
//!   request-headers timeout ([`Http3Config::request_headers_timeout`]): a
//!   stream whose type has not arrived by then is stopped with
//!   H3_STREAM_CREATION_ERROR (h3 would hold it, and its stream credit, for
//!   ever). A stream that ends before its type is forgotten (RFC 9114 §6.2).
//! * **The QPACK encoder and decoder streams** are kept here (h3 never
//!   reads them) and every instruction is checked against a dynamic table
//!   of capacity 0 (RFC 9204): on the encoder stream only "Set Dynamic Table
//!   Capacity 0" is valid, anything else is QPACK_ENCODER_STREAM_ERROR; on
//!   the decoder stream only Stream Cancellation is valid (the server never
//!   inserts nor refers to the table), anything else is
//!   QPACK_DECODER_STREAM_ERROR. A second stream of either type is
//!   H3_STREAM_CREATION_ERROR, and either one closed is
//!   H3_CLOSED_CRITICAL_STREAM (RFC 9204 §4.2).
//! * **A client's push stream** is H3_STREAM_CREATION_ERROR (RFC 9114
//!   §6.2.2; h3 drops it silently); a stream of an unknown type is stopped
//!   with H3_STREAM_CREATION_ERROR (§6.2). The control stream goes on to h3,
//!   which checks it.
//! * **Frames** on request streams and on the control stream are delimited
//!   here: frames of unknown (reserved or extension) types are dropped as
//!   they arrive instead of reaching h3, which buffers a whole frame before
//!   skipping it — a client could make it buffer gigabytes. A HEADERS frame
//!   declaring more than twice `max_request_headers_total_size` is refused
//!   at once: as a request's head, the stream is reset and stopped with
//!   H3_REQUEST_REJECTED (Kestrel's answer past twice the limit); as
//!   trailers, with H3_REQUEST_CANCELLED. Any other frame h3 would buffer
//!   (SETTINGS, GOAWAY, …) over [`MAX_CONTROL_FRAME`] closes the connection
//!   with H3_EXCESSIVE_LOAD. A frame cut short by its stream's end closes it
//!   with H3_FRAME_ERROR (RFC 9114 §7.1): h3 0.0.8 takes a DATA frame cut so
//!   for the body's end and then panics on an assertion reading trailers.
//! * **A request stream that ends, is reset, or outlives the request-headers
//!   timeout before its head** is refused (reset and stopped with
//!   H3_REQUEST_INCOMPLETE, H3_REQUEST_CANCELLED, and H3_REQUEST_REJECTED as
//!   Kestrel does for its request-headers timeout) by
//!   handing h3 an empty field section, which it refuses as malformed: the
//!   only path on which h3 0.0.8 forgets a stream it accepted. Otherwise
//!   each such stream stayed in h3's set of running requests for the
//!   connection's life (memory an open-and-reset storm grows without bound)
//!   and h3's `accept` never ended after the client's GOAWAY. The head is
//!   handed to h3 whole, once its HEADERS frame is complete.
//!
//! [`Http3Config::request_headers_timeout`]: crate::Http3Config::request_headers_timeout

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kestrel_core::connection::ConnectionId;
use kestrel_transport::multiplexed::{
    BidiStream, BoxRecvStream, BoxSendStream, ConnectionError, MultiplexedStreams, RecvStream,
    SendStream, StreamError, StreamId, StreamOpener,
};

use crate::config::Http3Config;
use crate::varint;

const H3_STREAM_CREATION_ERROR: u64 = 0x103;
const H3_CLOSED_CRITICAL_STREAM: u64 = 0x104;
const H3_FRAME_ERROR: u64 = 0x106;
const H3_EXCESSIVE_LOAD: u64 = 0x107;
const H3_REQUEST_REJECTED: u64 = 0x10b;
const H3_REQUEST_CANCELLED: u64 = 0x10c;
const H3_REQUEST_INCOMPLETE: u64 = 0x10d;
const QPACK_ENCODER_STREAM_ERROR: u64 = 0x201;
const QPACK_DECODER_STREAM_ERROR: u64 = 0x202;

/// The largest frame other than DATA and HEADERS accepted (SETTINGS,
/// GOAWAY, MAX_PUSH_ID, CANCEL_PUSH, PUSH_PROMISE): h3 buffers such a frame
/// whole before it looks at it.
pub(crate) const MAX_CONTROL_FRAME: u64 = 16 * 1024;

// RFC 9114 §6.2 stream types.
const STREAM_CONTROL: u64 = 0x00;
const STREAM_PUSH: u64 = 0x01;
const STREAM_ENCODER: u64 = 0x02;
const STREAM_DECODER: u64 = 0x03;

// RFC 9114 §7.2 frame types.
const FRAME_DATA: u64 = 0x00;
const FRAME_HEADERS: u64 = 0x01;
/// WebTransport's bidirectional stream signal: no length follows; h3 knows
/// it (and refuses it, WebTransport being off), so it goes through as is.
const FRAME_WEBTRANSPORT_STREAM: u64 = 0x41;

/// Frame types h3 knows: CANCEL_PUSH, SETTINGS, PUSH_PROMISE, GOAWAY,
/// MAX_PUSH_ID and HTTP/2's reserved PRIORITY, PING, WINDOW_UPDATE and
/// CONTINUATION (h3 refuses those with H3_FRAME_UNEXPECTED).
fn is_buffered_known_frame(ty: u64) -> bool {
    matches!(ty, 0x02..=0x09 | 0x0d)
}

type SharedOpener = Arc<Mutex<Box<dyn StreamOpener>>>;

/// A connection's streams, checked before h3 sees them (module docs).
pub(crate) struct GuardedStreams {
    inner: Box<dyn MultiplexedStreams>,
    closer: SharedOpener,
    id: ConnectionId,
    type_timeout: Duration,
    max_headers_frame: u64,
    /// Unidirectional streams whose type has not arrived yet (at most the
    /// transport's unidirectional stream limit).
    untyped: Vec<Untyped>,
    /// Control streams, typed, for h3.
    ready: VecDeque<BoxRecvStream>,
    encoder: Option<QpackStream>,
    decoder: Option<QpackStream>,
    /// Set once this layer closed the connection.
    closed: Option<ConnectionError>,
}

impl GuardedStreams {
    /// Guard `inner`'s streams with `config`'s limits.
    pub(crate) fn new(
        inner: Box<dyn MultiplexedStreams>,
        config: &Http3Config,
        id: ConnectionId,
    ) -> GuardedStreams {
        let closer = Arc::new(Mutex::new(inner.opener()));
        GuardedStreams {
            inner,
            closer,
            id,
            type_timeout: config.request_headers_timeout,
            max_headers_frame: (config.max_request_headers_total_size as u64).saturating_mul(2),
            untyped: Vec::new(),
            ready: VecDeque::new(),
            encoder: None,
            decoder: None,
            closed: None,
        }
    }

    /// Close the connection with `code` (a connection error).
    fn fail(&mut self, code: u64, reason: &'static str) -> ConnectionError {
        tracing::debug!(target: "kestrel::http3", connection_id = %self.id, code = format_args!("{code:#x}"), reason, "closing the connection");
        self.inner.close(code, reason.as_bytes());
        let e = ConnectionError::LocallyClosed { code };
        self.closed = Some(e.clone());
        e
    }

    /// A unidirectional stream whose type arrived.
    fn typed(
        &mut self,
        ty: u64,
        raw_type: Bytes,
        rest: Bytes,
        stream: BoxRecvStream,
    ) -> Result<(), ConnectionError> {
        match ty {
            STREAM_CONTROL => {
                let mut filter =
                    FrameFilter::new(stream, self.id, Role::Control, self.closer.clone());
                filter.out.push_back(raw_type);
                filter
                    .feed(rest)
                    .map_err(|(code, reason)| self.fail(code, reason))?;
                self.ready.push_back(Box::new(filter));
                Ok(())
            }
            STREAM_ENCODER | STREAM_DECODER => {
                let (taken, kind) = if ty == STREAM_ENCODER {
                    (self.encoder.is_some(), QpackKind::Encoder)
                } else {
                    (self.decoder.is_some(), QpackKind::Decoder)
                };
                if taken {
                    return Err(self.fail(
                        H3_STREAM_CREATION_ERROR,
                        "a second QPACK encoder or decoder stream",
                    ));
                }
                let mut q = QpackStream::new(kind, stream);
                let checked = q.check(&rest);
                if kind == QpackKind::Encoder {
                    self.encoder = Some(q);
                } else {
                    self.decoder = Some(q);
                }
                checked.map_err(|(code, reason)| self.fail(code, reason))
            }
            STREAM_PUSH => {
                Err(self.fail(H3_STREAM_CREATION_ERROR, "a client opened a push stream"))
            }
            _ => {
                // RFC 9114 §6.2: unknown types are ignored; reading is
                // aborted with H3_STREAM_CREATION_ERROR.
                let mut stream = stream;
                stream.stop_sending(H3_STREAM_CREATION_ERROR);
                Ok(())
            }
        }
    }

    fn poll_uni(&mut self, cx: &mut Context<'_>) -> Poll<Result<BoxRecvStream, ConnectionError>> {
        if let Some(e) = &self.closed {
            return Poll::Ready(Err(e.clone()));
        }
        // Take every stream the peer opened.
        let mut accept_error = None;
        loop {
            match self.inner.poll_accept_uni(cx) {
                Poll::Ready(Ok(stream)) => {
                    self.untyped.push(Untyped::new(stream, self.type_timeout))
                }
                Poll::Ready(Err(e)) => {
                    accept_error = Some(e);
                    break;
                }
                Poll::Pending => break,
            }
        }
        // Read their types.
        let mut i = 0;
        while i < self.untyped.len() {
            match self.untyped[i].poll_type(cx) {
                Poll::Pending => i += 1,
                Poll::Ready(outcome) => {
                    let u = self.untyped.swap_remove(i);
                    match outcome {
                        TypeOutcome::Ended => {}
                        TypeOutcome::TimedOut => {
                            tracing::debug!(target: "kestrel::http3", connection_id = %self.id, stream_id = u.stream.id().as_u64(), timeout = ?self.type_timeout, "a unidirectional stream sent no type in time; it is stopped");
                            let mut stream = u.stream;
                            stream.stop_sending(H3_STREAM_CREATION_ERROR);
                        }
                        TypeOutcome::Typed { ty, raw, rest } => {
                            if let Err(e) = self.typed(ty, raw, rest, u.stream) {
                                return Poll::Ready(Err(e));
                            }
                        }
                    }
                }
            }
        }
        // Check the QPACK streams' instructions.
        let mut violation = None;
        for q in [&mut self.encoder, &mut self.decoder].into_iter().flatten() {
            if let Poll::Ready(Err(v)) = q.poll_check(cx) {
                violation = Some(v);
                break;
            }
        }
        if let Some((code, reason)) = violation {
            return Poll::Ready(Err(self.fail(code, reason)));
        }
        if let Some(stream) = self.ready.pop_front() {
            return Poll::Ready(Ok(stream));
        }
        match accept_error {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Pending,
        }
    }
}

impl MultiplexedStreams for GuardedStreams {
    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream, ConnectionError>> {
        if let Some(e) = &self.closed {
            return Poll::Ready(Err(e.clone()));
        }
        self.inner.poll_accept_bidi(cx).map(|r| {
            r.map(|b| {
                let refused = Arc::new(AtomicU64::new(0));
                let role = Role::Request {
                    max_headers_frame: self.max_headers_frame,
                    refused: refused.clone(),
                    heads: 0,
                };
                let mut recv = FrameFilter::new(b.recv, self.id, role, self.closer.clone());
                recv.head = Some(HeadWait {
                    // None: a timeout too long to reckon, no deadline.
                    deadline: tokio::time::Instant::now().checked_add(self.type_timeout),
                    sleep: None,
                });
                BidiStream {
                    send: Box::new(GuardedSend {
                        inner: b.send,
                        refused,
                    }),
                    recv: Box::new(recv),
                }
            })
        })
    }

    fn poll_accept_uni(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BoxRecvStream, ConnectionError>> {
        self.poll_uni(cx)
    }

    fn opener(&self) -> Box<dyn StreamOpener> {
        self.inner.opener()
    }

    fn close(&mut self, code: u64, reason: &[u8]) {
        self.inner.close(code, reason);
    }

    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<ConnectionError> {
        self.inner.poll_closed(cx)
    }
}

/// A unidirectional stream whose type has not arrived yet.
struct Untyped {
    stream: BoxRecvStream,
    /// The type's bytes so far (a QUIC variable-length integer: 1 to 8).
    raw: Vec<u8>,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

enum TypeOutcome {
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
    fn new(stream: BoxRecvStream, timeout: Duration) -> Untyped {
        Untyped {
            stream,
            raw: Vec::with_capacity(8),
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    fn poll_type(&mut self, cx: &mut Context<'_>) -> Poll<TypeOutcome> {
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
enum QpackKind {
    Encoder,
    Decoder,
}

/// The peer's QPACK encoder or decoder stream, its instructions checked
/// against a dynamic table of capacity 0.
struct QpackStream {
    kind: QpackKind,
    stream: BoxRecvStream,
    /// Inside a Stream Cancellation's multi-byte stream id: bytes so far.
    continuation: Option<u8>,
    /// The connection ended under it: nothing more to check.
    gone: bool,
}

type Violation = (u64, &'static str);

impl QpackStream {
    fn new(kind: QpackKind, stream: BoxRecvStream) -> QpackStream {
        QpackStream {
            kind,
            stream,
            continuation: None,
            gone: false,
        }
    }

    fn check(&mut self, data: &[u8]) -> Result<(), Violation> {
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
    fn poll_check(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Violation>> {
        if self.gone {
            return Poll::Ready(Ok(()));
        }
        loop {
            match self.stream.poll_data(cx) {
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

/// What a frame-delimited stream is.
enum Role {
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
enum FrameState {
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
struct HeadWait {
    deadline: Option<tokio::time::Instant>,
    /// Set once the head is late to arrive.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// An empty field section in a HEADERS frame: what h3 is given for a
/// request stream that ends, is reset or times out before its head. h3
/// refuses it as malformed, and that is the only way h3 0.0.8 forgets a
/// stream it accepted (it keeps every accepted stream's id until a request
/// built from a head is dropped): without it each such stream stayed in
/// h3's set for the connection's life, and h3's `accept` never ended after
/// the client's GOAWAY.
const EMPTY_HEAD: &[u8] = &[0x01, 0x02, 0x00, 0x00];

/// A receiving half delimited into frames: unknown frames are dropped,
/// oversized ones refused (module docs).
struct FrameFilter {
    inner: BoxRecvStream,
    conn: ConnectionId,
    role: Role,
    /// A request stream whose head has not arrived yet.
    head: Option<HeadWait>,
    closer: SharedOpener,
    state: FrameState,
    /// Bytes for h3, before reading more.
    out: VecDeque<Bytes>,
    /// The inner stream ended or failed: `out`, then this.
    end: Option<Result<(), StreamError>>,
}

impl FrameFilter {
    fn new(
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
    fn feed(&mut self, mut data: Bytes) -> Result<(), Violation> {
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
    fn frame(&mut self, ty: u64, len: u64, header: Bytes) -> Result<FrameState, Violation> {
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
    fn violation(&mut self, (code, reason): Violation) -> StreamError {
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
    fn refuse(&mut self, code: u64, reason: &'static str) {
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
    fn poll_head_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
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
struct GuardedSend {
    inner: BoxSendStream,
    refused: Arc<AtomicU64>,
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
