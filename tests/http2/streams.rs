//! HTTP/2 requests and responses with the `h2` client over h2c prior
//! knowledge: bodies, trailers, `100 Continue`, concurrency, errors and resets.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::h2client;

use std::future::poll_fn;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2client::{app, connect, get, read_body, request};
use http::{HeaderMap, StatusCode, Version};
use tokio::sync::mpsc;

async fn server() -> (
    kestrel::RunningServer,
    mpsc::UnboundedReceiver<Result<Bytes, String>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    (support::start(|_| {}, app(tx)).await, rx)
}

#[tokio::test]
async fn get_and_post_over_prior_knowledge() {
    let (server, _) = server().await;
    let mut send = connect(support::addr(&server)).await;

    let (resp, body) = get(&mut send, "/").await.expect("GET /");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(&body[..], b"Hello, World!");
    assert_eq!(resp.headers()["server"], "Kestrel");
    assert!(resp.headers().contains_key("date"));
    assert_eq!(resp.headers()["content-length"], "13");

    let (_, body) = get(&mut send, "/info").await.expect("GET /info");
    assert_eq!(&body[..], b"HTTP/2.0 info=true host=localhost");

    // POST with a body of several frames, streamed back.
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (resp, mut tx) = send
        .send_request(request("POST", "/echo"), false)
        .expect("send");
    for chunk in payload.chunks(30_000) {
        tx.reserve_capacity(chunk.len());
        tx.send_data(Bytes::copy_from_slice(chunk), false)
            .expect("data");
    }
    tx.send_data(Bytes::new(), true).expect("end");
    let resp = resp.await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let (body, _) = read_body(resp.into_body()).await.expect("body");
    assert_eq!(body.len(), payload.len());
    assert!(body[..] == payload[..], "the echo matches");
    server.stop().await;
}

#[tokio::test]
async fn request_and_response_trailers() {
    let (server, _) = server().await;
    let mut send = connect(support::addr(&server)).await;
    let (resp, mut tx) = send
        .send_request(request("POST", "/collect"), false)
        .expect("send");
    tx.send_data(Bytes::from_static(b"with trailers"), false)
        .expect("data");
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", "abc123".parse().expect("value"));
    tx.send_trailers(trailers).expect("trailers");
    let resp = resp.await.expect("response");
    let (body, trailers) = read_body(resp.into_body()).await.expect("body");
    assert_eq!(&body[..], b"with trailers");
    let trailers = trailers.expect("response trailers");
    assert_eq!(trailers["x-checksum"], "abc123");
    server.stop().await;
}

#[tokio::test]
async fn expect_100_continue_is_answered_when_the_body_is_read() {
    let (server, _) = server().await;
    let mut send = connect(support::addr(&server)).await;
    let mut req = request("POST", "/collect");
    req.headers_mut()
        .insert("expect", "100-continue".parse().expect("value"));
    let (mut resp, mut tx) = send.send_request(req, false).expect("send");
    // The client sends nothing until it sees 100.
    let informational = tokio::time::timeout(
        Duration::from_secs(5),
        poll_fn(|cx| resp.poll_informational(cx)),
    )
    .await
    .expect("a 100 within 5 s")
    .expect("an informational response")
    .expect("no error");
    assert_eq!(informational.status(), StatusCode::CONTINUE);
    tx.send_data(Bytes::from_static(b"after continue"), true)
        .expect("data");
    let resp = resp.await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    let (body, _) = read_body(resp.into_body()).await.expect("body");
    assert_eq!(&body[..], b"after continue");
    server.stop().await;
}

#[tokio::test]
async fn a_slow_stream_does_not_block_the_others() {
    let (server, _) = server().await;
    let mut send = connect(support::addr(&server)).await;
    let (slow, _) = send
        .send_request(request("GET", "/slow?ms=3000"), true)
        .expect("send");
    let started = Instant::now();
    // Many quick streams on the same connection, concurrently.
    let mut quick = Vec::new();
    for _ in 0..50 {
        let (resp, _) = send.send_request(request("GET", "/"), true).expect("send");
        quick.push(resp);
    }
    for resp in quick {
        let resp = resp.await.expect("quick response");
        let (body, _) = read_body(resp.into_body()).await.expect("body");
        assert_eq!(&body[..], b"Hello, World!");
    }
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the quick streams finished before the slow one ({:?})",
        started.elapsed()
    );
    let slow = slow.await.expect("slow response");
    let (body, _) = read_body(slow.into_body()).await.expect("body");
    assert_eq!(&body[..], b"slept 3000");
    server.stop().await;
}

#[tokio::test]
async fn app_errors_become_500_or_a_stream_reset() {
    let (server, _) = server().await;
    let mut send = connect(support::addr(&server)).await;
    let (resp, _) = get(&mut send, "/panic").await.expect("a response");
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let (resp, _) = get(&mut send, "/error").await.expect("a response");
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);

    // After the response started: RST_STREAM INTERNAL_ERROR.
    let (resp, _) = send
        .send_request(request("GET", "/fail-late"), true)
        .expect("send");
    let resp = resp.await.expect("headers were sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let err = read_body(resp.into_body())
        .await
        .expect_err("the body is cut");
    assert_eq!(err.reason(), Some(h2::Reason::INTERNAL_ERROR), "{err}");
    // A panic in the body after its first chunk: the same reset (it may
    // reach the client before it reads the headers).
    let err = get(&mut send, "/panic-late")
        .await
        .expect_err("the stream is reset");
    assert_eq!(err.reason(), Some(h2::Reason::INTERNAL_ERROR), "{err}");

    // The connection is still fine.
    let (resp, body) = get(&mut send, "/").await.expect("GET / after the failures");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(&body[..], b"Hello, World!");
    server.stop().await;
}

#[tokio::test]
async fn the_app_can_reset_its_stream() {
    let (server, _) = server().await;
    let mut send = connect(support::addr(&server)).await;
    let err = get(&mut send, "/reset")
        .await
        .expect_err("the stream is reset");
    assert_eq!(err.reason(), Some(h2::Reason::REFUSED_STREAM), "{err}");
    let (resp, _) = get(&mut send, "/").await.expect("the connection lives on");
    assert_eq!(resp.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn a_client_reset_fails_the_apps_body_reads() {
    let (server, mut reports) = server().await;
    let mut send = connect(support::addr(&server)).await;
    let (resp, mut tx) = send
        .send_request(request("POST", "/read-after-reset"), false)
        .expect("send");
    tx.send_data(Bytes::from_static(b"part of a body"), false)
        .expect("data");
    tokio::time::sleep(Duration::from_millis(200)).await;
    tx.send_reset(h2::Reason::CANCEL);
    drop(resp);
    let outcome = tokio::time::timeout(Duration::from_secs(5), reports.recv())
        .await
        .expect("the app's body read ended within 5 s")
        .expect("a report");
    assert_eq!(outcome, Err("ConnectionAborted".to_string()));
    server.stop().await;
}

#[tokio::test]
async fn connection_specific_response_headers_are_removed() {
    let (server, _) = server().await;
    let mut send = connect(support::addr(&server)).await;
    let (resp, body) = get(&mut send, "/hop")
        .await
        .expect("a valid HTTP/2 response");
    assert_eq!(&body[..], b"hop");
    for name in [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "te",
    ] {
        assert!(!resp.headers().contains_key(name), "{name} was removed");
    }
    assert_eq!(resp.headers()["x-kept"], "yes");
    server.stop().await;
}
