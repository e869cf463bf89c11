//! QUIC on quinn (feature `quic`): [`QuicListener`], a
//! [`MultiplexedListener`] over a UDP socket, the counterpart of Kestrel's
//! `Transport.Quic` (`QuicConnectionListener`, `QuicTransportOptions`).
//!
//! * TLS is rustls 0.23 with the ring provider (as `kestrel-tls`), **TLS 1.3
//!   only** (QUIC has no other), the ALPN list from [`QuicOptions::alpn`]
//!   (`h3` by default). The caller brings the certificate part of the
//!   `rustls::ServerConfig` ([`server_tls_config`] builds one from a chain and
//!   a key); [`QuicListener::bind`] sets its protocol versions and ALPN.
//! * Every QUIC transport option quinn has a say in is set explicitly from
//!   [`QuicOptions`] (Kestrel's `QuicTransportOptions` defaults): nothing runs
//!   on a quinn default the code does not name. See [`QuicOptions`] for the
//!   mapping, including the receive windows, which quinn leaves at 1.25 MB
//!   per stream and unlimited per connection.
//! * Handshakes run in a task of their own (bounded by
//!   [`QuicOptions::handshake_timeout`]); [`MultiplexedListener::poll_accept`]
//!   yields connections whose handshake is done, with the ALPN protocol, the
//!   SNI server name and the client's certificates in
//!   [`HandshakeInfo`]. A failed handshake is logged at debug level and
//!   skipped.
//! * Dropping the listener stops accepting (the endpoint refuses new
//!   connections); connections already accepted keep running.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use quinn::crypto::rustls::{HandshakeData, QuicServerConfig};
use quinn::{IdleTimeout, VarInt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::multiplexed::{
    BidiStream, BoxRecvStream, BoxSendStream, ConnectionError, HandshakeInfo,
    MultiplexedConnection, MultiplexedListener, MultiplexedStreams, RecvStream, SendStream,
    StreamError, StreamId, StreamOpener,
};
use crate::{Address, TransportKind};

/// QUIC transport options: Kestrel's `QuicTransportOptions`, with the
/// settings quinn needs on top, every one explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuicOptions {
    /// How many bidirectional streams the peer may have open at once
    /// (`MaxBidirectionalStreamCount`, 100): HTTP/3 request streams.
    pub max_bidirectional_streams: u32,
    /// How many unidirectional streams the peer may have open at once
    /// (`MaxUnidirectionalStreamCount`, 10): HTTP/3 control and QPACK
    /// streams.
    pub max_unidirectional_streams: u32,
    /// How many bytes one stream may receive ahead of the reader
    /// (`MaxReadBufferSize`, 1 MiB): quinn's stream receive window (quinn's
    /// own default is 1.25 MB).
    pub max_read_buffer_size: u32,
    /// How many bytes the whole connection may receive ahead of its readers:
    /// quinn's connection receive window, unlimited by default in quinn.
    /// Kestrel has no such option; the default, 4 MiB, caps what one
    /// connection can make the server hold.
    pub max_connection_read_buffer_size: u32,
    /// How many bytes one stream may have written and not yet acknowledged
    /// (`MaxWriteBufferSize`, 64 KiB). quinn's send window is per
    /// connection: it is set to this times
    /// [`max_bidirectional_streams`](QuicOptions::max_bidirectional_streams).
    pub max_write_buffer_size: u32,
    /// How long a connection may stay silent before it is dropped: Kestrel
    /// takes it from `KeepAliveTimeout` (130 s). Advertised to the peer as
    /// the QUIC `max_idle_timeout`.
    pub idle_timeout: Duration,
    /// How long a handshake may take (`HandshakeTimeout` of the HTTPS
    /// options, 10 s).
    pub handshake_timeout: Duration,
    /// How many connection attempts may wait to be handshaken at once
    /// (`Backlog`, 512): quinn's `max_incoming`.
    pub backlog: u32,
    /// The ALPN protocols offered, in order of preference (`h3`).
    pub alpn: Vec<Vec<u8>>,
}

impl Default for QuicOptions {
    fn default() -> QuicOptions {
        QuicOptions {
            max_bidirectional_streams: 100,
            max_unidirectional_streams: 10,
            max_read_buffer_size: 1024 * 1024,
            max_connection_read_buffer_size: 4 * 1024 * 1024,
            max_write_buffer_size: 64 * 1024,
            idle_timeout: Duration::from_secs(130),
            handshake_timeout: Duration::from_secs(10),
            backlog: 512,
            alpn: vec![b"h3".to_vec()],
        }
    }
}

impl QuicOptions {
    /// quinn's transport configuration, every field Kestrel has an opinion
    /// on set from these options.
    fn transport_config(&self) -> Result<quinn::TransportConfig, QuicBindError> {
        let mut t = quinn::TransportConfig::default();
        t.max_concurrent_bidi_streams(VarInt::from_u32(self.max_bidirectional_streams))
            .max_concurrent_uni_streams(VarInt::from_u32(self.max_unidirectional_streams))
            .stream_receive_window(VarInt::from_u32(self.max_read_buffer_size))
            .receive_window(VarInt::from_u32(self.max_connection_read_buffer_size))
            .send_window(
                u64::from(self.max_write_buffer_size)
                    * u64::from(self.max_bidirectional_streams.max(1)),
            )
            .max_idle_timeout(Some(
                IdleTimeout::try_from(self.idle_timeout)
                    .map_err(|_| QuicBindError::IdleTimeout(self.idle_timeout))?,
            ))
            // The server never pings to keep a connection open: an idle
            // client is dropped after the idle timeout, as Kestrel does.
            .keep_alive_interval(None)
            // No QUIC datagrams (no WebTransport / HTTP datagrams).
            .datagram_receive_buffer_size(None)
            // GSO where the kernel has it.
            .enable_segmentation_offload(true);
        Ok(t)
    }
}

/// Why a [`QuicListener`] could not be bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuicBindError {
    /// The UDP socket could not be bound.
    #[error("cannot bind the UDP socket {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The TLS configuration cannot run QUIC (it has no TLS 1.3 cipher suite
    /// QUIC's initial packets can use, or allows 0-RTT data in a size QUIC
    /// does not accept).
    #[error("the TLS configuration cannot be used for QUIC: {0}")]
    Tls(String),
    /// The idle timeout does not fit in a QUIC `max_idle_timeout`.
    #[error("the idle timeout {0:?} is out of range for QUIC")]
    IdleTimeout(Duration),
    /// quinn refused the configuration or the socket.
    #[error("cannot start the QUIC endpoint: {0}")]
    Endpoint(#[source] io::Error),
}

/// A rustls server configuration for QUIC from a certificate chain and its
/// key: ring provider, TLS 1.3 only, no client certificate. ALPN is set by
/// [`QuicListener::bind`].
pub fn server_tls_config(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)
}

/// A bound QUIC listener: a quinn endpoint on a UDP socket, accepting
/// connections whose handshake is done.
#[derive(Debug)]
pub struct QuicListener {
    endpoint: quinn::Endpoint,
    local_addr: Address,
    accepted: mpsc::Receiver<MultiplexedConnection>,
    acceptor: JoinHandle<()>,
}

impl QuicListener {
    /// Bind a UDP socket on `addr` and serve QUIC on it with `tls`: its ALPN
    /// list becomes [`QuicOptions::alpn`] and 0-RTT is off. rustls runs QUIC
    /// over TLS 1.3 only; a configuration whose provider has no TLS 1.3
    /// cipher suite QUIC's initial packets can use fails with
    /// [`QuicBindError::Tls`] (build it with [`server_tls_config`], or with
    /// TLS 1.3 enabled, or handshakes fail). Must be called inside a tokio
    /// runtime.
    pub fn bind(
        addr: SocketAddr,
        mut tls: rustls::ServerConfig,
        options: &QuicOptions,
    ) -> Result<QuicListener, QuicBindError> {
        tls.alpn_protocols.clone_from(&options.alpn);
        // No 0-RTT: early data can be replayed, and Kestrel does not accept it.
        tls.max_early_data_size = 0;
        let crypto =
            QuicServerConfig::try_from(tls).map_err(|e| QuicBindError::Tls(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server
            .transport_config(Arc::new(options.transport_config()?))
            .max_incoming(options.backlog.max(1) as usize)
            .migration(true);
        let socket =
            UdpSocket::bind(addr).map_err(|source| QuicBindError::Bind { addr, source })?;
        let runtime = quinn::default_runtime()
            .ok_or_else(|| QuicBindError::Endpoint(io::Error::other("no async runtime")))?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            runtime,
        )
        .map_err(QuicBindError::Endpoint)?;
        let bound = endpoint.local_addr().map_err(QuicBindError::Endpoint)?;
        let local_addr = Address::Ip(bound);
        let (tx, accepted) = mpsc::channel(options.backlog.max(1) as usize);
        let acceptor = tokio::spawn(accept_loop(
            endpoint.clone(),
            bound,
            options.handshake_timeout,
            tx,
        ));
        tracing::debug!(%bound, "QUIC listener bound");
        Ok(QuicListener {
            endpoint,
            local_addr,
            accepted,
            acceptor,
        })
    }

    /// The bound socket address (the port resolved when 0 was asked for).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.local_addr.ip()
    }
}

impl Drop for QuicListener {
    fn drop(&mut self) {
        self.acceptor.abort();
        // Refuse new connections; accepted ones keep the endpoint alive.
        self.endpoint.set_server_config(None);
    }
}

impl MultiplexedListener for QuicListener {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<MultiplexedConnection>> {
        match self.accepted.poll_recv(cx) {
            Poll::Ready(Some(conn)) => Poll::Ready(Ok(conn)),
            Poll::Ready(None) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the QUIC endpoint is closed",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn local_addr(&self) -> &Address {
        &self.local_addr
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    bound: SocketAddr,
    handshake_timeout: Duration,
    tx: mpsc::Sender<MultiplexedConnection>,
) {
    while let Some(incoming) = endpoint.accept().await {
        let tx = tx.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let connecting = match incoming.accept() {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(%remote, error = %e, "QUIC connection refused");
                    return;
                }
            };
            let conn = match tokio::time::timeout(handshake_timeout, connecting).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "QUIC handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, ?handshake_timeout, "QUIC handshake timed out");
                    return;
                }
            };
            let accepted = accepted_connection(conn, bound);
            // The listener is gone: the connection is dropped (and closed).
            let _ = tx.send(accepted).await;
        });
    }
}

fn accepted_connection(conn: quinn::Connection, bound: SocketAddr) -> MultiplexedConnection {
    let mut handshake = HandshakeInfo::default();
    if let Some(data) = conn
        .handshake_data()
        .and_then(|d| d.downcast::<HandshakeData>().ok())
    {
        handshake.alpn_protocol = data.protocol.map(Bytes::from);
        handshake.server_name = data.server_name;
    }
    if let Some(chain) = conn.peer_identity().and_then(|p| {
        p.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
            .ok()
    }) {
        handshake.peer_certificates = chain
            .iter()
            .map(|c| Bytes::copy_from_slice(c.as_ref()))
            .collect();
    }
    let local = match conn.local_ip() {
        Some(ip) => SocketAddr::new(ip, bound.port()),
        None => bound,
    };
    MultiplexedConnection {
        local_addr: Address::Ip(local),
        remote_addr: Address::Ip(conn.remote_address()),
        kind: TransportKind::Quic,
        handshake,
        streams: Box::new(QuicStreams::new(conn)),
    }
}

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// The opener must be `Sync`: its pending opens are too.
type SyncBoxFut<T> = Pin<Box<dyn Future<Output = T> + Send + Sync>>;

/// The code this end closed the connection with (quinn reports a local
/// close without it). `u64::MAX` = not closed by this end.
#[derive(Debug, Clone)]
struct LocalClose(Arc<AtomicU64>);

impl LocalClose {
    fn code(&self) -> u64 {
        match self.0.load(Ordering::Acquire) {
            u64::MAX => 0,
            code => code,
        }
    }

    fn close(&self, conn: &quinn::Connection, code: u64, reason: &[u8]) {
        let code = VarInt::from_u64(code).unwrap_or(VarInt::MAX);
        let _ = self.0.compare_exchange(
            u64::MAX,
            code.into_inner(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        conn.close(code, reason);
    }

    fn map(&self, e: quinn::ConnectionError) -> ConnectionError {
        match e {
            quinn::ConnectionError::ApplicationClosed(c) => ConnectionError::ApplicationClosed {
                code: c.error_code.into_inner(),
                reason: c.reason,
            },
            quinn::ConnectionError::ConnectionClosed(c) => ConnectionError::TransportClosed {
                code: u64::from(c.error_code),
            },
            quinn::ConnectionError::TransportError(t) => ConnectionError::TransportClosed {
                code: u64::from(t.code),
            },
            quinn::ConnectionError::TimedOut => ConnectionError::TimedOut,
            quinn::ConnectionError::LocallyClosed => {
                ConnectionError::LocallyClosed { code: self.code() }
            }
            // A stateless reset, a version mismatch or exhausted connection
            // ids: the transport ended the connection without a code.
            quinn::ConnectionError::Reset
            | quinn::ConnectionError::VersionMismatch
            | quinn::ConnectionError::CidsExhausted => ConnectionError::TransportClosed { code: 0 },
        }
    }
}

/// The streams of one quinn connection.
struct QuicStreams {
    conn: quinn::Connection,
    local: LocalClose,
    accept_bi:
        Option<BoxFut<Result<(quinn::SendStream, quinn::RecvStream), quinn::ConnectionError>>>,
    accept_uni: Option<BoxFut<Result<quinn::RecvStream, quinn::ConnectionError>>>,
    closed: Option<BoxFut<quinn::ConnectionError>>,
}

impl QuicStreams {
    fn new(conn: quinn::Connection) -> QuicStreams {
        QuicStreams {
            conn,
            local: LocalClose(Arc::new(AtomicU64::new(u64::MAX))),
            accept_bi: None,
            accept_uni: None,
            closed: None,
        }
    }
}

fn bidi(local: &LocalClose, (send, recv): (quinn::SendStream, quinn::RecvStream)) -> BidiStream {
    BidiStream {
        send: Box::new(QuicSend {
            inner: send,
            local: local.clone(),
        }),
        recv: Box::new(QuicRecv {
            inner: recv,
            local: local.clone(),
        }),
    }
}

impl MultiplexedStreams for QuicStreams {
    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream, ConnectionError>> {
        let conn = &self.conn;
        let fut = self.accept_bi.get_or_insert_with(|| {
            let conn = conn.clone();
            Box::pin(async move { conn.accept_bi().await })
        });
        let res = std::task::ready!(fut.as_mut().poll(cx));
        self.accept_bi = None;
        Poll::Ready(
            res.map(|s| bidi(&self.local, s))
                .map_err(|e| self.local.map(e)),
        )
    }

    fn poll_accept_uni(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BoxRecvStream, ConnectionError>> {
        let conn = &self.conn;
        let fut = self.accept_uni.get_or_insert_with(|| {
            let conn = conn.clone();
            Box::pin(async move { conn.accept_uni().await })
        });
        let res = std::task::ready!(fut.as_mut().poll(cx));
        self.accept_uni = None;
        Poll::Ready(
            res.map(|inner| {
                Box::new(QuicRecv {
                    inner,
                    local: self.local.clone(),
                }) as BoxRecvStream
            })
            .map_err(|e| self.local.map(e)),
        )
    }

    fn opener(&self) -> Box<dyn StreamOpener> {
        Box::new(QuicOpener::new(self.conn.clone(), self.local.clone()))
    }

    fn close(&mut self, code: u64, reason: &[u8]) {
        self.local.close(&self.conn, code, reason);
    }

    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<ConnectionError> {
        let conn = &self.conn;
        let fut = self.closed.get_or_insert_with(|| {
            let conn = conn.clone();
            Box::pin(async move { conn.closed().await })
        });
        let e = std::task::ready!(fut.as_mut().poll(cx));
        Poll::Ready(self.local.map(e))
    }
}

/// Opens streams on a quinn connection.
struct QuicOpener {
    conn: quinn::Connection,
    local: LocalClose,
    open_bi:
        Option<SyncBoxFut<Result<(quinn::SendStream, quinn::RecvStream), quinn::ConnectionError>>>,
    open_uni: Option<SyncBoxFut<Result<quinn::SendStream, quinn::ConnectionError>>>,
}

impl QuicOpener {
    fn new(conn: quinn::Connection, local: LocalClose) -> QuicOpener {
        QuicOpener {
            conn,
            local,
            open_bi: None,
            open_uni: None,
        }
    }
}

impl StreamOpener for QuicOpener {
    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BidiStream, ConnectionError>> {
        let conn = &self.conn;
        let fut = self.open_bi.get_or_insert_with(|| {
            let conn = conn.clone();
            Box::pin(async move { conn.open_bi().await })
        });
        let res = std::task::ready!(fut.as_mut().poll(cx));
        self.open_bi = None;
        Poll::Ready(
            res.map(|s| bidi(&self.local, s))
                .map_err(|e| self.local.map(e)),
        )
    }

    fn poll_open_uni(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<BoxSendStream, ConnectionError>> {
        let conn = &self.conn;
        let fut = self.open_uni.get_or_insert_with(|| {
            let conn = conn.clone();
            Box::pin(async move { conn.open_uni().await })
        });
        let res = std::task::ready!(fut.as_mut().poll(cx));
        self.open_uni = None;
        Poll::Ready(
            res.map(|inner| {
                Box::new(QuicSend {
                    inner,
                    local: self.local.clone(),
                }) as BoxSendStream
            })
            .map_err(|e| self.local.map(e)),
        )
    }

    fn close(&mut self, code: u64, reason: &[u8]) {
        self.local.close(&self.conn, code, reason);
    }

    fn clone_opener(&self) -> Box<dyn StreamOpener> {
        Box::new(QuicOpener::new(self.conn.clone(), self.local.clone()))
    }
}

fn stream_id(id: quinn::StreamId) -> StreamId {
    // quinn's ids are varints, so always in range.
    StreamId::from_varint(u64::from(id))
}

/// The sending half of a quinn stream.
struct QuicSend {
    inner: quinn::SendStream,
    local: LocalClose,
}

impl QuicSend {
    fn map(&self, e: quinn::WriteError) -> StreamError {
        match e {
            quinn::WriteError::Stopped(code) => StreamError::Stopped {
                code: code.into_inner(),
            },
            quinn::WriteError::ConnectionLost(e) => StreamError::Connection(self.local.map(e)),
            quinn::WriteError::ClosedStream | quinn::WriteError::ZeroRttRejected => {
                StreamError::ClosedStream
            }
        }
    }
}

impl SendStream for QuicSend {
    fn id(&self) -> StreamId {
        stream_id(self.inner.id())
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, StreamError>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(n)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.map(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_finish(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), StreamError>> {
        Poll::Ready(self.inner.finish().map_err(|_| StreamError::ClosedStream))
    }

    fn reset(&mut self, code: u64) {
        let _ = self
            .inner
            .reset(VarInt::from_u64(code).unwrap_or(VarInt::MAX));
    }
}

/// The receiving half of a quinn stream.
struct QuicRecv {
    inner: quinn::RecvStream,
    local: LocalClose,
}

impl RecvStream for QuicRecv {
    fn id(&self) -> StreamId {
        stream_id(self.inner.id())
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>> {
        // `read_chunk` is cancel-safe and registers the waker with the
        // stream, so a fresh future per poll is sound (quinn's own
        // `poll_write` does the same).
        let res = std::task::ready!(pin!(self.inner.read_chunk(usize::MAX, true)).poll(cx));
        Poll::Ready(match res {
            Ok(chunk) => Ok(chunk.map(|c| c.bytes)),
            Err(quinn::ReadError::Reset(code)) => Err(StreamError::Reset {
                code: code.into_inner(),
            }),
            Err(quinn::ReadError::ConnectionLost(e)) => {
                Err(StreamError::Connection(self.local.map(e)))
            }
            Err(
                quinn::ReadError::ClosedStream
                | quinn::ReadError::IllegalOrderedRead
                | quinn::ReadError::ZeroRttRejected,
            ) => Err(StreamError::ClosedStream),
        })
    }

    fn stop_sending(&mut self, code: u64) {
        let _ = self
            .inner
            .stop(VarInt::from_u64(code).unwrap_or(VarInt::MAX));
    }
}
