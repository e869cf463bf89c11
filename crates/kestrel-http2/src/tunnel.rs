//! An accepted extended CONNECT (RFC 8441) as a duplex byte stream: reads
//! are the stream's DATA frames, writes become DATA frames under HTTP/2 flow
//! control, and shutdown (or drop) ends the stream with END_STREAM.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use h2::{Reason, RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use crate::body::StreamState;

/// One HTTP/2 stream as an `AsyncRead + AsyncWrite`, handed to the app
/// inside a `kestrel_core::Upgraded`.
pub(crate) struct Tunnel {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received bytes not yet read by the app.
    pending: Bytes,
    read_eof: bool,
    write_closed: bool,
    /// The stream's shared state: its `RequestAborted` fires when the
    /// client resets the stream.
    state: Arc<StreamState>,
    /// Dropped with the tunnel: tells the stream's driver the tunnel is over.
    _done: oneshot::Sender<()>,
}

impl Tunnel {
    pub fn new(
        send: SendStream<Bytes>,
        recv: RecvStream,
        state: Arc<StreamState>,
        done: oneshot::Sender<()>,
    ) -> Self {
        Tunnel {
            send,
            recv,
            pending: Bytes::new(),
            read_eof: false,
            write_closed: false,
            state,
            _done: done,
        }
    }

    /// The stream was reset (by the client, or with its connection).
    fn reset_error(&self, e: h2::Error) -> io::Error {
        self.state.abort();
        let kind = if e.is_io() || e.is_go_away() {
            io::ErrorKind::ConnectionAborted
        } else {
            io::ErrorKind::ConnectionReset
        };
        io::Error::new(kind, e)
    }

    fn reset_by(&self, reason: Reason) -> io::Error {
        self.state.abort();
        io::Error::new(
            io::ErrorKind::ConnectionReset,
            format!("the client reset the HTTP/2 stream ({reason})"),
        )
    }
}

impl AsyncRead for Tunnel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                // Hand the window back as the app consumes: `h2` buffers at
                // most one stream window of unread data.
                let _ = this.recv.flow_control().release_capacity(n);
                return Poll::Ready(Ok(()));
            }
            if this.read_eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => this.pending = data,
                Some(Err(e)) => {
                    if e.reason() == Some(Reason::NO_ERROR) {
                        // RST_STREAM(NO_ERROR): the client is done sending.
                        this.read_eof = true;
                    } else {
                        return Poll::Ready(Err(this.reset_error(e)));
                    }
                }
                None => this.read_eof = true,
            }
        }
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.write_closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the stream was shut down for writing",
            )));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            let granted = this.send.capacity();
            if granted > 0 {
                let n = granted.min(buf.len());
                this.send
                    .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                    .map_err(|e| this.reset_error(e))?;
                return Poll::Ready(Ok(n));
            }
            // Ask for the window (and send-buffer room) the data needs; `h2`
            // grants it as the client's window and the send buffer allow.
            this.send.reserve_capacity(buf.len());
            match this.send.poll_capacity(cx) {
                Poll::Ready(Some(Ok(_))) => continue,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(this.reset_error(e))),
                Poll::Ready(None) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the HTTP/2 stream is closed",
                    )))
                }
                Poll::Pending => {
                    return match this.send.poll_reset(cx) {
                        Poll::Ready(Ok(reason)) => Poll::Ready(Err(this.reset_by(reason))),
                        Poll::Ready(Err(e)) => Poll::Ready(Err(this.reset_error(e))),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Data handed to `h2` is written by the connection's task.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.write_closed {
            this.write_closed = true;
            this.send
                .send_data(Bytes::new(), true)
                .map_err(|e| this.reset_error(e))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        // Like closing a socket: END_STREAM (a FIN), not a reset. If the
        // client is still sending, `h2` then resets the stream with NO_ERROR.
        if !self.write_closed {
            let _ = self.send.send_data(Bytes::new(), true);
        }
    }
}
