//! The PROXY protocol middleware configured in code
//! (`ListenOptions::use_proxy_protocol`), fed raw v1/v2 headers over a real
//! socket: the app sees the header's addresses and TLVs; LOCAL is served
//! with the proxy's address; missing, malformed, oversized and trickled
//! headers and untrusted peers get the connection closed without a byte
//! of response; HTTPS and HTTP/2 work behind the header.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::tls as tls_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use kestrel::proxy_protocol::parse::V2_SIGNATURE;
use kestrel::proxy_protocol::{
    IpNet, ListenOptionsProxyProtocolExt, ProxyCommand, ProxyProtocolFeature, ProxyProtocolOptions,
};
use kestrel::{
    KestrelServer, KestrelServerOptions, RequestBody, RequestFeaturesExt, RunningServer,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use support::{addr, raw, read_to_close};

/// Echo what the connection looks like to the app.
async fn whoami(req: Request<RequestBody>) -> Response<Full<Bytes>> {
    let info = req.features().and_then(|f| f.connection()).unwrap();
    let mut out = format!("remote={} local={}", info.remote_addr(), info.local_addr());
    if let Some(pp) = info.features().get::<ProxyProtocolFeature>() {
        let t = pp.tlvs();
        out += &format!(
            " version={:?} command={:?} proxy={} alpn={:?} authority={:?} unique_id={:?}",
            pp.header.version,
            pp.header.command,
            pp.proxy_addr,
            t.alpn().map(String::from_utf8_lossy),
            t.authority(),
            t.unique_id().map(String::from_utf8_lossy),
        );
    }
    Response::new(Full::new(Bytes::from(out)))
}

async fn start(options: ProxyProtocolOptions, headers_timeout: Duration) -> RunningServer {
    let mut o = KestrelServerOptions::default();
    o.limits.request_headers_timeout = headers_timeout;
    o.listen(SocketAddr::from(([127, 0, 0, 1], 0)), move |l| {
        l.use_proxy_protocol(options);
    });
    KestrelServer::new(o)
        .heartbeat_interval(Duration::from_millis(50))
        .start(whoami)
        .await
        .expect("server starts")
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

fn v2(ver_cmd: u8, fam: u8, addrs: &[u8], tlvs: &[(u8, &[u8])]) -> Vec<u8> {
    let mut body = addrs.to_vec();
    for (k, v) in tlvs {
        body.push(*k);
        body.extend_from_slice(&(v.len() as u16).to_be_bytes());
        body.extend_from_slice(v);
    }
    let mut out = V2_SIGNATURE.to_vec();
    out.extend_from_slice(&[ver_cmd, fam]);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// 203.0.113.7:40000 → 192.0.2.10:443.
const V4: [u8; 12] = [203, 0, 113, 7, 192, 0, 2, 10, 0x9c, 0x40, 0x01, 0xbb];

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

#[tokio::test]
async fn v1_and_v2_addresses_and_tlvs_reach_the_app() {
    let server = start(ProxyProtocolOptions::new(), Duration::from_secs(5)).await;
    let a = addr(&server);

    let r = raw(
        a,
        &cat(b"PROXY TCP4 203.0.113.7 192.0.2.10 40000 443\r\n", GET),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("remote=203.0.113.7:40000 local=192.0.2.10:443 version=V1 command=Proxy proxy=127.0.0.1:"), "{r}");

    let r = raw(
        a,
        &cat(b"PROXY TCP6 2001:db8::7 2001:db8::1 1234 80\r\n", GET),
    )
    .await;
    assert!(
        r.contains("remote=[2001:db8::7]:1234 local=[2001:db8::1]:80"),
        "{r}"
    );

    let header = v2(
        0x21,
        0x11,
        &V4,
        &[
            (0x01, b"h2"),
            (0x02, b"api.example.com"),
            (0x05, b"req-42"),
            (0xEA, b"\x01vpce-1"),
        ],
    );
    let r = raw(a, &cat(&header, GET)).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        r.contains("remote=203.0.113.7:40000 local=192.0.2.10:443 version=V2 command=Proxy"),
        "{r}"
    );
    assert!(
        r.contains(
            "alpn=Some(\"h2\") authority=Some(\"api.example.com\") unique_id=Some(\"req-42\")"
        ),
        "{r}"
    );

    // UNKNOWN (v1) and AF_UNSPEC (v2): the connection's own addresses.
    let r = raw(a, &cat(b"PROXY UNKNOWN\r\n", GET)).await;
    assert!(r.contains("remote=127.0.0.1:"), "{r}");
    server.stop().await;
}

#[tokio::test]
async fn a_header_split_over_many_writes_and_keep_alive_requests() {
    let server = start(ProxyProtocolOptions::new(), Duration::from_secs(5)).await;
    let mut s = TcpStream::connect(addr(&server)).await.unwrap();
    let header = v2(0x21, 0x11, &V4, &[(0x05, b"split")]);
    for chunk in header.chunks(5) {
        s.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let first = support::read_until(&mut s, "unique_id=Some(\"split\")").await;
    assert!(first.contains("remote=203.0.113.7:40000"), "{first}");
    // The second request on the connection has the same addresses.
    s.write_all(GET).await.unwrap();
    let rest = read_to_close(&mut s).await;
    assert!(rest.contains("remote=203.0.113.7:40000"), "{rest}");
    server.stop().await;
}

#[tokio::test]
async fn local_is_served_with_the_proxys_address() {
    let server = start(ProxyProtocolOptions::new(), Duration::from_secs(5)).await;
    let mut s = TcpStream::connect(addr(&server)).await.unwrap();
    let me = s.local_addr().unwrap();
    // LOCAL with (ignored) IPv4 addresses.
    s.write_all(&cat(&v2(0x20, 0x11, &V4, &[]), GET))
        .await
        .unwrap();
    let r = read_to_close(&mut s).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains(&format!("remote={me} ")), "{r}");
    assert!(r.contains("command=Local"), "{r}");
    let _ = ProxyCommand::Local;
    server.stop().await;
}

/// Send `bytes` (then nothing) and expect the server to close without
/// answering, within `limit`.
async fn refused(a: SocketAddr, bytes: &[u8], limit: Duration) {
    let t = Instant::now();
    let r = raw(a, bytes).await;
    assert_eq!(r, "", "no response to {:?}", String::from_utf8_lossy(bytes));
    assert!(t.elapsed() < limit, "closed after {:?}", t.elapsed());
}

#[tokio::test]
async fn bad_headers_close_the_connection() {
    let server = start(ProxyProtocolOptions::new(), Duration::from_secs(5)).await;
    let a = addr(&server);
    let fast = Duration::from_secs(2);
    // No header on a Required endpoint.
    refused(a, GET, fast).await;
    // Malformed v1: bad family, leading zero port, LF only, too long.
    refused(a, &cat(b"PROXY TCP4 ::1 127.0.0.1 1 2\r\n", GET), fast).await;
    refused(a, &cat(b"PROXY TCP4 1.2.3.4 127.0.0.1 01 2\r\n", GET), fast).await;
    refused(a, &cat(b"PROXY TCP4 1.2.3.4 127.0.0.1 1 2\n", GET), fast).await;
    let mut long = b"PROXY TCP4 ".to_vec();
    long.resize(200, b'9');
    refused(a, &long, fast).await;
    // v2: unknown version, unknown command, UDP, oversized, truncated TLV.
    refused(a, &cat(&v2(0x31, 0x11, &V4, &[]), GET), fast).await;
    refused(a, &cat(&v2(0x2F, 0x11, &V4, &[]), GET), fast).await;
    refused(a, &cat(&v2(0x21, 0x12, &V4, &[]), GET), fast).await;
    let mut big = V2_SIGNATURE.to_vec();
    big.extend_from_slice(&[0x21, 0x11, 0x40, 0x00]);
    refused(a, &big, fast).await;
    refused(
        a,
        &cat(&v2(0x21, 0x11, &[&V4[..], &[1, 0][..]].concat(), &[]), GET),
        fast,
    )
    .await;
    // A header cut short by the client closing its side.
    let mut s = TcpStream::connect(a).await.unwrap();
    s.write_all(b"PROXY TCP4 1.2.3.4").await.unwrap();
    s.shutdown().await.unwrap();
    let t = Instant::now();
    assert_eq!(read_to_close(&mut s).await, "");
    assert!(t.elapsed() < fast, "{:?}", t.elapsed());
    // The server still serves good headers.
    let r = raw(a, &cat(b"PROXY UNKNOWN\r\n", GET)).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    server.stop().await;
}

#[tokio::test]
async fn a_trickled_header_is_cut_off_at_the_request_headers_timeout() {
    let server = start(ProxyProtocolOptions::new(), Duration::from_secs(1)).await;
    let mut s = TcpStream::connect(addr(&server)).await.unwrap();
    let t = Instant::now();
    let header = b"PROXY TCP4 203.0.113.7 192.0.2.10 40000 443\r\n";
    let mut closed_at = None;
    for b in header {
        if s.write_all(&[*b]).await.is_err() {
            closed_at = Some(t.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Closed by the server? (a read returns 0 or an error)
        let mut probe = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), s.peek(&mut probe)).await
        {
            closed_at = Some(t.elapsed());
            break;
        }
    }
    let closed_at = closed_at.expect("the server closed the connection");
    // 45 bytes at 100 ms would take 4.5 s: the 1 s deadline is for the whole header.
    assert!(closed_at >= Duration::from_millis(900), "{closed_at:?}");
    assert!(closed_at < Duration::from_millis(2500), "{closed_at:?}");
    server.stop().await;
}

#[tokio::test]
async fn an_explicit_header_timeout_wins() {
    let server = start(
        ProxyProtocolOptions::new().header_timeout(Duration::from_millis(300)),
        Duration::from_secs(30),
    )
    .await;
    let mut s = TcpStream::connect(addr(&server)).await.unwrap();
    let t = Instant::now();
    s.write_all(b"PROXY TCP4").await.unwrap();
    let r = read_to_close(&mut s).await;
    assert_eq!(r, "");
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    server.stop().await;
}

#[tokio::test]
async fn only_trusted_proxies_may_connect() {
    let server = start(
        ProxyProtocolOptions::new().trust("127.0.0.2/32".parse::<IpNet>().unwrap()),
        Duration::from_secs(5),
    )
    .await;
    let a = addr(&server);
    // From 127.0.0.1: refused, even with a valid header.
    refused(a, &cat(b"PROXY UNKNOWN\r\n", GET), Duration::from_secs(2)).await;
    // From 127.0.0.2: served.
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut s = sock.connect(a).await.unwrap();
    s.write_all(&cat(b"PROXY TCP4 198.51.100.9 127.0.0.1 5 6\r\n", GET))
        .await
        .unwrap();
    let r = read_to_close(&mut s).await;
    assert!(r.contains("remote=198.51.100.9:5 local=127.0.0.1:6"), "{r}");
    assert!(r.contains("proxy=127.0.0.2:"), "{r}");
    server.stop().await;
}

#[tokio::test]
async fn http2_prior_knowledge_behind_the_header() {
    let server = start(ProxyProtocolOptions::new(), Duration::from_secs(5)).await;
    let mut s = TcpStream::connect(addr(&server)).await.unwrap();
    s.write_all(&v2(0x21, 0x11, &V4, &[])).await.unwrap();
    let (mut client, conn) = h2::client::handshake(s).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://x/").body(()).unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    let resp = resp.await.unwrap();
    let mut body = resp.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("remote=203.0.113.7:40000"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn https_behind_the_header_and_the_order_is_enforced() {
    use kestrel::tls::{HttpsOptions, ListenOptionsHttpsExt};
    let ca = tls_support::TestCa::new();
    let cert = ca.server_cert(&["localhost"]);
    let mut o = KestrelServerOptions::default();
    let https = HttpsOptions::new().with_certificate(cert.clone());
    o.listen(SocketAddr::from(([127, 0, 0, 1], 0)), move |l| {
        // PROXY first: the header precedes the TLS handshake.
        l.use_proxy_protocol(ProxyProtocolOptions::new());
        l.use_https(https);
    });
    let server = KestrelServer::new(o).start(whoami).await.unwrap();
    let a = tls_support::addr(&server);
    let mut tcp = TcpStream::connect(a).await.unwrap();
    tcp.write_all(&v2(0x21, 0x11, &V4, &[(0x02, b"localhost")]))
        .await
        .unwrap();
    let config = tls_support::client_config(&ca.pem, &["http/1.1"], None);
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("TLS after the PROXY header");
    tls.write_all(GET).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut out).await;
    let r = String::from_utf8_lossy(&out);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        r.contains("remote=203.0.113.7:40000 local=192.0.2.10:443"),
        "{r}"
    );
    assert!(r.contains("authority=Some(\"localhost\")"), "{r}");
    server.stop().await;

    // After use_https, use_proxy_protocol is refused.
    let mut l = kestrel::ListenOptions::new(SocketAddr::from(([127, 0, 0, 1], 0)).into());
    l.use_https(HttpsOptions::new().with_certificate(cert));
    let e = l
        .try_use_proxy_protocol(ProxyProtocolOptions::new())
        .map(|_| ())
        .unwrap_err();
    assert!(e.to_string().contains("before use_https"), "{e}");
}
