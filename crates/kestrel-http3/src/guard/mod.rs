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
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use kestrel_core::connection::ConnectionId;
use kestrel_transport::multiplexed::{
    BidiStream, BoxRecvStream, ConnectionError, MultiplexedStreams, StreamOpener,
};

use crate::config::Http3Config;

mod frames;
mod uni;

use frames::*;
use uni::*;

pub(super) const H3_STREAM_CREATION_ERROR: u64 = 0x103;
pub(super) const H3_CLOSED_CRITICAL_STREAM: u64 = 0x104;
pub(super) const H3_FRAME_ERROR: u64 = 0x106;
pub(super) const H3_EXCESSIVE_LOAD: u64 = 0x107;
pub(super) const H3_REQUEST_REJECTED: u64 = 0x10b;
pub(super) const H3_REQUEST_CANCELLED: u64 = 0x10c;
pub(super) const H3_REQUEST_INCOMPLETE: u64 = 0x10d;
pub(super) const QPACK_ENCODER_STREAM_ERROR: u64 = 0x201;
pub(super) const QPACK_DECODER_STREAM_ERROR: u64 = 0x202;

/// The largest frame other than DATA and HEADERS accepted (SETTINGS,
/// GOAWAY, MAX_PUSH_ID, CANCEL_PUSH, PUSH_PROMISE): h3 buffers such a frame
/// whole before it looks at it.
pub(crate) const MAX_CONTROL_FRAME: u64 = 16 * 1024;

// RFC 9114 §6.2 stream types.
pub(super) const STREAM_CONTROL: u64 = 0x00;
pub(super) const STREAM_PUSH: u64 = 0x01;
pub(super) const STREAM_ENCODER: u64 = 0x02;
pub(super) const STREAM_DECODER: u64 = 0x03;

// RFC 9114 §7.2 frame types.
pub(super) const FRAME_DATA: u64 = 0x00;
pub(super) const FRAME_HEADERS: u64 = 0x01;
/// WebTransport's bidirectional stream signal: no length follows; h3 knows
/// it (and refuses it, WebTransport being off), so it goes through as is.
pub(super) const FRAME_WEBTRANSPORT_STREAM: u64 = 0x41;

/// Frame types h3 knows: CANCEL_PUSH, SETTINGS, PUSH_PROMISE, GOAWAY,
/// MAX_PUSH_ID and HTTP/2's reserved PRIORITY, PING, WINDOW_UPDATE and
/// CONTINUATION (h3 refuses those with H3_FRAME_UNEXPECTED).
pub(super) fn is_buffered_known_frame(ty: u64) -> bool {
    matches!(ty, 0x02..=0x09 | 0x0d)
}

pub(super) type SharedOpener = Arc<Mutex<Box<dyn StreamOpener>>>;

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
