//! [`ProxyProtocolMiddleware`]: reads the PROXY header at the start of each
//! connection and gives the connection the addresses it names, before TLS
//! and HTTP see a byte.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use ipnet::IpNet;
use kestrel_core::middleware::{BoxFuture, ConnectionMiddleware, MiddlewareLimits};
use kestrel_core::{ListenOptions, Scheme};
use kestrel_transport::{Address, BoxIo, Connection, Rewind};
use tokio::io::AsyncReadExt;

use crate::header::{ProxyAddresses, ProxyCommand, ProxyHeader};
use crate::parse::{parse, ParseError, Parsed, MAX_V2_HEADER};

/// The header deadline when the server gives none (Kestrel's default
/// `RequestHeadersTimeout`).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of the PROXY protocol on one endpoint (`ProxyProtocol=Required`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyProtocolOptions {
    /// The proxies allowed to send PROXY headers (addresses or networks).
    /// Empty (the default): any peer. A TCP connection from elsewhere is
    /// closed before a byte is read. Unix socket peers are always allowed
    /// (only local processes with access to the socket file reach them).
    pub trusted_proxies: Vec<IpNet>,
    /// How long the whole header may take to arrive, from the connection's
    /// start. `None` (the default): the server's `RequestHeadersTimeout`
    /// (30 s unless configured).
    pub header_timeout: Option<Duration>,
}

impl ProxyProtocolOptions {
    /// Defaults: any peer, the server's request-headers timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept PROXY headers only from `proxy` (an address is a /32 or /128 network).
    pub fn trust(mut self, proxy: impl Into<IpNet>) -> Self {
        self.trusted_proxies.push(proxy.into());
        self
    }

    /// The header deadline.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = Some(timeout);
        self
    }

    fn trusts(&self, peer: &Address) -> bool {
        match peer {
            Address::Ip(a) => {
                self.trusted_proxies.is_empty()
                    || self
                        .trusted_proxies
                        .iter()
                        .any(|n| n.contains(&a.ip().to_canonical()))
            }
            _ => true,
        }
    }
}

/// Why a connection was closed by the PROXY protocol middleware.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyProtocolError {
    /// The peer is not one of the trusted proxies.
    #[error("the peer {0} is not a trusted proxy")]
    Untrusted(SocketAddr),
    /// The bytes are not a valid PROXY header (or none at all).
    #[error(transparent)]
    Invalid(#[from] ParseError),
    /// The header did not arrive within the deadline.
    #[error("no complete PROXY header within {timeout:?} ({received} bytes received)")]
    Timeout {
        /// The deadline.
        timeout: Duration,
        /// The bytes received by then.
        received: usize,
    },
    /// The peer closed before the header was complete.
    #[error(
        "the connection closed before the PROXY header was complete ({received} bytes received)"
    )]
    ClosedEarly {
        /// The bytes received.
        received: usize,
    },
    /// Reading failed.
    #[error("reading the PROXY header failed: {0}")]
    Io(#[source] io::Error),
}

impl From<ProxyProtocolError> for io::Error {
    fn from(e: ProxyProtocolError) -> io::Error {
        let kind = match &e {
            ProxyProtocolError::Untrusted(_) => io::ErrorKind::PermissionDenied,
            ProxyProtocolError::Invalid(_) => io::ErrorKind::InvalidData,
            ProxyProtocolError::Timeout { .. } => io::ErrorKind::TimedOut,
            ProxyProtocolError::ClosedEarly { .. } => io::ErrorKind::UnexpectedEof,
            ProxyProtocolError::Io(e) => e.kind(),
        };
        io::Error::new(kind, e)
    }
}

/// The PROXY header a connection arrived with: a connection feature (in
/// [`ConnectionInfo::features`](kestrel_core::ConnectionInfo::features) of
/// every request on it), with the v2 TLVs (ALPN, authority, unique id, SSL,
/// custom ones such as AWS's VPC endpoint id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocolFeature {
    /// The header as parsed.
    pub header: ProxyHeader,
    /// The proxy's own address (the connection's real peer).
    pub proxy_addr: Address,
    /// The address the proxy connected to (the server's own socket address).
    pub server_addr: Address,
}

impl ProxyProtocolFeature {
    /// The v2 TLVs (empty for v1).
    pub fn tlvs(&self) -> &crate::Tlvs {
        &self.header.tlvs
    }
}

/// The PROXY protocol as connection middleware: v1 and v2, required on
/// every connection of the endpoint. Add it with
/// [`ListenOptionsProxyProtocolExt::use_proxy_protocol`], before HTTPS.
#[derive(Debug, Clone, Default)]
pub struct ProxyProtocolMiddleware {
    options: ProxyProtocolOptions,
}

impl ProxyProtocolMiddleware {
    /// The middleware with `options`.
    pub fn new(options: ProxyProtocolOptions) -> Self {
        ProxyProtocolMiddleware { options }
    }

    /// Read the header from `conn` within `timeout`, and return the
    /// connection with the header's addresses and the bytes read past it.
    async fn accept(
        &self,
        mut conn: Connection,
        timeout: Duration,
    ) -> Result<(Connection, ProxyProtocolFeature), ProxyProtocolError> {
        if !self.options.trusts(&conn.remote_addr) {
            let peer = conn
                .remote_addr
                .ip()
                .unwrap_or_else(|| ([0, 0, 0, 0], 0).into());
            return Err(ProxyProtocolError::Untrusted(peer));
        }
        let mut buf = BytesMut::new();
        let read = tokio::time::timeout(timeout, read_header(&mut conn.io, &mut buf)).await;
        let (header, consumed) = match read {
            Ok(r) => r?,
            Err(_) => {
                return Err(ProxyProtocolError::Timeout {
                    timeout,
                    received: buf.len(),
                })
            }
        };
        let rest = buf.split_off(consumed);
        let feature = ProxyProtocolFeature {
            header: header.clone(),
            proxy_addr: conn.remote_addr.clone(),
            server_addr: conn.local_addr.clone(),
        };
        match (header.command, header.addresses) {
            (ProxyCommand::Local, _) | (_, ProxyAddresses::Unspecified) => {}
            (
                _,
                ProxyAddresses::Ip {
                    source,
                    destination,
                },
            ) => {
                conn.remote_addr = Address::Ip(source);
                conn.local_addr = Address::Ip(destination);
            }
            (
                _,
                ProxyAddresses::Unix {
                    source,
                    destination,
                },
            ) => {
                conn.remote_addr = Address::Unix(source);
                conn.local_addr = Address::Unix(destination);
            }
        }
        if !rest.is_empty() {
            let io: BoxIo = conn.io;
            conn.io = Box::new(Rewind::new(rest.freeze(), io));
        }
        Ok((conn, feature))
    }
}

/// Read into `buf` until it holds a whole header (or an error).
async fn read_header(
    io: &mut BoxIo,
    buf: &mut BytesMut,
) -> Result<(ProxyHeader, usize), ProxyProtocolError> {
    loop {
        match parse(buf)? {
            Parsed::Complete { header, consumed } => return Ok((header, consumed)),
            Parsed::Incomplete => {}
        }
        // The parser refuses anything longer than a v2 header may be, so
        // the buffer stays below MAX_V2_HEADER plus one read.
        if buf.capacity() - buf.len() < 256 {
            buf.reserve(512.min(MAX_V2_HEADER));
        }
        let n = io.read_buf(buf).await.map_err(ProxyProtocolError::Io)?;
        if n == 0 {
            return Err(ProxyProtocolError::ClosedEarly {
                received: buf.len(),
            });
        }
    }
}

impl ConnectionMiddleware for ProxyProtocolMiddleware {
    fn call<'a>(
        &'a self,
        connection: Connection,
        features: &'a mut http::Extensions,
    ) -> BoxFuture<'a, io::Result<Connection>> {
        Box::pin(async move {
            let timeout = self
                .options
                .header_timeout
                .or_else(|| {
                    features
                        .get::<MiddlewareLimits>()
                        .map(|l| l.request_headers_timeout)
                })
                .unwrap_or(DEFAULT_HEADER_TIMEOUT);
            let peer = connection.remote_addr.clone();
            match self.accept(connection, timeout).await {
                Ok((conn, feature)) => {
                    match feature.header.command {
                        ProxyCommand::Local => tracing::debug!(
                            target: "kestrel::connections",
                            event_name = "ProxyProtocolLocal",
                            proxy = %peer,
                            "PROXY header LOCAL (the proxy's own health check): served with the proxy's address"
                        ),
                        ProxyCommand::Proxy => tracing::debug!(
                            target: "kestrel::connections",
                            event_name = "ProxyProtocolAccepted",
                            version = ?feature.header.version,
                            client = %conn.remote_addr,
                            local = %conn.local_addr,
                            proxy = %peer,
                            "PROXY header: client {} via proxy {peer}", conn.remote_addr
                        ),
                    }
                    features.insert(feature);
                    Ok(conn)
                }
                Err(e) => {
                    tracing::debug!(
                        target: "kestrel::connections",
                        event_name = "ProxyProtocolRejected",
                        proxy = %peer,
                        error = %e,
                        "closing the connection: {e}"
                    );
                    Err(e.into())
                }
            }
        })
    }
}

/// A PROXY middleware added after HTTPS (it must see the raw stream first).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("use_proxy_protocol must be called before use_https: the PROXY header comes before the TLS handshake")]
pub struct AfterTlsError;

/// Adds [`use_proxy_protocol`](Self::use_proxy_protocol) to `ListenOptions`.
pub trait ListenOptionsProxyProtocolExt {
    /// Require a PROXY header (v1 or v2) on every connection of this
    /// endpoint (configuration: `ProxyProtocol=Required`). Call it before
    /// `use_https`: the header precedes the TLS handshake.
    ///
    /// # Panics
    /// If the endpoint already uses HTTPS ([`try_use_proxy_protocol`](Self::try_use_proxy_protocol) returns the error).
    fn use_proxy_protocol(&mut self, options: ProxyProtocolOptions) -> &mut Self;

    /// [`use_proxy_protocol`](Self::use_proxy_protocol), returning an error
    /// when HTTPS is already on.
    fn try_use_proxy_protocol(
        &mut self,
        options: ProxyProtocolOptions,
    ) -> Result<&mut Self, AfterTlsError>;
}

impl ListenOptionsProxyProtocolExt for ListenOptions {
    fn use_proxy_protocol(&mut self, options: ProxyProtocolOptions) -> &mut Self {
        if let Err(e) = self.try_use_proxy_protocol(options) {
            panic!("{e}");
        }
        self
    }

    fn try_use_proxy_protocol(
        &mut self,
        options: ProxyProtocolOptions,
    ) -> Result<&mut Self, AfterTlsError> {
        if self.scheme == Scheme::Https {
            return Err(AfterTlsError);
        }
        Ok(self.use_middleware(ProxyProtocolMiddleware::new(options)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kestrel_transport::TransportKind;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn conn(io: tokio::io::DuplexStream, peer: &str) -> Connection {
        Connection {
            io: Box::new(io),
            local_addr: Address::Ip("127.0.0.1:8080".parse().unwrap()),
            remote_addr: Address::Ip(peer.parse().unwrap()),
            kind: TransportKind::Tcp,
        }
    }

    #[tokio::test]
    async fn addresses_come_from_the_header_and_the_rest_is_replayed() {
        let (mut client, server) = tokio::io::duplex(1024);
        client
            .write_all(b"PROXY TCP4 203.0.113.7 192.0.2.10 40000 443\r\nGET / HTTP/1.1\r\n")
            .await
            .unwrap();
        let mw = ProxyProtocolMiddleware::default();
        let mut features = http::Extensions::new();
        let mut c = mw
            .call(conn(server, "127.0.0.1:5555"), &mut features)
            .await
            .unwrap();
        assert_eq!(
            c.remote_addr,
            Address::Ip("203.0.113.7:40000".parse().unwrap())
        );
        assert_eq!(c.local_addr, Address::Ip("192.0.2.10:443".parse().unwrap()));
        let f = features.get::<ProxyProtocolFeature>().unwrap();
        assert_eq!(f.proxy_addr, Address::Ip("127.0.0.1:5555".parse().unwrap()));
        let mut rest = [0u8; 16];
        c.io.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn untrusted_peers_are_refused_before_reading() {
        let (_client, server) = tokio::io::duplex(64);
        let mw = ProxyProtocolMiddleware::new(
            ProxyProtocolOptions::new()
                .trust("10.0.0.0/8".parse::<IpNet>().unwrap())
                .trust(IpNet::from(
                    "127.0.0.2".parse::<std::net::IpAddr>().unwrap(),
                )),
        );
        let mut features = http::Extensions::new();
        let e = mw
            .call(conn(server, "127.0.0.1:1"), &mut features)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("not a trusted proxy"), "{e}");
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"PROXY UNKNOWN\r\n").await.unwrap();
        // IPv4-mapped IPv6 peers are compared as IPv4.
        let c = mw
            .call(conn(server, "[::ffff:10.1.2.3]:1"), &mut features)
            .await
            .unwrap();
        assert_eq!(
            c.remote_addr,
            Address::Ip("[::ffff:10.1.2.3]:1".parse().unwrap())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_header_times_out_from_the_limits_the_server_gives() {
        let (mut client, server) = tokio::io::duplex(64);
        let mw = ProxyProtocolMiddleware::default();
        let mut features = http::Extensions::new();
        features.insert(MiddlewareLimits::new(Duration::from_secs(2)));
        let task = tokio::spawn(async move {
            let r = mw.call(conn(server, "127.0.0.1:1"), &mut features).await;
            r.map(|_| ())
        });
        // 18 bytes at 200 ms: past the 2 s deadline (writes fail once the
        // middleware has given up and dropped the stream).
        for b in b"PROXY TCP4 1.2.3.4" {
            let _ = client.write_all(&[*b]).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let e = task.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("within 2s"), "{e}");
    }
}
