//! Client certificates: RequireCertificate refuses a client without one and
//! accepts one signed by the trusted CA (the app sees the chain);
//! AllowCertificate accepts both; a validation callback has the last word.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::tls as tls_support;

use std::sync::{Arc, Mutex};

use kestrel::tls::{ClientCertificateMode, HttpsOptions};
use kestrel::HttpProtocols;
use support::{curl, have_tool};
use tls_support::{client_config, https_get, s, serve, tls_app, TestCa};

fn options(ca: &TestCa, mode: ClientCertificateMode) -> HttpsOptions {
    HttpsOptions::new()
        .with_certificate(ca.server_cert(&["localhost"]))
        .with_client_certificate_mode(mode)
        .with_trusted_client_roots_pem(ca.pem.as_bytes())
        .unwrap()
}

/// GET / and return the response, or "" when the handshake or the
/// connection failed (with TLS 1.3 the server's refusal of the client
/// certificate arrives after the client thinks the handshake is done).
async fn fetch(addr: std::net::SocketAddr, config: Arc<rustls::ClientConfig>) -> String {
    https_get(addr, "localhost", config)
        .await
        .unwrap_or_default()
}

#[tokio::test]
async fn require_certificate() {
    let ca = TestCa::new();
    let server = serve(
        options(&ca, ClientCertificateMode::RequireCertificate),
        HttpProtocols::HTTP1,
        tls_app,
    )
    .await;
    let addr = tls_support::addr(&server);

    let none = fetch(addr, client_config(&ca.pem, &["http/1.1"], None)).await;
    assert!(
        !none.contains("200 OK"),
        "no certificate must be refused: {none}"
    );

    let (cert, key) = ca.client_pem("alice");
    let ok = fetch(
        addr,
        client_config(&ca.pem, &["http/1.1"], Some((&cert, &key))),
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
    assert!(
        ok.contains("peer=alice chain=1"),
        "the app sees the client certificate: {ok}"
    );

    // A certificate from another CA is refused.
    let other = TestCa::new();
    let (cert, key) = other.client_pem("mallory");
    let refused = fetch(
        addr,
        client_config(&ca.pem, &["http/1.1"], Some((&cert, &key))),
    )
    .await;
    assert!(!refused.contains("200 OK"), "{refused}");

    // The server keeps serving after the refusals.
    let (cert, key) = ca.client_pem("bob");
    let ok = fetch(
        addr,
        client_config(&ca.pem, &["http/1.1"], Some((&cert, &key))),
    )
    .await;
    assert!(ok.contains("peer=bob"), "{ok}");
    server.stop().await;
}

#[tokio::test]
async fn require_certificate_with_curl() {
    if !have_tool("curl") {
        return;
    }
    let ca = TestCa::new();
    let server = serve(
        options(&ca, ClientCertificateMode::RequireCertificate),
        HttpProtocols::HTTP1,
        tls_app,
    )
    .await;
    let url = format!("https://localhost:{}/", tls_support::addr(&server).port());
    let resolve = format!("localhost:{}:127.0.0.1", tls_support::addr(&server).port());
    let cacert = ca.ca_path();

    let out = curl(&["--cacert", s(&cacert), "--resolve", &resolve, &url]).await;
    assert!(
        !out.status.success(),
        "curl without a certificate must fail"
    );

    let (cert, key) = ca.client_pem("carol");
    let cert = ca.write("client.pem", cert);
    let key = ca.write("client-key.pem", key);
    let out = curl(&[
        "--cacert",
        s(&cacert),
        "--resolve",
        &resolve,
        "--cert",
        s(&cert),
        "--key",
        s(&key),
        &url,
    ])
    .await;
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(body.contains("peer=carol"), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn allow_certificate() {
    let ca = TestCa::new();
    let server = serve(
        options(&ca, ClientCertificateMode::AllowCertificate),
        HttpProtocols::HTTP1,
        tls_app,
    )
    .await;
    let addr = tls_support::addr(&server);
    let none = fetch(addr, client_config(&ca.pem, &["http/1.1"], None)).await;
    assert!(
        none.starts_with("HTTP/1.1 200 OK") && none.contains("peer=none chain=0"),
        "{none}"
    );
    let (cert, key) = ca.client_pem("dave");
    let with = fetch(
        addr,
        client_config(&ca.pem, &["http/1.1"], Some((&cert, &key))),
    )
    .await;
    assert!(with.contains("peer=dave"), "{with}");
    // An untrusted certificate is refused even though one is optional.
    let other = TestCa::new();
    let (cert, key) = other.client_pem("eve");
    let refused = fetch(
        addr,
        client_config(&ca.pem, &["http/1.1"], Some((&cert, &key))),
    )
    .await;
    assert!(!refused.contains("200 OK"), "{refused}");
    server.stop().await;
}

#[tokio::test]
async fn the_validation_callback_decides() {
    let ca = TestCa::new();
    // (client CN, whether the chain failed verification) per callback call.
    type Seen = Arc<Mutex<Vec<(Option<String>, bool)>>>;
    let seen: Seen = Arc::default();
    let log = seen.clone();
    // No trusted roots: the callback alone decides (it accepts "trusted-*").
    let https = HttpsOptions::new()
        .with_certificate(ca.server_cert(&["localhost"]))
        .with_client_certificate_mode(ClientCertificateMode::RequireCertificate)
        .with_client_certificate_validation(move |cert| {
            let cn = cert.summary().and_then(|s| s.subject_common_name);
            log.lock()
                .unwrap()
                .push((cn.clone(), cert.chain_error().is_some()));
            cn.is_some_and(|cn| cn.starts_with("trusted-"))
        });
    let server = serve(https, HttpProtocols::HTTP1, tls_app).await;
    let addr = tls_support::addr(&server);
    let other = TestCa::new();
    let (cert, key) = other.client_pem("trusted-frank");
    let ok = fetch(
        addr,
        client_config(&ca.pem, &["http/1.1"], Some((&cert, &key))),
    )
    .await;
    assert!(ok.contains("peer=trusted-frank"), "{ok}");
    let (cert, key) = other.client_pem("grace");
    let refused = fetch(
        addr,
        client_config(&ca.pem, &["http/1.1"], Some((&cert, &key))),
    )
    .await;
    assert!(!refused.contains("200 OK"), "{refused}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (Some("trusted-frank".into()), true),
            (Some("grace".into()), true)
        ],
        "the callback saw both, with no verified chain"
    );
    server.stop().await;

    // With trusted roots, the callback can still refuse a valid chain.
    let https = options(&ca, ClientCertificateMode::RequireCertificate)
        .with_client_certificate_validation(|cert| {
            cert.chain_error().is_none()
                && cert
                    .summary()
                    .and_then(|s| s.subject_common_name)
                    .as_deref()
                    != Some("heidi")
        });
    let server = serve(https, HttpProtocols::HTTP1, tls_app).await;
    let addr = tls_support::addr(&server);
    let (cert, key) = ca.client_pem("ivan");
    assert!(fetch(
        addr,
        client_config(&ca.pem, &["http/1.1"], Some((&cert, &key)))
    )
    .await
    .contains("peer=ivan"));
    let (cert, key) = ca.client_pem("heidi");
    assert!(!fetch(
        addr,
        client_config(&ca.pem, &["http/1.1"], Some((&cert, &key)))
    )
    .await
    .contains("200 OK"));
    server.stop().await;
}
