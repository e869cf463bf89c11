//! Protocol selection for one connection (Kestrel's `HttpConnection`):
//! ALPN decides over TLS; on cleartext the endpoint's [`HttpProtocols`] and
//! the first bytes (the HTTP/2 preface or not) do.
//!
//! | Endpoint | Preface | HTTP/1 request |
//! |---|---|---|
//! | Http1AndHttp2 (default) | HTTP/2 (prior knowledge; Kestrel serves HTTP/1.1 only here) | HTTP/1.x |
//! | Http2 | HTTP/2 | raw `400` "An HTTP/1.x request was sent to an HTTP/2 only endpoint.", close |
//! | Http1 | GOAWAY HTTP_1_1_REQUIRED, close | HTTP/1.x |
//!
//! Over TLS: ALPN `h2` → HTTP/2 (if the endpoint speaks it), anything else
//! (`http/1.1` or none) → HTTP/1.1 (if the endpoint speaks it); otherwise
//! the connection is closed.
//!
//! Call [`AdmittedConnection::select_protocol`] after connection middleware
//! (so that TLS has recorded its ALPN choice), then hand the connection to
//! the driver it names: the bytes read while sniffing stay in the admitted
//! connection and the driver reads them first. [`select`] is the same over
//! bare parts.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use kestrel_transport::BoxIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

use crate::connection::{ConnectionHandle, Signal, TimeoutReason};
use crate::heartbeat::Clock;
use crate::limits::ServerLimits;
use crate::runtime::AdmittedConnection;
use crate::{HttpProtocols, TlsInfo};

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Kestrel's answer to an HTTP/1.x request on a cleartext HTTP/2-only
/// endpoint (`Http2Connection.TryReadPrefaceAsync`).
pub const HTTP1_ON_HTTP2_ONLY: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Connection: close\r\n\
Content-Type: text/plain\r\n\
Content-Length: 56\r\n\
\r\n\
An HTTP/1.x request was sent to an HTTP/2 only endpoint.";

/// Kestrel's answer to the HTTP/2 preface on a cleartext HTTP/1-only
/// endpoint: GOAWAY(last stream 0, HTTP_1_1_REQUIRED) (`Http1Connection.cs`).
pub const GOAWAY_HTTP_1_1_REQUIRED: [u8; 17] =
    [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0d];

/// How long the server writes and lingers when it answers and closes during
/// protocol selection.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// The stack buffer the first bytes are read into (no heap buffer until data arrives).
const SNIFF_READ: usize = 2 * 1024;
/// The read buffer allocated once bytes arrive (as the HTTP/1 driver does).
const FIRST_READ: usize = 4 * 1024;

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SelectedProtocol {
    /// HTTP/1.x.
    Http1,
    /// HTTP/2 (prior knowledge on cleartext, or ALPN `h2`).
    Http2,
    /// Closed: answered (wrong protocol for the endpoint), timed out,
    /// aborted, or the client left.
    Close,
}

/// The limits protocol selection runs under: sniffing runs under the
/// request-headers deadline, like the first request of a connection, and
/// gives up on HTTP/1 after a request line's worth of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SelectionLimits {
    /// `RequestHeadersTimeout` (30 s by default).
    pub request_headers_timeout: Duration,
    /// `MaxRequestLineSize` (8 KiB by default).
    pub max_request_line_size: usize,
}

impl SelectionLimits {
    /// The limits of `limits`.
    pub fn from_limits(limits: &ServerLimits) -> Self {
        SelectionLimits {
            request_headers_timeout: limits.request_headers_timeout,
            max_request_line_size: limits.max_request_line_size,
        }
    }

    /// These values.
    pub fn new(request_headers_timeout: Duration, max_request_line_size: usize) -> Self {
        SelectionLimits {
            request_headers_timeout,
            max_request_line_size,
        }
    }
}

impl Default for SelectionLimits {
    fn default() -> Self {
        Self::from_limits(&ServerLimits::default())
    }
}

impl AdmittedConnection {
    /// Choose the protocol of this connection on an endpoint speaking
    /// `protocols` (see the [module docs](crate::selection)). The bytes read
    /// while sniffing stay in the connection for the driver.
    pub async fn select_protocol(
        &mut self,
        protocols: HttpProtocols,
        limits: SelectionLimits,
    ) -> SelectedProtocol {
        let tls = self.tls().cloned();
        let handle = self.handle().clone();
        let clock = self.clock().clone();
        let (io, buffered) = self.io_and_buffer();
        select(
            io,
            buffered,
            protocols,
            tls.as_ref(),
            &handle,
            &clock,
            limits,
        )
        .await
    }
}

/// Choose the protocol of a connection over `io` on an endpoint speaking
/// `protocols`; `tls` is the TLS handshake's outcome, if any. The bytes
/// read are appended to `buffered`. `handle`'s deadline is armed with the
/// request-headers timeout while sniffing (it fires only if a heartbeat
/// visits the handle), and its abort and close signals end the wait.
pub async fn select(
    io: &mut BoxIo,
    buffered: &mut BytesMut,
    protocols: HttpProtocols,
    tls: Option<&TlsInfo>,
    handle: &ConnectionHandle,
    clock: &Clock,
    limits: SelectionLimits,
) -> SelectedProtocol {
    let h2 = protocols.contains(HttpProtocols::HTTP2);
    let h1 = protocols.contains(HttpProtocols::HTTP1);
    if let Some(tls) = tls {
        // ALPN decides (Kestrel: h2 → HTTP/2, anything else → HTTP/1.1).
        if tls.is_h2() && h2 {
            return SelectedProtocol::Http2;
        }
        if h1 && !tls.is_h2() {
            return SelectedProtocol::Http1;
        }
        tracing::warn!(target: "kestrel::connections", connection_id = %handle.id(), protocols = %protocols, alpn = ?tls.alpn.as_deref().map(String::from_utf8_lossy), "HTTP/2 over TLS was not negotiated on an HTTP/2-only endpoint (or HTTP/2 is not compiled in): closing the connection");
        return SelectedProtocol::Close;
    }
    handle.timeout().set(
        TimeoutReason::RequestHeaders,
        limits.request_headers_timeout,
        clock.ticks(),
        clock.interval(),
    );
    let chosen = sniff(io, buffered, h1, h2, handle, limits.max_request_line_size).await;
    handle.timeout().cancel();
    chosen
}

enum Looks {
    Preface,
    NotPreface,
    NeedMore,
}

fn looks(buf: &[u8]) -> Looks {
    let n = buf.len().min(PREFACE.len());
    if buf[..n] != PREFACE[..n] {
        Looks::NotPreface
    } else if n == PREFACE.len() {
        Looks::Preface
    } else {
        Looks::NeedMore
    }
}

/// Whether `buf` holds a whole HTTP/1.0 or HTTP/1.1 request line.
fn is_http1_request_line(buf: &[u8]) -> Option<bool> {
    let end = buf.iter().position(|&b| b == b'\n')?;
    let line = buf[..end].strip_suffix(b"\r").unwrap_or(&buf[..end]);
    Some(line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0"))
}

async fn sniff(
    io: &mut BoxIo,
    buf: &mut BytesMut,
    h1: bool,
    h2: bool,
    handle: &ConnectionHandle,
    max_request_line_size: usize,
) -> SelectedProtocol {
    loop {
        match looks(buf) {
            Looks::NeedMore => {}
            Looks::Preface if h2 => return SelectedProtocol::Http2,
            Looks::Preface => {
                tracing::debug!(target: "kestrel::connections", connection_id = %handle.id(), "the HTTP/2 preface arrived on an HTTP/1-only endpoint: GOAWAY HTTP_1_1_REQUIRED");
                answer_and_close(io, &GOAWAY_HTTP_1_1_REQUIRED).await;
                return SelectedProtocol::Close;
            }
            Looks::NotPreface if h1 => return SelectedProtocol::Http1,
            Looks::NotPreface => match is_http1_request_line(buf) {
                Some(true) => {
                    crate::events::possible_invalid_http_version_detected(handle.id());
                    answer_and_close(io, HTTP1_ON_HTTP2_ONLY).await;
                    return SelectedProtocol::Close;
                }
                // Neither HTTP/1 nor the preface: h2 answers the bad preface.
                Some(false) => return SelectedProtocol::Http2,
                None if buf.len() > max_request_line_size => return SelectedProtocol::Http2,
                None => {}
            },
        }
        let read = poll_fn(|cx| {
            match handle.poll_signal(cx) {
                Poll::Ready(Signal::Aborted) => return Poll::Ready(Err(None)),
                Poll::Ready(Signal::TimedOut(reason)) => return Poll::Ready(Err(Some(reason))),
                Poll::Ready(Signal::CloseRequested) if buf.is_empty() => {
                    return Poll::Ready(Err(None))
                }
                _ => {}
            }
            let mut scratch = [0u8; SNIFF_READ];
            let mut rb = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    if n > 0 {
                        buf.reserve(FIRST_READ.max(n));
                        buf.extend_from_slice(rb.filled());
                    }
                    Poll::Ready(Ok(n))
                }
                Poll::Ready(Err(_)) => Poll::Ready(Err(None)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        match read {
            Ok(0) => return SelectedProtocol::Close,
            Ok(_) => {}
            Err(Some(reason)) => {
                tracing::debug!(target: "kestrel::connections", connection_id = %handle.id(), reason = ?reason, bytes = buf.len(), "no complete request start in time: closing");
                return SelectedProtocol::Close;
            }
            Err(None) => return SelectedProtocol::Close,
        }
    }
}

/// Write `bytes`, shut our side down, and drain what the client still sends
/// for a moment, so it reads the answer rather than a reset.
async fn answer_and_close(io: &mut BoxIo, bytes: &[u8]) {
    let answer = async {
        io.write_all(bytes).await?;
        io.flush().await?;
        io.shutdown().await?;
        let mut sink = [0u8; 1024];
        while io.read(&mut sink).await? > 0 {}
        Ok::<(), io::Error>(())
    };
    let _ = tokio::time::timeout(ANSWER_TIMEOUT, answer).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_first_bytes() {
        assert!(matches!(looks(b""), Looks::NeedMore));
        assert!(matches!(looks(b"PRI * HT"), Looks::NeedMore));
        assert!(matches!(looks(b"POST / HTTP/1.1\r\n"), Looks::NotPreface));
        assert!(matches!(looks(b"GET"), Looks::NotPreface));
        assert!(matches!(looks(PREFACE), Looks::Preface));
        let mut more = PREFACE.to_vec();
        more.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        assert!(matches!(looks(&more), Looks::Preface));
        assert_eq!(is_http1_request_line(b"GET / HTTP/1.1\r\nHost"), Some(true));
        assert_eq!(is_http1_request_line(b"GET / HTTP/1.0\n"), Some(true));
        assert_eq!(is_http1_request_line(b"GET / HTTP/3.0\r\n"), Some(false));
        assert_eq!(is_http1_request_line(b"GET / HTTP/1.1"), None);
        assert_eq!(
            HTTP1_ON_HTTP2_ONLY.len()
                - HTTP1_ON_HTTP2_ONLY
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .unwrap_or(0)
                - 4,
            56
        );
    }
}
