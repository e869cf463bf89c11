//! The HTTP/1 driver over an in-memory stream, with the runtime's clock
//! paused: no sockets and no real sleeps. Timeouts elapse in virtual time
//! (tokio advances the clock whenever every task waits), so a 130 s
//! keep-alive timeout takes no wall-clock time at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kestrel_core::RequestFeaturesExt;
use kestrel_http1::{
    Address, Application, Connection, ConnectionRuntime, Http1Close, Http1Config, Http1Connection,
    Http1Error, KestrelServerOptions, RequestBody, TransportKind,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A connection served by the driver, and the client's end of it.
struct Harness {
    client: DuplexStream,
    /// Bytes read past the last response.
    buf: Vec<u8>,
    task: JoinHandle<Result<Http1Close, Http1Error>>,
    _runtime: ConnectionRuntime,
}

fn serve<A: Application>(configure: impl FnOnce(&mut KestrelServerOptions), app: A) -> Harness {
    let mut options = KestrelServerOptions::default();
    configure(&mut options);
    let runtime = ConnectionRuntime::new(&options.limits);
    let (client, server) = tokio::io::duplex(256 * 1024);
    let admitted = runtime
        .admit(Connection {
            io: Box::new(server),
            local_addr: Address::Memory("server".into()),
            remote_addr: Address::Memory("client".into()),
            kind: TransportKind::Memory,
        })
        .unwrap();
    let conn =
        Http1Connection::from_admitted(admitted, Arc::new(Http1Config::from_options(&options)));
    let task = tokio::spawn(async move { conn.serve(&app).await });
    Harness {
        client,
        buf: Vec::new(),
        task,
        _runtime: runtime,
    }
}

/// One response as the client read it.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Harness {
    async fn send(&mut self, bytes: &[u8]) {
        self.client.write_all(bytes).await.unwrap();
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.client.read(&mut chunk).await.unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// The next response (framed by Content-Length or chunked); `None` at
    /// the end of the stream.
    async fn response(&mut self) -> Option<Reply> {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
        let status = head[9..12].parse().unwrap();
        let lower = head.to_ascii_lowercase();
        let length = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map(|v| v.trim().parse::<usize>().unwrap());
        let chunked = lower.contains("transfer-encoding: chunked");
        self.buf.drain(..end);
        let body = if let Some(n) = length {
            while self.buf.len() < n {
                assert!(self.fill().await, "the body ended early");
            }
            self.buf.drain(..n).collect()
        } else if chunked {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    assert!(self.fill().await, "the chunked body ended early");
                };
                let size_line = String::from_utf8(self.buf[..line_end].to_vec()).unwrap();
                let size = usize::from_str_radix(size_line.trim(), 16).unwrap();
                while self.buf.len() < line_end + 2 + size + 2 {
                    assert!(self.fill().await, "the chunk ended early");
                }
                body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                self.buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break;
                }
            }
            body
        } else {
            Vec::new()
        };
        Some(Reply { status, head, body })
    }

    /// Read until the server closes the stream.
    async fn closed(&mut self) {
        while self.fill().await {}
    }
}

fn text(s: &'static str) -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from_static(s.as_bytes())))
}

async fn echo(req: Request<RequestBody>) -> Response<Full<Bytes>> {
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    Response::new(Full::new(body.unwrap_or_default()))
}

#[tokio::test(start_paused = true)]
async fn keep_alive_and_pipelined_requests_answer_in_order() {
    let mut h = serve(|_| {}, echo);
    h.send(b"POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none")
        .await;
    let r = h.response().await.unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"one"[..]));
    // The same connection: three pipelined requests in one write.
    h.send(
        b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwo\
          POST /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nthree\r\n0\r\n\r\n\
          POST /4 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfour",
    )
    .await;
    for want in [&b"two"[..], b"three", b"four"] {
        let r = h.response().await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, want), "{}", r.head);
    }
    h.closed().await;
    assert_eq!(h.task.await.unwrap().unwrap(), Http1Close::Done);
}

#[tokio::test(start_paused = true)]
async fn continue_is_sent_when_the_app_first_reads_the_body() {
    let mut h = serve(|_| {}, echo);
    h.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await;
    // The interim response comes before the client sends anything more.
    let interim = h.response().await.unwrap();
    assert_eq!(interim.status, 100, "{}", interim.head);
    h.send(b"hello").await;
    let r = h.response().await.unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
}

#[tokio::test(start_paused = true)]
async fn the_keep_alive_timeout_closes_an_idle_connection_in_virtual_time() {
    let mut h = serve(
        |o| o.limits.keep_alive_timeout = Duration::from_secs(130),
        |_req: Request<RequestBody>| async { text("ok") },
    );
    h.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(h.response().await.unwrap().status, 200);
    let idle_since = Instant::now();
    h.closed().await;
    let idle = idle_since.elapsed();
    // Kestrel's deadline: the timeout plus up to one heartbeat interval (and
    // the tick that notices it).
    assert!(
        idle >= Duration::from_secs(130) && idle <= Duration::from_secs(133),
        "closed after {idle:?}"
    );
    // The outcome names the timeout (metrics' error.type comes from it).
    let close = h.task.await.unwrap().unwrap();
    assert_eq!(close, Http1Close::KeepAliveTimeout);
    assert_eq!(
        close.end_reason(),
        Some(kestrel_core::connection::ConnectionEndReason::KeepAliveTimeout)
    );
}

#[tokio::test(start_paused = true)]
async fn a_trickled_head_gets_408_after_the_request_headers_timeout() {
    let mut h = serve(
        |o| o.limits.request_headers_timeout = Duration::from_secs(30),
        |_req: Request<RequestBody>| async { text("ok") },
    );
    let started = Instant::now();
    h.send(b"GET / HTTP/1.1\r\nHo").await;
    let r = h.response().await.unwrap();
    assert_eq!(r.status, 408, "{}", r.head);
    assert!(r.head.to_ascii_lowercase().contains("connection: close"));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(30) && took <= Duration::from_secs(33),
        "{took:?}"
    );
    h.closed().await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_gives_500_and_the_connection_goes_on() {
    let mut h = serve(
        |_| {},
        |req: Request<RequestBody>| async move {
            if req.uri().path() == "/panic" {
                panic!("the app panicked");
            }
            text("after")
        },
    );
    h.send(b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let r = h.response().await.unwrap();
    assert_eq!((r.status, r.body.len()), (500, 0), "{}", r.head);
    let r = h.response().await.unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"after"[..]));
}

#[tokio::test(start_paused = true)]
async fn a_body_over_the_limit_gets_413_and_a_close() {
    let mut h = serve(|o| o.limits.max_request_body_size = Some(4), echo);
    h.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789")
        .await;
    let r = h.response().await.unwrap();
    assert_eq!(r.status, 413, "{}", r.head);
    assert!(r.head.to_ascii_lowercase().contains("connection: close"));
    h.closed().await;
    assert!(matches!(
        h.task.await.unwrap(),
        Err(Http1Error::BadRequest(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn an_unread_body_over_the_limit_is_not_drained_and_the_outcome_says_why() {
    let mut h = serve(
        |o| o.limits.max_request_body_size = Some(4),
        // Answers without reading the body.
        |_req: Request<RequestBody>| async { text("ok") },
    );
    h.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789")
        .await;
    let r = h.response().await.unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"ok"[..]),
        "{}",
        r.head
    );
    h.closed().await;
    let close = h.task.await.unwrap().unwrap();
    assert_eq!(close, Http1Close::UnreadBodyTooLarge);
    assert_eq!(
        close.end_reason(),
        Some(kestrel_core::connection::ConnectionEndReason::MaxRequestBodySizeExceeded)
    );
}

#[tokio::test(start_paused = true)]
async fn an_unread_body_is_drained_and_the_next_request_served() {
    let mut h = serve(
        |_| {},
        |req: Request<RequestBody>| async move {
            // Answers without reading the body.
            text(if req.uri().path() == "/first" {
                "first"
            } else {
                "second"
            })
        },
    );
    h.send(b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nignoreGET /second HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(h.response().await.unwrap().body, b"first");
    assert_eq!(h.response().await.unwrap().body, b"second");
}

#[tokio::test(start_paused = true)]
async fn request_aborted_fires_when_the_client_leaves() {
    let fired = Arc::new(AtomicBool::new(false));
    let seen = fired.clone();
    let mut h = serve(
        |_| {},
        move |req: Request<RequestBody>| {
            let seen = seen.clone();
            async move {
                let aborted = req.features().and_then(|f| f.aborted()).cloned().unwrap();
                // A long poll: waits for the client to leave (or an hour).
                tokio::select! {
                    _ = aborted.aborted() => seen.store(true, Ordering::SeqCst),
                    _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                }
                let mut r = text("");
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
        },
    );
    h.send(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n").await;
    // Let the app start waiting, then the client goes away.
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop(h.client);
    let _ = h.task.await.unwrap();
    assert!(fired.load(Ordering::SeqCst), "RequestAborted did not fire");
}

#[tokio::test(start_paused = true)]
async fn limits_can_change_until_the_first_read_then_they_are_frozen() {
    let mut h = serve(
        |o| o.limits.max_request_body_size = Some(1000),
        |req: Request<RequestBody>| async move {
            let limits = req.features().and_then(|f| f.limits()).cloned().unwrap();
            if req.uri().path() == "/raise" {
                // Before the first read: the app may raise its limit.
                limits.set_max_request_body_size(Some(10_000)).unwrap();
            }
            let body = req.into_body().collect().await;
            // After it: read-only, as Kestrel's IsReadOnly.
            let after = limits.set_max_request_body_size(Some(1));
            Response::new(Full::new(Bytes::from(format!(
                "{:?} {after:?}",
                body.map(|b| b.to_bytes().len())
            ))))
        },
    );
    let body = vec![b'r'; 5000];
    let mut raise = b"POST /raise HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n".to_vec();
    raise.extend_from_slice(&body);
    h.send(&raise).await;
    let reply = h.response().await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"Ok(5000) Err(ReadOnly)");
    // Without the change, the same body is over the limit: 413 and a close.
    let mut keep = b"POST /keep HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n".to_vec();
    keep.extend_from_slice(&body);
    h.send(&keep).await;
    let reply = h.response().await.unwrap();
    assert_eq!(reply.status, 413, "{}", reply.head);
    h.closed().await;
}

/// A response body that yields its parts one per poll and claims an exact
/// length, which the parts may not add up to.
struct Claimed {
    parts: std::collections::VecDeque<Bytes>,
    len: u64,
}

impl http_body::Body for Claimed {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(
            self.parts
                .pop_front()
                .map(|b| Ok(http_body::Frame::data(b))),
        )
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len)
    }
}

fn claimed(parts: Vec<Bytes>, len: u64) -> Response<Claimed> {
    Response::new(Claimed {
        parts: parts.into(),
        len,
    })
}

#[tokio::test(start_paused = true)]
async fn a_body_longer_than_its_content_length_is_cut_and_the_connection_closes() {
    let mut h = serve(
        |_| {},
        |_req: Request<RequestBody>| async { claimed(vec![Bytes::from_static(b"hello world")], 5) },
    );
    h.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let r = h.response().await.unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"hello"[..]),
        "{}",
        r.head
    );
    h.closed().await;
    assert!(h.buf.is_empty(), "nothing past the declared length");
    let close = h.task.await.unwrap().unwrap();
    assert_eq!(close, Http1Close::ResponseContentLengthMismatch);
    assert_eq!(
        close.end_reason(),
        Some(kestrel_core::connection::ConnectionEndReason::ResponseContentLengthMismatch)
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_shorter_than_its_content_length_aborts_once_it_started() {
    // 20 KiB is written straight to the client (over the copy threshold),
    // so the response has started when the body ends 10,000 bytes short.
    let mut h = serve(
        |_| {},
        |_req: Request<RequestBody>| async {
            claimed(vec![Bytes::from(vec![b'x'; 20_000])], 30_000)
        },
    );
    h.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    h.closed().await;
    assert!(h.buf.starts_with(b"HTTP/1.1 200 OK\r\n"));
    let e = h.task.await.unwrap().unwrap_err();
    assert!(
        matches!(
            e,
            Http1Error::ResponseTooShort {
                content_length: 30_000,
                written: 20_000
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.end_reason(),
        Some(kestrel_core::connection::ConnectionEndReason::ResponseContentLengthMismatch)
    );
}
