//! Host filtering over real requests: every rule of the documentation's
//! sample middleware (AllowedHosts `;`-separated, ports dropped, IPv6 in
//! brackets, case-insensitive, `*.example.com` sub-domains, `*`, empty Host
//! for HTTP/1.0), plus HTTP/2's `:authority` and the debug log line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kestrel_test_support::http1client as support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::Full;
use kestrel::{Application, RequestBody};
use kestrel_hosting::middleware::{EmptyHostPolicy, HostFiltering, HostFilteringError};
use kestrel_hosting::pipeline::{ApplicationBuilder, Pipeline};

fn pipeline(filter: HostFiltering) -> Pipeline {
    let mut app = ApplicationBuilder::new();
    app.use_middleware(filter);
    app.run(|_req: Request<RequestBody>| async {
        Response::new(Full::new(Bytes::from_static(b"allowed")))
    });
    app.build()
}

async fn status_for_host(addr: SocketAddr, host: &str) -> u16 {
    let r = support::get(addr, "/", host, &[]).await;
    if r.status == 200 {
        assert_eq!(r.text(), "allowed");
    } else {
        assert!(r.body.is_empty(), "a rejection has an empty body");
    }
    r.status
}

#[tokio::test]
async fn the_seed_rules_over_real_requests() {
    let filter =
        HostFiltering::new("example.com;localhost;*.contoso.com;[::1];127.0.0.1;;[2001:db8::1]")
            .expect("hosts");
    let (server, addr) = support::start(pipeline(filter)).await;
    let port = addr.port();
    let cases: Vec<(String, u16)> = vec![
        // Exact names, with and without a port, any case.
        ("example.com".into(), 200),
        ("example.com:80".into(), 200),
        (format!("EXAMPLE.COM:{port}"), 200),
        (format!("localhost:{port}"), 200),
        (format!("127.0.0.1:{port}"), 200),
        // Mismatches.
        ("example.org".into(), 400),
        ("www.example.com".into(), 400),
        ("example.com.evil.net".into(), 400),
        ("127.0.0.2".into(), 400),
        // Sub-domain wildcards: any depth, any case, not the bare domain.
        ("www.contoso.com".into(), 200),
        ("a.b.CONTOSO.com:8080".into(), 200),
        ("contoso.com".into(), 400),
        ("badcontoso.com".into(), 400),
        // IPv6 in brackets, port or not; only the configured address.
        ("[::1]".into(), 200),
        (format!("[::1]:{port}"), 200),
        ("[2001:db8::1]:443".into(), 200),
        ("[::2]".into(), 400),
        ("[::2]:80".into(), 400),
    ];
    for (host, expected) in cases {
        assert_eq!(status_for_host(addr, &host).await, expected, "Host: {host}");
    }
    server.stop().await;
}

#[tokio::test]
async fn star_allows_every_host() {
    let (server, addr) = support::start(pipeline(HostFiltering::new("*").unwrap())).await;
    for host in ["anything.example", "[::1]:1", "10.0.0.1:80", "x"] {
        assert_eq!(status_for_host(addr, host).await, 200, "Host: {host}");
    }
    // As in ASP.NET Core, `*` means any non-empty host: an empty one is
    // still up to the empty-host policy.
    let r = support::send(addr, "GET / HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        support::send(addr, "GET / HTTP/1.0\r\n\r\n").await.status,
        200
    );
    server.stop().await;
}

#[tokio::test]
async fn empty_host_is_allowed_for_http_1_0_only_by_default() {
    let (server, addr) = support::start(pipeline(HostFiltering::new("example.com").unwrap())).await;
    // HTTP/1.0 does not require Host: missing or empty are allowed.
    assert_eq!(
        support::send(addr, "GET / HTTP/1.0\r\n\r\n").await.status,
        200
    );
    assert_eq!(
        support::send(addr, "GET / HTTP/1.0\r\nHost:\r\n\r\n")
            .await
            .status,
        200
    );
    // A wrong Host is still rejected in HTTP/1.0.
    assert_eq!(
        support::send(addr, "GET / HTTP/1.0\r\nHost: evil.com\r\n\r\n")
            .await
            .status,
        400
    );
    // HTTP/1.1 with an empty Host: rejected.
    let r = support::send(addr, "GET / HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n").await;
    assert_eq!(r.status, 400);
    server.stop().await;

    // `Always` (the sample's rule, ASP.NET Core's AllowEmptyHosts=true).
    let filter = HostFiltering::new("example.com")
        .unwrap()
        .empty_hosts(EmptyHostPolicy::Always);
    let (server, addr) = support::start(pipeline(filter)).await;
    let r = support::send(addr, "GET / HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n").await;
    assert_eq!(r.status, 200);
    server.stop().await;

    // `Never`.
    let filter = HostFiltering::new("example.com")
        .unwrap()
        .empty_hosts(EmptyHostPolicy::Never);
    let (server, addr) = support::start(pipeline(filter)).await;
    assert_eq!(
        support::send(addr, "GET / HTTP/1.0\r\n\r\n").await.status,
        400
    );
    server.stop().await;
}

#[tokio::test]
async fn an_empty_allowed_hosts_list_is_an_error() {
    assert_eq!(
        HostFiltering::new("").unwrap_err(),
        HostFilteringError::NoAllowedHosts
    );
    assert!(HostFiltering::new(";;").is_err());
}

#[tokio::test]
async fn http2_authority_stands_for_a_missing_host() {
    let p = pipeline(HostFiltering::new("*.example.com").unwrap());
    let call = |uri: &'static str| {
        let p = p.clone();
        async move {
            let mut req = Request::new(RequestBody::empty());
            *req.uri_mut() = uri.parse().unwrap();
            *req.version_mut() = Version::HTTP_2;
            p.call(req).await.unwrap().status()
        }
    };
    assert_eq!(call("https://www.example.com:8443/x").await, StatusCode::OK);
    assert_eq!(call("https://example.com/x").await, StatusCode::BAD_REQUEST);
    // HTTP/2 without any authority is not HTTP/1.0: rejected.
    assert_eq!(call("/x").await, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_rejection_is_logged_at_debug() {
    // The binary's one global capture, not a scoped subscriber: `tracing`
    // caches each callsite's interest, and a callsite first reached by another
    // test's thread (no subscriber there) while a scoped subscriber was being
    // set here could stay silenced, making this test flaky under load. The
    // other tests of this binary log into the capture too; harmless.
    kestrel_test_support::logs::capture();
    let (server, addr) = support::start(pipeline(HostFiltering::new("example.com").unwrap())).await;
    assert_eq!(status_for_host(addr, "evil.com").await, 400);
    server.stop().await;
    let logs = kestrel_test_support::logs::text();
    let line = logs
        .lines()
        .find(|l| l.contains("Request rejected due to incorrect host header."))
        .unwrap_or_else(|| panic!("no rejection line in:\n{logs}"));
    assert!(line.contains("DEBUG"), "{line}");
    assert!(line.contains("kestrel::hosting::host_filtering"), "{line}");
}

/// A request over h2c (prior knowledge) with `:authority` and no `Host`.
async fn h2_status(addr: SocketAddr, uri: &str) -> u16 {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::get(uri).body(()).unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    let resp = resp.await.unwrap();
    resp.status().as_u16()
}

#[tokio::test]
async fn http2_authority_over_a_real_connection() {
    let filter = HostFiltering::new("*.example.com;[::1]").unwrap();
    let (server, addr) = support::start(pipeline(filter)).await;
    assert_eq!(h2_status(addr, "http://www.example.com/").await, 200);
    assert_eq!(h2_status(addr, "http://www.example.com:8080/x").await, 200);
    assert_eq!(h2_status(addr, "http://[::1]:8080/").await, 200);
    assert_eq!(h2_status(addr, "http://example.com/").await, 400);
    assert_eq!(h2_status(addr, "http://evil.test/").await, 400);
    server.stop().await;
}
