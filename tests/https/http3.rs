//! HTTP/3 from `KestrelServer` (feature `http3`): an `Http1AndHttp2AndHttp3`
//! HTTPS endpoint on port 0 binds UDP on the port TCP got, and serves GET and
//! a POST echo to the Rust h3 client (h3 + h3-quinn on quinn) and HTTP/1.1
//! on the same port; an HTTP/3 endpoint without TLS fails start-up naming
//! the endpoint; HTTP/3 connections are admitted by the connection runtime
//! (`max_concurrent_connections`) and end with a graceful stop.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support::tls as tls_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use kestrel::tls::HttpsOptions;
use kestrel::{HttpProtocols, KestrelServer, KestrelServerOptions, RequestBody, StartError};
use tls_support::{client_config, https_get, TestCa};

const WAIT: Duration = Duration::from_secs(10);

/// The query strings of the `/slow` requests that reached the app (a test
/// tags its own, to know when it is in the app).
static ARRIVED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Wait until the `/slow?<tag>` request is in the app.
async fn arrived(tag: &str) {
    tokio::time::timeout(WAIT, async {
        while !ARRIVED.lock().unwrap().iter().any(|t| t == tag) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the request reached the app in time")
}

/// GET answers with the protocol version; `/echo` sends the body back.
async fn app(req: Request<RequestBody>) -> Response<Full<Bytes>> {
    let version = format!("{:?}", req.version());
    if req.uri().path() == "/echo" {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        return Response::builder()
            .header("x-version", version)
            .body(Full::new(body))
            .unwrap();
    }
    if req.uri().path() == "/slow" {
        if let Some(tag) = req.uri().query() {
            ARRIVED.lock().unwrap().push(tag.to_string());
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        return Response::new(Full::new(Bytes::from_static(b"finished")));
    }
    if req.uri().path() == "/own-alt-svc" {
        return Response::builder()
            .header("alt-svc", "h2=\"alt.example:443\"")
            .body(Full::new(Bytes::from_static(b"own")))
            .unwrap();
    }
    Response::builder()
        .header("x-version", version.clone())
        .body(Full::new(Bytes::from(format!("hello over {version}"))))
        .unwrap()
}

async fn start(
    ca: &TestCa,
    limits: impl FnOnce(&mut KestrelServerOptions),
) -> kestrel::RunningServer {
    start_with(ca, HttpProtocols::HTTP1_AND_HTTP2_AND_HTTP3, false, limits).await
}

async fn start_with(
    ca: &TestCa,
    protocols: HttpProtocols,
    disable_alt_svc_header: bool,
    limits: impl FnOnce(&mut KestrelServerOptions),
) -> kestrel::RunningServer {
    use kestrel::tls::ListenOptionsHttpsExt;
    let mut options = KestrelServerOptions::default();
    limits(&mut options);
    options.listen((std::net::Ipv4Addr::LOCALHOST, 0), |l| {
        l.protocols = protocols;
        l.disable_alt_svc_header = disable_alt_svc_header;
        l.use_https(HttpsOptions::new().with_certificate(ca.server_cert(&["localhost"])));
    });
    KestrelServer::new(options)
        .heartbeat_interval(Duration::from_millis(50))
        .start(app)
        .await
        .expect("server starts")
}

type Sender = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

struct Client {
    send: Sender,
    conn: quinn::Connection,
    _driver: tokio::task::JoinHandle<()>,
    _endpoint: quinn::Endpoint,
}

fn quic_client_config(ca: &TestCa) -> quinn::ClientConfig {
    let mut tls = Arc::unwrap_or_clone(client_config(&ca.pem, &["h3"], None));
    tls.alpn_protocols = vec![b"h3".to_vec()];
    quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic client"),
    ))
}

async fn try_client(ca: &TestCa, addr: SocketAddr) -> Result<Client, String> {
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = tokio::time::timeout(
        WAIT,
        endpoint
            .connect_with(quic_client_config(ca), addr, "localhost")
            .unwrap(),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|e| e.to_string())?;
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    Ok(Client {
        send,
        conn,
        _driver: driver,
        _endpoint: endpoint,
    })
}

async fn request(c: &mut Client, req: Request<()>, body: &[u8]) -> (Response<()>, Bytes) {
    tokio::time::timeout(WAIT, async {
        let mut stream = c.send.send_request(req).await.expect("request sent");
        for chunk in body.chunks(16 * 1024) {
            stream
                .send_data(Bytes::copy_from_slice(chunk))
                .await
                .expect("body sent");
        }
        stream.finish().await.expect("finished");
        let head = stream.recv_response().await.expect("response");
        let mut out = BytesMut::new();
        while let Some(mut chunk) = stream.recv_data().await.expect("data") {
            out.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
        (head, out.freeze())
    })
    .await
    .expect("answered in time")
}

fn uri(addr: SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", addr.port())
}

#[tokio::test]
async fn http3_and_http1_are_served_on_one_port() {
    let ca = TestCa::new();
    let server = start(&ca, |_| {}).await;
    let tcp = tls_support::addr(&server);
    assert_ne!(tcp.port(), 0);
    // Port 0 resolved once: UDP is bound on the port TCP got, and reported.
    assert_eq!(server.http3_addresses(), vec![tcp]);

    let mut c = try_client(&ca, tcp).await.expect("h3 client connects");
    let (head, body) = request(&mut c, Request::get(uri(tcp, "/")).body(()).unwrap(), b"").await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.version(), Version::HTTP_3);
    assert_eq!(head.headers()["x-version"], "HTTP/3.0");
    assert_eq!(head.headers()["server"], "Kestrel");
    assert_eq!(&body[..], b"hello over HTTP/3.0");

    // A 300 KB POST echoed, on the same connection.
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (head, body) = request(
        &mut c,
        Request::post(uri(tcp, "/echo")).body(()).unwrap(),
        &payload,
    )
    .await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["x-version"], "HTTP/3.0");
    assert_eq!(body.len(), payload.len());
    assert_eq!(&body[..], &payload[..]);

    // HTTP/1.1 over TLS on the same port.
    let h1 = https_get(
        tcp,
        "localhost",
        client_config(&ca.pem, &["http/1.1"], None),
    )
    .await
    .expect("HTTP/1.1 over TLS");
    assert!(h1.starts_with("HTTP/1.1 200"), "{h1}");
    assert!(h1.ends_with("hello over HTTP/1.1"), "{h1}");

    // The HTTP/3 connection counts among the live connections.
    assert_eq!(server.live_connections(), 1);
    c.conn.close(quinn::VarInt::from_u32(0x100), b"done");
    tokio::time::timeout(WAIT, async {
        while server.live_connections() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the closed HTTP/3 connection leaves the runtime");
    tokio::time::timeout(WAIT, server.stop())
        .await
        .expect("the server stops");
}

#[tokio::test]
async fn http3_connections_count_toward_max_concurrent_connections() {
    let ca = TestCa::new();
    let server = start(&ca, |o| o.limits.max_concurrent_connections = Some(1)).await;
    let addr = tls_support::addr(&server);
    let mut first = try_client(&ca, addr).await.expect("first connects");
    let (head, _) = request(
        &mut first,
        Request::get(uri(addr, "/")).body(()).unwrap(),
        b"",
    )
    .await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(server.live_connections(), 1);

    // The second QUIC connection is refused by the runtime (closed at once),
    // so no request gets through on it.
    let refused = async {
        let mut second = try_client(&ca, addr).await?;
        let mut stream = second
            .send
            .send_request(Request::get(uri(addr, "/")).body(()).unwrap())
            .await
            .map_err(|e| e.to_string())?;
        stream.finish().await.map_err(|e| e.to_string())?;
        stream.recv_response().await.map_err(|e| e.to_string())
    };
    let outcome = tokio::time::timeout(WAIT, refused)
        .await
        .expect("the refusal is seen in time");
    assert!(
        outcome.is_err(),
        "a second connection was served: {outcome:?}"
    );
    assert_eq!(server.rejected_connections(), 1);

    // The first one is still served.
    let (head, _) = request(
        &mut first,
        Request::get(uri(addr, "/")).body(()).unwrap(),
        b"",
    )
    .await;
    assert_eq!(head.status(), StatusCode::OK);
    tokio::time::timeout(WAIT, server.stop())
        .await
        .expect("a graceful stop ends the open HTTP/3 connection in time");
}

#[tokio::test]
async fn an_http3_endpoint_without_tls_fails_start_up_naming_the_endpoint() {
    let mut options = KestrelServerOptions::default();
    options.listen((std::net::Ipv4Addr::LOCALHOST, 0), |l| {
        l.protocols = HttpProtocols::HTTP1_AND_HTTP2_AND_HTTP3;
    });
    let err = KestrelServer::new(options)
        .start(app)
        .await
        .expect_err("HTTP/3 without HTTPS must not start");
    assert!(matches!(err, StartError::Http3NeedsTls(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("http://127.0.0.1:0"), "{message}");
    assert!(message.contains("HTTP/3"), "{message}");

    // From a URL too.
    let mut options = KestrelServerOptions::default();
    options.configure_endpoint_defaults(|l| l.protocols = HttpProtocols::HTTP3);
    let err = KestrelServer::new(options)
        .urls(["http://127.0.0.1:0"])
        .start(app)
        .await
        .expect_err("HTTP/3 without HTTPS must not start");
    assert!(err.to_string().contains("http://127.0.0.1:0"), "{err}");
}

/// The `Alt-Svc` values of `GET path` over HTTP/1.1 (TLS, ALPN http/1.1).
async fn h1_alt_svc(ca: &TestCa, addr: SocketAddr, path: &str) -> Vec<String> {
    let tls = tls_support::connect(
        addr,
        "localhost",
        client_config(&ca.pem, &["http/1.1"], None),
    )
    .await
    .expect("TLS");
    let mut tls = tls;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut out))
        .await
        .expect("in time");
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let head = text.split("\r\n\r\n").next().unwrap();
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("alt-svc"))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// The `Alt-Svc` values of `GET path` over HTTP/2 (TLS, ALPN h2).
async fn h2_alt_svc(ca: &TestCa, addr: SocketAddr, path: &str) -> Vec<String> {
    let tls = tls_support::connect(addr, "localhost", client_config(&ca.pem, &["h2"], None))
        .await
        .expect("TLS");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = h2::client::handshake(tls).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::get(format!("https://localhost:{}{path}", addr.port()))
        .body(())
        .unwrap();
    let (resp, _) = send.send_request(req, true).expect("sent");
    let resp = tokio::time::timeout(WAIT, resp)
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2);
    resp.headers()
        .get_all("alt-svc")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn http1_and_http2_responses_advertise_http3_with_alt_svc() {
    let ca = TestCa::new();
    let server = start(&ca, |_| {}).await;
    let addr = tls_support::addr(&server);
    let expected = vec![format!("h3=\":{}\"; ma=86400", addr.port())];
    assert_eq!(h1_alt_svc(&ca, addr, "/").await, expected);
    assert_eq!(h2_alt_svc(&ca, addr, "/").await, expected);
    // The app's own Alt-Svc is kept, and not doubled.
    let own = vec!["h2=\"alt.example:443\"".to_string()];
    assert_eq!(h1_alt_svc(&ca, addr, "/own-alt-svc").await, own);
    assert_eq!(h2_alt_svc(&ca, addr, "/own-alt-svc").await, own);
    // HTTP/3 responses do not carry it.
    let mut c = try_client(&ca, addr).await.expect("h3 client connects");
    let (head, _) = request(&mut c, Request::get(uri(addr, "/")).body(()).unwrap(), b"").await;
    assert!(head.headers().get("alt-svc").is_none(), "{head:?}");
    server.stop().await;
}

#[tokio::test]
async fn disable_alt_svc_header_and_endpoints_without_http3_send_none() {
    let ca = TestCa::new();
    let server = start_with(&ca, HttpProtocols::HTTP1_AND_HTTP2_AND_HTTP3, true, |_| {}).await;
    let addr = tls_support::addr(&server);
    // HTTP/3 is still served; it is only not advertised.
    assert_eq!(server.http3_addresses(), vec![addr]);
    assert!(h1_alt_svc(&ca, addr, "/").await.is_empty());
    assert!(h2_alt_svc(&ca, addr, "/").await.is_empty());
    // The app's own value still goes out.
    assert_eq!(h1_alt_svc(&ca, addr, "/own-alt-svc").await.len(), 1);
    server.stop().await;

    let server = start_with(&ca, HttpProtocols::HTTP1_AND_HTTP2, false, |_| {}).await;
    let addr = tls_support::addr(&server);
    assert!(server.http3_addresses().is_empty());
    assert!(h1_alt_svc(&ca, addr, "/").await.is_empty());
    assert!(h2_alt_svc(&ca, addr, "/").await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_graceful_stop_lets_an_in_flight_http3_request_finish() {
    let ca = TestCa::new();
    let server = start(&ca, |_| {}).await;
    let addr = tls_support::addr(&server);
    let mut c = try_client(&ca, addr).await.expect("h3 client connects");
    let mut stream = c
        .send
        .send_request(
            Request::get(uri(addr, "/slow?in-flight-test"))
                .body(())
                .unwrap(),
        )
        .await
        .expect("request sent");
    stream.finish().await.expect("finished");
    // The request is in the app when the stop begins.
    arrived("in-flight-test").await;
    let started = std::time::Instant::now();
    let stop = tokio::spawn(server.stop());
    let head = tokio::time::timeout(WAIT, stream.recv_response())
        .await
        .expect("answered in time")
        .expect("the in-flight request is answered");
    assert_eq!(head.status(), StatusCode::OK);
    let mut body = BytesMut::new();
    while let Some(mut chunk) = stream.recv_data().await.expect("data") {
        body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    assert_eq!(&body[..], b"finished");
    tokio::time::timeout(WAIT, stop)
        .await
        .expect("the stop ends once the request is done")
        .unwrap();
    // Graceful: well within the 30 s shutdown timeout, not after it.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The server closed the connection afterwards.
    let closed = tokio::time::timeout(WAIT, c.conn.closed())
        .await
        .expect("closed in time");
    assert!(
        matches!(closed, quinn::ConnectionError::ApplicationClosed(_)),
        "{closed:?}"
    );
}

#[tokio::test]
async fn an_idle_http3_connection_ends_after_the_keep_alive_timeout() {
    let ca = TestCa::new();
    let server = start(&ca, |o| {
        o.limits.keep_alive_timeout = Duration::from_secs(1)
    })
    .await;
    let addr = tls_support::addr(&server);
    let mut c = try_client(&ca, addr).await.expect("h3 client connects");
    let (head, _) = request(&mut c, Request::get(uri(addr, "/")).body(()).unwrap(), b"").await;
    assert_eq!(head.status(), StatusCode::OK);
    let idle = std::time::Instant::now();
    // The QUIC idle timeout is the server's keep-alive timeout (1 s), not
    // Kestrel's default 130 s nor the client's 30 s.
    let closed = tokio::time::timeout(WAIT, c.conn.closed())
        .await
        .expect("the idle connection ends in time");
    assert!(
        matches!(closed, quinn::ConnectionError::TimedOut),
        "{closed:?}"
    );
    let after = idle.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(5),
        "{after:?}"
    );
    tokio::time::timeout(WAIT, async {
        while server.live_connections() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the server's side ends too");
    server.stop().await;
}

/// A raw HTTP/3 client on a quinn connection: it writes frames by hand and
/// reads the frames of the server's control stream, to check what h3's
/// client does not show (the GOAWAY id, refused streams' codes).
struct RawH3 {
    conn: quinn::Connection,
    /// The client's control stream (kept open: closing it is an error).
    control: quinn::SendStream,
    /// Frames off the server's control stream: (type, payload).
    server_control: tokio::sync::mpsc::UnboundedReceiver<(u64, Vec<u8>)>,
    _endpoint: quinn::Endpoint,
}

fn put_varint(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=0x3f => out.push(v as u8),
        0x40..=0x3fff => out.extend_from_slice(&(0x4000 | v as u16).to_be_bytes()),
        0x4000..=0x3fff_ffff => out.extend_from_slice(&(0x8000_0000 | v as u32).to_be_bytes()),
        _ => out.extend_from_slice(&(0xc000_0000_0000_0000 | v).to_be_bytes()),
    }
}

fn frame(ty: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, ty);
    put_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

fn get_varint(buf: &mut &[u8]) -> Option<u64> {
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    let bytes = buf.get(..len)?;
    let v = bytes[1..]
        .iter()
        .fold(u64::from(first & 0x3f), |v, b| (v << 8) | u64::from(*b));
    *buf = &buf[len..];
    Some(v)
}

async fn read_varint(recv: &mut quinn::RecvStream) -> Option<u64> {
    let mut first = [0u8; 1];
    recv.read_exact(&mut first).await.ok()?;
    let len = 1usize << (first[0] >> 6);
    let mut rest = [0u8; 7];
    recv.read_exact(&mut rest[..len - 1]).await.ok()?;
    Some(
        rest[..len - 1]
            .iter()
            .fold(u64::from(first[0] & 0x3f), |v, b| (v << 8) | u64::from(*b)),
    )
}

/// A GET's HEADERS frame, QPACK-encoded with static-table references and
/// literals only (no dynamic table).
fn get_headers(path: &str) -> Vec<u8> {
    let mut block = vec![0x00, 0x00]; // Required Insert Count 0, Base 0
    block.push(0xc0 | 17); // :method GET
    block.push(0xc0 | 23); // :scheme https
    for (index, value) in [(1u8, path), (0, "localhost")] {
        // :path / :authority: a literal with a static name reference.
        block.push(0x50 | index);
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    frame(0x01, &block)
}

impl RawH3 {
    async fn connect(ca: &TestCa, addr: SocketAddr) -> RawH3 {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let conn = tokio::time::timeout(
            WAIT,
            endpoint
                .connect_with(quic_client_config(ca), addr, "localhost")
                .unwrap(),
        )
        .await
        .expect("handshake in time")
        .expect("handshake");
        let mut control = conn.open_uni().await.unwrap();
        control.write_all(&[0x00]).await.unwrap();
        control.write_all(&frame(0x04, &[])).await.unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let accepting = conn.clone();
        tokio::spawn(async move {
            while let Ok(mut recv) = accepting.accept_uni().await {
                // The control stream (type 0); the QPACK streams stay silent.
                if read_varint(&mut recv).await != Some(0x00) {
                    continue;
                }
                let tx = tx.clone();
                tokio::spawn(async move {
                    while let Some(ty) = read_varint(&mut recv).await {
                        let Some(len) = read_varint(&mut recv).await else {
                            return;
                        };
                        let mut payload = vec![0; len as usize];
                        if recv.read_exact(&mut payload).await.is_err() {
                            return;
                        }
                        let _ = tx.send((ty, payload));
                    }
                });
            }
        });
        RawH3 {
            conn,
            control,
            server_control: rx,
            _endpoint: endpoint,
        }
    }

    /// Send a GET on a new request stream.
    async fn get(&self, path: &str) -> (quinn::SendStream, quinn::RecvStream) {
        let (mut send, recv) = self.conn.open_bi().await.unwrap();
        send.write_all(&get_headers(path)).await.unwrap();
        send.finish().unwrap();
        (send, recv)
    }

    /// The next GOAWAY id off the server's control stream.
    async fn goaway(&mut self) -> u64 {
        tokio::time::timeout(WAIT, async {
            loop {
                let (ty, payload) = self
                    .server_control
                    .recv()
                    .await
                    .expect("the control stream stays open");
                if ty == 0x07 {
                    let mut rest = &payload[..];
                    let id = get_varint(&mut rest).expect("a GOAWAY id");
                    assert!(rest.is_empty(), "GOAWAY payload {payload:?}");
                    return id;
                }
            }
        })
        .await
        .expect("a GOAWAY in time")
    }
}

/// The server closes `conn` with H3_NO_ERROR (in time).
async fn assert_closed_with_h3_no_error(conn: &quinn::Connection) {
    match tokio::time::timeout(WAIT, conn.closed())
        .await
        .expect("the server closes the connection in time")
    {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code.into_inner(), 0x100, "H3_NO_ERROR")
        }
        other => panic!("expected the server's application close, got {other:?}"),
    }
}

/// The whole response stream's bytes (frames undecoded).
async fn read_all(recv: &mut quinn::RecvStream) -> Result<Vec<u8>, quinn::ReadToEndError> {
    tokio::time::timeout(WAIT, recv.read_to_end(1 << 20))
        .await
        .expect("the response ends in time")
}

fn reset_code(e: quinn::ReadToEndError) -> u64 {
    match e {
        quinn::ReadToEndError::Read(quinn::ReadError::Reset(code)) => code.into_inner(),
        other => panic!("expected a stream reset, got {other:?}"),
    }
}

#[tokio::test]
async fn a_graceful_stop_announces_the_first_unprocessed_stream_and_rejects_the_rest() {
    let ca = TestCa::new();
    let server = start(&ca, |_| {}).await;
    let addr = tls_support::addr(&server);
    let mut raw = RawH3::connect(&ca, addr).await;
    // Stream 0 is served at once; stream 4 is in the app when the stop begins.
    let (_s0, mut r0) = raw.get("/").await;
    let first = read_all(&mut r0).await.expect("stream 0 answered");
    assert!(first.windows(11).any(|w| w == b"hello over "), "{first:?}");
    let (_s4, mut r4) = raw.get("/slow?goaway-test").await;
    arrived("goaway-test").await;
    let stop = tokio::spawn(server.stop());
    // RFC 9114 §5.2: the id of the first request stream NOT processed:
    // 0 and 4 were, so 8 (h3 0.0.8 alone would serve 8 too).
    assert_eq!(raw.goaway().await, 8);
    // Streams at or past it are refused with H3_REQUEST_REJECTED...
    let (_s8, mut r8) = raw.get("/").await;
    let (_s12, mut r12) = raw.get("/").await;
    assert_eq!(reset_code(read_all(&mut r8).await.unwrap_err()), 0x10b);
    assert_eq!(reset_code(read_all(&mut r12).await.unwrap_err()), 0x10b);
    // ...while the one in flight finishes.
    let slow = read_all(&mut r4).await.expect("stream 4 answered");
    assert!(slow.windows(8).any(|w| w == b"finished"), "{slow:?}");
    // Then the connection closes with H3_NO_ERROR, and no later GOAWAY
    // names a higher id.
    assert_closed_with_h3_no_error(&raw.conn).await;
    while let Ok((ty, payload)) = raw.server_control.try_recv() {
        if ty == 0x07 {
            let mut rest = &payload[..];
            assert!(get_varint(&mut rest).unwrap() <= 8, "{payload:?}");
        }
    }
    tokio::time::timeout(WAIT, stop).await.unwrap().unwrap();
}

#[tokio::test]
async fn after_the_clients_goaway_the_servers_goaway_names_the_next_stream_id() {
    let ca = TestCa::new();
    let server = start(&ca, |_| {}).await;
    let addr = tls_support::addr(&server);
    let mut raw = RawH3::connect(&ca, addr).await;
    let (_s0, mut r0) = raw.get("/").await;
    read_all(&mut r0).await.expect("stream 0 answered");
    // The client goes away (it accepts no pushes: id 0).
    raw.control.write_all(&frame(0x07, &[0x00])).await.unwrap();
    // Stream 0 was processed: the server's last GOAWAY says 4, not 0
    // (h3 0.0.8 alone names the last stream it served).
    assert_eq!(raw.goaway().await, 4);
    assert_closed_with_h3_no_error(&raw.conn).await;
    server.stop().await;
}

/// A QPACK prefixed integer (RFC 7541 §5.1) after `flags` in the first byte.
fn qpack_int(out: &mut Vec<u8>, flags: u8, prefix_bits: u32, mut v: usize) {
    let max = (1usize << prefix_bits) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    v -= max;
    while v >= 128 {
        out.push(0x80 | (v % 128) as u8);
        v /= 128;
    }
    out.push(v as u8);
}

/// A request's HEADERS frame: `:method` by its static index (17 GET, 20
/// POST), `:scheme https`, `:path`, `:authority localhost`, then `extra`
/// fields as literals with literal names.
fn request_headers(method_index: u8, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut block = vec![0x00, 0x00];
    block.push(0xc0 | method_index);
    block.push(0xc0 | 23);
    for (index, value) in [(1usize, path), (0, "localhost")] {
        qpack_int(&mut block, 0x50, 4, index);
        qpack_int(&mut block, 0x00, 7, value.len());
        block.extend_from_slice(value.as_bytes());
    }
    for (name, value) in extra {
        qpack_int(&mut block, 0x20, 3, name.len());
        block.extend_from_slice(name.as_bytes());
        qpack_int(&mut block, 0x00, 7, value.len());
        block.extend_from_slice(value.as_bytes());
    }
    frame(0x01, &block)
}

/// The next frame on a request stream: (type, payload).
async fn next_frame(recv: &mut quinn::RecvStream) -> Option<(u64, Vec<u8>)> {
    tokio::time::timeout(WAIT, async {
        let ty = read_varint(recv).await?;
        let len = read_varint(recv).await?;
        let mut payload = vec![0; len as usize];
        recv.read_exact(&mut payload).await.ok()?;
        Some((ty, payload))
    })
    .await
    .expect("a frame in time")
}

/// The `:status` of a response HEADERS block, when the server's stateless
/// QPACK encoder put it first as a static-table line (indexed, or a literal
/// value with the `:status` name).
fn status_of(block: &[u8]) -> u16 {
    assert_eq!(&block[..2], &[0x00, 0x00], "no dynamic table: {block:?}");
    let line = &block[2..];
    match line[0] {
        // Indexed static field line: 6-bit prefix (63 continues).
        b if b & 0xc0 == 0xc0 => {
            let index = if b & 0x3f == 0x3f {
                63 + line[1] as usize
            } else {
                (b & 0x3f) as usize
            };
            match index {
                24 => 103,
                25 => 200,
                26 => 304,
                27 => 404,
                28 => 503,
                63 => 100,
                64 => 204,
                other => panic!("unexpected static index {other}"),
            }
        }
        // Literal with a static name reference (`:status`), 4-bit prefix.
        b if b & 0xf0 == 0x50 => {
            let skip = if b & 0x0f == 0x0f { 2 } else { 1 };
            let len = (line[skip] & 0x7f) as usize;
            std::str::from_utf8(&line[skip + 1..skip + 1 + len])
                .unwrap()
                .parse()
                .unwrap()
        }
        other => panic!("unexpected field line {other:#x} in {block:?}"),
    }
}

#[tokio::test]
async fn expect_100_continue_gets_an_interim_response_before_the_body() {
    let ca = TestCa::new();
    let server = start(&ca, |_| {}).await;
    let addr = tls_support::addr(&server);
    let raw = RawH3::connect(&ca, addr).await;
    let (mut send, mut recv) = raw.conn.open_bi().await.unwrap();
    send.write_all(&request_headers(
        20,
        "/echo",
        &[("expect", "100-continue"), ("content-length", "5")],
    ))
    .await
    .unwrap();
    // The client holds the body back: the app reads it, so 100 comes first.
    let (ty, block) = next_frame(&mut recv).await.expect("an interim response");
    assert_eq!(ty, 0x01, "HEADERS");
    assert_eq!(status_of(&block), 100);
    send.write_all(&frame(0x00, b"hello")).await.unwrap();
    send.finish().unwrap();
    let (ty, block) = next_frame(&mut recv).await.expect("the final response");
    assert_eq!(ty, 0x01);
    assert_eq!(status_of(&block), 200);
    let (ty, data) = next_frame(&mut recv).await.expect("the body");
    assert_eq!((ty, &data[..]), (0x00, &b"hello"[..]));
    // Without Expect, no interim response.
    let (mut send, mut recv) = raw.conn.open_bi().await.unwrap();
    send.write_all(&request_headers(20, "/echo", &[("content-length", "2")]))
        .await
        .unwrap();
    send.write_all(&frame(0x00, b"hi")).await.unwrap();
    send.finish().unwrap();
    let (_, block) = next_frame(&mut recv).await.expect("the response");
    assert_eq!(status_of(&block), 200);
    server.stop().await;
}

/// `/big`: 8 MiB in 16 KiB chunks; `/echo`: the request body back.
async fn rated_app(
    req: Request<RequestBody>,
) -> Response<http_body_util::combinators::BoxBody<Bytes, kestrel::BoxError>> {
    if req.uri().path() == "/big" {
        let chunks = (0..512).map(|_| {
            Ok::<_, kestrel::BoxError>(http_body::Frame::data(Bytes::from(vec![b'x'; 16 * 1024])))
        });
        return Response::new(
            http_body_util::StreamBody::new(futures_util::stream::iter(chunks)).boxed(),
        );
    }
    match req.into_body().collect().await {
        Ok(body) => Response::new(Full::new(body.to_bytes()).map_err(|e| match e {}).boxed()),
        Err(e) => Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(
                Full::new(Bytes::from(e.to_string()))
                    .map_err(|e| match e {})
                    .boxed(),
            )
            .unwrap(),
    }
}

async fn start_rated(
    ca: &TestCa,
    limits: impl FnOnce(&mut KestrelServerOptions),
) -> kestrel::RunningServer {
    use kestrel::tls::ListenOptionsHttpsExt;
    let mut options = KestrelServerOptions::default();
    limits(&mut options);
    options.listen((std::net::Ipv4Addr::LOCALHOST, 0), |l| {
        l.protocols = HttpProtocols::HTTP1_AND_HTTP2_AND_HTTP3;
        l.use_https(HttpsOptions::new().with_certificate(ca.server_cert(&["localhost"])));
    });
    KestrelServer::new(options)
        .heartbeat_interval(Duration::from_millis(100))
        .start(rated_app)
        .await
        .expect("server starts")
}

fn read_error_code(e: quinn::ReadExactError) -> u64 {
    match e {
        quinn::ReadExactError::ReadError(quinn::ReadError::Reset(code)) => code.into_inner(),
        other => panic!("expected a stream reset, got {other:?}"),
    }
}

#[tokio::test]
async fn a_request_body_below_the_minimum_rate_resets_that_stream_only() {
    let ca = TestCa::new();
    let server = start_rated(&ca, |o| {
        o.limits.min_request_body_data_rate =
            Some(kestrel::MinDataRate::new(1000.0, Duration::from_millis(1500)).unwrap())
    })
    .await;
    let addr = tls_support::addr(&server);
    let raw = RawH3::connect(&ca, addr).await;
    let (mut send, mut recv) = raw.conn.open_bi().await.unwrap();
    send.write_all(&request_headers(
        20,
        "/echo",
        &[("content-length", "100000")],
    ))
    .await
    .unwrap();
    send.write_all(&frame(0x00, b"ten bytes!")).await.unwrap();
    // ...and nothing more: 10 bytes in 1.5 s is far below 1000 B/s.
    let started = std::time::Instant::now();
    let mut byte = [0u8; 1];
    let code = read_error_code(
        tokio::time::timeout(WAIT, recv.read_exact(&mut byte))
            .await
            .expect("reset in time")
            .unwrap_err(),
    );
    assert_eq!(code, 0x10c, "H3_REQUEST_CANCELLED");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(1400),
        "not before the grace period: {after:?}"
    );
    // The connection serves on.
    let (mut send, mut recv) = raw.conn.open_bi().await.unwrap();
    send.write_all(&request_headers(20, "/echo", &[("content-length", "2")]))
        .await
        .unwrap();
    send.write_all(&frame(0x00, b"ok")).await.unwrap();
    send.finish().unwrap();
    let (_, block) = next_frame(&mut recv).await.expect("the response");
    assert_eq!(status_of(&block), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_response_read_below_the_minimum_rate_resets_that_stream_only() {
    let ca = TestCa::new();
    let server = start_rated(&ca, |o| {
        o.limits.min_response_data_rate =
            Some(kestrel::MinDataRate::new(10_000.0, Duration::from_millis(1500)).unwrap())
    })
    .await;
    let addr = tls_support::addr(&server);
    let raw = RawH3::connect(&ca, addr).await;
    // The client does not read: quinn's stream window (1.25 MB) fills and
    // the server's writes wait past their deadline.
    let (_send, mut recv) = raw.get("/big").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut total = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let code = loop {
        match tokio::time::timeout(WAIT, recv.read(&mut buf))
            .await
            .expect("data or a reset in time")
        {
            Ok(Some(n)) => total += n,
            Ok(None) => panic!("the whole 8 MiB arrived ({total} bytes): no reset"),
            Err(quinn::ReadError::Reset(code)) => break code.into_inner(),
            Err(other) => panic!("{other:?}"),
        }
    };
    assert_eq!(code, 0x10c, "H3_REQUEST_CANCELLED");
    assert!(total < 8 * 1024 * 1024, "{total}");
    // The connection serves on.
    let (mut send, mut recv) = raw.conn.open_bi().await.unwrap();
    send.write_all(&request_headers(20, "/echo", &[("content-length", "2")]))
        .await
        .unwrap();
    send.write_all(&frame(0x00, b"ok")).await.unwrap();
    send.finish().unwrap();
    let (_, block) = next_frame(&mut recv).await.expect("the response");
    assert_eq!(status_of(&block), 200);
    server.stop().await;
}

#[tokio::test]
async fn http3_connections_and_requests_are_recorded_with_version_3_over_udp() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    // Snapshots report changes since the previous one: keep them all.
    type Entries = Vec<(String, Vec<(String, String)>, DebugValue)>;
    let mut all: Entries = Vec::new();
    let snapshot = |all: &mut Entries| {
        for (ck, _, _, v) in snapshotter.snapshot().into_vec() {
            let (_, key) = ck.into_parts();
            let labels = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            all.push((key.name().to_string(), labels, v));
        }
    };
    let gauge = |all: &Entries, name: &str| -> f64 {
        all.iter()
            .filter(|(n, l, _)| {
                n == name
                    && l.iter()
                        .any(|(k, v)| k == "network.protocol.version" && v == "3")
            })
            .map(|(_, _, v)| match v {
                DebugValue::Gauge(g) => g.into_inner(),
                _ => 0.0,
            })
            .sum()
    };
    let ca = TestCa::new();
    let server = start(&ca, |_| {}).await;
    let addr = tls_support::addr(&server);
    // A request whose head has not arrived is queued.
    let raw = RawH3::connect(&ca, addr).await;
    let (mut send, mut recv) = raw.conn.open_bi().await.unwrap();
    let headers = get_headers("/");
    send.write_all(&headers[..3]).await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        snapshot(&mut all);
        if gauge(&all, "kestrel.queued_requests") == 1.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never queued");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send.write_all(&headers[3..]).await.unwrap();
    send.finish().unwrap();
    read_all(&mut recv).await.expect("answered");
    snapshot(&mut all);
    assert_eq!(gauge(&all, "kestrel.queued_requests"), 0.0);
    raw.conn.close(0x100u32.into(), b"");
    let mut c = try_client(&ca, addr).await.expect("h3 client connects");
    for _ in 0..3 {
        let (head, _) = request(&mut c, Request::get(uri(addr, "/")).body(()).unwrap(), b"").await;
        assert_eq!(head.status(), StatusCode::OK);
    }
    drop(c);
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    snapshot(&mut all);
    let count = |name: &str, label: (&str, &str)| -> usize {
        all.iter()
            .filter(|(n, l, _)| n == name && l.iter().any(|(k, v)| k == label.0 && v == label.1))
            .map(|(_, _, v)| match v {
                DebugValue::Histogram(h) => h.len(),
                _ => 0,
            })
            .sum()
    };
    assert_eq!(
        count(
            "http.server.request.duration",
            ("network.protocol.version", "3")
        ),
        4
    );
    assert_eq!(
        count(
            "kestrel.connection.duration",
            ("network.protocol.version", "3")
        ),
        2
    );
    // QUIC runs over UDP: Kestrel tags it `udp`, not `tcp`.
    assert_eq!(
        count("kestrel.connection.duration", ("network.transport", "udp")),
        2
    );
    assert_eq!(
        count("kestrel.connection.duration", ("network.transport", "tcp")),
        0
    );
}

/// Verifies the server's certificate as usual, after sleeping `delay` on
/// the client's thread: a client whose handshake stalls.
#[derive(Debug)]
struct SlowVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    delay: Duration,
}

impl rustls::client::danger::ServerCertVerifier for SlowVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        std::thread::sleep(self.delay);
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Connect from another thread (the client blocks its own runtime while
/// it "verifies"): whether the QUIC handshake completed.
fn slow_handshake(ca_pem: &str, addr: SocketAddr, delay: Duration) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SlowVerifier { inner, delay }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
    ));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
            let conn = tokio::time::timeout(
                WAIT,
                endpoint.connect_with(config, addr, "localhost").unwrap(),
            )
            .await
            .map_err(|_| "handshake timed out on the client".to_string())?
            .map_err(|e| e.to_string())?;
            // The server's side may have given up after the client's
            // handshake completed: a request tells.
            let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
            });
            let mut stream = send
                .send_request(
                    Request::get(format!("https://localhost:{}/", addr.port()))
                        .body(())
                        .unwrap(),
                )
                .await
                .map_err(|e| e.to_string())?;
            stream.finish().await.map_err(|e| e.to_string())?;
            let head = tokio::time::timeout(WAIT, stream.recv_response())
                .await
                .map_err(|_| "no response".to_string())?
                .map_err(|e| e.to_string())?;
            if head.status() == StatusCode::OK {
                Ok(())
            } else {
                Err(format!("status {}", head.status()))
            }
        })
    })
    .join()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoints_tls_handshake_timeout_bounds_quic_handshakes() {
    use kestrel::tls::ListenOptionsHttpsExt;
    let ca = TestCa::new();
    let start_with_timeout = |timeout: Duration| {
        let mut options = KestrelServerOptions::default();
        options.listen((std::net::Ipv4Addr::LOCALHOST, 0), |l| {
            l.protocols = HttpProtocols::HTTP1_AND_HTTP2_AND_HTTP3;
            l.use_https(
                HttpsOptions::new()
                    .with_certificate(ca.server_cert(&["localhost"]))
                    .with_handshake_timeout(timeout),
            );
        });
        KestrelServer::new(options).start(app)
    };
    // A handshake that takes 1.5 s: refused under a 500 ms timeout...
    let server = start_with_timeout(Duration::from_millis(500))
        .await
        .unwrap();
    let addr = tls_support::addr(&server);
    let pem = ca.pem.clone();
    let refused = tokio::task::spawn_blocking(move || {
        slow_handshake(&pem, addr, Duration::from_millis(1500))
    })
    .await
    .unwrap();
    assert!(
        refused.is_err(),
        "served despite the 500 ms handshake timeout"
    );
    server.stop().await;
    // ...and served under Kestrel's default 10 s.
    let server = start_with_timeout(Duration::from_secs(10)).await.unwrap();
    let addr = tls_support::addr(&server);
    let pem = ca.pem.clone();
    let served = tokio::task::spawn_blocking(move || {
        slow_handshake(&pem, addr, Duration::from_millis(1500))
    })
    .await
    .unwrap();
    assert_eq!(served, Ok(()));
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_pings_is_still_closed_after_the_keep_alive_timeout() {
    let (recorder, snapshotter) = {
        let r = metrics_util::debugging::DebuggingRecorder::new();
        let s = r.snapshotter();
        (r, s)
    };
    let _local = metrics::set_default_local_recorder(&recorder);
    let ca = TestCa::new();
    let server = start(&ca, |o| {
        o.limits.keep_alive_timeout = Duration::from_secs(1)
    })
    .await;
    let addr = tls_support::addr(&server);
    // QUIC PINGs every 200 ms keep QUIC's own idle timer from firing.
    let mut config = quic_client_config(&ca);
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_millis(200)));
    config.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = endpoint
        .connect_with(config, addr, "localhost")
        .unwrap()
        .await
        .expect("handshake");
    let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    let mut stream = send
        .send_request(Request::get(uri(addr, "/")).body(()).unwrap())
        .await
        .unwrap();
    stream.finish().await.unwrap();
    assert_eq!(
        stream.recv_response().await.unwrap().status(),
        StatusCode::OK
    );
    while stream.recv_data().await.unwrap().is_some() {}
    drop(stream);
    let idle = std::time::Instant::now();
    // Kestrel's keep-alive timeout counts time without a request, not QUIC
    // silence: the server goes away (GOAWAY, then H3_NO_ERROR).
    assert_closed_with_h3_no_error(&conn).await;
    let after = idle.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(5),
        "{after:?}"
    );
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The connection's duration says why it ended.
    let ended_by_keep_alive = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .any(|(ck, _, _, _)| {
            let (_, key) = ck.into_parts();
            key.name() == "kestrel.connection.duration"
                && key
                    .labels()
                    .any(|l| l.key() == "error.type" && l.value() == "keep_alive_timeout")
        });
    assert!(ended_by_keep_alive, "no error.type=keep_alive_timeout");
}

/// An event's target and fields.
type Seen = (String, Vec<(String, String)>);

/// Every event's target and fields, for the log-event test.
#[derive(Clone, Default)]
struct Events(Arc<std::sync::Mutex<Vec<Seen>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Collect(Vec<(String, String)>);
        impl tracing::field::Visit for Collect {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.push((
                    f.name().to_string(),
                    format!("{v:?}").trim_matches('"').to_string(),
                ));
            }
        }
        let mut c = Collect(Vec::new());
        event.record(&mut c);
        self.0
            .lock()
            .unwrap()
            .push((event.metadata().target().to_string(), c.0));
    }
}

impl Events {
    /// The fields of the first event with Kestrel's `id`, and its target.
    fn find(&self, id: &str) -> Option<Seen> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(_, f)| f.iter().any(|(k, v)| k == "event_id" && v == id))
            .cloned()
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn http3_log_events_carry_kestrels_ids() {
    use tracing_subscriber::layer::SubscriberExt;
    let events = Events::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(events.clone()));
    tracing::callsite::rebuild_interest_cache();
    let ca = TestCa::new();
    let server = start_rated(&ca, |o| {
        o.limits.min_response_data_rate =
            Some(kestrel::MinDataRate::new(10_000.0, Duration::from_millis(1500)).unwrap())
    })
    .await;
    let addr = tls_support::addr(&server);
    let raw = RawH3::connect(&ca, addr).await;
    // A response the client does not read: event 28, then the stream's
    // abort (45) with H3_REQUEST_CANCELLED.
    let (_send, mut recv) = raw.get("/big").await;
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::sleep(Duration::from_secs(3)).await;
    while let Ok(Ok(Some(_))) = tokio::time::timeout(WAIT, recv.read(&mut buf)).await {}
    // Other tests' threads (no subscriber) may have registered the closing
    // event's callsite at the same time as this test's subscriber: tracing
    // can then cache it as uninteresting for every thread. Recompute.
    tracing::callsite::rebuild_interest_cache();
    raw.conn.close(0x100u32.into(), b"");
    // The server sees the close (event 44) in its own time.
    tokio::time::timeout(WAIT, async {
        while events.find("44").is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no event 44 in {:#?}", events.0.lock().unwrap()));
    server.stop().await;

    let (target, slow) = events.find("28").expect("event 28");
    assert_eq!(target, "kestrel::bad_requests");
    assert_eq!(
        field(&slow, "event_name"),
        Some("ResponseMinimumDataRateNotSatisfied")
    );
    assert_eq!(field(&slow, "stream_id"), Some("0"));
    let (target, abort) = events.find("45").expect("event 45");
    assert_eq!(target, "kestrel::http3");
    assert_eq!(field(&abort, "event_name"), Some("Http3StreamAbort"));
    assert_eq!(field(&abort, "error_code"), Some("268"), "{abort:?}");
    let (target, closed) = events.find("44").expect("event 44");
    assert_eq!(target, "kestrel::http3");
    assert_eq!(field(&closed, "event_name"), Some("Http3ConnectionClosed"));
}

#[tokio::test]
async fn quic_options_reach_the_quic_transport() {
    use kestrel::tls::ListenOptionsHttpsExt;
    let ca = TestCa::new();
    let mut options = KestrelServerOptions::default();
    options.listen((std::net::Ipv4Addr::LOCALHOST, 0), |l| {
        l.protocols = HttpProtocols::HTTP1_AND_HTTP2_AND_HTTP3;
        l.use_https(HttpsOptions::new().with_certificate(ca.server_cert(&["localhost"])));
    });
    let mut quic = kestrel::transport::quic::QuicOptions::default();
    quic.max_bidirectional_streams = 2;
    let server = KestrelServer::new(options)
        .quic_options(quic)
        .start(app)
        .await
        .expect("server starts");
    let addr = tls_support::addr(&server);
    let raw = RawH3::connect(&ca, addr).await;
    // Two request streams may be open at once (Kestrel's default is 100):
    // the third waits for credit.
    let _a = raw.conn.open_bi().await.unwrap();
    let _b = raw.conn.open_bi().await.unwrap();
    let third = tokio::time::timeout(Duration::from_millis(300), raw.conn.open_bi()).await;
    assert!(third.is_err(), "a third stream opened at once");
    server.stop().await;
}
