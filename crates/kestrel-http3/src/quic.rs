//! `h3::quic` over `kestrel_transport::multiplexed`: newtypes that implement
//! h3's QUIC traits on the transport's boxed streams, one method to one
//! method (the table is in `kestrel_transport::multiplexed`'s docs). This is
//! what keeps quinn out of this crate: any [`MultiplexedStreams`] serves
//! HTTP/3, the quinn listener and the in-memory transport alike.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use h3::quic::{self, ConnectionErrorIncoming, SendStream as _, StreamErrorIncoming, WriteBuf};
use kestrel_transport::multiplexed::{
    BoxRecvStream, BoxSendStream, ConnectionError, MultiplexedStreams, StreamError, StreamOpener,
};

use crate::goaway::{rewrite_control_frame, GoawayGate};

/// Kestrel's default stream error code (`QuicTransportOptions`): a stream
/// abandoned without a code of its own.
const H3_REQUEST_CANCELLED: u64 = 0x10c;

/// A request stream refused after a GOAWAY (RFC 9114 §5.2, §8.1).
const H3_REQUEST_REJECTED: u64 = 0x10b;

/// The HEADERS frame's type (RFC 9114 §7.2.2).
const HEADERS_FRAME: u8 = 0x01;

/// The control stream's type (RFC 9114 §6.2.1).
const CONTROL_STREAM: u8 = 0x00;

fn conn_err(e: ConnectionError) -> ConnectionErrorIncoming {
    match e {
        ConnectionError::ApplicationClosed { code, .. } => {
            ConnectionErrorIncoming::ApplicationClose { error_code: code }
        }
        ConnectionError::TimedOut => ConnectionErrorIncoming::Timeout,
        other => ConnectionErrorIncoming::Undefined(std::sync::Arc::new(other)),
    }
}

fn stream_err(e: StreamError) -> StreamErrorIncoming {
    match e {
        StreamError::Reset { code } | StreamError::Stopped { code } => {
            StreamErrorIncoming::StreamTerminated { error_code: code }
        }
        StreamError::Connection(c) => StreamErrorIncoming::ConnectionErrorIncoming {
            connection_error: conn_err(c),
        },
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}

fn h3_id(id: kestrel_transport::multiplexed::StreamId) -> quic::StreamId {
    // Both are QUIC's 62-bit stream ids, so the conversion cannot fail.
    quic::StreamId::try_from(id.as_u64())
        .unwrap_or_else(|_| unreachable!("a transport stream id is at most 2^62 - 1"))
}

/// A connection's streams, for h3. Request streams pass the connection's
/// [`GoawayGate`] before h3 sees them.
pub(crate) struct H3Conn {
    streams: SharedStreams,
    opener: H3Opener,
    gate: Arc<GoawayGate>,
    id: kestrel_core::connection::ConnectionId,
}

impl H3Conn {
    pub fn new(
        streams: Box<dyn MultiplexedStreams>,
        gate: Arc<GoawayGate>,
        id: kestrel_core::connection::ConnectionId,
    ) -> H3Conn {
        let opener = H3Opener(streams.opener(), gate.clone());
        H3Conn {
            streams: SharedStreams(Arc::new(Mutex::new(streams))),
            opener,
            gate,
            id,
        }
    }

    /// A second handle on the connection's streams, for the driver to see
    /// the connection close while h3 owns this one.
    pub fn closed_watch(&self) -> SharedStreams {
        SharedStreams(self.streams.0.clone())
    }
}

/// The connection's streams, shared between h3 (through [`H3Conn`]) and the
/// driver (which only waits for the close). Never contended: both run in
/// the connection's one task.
pub(crate) struct SharedStreams(Arc<Mutex<Box<dyn MultiplexedStreams>>>);

impl SharedStreams {
    fn lock(&self) -> MutexGuard<'_, Box<dyn MultiplexedStreams>> {
        // Nothing panics while holding it; a poisoned lock is still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ready once the connection is closed, by either end.
    pub fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.lock().poll_closed(cx).map(|_| ())
    }
}

/// Opens this end's streams, for h3. The unidirectional ones learn whether
/// they are the control stream (whose GOAWAY frames the gate rewrites).
pub(crate) struct H3Opener(Box<dyn StreamOpener>, Arc<GoawayGate>);

impl quic::OpenStreams<Bytes> for H3Opener {
    type BidiStream = H3Bidi;
    type SendStream = H3Send;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, StreamErrorIncoming>> {
        self.0.poll_open_bidi(cx).map(|r| {
            r.map(|b| {
                let (send, recv) = b.split();
                H3Bidi {
                    send: H3Send::new(send),
                    recv: H3Recv::new(recv),
                }
            })
            .map_err(|e| stream_err(StreamError::Connection(e)))
        })
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::SendStream, StreamErrorIncoming>> {
        let gate = &self.1;
        self.0.poll_open_uni(cx).map(|r| {
            r.map(|s| H3Send::uni(s, gate.clone()))
                .map_err(|e| stream_err(StreamError::Connection(e)))
        })
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        self.0.close(u64::from(code), reason);
    }
}

impl quic::OpenStreams<Bytes> for H3Conn {
    type BidiStream = H3Bidi;
    type SendStream = H3Send;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, StreamErrorIncoming>> {
        self.opener.poll_open_bidi(cx)
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::SendStream, StreamErrorIncoming>> {
        self.opener.poll_open_send(cx)
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        self.streams.lock().close(u64::from(code), reason);
    }
}

impl quic::Connection<Bytes> for H3Conn {
    type RecvStream = H3Recv;
    type OpenStreams = H3Opener;

    fn poll_accept_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::RecvStream, ConnectionErrorIncoming>> {
        self.streams
            .lock()
            .poll_accept_uni(cx)
            .map(|r| r.map(H3Recv::new).map_err(conn_err))
    }

    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::BidiStream, ConnectionErrorIncoming>> {
        loop {
            let accepted = self.streams.lock().poll_accept_bidi(cx);
            let b = match std::task::ready!(accepted) {
                Ok(b) => b,
                Err(e) => return Poll::Ready(Err(conn_err(e))),
            };
            let (mut send, mut recv) = b.split();
            let id = recv.id().as_u64();
            if !self.gate.admit(id) {
                // At or past the GOAWAY we sent: not processed, the client
                // may retry it elsewhere.
                tracing::debug!(target: "kestrel::http3", connection_id = %self.id, stream_id = id, goaway = ?self.gate.announced(), "request stream after GOAWAY rejected with H3_REQUEST_REJECTED");
                recv.stop_sending(H3_REQUEST_REJECTED);
                send.reset(H3_REQUEST_REJECTED);
                continue;
            }
            return Poll::Ready(Ok(H3Bidi {
                send: H3Send::new(send),
                recv: H3Recv::new(recv),
            }));
        }
    }

    fn opener(&self) -> Self::OpenStreams {
        H3Opener(self.opener.0.clone_opener(), self.gate.clone())
    }
}

/// A sending half, for h3: h3 hands over a whole [`WriteBuf`] and drives
/// [`quic::SendStream::poll_ready`] until it is written.
///
/// Dropped before it was finished or reset (h3 dropped a request stream it
/// gave up on, e.g. one whose head never completed), it is reset with
/// H3_REQUEST_CANCELLED, Kestrel's default stream error code, rather than
/// finished as if the response were complete — unless all it carries is one
/// whole response head: that is h3's own answer to a request it refuses
/// (431 for a field section over `SETTINGS_MAX_FIELD_SECTION_SIZE`), which
/// h3 writes and then drops unfinished; the stream is finished so that the
/// client reads it (a reset would discard it). The driver never leaves a
/// head alone so: it finishes, or resets a response that cannot complete.
pub(crate) struct H3Send {
    inner: BoxSendStream,
    pending: Option<Pending>,
    closed: bool,
    role: Role,
    /// What this end wrote: nothing, exactly one whole HEADERS frame, or more.
    written: Written,
}

/// What a request stream's sending half carried so far.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Written {
    Nothing,
    OneHead,
    More,
}

/// What a sending half carries, as far as the adapter cares.
enum Role {
    /// A request stream's response (or a stream this end opened for h3 to
    /// use freely).
    Request,
    /// A unidirectional stream this end opened, before its type was written.
    Uni(Arc<GoawayGate>),
    /// The control stream: its GOAWAY frames carry the gate's id.
    Control(Arc<GoawayGate>),
}

/// A frame h3 hands over as several chunks (its `WriteBuf`: the frame
/// header, then the payload) whose whole size is at most this is copied
/// into one buffer and written with one `poll_write`: each write takes the
/// QUIC connection's lock and wakes its driver, and a small response is
/// otherwise four writes (HEADERS header and block, DATA header and
/// payload) instead of two.
const COALESCE_MAX: usize = 1024;

/// Bytes h3 handed over and not yet written.
enum Pending {
    Buf(WriteBuf<Bytes>),
    /// Bytes the adapter holds itself: a GOAWAY frame rewritten by the gate,
    /// or what a coalesced write left unwritten.
    Rewritten(Bytes),
}

impl Pending {
    fn chunk(&self) -> &[u8] {
        match self {
            Pending::Buf(b) => b.chunk(),
            Pending::Rewritten(b) => b.chunk(),
        }
    }

    fn has_remaining(&self) -> bool {
        match self {
            Pending::Buf(b) => b.has_remaining(),
            Pending::Rewritten(b) => b.has_remaining(),
        }
    }

    /// The size of what is left when it is more than one chunk and fits
    /// [`COALESCE_MAX`].
    fn coalescible(&self) -> Option<usize> {
        let Pending::Buf(b) = self else {
            return None;
        };
        let total = b.remaining();
        (total <= COALESCE_MAX && b.chunk().len() < total).then_some(total)
    }

    fn advance(&mut self, n: usize) {
        match self {
            Pending::Buf(b) => b.advance(n),
            Pending::Rewritten(b) => b.advance(n),
        }
    }
}

impl H3Send {
    fn new(inner: BoxSendStream) -> H3Send {
        H3Send {
            inner,
            pending: None,
            closed: false,
            role: Role::Request,
            written: Written::Nothing,
        }
    }

    fn uni(inner: BoxSendStream, gate: Arc<GoawayGate>) -> H3Send {
        H3Send {
            inner,
            pending: None,
            closed: false,
            role: Role::Uni(gate),
            written: Written::More,
        }
    }
}

impl Drop for H3Send {
    fn drop(&mut self) {
        let head_written = self.written == Written::OneHead && self.pending.is_none();
        if !self.closed && !head_written {
            self.inner.reset(H3_REQUEST_CANCELLED);
        }
        // Otherwise the transport finishes it as it drops.
    }
}

impl quic::SendStream<Bytes> for H3Send {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        while let Some(buf) = self.pending.as_mut() {
            if !buf.has_remaining() {
                self.pending = None;
                break;
            }
            if let (Some(total), Pending::Buf(b)) = (buf.coalescible(), &mut *buf) {
                let mut frame = [0u8; COALESCE_MAX];
                b.copy_to_slice(&mut frame[..total]);
                // What is not written now is kept (rare: a full send buffer).
                let keep = |from: usize| {
                    Some(Pending::Rewritten(Bytes::copy_from_slice(
                        &frame[from..total],
                    )))
                };
                match self.inner.poll_write(cx, &frame[..total]) {
                    Poll::Ready(Ok(n)) => self.pending = if n < total { keep(n) } else { None },
                    Poll::Ready(Err(e)) => {
                        self.pending = None;
                        return Poll::Ready(Err(stream_err(e)));
                    }
                    Poll::Pending => {
                        self.pending = keep(0);
                        return Poll::Pending;
                    }
                }
                continue;
            }
            match self.inner.poll_write(cx, buf.chunk()) {
                Poll::Ready(Ok(n)) => buf.advance(n),
                Poll::Ready(Err(e)) => {
                    self.pending = None;
                    return Poll::Ready(Err(stream_err(e)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    fn send_data<T: Into<WriteBuf<Bytes>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        if self.pending.is_some() {
            return Err(StreamErrorIncoming::Unknown(
                "send_data before the previous data was written".into(),
            ));
        }
        let mut data: WriteBuf<Bytes> = data.into();
        match &self.role {
            Role::Request => {
                self.written = match self.written {
                    Written::Nothing if data.chunk().first() == Some(&HEADERS_FRAME) => {
                        Written::OneHead
                    }
                    _ => Written::More,
                };
            }
            Role::Uni(gate) => {
                // The first write names the stream's type.
                if data.chunk().first() == Some(&CONTROL_STREAM) {
                    self.role = Role::Control(gate.clone());
                } else {
                    self.role = Role::Request;
                }
            }
            Role::Control(gate) => {
                // h3 writes a control frame whole; GOAWAY's id is ours.
                if data.chunk().first() == Some(&0x07) {
                    let frame = data.copy_to_bytes(data.remaining());
                    self.pending = Some(Pending::Rewritten(rewrite_control_frame(frame, gate)));
                    return Ok(());
                }
            }
        }
        self.pending = Some(Pending::Buf(data));
        Ok(())
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        std::task::ready!(self.poll_ready(cx))?;
        let done = std::task::ready!(self.inner.poll_finish(cx));
        self.closed = true;
        Poll::Ready(done.map_err(stream_err))
    }

    fn reset(&mut self, reset_code: u64) {
        self.pending = None;
        self.closed = true;
        self.inner.reset(reset_code);
    }

    fn send_id(&self) -> quic::StreamId {
        h3_id(self.inner.id())
    }
}

impl quic::SendStreamUnframed<Bytes> for H3Send {
    fn poll_send<D: Buf>(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut D,
    ) -> Poll<Result<usize, StreamErrorIncoming>> {
        std::task::ready!(self.poll_ready(cx))?;
        self.written = Written::More;
        match self.inner.poll_write(cx, buf.chunk()) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(stream_err(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A receiving half, for h3. Dropped before its end (and not stopped), it
/// asks the peer to stop sending with H3_REQUEST_CANCELLED.
pub(crate) struct H3Recv {
    inner: BoxRecvStream,
    closed: bool,
}

impl H3Recv {
    fn new(inner: BoxRecvStream) -> H3Recv {
        H3Recv {
            inner,
            closed: false,
        }
    }
}

impl Drop for H3Recv {
    fn drop(&mut self) {
        if !self.closed {
            self.inner.stop_sending(H3_REQUEST_CANCELLED);
        }
    }
}

impl quic::RecvStream for H3Recv {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Self::Buf>, StreamErrorIncoming>> {
        let r = std::task::ready!(self.inner.poll_data(cx));
        // The end, or an error (a reset, the connection): nothing to stop.
        if !matches!(r, Ok(Some(_))) {
            self.closed = true;
        }
        Poll::Ready(r.map_err(stream_err))
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.closed = true;
        self.inner.stop_sending(error_code);
    }

    fn recv_id(&self) -> quic::StreamId {
        h3_id(self.inner.id())
    }
}

/// A bidirectional stream, for h3.
pub(crate) struct H3Bidi {
    send: H3Send,
    recv: H3Recv,
}

impl quic::SendStream<Bytes> for H3Bidi {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_ready(cx)
    }

    fn send_data<T: Into<WriteBuf<Bytes>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        self.send.send_data(data)
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_finish(cx)
    }

    fn reset(&mut self, reset_code: u64) {
        self.send.reset(reset_code);
    }

    fn send_id(&self) -> quic::StreamId {
        self.send.send_id()
    }
}

impl quic::SendStreamUnframed<Bytes> for H3Bidi {
    fn poll_send<D: Buf>(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut D,
    ) -> Poll<Result<usize, StreamErrorIncoming>> {
        self.send.poll_send(cx, buf)
    }
}

impl quic::RecvStream for H3Bidi {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Self::Buf>, StreamErrorIncoming>> {
        self.recv.poll_data(cx)
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.recv.stop_sending(error_code);
    }

    fn recv_id(&self) -> quic::StreamId {
        self.recv.recv_id()
    }
}

impl quic::BidiStream<Bytes> for H3Bidi {
    type SendStream = H3Send;
    type RecvStream = H3Recv;

    fn split(self) -> (Self::SendStream, Self::RecvStream) {
        (self.send, self.recv)
    }
}
