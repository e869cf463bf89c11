//! [`Rewind`]: replay bytes that were already read, then read on from the
//! stream itself.
//!
//! The server reads the first bytes of a cleartext connection to choose the
//! protocol (the HTTP/2 preface or an HTTP/1 request line); the protocol it
//! hands the connection to must still see those bytes. Writes, flushes and
//! shutdowns go straight to the inner stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A duplex stream that yields `prefix` before the bytes of `inner`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use bytes::Bytes;
/// use kestrel_transport::Rewind;
/// use tokio::io::AsyncReadExt;
///
/// let inner: &[u8] = b" world";
/// let mut io = Rewind::new(Bytes::from_static(b"hello"), inner);
/// let mut out = String::new();
/// io.read_to_string(&mut out).await?;
/// assert_eq!(out, "hello world");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Rewind<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    /// Replay `prefix`, then read from `inner`.
    pub fn new(prefix: Bytes, inner: T) -> Self {
        Rewind { prefix, inner }
    }

    /// The bytes not yet replayed.
    pub fn prefix(&self) -> &Bytes {
        &self.prefix
    }

    /// The inner stream (the bytes of the prefix not yet replayed are lost).
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn replays_the_prefix_in_small_reads_then_the_stream() {
        let (client, server) = tokio::io::duplex(64);
        let mut io = Rewind::new(Bytes::from_static(b"PRI * HTTP/2.0"), server);
        let mut client = client;
        client.write_all(b" rest").await.expect("write");
        drop(client);
        let mut small = [0u8; 4];
        let n = io.read(&mut small).await.expect("read");
        assert_eq!(&small[..n], b"PRI ");
        assert_eq!(io.prefix().len(), 10);
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.expect("read");
        assert_eq!(rest, b"* HTTP/2.0 rest");
    }

    #[tokio::test]
    async fn writes_go_to_the_inner_stream() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = Rewind::new(Bytes::from_static(b"x"), server);
        io.write_all(b"pong").await.expect("write");
        io.flush().await.expect("flush");
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"pong");
    }
}
