//! Transports of the caller's through `KestrelServer`: the in-memory
//! transport (a listener bound beforehand) and listener factories get what
//! a socket endpoint gets: connection middleware (TLS with ALPN included),
//! HTTP/1.1 and h2c, admission under `max_concurrent_connections`, timeouts
//! driven by the heartbeat, the display name in the server addresses,
//! graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use kestrel::transport::memory::{memory_listener, MemoryConnector};
use kestrel::transport::{Address, Connection, Listener, TransportKind};
use kestrel::{
    BindTarget, KestrelServer, KestrelServerOptions, RequestBody, RequestFeaturesExt,
    RunningServer, StartError,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// The app's reply future.
type Reply = std::pin::Pin<Box<dyn std::future::Future<Output = Response<Full<Bytes>>> + Send>>;

/// Say what the request looked like to the app; `/slow` first tells the
/// test it started, then waits for the test's go.
fn whoami(
    gate: Arc<(Notify, Notify)>,
) -> impl Fn(Request<RequestBody>) -> Reply + Send + Sync + Clone + 'static {
    move |req: Request<RequestBody>| -> Reply {
        let gate = gate.clone();
        Box::pin(async move {
            if req.uri().path() == "/slow" {
                gate.0.notify_one();
                gate.1.notified().await;
            }
            let info = req.features().and_then(|f| f.connection()).unwrap();
            let body = format!(
                "{:?} remote={} local={} transport={} endpoint={}",
                req.version(),
                info.remote_addr(),
                info.local_addr(),
                info.transport().as_str(),
                info.endpoint().map(|e| e.to_string()).unwrap_or_default(),
            );
            Response::new(Full::new(Bytes::from(body)))
        })
    }
}

/// Read everything until the server closes (or 5 s pass).
async fn read_to_close(io: &mut (impl AsyncRead + Unpin)) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), io.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Read until `needle` has arrived.
async fn read_until(io: &mut (impl AsyncRead + Unpin), needle: &str) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&out).contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, io.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in 5 s: {:?}", String::from_utf8_lossy(&out)))
            .unwrap();
        assert!(
            n > 0,
            "closed before {needle:?}: {:?}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A server on an in-memory listener named `name`, with connection
/// middleware that counts the connections it sees.
async fn start_memory(
    name: &str,
    configure: impl FnOnce(&mut KestrelServerOptions),
    gate: Arc<(Notify, Notify)>,
) -> (RunningServer, MemoryConnector, Arc<AtomicUsize>) {
    let (listener, connector) = memory_listener(name);
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = seen.clone();
    let mut options = KestrelServerOptions::default();
    options.listen(BindTarget::listener(listener), move |o| {
        o.use_middleware(move |conn: Connection| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move { Ok(conn) }
        });
    });
    configure(&mut options);
    let server = KestrelServer::new(options)
        .heartbeat_interval(Duration::from_millis(50))
        .start(whoami(gate))
        .await
        .expect("start");
    (server, connector, seen)
}

#[tokio::test]
async fn the_in_memory_transport_serves_http1_and_h2c_through_the_server() {
    let gate = Arc::new((Notify::new(), Notify::new()));
    let (server, connector, seen) = start_memory("app", |_| {}, gate).await;
    assert_eq!(
        server
            .addresses()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        ["http://memory:app"]
    );

    // HTTP/1.1
    let mut c = connector.connect().await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = read_to_close(&mut c).await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(
        reply.ends_with(
            "HTTP/1.1 remote=memory:app#1 local=memory:app transport=memory endpoint=http://memory:app"
        ),
        "{reply}"
    );

    // h2c (prior knowledge: the preface is sniffed as on a socket)
    let io = connector.connect().await.unwrap();
    let (h2, conn) = h2::client::handshake(io).await.expect("h2 handshake");
    let driver = tokio::spawn(conn);
    let mut h2 = h2.ready().await.unwrap();
    let req = Request::get("http://x/").body(()).unwrap();
    let (resp, _) = h2.send_request(req, true).unwrap();
    let resp = resp.await.expect("h2 response");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        "HTTP/2.0 remote=memory:app#2 local=memory:app transport=memory endpoint=http://memory:app"
    );
    drop(h2);
    driver.abort();

    assert_eq!(seen.load(Ordering::SeqCst), 2, "the middleware saw both");
    server.stop().await;
}

#[tokio::test]
async fn max_concurrent_connections_and_timeouts_apply_to_the_in_memory_transport() {
    let gate = Arc::new((Notify::new(), Notify::new()));
    let (server, connector, _) = start_memory(
        "limits",
        |o| {
            o.limits.max_concurrent_connections = Some(1);
            o.limits.request_headers_timeout = Duration::from_millis(300);
        },
        gate,
    )
    .await;
    let mut a = connector.connect().await.unwrap();
    a.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut a, "endpoint=http://memory:limits").await;

    // The second connection is over the limit: closed without a response.
    let mut b = connector.connect().await.unwrap();
    let _ = b.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(
        read_to_close(&mut b).await,
        "",
        "no response over the limit"
    );
    assert_eq!(server.rejected_connections(), 1);
    assert_eq!(server.live_connections(), 1);

    // Once the first goes, a new one is admitted; a head trickled past the
    // request-headers timeout gets 408 (the heartbeat visits it).
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = connector.connect().await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost:").await.unwrap();
    let started = Instant::now();
    let reply = read_to_close(&mut c).await;
    assert!(reply.starts_with("HTTP/1.1 408 "), "{reply}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "408 after {waited:?}"
    );
    // (Closed by the client: a graceful stop otherwise waits out the
    // linger after the 408, as it does on a socket.)
    drop(c);
    server.stop().await;
}

#[tokio::test]
async fn a_graceful_stop_finishes_the_request_in_flight_then_the_listener_is_gone() {
    let gate = Arc::new((Notify::new(), Notify::new()));
    let (server, connector, _) = start_memory("stop", |_| {}, gate.clone()).await;
    let mut a = connector.connect().await.unwrap();
    a.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    gate.0.notified().await; // the app has the request
    let stop = tokio::spawn(server.stop_with_timeout(Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !stop.is_finished(),
        "the stop waits for the request in flight"
    );
    // No new connection once the server stopped accepting.
    let refused = connector.connect().await.expect_err("stopped accepting");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    gate.1.notify_one();
    let reply = read_to_close(&mut a).await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("connection: close\r\n"),
        "the last response says the connection closes: {reply}"
    );
    tokio::time::timeout(Duration::from_secs(5), stop)
        .await
        .expect("stopped")
        .unwrap();
}

/// A listener whose local address is unknown, over in-memory connections.
struct Anonymous(kestrel::transport::memory::MemoryListener);

impl Listener for Anonymous {
    fn poll_accept(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<Connection>> {
        self.0.poll_accept(cx).map_ok(|mut c| {
            c.local_addr = Address::Unknown;
            c.kind = TransportKind::Other;
            c
        })
    }

    fn local_addr(&self) -> &Address {
        &Address::Unknown
    }
}

/// Binds an [`Anonymous`] listener; its connector lands in the slot.
struct AnonymousFactory(Arc<Mutex<Option<MemoryConnector>>>);

impl kestrel::transport::ListenerFactory for AnonymousFactory {
    fn bind(&self) -> io::Result<Box<dyn Listener>> {
        let (listener, connector) = memory_listener("anon");
        *self.0.lock().unwrap() = Some(connector);
        Ok(Box::new(Anonymous(listener)))
    }

    fn name(&self) -> String {
        "anonymous-transport".into()
    }
}

#[tokio::test]
async fn a_listener_factory_binds_at_start_and_names_the_endpoint() {
    let slot = Arc::new(Mutex::new(None));
    let mut options = KestrelServerOptions::default();
    options.listen(BindTarget::custom(AnonymousFactory(slot.clone())), |_| {});
    // Cloneable options: the clone shares the factory.
    let cloned = options.clone();
    assert_eq!(cloned.listen[0].target, options.listen[0].target);
    let gate = Arc::new((Notify::new(), Notify::new()));
    assert!(slot.lock().unwrap().is_none(), "bound only at start");
    let server = KestrelServer::new(options)
        .start(whoami(gate))
        .await
        .expect("start");
    assert_eq!(
        server
            .addresses()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        ["http://anonymous-transport"],
        "an unknown address shows the factory's name"
    );
    let connector = slot.lock().unwrap().clone().expect("bound");
    let mut c = connector.connect().await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = read_to_close(&mut c).await;
    assert!(
        reply.ends_with("transport=other endpoint=http://anonymous-transport"),
        "{reply}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_factory_that_cannot_bind_fails_the_start_with_its_name() {
    let mut options = KestrelServerOptions::default();
    options.listen(
        BindTarget::custom(|| -> io::Result<Box<dyn Listener>> {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "no vsock here",
            ))
        }),
        |_| {},
    );
    let gate = Arc::new((Notify::new(), Notify::new()));
    let err = KestrelServer::new(options)
        .start(whoami(gate))
        .await
        .expect_err("the bind fails");
    match &err {
        StartError::Bind { address, source } => {
            assert_eq!(address, "http://custom");
            assert_eq!(source.kind(), io::ErrorKind::PermissionDenied);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_listener_bound_beforehand_cannot_be_bound_twice() {
    let (listener, _connector) = memory_listener("once");
    let target = BindTarget::listener(listener);
    let BindTarget::Custom(transport) = &target else {
        panic!("a custom target");
    };
    assert_eq!(transport.name(), "memory:once");
    let first = transport.bind().expect("first bind");
    assert_eq!(first.local_addr(), &Address::Memory("once".into()));
    let again = transport.bind().err().expect("second bind");
    assert_eq!(again.kind(), io::ErrorKind::AddrInUse);
}

/// A rustls client trusting `cert_der` only, offering `alpn`.
fn tls_client(cert_der: &[u8], alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(cert_der.to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn tls_middleware_and_alpn_run_over_the_in_memory_transport() {
    use kestrel::tls::{Certificate, HttpsOptions, ListenOptionsHttpsExt};

    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["app.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let certificate = Certificate::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
        .expect("certificate");
    let (listener, connector) = memory_listener("tls");
    let mut options = KestrelServerOptions::default();
    options.listen(BindTarget::listener(listener), |o| {
        o.use_https(HttpsOptions::new().with_certificate(certificate));
    });
    let server = KestrelServer::new(options)
        .start(|req: Request<RequestBody>| async move {
            let tls = req.features().and_then(|f| f.tls()).cloned();
            let alpn = tls
                .and_then(|t| t.alpn)
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .unwrap_or_else(|| "-".into());
            Response::new(Full::new(Bytes::from(format!(
                "{:?} alpn={alpn}",
                req.version()
            ))))
        })
        .await
        .expect("start");
    assert_eq!(
        server
            .addresses()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        ["https://memory:tls"],
        "use_https makes the endpoint https"
    );
    let name = rustls::pki_types::ServerName::try_from("app.test").unwrap();

    // ALPN h2: HTTP/2 over TLS over the in-memory transport.
    let io = connector.connect().await.unwrap();
    let tls = tls_client(cert.der(), &[b"h2", b"http/1.1"])
        .connect(name.clone(), io)
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (h2, conn) = h2::client::handshake(tls).await.expect("h2 handshake");
    let driver = tokio::spawn(conn);
    let mut h2 = h2.ready().await.unwrap();
    let (resp, _) = h2
        .send_request(Request::get("https://app.test/").body(()).unwrap(), true)
        .unwrap();
    let mut body = resp.await.expect("response").into_body();
    let mut got = Vec::new();
    while let Some(chunk) = body.data().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(String::from_utf8_lossy(&got), "HTTP/2.0 alpn=h2");
    drop(h2);
    driver.abort();

    // ALPN http/1.1
    let io = connector.connect().await.unwrap();
    let mut tls = tls_client(cert.der(), &[b"http/1.1"])
        .connect(name, io)
        .await
        .expect("TLS handshake");
    tls.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = read_to_close(&mut tls).await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.ends_with("HTTP/1.1 alpn=http/1.1"), "{reply}");

    // Cleartext on the HTTPS endpoint: the TLS middleware refuses it.
    let mut plain = connector.connect().await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    let reply = read_to_close(&mut plain).await;
    assert!(!reply.contains("200 OK"), "{reply}");
    server.stop().await;
}
