//! HTTP/3 with a third, C implementation: Debian's `ngtcp2-client`
//! (`gtlsclient`, ngtcp2 + nghttp3 on GnuTLS) against a `KestrelServer`
//! serving the demo app: a 1 MiB POST to `/echo` downloaded back intact,
//! eight GETs on one connection, and the QUIC transport parameters the
//! server announced, as the client decoded them (Kestrel's
//! `QuicTransportOptions` defaults: 100 bidirectional and 10 unidirectional
//! streams, 1 MiB per stream, the 130 s keep-alive timeout as the idle
//! timeout). The example client does not verify the certificate; aioquic
//! (`http3_aioquic.rs`) and Chromium (`chromium.rs`) do. Skips loudly
//! without `gtlsclient`; fails under `CI=true` (`.ci/run` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::tls as tls_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kestrel::tls::HttpsOptions;
use kestrel::{HttpProtocols, KestrelServer, KestrelServerOptions};
use tls_support::TestCa;

async fn start(ca: &TestCa) -> kestrel::RunningServer {
    use kestrel::tls::ListenOptionsHttpsExt;
    let mut options = KestrelServerOptions::default();
    options.listen((std::net::Ipv4Addr::LOCALHOST, 0), |l| {
        l.protocols = HttpProtocols::HTTP1_AND_HTTP2_AND_HTTP3;
        l.use_https(HttpsOptions::new().with_certificate(ca.server_cert(&["localhost"])));
    });
    KestrelServer::new(options)
        .heartbeat_interval(Duration::from_millis(50))
        .start(kestrel_demo::app)
        .await
        .expect("server starts")
}

/// Run `gtlsclient` (bounded by `timeout 30`) in `dir`; its debug log (on
/// stderr) is where it prints headers and transport parameters.
async fn gtlsclient(dir: &Path, args: Vec<String>) -> String {
    let dir = dir.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg("30")
            .arg("gtlsclient")
            .args([
                "--exit-on-all-streams-close",
                "--no-quic-dump",
                "--no-http-dump",
                "--sni",
                "localhost",
            ])
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("run gtlsclient")
    })
    .await
    .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "gtlsclient failed ({}): {}",
        out.status,
        &log[log.len().saturating_sub(4000)..]
    );
    log
}

/// The lines of the client's log about the HTTP layer and the handshake
/// (its packet-level lines left out).
fn http_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.starts_with("http:")
                || l.starts_with("Negotiated")
                || l.starts_with("HTTP stream")
                || l.contains("remote transport_parameters")
        })
        .collect()
}

#[tokio::test]
async fn ngtcp2_client_posts_1_mib_and_gets_on_one_connection() {
    if !support::have_tool("gtlsclient") {
        return;
    }
    let ca = TestCa::new();
    let server = start(&ca).await;
    let addr = tls_support::addr(&server);
    let port = addr.port().to_string();
    let origin = format!("https://localhost:{port}");
    let dir = tempfile::tempdir().unwrap();

    // A 1 MiB POST to /echo, the response body saved to downloads/echo.
    let payload: Vec<u8> = (0..1024 * 1024u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(dir.path().join("body.bin"), &payload).unwrap();
    std::fs::create_dir(dir.path().join("downloads")).unwrap();
    let log = gtlsclient(
        dir.path(),
        vec![
            "--download".into(),
            "downloads".into(),
            "-m".into(),
            "POST".into(),
            "-d".into(),
            "body.bin".into(),
            "127.0.0.1".into(),
            port.clone(),
            format!("{origin}/echo"),
        ],
    )
    .await;
    let lines = http_lines(&log);
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(has("Negotiated ALPN is h3"), "{lines:#?}");
    assert!(has("http: stream 0x0 [:status: 200]"), "{lines:#?}");
    assert!(has("http: stream 0x0 [server: Kestrel]"), "{lines:#?}");
    assert!(has("[content-length: 1048576]"), "{lines:#?}");
    // The stream ended cleanly: H3_NO_ERROR (0x100 = 256).
    assert!(
        has("HTTP stream 0 closed with error code 256"),
        "{lines:#?}"
    );
    let echoed = std::fs::read(dir.path().join("downloads/echo")).unwrap();
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload, "the echoed body differs");

    // The transport parameters the server announced: Kestrel's defaults.
    for (name, value) in [
        ("initial_max_streams_bidi", "100"),
        ("initial_max_streams_uni", "10"),
        ("initial_max_stream_data_bidi_remote", "1048576"),
        ("initial_max_data", "4194304"),
        ("max_idle_timeout", "130000"),
    ] {
        let param = format!("remote transport_parameters {name}={value}");
        assert!(has(&param), "{param}: {lines:#?}");
    }

    // Eight GETs of the sample page on one connection (streams 0, 4, … 28).
    let log = gtlsclient(
        dir.path(),
        vec![
            "-n".into(),
            "8".into(),
            "127.0.0.1".into(),
            port.clone(),
            format!("{origin}/"),
        ],
    )
    .await;
    let lines = http_lines(&log);
    for stream in 0..8 {
        let id = stream * 4;
        let ok = format!("http: stream {id:#x} [:status: 200]");
        assert!(lines.iter().any(|l| l.contains(&ok)), "{ok}: {lines:#?}");
        let closed = format!("HTTP stream {id} closed with error code 256");
        assert!(
            lines.iter().any(|l| l.contains(&closed)),
            "{closed}: {lines:#?}"
        );
    }
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("the server stops");
}
