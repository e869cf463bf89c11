//! Server lifecycle over real sockets: the connection limit, app failures,
//! timeouts that really elapse, streaming uploads, and graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use kestrel::RequestBody;
use support::{raw, read_to_close, read_until, start, status_of};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn connection_over_the_limit_is_closed_at_once() {
    let server = start(
        |o| o.limits.max_concurrent_connections = Some(2),
        support::hello,
    )
    .await;
    let addr = support::addr(&server);
    let mut a = TcpStream::connect(addr).await.unwrap();
    let mut b = TcpStream::connect(addr).await.unwrap();
    // Both admitted connections work.
    for s in [&mut a, &mut b] {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        read_until(s, "Hello, World!").await;
    }
    // The third is closed without a response.
    let mut c = TcpStream::connect(addr).await.unwrap();
    let _ = c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(
        read_to_close(&mut c).await,
        "",
        "the (N+1)th connection gets no response"
    );
    assert_eq!(server.rejected_connections(), 1);
    // Once one closes, a new connection is admitted again.
    drop(a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reply = raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&reply), 200, "{reply}");
    server.stop().await;
}

#[tokio::test]
async fn app_panic_gives_500_and_the_server_keeps_serving() {
    let app = |req: Request<RequestBody>| async move {
        if req.uri().path() == "/panic" {
            panic!("the app blew up");
        }
        Response::new(Full::new(Bytes::from_static(b"fine")))
    };
    let server = start(|_| {}, app).await;
    let addr = support::addr(&server);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let reply = read_until(&mut s, "\r\n\r\n").await;
    assert!(
        reply.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
        "{reply}"
    );
    assert!(
        reply.contains("content-length: 0\r\n"),
        "an empty body: {reply}"
    );
    // The same connection serves the next request.
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let reply = read_to_close(&mut s).await;
    assert!(reply.ends_with("fine"), "{reply}");
    server.stop().await;
}

/// A body that yields one chunk, then panics.
struct PanicsAfterFirst(bool);

impl http_body::Body for PanicsAfterFirst {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.0 {
            panic!("panic in the middle of the body");
        }
        this.0 = true;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(vec![
            b'x';
            100_000
        ])))))
    }
}

#[tokio::test]
async fn failure_after_the_response_started_aborts_the_connection() {
    let app = |_req: Request<RequestBody>| async { Response::new(PanicsAfterFirst(false)) };
    let server = start(|_| {}, app).await;
    let reply = raw(support::addr(&server), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.contains("transfer-encoding: chunked"), "{reply}");
    assert!(
        !reply.ends_with("0\r\n\r\n"),
        "the chunked body must not be terminated"
    );
    // And the server still serves.
    let reply = raw(
        support::addr(&server),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&reply), 200);
    server.stop().await;
}

#[tokio::test]
async fn content_length_mismatch() {
    let app = |req: Request<RequestBody>| async move {
        let (len, body): (&str, &'static [u8]) = match req.uri().path() {
            "/short" => ("10", b"abc"),
            _ => ("2", b"abcdef"),
        };
        Response::builder()
            .header("content-length", len)
            .body(Full::new(Bytes::from_static(body)))
            .unwrap()
    };
    let server = start(|_| {}, app).await;
    let reply = raw(
        support::addr(&server),
        b"GET /short HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        status_of(&reply),
        500,
        "too few bytes and nothing sent yet: 500\n{reply}"
    );
    let reply = raw(
        support::addr(&server),
        b"GET /long HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.ends_with("\r\n\r\nab"),
        "only Content-Length bytes are sent, then close: {reply:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn request_headers_timeout_gives_408_even_for_a_trickling_client() {
    let server = start(
        |o| o.limits.request_headers_timeout = Duration::from_millis(400),
        support::hello,
    )
    .await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    let t = Instant::now();
    // Trickle one byte every 100 ms: a per-read timeout would never fire.
    let mut reply = String::new();
    for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            reply.push_str(&String::from_utf8_lossy(&buf[..n]));
            if n == 0 || reply.contains("\r\n\r\n") {
                break;
            }
        }
    }
    reply.push_str(&read_to_close(&mut s).await);
    assert_eq!(status_of(&reply), 408, "{reply}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    server.stop().await;
}

#[tokio::test]
async fn ten_megabyte_upload_streams_through_without_buffering_whole() {
    let largest = Arc::new(AtomicUsize::new(0));
    let frames = Arc::new(AtomicU64::new(0));
    let (l, f) = (largest.clone(), frames.clone());
    let app = move |req: Request<RequestBody>| {
        let (l, f) = (l.clone(), f.clone());
        async move {
            let mut body = req.into_body();
            let mut total = 0u64;
            while let Some(frame) = body.frame().await {
                let data = frame.unwrap().into_data().unwrap();
                l.fetch_max(data.len(), Ordering::SeqCst);
                f.fetch_add(1, Ordering::SeqCst);
                total += data.len() as u64;
            }
            Response::new(Full::new(Bytes::from(total.to_string())))
        }
    };
    let server = start(|_| {}, app).await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    let size = 10_000_000usize;
    s.write_all(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0;
    while sent < size {
        let n = chunk.len().min(size - sent);
        s.write_all(&chunk[..n]).await.unwrap();
        sent += n;
    }
    let reply = read_to_close(&mut s).await;
    assert!(reply.ends_with(&size.to_string()), "{reply}");
    let largest = largest.load(Ordering::SeqCst);
    assert!(
        largest <= 1024 * 1024,
        "a frame of {largest} bytes: the body was buffered"
    );
    assert!(
        frames.load(Ordering::SeqCst) > 10,
        "the body arrived in many frames"
    );
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_requests_finish() {
    let started = Arc::new(tokio::sync::Notify::new());
    let s2 = started.clone();
    let app = move |req: Request<RequestBody>| {
        let s2 = s2.clone();
        async move {
            if req.uri().path() == "/slow" {
                s2.notify_one();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Response::new(Full::new(Bytes::from_static(b"done")))
        }
    };
    let server = start(|_| {}, app).await;
    let addr = support::addr(&server);
    // An idle keep-alive connection, which shutdown closes at once.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut idle, "done").await;

    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    started.notified().await;
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // New connections are refused while the slow request finishes.
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
    assert_eq!(
        read_to_close(&mut idle).await,
        "",
        "the idle connection is closed"
    );
    let reply = read_to_close(&mut slow).await;
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(
        reply.contains("connection: close"),
        "in-flight responses get Connection: close: {reply}"
    );
    assert!(reply.ends_with("done"), "{reply}");
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_timeout_aborts_stuck_requests() {
    let app = |_req: Request<RequestBody>| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Response::new(Full::new(Bytes::new()))
    };
    let server = start(|o| o.shutdown_timeout = Duration::from_millis(200), app).await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    server.stop().await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(
        read_to_close(&mut s).await,
        "",
        "the stuck request is aborted"
    );
}

/// A connection closing after a rejected request lingers to drain the
/// client's input (so the 400 is not lost to a reset). If the client keeps
/// its socket open, a shutdown's abort must still end it at once, so the
/// stop returns soon after its timeout instead of waiting out the abort
/// grace while the connection keeps its place.
#[tokio::test]
async fn abort_ends_a_connection_lingering_after_a_rejected_request() {
    let server = start(|_| {}, support::hello).await;
    let addr = support::addr(&server);
    let mut client = TcpStream::connect(addr).await.unwrap();
    // No Host header: 400, then the server closes its side and lingers.
    client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let reply = read_until(&mut client, "\r\n\r\n").await;
    assert_eq!(status_of(&reply), 400, "{reply}");
    // The client keeps its socket open and sends nothing more.
    let started = Instant::now();
    server.stop_with_timeout(Duration::from_millis(200)).await;
    let took = started.elapsed();
    // The drain timeout (5 s) must not hold the stop: the abort ends the
    // linger at once (1.2 s would mean the one-second abort grace ran out).
    assert!(
        took < Duration::from_millis(1_000),
        "stop took {took:?}: the lingering connection ignored the abort"
    );
}
