//! The quinn listener (feature `quic`) against a real quinn client over
//! loopback UDP: the handshake's ALPN and SNI, bytes both ways on
//! bidirectional and unidirectional streams, resets, stops and close codes,
//! and Kestrel's stream limits as the client sees them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kestrel_transport::multiplexed::{
    ConnectionError, Direction, MultiplexedConnection, MultiplexedListener, MultiplexedListenerExt,
    MultiplexedStreamsExt, RecvStreamExt, SendStreamExt, Side, StreamError, StreamOpenerExt,
};
use kestrel_transport::quic::{server_tls_config, QuicListener, QuicOptions};
use kestrel_transport::{Address, TransportKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const WAIT: Duration = Duration::from_secs(10);

struct Peer {
    listener: QuicListener,
    addr: SocketAddr,
    client: quinn::Endpoint,
    cert: CertificateDer<'static>,
}

fn cert() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("self-signed");
    (
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

fn peer(options: &QuicOptions) -> Peer {
    let (cert, key) = cert();
    let tls = server_tls_config(vec![cert.clone()], key).expect("tls");
    let listener =
        QuicListener::bind("127.0.0.1:0".parse().expect("addr"), tls, options).expect("bind");
    let addr = listener.socket_addr().expect("ip");
    let client = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client");
    Peer {
        listener,
        addr,
        client,
        cert,
    }
}

fn client_config(cert: &CertificateDer<'static>, alpn: &[u8]) -> quinn::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).expect("root");
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("tls13")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic client"),
    ))
}

async fn connect(p: &mut Peer) -> (quinn::Connection, MultiplexedConnection) {
    let connecting = p
        .client
        .connect_with(client_config(&p.cert, b"h3"), p.addr, "localhost")
        .expect("connect");
    let (client, server) = tokio::join!(
        async { tokio::time::timeout(WAIT, connecting).await },
        async { tokio::time::timeout(WAIT, p.listener.accept()).await }
    );
    (
        client.expect("client in time").expect("client handshake"),
        server.expect("server in time").expect("accepted"),
    )
}

#[tokio::test]
async fn handshake_reports_alpn_sni_and_addresses() {
    let mut p = peer(&QuicOptions::default());
    assert_eq!(p.listener.local_addr(), &Address::Ip(p.addr));
    let (client, server) = connect(&mut p).await;
    assert_eq!(server.kind, TransportKind::Quic);
    assert_eq!(server.handshake.alpn_protocol.as_deref(), Some(&b"h3"[..]));
    assert_eq!(server.handshake.server_name.as_deref(), Some("localhost"));
    assert!(server.handshake.peer_certificates.is_empty());
    assert_eq!(
        server.remote_addr,
        Address::Ip(p.client.local_addr().expect("client addr"))
    );
    assert_eq!(server.local_addr, Address::Ip(p.addr));
    assert_eq!(
        client
            .handshake_data()
            .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|d| d.protocol),
        Some(b"h3".to_vec())
    );
}

#[tokio::test]
async fn a_client_without_the_h3_alpn_is_refused_and_the_listener_serves_on() {
    let mut p = peer(&QuicOptions::default());
    let refused = p
        .client
        .connect_with(client_config(&p.cert, b"h2"), p.addr, "localhost")
        .expect("connect");
    let err = tokio::time::timeout(WAIT, refused)
        .await
        .expect("in time")
        .expect_err("no common ALPN");
    // rustls sends the TLS alert no_application_protocol (120) as QUIC
    // CRYPTO_ERROR 0x100 + 120.
    match err {
        quinn::ConnectionError::ConnectionClosed(c) => {
            assert_eq!(u64::from(c.error_code), 0x100 + 120, "{c:?}")
        }
        other => panic!("expected a transport close, got {other:?}"),
    }
    let (_client, server) = connect(&mut p).await;
    assert_eq!(server.handshake.alpn_protocol.as_deref(), Some(&b"h3"[..]));
}

#[tokio::test]
async fn bytes_flow_on_bidirectional_and_unidirectional_streams() {
    let mut p = peer(&QuicOptions::default());
    let (client, mut server) = connect(&mut p).await;

    // Client-opened bidirectional stream: request and response.
    let (mut csend, mut crecv) = client.open_bi().await.expect("open bi");
    csend.write_all(b"ping").await.expect("write");
    csend.finish().expect("finish");
    let bidi = tokio::time::timeout(WAIT, server.streams.accept_bidi())
        .await
        .expect("in time")
        .expect("bidi");
    assert_eq!(bidi.id().as_u64(), 0);
    assert_eq!(bidi.id().initiator(), Side::Client);
    assert_eq!(bidi.id().direction(), Direction::Bidirectional);
    let (mut ssend, mut srecv) = bidi.split();
    assert_eq!(&srecv.read_to_end(1024).await.expect("read")[..], b"ping");
    ssend.write_all(b"pong").await.expect("write");
    ssend.finish().await.expect("finish");
    assert_eq!(crecv.read_to_end(1024).await.expect("read"), b"pong");

    // Client-opened unidirectional stream.
    let mut cuni = client.open_uni().await.expect("open uni");
    cuni.write_all(&[0x00, 0x04, 0x00]).await.expect("write");
    cuni.finish().expect("finish");
    let mut suni = tokio::time::timeout(WAIT, server.streams.accept_uni())
        .await
        .expect("in time")
        .expect("uni");
    assert_eq!(suni.id().as_u64(), 2);
    assert_eq!(suni.id().direction(), Direction::Unidirectional);
    assert_eq!(
        &suni.read_to_end(1024).await.expect("read")[..],
        &[0x00, 0x04, 0x00]
    );

    // Server-opened unidirectional stream (an HTTP/3 control stream).
    let mut opener = server.streams.opener();
    let mut out = opener.open_uni().await.expect("server uni");
    assert_eq!(out.id().as_u64(), 3);
    assert_eq!(out.id().initiator(), Side::Server);
    out.write_all(b"control").await.expect("write");
    out.finish().await.expect("finish");
    let mut cin = client.accept_uni().await.expect("client accepts");
    assert_eq!(cin.read_to_end(1024).await.expect("read"), b"control");

    // A larger body crosses several flow-control updates.
    let (mut csend, mut crecv) = client.open_bi().await.expect("open bi");
    let body = vec![0x5a_u8; 3 * 1024 * 1024];
    let echo = async {
        let (mut ssend, mut srecv) = server.streams.accept_bidi().await.expect("bidi").split();
        let mut total = 0;
        while let Some(chunk) = srecv.data().await.expect("data") {
            total += chunk.len();
            ssend.write_all(&chunk).await.expect("echo");
        }
        ssend.finish().await.expect("finish");
        total
    };
    // Write and read back at once: the echo is bounded by flow control.
    let send = async {
        let write = async {
            csend.write_all(&body).await.expect("write");
            csend.finish().expect("finish");
        };
        let read = async { crecv.read_to_end(8 * 1024 * 1024).await.expect("read back") };
        tokio::join!(write, read).1
    };
    let (total, back) = tokio::time::timeout(WAIT, async { tokio::join!(echo, send) })
        .await
        .expect("in time");
    assert_eq!(total, body.len());
    assert_eq!(back, body);
}

#[tokio::test]
async fn resets_stops_and_close_codes_are_seen_by_both_ends() {
    let mut p = peer(&QuicOptions::default());
    let (client, mut server) = connect(&mut p).await;

    // The client resets its sending side: the server's read fails with the code.
    let (mut csend, _crecv) = client.open_bi().await.expect("open bi");
    csend.write_all(b"partial").await.expect("write");
    csend.reset(quinn::VarInt::from_u32(0x10c)).expect("reset");
    let (_ssend, mut srecv) = server.streams.accept_bidi().await.expect("bidi").split();
    let err = loop {
        match tokio::time::timeout(WAIT, srecv.data())
            .await
            .expect("in time")
        {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("a reset stream must not end cleanly"),
            Err(e) => break e,
        }
    };
    assert_eq!(err, StreamError::Reset { code: 0x10c });

    // The server stops reading: the client's writes fail with the code.
    let (mut csend, _crecv) = client.open_bi().await.expect("open bi");
    csend.write_all(b"x").await.expect("write");
    let (_ssend, mut srecv) = server.streams.accept_bidi().await.expect("bidi").split();
    srecv.stop_sending(0x10b);
    let stopped = tokio::time::timeout(WAIT, csend.stopped())
        .await
        .expect("in time")
        .expect("stopped");
    assert_eq!(stopped, Some(quinn::VarInt::from_u32(0x10b)));

    // The server resets its sending side: the client's read fails with the code.
    let (mut csend, mut crecv) = client.open_bi().await.expect("open bi");
    csend.write_all(b"y").await.expect("write");
    let (mut ssend, _srecv) = server.streams.accept_bidi().await.expect("bidi").split();
    ssend.write_all(b"some").await.expect("write");
    ssend.reset(0x102);
    let err = loop {
        match tokio::time::timeout(WAIT, crecv.read_chunk(1024, true))
            .await
            .expect("in time")
        {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("a reset stream must not end cleanly"),
            Err(e) => break e,
        }
    };
    assert_eq!(err, quinn::ReadError::Reset(quinn::VarInt::from_u32(0x102)));

    // The server closes the connection with H3_NO_ERROR: the client sees the
    // code and the reason, the server sees its own close with the code.
    server.streams.close(0x100, b"bye");
    match tokio::time::timeout(WAIT, client.closed())
        .await
        .expect("in time")
    {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code, quinn::VarInt::from_u32(0x100));
            assert_eq!(&c.reason[..], b"bye");
        }
        other => panic!("expected an application close, got {other:?}"),
    }
    assert_eq!(
        tokio::time::timeout(WAIT, server.streams.closed())
            .await
            .expect("in time"),
        ConnectionError::LocallyClosed { code: 0x100 }
    );
    assert!(matches!(
        server.streams.accept_bidi().await,
        Err(ConnectionError::LocallyClosed { code: 0x100 })
    ));
}

#[tokio::test]
async fn a_client_close_reaches_the_server_with_its_code() {
    let mut p = peer(&QuicOptions::default());
    let (client, mut server) = connect(&mut p).await;
    client.close(quinn::VarInt::from_u32(0x101), b"H3_GENERAL_PROTOCOL_ERROR");
    let err = tokio::time::timeout(WAIT, server.streams.accept_bidi())
        .await
        .expect("in time")
        .expect_err("closed");
    assert_eq!(
        err,
        ConnectionError::ApplicationClosed {
            code: 0x101,
            reason: bytes::Bytes::from_static(b"H3_GENERAL_PROTOCOL_ERROR"),
        }
    );
}

#[tokio::test]
async fn the_client_may_open_only_the_configured_number_of_streams() {
    let options = QuicOptions::default();
    assert_eq!(options.max_bidirectional_streams, 100);
    assert_eq!(options.max_unidirectional_streams, 10);
    let mut p = peer(&options);
    let (client, _server) = connect(&mut p).await;
    let mut open = Vec::new();
    for _ in 0..100 {
        open.push(
            tokio::time::timeout(WAIT, client.open_bi())
                .await
                .expect("within the limit")
                .expect("open"),
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), client.open_bi())
            .await
            .is_err(),
        "the 101st bidirectional stream must wait for the server's credit"
    );
    let mut uni = Vec::new();
    for _ in 0..10 {
        uni.push(client.open_uni().await.expect("open uni"));
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), client.open_uni())
            .await
            .is_err(),
        "the 11th unidirectional stream must wait for the server's credit"
    );
}

#[tokio::test]
async fn an_idle_connection_times_out() {
    let mut options = QuicOptions::default();
    options.idle_timeout = Duration::from_millis(300);
    let mut p = peer(&options);
    let (client, mut server) = connect(&mut p).await;
    let start = std::time::Instant::now();
    assert_eq!(
        tokio::time::timeout(WAIT, server.streams.closed())
            .await
            .expect("in time"),
        ConnectionError::TimedOut
    );
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(
        tokio::time::timeout(WAIT, client.closed())
            .await
            .expect("in time"),
        quinn::ConnectionError::TimedOut
    ));
}

#[tokio::test]
async fn the_client_certificate_chain_is_in_the_handshake_info() {
    let (server_cert, server_key) = cert();
    let (client_cert, client_key) = cert();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client_roots = rustls::RootCertStore::empty();
    client_roots.add(client_cert.clone()).expect("client root");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(client_roots),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server_cert.clone()], server_key)
        .expect("server config");
    let mut listener = QuicListener::bind(
        "127.0.0.1:0".parse().expect("addr"),
        tls,
        &QuicOptions::default(),
    )
    .expect("bind");
    let addr = listener.socket_addr().expect("ip");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_cert).expect("root");
    let mut client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![client_cert.clone()], client_key)
        .expect("client auth");
    client_tls.alpn_protocols = vec![b"h3".to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(client_tls).expect("quic client"),
    ));
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client");
    let connecting = endpoint
        .connect_with(config, addr, "localhost")
        .expect("connect");
    let (client, server) = tokio::join!(
        async { tokio::time::timeout(WAIT, connecting).await },
        async { tokio::time::timeout(WAIT, listener.accept()).await }
    );
    let _client = client.expect("in time").expect("client handshake");
    let server = server.expect("in time").expect("accepted");
    assert_eq!(
        server.handshake.peer_certificates,
        vec![bytes::Bytes::copy_from_slice(client_cert.as_ref())]
    );
}
