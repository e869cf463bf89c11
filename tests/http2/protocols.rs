//! Protocol selection on cleartext endpoints (Http1, Http2, Http1AndHttp2)
//! and HTTP/2 graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::h2client;
use kestrel_test_support::h2wire;

use std::time::{Duration, Instant};

use h2client::{app, connect, get};
use h2wire::*;
use http::StatusCode;
use kestrel::HttpProtocols;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

fn test_app() -> impl kestrel::Application {
    let (tx, _rx) = mpsc::unbounded_channel();
    app(tx)
}

async fn start_with(protocols: HttpProtocols) -> kestrel::RunningServer {
    support::start(
        move |o| {
            o.configure_endpoint_defaults(move |l| l.protocols = protocols);
        },
        test_app(),
    )
    .await
}

#[tokio::test]
async fn an_http2_only_endpoint_answers_http1_with_kestrels_raw_400() {
    let server = start_with(HttpProtocols::HTTP2).await;
    let addr = support::addr(&server);
    let response = support::raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(
        response,
        "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\n\
         Content-Length: 56\r\n\r\nAn HTTP/1.x request was sent to an HTTP/2 only endpoint."
    );
    // Prior knowledge works.
    let mut send = connect(addr).await;
    let (resp, body) = get(&mut send, "/").await.expect("GET / over h2c");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(&body[..], b"Hello, World!");
    server.stop().await;
}

#[tokio::test]
async fn an_http1_only_endpoint_answers_the_preface_with_goaway_http_1_1_required() {
    let server = start_with(HttpProtocols::HTTP1).await;
    let addr = support::addr(&server);
    let mut w = Wire::connect(addr).await;
    let frames = w.drain().await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].kind, GOAWAY);
    assert_eq!(frames[0].goaway(), (0, HTTP_1_1_REQUIRED));
    // HTTP/1.1 is served.
    let response = support::raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(support::status_of(&response), 200, "{response}");
    server.stop().await;
}

#[tokio::test]
async fn the_default_endpoint_serves_http1_and_http2_on_one_port() {
    let server = support::start(|_| {}, test_app()).await;
    let addr = support::addr(&server);
    let response = support::raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(support::status_of(&response), 200, "{response}");
    assert!(response.ends_with("Hello, World!"), "{response}");
    // A request that starts like the preface but is not one (POST, PUT).
    let response = support::raw(
        addr,
        b"PUT /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(support::status_of(&response), 404, "{response}");
    let mut send = connect(addr).await;
    let (resp, _) = get(&mut send, "/info").await.expect("GET over h2c");
    assert_eq!(resp.status(), StatusCode::OK);
    // The preface in small pieces still selects HTTP/2.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    for piece in PREFACE.chunks(5) {
        s.write_all(piece).await.expect("write");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.write_all(&settings(&[])).await.expect("write");
    let mut w = Wire::over(s);
    let first = w.next().await.expect("a frame");
    assert_eq!(first.kind, SETTINGS, "the server speaks HTTP/2");
    server.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_dropped_at_the_request_headers_timeout() {
    let server = support::start(
        |o| o.limits.request_headers_timeout = Duration::from_millis(300),
        test_app(),
    )
    .await;
    let mut s = TcpStream::connect(support::addr(&server))
        .await
        .expect("connect");
    let started = Instant::now();
    let out = support::read_to_close(&mut s).await;
    assert!(out.is_empty(), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_sends_two_goaways_and_finishes_the_stream_in_flight() {
    let server = support::start(|_| {}, test_app()).await;
    let mut w = Wire::connect(support::addr(&server)).await;
    w.send(&get_headers(1, "/slow?ms=1000", true)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stop = tokio::spawn(server.stop());
    let frames = w.drain().await;
    let kinds: Vec<(u8, u32)> = frames.iter().map(|f| (f.kind, f.stream)).collect();
    let goaways: Vec<(u32, u32)> = frames
        .iter()
        .filter(|f| f.kind == GOAWAY)
        .map(Frame::goaway)
        .collect();
    assert_eq!(
        goaways,
        [(0x7fff_ffff, NO_ERROR), (1, NO_ERROR)],
        "GOAWAY(2^31-1), then GOAWAY(last stream id): {kinds:?}"
    );
    // h2 sends the second GOAWAY one round trip after the first (when its
    // PING is answered), not when the streams are done: the stream in
    // flight is answered after the first GOAWAY, and the connection closes
    // once it is complete.
    let first_goaway = frames.iter().position(|f| f.kind == GOAWAY).unwrap();
    let response = frames
        .iter()
        .position(|f| f.kind == HEADERS && f.stream == 1)
        .expect("the in-flight stream was answered");
    assert!(first_goaway < response, "{kinds:?}");
    assert!(frames
        .iter()
        .any(|f| f.kind == DATA && f.stream == 1 && f.flags & END_STREAM != 0));
    tokio::time::timeout(Duration::from_secs(10), stop)
        .await
        .expect("the server stopped")
        .expect("join");
}

#[tokio::test]
async fn streams_still_running_at_the_shutdown_timeout_are_aborted() {
    let server = support::start(
        |o| o.shutdown_timeout = Duration::from_millis(300),
        test_app(),
    )
    .await;
    let mut w = Wire::connect(support::addr(&server)).await;
    w.send(&get_headers(1, "/slow?ms=20000", true)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let stop = tokio::spawn(server.stop());
    let frames = w.drain().await;
    let goaways: Vec<(u32, u32)> = frames
        .iter()
        .filter(|f| f.kind == GOAWAY)
        .map(Frame::goaway)
        .collect();
    assert_eq!(
        goaways.first(),
        Some(&(0x7fff_ffff, NO_ERROR)),
        "{goaways:?}"
    );
    assert_eq!(
        goaways.last().map(|g| g.1),
        Some(INTERNAL_ERROR),
        "the abort is a GOAWAY INTERNAL_ERROR: {goaways:?}"
    );
    assert!(!frames.iter().any(|f| f.kind == HEADERS), "no response");
    tokio::time::timeout(Duration::from_secs(5), stop)
        .await
        .expect("the server stopped")
        .expect("join");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
