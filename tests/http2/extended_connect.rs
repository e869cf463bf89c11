//! HTTP/2 extended CONNECT (RFC 8441): the SETTINGS that allows it,
//! WebSockets over an HTTP/2 stream against the demo's echo (a real
//! tokio-tungstenite client on an `h2` client stream), refusals, the
//! upgraded count, and malformed requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::h2client;
use kestrel_test_support::h2wire;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use h2client::{connect, extended_connect, get, read_body, H2Io};
use h2wire::*;
use http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;

/// Open a WebSocket to the demo's `/ws` over one HTTP/2 stream.
async fn websocket(
    send: &mut h2::client::SendRequest<bytes::Bytes>,
) -> (http::Response<()>, WebSocketStream<H2Io>) {
    let (resp, tx, rx) = extended_connect(send, "/ws", "websocket")
        .await
        .expect("an answer to the extended CONNECT");
    let ws = WebSocketStream::from_raw_socket(H2Io::new(tx, rx), Role::Client, None).await;
    (resp, ws)
}

async fn echo_text(ws: &mut WebSocketStream<H2Io>, text: &str) -> String {
    ws.send(Message::text(text)).await.expect("send");
    let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("an echo within 10 s")
        .expect("a message")
        .expect("a valid message");
    msg.into_text().expect("text").as_str().to_owned()
}

/// The closing handshake, then the end of the stream.
async fn close(mut ws: WebSocketStream<H2Io>) {
    ws.close(None).await.expect("close");
    tokio::time::timeout(Duration::from_secs(10), async {
        while ws.next().await.is_some() {}
    })
    .await
    .expect("the stream ends after the close handshake");
}

fn extended_connect_headers(stream: u32, fields: &[(&str, &str)]) -> Vec<u8> {
    frame(HEADERS, END_HEADERS, stream, &header_block(fields))
}

#[tokio::test]
async fn settings_advertise_enable_connect_protocol_unless_turned_off() {
    let server = support::start(|_| {}, kestrel_demo::app).await;
    let mut w = Wire::connect(support::addr(&server)).await;
    let s = w
        .until(|f| f.kind == SETTINGS && f.flags & ACK == 0)
        .await
        .expect("the server's SETTINGS")
        .settings();
    assert!(s.contains(&(ENABLE_CONNECT_PROTOCOL, 1)), "{s:?}");
    server.stop().await;

    let off = support::start(
        |o| o.limits.http2.enable_connect_protocol = false,
        kestrel_demo::app,
    )
    .await;
    let mut w = Wire::connect(support::addr(&off)).await;
    let s = w
        .until(|f| f.kind == SETTINGS && f.flags & ACK == 0)
        .await
        .expect("the server's SETTINGS")
        .settings();
    assert!(
        !s.iter().any(|(id, _)| *id == ENABLE_CONNECT_PROTOCOL),
        "{s:?}"
    );
    // Without the setting, :protocol is a malformed request (RFC 8441 §3).
    w.send(&extended_connect_headers(
        1,
        &[
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "http"),
            (":authority", "localhost"),
            (":path", "/ws"),
        ],
    ))
    .await;
    let rst = w
        .until(|f| f.kind == RST_STREAM || f.kind == HEADERS)
        .await
        .expect("an answer");
    assert_eq!((rst.kind, rst.stream), (RST_STREAM, 1));
    assert_eq!(rst.code(), PROTOCOL_ERROR);
    off.stop().await;
}

#[tokio::test]
async fn websocket_echo_over_an_http2_stream() {
    let server = support::start(|_| {}, kestrel_demo::app).await;
    let mut send = connect(support::addr(&server)).await;
    let (resp, mut ws) = websocket(&mut send).await;
    // 200, not 101 (RFC 8441 §5); HTTP/1.1's handshake headers are gone.
    assert_eq!(resp.status(), StatusCode::OK);
    for name in [
        "upgrade",
        "connection",
        "sec-websocket-accept",
        "content-length",
    ] {
        assert!(!resp.headers().contains_key(name), "{name}: {resp:?}");
    }
    assert!(resp.headers().contains_key("date"));

    for text in ["hello", "kestrel", &"x".repeat(300_000)] {
        assert_eq!(echo_text(&mut ws, text).await, text);
    }
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert!(echoed.is_binary());
    assert_eq!(echoed.into_data().as_ref(), &[1u8, 2, 3]);

    // The connection serves ordinary requests next to the open WebSocket.
    let (page, body) = get(&mut send, "/").await.expect("a page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("Hosted by Kestrel"));
    assert_eq!(echo_text(&mut ws, "still open").await, "still open");

    // A clean close: the server answers the close frame, then ends the stream.
    ws.close(None).await.expect("close");
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        let mut rest = Vec::new();
        while let Some(m) = ws.next().await {
            rest.push(m);
        }
        rest
    })
    .await
    .expect("the stream ends after the close handshake");
    assert!(
        rest.iter().all(|m| matches!(m, Ok(Message::Close(_)))),
        "{rest:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_refused_extended_connect_is_an_ordinary_response() {
    let app = |req: http::Request<kestrel::RequestBody>| async move {
        if req.uri().path() == "/101-without-accepting" {
            let mut r = http::Response::new(kestrel_demo::DemoBody::Left(Default::default()));
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            return r;
        }
        kestrel_demo::app(req).await
    };
    let server = support::start(|_| {}, app).await;
    let mut send = connect(support::addr(&server)).await;
    // The demo refuses a protocol other than websocket with a 400 and a body.
    let (resp, _tx, rx) = extended_connect(&mut send, "/ws", "chat").await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (body, _) = read_body(rx).await.expect("the refusal's body");
    assert_eq!(&body[..], b"a WebSocket handshake is expected here\n");
    // A path that does not upgrade answers as it would any method it does not allow.
    let (resp, _tx, rx) = extended_connect(&mut send, "/", "websocket").await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    read_body(rx).await.expect("a complete response");
    // 101 without accepting the upgrade is an application error, as on HTTP/1.1.
    let (resp, _tx, _rx) = extended_connect(&mut send, "/101-without-accepting", "websocket")
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // The connection is fine afterwards.
    let (resp, mut ws) = websocket(&mut send).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(echo_text(&mut ws, "after").await, "after");
    close(ws).await;
    server.stop().await;
}

#[tokio::test]
async fn websocket_streams_count_toward_max_concurrent_upgraded_connections() {
    let server = support::start(
        |o| o.limits.max_concurrent_upgraded_connections = Some(1),
        kestrel_demo::app,
    )
    .await;
    let addr = support::addr(&server);
    let mut send = connect(addr).await;
    let (resp, mut first) = websocket(&mut send).await;
    assert_eq!(resp.status(), StatusCode::OK);
    // A second WebSocket, on the same HTTP/2 connection or over HTTP/1.1,
    // is over the limit: the demo answers 503.
    let (resp, _tx, _rx) = extended_connect(&mut send, "/ws", "websocket")
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let http1 = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await;
    match http1 {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE)
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    assert_eq!(echo_text(&mut first, "still here").await, "still here");
    // Closing the first WebSocket frees the place.
    close(first).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut second = loop {
        let (resp, ws) = websocket(&mut send).await;
        if resp.status() == StatusCode::OK {
            break ws;
        }
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(Instant::now() < deadline, "the place was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(echo_text(&mut second, "again").await, "again");
    close(second).await;
    server.stop().await;
}

#[tokio::test]
async fn a_websocket_has_no_body_size_limit_and_keeps_its_connection_alive() {
    let server = support::start(
        |o| {
            o.limits.max_request_body_size = Some(16);
            o.limits.keep_alive_timeout = Duration::from_millis(200);
        },
        kestrel_demo::app,
    )
    .await;
    let mut send = connect(support::addr(&server)).await;
    let (resp, mut ws) = websocket(&mut send).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let big = "y".repeat(64 * 1024);
    assert_eq!(echo_text(&mut ws, &big).await, big);
    // Past the keep-alive timeout with no request but the open stream: the
    // stream is active, so the connection stays.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(echo_text(&mut ws, "awake").await, "awake");
    close(ws).await;
    server.stop().await;
}

#[tokio::test]
async fn malformed_extended_connect_requests_are_reset() {
    let server = support::start(|_| {}, kestrel_demo::app).await;
    let mut w = Wire::connect(support::addr(&server)).await;
    let cases: [(u32, &[(&str, &str)]); 5] = [
        // :protocol on a method other than CONNECT (RFC 8441 §4).
        (
            1,
            &[
                (":method", "GET"),
                (":protocol", "websocket"),
                (":scheme", "http"),
                (":authority", "localhost"),
                (":path", "/ws"),
            ],
        ),
        // Extended CONNECT without :path.
        (
            3,
            &[
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "http"),
                (":authority", "localhost"),
            ],
        ),
        // Extended CONNECT without :scheme.
        (
            5,
            &[
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":authority", "localhost"),
                (":path", "/ws"),
            ],
        ),
        // A plain CONNECT with :path (RFC 9113 §8.5: only :method and :authority).
        (
            7,
            &[
                (":method", "CONNECT"),
                (":authority", "localhost:443"),
                (":path", "/"),
            ],
        ),
        // A plain CONNECT without :authority (RFC 9113 §8.5).
        (9, &[(":method", "CONNECT")]),
    ];
    for (id, fields) in cases {
        w.send(&frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &header_block(fields),
        ))
        .await;
        let f = w
            .until(|f| f.kind == RST_STREAM || f.kind == HEADERS || f.kind == GOAWAY)
            .await
            .expect("an answer");
        assert_eq!((f.kind, f.stream), (RST_STREAM, id), "case {id}: {f:?}");
        assert_eq!(f.code(), PROTOCOL_ERROR, "case {id}");
    }
    // The connection still serves a well-formed request.
    w.send(&get_headers(11, "/", true)).await;
    let f = w
        .until(|f| f.kind == HEADERS || f.kind == GOAWAY)
        .await
        .expect("a response");
    assert_eq!((f.kind, f.stream), (HEADERS, 11));
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_an_open_http2_websocket_after_the_timeout() {
    let server = support::start(
        |o| o.shutdown_timeout = Duration::from_millis(300),
        kestrel_demo::app,
    )
    .await;
    let mut send = connect(support::addr(&server)).await;
    let (_, mut ws) = websocket(&mut send).await;
    assert_eq!(echo_text(&mut ws, "ping").await, "ping");
    let t = Instant::now();
    server.stop().await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        t.elapsed()
    );
    let next = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the WebSocket ends with the server");
    assert!(!matches!(next, Some(Ok(Message::Text(_)))), "{next:?}");
}
