//! Forwarded headers over real requests: honoured from a trusted proxy
//! (loopback by default, known networks, Unix-socket peers when configured),
//! ignored from an untrusted one, with the forward limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kestrel_test_support::http1client as support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use kestrel::RequestBody;
use kestrel_hosting::middleware::{
    ForwardedHeader, ForwardedHeaders, ForwardedInfo, HostFiltering,
};
use kestrel_hosting::pipeline::{ApplicationBuilder, Pipeline};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Echo what the app sees, one `key=value` per line.
async fn echo(req: Request<RequestBody>) -> Response<Full<Bytes>> {
    let info = req.extensions().get::<ForwardedInfo>().cloned().unwrap();
    let h = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_else(|| "-".into())
    };
    let remote = info
        .remote_addr
        .map(|a| a.to_string())
        .unwrap_or_else(|| "-".into());
    let body = format!(
        "remote={remote}\nscheme={}\nhost={}\nforwarded={}\nxff={}\nxfp={}\nxfh={}\nxof={}\nxop={}\nxoh={}\nHost={}\n",
        info.scheme,
        info.host.clone().unwrap_or_else(|| "-".into()),
        info.forwarded,
        h("x-forwarded-for"),
        h("x-forwarded-proto"),
        h("x-forwarded-host"),
        h("x-original-for"),
        h("x-original-proto"),
        h("x-original-host"),
        h("host"),
    );
    Response::new(Full::new(Bytes::from(body)))
}

fn pipeline(fh: ForwardedHeaders) -> Pipeline {
    let mut app = ApplicationBuilder::new();
    app.use_middleware(fh);
    app.run(echo);
    app.build()
}

fn field(body: &str, key: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {body}"))
        .to_string()
}

#[tokio::test]
async fn a_trusted_loopback_proxy_sets_client_address_and_scheme() {
    let (server, addr) = support::start(pipeline(ForwardedHeaders::new())).await;
    let r = support::get(
        addr,
        "/",
        "app.example",
        &["X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https"],
    )
    .await;
    let b = r.text();
    assert_eq!(field(&b, "remote"), "203.0.113.7:0");
    assert_eq!(field(&b, "scheme"), "https");
    assert_eq!(field(&b, "forwarded"), "true");
    // Originals kept as ASP.NET Core does; consumed headers removed.
    let xof = field(&b, "xof");
    assert!(xof.starts_with("127.0.0.1:"), "{xof}");
    assert_eq!(field(&b, "xop"), "http");
    assert_eq!(field(&b, "xff"), "-");
    assert_eq!(field(&b, "xfp"), "-");
    // X-Forwarded-Host is not honoured by default.
    let r = support::get(
        addr,
        "/",
        "app.example",
        &["X-Forwarded-Host: evil.example"],
    )
    .await;
    let b = r.text();
    assert_eq!(field(&b, "Host"), "app.example");
    assert_eq!(field(&b, "forwarded"), "false");
    // No forwarded headers: the connection's own values.
    let b = support::get(addr, "/", "app.example", &[]).await.text();
    assert!(field(&b, "remote").starts_with("127.0.0.1:"));
    assert_eq!(field(&b, "scheme"), "http");
    assert_eq!(field(&b, "host"), "app.example");
    server.stop().await;
}

#[tokio::test]
async fn an_untrusted_proxy_is_ignored() {
    let fh = ForwardedHeaders::new()
        .clear_known()
        .known_proxy("10.0.0.1".parse().unwrap());
    let (server, addr) = support::start(pipeline(fh)).await;
    let b = support::get(
        addr,
        "/",
        "app.example",
        &["X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https"],
    )
    .await
    .text();
    assert!(field(&b, "remote").starts_with("127.0.0.1:"), "{b}");
    assert_eq!(field(&b, "scheme"), "http");
    assert_eq!(field(&b, "forwarded"), "false");
    assert_eq!(field(&b, "xff"), "203.0.113.7");
    assert_eq!(field(&b, "xof"), "-");
    server.stop().await;
}

#[tokio::test]
async fn the_forward_limit_and_known_networks_bound_the_walk() {
    let chain = "X-Forwarded-For: 198.51.100.1, 192.0.2.9:4711, 203.0.113.7";
    // Default limit 1: only the nearest entry.
    let (server, addr) = support::start(pipeline(ForwardedHeaders::new())).await;
    let b = support::get(addr, "/", "h", &[chain]).await.text();
    assert_eq!(field(&b, "remote"), "203.0.113.7:0");
    assert_eq!(field(&b, "xff"), "198.51.100.1, 192.0.2.9:4711");
    server.stop().await;

    // Limit 3, but 203.0.113.7 is not a known proxy: stop after it.
    let fh = ForwardedHeaders::new().forward_limit(Some(3));
    let (server, addr) = support::start(pipeline(fh)).await;
    let b = support::get(addr, "/", "h", &[chain]).await.text();
    assert_eq!(field(&b, "remote"), "203.0.113.7:0");
    server.stop().await;

    // Trust 203.0.113.0/24 and 192.0.2.9: the walk reaches the client.
    let fh = ForwardedHeaders::new()
        .forward_limit(Some(3))
        .known_network("203.0.113.0/24".parse().unwrap())
        .known_proxy("192.0.2.9".parse().unwrap());
    let (server, addr) = support::start(pipeline(fh.clone())).await;
    let b = support::get(addr, "/", "h", &[chain]).await.text();
    assert_eq!(field(&b, "remote"), "198.51.100.1:0");
    assert_eq!(field(&b, "xff"), "-");
    // An unparsable entry stops the walk where it is.
    let b = support::get(
        addr,
        "/",
        "h",
        &["X-Forwarded-For: 198.51.100.1, unknown, 203.0.113.7"],
    )
    .await
    .text();
    assert_eq!(field(&b, "remote"), "203.0.113.7:0");
    assert_eq!(field(&b, "xff"), "198.51.100.1, unknown");
    server.stop().await;
}

#[tokio::test]
async fn forwarded_host_rewrites_host_within_the_allowed_hosts() {
    let fh = ForwardedHeaders::new()
        .headers(ForwardedHeader::ALL)
        .allowed_hosts(HostFiltering::new("*.example.com").unwrap());
    let (server, addr) = support::start(pipeline(fh)).await;
    let b = support::get(
        addr,
        "/",
        "127.0.0.1",
        &[
            "X-Forwarded-Host: www.example.com",
            "X-Forwarded-For: [2001:db8::5]:1234",
            "X-Forwarded-Proto: https",
        ],
    )
    .await
    .text();
    assert_eq!(field(&b, "Host"), "www.example.com");
    assert_eq!(field(&b, "host"), "www.example.com");
    assert_eq!(field(&b, "xoh"), "127.0.0.1");
    assert_eq!(field(&b, "remote"), "[2001:db8::5]:1234");
    assert_eq!(field(&b, "scheme"), "https");
    // A host outside the allowed hosts stops the walk: nothing is applied.
    let b = support::get(
        addr,
        "/",
        "127.0.0.1",
        &[
            "X-Forwarded-Host: evil.test",
            "X-Forwarded-For: 203.0.113.7",
        ],
    )
    .await
    .text();
    assert_eq!(field(&b, "Host"), "127.0.0.1");
    assert_eq!(field(&b, "forwarded"), "false");
    server.stop().await;
}

async fn unix_get(path: &std::path::Path) -> String {
    let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    support::parse(&out).text()
}

#[tokio::test]
async fn unix_socket_peers_are_trusted_only_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("untrusted.sock");
    let url = format!("http://unix:{}", sock.display());
    let (server, _) = support::start_on(&url, pipeline(ForwardedHeaders::new())).await;
    let b = unix_get(&sock).await;
    assert_eq!(field(&b, "remote"), "-");
    assert_eq!(field(&b, "forwarded"), "false");
    server.stop().await;

    let sock = dir.path().join("trusted.sock");
    let url = format!("http://unix:{}", sock.display());
    let fh = ForwardedHeaders::new().trust_unix_socket_peers(true);
    let (server, _) = support::start_on(&url, pipeline(fh)).await;
    let b = unix_get(&sock).await;
    assert_eq!(field(&b, "remote"), "203.0.113.7:0");
    assert_eq!(field(&b, "scheme"), "https");
    assert_eq!(field(&b, "xof"), "-", "a Unix peer has no address to keep");
    server.stop().await;
}
