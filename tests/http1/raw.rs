//! HTTP/1.1 over raw sockets: pipelining, framing, smuggling rules, limits,
//! and what reaches the app (nothing, for a rejected request).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use kestrel::RequestBody;
use support::{raw, start, status_of};

/// An app that records each request line it sees and echoes the body length.
fn recording_app(seen: Arc<std::sync::Mutex<Vec<String>>>) -> impl kestrel::Application {
    move |req: Request<RequestBody>| {
        let seen = seen.clone();
        async move {
            seen.lock()
                .unwrap()
                .push(format!("{} {}", req.method(), req.uri()));
            let body = req.into_body().collect().await.map(|b| b.to_bytes());
            match body {
                Ok(b) => Response::new(Full::new(Bytes::from(format!("len={}", b.len())))),
                Err(e) => Response::new(Full::new(Bytes::from(format!("error={e}")))),
            }
        }
    }
}

#[tokio::test]
async fn pipelined_requests_answer_in_order() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let server = start(|_| {}, recording_app(seen.clone())).await;
    let reply = raw(
        support::addr(&server),
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(reply.matches("HTTP/1.1 200 OK").count(), 3, "{reply}");
    let p1 = reply.find("len=0").unwrap();
    let p2 = reply.find("len=3").unwrap();
    assert!(p1 < p2, "{reply}");
    assert_eq!(*seen.lock().unwrap(), vec!["GET /1", "POST /2", "GET /3"]);
    assert!(reply.contains("connection: close"), "{reply}");
    server.stop().await;
}

/// Each smuggling vector is answered with its status, the connection closes,
/// and the request smuggled behind it never reaches the app.
#[tokio::test]
async fn smuggling_vectors_are_rejected_and_close() {
    let cases: &[(&str, u16)] = &[
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nabcdef", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nabcde", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
        // The final coding is checked first (RFC 9112 §6.3): not chunked → 400.
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400),
        // An unknown coding before a final chunked → 501.
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n", 501),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
        ("POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("POST / HTTP/1.0\r\nHost: x\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400),
        ("GET / HTTP/1.1\nHost: x\n\n", 400),
        ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        ("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("GET x.example:443 HTTP/1.1\r\nHost: x.example:443\r\n\r\n", 405),
    ];
    for (req, status) in cases {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let server = start(|_| {}, recording_app(seen.clone())).await;
        let smuggled = format!("{req}GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
        let reply = raw(support::addr(&server), smuggled.as_bytes()).await;
        assert_eq!(status_of(&reply), *status, "request {req:?} got:\n{reply}");
        assert_eq!(
            reply.matches("HTTP/1.1").count(),
            1,
            "exactly one response for {req:?}:\n{reply}"
        );
        assert!(
            reply.to_ascii_lowercase().contains("connection: close"),
            "{reply}"
        );
        let seen = seen.lock().unwrap().clone();
        assert!(
            !seen.iter().any(|s| s.contains("smuggled")),
            "the app saw a smuggled request for {req:?}: {seen:?}"
        );
        assert!(
            seen.is_empty() || *status == 400 && req.contains("ZZ"),
            "the app saw a rejected request {req:?}: {seen:?}"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn method_not_allowed_for_target_forms_carries_allow() {
    let server = start(|_| {}, support::hello).await;
    let reply = raw(support::addr(&server), b"GET * HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("allow: options"),
        "{reply}"
    );
    let reply = raw(
        support::addr(&server),
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&reply), 200, "{reply}");
    server.stop().await;
}

#[tokio::test]
async fn head_limits_give_414_and_431() {
    let server = start(|_| {}, support::hello).await;
    let addr = support::addr(&server);
    let long_target = "a".repeat(9000);
    let reply = raw(
        addr,
        format!("GET /{long_target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status_of(&reply), 414, "{reply}");
    let big = "b".repeat(33 * 1024);
    let reply = raw(
        addr,
        format!("GET / HTTP/1.1\r\nHost: x\r\nBig: {big}\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status_of(&reply), 431, "{reply}");
    let many: String = (0..101).map(|i| format!("H{i}: v\r\n")).collect();
    let reply = raw(
        addr,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status_of(&reply), 431, "{reply}");
    let hundred: String = (0..98).map(|i| format!("H{i}: v\r\n")).collect();
    let reply = raw(
        addr,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{hundred}Connection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status_of(&reply), 200, "100 headers are allowed: {reply}");
    server.stop().await;
}

#[tokio::test]
async fn body_size_limit_gives_413() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let server = start(
        |o| o.limits.max_request_body_size = Some(10),
        recording_app(seen.clone()),
    )
    .await;
    let addr = support::addr(&server);
    let reply = raw(
        addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
    )
    .await;
    assert_eq!(status_of(&reply), 413, "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("connection: close"),
        "{reply}"
    );
    let reply = raw(
        addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(
        status_of(&reply),
        413,
        "chunked bodies are counted as they stream: {reply}"
    );
    let reply = raw(
        addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
    )
    .await;
    assert!(
        reply.contains("len=10"),
        "exactly the limit is fine: {reply}"
    );
    server.stop().await;
}

#[tokio::test]
async fn http10_and_http12() {
    let server = start(|_| {}, support::hello).await;
    let addr = support::addr(&server);
    let reply = raw(addr, b"GET / HTTP/1.0\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.ends_with("Hello, World!"), "{reply}");
    let reply = raw(
        addr,
        b"GET / HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&reply), 200, "HTTP/1.2 is served as 1.1: {reply}");
    server.stop().await;
}

/// A body of two frames, "one" and "two", with no known length.
struct TwoFrames(u8);

impl http_body::Body for TwoFrames {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        this.0 += 1;
        std::task::Poll::Ready(match this.0 {
            1 => Some(Ok(http_body::Frame::data(Bytes::from_static(b"one")))),
            2 => Some(Ok(http_body::Frame::data(Bytes::from_static(b"two")))),
            _ => None,
        })
    }
}

#[tokio::test]
async fn http10_streaming_response_is_close_delimited() {
    let app = |_req: Request<RequestBody>| async { Response::new(TwoFrames(0)) };
    let server = start(|_| {}, app).await;
    let reply = raw(
        support::addr(&server),
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    )
    .await;
    let lower = reply.to_ascii_lowercase();
    assert!(!lower.contains("transfer-encoding"), "{reply}");
    assert!(!lower.contains("content-length"), "{reply}");
    assert!(lower.contains("connection: close"), "{reply}");
    assert!(reply.ends_with("onetwo"), "{reply}");
    let reply = raw(
        support::addr(&server),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{reply}"
    );
    assert!(
        reply.ends_with("3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n"),
        "{reply}"
    );
    server.stop().await;
}

#[tokio::test]
async fn expect_continue_is_sent_when_the_body_is_read() {
    use tokio::io::AsyncWriteExt;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let server = start(|_| {}, recording_app(seen)).await;
    let mut s = tokio::net::TcpStream::connect(support::addr(&server))
        .await
        .unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let interim = support::read_until(&mut s, "\r\n\r\n").await;
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"hello").await.unwrap();
    let reply = support::read_until(&mut s, "len=5").await;
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    server.stop().await;
}

#[tokio::test]
async fn unread_body_is_drained_and_connection_reused() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let app = move |_req: Request<RequestBody>| {
        c.fetch_add(1, Ordering::SeqCst);
        async { Response::new(Full::new(Bytes::from_static(b"ignored the body"))) }
    };
    let server = start(|_| {}, app).await;
    let reply = raw(
        support::addr(&server),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(reply.matches("HTTP/1.1 200 OK").count(), 2, "{reply}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    server.stop().await;
}
