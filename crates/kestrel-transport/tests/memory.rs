//! The in-memory transport.

use std::time::Duration;

use kestrel_transport::memory::memory_listener;
use kestrel_transport::{Address, Listener, ListenerExt, TransportKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn connect_accept_and_exchange_bytes() {
    let (mut listener, connector) = memory_listener("app");
    assert_eq!(listener.local_addr(), &Address::Memory("app".into()));
    assert_eq!(connector.name(), "app");

    let mut client = connector.connect().await.expect("connect");
    let mut conn = listener.accept().await.expect("accept");
    assert_eq!(conn.kind, TransportKind::Memory);
    assert_eq!(conn.local_addr, Address::Memory("app".into()));
    assert_eq!(conn.remote_addr, Address::Memory("app#1".into()));

    client
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 18];
    conn.io.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"GET / HTTP/1.1\r\n\r\n");

    conn.io
        .write_all(b"HTTP/1.1 200 OK\r\n")
        .await
        .expect("write");
    conn.io.shutdown().await.expect("shutdown");
    drop(conn);
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).await.expect("read to end");
    assert_eq!(reply, b"HTTP/1.1 200 OK\r\n");
}

#[tokio::test]
async fn connections_queue_and_are_numbered() {
    let (mut listener, connector) = memory_listener("q");
    let other = connector.clone();
    let mut c1 = connector.connect().await.expect("connect 1");
    let mut c2 = other.connect().await.expect("connect 2");
    let mut s1 = listener.accept().await.expect("accept 1");
    let mut s2 = listener.accept().await.expect("accept 2");
    assert_eq!(s1.remote_addr, Address::Memory("q#1".into()));
    assert_eq!(s2.remote_addr, Address::Memory("q#2".into()));

    // Each connection is its own pipe, in connect order.
    c1.write_all(b"one").await.expect("write");
    c2.write_all(b"two").await.expect("write");
    let mut buf = [0u8; 3];
    s1.io.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"one");
    s2.io.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"two");
}

#[tokio::test]
async fn connect_after_listener_dropped_is_refused() {
    let (listener, connector) = memory_listener("gone");
    assert!(!connector.is_closed());
    drop(listener);
    assert!(connector.is_closed());
    let err = connector.connect().await.expect_err("must be refused");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn queued_connection_sees_eof_when_listener_dropped() {
    let (listener, connector) = memory_listener("drop");
    let mut client = connector.connect().await.expect("connect");
    drop(listener);
    let mut buf = Vec::new();
    let n = client.read_to_end(&mut buf).await.expect("read");
    assert_eq!(n, 0, "the never-accepted connection is closed");
}

#[tokio::test]
async fn accept_stays_pending_when_all_connectors_dropped() {
    let (mut listener, connector) = memory_listener("idle");
    drop(connector);
    let res = tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
    assert!(res.is_err(), "accept must stay pending, got {res:?}");
}

#[tokio::test]
async fn accept_wakes_up_when_a_client_connects_later() {
    let (mut listener, connector) = memory_listener("later");
    let task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut c = connector.connect().await.expect("connect");
        c.write_all(b"x").await.expect("write");
        c
    });
    let mut conn = listener.accept().await.expect("accept");
    let mut b = [0u8; 1];
    conn.io.read_exact(&mut b).await.expect("read");
    assert_eq!(&b, b"x");
    task.await.expect("join");
}

#[tokio::test]
async fn connect_with_capacity_limits_buffering() {
    let (mut listener, connector) = memory_listener("small");
    let mut client = connector.connect_with_capacity(4).await.expect("connect");
    let mut conn = listener.accept().await.expect("accept");

    // Only 4 bytes fit before the writer must wait for the reader.
    let blocked =
        tokio::time::timeout(Duration::from_millis(50), client.write_all(b"12345678")).await;
    assert!(
        blocked.is_err(),
        "a write larger than the capacity must wait"
    );

    let writer = tokio::spawn(async move {
        client.write_all(b"abcdefgh").await.expect("write");
        client
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16];
    while buf.len() < 12 {
        let n = conn.io.read(&mut chunk).await.expect("read");
        assert!(n > 0);
        assert!(n <= 4, "never more than the capacity at once");
        buf.extend_from_slice(&chunk[..n]);
    }
    // The timed-out write got its first 4 bytes in; then the spawned write.
    assert_eq!(&buf, b"1234abcdefgh");
    writer.await.expect("join");
}
