//! HTTP/2 interop with real clients: curl (`--http2-prior-knowledge`) and
//! h2load (nghttp2). They skip loudly when missing, and fail under `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::h2client;

use std::process::Command;

use support::{curl, have_tool};
use tokio::sync::mpsc;

async fn server() -> kestrel::RunningServer {
    let (tx, _rx) = mpsc::unbounded_channel();
    support::start(|_| {}, h2client::app(tx)).await
}

#[tokio::test]
async fn curl_http2_prior_knowledge_get_post_trailers_and_continue() {
    if !have_tool("curl") {
        return;
    }
    let server = server().await;
    let base = format!("http://{}", support::addr(&server));

    let out = curl(&["--http2-prior-knowledge", "-i", &format!("{base}/")]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("HTTP/2 200"), "{text}");
    assert!(text.contains("server: Kestrel"), "{text}");
    assert!(text.ends_with("Hello, World!"), "{text}");

    let out = curl(&[
        "--http2-prior-knowledge",
        "--data-binary",
        "hello over h2c",
        &format!("{base}/echo"),
    ])
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello over h2c");

    // Response trailers are written with the headers (-D -).
    let out = curl(&[
        "--http2-prior-knowledge",
        "-D",
        "-",
        &format!("{base}/trailers"),
    ])
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("body then trailers"), "{text}");
    assert!(text.contains("x-trailer: yes"), "{text}");

    // Expect: 100-continue is answered with :status 100 when the app reads.
    let out = curl(&[
        "--http2-prior-knowledge",
        "-v",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        "continued",
        &format!("{base}/collect"),
    ])
    .await;
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("< HTTP/2 100"), "{log}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "continued");

    // The same port serves HTTP/1.1.
    let out = curl(&["-i", &format!("{base}/")]).await;
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("HTTP/1.1 200"));
    server.stop().await;
}

#[tokio::test]
async fn h2load_20000_requests_10_connections_10_streams_none_fail() {
    if !have_tool("h2load") {
        return;
    }
    let server = server().await;
    let url = format!("http://{}/", support::addr(&server));
    let out = tokio::task::spawn_blocking(move || {
        Command::new("h2load")
            .args(["-n20000", "-c10", "-m10", &url])
            .output()
            .expect("run h2load")
    })
    .await
    .expect("join");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(
            "requests: 20000 total, 20000 started, 20000 done, 20000 succeeded, 0 failed, 0 errored, 0 timeout"
        ),
        "{text}"
    );
    assert!(text.contains("status codes: 20000 2xx"), "{text}");
    server.stop().await;
}
