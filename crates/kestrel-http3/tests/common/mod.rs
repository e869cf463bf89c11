//! What the HTTP/3 test binaries share: a server (`Http3Connection` on the
//! quinn listener, a self-signed rcgen certificate, on loopback UDP), the
//! client's TLS configuration, and raw and h3 client connections.
#![allow(dead_code, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kestrel_core::connection::ConnectionId;
use kestrel_core::heartbeat::Clock;
use kestrel_core::Application;
use kestrel_http3::{Http3Config, Http3Connection};
use kestrel_transport::multiplexed::MultiplexedListenerExt;
use kestrel_transport::quic::{server_tls_config, QuicListener, QuicOptions};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// How long any step may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running server; dropping it stops accepting.
pub struct Server {
    pub addr: SocketAddr,
    pub cert: CertificateDer<'static>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve `app` with `config` on a new loopback UDP port.
pub fn serve_with<A: Application + Clone>(config: Http3Config, app: A) -> Server {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("self-signed").der().clone();
    let tls = server_tls_config(
        vec![cert.clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .expect("tls");
    let mut listener = QuicListener::bind(
        "127.0.0.1:0".parse().expect("addr"),
        tls,
        &QuicOptions::default(),
    )
    .expect("bind");
    let addr = listener.socket_addr().expect("addr");
    let config = Arc::new(config);
    let clock = Clock::new(Duration::from_secs(1));
    let task = tokio::spawn(async move {
        let mut next_id = 1;
        while let Ok(conn) = listener.accept().await {
            let h3 =
                Http3Connection::new(conn, config.clone(), clock.clone(), ConnectionId(next_id));
            next_id += 1;
            let app = app.clone();
            tokio::spawn(async move {
                let _ = h3.serve(&app).await;
            });
        }
    });
    Server { addr, cert, task }
}

/// A quinn client configuration that trusts the server's certificate, ALPN `h3`.
pub fn client_tls(server: &Server) -> quinn::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.cert.clone()).expect("root");
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("tls13")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic client"),
    ))
}

/// A QUIC connection with ALPN `h3` to the server, without an h3 client.
pub async fn raw_connection(server: &Server) -> quinn::Connection {
    let mut endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client");
    endpoint.set_default_client_config(client_tls(server));
    tokio::time::timeout(
        WAIT,
        endpoint.connect(server.addr, "localhost").expect("connect"),
    )
    .await
    .expect("in time")
    .expect("handshake")
}

/// The well-behaved client: h3 over h3-quinn.
pub struct Client {
    pub send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    _driver: tokio::task::JoinHandle<()>,
}

/// An h3 client connected to the server.
pub async fn client(server: &Server) -> Client {
    let conn = raw_connection(server).await;
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .expect("h3 client");
    let driver = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    Client {
        send,
        _driver: driver,
    }
}
