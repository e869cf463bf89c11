//! Limits that really trip, over real sockets: slowloris, silent clients,
//! minimum data rates in both directions, per-request overrides, the
//! connection-timeout feature.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use kestrel::{FeatureError, MinDataRate, RequestBody, RequestFeaturesExt};
use support::{read_to_close, read_until, start, status_of};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads the whole body and answers with its length (or the error).
async fn count_body(req: Request<RequestBody>) -> Response<Full<Bytes>> {
    if req.headers().contains_key("x-allow-slow") {
        let limits = req.features().and_then(|f| f.limits()).unwrap();
        limits
            .set_min_request_body_data_rate(Some(
                MinDataRate::new(10.0, Duration::from_millis(1500)).unwrap(),
            ))
            .unwrap();
    }
    match req.into_body().collect().await {
        Ok(b) => Response::new(Full::new(Bytes::from(format!(
            "len={}",
            b.to_bytes().len()
        )))),
        Err(e) => Response::new(Full::new(Bytes::from(format!("error={e}")))),
    }
}

#[tokio::test]
async fn slowloris_gets_408_while_others_are_served() {
    let server = start(
        |o| o.limits.request_headers_timeout = Duration::from_secs(2),
        support::hello,
    )
    .await;
    let addr = support::addr(&server);
    let slow = tokio::spawn(async move {
        let s = TcpStream::connect(addr).await.unwrap();
        let (mut rd, mut wr) = s.into_split();
        let t = Instant::now();
        let trickle = tokio::spawn(async move {
            for b in
                b"GET / HTTP/1.1\r\nHost: x\r\nX-Trickle: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            {
                if wr.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut reply))
            .await
            .ok();
        let took = t.elapsed();
        trickle.abort();
        (String::from_utf8_lossy(&reply).into_owned(), took)
    });
    // A normal client is served throughout.
    for _ in 0..10 {
        let reply = support::raw(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(status_of(&reply), 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (reply, took) = slow.await.unwrap();
    assert_eq!(status_of(&reply), 408, "{reply}");
    assert!(reply.contains("connection: close"), "{reply}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(3500),
        "{took:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_dropped() {
    let server = start(
        |o| o.limits.request_headers_timeout = Duration::from_secs(2),
        support::hello,
    )
    .await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    let t = Instant::now();
    assert_eq!(read_to_close(&mut s).await, "", "closed without a response");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(3500),
        "{took:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_connection_closes_after_the_timeout() {
    let server = start(
        |o| o.limits.keep_alive_timeout = Duration::from_secs(2),
        support::hello,
    )
    .await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut s, "Hello, World!").await;
    let t = Instant::now();
    assert_eq!(read_to_close(&mut s).await, "");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(3500),
        "{took:?}"
    );
    server.stop().await;
}

fn slow_rate() -> Option<MinDataRate> {
    Some(MinDataRate::new(1000.0, Duration::from_millis(1500)).unwrap())
}

/// Sends a 4,000-byte body at about 500 B/s; returns the reply and when
/// its status line arrived.
async fn slow_upload(addr: std::net::SocketAddr, extra_header: &str) -> (String, Duration) {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n{extra_header}Connection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let t = Instant::now();
    let writer = tokio::spawn(async move {
        for _ in 0..40 {
            if wr.write_all(&[b'x'; 100]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        wr
    });
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    let mut answered = None;
    let read = async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answered.get_or_insert(t.elapsed());
                    reply.extend_from_slice(&buf[..n]);
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .ok();
    writer.abort();
    (
        String::from_utf8_lossy(&reply).into_owned(),
        answered.unwrap_or(t.elapsed()),
    )
}

#[tokio::test]
async fn slow_upload_below_the_minimum_rate_gets_408() {
    let server = start(
        |o| o.limits.min_request_body_data_rate = slow_rate(),
        count_body,
    )
    .await;
    let addr = support::addr(&server);
    let (reply, took) = slow_upload(addr, "").await;
    assert_eq!(status_of(&reply), 408, "{reply}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(4),
        "answered after the grace period: {took:?}"
    );

    // A fast upload is unaffected.
    let body = vec![b'y'; 64 * 1024];
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let reply = support::raw(addr, &req).await;
    assert!(reply.ends_with("len=65536"), "{reply}");

    // The same slow upload passes when the request lowers its minimum rate.
    let (reply, _) = slow_upload(addr, "X-Allow-Slow: 1\r\n").await;
    assert!(reply.ends_with("len=4000"), "{reply}");
    server.stop().await;
}

/// A response body of 100 MB that counts what it produced and notes its drop.
struct Endless {
    produced: Arc<AtomicU64>,
    dropped: Arc<AtomicBool>,
}

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let done = self.produced.load(Ordering::SeqCst);
        if done >= 100_000_000 {
            return std::task::Poll::Ready(None);
        }
        self.produced.fetch_add(64 * 1024, Ordering::SeqCst);
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(vec![
            b'z';
            64 * 1024
        ])))))
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_aborted_and_memory_stays_bounded() {
    let produced = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let (p, d) = (produced.clone(), dropped.clone());
    let app = move |_req: Request<RequestBody>| {
        let body = Endless {
            produced: p.clone(),
            dropped: d.clone(),
        };
        async move { Response::new(body) }
    };
    // 1 MB/s: a write of 64 KiB may take 65 ms, or the 1.5 s grace period.
    let rate = Some(MinDataRate::new(1_000_000.0, Duration::from_millis(1500)).unwrap());
    let server = start(|o| o.limits.min_response_data_rate = rate, app).await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Never read. The server may fill the socket buffers, then must wait.
    let t = Instant::now();
    while !dropped.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        dropped.load(Ordering::SeqCst),
        "the slow reader was aborted"
    );
    let produced = produced.load(Ordering::SeqCst);
    // What the app produced = what the kernel buffers took + at most the
    // response buffer limit (64 KiB) + one 64 KiB frame: far below 100 MB.
    assert!(
        produced < 24 * 1024 * 1024,
        "the server buffered {produced} bytes for a client that reads nothing"
    );
    // The connection is gone: reading drains what the kernel held, then ends.
    let mut sink = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let drain = async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .unwrap();
    assert!(
        total < produced,
        "the response was cut short ({total} of {produced} bytes)"
    );
    server.stop().await;
}

#[tokio::test]
async fn per_request_body_size_override() {
    let app = |req: Request<RequestBody>| async move {
        let limits = req.features().and_then(|f| f.limits()).unwrap().clone();
        assert_eq!(limits.max_request_body_size(), Some(10));
        assert!(!limits.is_read_only());
        match req.uri().path() {
            "/raise" => limits.set_max_request_body_size(Some(100)).unwrap(),
            "/lower" => limits.set_max_request_body_size(Some(2)).unwrap(),
            _ => {}
        }
        let mut body = req.into_body();
        let first = body.frame().await;
        assert!(limits.is_read_only());
        assert_eq!(
            limits.set_max_request_body_size(None),
            Err(FeatureError::ReadOnly)
        );
        let mut len = 0;
        if let Some(Ok(f)) = first {
            len += f.into_data().map(|d| d.len()).unwrap_or(0);
        }
        while let Some(Ok(f)) = body.frame().await {
            len += f.into_data().map(|d| d.len()).unwrap_or(0);
        }
        Response::new(Full::new(Bytes::from(format!("len={len}"))))
    };
    let server = start(|o| o.limits.max_request_body_size = Some(10), app).await;
    let addr = support::addr(&server);
    let body = "x".repeat(50);
    let post = |path: &str, body: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    };
    let reply = support::raw(addr, post("/raise", &body).as_bytes()).await;
    assert!(
        reply.ends_with("len=50"),
        "a raised limit lets 50 bytes through: {reply}"
    );
    let reply = support::raw(addr, post("/", &body).as_bytes()).await;
    assert_eq!(status_of(&reply), 413, "{reply}");
    let reply = support::raw(addr, post("/lower", "abcde").as_bytes()).await;
    assert_eq!(
        status_of(&reply),
        413,
        "a lowered limit refuses 5 bytes: {reply}"
    );
    server.stop().await;
}

#[tokio::test]
async fn connection_timeout_feature_closes_the_connection() {
    let app = |req: Request<RequestBody>| async move {
        let info = req.features().and_then(|f| f.connection()).unwrap();
        let timeout = info.timeout().expect("served connections have the feature");
        timeout.set_timeout(Duration::from_millis(300)).unwrap();
        assert!(
            timeout.set_timeout(Duration::from_secs(1)).is_err(),
            "a second set is refused"
        );
        tokio::time::sleep(Duration::from_secs(30)).await;
        Response::new(Full::new(Bytes::new()))
    };
    let server = start(|_| {}, app).await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    assert_eq!(read_to_close(&mut s).await, "");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    server.stop().await;
}
