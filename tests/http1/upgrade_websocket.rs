//! Opaque upgrades: a WebSocket echo through the upgrade with a real client,
//! and the upgraded-connection accounting.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::{read_until, start, status_of};
use tokio::io::AsyncWriteExt;

/// Send `req` and return the response head (the connection stays open).
async fn head_of(addr: std::net::SocketAddr, req: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(req).await.unwrap();
    read_until(&mut s, "\r\n\r\n").await
}
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn websocket_echo_through_the_upgrade() {
    let server = start(|_| {}, kestrel_demo::app).await;
    let url = format!("ws://{}/ws", support::addr(&server));
    let (mut ws, resp) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(resp.status(), 101);
    for text in ["hello", "kestrel", &"x".repeat(100_000)] {
        ws.send(Message::text(text)).await.unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_data().as_ref(),
        &[1u8, 2, 3]
    );
    ws.close(None).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn upgraded_connections_have_their_own_limit() {
    let server = start(
        |o| {
            o.limits.max_concurrent_upgraded_connections = Some(1);
            o.limits.max_concurrent_connections = Some(1);
        },
        kestrel_demo::app,
    )
    .await;
    let addr = support::addr(&server);
    let url = format!("ws://{addr}/ws");
    let (mut first, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The upgraded connection left the normal count: a normal connection is
    // still admitted under max_concurrent_connections = 1 ...
    let reply = head_of(addr, b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await;
    // ... and its upgrade is refused while the first is open: the app answers normally.
    assert_eq!(status_of(&reply), 503, "{reply}");
    first.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        first
            .next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "still here"
    );
    first.close(None).await.unwrap();
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut second, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("the place was freed");
    second.send(Message::text("again")).await.unwrap();
    assert_eq!(
        second
            .next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "again"
    );
    second.close(None).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn shutdown_aborts_an_open_upgraded_connection_after_the_timeout() {
    let server = start(
        |o| o.shutdown_timeout = Duration::from_millis(300),
        kestrel_demo::app,
    )
    .await;
    let url = format!("ws://{}/ws", support::addr(&server));
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Message::text("ping")).await.unwrap();
    assert_eq!(
        ws.next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "ping"
    );
    let t = std::time::Instant::now();
    server.stop().await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "stop waited {:?}",
        t.elapsed()
    );
    // The server side is gone: the client's stream ends.
    let next = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    assert!(!matches!(next, Some(Ok(Message::Text(_)))), "{next:?}");
}

#[tokio::test]
async fn a_101_without_accepting_the_upgrade_is_an_error() {
    let app = |_req: http::Request<kestrel::RequestBody>| async {
        let mut r = http::Response::new(http_body_util::Empty::<bytes::Bytes>::new());
        *r.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
        r
    };
    let server = start(|_| {}, app).await;
    let reply = head_of(
        support::addr(&server),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: foo\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&reply), 500, "{reply}");
    server.stop().await;
}
