//! HTTP/2 limits and attacks: the SETTINGS the server sends, MAX_CONCURRENT_STREAMS,
//! header count and pseudo-header length, request body size, rapid reset,
//! keep-alive timeout and keep-alive PING — each tripped by a real peer.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::h2client;
use kestrel_test_support::h2wire;

use std::time::{Duration, Instant};

use bytes::Bytes;
use h2client::{app, connect, get, read_body, request};
use h2wire::*;
use http::StatusCode;
use tokio::sync::mpsc;

fn test_app() -> impl kestrel::Application {
    let (tx, _rx) = mpsc::unbounded_channel();
    app(tx)
}

#[tokio::test]
async fn settings_come_from_the_limits_not_from_h2s_defaults() {
    let server = support::start(|_| {}, test_app()).await;
    let mut w = Wire::connect(support::addr(&server)).await;
    let settings = w
        .until(|f| f.kind == SETTINGS && f.flags & ACK == 0)
        .await
        .expect("the server's SETTINGS");
    let s = settings.settings();
    let get = |id: u16| s.iter().find(|(i, _)| *i == id).map(|(_, v)| *v);
    assert_eq!(get(0x1), Some(4096), "HEADER_TABLE_SIZE: {s:?}");
    assert_eq!(get(0x3), Some(100), "MAX_CONCURRENT_STREAMS: {s:?}");
    assert_eq!(get(0x4), Some(768 * 1024), "INITIAL_WINDOW_SIZE: {s:?}");
    assert_eq!(get(0x5), Some(16_384), "MAX_FRAME_SIZE: {s:?}");
    assert_eq!(get(0x6), Some(32 * 1024), "MAX_HEADER_LIST_SIZE: {s:?}");
    // The connection window grows to 1 MiB right after SETTINGS.
    let update = w
        .until(|f| f.kind == WINDOW_UPDATE && f.stream == 0)
        .await
        .expect("a connection WINDOW_UPDATE");
    assert_eq!(update.code(), 1024 * 1024 - 65_535);

    // Non-default limits reach the wire too.
    let custom = support::start(
        |o| {
            o.limits.http2.max_streams_per_connection = 7;
            o.limits.http2.max_frame_size = 32 * 1024;
            o.limits.http2.header_table_size = 0;
            o.limits.max_request_headers_total_size = 8 * 1024;
        },
        test_app(),
    )
    .await;
    let mut w = Wire::connect(support::addr(&custom)).await;
    let s = w
        .until(|f| f.kind == SETTINGS && f.flags & ACK == 0)
        .await
        .expect("SETTINGS")
        .settings();
    assert!(s.contains(&(0x3, 7)), "{s:?}");
    assert!(s.contains(&(0x5, 32 * 1024)), "{s:?}");
    assert!(s.contains(&(0x1, 0)), "{s:?}");
    assert!(s.contains(&(0x6, 8 * 1024)), "{s:?}");
    server.stop().await;
    custom.stop().await;
}

#[tokio::test]
async fn streams_over_max_concurrent_streams_are_refused() {
    let server = support::start(
        |o| o.limits.http2.max_streams_per_connection = 2,
        test_app(),
    )
    .await;
    let mut w = Wire::connect(support::addr(&server)).await;
    // Three slow requests at once, without waiting for the SETTINGS ACK.
    for id in [1, 3, 5] {
        w.send(&get_headers(id, "/slow?ms=2000", true)).await;
    }
    let refused = w
        .until(|f| f.kind == RST_STREAM)
        .await
        .expect("a RST_STREAM");
    assert_eq!(refused.stream, 5);
    assert_eq!(refused.code(), REFUSED_STREAM);
    // The first two are served.
    let mut served = Vec::new();
    while served.len() < 2 {
        let f = w
            .until(|f| f.kind == HEADERS)
            .await
            .expect("response headers");
        served.push(f.stream);
    }
    served.sort();
    assert_eq!(served, [1, 3]);
    server.stop().await;
}

#[tokio::test]
async fn too_many_headers_get_431_and_long_pseudo_headers_a_reset() {
    let server = support::start(|o| o.limits.max_request_header_count = 10, test_app()).await;
    let mut send = connect(support::addr(&server)).await;
    let mut req = request("GET", "/");
    for i in 0..11 {
        req.headers_mut().insert(
            format!("x-h{i}")
                .as_str()
                .parse::<http::HeaderName>()
                .unwrap(),
            "v".parse().unwrap(),
        );
    }
    let (resp, _) = send.send_request(req, true).expect("send");
    let resp = resp.await.expect("a response");
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    // 10 headers are fine.
    let mut req = request("GET", "/");
    for i in 0..10 {
        req.headers_mut().insert(
            format!("x-h{i}")
                .as_str()
                .parse::<http::HeaderName>()
                .unwrap(),
            "v".parse().unwrap(),
        );
    }
    let (resp, _) = send.send_request(req, true).expect("send");
    assert_eq!(resp.await.expect("a response").status(), StatusCode::OK);

    // :method + :scheme + :authority + :path over max_request_line_size (8 KiB).
    let long = format!("/{}", "a".repeat(9000));
    let err = get(&mut send, &long)
        .await
        .expect_err("the stream is reset");
    assert_eq!(err.reason(), Some(h2::Reason::PROTOCOL_ERROR), "{err}");
    let (resp, _) = get(&mut send, "/").await.expect("the connection lives on");
    assert_eq!(resp.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn request_bodies_over_the_limit_get_413() {
    let server = support::start(|o| o.limits.max_request_body_size = Some(1000), test_app()).await;
    let mut send = connect(support::addr(&server)).await;

    // Declared too large: refused at the first read.
    let mut req = request("POST", "/collect");
    req.headers_mut()
        .insert("content-length", "5000".parse().unwrap());
    let (resp, mut tx) = send.send_request(req, false).expect("send");
    tx.send_data(Bytes::from(vec![b'x'; 1000]), false)
        .expect("data");
    let resp = resp.await.expect("a response");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Undeclared, streamed past the limit.
    let (resp, mut tx) = send
        .send_request(request("POST", "/collect"), false)
        .expect("send");
    for _ in 0..5 {
        tx.reserve_capacity(600);
        tx.send_data(Bytes::from(vec![b'y'; 600]), false)
            .expect("data");
    }
    let resp = resp.await.expect("a response");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Under the limit: fine.
    let (resp, mut tx) = send
        .send_request(request("POST", "/collect"), false)
        .expect("send");
    tx.send_data(Bytes::from(vec![b'z'; 999]), true)
        .expect("data");
    let resp = resp.await.expect("a response");
    assert_eq!(resp.status(), StatusCode::OK);
    let (body, _) = read_body(resp.into_body()).await.expect("body");
    assert_eq!(body.len(), 999);

    // Once the response has started (a streamed echo), the stream is reset.
    let (resp, mut tx) = send
        .send_request(request("POST", "/echo"), false)
        .expect("send");
    tx.send_data(Bytes::from(vec![b'e'; 800]), false)
        .expect("data");
    let resp = resp.await.expect("the echo started");
    assert_eq!(resp.status(), StatusCode::OK);
    tx.reserve_capacity(800);
    tx.send_data(Bytes::from(vec![b'e'; 800]), false)
        .expect("data");
    let err = read_body(resp.into_body())
        .await
        .expect_err("the echo is cut");
    assert!(err.is_reset(), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn rapid_reset_is_answered_with_goaway_enhance_your_calm() {
    let server = support::start(|_| {}, test_app()).await;
    let addr = support::addr(&server);
    let mut w = Wire::connect(addr).await;
    // HEADERS + RST_STREAM, again and again, in one burst (CVE-2023-44487).
    let mut burst = Vec::new();
    for i in 0..1000u32 {
        let id = 2 * i + 1;
        burst.extend(get_headers(id, "/slow?ms=5000", true));
        burst.extend(rst(id, CANCEL));
    }
    let started = Instant::now();
    w.send(&burst).await;
    let goaway = w
        .until(|f| f.kind == GOAWAY)
        .await
        .expect("a GOAWAY before the connection closes");
    assert_eq!(goaway.goaway().1, ENHANCE_YOUR_CALM);
    assert!(w
        .drain()
        .await
        .iter()
        .all(|f| f.kind != HEADERS || f.stream < 2000));
    assert!(started.elapsed() < Duration::from_secs(5));

    // A well-behaved client is still served.
    let mut send = connect(addr).await;
    let (resp, body) = get(&mut send, "/").await.expect("GET /");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(&body[..], b"Hello, World!");
    server.stop().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_with_goaway_after_the_keep_alive_timeout() {
    let server = support::start(
        |o| o.limits.keep_alive_timeout = Duration::from_millis(300),
        test_app(),
    )
    .await;
    let mut w = Wire::connect(support::addr(&server)).await;
    // One request, then silence.
    w.send(&get_headers(1, "/", true)).await;
    let started = Instant::now();
    let goaway = w.until(|f| f.kind == GOAWAY).await.expect("a GOAWAY");
    assert_eq!(goaway.goaway(), (1, NO_ERROR));
    w.drain().await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // A stream in progress keeps the connection open past the timeout.
    let mut send = connect(support::addr(&server)).await;
    let (resp, body) = get(&mut send, "/slow?ms=1200").await.expect("slow GET");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(&body[..], b"slept 1200");
    server.stop().await;
}

#[tokio::test]
async fn an_unanswered_keep_alive_ping_closes_the_connection() {
    let server = support::start(
        |o| {
            o.limits.http2.keep_alive_ping_delay = Some(Duration::from_secs(1));
            o.limits.http2.keep_alive_ping_timeout = Duration::from_millis(500);
        },
        test_app(),
    )
    .await;
    let mut w = Wire::connect(support::addr(&server)).await;
    let started = Instant::now();
    let mut pinged = false;
    let goaway = loop {
        let f = w.next().await.expect("frames until GOAWAY");
        match f.kind {
            // Never answer a PING.
            PING if f.flags & ACK == 0 => pinged = true,
            SETTINGS if f.flags & ACK == 0 => w.send(&frame(SETTINGS, ACK, 0, &[])).await,
            GOAWAY => break f,
            _ => {}
        }
    };
    assert!(pinged, "the server pinged first");
    assert_eq!(goaway.goaway().1, INTERNAL_ERROR);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );

    // A client that answers pings stays connected.
    let mut w = Wire::connect(support::addr(&server)).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut pings = 0;
    while Instant::now() < deadline {
        if let Ok(f) = w.next_within(Duration::from_millis(200)).await {
            let f = f.expect("the connection stays open");
            assert_ne!(f.kind, GOAWAY, "a client answering pings is kept");
            if f.kind == PING && f.flags & ACK == 0 {
                pings += 1;
            }
            w.ack(&f).await;
        }
    }
    assert!(pings >= 1, "pinged at least once in 3 s");
    server.stop().await;
}

/// A raw connection whose SETTINGS exchange is done, so that no ACK of
/// ours lands inside a header block (where only CONTINUATION may come).
async fn settled(addr: std::net::SocketAddr) -> Wire {
    let mut w = Wire::connect(addr).await;
    let s = w
        .until(|f| f.kind == SETTINGS && f.flags & ACK == 0)
        .await
        .expect("the server's SETTINGS");
    w.ack(&s).await;
    w
}

#[tokio::test]
async fn an_unfinished_header_block_is_closed_at_the_request_headers_timeout() {
    let server = support::start(
        |o| {
            o.limits.request_headers_timeout = Duration::from_millis(400);
            o.limits.keep_alive_timeout = Duration::from_secs(30);
        },
        test_app(),
    )
    .await;
    let addr = support::addr(&server);
    let mut w = settled(addr).await;
    // HEADERS without END_HEADERS, and then nothing: the CONTINUATION never
    // comes (slowloris on a header block).
    let block = request_block("GET", "/", &[]);
    let first = &block[..5];
    w.send(&frame(HEADERS, END_STREAM, 1, first)).await;
    let started = Instant::now();
    let goaway = w.until(|f| f.kind == GOAWAY).await.expect("a GOAWAY");
    let waited = started.elapsed();
    // GOAWAY INTERNAL_ERROR, naming no stream (the block never completed).
    assert_eq!(goaway.goaway(), (0, INTERNAL_ERROR));
    assert!(w.drain().await.iter().all(|f| f.kind != HEADERS));
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // A block completed within the deadline is served; the deadline is
    // disarmed with it (the request's 1 s outlives the 400 ms).
    let mut w = settled(addr).await;
    w.send(&frame(
        HEADERS,
        END_STREAM,
        1,
        &request_block("GET", "/slow?ms=1000", &[])[..5],
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    w.send(&frame(
        CONTINUATION,
        END_HEADERS,
        1,
        &request_block("GET", "/slow?ms=1000", &[])[5..],
    ))
    .await;
    let served = w
        .until(|f| f.kind == DATA && f.stream == 1)
        .await
        .expect("the request is served");
    assert_eq!(served.payload, b"slept 1000");
    // A second block on the same connection gets its own deadline.
    w.send(&frame(HEADERS, END_STREAM, 3, first)).await;
    let goaway = w.until(|f| f.kind == GOAWAY).await.expect("a GOAWAY");
    assert_eq!(goaway.goaway(), (1, INTERNAL_ERROR));

    // A single HEADERS frame with END_HEADERS whose payload trickles in:
    // the block is open until the whole frame is read.
    let mut w = settled(addr).await;
    let whole = frame(HEADERS, END_HEADERS | END_STREAM, 1, &block);
    w.send(&whole[..12]).await;
    let started = Instant::now();
    for b in &whole[12..16] {
        tokio::time::sleep(Duration::from_millis(150)).await;
        w.send(&[*b]).await;
    }
    let goaway = w.until(|f| f.kind == GOAWAY).await.expect("a GOAWAY");
    assert_eq!(goaway.goaway(), (0, INTERNAL_ERROR));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_header_block_in_progress_outlives_the_keep_alive_timeout() {
    // Kestrel: once HEADERS arrives, the request-headers deadline replaces
    // the keep-alive one.
    let server = support::start(
        |o| {
            o.limits.request_headers_timeout = Duration::from_secs(2);
            o.limits.keep_alive_timeout = Duration::from_millis(300);
        },
        test_app(),
    )
    .await;
    let mut w = settled(support::addr(&server)).await;
    let block = request_block("GET", "/", &[]);
    w.send(&frame(HEADERS, END_STREAM, 1, &block[..5])).await;
    // Past the keep-alive timeout, well within the request-headers one.
    tokio::time::sleep(Duration::from_millis(900)).await;
    w.send(&frame(CONTINUATION, END_HEADERS, 1, &block[5..]))
        .await;
    let served = w
        .until(|f| f.kind == DATA && f.stream == 1)
        .await
        .expect("the request is served, not closed by the keep-alive timeout");
    assert_eq!(served.payload, b"Hello, World!");
    server.stop().await;
}
