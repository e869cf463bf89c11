//! Protocol selection for one connection (Kestrel's `HttpConnection`):
//! ALPN decides over TLS; on cleartext the endpoint's `HttpProtocols` and
//! the first bytes (the HTTP/2 preface or not) do.
//!
//! | Endpoint | Preface | HTTP/1 request |
//! |---|---|---|
//! | Http1AndHttp2 (default) | HTTP/2 (prior knowledge; Kestrel serves HTTP/1.1 only here) | HTTP/1.x |
//! | Http2 | HTTP/2 | raw `400` "An HTTP/1.x request was sent to an HTTP/2 only endpoint.", close |
//! | Http1 | GOAWAY HTTP_1_1_REQUIRED, close | HTTP/1.x |

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use kestrel_core::connection::{ConnectionHandle, Signal, TimeoutReason};
use kestrel_core::heartbeat::Clock;
use kestrel_core::{HttpProtocols, TlsInfo};
use kestrel_transport::BoxIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Kestrel's answer to an HTTP/1.x request on a cleartext HTTP/2-only
/// endpoint (`Http2Connection.TryReadPrefaceAsync`).
pub(crate) const HTTP1_ON_HTTP2_ONLY: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Connection: close\r\n\
Content-Type: text/plain\r\n\
Content-Length: 56\r\n\
\r\n\
An HTTP/1.x request was sent to an HTTP/2 only endpoint.";

/// Kestrel's answer to the HTTP/2 preface on a cleartext HTTP/1-only
/// endpoint: GOAWAY(last stream 0, HTTP_1_1_REQUIRED) (`Http1Connection.cs`).
pub(crate) const GOAWAY_HTTP_1_1_REQUIRED: [u8; 17] =
    [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0d];

/// How long the server writes and lingers when it answers and closes during
/// protocol selection.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// The stack buffer the first bytes are read into (no heap buffer until data arrives).
const SNIFF_READ: usize = 2 * 1024;
/// The read buffer allocated once bytes arrive (as the HTTP/1 driver does).
const FIRST_READ: usize = 4 * 1024;

/// The protocol a connection speaks, with the bytes already read from it.
#[derive(Debug)]
pub(crate) enum Chosen {
    /// HTTP/1.x; the bytes go to the driver's read buffer.
    Http1(BytesMut),
    /// HTTP/2; the bytes (the preface, and maybe more) are replayed to it.
    #[cfg_attr(not(feature = "http2"), allow(dead_code))]
    Http2(BytesMut),
    /// Closed (answered, timed out, or the client left).
    Close,
}

/// Choose the protocol of a connection on an endpoint speaking `protocols`.
pub(crate) async fn choose(
    io: &mut BoxIo,
    protocols: HttpProtocols,
    tls: Option<&TlsInfo>,
    handle: &ConnectionHandle,
    clock: &Clock,
    request_headers_timeout: Duration,
    max_request_line_size: usize,
) -> Chosen {
    let h2 = protocols.contains(HttpProtocols::HTTP2) && cfg!(feature = "http2");
    let h1 = protocols.contains(HttpProtocols::HTTP1);
    if let Some(tls) = tls {
        // ALPN decides (Kestrel: h2 → HTTP/2, anything else → HTTP/1.1).
        if tls.is_h2() && h2 {
            return Chosen::Http2(BytesMut::new());
        }
        if h1 && !tls.is_h2() {
            return Chosen::Http1(BytesMut::new());
        }
        tracing::warn!(target: "kestrel::connections", connection_id = %handle.id(), protocols = %protocols, alpn = ?tls.alpn.as_deref().map(String::from_utf8_lossy), "HTTP/2 over TLS was not negotiated on an HTTP/2-only endpoint (or HTTP/2 is not compiled in): closing the connection");
        return Chosen::Close;
    }
    if protocols.contains(HttpProtocols::HTTP2) && !h2 {
        if !h1 {
            tracing::warn!(target: "kestrel::connections", connection_id = %handle.id(), "an HTTP/2-only endpoint needs the `http2` feature of the `kestrel` crate: closing the connection");
            return Chosen::Close;
        }
        tracing::debug!(target: "kestrel::connections", connection_id = %handle.id(), "HTTP/2 is not compiled in (feature `http2`): serving HTTP/1.x only");
    }
    // Sniffing runs under the request-headers deadline, like the first
    // request of a connection.
    handle.timeout().set(
        TimeoutReason::RequestHeaders,
        request_headers_timeout,
        clock.ticks(),
        clock.interval(),
    );
    let chosen = sniff(io, h1, h2, handle, max_request_line_size).await;
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
    h1: bool,
    h2: bool,
    handle: &ConnectionHandle,
    max_request_line_size: usize,
) -> Chosen {
    let mut buf = BytesMut::new();
    loop {
        match looks(&buf) {
            Looks::NeedMore => {}
            Looks::Preface if h2 => return Chosen::Http2(buf),
            Looks::Preface => {
                tracing::debug!(target: "kestrel::connections", connection_id = %handle.id(), "the HTTP/2 preface arrived on an HTTP/1-only endpoint: GOAWAY HTTP_1_1_REQUIRED");
                answer_and_close(io, &GOAWAY_HTTP_1_1_REQUIRED).await;
                return Chosen::Close;
            }
            Looks::NotPreface if h1 => return Chosen::Http1(buf),
            Looks::NotPreface => match is_http1_request_line(&buf) {
                Some(true) => {
                    kestrel_core::events::possible_invalid_http_version_detected(handle.id());
                    answer_and_close(io, HTTP1_ON_HTTP2_ONLY).await;
                    return Chosen::Close;
                }
                // Neither HTTP/1 nor the preface: h2 answers the bad preface.
                Some(false) => return Chosen::Http2(buf),
                None if buf.len() > max_request_line_size => return Chosen::Http2(buf),
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
            Ok(0) => return Chosen::Close,
            Ok(_) => {}
            Err(Some(reason)) => {
                tracing::debug!(target: "kestrel::connections", connection_id = %handle.id(), reason = ?reason, bytes = buf.len(), "no complete request start in time: closing");
                return Chosen::Close;
            }
            Err(None) => return Chosen::Close,
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
