//! The connection's I/O state, shared between the driver and the request
//! body the application holds: the socket, the read buffer, and the state of
//! the current request body. The driver and the body only ever lock it for
//! one poll, never across an `.await`.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use kestrel_core::body_state::{BodyRejection, MalformedBody, ReadStart, RequestBodyState};
use kestrel_core::connection::ConnectionHandle;
use kestrel_core::request_limits::LimitsCell;
use kestrel_core::{BodyError, BodySource};
use kestrel_transport::BoxIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::codec::{ChunkedDecoder, ChunkedEvent, LengthDecoder, RequestRejection, CONTINUE_100};

/// Bytes reserved in the read buffer before each read.
pub(crate) const READ_CHUNK: usize = 8 * 1024;
/// The stack buffer an idle connection without a read buffer reads into.
const IDLE_READ: usize = 2 * 1024;
/// The read buffer allocated when data arrives on a connection without one.
const FIRST_READ: usize = 4 * 1024;
/// The most a request-body read asks for at once: a large body arrives in a
/// few big reads (a 64 KiB upload in one) instead of many `READ_CHUNK` ones.
const MAX_BODY_READ: usize = 64 * 1024;

pub(crate) enum Decoder {
    Length(LengthDecoder),
    Chunked(ChunkedDecoder),
}

/// The current request's body, as the driver and the app see it: the
/// shared body state machine ([`RequestBodyState`]) plus what is HTTP/1's
/// own (the decoder, the progress of `100 Continue` on the wire).
pub(crate) struct BodyState {
    pub token: u64,
    pub active: bool,
    pub decoder: Option<Decoder>,
    /// Bytes of `100 Continue` written so far (while it is owed).
    pub continue_written: usize,
    /// The task waiting on a body read, woken when the driver rejects the body.
    pub waker: Option<Waker>,
    pub state: RequestBodyState<RequestRejection>,
}

impl BodyState {
    pub fn idle() -> Self {
        BodyState {
            token: 0,
            active: false,
            decoder: None,
            continue_written: 0,
            waker: None,
            state: RequestBodyState::idle(),
        }
    }

    pub fn is_complete(&self) -> bool {
        self.state.is_done() || self.decoder.is_none()
    }

    /// Why the body was rejected, as HTTP/1 answers it.
    pub fn rejection(&self) -> Option<RequestRejection> {
        self.state.rejection().map(|r| match r {
            BodyRejection::TooLarge => RequestRejection::RequestBodyTooLarge,
            BodyRejection::Timeout => RequestRejection::RequestBodyTimeout,
            BodyRejection::ClientGone => RequestRejection::UnexpectedEndOfRequestContent,
            BodyRejection::Malformed(r) => r,
        })
    }
}

impl MalformedBody for RequestRejection {
    fn describe(self) -> &'static str {
        match self {
            RequestRejection::BadChunkSuffix => "bad chunk suffix",
            RequestRejection::BadChunkSizeData => "bad chunk size",
            _ => "malformed chunked body",
        }
    }
}

/// The shared body state's reason for an HTTP/1 rejection.
fn body_rejection(r: RequestRejection) -> BodyRejection<RequestRejection> {
    match r {
        RequestRejection::RequestBodyTooLarge => BodyRejection::TooLarge,
        RequestRejection::RequestBodyTimeout => BodyRejection::Timeout,
        RequestRejection::UnexpectedEndOfRequestContent => BodyRejection::ClientGone,
        other => BodyRejection::Malformed(other),
    }
}

pub(crate) struct ConnIo {
    pub io: Option<BoxIo>,
    pub read_buf: BytesMut,
    pub eof: bool,
    pub body: BodyState,
    /// The driver, waiting for the request body to end (or the input to)
    /// before it watches for the client leaving ([`Self::poll_client_gone`]).
    pub gone_waker: Option<Waker>,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl ConnIo {
    fn io(&mut self) -> io::Result<Pin<&mut BoxIo>> {
        self.io.as_mut().map(Pin::new).ok_or_else(closed)
    }

    /// Read more bytes into the read buffer; `Ok(0)` at end of stream.
    ///
    /// A connection that released its buffer while idle waits for data with
    /// a small stack buffer and allocates only once bytes arrive (Kestrel's
    /// "wait for data before allocating a buffer").
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.poll_fill_up_to(cx, READ_CHUNK)
    }

    /// [`poll_fill`](Self::poll_fill), making room for up to `want` bytes
    /// (at least `READ_CHUNK`) when the buffer has less than a quarter of
    /// that free.
    fn poll_fill_up_to(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        if self.eof {
            return Poll::Ready(Ok(0));
        }
        let io = self.io.as_mut().ok_or_else(closed)?;
        if self.read_buf.capacity() == 0 {
            let mut scratch = [0u8; IDLE_READ];
            let mut rb = tokio::io::ReadBuf::new(&mut scratch);
            ready!(Pin::new(io).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                self.eof = true;
            } else {
                // Most request heads fit in this; larger input grows the
                // buffer in READ_CHUNK steps below.
                self.read_buf.reserve(FIRST_READ.max(n));
                self.read_buf.extend_from_slice(rb.filled());
            }
            return Poll::Ready(Ok(n));
        }
        let want = want.max(READ_CHUNK);
        if self.read_buf.capacity() - self.read_buf.len() < want / 4 {
            self.read_buf.reserve(want);
        }
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(io),
            cx,
            &mut self.read_buf
        ))?;
        if n == 0 {
            self.eof = true;
        }
        Poll::Ready(Ok(n))
    }

    /// While the app runs (or its response body waits): whether the client's
    /// side ended (end of stream or a read error; a read error ends the
    /// input). Once the request body is complete it reads what the client
    /// sends, up to `read_ahead` buffered bytes (pipelined requests stay in
    /// the buffer for later); before that, the app's body reads do, and the
    /// driver is woken when the body ends or a read sees the input end.
    pub fn poll_client_gone(&mut self, cx: &mut Context<'_>, read_ahead: usize) -> bool {
        if self.eof {
            // Seen by a body read (the client left mid-body) or earlier.
            return true;
        }
        if self.io.is_none() {
            return false;
        }
        if !self.body.is_complete() {
            // The body's reads are the app's: wake the driver when the body
            // ends or a body read sees the input end.
            if !self
                .gone_waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                self.gone_waker = Some(cx.waker().clone());
            }
            return false;
        }
        loop {
            if self.read_buf.len() >= read_ahead {
                return false;
            }
            match self.poll_fill(cx) {
                Poll::Ready(Ok(0)) => return true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(_)) => {
                    self.eof = true;
                    return true;
                }
                Poll::Pending => return false,
            }
        }
    }

    /// Drop the read buffer if it holds nothing (an idle connection).
    pub fn release_read_buffer(&mut self) -> bool {
        if self.read_buf.is_empty() {
            self.read_buf = BytesMut::new();
            true
        } else {
            false
        }
    }

    /// Write all of `buf[*pos..]`, advancing `pos`.
    pub fn poll_write_all(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        pos: &mut usize,
    ) -> Poll<io::Result<()>> {
        while *pos < buf.len() {
            let n = ready!(self.io()?.poll_write(cx, &buf[*pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *pos += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Write all of `wb` and then `tail` (vectored when the stream supports
    /// it), consuming what was written from both.
    pub fn poll_write_buf(
        &mut self,
        cx: &mut Context<'_>,
        wb: &mut WriteBuf,
        tail: &mut Bytes,
    ) -> Poll<io::Result<()>> {
        use bytes::Buf;
        while !wb.buf.is_empty() || !tail.is_empty() {
            let n = if tail.is_empty() {
                ready!(self.io()?.poll_write(cx, &wb.buf))?
            } else {
                let slices = [io::IoSlice::new(&wb.buf), io::IoSlice::new(tail)];
                ready!(self.io()?.poll_write_vectored(cx, &slices))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let from_head = n.min(wb.buf.len());
            wb.consume(from_head);
            if n > from_head {
                wb.started = true;
                tail.advance(n - from_head);
            }
        }
        Poll::Ready(Ok(()))
    }

    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io()?.poll_flush(cx)
    }

    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io()?.poll_shutdown(cx)
    }

    /// Poll the next frame of the current request body. `limits` is the
    /// request's limits feature when the app reads (its values freeze at the
    /// first read); `None` when the driver drains.
    pub fn poll_body_frame(
        &mut self,
        cx: &mut Context<'_>,
        handle: &ConnectionHandle,
        limits: Option<&LimitsCell>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let r = self.poll_body_frame_inner(cx, handle, limits);
        if self.body.state.is_rate_tracked()
            && !matches!(r, Poll::Pending | Poll::Ready(Some(Ok(_))))
        {
            // The body ended or failed: stop measuring its rate.
            self.body.state.end_rate(handle.rates());
        }
        if self.gone_waker.is_some() && (self.body.is_complete() || self.eof) {
            // The driver can now watch for the client leaving (or has seen it).
            if let Some(w) = self.gone_waker.take() {
                w.wake();
            }
        }
        r
    }

    fn poll_body_frame_inner(
        &mut self,
        cx: &mut Context<'_>,
        handle: &ConnectionHandle,
        limits: Option<&LimitsCell>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.body.state.start_read(limits, handle.rates()) {
            ReadStart::Read => {}
            ReadStart::End => return Poll::Ready(None),
            ReadStart::Fail(e) => return Poll::Ready(Some(Err(e))),
            ReadStart::SendContinue => {
                if self.body.continue_written == 0 && !self.read_buf.is_empty() {
                    // The body is already arriving: no need to ask for it.
                    self.body.state.continue_answered();
                } else {
                    let mut pos = self.body.continue_written;
                    let r = self.poll_write_all(cx, CONTINUE_100, &mut pos);
                    self.body.continue_written = pos;
                    match ready!(r).and_then(|()| match self.poll_flush(cx) {
                        Poll::Ready(r) => r,
                        Poll::Pending => Ok(()),
                    }) {
                        Ok(()) => self.body.state.continue_answered(),
                        Err(e) => return Poll::Ready(Some(Err(BodyError::Io(e)))),
                    }
                }
            }
        }
        loop {
            let Some(decoder) = self.body.decoder.as_mut() else {
                return Poll::Ready(None);
            };
            match decoder {
                Decoder::Length(d) => {
                    if let Some(data) = d.decode(&mut self.read_buf) {
                        let done = d.is_done();
                        if let Err(e) = self.body.state.data_received(data.len()) {
                            return Poll::Ready(Some(Err(e)));
                        }
                        if done {
                            self.body.state.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    if d.is_done() {
                        self.body.state.finish();
                        return Poll::Ready(None);
                    }
                }
                Decoder::Chunked(d) => match d.decode(&mut self.read_buf) {
                    Ok(Some(ChunkedEvent::Data(data))) => {
                        if let Err(e) = self.body.state.data_received(data.len()) {
                            return Poll::Ready(Some(Err(e)));
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(Some(ChunkedEvent::Trailers(t))) => {
                        return Poll::Ready(Some(Ok(Frame::trailers(t))))
                    }
                    Ok(Some(ChunkedEvent::End)) => {
                        self.body.state.finish();
                        return Poll::Ready(None);
                    }
                    Ok(None) => {}
                    Err(r) => {
                        return Poll::Ready(Some(Err(self.body.state.reject(body_rejection(r)))))
                    }
                },
            }
            if self.eof {
                let e = self.body.state.reject(BodyRejection::ClientGone);
                return Poll::Ready(Some(Err(e)));
            }
            if handle.is_aborted() {
                return Poll::Ready(Some(Err(BodyError::ConnectionAborted)));
            }
            // Size the read by what the body still has to deliver.
            let want = match self.body.decoder.as_ref() {
                Some(Decoder::Length(d)) => {
                    usize::try_from(d.remaining()).map_or(MAX_BODY_READ, |r| r.min(MAX_BODY_READ))
                }
                Some(Decoder::Chunked(_)) => MAX_BODY_READ / 4,
                None => READ_CHUNK,
            };
            match self.poll_fill_up_to(cx, want) {
                Poll::Pending => {
                    self.body.state.read_waiting(handle.rates(), true);
                    if !self
                        .body
                        .waker
                        .as_ref()
                        .is_some_and(|w| w.will_wake(cx.waker()))
                    {
                        self.body.waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(n)) => {
                    self.body.state.read_waiting(handle.rates(), false);
                    self.body.state.read_bytes(handle.rates(), n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(BodyError::Io(e)))),
            }
        }
    }

    /// Fail the current body from the driver's side (e.g. a data-rate
    /// timeout) and wake whoever waits on it.
    pub fn reject_body(&mut self, r: RequestRejection) {
        self.body.state.reject_if_open(body_rejection(r));
        if let Some(w) = self.body.waker.take() {
            w.wake();
        }
    }
}

/// The driver's output buffer. It remembers where the current response
/// begins, so that a response that has not reached the wire yet can be
/// replaced (by a 500) when the app fails.
pub(crate) struct WriteBuf {
    pub buf: BytesMut,
    mark: Option<usize>,
    /// Some byte of the current response was written to the socket.
    pub started: bool,
}

impl WriteBuf {
    /// An empty buffer; it allocates when the first response is encoded.
    pub fn new() -> Self {
        WriteBuf {
            buf: BytesMut::new(),
            mark: None,
            started: false,
        }
    }

    /// Drop the allocation if nothing is pending (an idle connection).
    pub fn release(&mut self) -> bool {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
            self.mark = None;
            true
        } else {
            false
        }
    }

    /// The current response starts at the end of what is buffered.
    pub fn begin_response(&mut self) {
        self.mark = Some(self.buf.len());
        self.started = false;
    }

    fn consume(&mut self, n: usize) {
        use bytes::Buf;
        self.buf.advance(n);
        if let Some(m) = self.mark {
            if n > m {
                self.mark = Some(0);
                self.started = true;
            } else {
                self.mark = Some(m - n);
            }
        }
    }

    /// Drop the current response if none of it was written; false if it was.
    pub fn rollback(&mut self) -> bool {
        match self.mark {
            Some(m) if !self.started => {
                self.buf.truncate(m);
                true
            }
            _ => false,
        }
    }
}

/// The state shared between the driver and the application's request body.
pub(crate) struct Shared {
    conn: Mutex<ConnIo>,
    pub handle: Arc<ConnectionHandle>,
    /// The per-request limits feature, reused request after request.
    pub limits: LimitsCell,
}

impl Shared {
    pub fn new(
        io: BoxIo,
        read_buf: BytesMut,
        handle: Arc<ConnectionHandle>,
        limits: LimitsCell,
    ) -> Arc<Self> {
        Arc::new(Shared {
            conn: Mutex::new(ConnIo {
                io: Some(io),
                read_buf,
                eof: false,
                body: BodyState::idle(),
                gone_waker: None,
            }),
            handle,
            limits,
        })
    }

    /// Lock the I/O state (a poisoned lock is still usable: every field stays consistent per poll).
    pub fn lock(&self) -> MutexGuard<'_, ConnIo> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BodySource for Shared {
    fn poll_frame(
        &self,
        token: u64,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut conn = self.lock();
        if !conn.body.active || conn.body.token != token {
            return Poll::Ready(Some(Err(BodyError::RequestCompleted)));
        }
        conn.poll_body_frame(cx, &self.handle, Some(&self.limits))
    }

    fn is_end_stream(&self, token: u64) -> bool {
        let conn = self.lock();
        conn.body.token != token || conn.body.is_complete()
    }

    fn size_hint(&self, token: u64) -> SizeHint {
        let conn = self.lock();
        if conn.body.token != token || conn.body.is_complete() {
            return SizeHint::with_exact(0);
        }
        match &conn.body.decoder {
            Some(Decoder::Length(d)) => SizeHint::with_exact(d.remaining()),
            _ => SizeHint::default(),
        }
    }
}
