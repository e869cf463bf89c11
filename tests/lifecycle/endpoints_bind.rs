//! Binding: port 0, localhost on both loopbacks, Unix sockets, precedence, errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;

use std::time::Duration;

use kestrel::{KestrelServer, KestrelServerOptions, StartError};
use support::{curl, have_tool, hello, raw, status_of};

#[tokio::test]
async fn port_zero_reports_the_real_port() {
    let server = KestrelServer::default()
        .urls(["http://127.0.0.1:0"])
        .start(hello)
        .await
        .unwrap();
    let list: Vec<String> = server.addresses().iter().map(|a| a.to_string()).collect();
    assert_eq!(list.len(), 1);
    assert!(list[0].starts_with("http://127.0.0.1:"), "{list:?}");
    assert!(
        !list[0].ends_with(":0"),
        "the real port is reported: {list:?}"
    );
    let reply = raw(
        support::addr(&server),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&reply), 200);
    server.stop().await;
}

fn ipv6_available() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

#[tokio::test]
async fn localhost_binds_both_loopbacks() {
    // Find a port free on both families, then bind localhost on it.
    let port = loop {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        drop(v4);
        if !ipv6_available() || std::net::TcpListener::bind(("::1", port)).is_ok() {
            break port;
        }
    };
    let server = KestrelServer::default()
        .urls([format!("http://localhost:{port}")])
        .start(hello)
        .await
        .unwrap();
    let list: Vec<String> = server.addresses().iter().map(|a| a.to_string()).collect();
    assert_eq!(list, vec![format!("http://localhost:{port}")]);
    let req = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert_eq!(
        status_of(&raw(format!("127.0.0.1:{port}").parse().unwrap(), req).await),
        200
    );
    if ipv6_available() {
        assert_eq!(
            status_of(&raw(format!("[::1]:{port}").parse().unwrap(), req).await),
            200
        );
    } else {
        eprintln!("!!! IPv6 loopback unavailable: only 127.0.0.1 was checked !!!");
    }
    server.stop().await;
}

#[tokio::test]
async fn localhost_port_in_use_is_fatal() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = KestrelServer::default()
        .urls([format!("http://localhost:{port}")])
        .start(hello)
        .await
        .unwrap_err();
    match err {
        StartError::Bind { source, .. } => assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse),
        other => panic!("expected an address-in-use bind error, got {other}"),
    }
}

#[tokio::test]
async fn start_up_errors_are_clear() {
    // An https:// URL whose HTTPS defaults cannot work (the `tls` feature is
    // on by default; without it the error is `TlsNotConfigured`).
    let e = KestrelServer::default()
        .urls(["https://127.0.0.1:0"])
        .https_defaults(
            kestrel::tls::HttpsOptions::new()
                .with_certificate_selector(|_| None)
                .with_client_certificate_mode(
                    kestrel::tls::ClientCertificateMode::DelayCertificate,
                ),
        )
        .start(hello)
        .await
        .unwrap_err();
    assert!(matches!(e, StartError::Tls(_)), "{e}");
    assert!(
        e.to_string().contains("HTTPS") && e.to_string().contains("DelayCertificate"),
        "{e}"
    );
    let e = KestrelServer::default()
        .urls(["http://localhost:0"])
        .start(hello)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("localhost"), "{e}");
    let e = KestrelServer::default()
        .urls(["http://127.0.0.1:0/base"])
        .start(hello)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("path base"), "{e}");
    let mut o = KestrelServerOptions::default();
    o.limits.max_request_buffer_size = Some(1024);
    let e = KestrelServer::new(o)
        .urls(["http://127.0.0.1:0"])
        .start(hello)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("max_request_buffer_size"), "{e}");
}

#[tokio::test]
async fn code_endpoints_win_over_urls() {
    let mut o = KestrelServerOptions::default();
    o.listen(([127, 0, 0, 1], 0).into_addr(), |_| {});
    let server = KestrelServer::new(o)
        .urls(["http://127.0.0.2:0"])
        .start(hello)
        .await
        .unwrap();
    let list: Vec<String> = server.addresses().iter().map(|a| a.to_string()).collect();
    assert_eq!(list.len(), 1);
    assert!(list[0].starts_with("http://127.0.0.1:"), "{list:?}");
    server.stop().await;

    let mut o = KestrelServerOptions::default();
    o.listen(([127, 0, 0, 1], 0).into_addr(), |_| {});
    let server = KestrelServer::new(o)
        .urls(["http://127.0.0.1:0"])
        .prefer_urls(true)
        .start(hello)
        .await
        .unwrap();
    assert_eq!(server.addresses().len(), 1);
    server.stop().await;
}

trait IntoAddr {
    fn into_addr(self) -> std::net::SocketAddr;
}
impl IntoAddr for ([u8; 4], u16) {
    fn into_addr(self) -> std::net::SocketAddr {
        (std::net::Ipv4Addr::from(self.0), self.1).into()
    }
}

#[tokio::test]
async fn any_ip_is_dual_mode() {
    let server = KestrelServer::default()
        .urls(["http://*:0"])
        .start(hello)
        .await
        .unwrap();
    let shown = server.addresses().iter().next().unwrap().to_string();
    let port: u16 = shown.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        shown.starts_with("http://[::]:") || shown.starts_with("http://0.0.0.0:"),
        "{shown}"
    );
    let req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_eq!(
        status_of(&raw(format!("127.0.0.1:{port}").parse().unwrap(), req).await),
        200
    );
    if shown.starts_with("http://[::]") {
        assert_eq!(
            status_of(&raw(format!("[::1]:{port}").parse().unwrap(), req).await),
            200
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn unix_socket_with_curl_and_cleanup() {
    if !have_tool("curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kestrel.sock");
    let url = format!("http://unix:{}", path.display());
    let server = KestrelServer::default()
        .urls([url.clone()])
        .start(kestrel_demo::app)
        .await
        .unwrap();
    assert_eq!(server.addresses().iter().next().unwrap().to_string(), url);
    let out = curl(&["--unix-socket", path.to_str().unwrap(), "http://localhost/"]).await;
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains("Hosted by Kestrel"),
        "{body} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        body.contains(&format!("Listening on the following addresses: {url}")),
        "{body}"
    );
    // A second server on the same live socket is refused.
    let e = KestrelServer::default()
        .urls([url.clone()])
        .start(support::hello)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("in use") || e.to_string().contains("Address"),
        "{e}"
    );
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!path.exists(), "the socket file is removed on shutdown");
}
