//! Connection logging (Kestrel's `UseConnectionLogging`): connection
//! middleware that logs every read and write on a connection — byte counts
//! and the first bytes as a hex/ASCII dump — at trace level, for debugging.
//!
//! ```no_run
//! # let mut listen = kestrel_core::ListenOptions::new(kestrel_core::BindTarget::Localhost(5000));
//! listen.use_middleware(kestrel_core::connection_logging::ConnectionLogging::new());
//! ```
//! Enable the `kestrel::connection_logging` target at `trace` to see it (e.g.
//! `RUST_LOG=kestrel::connection_logging=trace`).

use std::fmt::Write as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use kestrel_transport::{BoxIo, Connection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::middleware::{BoxFuture, ConnectionMiddleware};

/// How many bytes of each read or write are dumped.
const DUMP_BYTES: usize = 64;

/// The connection-logging middleware.
#[derive(Debug, Clone, Default)]
pub struct ConnectionLogging {
    _private: (),
}

impl ConnectionLogging {
    /// The middleware.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ConnectionMiddleware for ConnectionLogging {
    fn call<'a>(
        &'a self,
        mut connection: Connection,
        _features: &'a mut http::Extensions,
    ) -> BoxFuture<'a, io::Result<Connection>> {
        Box::pin(async move {
            let peer = connection.remote_addr.to_string();
            connection.io = Box::new(LoggingIo {
                inner: connection.io,
                peer,
            });
            Ok(connection)
        })
    }
}

struct LoggingIo {
    inner: BoxIo,
    peer: String,
}

fn dump(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(DUMP_BYTES)];
    let mut out = String::with_capacity(shown.len() * 4);
    for b in shown {
        let _ = write!(out, "{b:02X} ");
    }
    out.push('"');
    out.extend(shown.iter().map(|&b| {
        if b.is_ascii_graphic() || b == b' ' {
            b as char
        } else {
            '.'
        }
    }));
    out.push('"');
    if bytes.len() > shown.len() {
        out.push_str(" …");
    }
    out
}

impl AsyncRead for LoggingIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            let read = &buf.filled()[before..];
            if tracing::enabled!(target: "kestrel::connection_logging", tracing::Level::TRACE) {
                tracing::trace!(target: "kestrel::connection_logging", peer = %self.peer, bytes = read.len(), "ReadAsync[{}] {}", read.len(), dump(read));
            }
        }
        r
    }
}

impl AsyncWrite for LoggingIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            if tracing::enabled!(target: "kestrel::connection_logging", tracing::Level::TRACE) {
                tracing::trace!(target: "kestrel::connection_logging", peer = %self.peer, bytes = *n, "WriteAsync[{}] {}", n, dump(&buf[..*n]));
            }
        }
        r
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

    #[test]
    fn dumps_hex_and_ascii() {
        assert_eq!(dump(b"GET /\r\n"), "47 45 54 20 2F 0D 0A \"GET /..\"");
        assert!(dump(&[b'x'; 100]).ends_with(" …"));
    }
}
