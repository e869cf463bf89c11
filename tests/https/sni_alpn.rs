//! SNI (the static map with exact and wildcard names, the selector callback,
//! the default) and ALPN (from the endpoint's protocols) with real clients:
//! curl, rustls and `openssl s_client`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::tls as tls_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kestrel::tls::{CertificateSummary, HttpsOptions};
use kestrel::HttpProtocols;
use support::{curl, have_tool};
use tls_support::{client_config, connect, get, run, s, serve, tls_app, TestCa};

/// The CN of the certificate the server presented on `tls`.
fn served_cn(tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    let chain = tls.get_ref().1.peer_certificates().unwrap();
    CertificateSummary::parse(chain[0].as_ref())
        .unwrap()
        .subject_common_name
        .unwrap()
}

fn sni_options(ca: &TestCa) -> HttpsOptions {
    HttpsOptions::new()
        .with_certificate(ca.server_cert(&["localhost"]))
        .with_sni_certificate("a.example.com", ca.server_cert(&["a.example.com"]))
        .with_sni_certificate("*.example.com", ca.server_cert(&["*.example.com"]))
        .with_sni_certificate(
            "*.deep.example.com",
            ca.server_cert(&["*.deep.example.com"]),
        )
}

#[tokio::test]
async fn sni_map_picks_exact_then_wildcard_then_default_rustls() {
    let ca = TestCa::new();
    let server = serve(sni_options(&ca), HttpProtocols::HTTP1, tls_app).await;
    let addr = tls_support::addr(&server);
    let config = client_config(&ca.pem, &["http/1.1"], None);
    for (name, expected_cn) in [
        ("a.example.com", "a.example.com"),
        ("A.EXAMPLE.COM", "a.example.com"),
        ("b.example.com", "*.example.com"),
        ("x.deep.example.com", "*.deep.example.com"),
        ("localhost", "localhost"),
    ] {
        let tls = connect(addr, name, config.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(served_cn(&tls), expected_cn, "for {name}");
        let response = get(tls, name).await;
        let expected = format!("sni={}", name.to_ascii_lowercase());
        assert!(response.contains(&expected), "{name}: {response}");
    }
    server.stop().await;
}

#[tokio::test]
async fn sni_with_curl_resolve() {
    if !have_tool("curl") {
        return;
    }
    let ca = TestCa::new();
    let server = serve(sni_options(&ca), HttpProtocols::HTTP1, tls_app).await;
    let port = tls_support::addr(&server).port();
    for (host, expected_cn) in [
        ("a.example.com", "a.example.com"),
        ("www.example.com", "*.example.com"),
    ] {
        let resolve = format!("{host}:{port}:127.0.0.1");
        let url = format!("https://{host}:{port}/");
        let out = curl(&[
            "-v",
            "--http1.1",
            "--cacert",
            s(&ca.ca_path()),
            "--resolve",
            &resolve,
            &url,
        ])
        .await;
        let body = String::from_utf8_lossy(&out.stdout);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{host}: {log}");
        assert!(body.contains(&format!("sni={host}")), "{body}");
        assert!(log.contains(&format!("CN={expected_cn}")), "{host}: {log}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_selector_wins_and_falls_back_to_the_map() {
    let ca = TestCa::new();
    let chosen = ca.server_cert(&["b.example.com"]);
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let https = sni_options(&ca).with_certificate_selector(move |name| {
        seen.fetch_add(1, Ordering::SeqCst);
        (name == Some("b.example.com")).then(|| chosen.clone())
    });
    let server = serve(https, HttpProtocols::HTTP1, tls_app).await;
    let addr = tls_support::addr(&server);
    let config = client_config(&ca.pem, &["http/1.1"], None);
    let tls = connect(addr, "b.example.com", config.clone())
        .await
        .unwrap();
    assert_eq!(
        served_cn(&tls),
        "b.example.com",
        "the selector's certificate"
    );
    let tls = connect(addr, "c.example.com", config.clone())
        .await
        .unwrap();
    assert_eq!(
        served_cn(&tls),
        "*.example.com",
        "the map after the selector said None"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    server.stop().await;
}

#[tokio::test]
async fn no_certificate_for_the_name_fails_the_handshake() {
    let ca = TestCa::new();
    let https = HttpsOptions::new()
        .with_sni_certificate("a.example.com", ca.server_cert(&["a.example.com"]));
    let server = serve(https, HttpProtocols::HTTP1, tls_app).await;
    let addr = tls_support::addr(&server);
    let config = client_config(&ca.pem, &["http/1.1"], None);
    assert!(connect(addr, "a.example.com", config.clone()).await.is_ok());
    let err = connect(addr, "other.example.org", config)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("fatal alert"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn alpn_follows_the_endpoint_protocols() {
    let ca = TestCa::new();
    let offer_both = client_config(&ca.pem, &["h2", "http/1.1"], None);

    // Http1 endpoint: the client offers both, the server picks http/1.1, and
    // the app sees it in the connection's TlsInfo.
    let server = serve(
        HttpsOptions::new().with_certificate(ca.server_cert(&["localhost"])),
        HttpProtocols::HTTP1,
        tls_app,
    )
    .await;
    let addr = tls_support::addr(&server);
    let tls = connect(addr, "localhost", offer_both.clone())
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let response = get(tls, "localhost").await;
    assert!(response.contains("alpn=http/1.1"), "{response}");
    server.stop().await;

    // Http1AndHttp2: h2 is preferred; a client offering only http/1.1 gets it.
    let server = serve(
        HttpsOptions::new().with_certificate(ca.server_cert(&["localhost"])),
        HttpProtocols::HTTP1_AND_HTTP2,
        tls_app,
    )
    .await;
    let addr = tls_support::addr(&server);
    let tls = connect(addr, "localhost", offer_both.clone())
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(tls);
    let tls = connect(
        addr,
        "localhost",
        client_config(&ca.pem, &["http/1.1"], None),
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let response = get(tls, "localhost").await;
    assert!(response.contains("alpn=http/1.1"), "{response}");
    server.stop().await;

    // Http2 only: a client offering only http/1.1 is refused in the handshake
    // (no_application_protocol); one offering no ALPN at all is closed.
    let server = serve(
        HttpsOptions::new().with_certificate(ca.server_cert(&["localhost"])),
        HttpProtocols::HTTP2,
        tls_app,
    )
    .await;
    let addr = tls_support::addr(&server);
    let tls = connect(addr, "localhost", offer_both).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(tls);
    let err = connect(
        addr,
        "localhost",
        client_config(&ca.pem, &["http/1.1"], None),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("NoApplicationProtocol"), "{err}");
    let tls = connect(addr, "localhost", client_config(&ca.pem, &[], None)).await;
    if let Ok(tls) = tls {
        assert_eq!(tls.get_ref().1.alpn_protocol(), None);
        let response = get(tls, "localhost").await;
        assert!(response.is_empty(), "closed without an answer: {response}");
    }
    server.stop().await;
}

#[tokio::test]
async fn openssl_s_client_shows_the_negotiated_alpn_protocol() {
    if !have_tool("openssl") {
        return;
    }
    let ca = TestCa::new();
    for (protocols, expected) in [
        (HttpProtocols::HTTP1_AND_HTTP2, "ALPN protocol: h2"),
        (HttpProtocols::HTTP1, "ALPN protocol: http/1.1"),
    ] {
        let server = serve(
            HttpsOptions::new().with_certificate(ca.server_cert(&["localhost"])),
            protocols,
            tls_app,
        )
        .await;
        let connect_to = format!("127.0.0.1:{}", tls_support::addr(&server).port());
        let out = run(
            "openssl",
            &[
                "s_client",
                "-connect",
                &connect_to,
                "-servername",
                "localhost",
                "-alpn",
                "h2,http/1.1",
                "-CAfile",
                s(&ca.ca_path()),
                "-verify_return_error",
            ],
            b"",
        )
        .await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(expected),
            "{protocols}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
        server.stop().await;
    }
}

#[tokio::test]
async fn http2_over_tls_with_curl() {
    if !have_tool("curl") {
        return;
    }
    let ca = TestCa::new();
    let server = serve(
        HttpsOptions::new().with_certificate(ca.server_cert(&["localhost"])),
        HttpProtocols::HTTP1_AND_HTTP2,
        tls_app,
    )
    .await;
    let port = tls_support::addr(&server).port();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}/");
    for (flag, status_line, alpn) in [
        ("--http2", "HTTP/2 200", "alpn=h2"),
        ("--http1.1", "HTTP/1.1 200", "alpn=http/1.1"),
    ] {
        let out = curl(&[
            "-i",
            flag,
            "--cacert",
            s(&ca.ca_path()),
            "--resolve",
            &resolve,
            &url,
        ])
        .await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.starts_with(status_line), "{flag}: {text}");
        assert!(text.contains(alpn), "{flag}: {text}");
    }
    server.stop().await;
}
