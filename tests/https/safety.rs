//! HTTPS safety: the handshake timeout drops silent and stalled clients, a
//! plain-HTTP request gets 400 and a close, only TLS 1.2 and 1.3 are
//! accepted (`openssl s_client`), failures are logged at debug level, and
//! HTTPS works over a Unix socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::tls as tls_support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kestrel::tls::{HttpsOptions, ListenOptionsHttpsExt, TlsVersion};
use kestrel::{HttpProtocols, KestrelServer, KestrelServerOptions};
use support::{curl, have_tool, read_to_close};
use tls_support::{client_config, https_get, run, s, serve, tls_app, TestCa};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Logs captured from this thread (the test's current-thread runtime runs
/// the server's tasks too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

fn https(ca: &TestCa) -> HttpsOptions {
    HttpsOptions::new().with_certificate(ca.server_cert(&["localhost"]))
}

async fn wait_no_connections(server: &kestrel::RunningServer) {
    for _ in 0..100 {
        if server.live_connections() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("connections left: {}", server.live_connections());
}

#[tokio::test]
async fn handshake_timeout_drops_silent_and_stalled_clients() {
    let (logs, _guard) = capture_logs();
    let ca = TestCa::new();
    let timeout = Duration::from_millis(400);
    let server = serve(
        https(&ca).with_handshake_timeout(timeout),
        HttpProtocols::HTTP1,
        tls_app,
    )
    .await;
    let addr = tls_support::addr(&server);

    // Connects and sends nothing.
    let start = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let got = read_to_close(&mut silent).await;
    let elapsed = start.elapsed();
    assert!(got.is_empty(), "{got}");
    assert!(
        elapsed >= timeout - Duration::from_millis(50),
        "closed too early: {elapsed:?}"
    );
    assert!(
        elapsed < timeout + Duration::from_secs(2),
        "closed too late: {elapsed:?}"
    );

    // Sends the start of a ClientHello, then stalls.
    let start = Instant::now();
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ])
        .await
        .unwrap();
    let got = read_to_close(&mut stalled).await;
    let elapsed = start.elapsed();
    assert!(got.is_empty(), "{got:?}");
    assert!(
        elapsed >= timeout - Duration::from_millis(50),
        "closed too early: {elapsed:?}"
    );
    assert!(
        elapsed < timeout + Duration::from_secs(2),
        "closed too late: {elapsed:?}"
    );
    wait_no_connections(&server).await;

    // A real client is still served.
    let ok = https_get(
        addr,
        "localhost",
        client_config(&ca.pem, &["http/1.1"], None),
    )
    .await
    .unwrap();
    assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
    server.stop().await;

    let logs = logs.text();
    assert_eq!(
        logs.matches("authentication of the HTTPS connection timed out")
            .count(),
        2,
        "{logs}"
    );
    for line in logs.lines().filter(|l| l.contains("kestrel::tls")) {
        assert!(
            line.contains("DEBUG"),
            "TLS failures are logged at debug: {line}"
        );
    }
}

#[tokio::test]
async fn plain_http_to_the_https_port_gets_400_and_a_close() {
    let (logs, _guard) = capture_logs();
    let ca = TestCa::new();
    let server = serve(https(&ca), HttpProtocols::HTTP1, tls_app).await;
    let addr = tls_support::addr(&server);
    let response = support::raw(addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
    assert!(response.contains("\r\nConnection: close\r\n"), "{response}");
    assert!(
        response.ends_with("The plain HTTP request was sent to an HTTPS port."),
        "{response}"
    );
    wait_no_connections(&server).await;
    if have_tool("curl") {
        let out = curl(&["-i", &format!("http://{addr}/")]).await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    }
    server.stop().await;
    let logs = logs.text();
    let line = logs
        .lines()
        .find(|l| l.contains("plain HTTP"))
        .unwrap_or_else(|| panic!("no log line about plain HTTP:\n{logs}"));
    assert!(line.contains("DEBUG"), "{line}");
    assert!(!logs.contains("ERROR"), "{logs}");
}

#[tokio::test]
async fn openssl_s_client_tls13_tls12_and_no_tls11() {
    if !have_tool("openssl") {
        return;
    }
    let ca = TestCa::new();
    let server = serve(https(&ca), HttpProtocols::HTTP1, tls_app).await;
    let connect_to = format!("127.0.0.1:{}", tls_support::addr(&server).port());
    let s_client = |version: &'static str| {
        let connect_to = connect_to.clone();
        let ca_path = ca.ca_path();
        async move {
            let out = run(
                "openssl",
                &[
                    "s_client",
                    "-connect",
                    &connect_to,
                    "-servername",
                    "localhost",
                    "-CAfile",
                    s(&ca_path),
                    version,
                    "-cipher",
                    "DEFAULT:@SECLEVEL=0",
                    "-ign_eof",
                ],
                b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .await;
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        }
    };
    let (ok, text) = s_client("-tls1_3").await;
    assert!(
        ok && text.contains("New, TLSv1.3, Cipher is TLS_"),
        "{text}"
    );
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    assert!(
        text.contains("tls=TLSv1_3"),
        "the app answered over TLS 1.3: {text}"
    );
    let (ok, text) = s_client("-tls1_2").await;
    assert!(
        ok && text.contains("New, TLSv1.2, Cipher is ECDHE-"),
        "{text}"
    );
    assert!(text.contains("tls=TLSv1_2"), "{text}");
    let (ok, text) = s_client("-tls1_1").await;
    assert!(!ok, "TLS 1.1 must be refused: {text}");
    assert!(!text.contains("New, TLSv1.1"), "{text}");
    // The client did offer TLS 1.1 (SECLEVEL=0); the *server* refused it with an alert.
    assert!(
        text.contains("alert protocol version") || text.contains("alert handshake failure"),
        "{text}"
    );
    server.stop().await;

    // TLS 1.3 only.
    let server = serve(
        https(&ca).with_min_protocol_version(TlsVersion::Tls13),
        HttpProtocols::HTTP1,
        tls_app,
    )
    .await;
    let connect_to = format!("127.0.0.1:{}", tls_support::addr(&server).port());
    let out = run(
        "openssl",
        &["s_client", "-connect", &connect_to, "-tls1_2"],
        b"",
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("New, TLSv1.2"), "{text}");
    server.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn https_over_a_unix_socket_with_curl() {
    if !have_tool("curl") {
        return;
    }
    let ca = TestCa::new();
    let sock = ca.path("kestrel.sock");
    let mut options = KestrelServerOptions::default();
    let https = https(&ca);
    options.listen_unix_socket(&sock, |l| {
        l.protocols = HttpProtocols::HTTP1;
        l.use_https(https);
    });
    let server = KestrelServer::new(options).start(tls_app).await.unwrap();
    let out = curl(&[
        "--unix-socket",
        s(&sock),
        "--cacert",
        s(&ca.ca_path()),
        "https://localhost/",
    ])
    .await;
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(body.contains("tls=TLSv1_3 sni=localhost"), "{body}");
    server.stop().await;
}
