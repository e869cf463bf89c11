//! HTTP/2 interop with Python peers: `httpx` (http2=True, prior knowledge)
//! and the `h2` library (`tests/python/*.py`), which checks every frame the
//! server sends as it parses it. They skip loudly when a peer is missing,
//! and fail under `CI=true` (`.ci/run` installs them).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::h2client;

use std::collections::BTreeMap;

use kestrel::RunningServer;
use support::{have_python_modules, python};
use tokio::sync::mpsc;

async fn server() -> RunningServer {
    let (tx, _rx) = mpsc::unbounded_channel();
    support::start(|_| {}, h2client::app(tx)).await
}

async fn h2_peer(server: &RunningServer, mode: &str) -> BTreeMap<String, String> {
    let addr = support::addr(server);
    python(
        "h2_peer.py",
        &[mode.into(), addr.ip().to_string(), addr.port().to_string()],
    )
    .await
}

fn get<'a>(out: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    out.get(key)
        .unwrap_or_else(|| panic!("the peer printed no {key}: {out:?}"))
}

#[tokio::test]
async fn httpx_speaks_h2c_get_post_404_500_and_multiplexes() {
    if !have_python_modules(&["httpx", "h2"]) {
        return;
    }
    let server = server().await;
    let base = format!("http://{}", support::addr(&server));
    let out = python("httpx_peer.py", &[base]).await;
    assert_eq!(get(&out, "get.version"), "HTTP/2");
    assert_eq!(get(&out, "get.status"), "200");
    assert_eq!(get(&out, "get.body"), "Hello, World!");
    assert_eq!(get(&out, "get.server"), "Kestrel");
    assert_eq!(get(&out, "get.date"), "True");
    // ConnectionInfo is there, and :authority reaches the app as Host.
    assert_eq!(
        get(&out, "info.body"),
        format!("HTTP/2.0 info=true host={}", support::addr(&server))
    );
    assert_eq!(get(&out, "echo.version"), "HTTP/2");
    assert_eq!(get(&out, "echo.len"), "1048576");
    assert_eq!(get(&out, "echo.equal"), "True");
    assert_eq!(get(&out, "missing.status"), "404");
    assert_eq!(get(&out, "concurrent.ok"), "50");
    // 50 × 300 ms one after another would take 15 s: the streams of one
    // connection are served side by side.
    let ms: u64 = get(&out, "concurrent.ms").parse().unwrap();
    assert!(ms < 5_000, "50 concurrent 300 ms requests took {ms} ms");
    assert_eq!(get(&out, "error.status"), "500");
    assert_eq!(get(&out, "after_error.status"), "200");
    server.stop().await;
}

#[tokio::test]
async fn h2_library_sees_the_documented_settings_and_windows() {
    if !have_python_modules(&["h2"]) {
        return;
    }
    let server = server().await;
    let out = h2_peer(&server, "settings").await;
    assert_eq!(get(&out, "max_concurrent_streams"), "100");
    assert_eq!(get(&out, "initial_window_size"), "786432");
    assert_eq!(get(&out, "max_frame_size"), "16384");
    assert_eq!(get(&out, "header_table_size"), "4096");
    assert_eq!(get(&out, "max_header_list_size"), "32768");
    assert_eq!(get(&out, "enable_connect_protocol"), "1");
    assert_eq!(get(&out, "connection_window"), "1048576");
    assert_eq!(get(&out, "get.status"), "200");
    assert_eq!(get(&out, "get.body"), "Hello, World!");
    server.stop().await;
}

#[tokio::test]
async fn h2_library_trailers_both_ways_continue_and_no_connection_headers() {
    if !have_python_modules(&["h2"]) {
        return;
    }
    let server = server().await;
    let out = h2_peer(&server, "trailers").await;
    assert_eq!(get(&out, "collect.status"), "200");
    assert_eq!(get(&out, "collect.body"), "payload with trailers");
    // The request's trailer came back as a response trailer.
    assert_eq!(get(&out, "collect.trailer"), "42");
    assert_eq!(get(&out, "trailers.body"), "body then trailers");
    assert_eq!(get(&out, "trailers.trailer"), "yes");
    assert_eq!(get(&out, "hop.status"), "200");
    assert_eq!(get(&out, "hop.kept"), "yes");
    assert_eq!(get(&out, "hop.connection"), "absent");
    assert_eq!(get(&out, "continue.informational"), "100");
    assert_eq!(get(&out, "continue.body"), "after continue");
    server.stop().await;
}

#[tokio::test]
async fn h2_library_client_and_server_resets() {
    if !have_python_modules(&["h2"]) {
        return;
    }
    let server = server().await;
    let out = h2_peer(&server, "resets").await;
    // The cancelled stream gets nothing more, and the next one is served at
    // once rather than after the cancelled request's 5 s.
    assert_eq!(get(&out, "after_cancel.status"), "200");
    assert_eq!(get(&out, "after_cancel.body"), "Hello, World!");
    let ms: u64 = get(&out, "after_cancel.ms").parse().unwrap();
    assert!(ms < 4_000, "the request after the cancel took {ms} ms");
    assert_eq!(get(&out, "cancelled.status"), "None");
    // `StreamReset::reset(0x7)` in the app: RST_STREAM REFUSED_STREAM.
    assert_eq!(get(&out, "server_reset.code"), "7");
    assert_eq!(get(&out, "server_reset.status"), "None");
    assert_eq!(get(&out, "after_reset.status"), "200");
    assert_eq!(get(&out, "goaway"), "None");
    server.stop().await;
}

#[tokio::test]
async fn h2_library_flow_control_both_ways() {
    if !have_python_modules(&["h2"]) {
        return;
    }
    let server = server().await;
    let out = h2_peer(&server, "flow").await;
    // The client's SETTINGS_INITIAL_WINDOW_SIZE is 16 KiB: the server sends
    // exactly that much, then waits for WINDOW_UPDATE.
    assert_eq!(get(&out, "stalled_at"), "16384");
    assert_eq!(get(&out, "echo.len"), "100000");
    assert_eq!(get(&out, "echo.equal"), "True");
    assert_eq!(get(&out, "upload.len"), "2097152");
    assert_eq!(get(&out, "upload.equal"), "True");
    server.stop().await;
}
