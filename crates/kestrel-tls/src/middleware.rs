//! The HTTPS connection middleware (Kestrel's `HttpsConnectionMiddleware`)
//! and `use_https` on an endpoint.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use kestrel_core::features::TlsInfo;
use kestrel_core::metrics::{self, EndpointTags};
use kestrel_core::middleware::{BoxFuture, ConnectionMiddleware};
use kestrel_core::{HttpProtocols, ListenOptions};
use kestrel_transport::{BoxIo, Connection};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::TlsAcceptor;

use crate::error::TlsError;
use crate::options::HttpsOptions;
use crate::watch::CertificateWatcher;

/// The first byte of every TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What a plain-HTTP client gets from an HTTPS endpoint.
const PLAIN_HTTP_RESPONSE: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 49\r\n\
Connection: close\r\n\
\r\n\
The plain HTTP request was sent to an HTTPS port.";

/// Connection middleware that runs the TLS handshake (server side) and
/// hands the decrypted stream to the next layer, recording a [`TlsInfo`] in
/// the connection's features.
///
/// * The whole handshake, including the wait for the client's first byte,
///   runs under [`HttpsOptions::handshake_timeout`]: a client that sends
///   nothing, or stalls part-way, is dropped.
/// * A client that speaks plain HTTP (its first byte is not a TLS handshake
///   record) gets `400 Bad Request` with `Connection: close`, and the
///   connection is closed.
/// * On an HTTP/2-only endpoint, a client that did not negotiate `h2` by
///   ALPN is closed after the handshake.
/// * Every failure is logged at debug level with its reason (target
///   `kestrel::tls`): they are the clients' mistakes, not the server's.
///
/// When [`HttpsOptions::watch_certificate_files`] is on, the files of the
/// file-backed certificates are watched as long as the middleware (or a
/// clone) lives, and reloaded when they change.
#[derive(Clone)]
pub struct HttpsConnectionMiddleware {
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    http2_only: bool,
    _watcher: Option<Arc<CertificateWatcher>>,
}

impl std::fmt::Debug for HttpsConnectionMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsConnectionMiddleware")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("alpn", &self.alpn_protocols())
            .finish_non_exhaustive()
    }
}

impl HttpsConnectionMiddleware {
    /// Build the TLS configuration once, offering by ALPN the protocols of
    /// `protocols` (`h2` first, then `http/1.1`).
    pub fn new(options: &HttpsOptions, protocols: HttpProtocols) -> Result<Self, TlsError> {
        let config = options.server_config(protocols)?;
        let watcher = if options.watch_certificate_files {
            CertificateWatcher::start(options.certificates()).map(Arc::new)
        } else {
            None
        };
        Ok(HttpsConnectionMiddleware {
            acceptor: TlsAcceptor::from(config),
            handshake_timeout: options.handshake_timeout,
            http2_only: protocols.contains(HttpProtocols::HTTP2)
                && !protocols.contains(HttpProtocols::HTTP1),
            _watcher: watcher,
        })
    }

    /// The ALPN protocol names offered, most preferred first.
    pub fn alpn_protocols(&self) -> Vec<String> {
        self.acceptor
            .config()
            .alpn_protocols
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    }

    async fn handshake(
        &self,
        connection: Connection,
        features: &mut http::Extensions,
    ) -> io::Result<Connection> {
        let Connection {
            io,
            local_addr,
            remote_addr,
            kind,
        } = connection;
        let remote = remote_addr.to_string();
        let accept = async {
            let mut io = io;
            let mut first = vec![0u8; 1024];
            let n = io.read(&mut first).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection before the TLS handshake",
                ));
            }
            first.truncate(n);
            if first[0] != TLS_HANDSHAKE_RECORD {
                answer_plain_http(io).await;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the client sent plain HTTP (not a TLS handshake) to an HTTPS endpoint; answered 400",
                ));
            }
            self.acceptor.accept(Prefixed::new(first, io)).await
        };
        let tls = match tokio::time::timeout(self.handshake_timeout, accept).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(target: "kestrel::tls", event_name = "AuthenticationFailed", remote = %remote, reason = %e, "failed to authenticate HTTPS connection: {e}");
                return Err(e);
            }
            Err(_) => {
                tracing::debug!(target: "kestrel::tls", event_name = "AuthenticationTimedOut", remote = %remote, timeout = ?self.handshake_timeout, "authentication of the HTTPS connection timed out");
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the TLS handshake timed out",
                ));
            }
        };
        let info = {
            let (_, conn) = tls.get_ref();
            TlsInfo::new(
                conn.protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default(),
                conn.negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()))
                    .unwrap_or_default(),
                conn.server_name().map(str::to_string),
                conn.alpn_protocol().map(<[u8]>::to_vec),
                conn.peer_certificates()
                    .map(|chain| {
                        chain
                            .iter()
                            .map(|c| Bytes::copy_from_slice(c.as_ref()))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        };
        tracing::debug!(
            target: "kestrel::tls",
            event_name = "HttpsConnectionEstablished",
            remote = %remote,
            protocol = %info.protocol_version,
            cipher_suite = %info.cipher_suite,
            server_name = info.server_name.as_deref().unwrap_or(""),
            alpn = %info.alpn.as_deref().map(String::from_utf8_lossy).unwrap_or_default(),
            client_certificate = !info.peer_certificates.is_empty(),
            "HTTPS connection established using {}",
            info.protocol_version
        );
        if self.http2_only && !info.is_h2() {
            tracing::debug!(target: "kestrel::tls", remote = %remote, "HTTP/2 over TLS was not negotiated on an HTTP/2-only endpoint; closing the connection");
            let mut tls = tls;
            let _ = tokio::time::timeout(Duration::from_secs(1), tls.shutdown()).await;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "HTTP/2 over TLS was not negotiated on an HTTP/2-only endpoint",
            ));
        }
        features.insert(info);
        Ok(Connection {
            io: Box::new(tls),
            local_addr,
            remote_addr,
            kind,
        })
    }
}

/// Answer a plain-HTTP client with 400 and close, reading a little of what
/// it sent so that it sees the response rather than a reset.
async fn answer_plain_http(mut io: BoxIo) {
    if io.write_all(PLAIN_HTTP_RESPONSE).await.is_err() {
        return;
    }
    let _ = io.flush().await;
    let _ = io.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut total = 0usize;
        while total < 64 * 1024 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
}

impl ConnectionMiddleware for HttpsConnectionMiddleware {
    fn call<'a>(
        &'a self,
        connection: Connection,
        features: &'a mut http::Extensions,
    ) -> BoxFuture<'a, io::Result<Connection>> {
        Box::pin(async move {
            // kestrel.tls_handshake.duration / kestrel.active_tls_handshakes
            // (no-ops, and no clock read, unless metrics are compiled in).
            let started = metrics::ENABLED.then(std::time::Instant::now);
            let tags = EndpointTags::default();
            if started.is_some() {
                metrics::tls_handshake_started(&tags);
            }
            let result = self.handshake(connection, features).await;
            if let Some(started) = started {
                let version =
                    features
                        .get::<TlsInfo>()
                        .and_then(|i| match i.protocol_version.as_str() {
                            "TLSv1_3" => Some("1.3"),
                            "TLSv1_2" => Some("1.2"),
                            _ => None,
                        });
                metrics::tls_handshake_stopped(&tags, started.elapsed(), version, result.is_err());
            }
            result
        })
    }
}

/// `use_https` on an endpoint (Kestrel's `ListenOptions.UseHttps`).
pub trait ListenOptionsHttpsExt {
    /// Serve HTTPS on this endpoint: add [`HttpsConnectionMiddleware`], with
    /// ALPN from the endpoint's current `protocols` (set them first).
    ///
    /// # Panics
    /// If the options cannot make a TLS configuration (no certificate,
    /// client certificates required without trusted roots or callback,
    /// `DelayCertificate`). Use [`try_use_https`](Self::try_use_https) to get
    /// the error instead.
    fn use_https(&mut self, options: HttpsOptions) -> &mut Self;

    /// [`use_https`](Self::use_https), returning configuration errors.
    fn try_use_https(&mut self, options: HttpsOptions) -> Result<&mut Self, TlsError>;
}

impl ListenOptionsHttpsExt for ListenOptions {
    fn use_https(&mut self, options: HttpsOptions) -> &mut Self {
        let target = self.target.clone();
        if let Err(e) = self.try_use_https(options) {
            panic!("use_https on {target:?}: {e}");
        }
        self
    }

    fn try_use_https(&mut self, options: HttpsOptions) -> Result<&mut Self, TlsError> {
        let mw = HttpsConnectionMiddleware::new(&options, self.protocols)?;
        self.scheme = kestrel_core::Scheme::Https;
        // For QUIC (HTTP/3), which runs TLS itself: the same certificates
        // and client-certificate policy, and the handshake timeout; the QUIC
        // listener sets its ALPN.
        self.set_tls_config(Arc::new(EndpointTls {
            server_config: mw.acceptor.config().clone(),
            handshake_timeout: options.handshake_timeout,
        }));
        Ok(self.use_middleware(mw))
    }
}

/// What an HTTPS endpoint records for transports that run TLS themselves
/// (QUIC, for HTTP/3), through `ListenOptions::set_tls_config`: the rustls
/// configuration `use_https` built (certificates, SNI, client-certificate
/// policy) and [`HttpsOptions::handshake_timeout`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EndpointTls {
    /// The endpoint's rustls server configuration.
    pub server_config: Arc<rustls::ServerConfig>,
    /// How long a handshake may take (Kestrel's `HandshakeTimeout`).
    pub handshake_timeout: std::time::Duration,
}

/// A stream that first replays bytes already read from it.
struct Prefixed {
    prefix: Vec<u8>,
    pos: usize,
    inner: BoxIo,
}

impl Prefixed {
    fn new(prefix: Vec<u8>, inner: BoxIo) -> Self {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let rest = &this.prefix[this.pos..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_types_are_send_and_sync() {
        fn is<T: Send + Sync + 'static>() {}
        is::<HttpsConnectionMiddleware>();
        is::<crate::HttpsOptions>();
        is::<crate::Certificate>();
        is::<crate::DevCertificate>();
        is::<crate::TlsError>();
        is::<crate::CertificateSummary>();
        is::<crate::ClientCertificateMode>();
        is::<crate::TlsVersion>();
    }

    #[test]
    fn plain_http_response_is_well_framed() {
        let text = std::str::from_utf8(PLAIN_HTTP_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        assert!(head.contains("Connection: close"));
    }
}
