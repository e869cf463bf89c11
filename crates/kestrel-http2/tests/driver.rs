//! The HTTP/2 driver over an in-memory stream, with an `h2` client as the
//! peer and the runtime's clock paused: no sockets and no real sleeps.
//! Timeouts elapse in virtual time (tokio advances the clock whenever every
//! task waits), so a keep-alive timeout or a slow stream takes no wall-clock
//! time at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::Reason;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use kestrel_core::connection::ConnectionHandle;
use kestrel_core::{
    Application, BoxError, KestrelServerOptions, RequestAborted, RequestBody, RequestFeaturesExt,
};
use kestrel_http2::{
    Address, Connection, ConnectionRuntime, Http2Config, Http2Connection, Http2Error, ServerLimits,
    TransportKind,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A connection served by the driver, and an `h2` client on the other end.
struct Harness {
    send: SendRequest<Bytes>,
    /// The client's connection task.
    client: JoinHandle<Result<(), h2::Error>>,
    /// The driver's task.
    server: JoinHandle<Result<(), Http2Error>>,
    handle: Arc<ConnectionHandle>,
    _runtime: ConnectionRuntime,
}

fn memory_connection(io: tokio::io::DuplexStream) -> Connection {
    Connection {
        io: Box::new(io),
        local_addr: Address::Memory("server".into()),
        remote_addr: Address::Memory("client".into()),
        kind: TransportKind::Memory,
    }
}

async fn serve<A: Application>(
    configure: impl FnOnce(&mut KestrelServerOptions),
    app: A,
) -> Harness {
    let mut options = KestrelServerOptions::default();
    configure(&mut options);
    let runtime = ConnectionRuntime::new(&options.limits);
    let (client_io, server_io) = tokio::io::duplex(256 * 1024);
    let admitted = runtime.admit(memory_connection(server_io)).unwrap();
    let handle = admitted.handle().clone();
    let conn =
        Http2Connection::from_admitted(admitted, Arc::new(Http2Config::from_options(&options)));
    let server = tokio::spawn(async move { conn.serve(&app).await });
    let (send, connection) = h2::client::handshake(client_io).await.unwrap();
    let client = tokio::spawn(connection);
    Harness {
        send,
        client,
        server,
        handle,
        _runtime: runtime,
    }
}

fn request(method: &str, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(format!("http://driver.test{path}"))
        .body(())
        .unwrap()
}

fn text(s: impl Into<Bytes>) -> Response<Body> {
    Response::new(Full::new(s.into()).map_err(|e| match e {}).boxed_unsync())
}

fn status(code: StatusCode) -> Response<Body> {
    let mut r = text("");
    *r.status_mut() = code;
    r
}

/// Read a response body to its end.
async fn read_body(mut body: h2::RecvStream) -> Result<Vec<u8>, h2::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

impl Harness {
    /// A GET with no body: its status and body.
    async fn get(&mut self, path: &str) -> Result<(StatusCode, Vec<u8>), h2::Error> {
        let (resp, _) = self.send.send_request(request("GET", path), true)?;
        let resp = resp.await?;
        let status = resp.status();
        Ok((status, read_body(resp.into_body()).await?))
    }
}

/// The paths every test app below shares.
async fn app(req: Request<RequestBody>) -> Response<Body> {
    match req.uri().path() {
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            text("slow")
        }
        // Read the whole body; answer with its length.
        "/collect" => match req.into_body().collect().await {
            Ok(b) => text(b.to_bytes().len().to_string()),
            Err(_) => status(StatusCode::INTERNAL_SERVER_ERROR),
        },
        // Stream the request body back as it arrives.
        "/echo" => Response::new(req.into_body().map_err(BoxError::from).boxed_unsync()),
        "/panic" => panic!("the app panicked before its response"),
        // One chunk, then (a second later) a panic inside the body.
        "/panic-late" => {
            let frames = futures_util::stream::unfold(0u8, |step| async move {
                match step {
                    0 => Some((Ok(Frame::data(Bytes::from_static(b"first"))), 1)),
                    _ => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        panic!("the app's body panicked after the response started")
                    }
                }
            });
            Response::new(StreamBody::new(frames).boxed_unsync())
        }
        _ => text("Hello, World!"),
    }
}

#[tokio::test(start_paused = true)]
async fn streams_run_concurrently_and_each_gets_its_answer() {
    let mut h = serve(|_| {}, app).await;
    let start = Instant::now();
    let (slow, _) = h.send.send_request(request("GET", "/slow"), true).unwrap();
    let slow = tokio::spawn(async move {
        let resp = slow.await.unwrap();
        let body = read_body(resp.into_body()).await.unwrap();
        (body, start.elapsed())
    });
    // Ten more streams at once, each with its own body, while /slow waits.
    let mut echoes = Vec::new();
    for i in 0..10u8 {
        let (resp, mut tx) = h
            .send
            .send_request(request("POST", "/collect"), false)
            .unwrap();
        tx.send_data(Bytes::from(vec![b'x'; 100 * usize::from(i + 1)]), true)
            .unwrap();
        echoes.push(resp);
    }
    for (i, resp) in echoes.into_iter().enumerate() {
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = read_body(resp.into_body()).await.unwrap();
        assert_eq!(body, (100 * (i + 1)).to_string().as_bytes());
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "the other streams did not wait for /slow"
    );
    let (body, took) = slow.await.unwrap();
    assert_eq!(body, b"slow");
    assert!(took >= Duration::from_secs(60), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn continue_is_sent_when_the_app_first_reads_the_body() {
    let mut h = serve(
        |_| {},
        |req: Request<RequestBody>| async move {
            // The app looks at the body only after five seconds.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let body = req.into_body().collect().await.unwrap().to_bytes();
            text(body)
        },
    )
    .await;
    let start = Instant::now();
    let mut req = request("POST", "/upload");
    req.headers_mut()
        .insert("expect", "100-continue".parse().unwrap());
    let (mut resp, mut tx) = h.send.send_request(req, false).unwrap();
    let informational = poll_fn(|cx| resp.poll_informational(cx))
        .await
        .expect("an informational response")
        .unwrap();
    assert_eq!(informational.status(), StatusCode::CONTINUE);
    assert!(
        start.elapsed() >= Duration::from_secs(5),
        "100 Continue came before the app read the body: {:?}",
        start.elapsed()
    );
    tx.send_data(Bytes::from_static(b"after continue"), true)
        .unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        read_body(resp.into_body()).await.unwrap(),
        b"after continue"
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_over_the_limit_gets_413_or_a_reset_once_the_response_started() {
    let mut h = serve(|o| o.limits.max_request_body_size = Some(1000), app).await;

    // Declared too large: refused at the first read.
    let mut req = request("POST", "/collect");
    req.headers_mut()
        .insert("content-length", "5000".parse().unwrap());
    let (resp, mut tx) = h.send.send_request(req, false).unwrap();
    tx.send_data(Bytes::from(vec![b'x'; 1000]), false).unwrap();
    assert_eq!(resp.await.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Undeclared, streamed past the limit.
    let (resp, mut tx) = h
        .send
        .send_request(request("POST", "/collect"), false)
        .unwrap();
    for _ in 0..2 {
        tx.reserve_capacity(600);
        tx.send_data(Bytes::from(vec![b'y'; 600]), false).unwrap();
    }
    assert_eq!(resp.await.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);

    // At the limit: fine.
    let (resp, mut tx) = h
        .send
        .send_request(request("POST", "/collect"), false)
        .unwrap();
    tx.send_data(Bytes::from(vec![b'z'; 1000]), true).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(read_body(resp.into_body()).await.unwrap(), b"1000");

    // Once the response has started (a streamed echo), the stream is reset.
    let (resp, mut tx) = h
        .send
        .send_request(request("POST", "/echo"), false)
        .unwrap();
    tx.send_data(Bytes::from(vec![b'e'; 800]), false).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    tx.reserve_capacity(800);
    tx.send_data(Bytes::from(vec![b'e'; 800]), false).unwrap();
    let err = read_body(resp.into_body())
        .await
        .expect_err("the echo is cut");
    assert!(err.is_reset(), "{err}");
    assert_eq!(err.reason(), Some(Reason::INTERNAL_ERROR), "{err}");

    // The connection goes on.
    assert_eq!(h.get("/").await.unwrap().0, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_client_reset_aborts_the_request_and_cancels_the_app() {
    let (tx, mut rx) = mpsc::unbounded_channel::<RequestAborted>();
    let dropped = Arc::new(AtomicBool::new(false));
    let seen = dropped.clone();
    struct SetOnDrop(Arc<AtomicBool>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let mut h = serve(
        |_| {},
        move |req: Request<RequestBody>| {
            let tx = tx.clone();
            let seen = seen.clone();
            async move {
                if req.uri().path() == "/" {
                    return text("still served");
                }
                let _drop = SetOnDrop(seen);
                let aborted = req.features().and_then(|f| f.aborted()).cloned().unwrap();
                tx.send(aborted).unwrap();
                // A long poll that only a cancellation ends early.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                status(StatusCode::NO_CONTENT)
            }
        },
    )
    .await;
    let (resp, mut body_tx) = h
        .send
        .send_request(request("POST", "/poll"), false)
        .unwrap();
    let aborted = rx.recv().await.unwrap();
    assert!(!aborted.is_aborted());
    let start = Instant::now();
    body_tx.send_reset(Reason::CANCEL);
    tokio::time::timeout(Duration::from_secs(10), aborted.aborted())
        .await
        .expect("RequestAborted fired");
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(dropped.load(Ordering::SeqCst), "the app was not cancelled");
    assert!(resp.await.is_err(), "the stream was reset");
    // The connection and its other streams are unaffected.
    assert!(!h.handle.is_aborted());
    assert_eq!(h.get("/").await.unwrap().0, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_500_before_the_response_and_a_stream_reset_after() {
    let mut h = serve(|_| {}, app).await;
    let (status, _) = h.get("/panic").await.unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);

    // After the headers and a first chunk: RST_STREAM INTERNAL_ERROR.
    let (resp, _) = h
        .send
        .send_request(request("GET", "/panic-late"), true)
        .unwrap();
    let resp = resp.await.expect("the headers were sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = body.data().await.unwrap().unwrap();
    assert_eq!(&first[..], b"first");
    let err = loop {
        match body.data().await {
            Some(Ok(_)) => {}
            Some(Err(e)) => break e,
            None => panic!("the body ended instead of being reset"),
        }
    };
    assert_eq!(err.reason(), Some(Reason::INTERNAL_ERROR), "{err}");

    // The connection is still fine.
    let (status, body) = h.get("/").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"Hello, World!");
}

#[tokio::test(start_paused = true)]
async fn a_graceful_drain_sends_goaway_and_completes_streams_in_flight() {
    let h = serve(|_| {}, app).await;
    let Harness {
        mut send,
        client,
        server,
        handle,
        _runtime,
    } = h;
    let start = Instant::now();
    let (slow, _) = send.send_request(request("GET", "/slow"), true).unwrap();
    // Let the stream reach the app, then ask the connection to close.
    tokio::time::sleep(Duration::from_millis(100)).await;
    handle.request_close();
    let resp = slow.await.expect("the stream in flight is answered");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(read_body(resp.into_body()).await.unwrap(), b"slow");
    assert!(start.elapsed() >= Duration::from_secs(60));
    // The driver ends cleanly once the stream is done, and so does the
    // client's side (it saw GOAWAY with NO_ERROR).
    server.await.unwrap().expect("a clean close");
    client
        .await
        .unwrap()
        .expect("the client saw a graceful GOAWAY");
    // After the GOAWAY, no new stream can be opened.
    assert!(send.send_request(request("GET", "/"), true).is_err());
}

#[tokio::test(start_paused = true)]
async fn the_keep_alive_timeout_closes_an_idle_connection_in_virtual_time() {
    let mut h = serve(
        |o| o.limits.keep_alive_timeout = Duration::from_secs(5),
        app,
    )
    .await;
    // A stream that outlives the timeout keeps the connection open.
    let (status, body) = h.get("/slow").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"slow");
    let idle_since = Instant::now();
    let Harness { server, client, .. } = h;
    server.await.unwrap().expect("closed with GOAWAY NO_ERROR");
    let waited = idle_since.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited <= Duration::from_secs(7),
        "closed after {waited:?} idle"
    );
    client
        .await
        .unwrap()
        .expect("the client saw a graceful GOAWAY");
}

#[tokio::test(start_paused = true)]
async fn limits_can_change_until_the_first_read_then_they_are_frozen() {
    let mut h = serve(
        |o| o.limits.max_request_body_size = Some(1000),
        |req: Request<RequestBody>| async move {
            let limits = req.features().and_then(|f| f.limits()).cloned().unwrap();
            // Before the first read: the app may raise its limit.
            limits.set_max_request_body_size(Some(10_000)).unwrap();
            let len = req.into_body().collect().await.unwrap().to_bytes().len();
            // After it: read-only, as Kestrel's IsReadOnly.
            let after = limits.set_max_request_body_size(Some(1));
            assert!(limits.is_read_only());
            text(format!("{len} {after:?}"))
        },
    )
    .await;
    let mut req = request("POST", "/raise");
    req.headers_mut()
        .insert("content-length", "5000".parse().unwrap());
    let (resp, mut tx) = h.send.send_request(req, false).unwrap();
    tx.reserve_capacity(5000);
    tx.send_data(Bytes::from(vec![b'r'; 5000]), true).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        String::from_utf8(read_body(resp.into_body()).await.unwrap()).unwrap(),
        "5000 Err(ReadOnly)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_below_the_minimum_data_rate_closes_the_connection() {
    let (reports, mut outcome) = mpsc::unbounded_channel::<String>();
    let h = serve(
        |o| {
            o.limits.min_request_body_data_rate =
                Some(kestrel_core::MinDataRate::new(100.0, Duration::from_secs(2)).unwrap())
        },
        move |req: Request<RequestBody>| {
            let reports = reports.clone();
            async move {
                // The body is read by a task of its own, which reports how
                // the read ended even after the stream is gone.
                let body = req.into_body();
                let read = tokio::spawn(async move {
                    let r = body.collect().await.map(|c| c.to_bytes().len());
                    let _ = reports.send(format!("{r:?}"));
                });
                let _ = read.await;
                text("done")
            }
        },
    )
    .await;
    let Harness {
        mut send, server, ..
    } = h;
    let start = Instant::now();
    let (_resp, mut tx) = send
        .send_request(request("POST", "/trickle"), false)
        .unwrap();
    // Ten bytes, then nothing: 10 B over the 2 s grace period is under 100 B/s.
    tx.send_data(Bytes::from_static(b"0123456789"), false)
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the connection was cut off")
        .unwrap();
    assert!(
        matches!(result, Err(Http2Error::MinRequestBodyDataRate)),
        "{result:?}"
    );
    let took = start.elapsed();
    assert!(
        took > Duration::from_secs(2) && took <= Duration::from_secs(5),
        "cut off after {took:?}"
    );
    let read = outcome.recv().await.expect("the body read ended");
    assert!(read.contains("Timeout"), "{read}");
}

/// Records each `request` span's fields and, for each event, the fields of
/// the span it happened in.
#[derive(Clone, Default)]
struct SpanLog {
    spans: Arc<Mutex<HashMap<u64, String>>>,
    events: Arc<Mutex<Vec<String>>>,
}

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanLog
where
    S: for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() == "request" {
            let mut f = Fields(String::new());
            attrs.record(&mut f);
            self.spans.lock().unwrap().insert(id.into_u64(), f.0);
        }
    }

    fn on_event(
        &self,
        _event: &tracing::Event<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = ctx.lookup_current() {
            if let Some(fields) = self.spans.lock().unwrap().get(&span.id().into_u64()) {
                self.events.lock().unwrap().push(fields.clone());
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_apps_events_happen_in_a_request_span_naming_the_stream() {
    use tracing_subscriber::layer::SubscriberExt;
    let log = SpanLog::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(log.clone()));
    let mut h = serve(
        |_| {},
        |_req: Request<RequestBody>| async {
            tracing::info!("inside the app");
            text("ok")
        },
    )
    .await;
    assert_eq!(h.get("/spanned").await.unwrap().0, StatusCode::OK);
    assert_eq!(h.get("/again").await.unwrap().0, StatusCode::OK);
    let events = log.events.lock().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[0].contains("method=GET"), "{}", events[0]);
    assert!(events[0].contains("path=/spanned"), "{}", events[0]);
    assert!(events[0].contains("protocol=HTTP/2.0"), "{}", events[0]);
    assert!(events[0].contains("stream_id=1 "), "{}", events[0]);
    assert!(events[0].contains("connection_id="), "{}", events[0]);
    assert!(events[1].contains("stream_id=3 "), "{}", events[1]);
}

/// Every HTTP/2 connection holds this future while it lives: it must not
/// grow unnoticed (docs/performance.md's idle memory per connection depends
/// on it). Measured in a debug build: 6,136 bytes, or 6,416 with
/// kestrel-core's `metrics` feature (which the workspace's tests turn on);
/// most of it is `h2`'s connection state. The budget is that plus about 10%.
const CONNECTION_FUTURE_BUDGET: usize = if kestrel_core::metrics::ENABLED {
    7_060
} else {
    6_750
};

#[tokio::test]
async fn the_connection_future_stays_within_its_budget() {
    let (io, _peer) = tokio::io::duplex(64);
    let runtime = ConnectionRuntime::new(&ServerLimits::default());
    let conn = Http2Connection::from_admitted(
        runtime.admit(memory_connection(io)).unwrap(),
        Arc::new(Http2Config::from_options(&KestrelServerOptions::default())),
    );
    let serve = conn.serve(&app);
    let size = std::mem::size_of_val(&serve);
    eprintln!("HTTP/2 connection future: {size} bytes");
    assert!(
        size <= CONNECTION_FUTURE_BUDGET,
        "the HTTP/2 connection future is {size} bytes, over its budget of {CONNECTION_FUTURE_BUDGET}"
    );
}
