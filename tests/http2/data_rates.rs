//! Minimum data rates on HTTP/2, per stream: a slow uploader and a client
//! that never opens its flow-control window are cut off (GOAWAY
//! INTERNAL_ERROR, as Kestrel does) while well-behaved clients are served;
//! a request may turn its rate off; a WebSocket stream has none.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::h2client;
use kestrel_test_support::h2wire;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use h2client::{connect, extended_connect, get, read_body, request, AppFuture, H2Io};
use h2wire::*;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use kestrel::{MinDataRate, RequestBody, RequestFeaturesExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;

const GRACE: Duration = Duration::from_millis(1500);
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

fn rate(bytes_per_second: f64) -> Option<MinDataRate> {
    Some(MinDataRate::new(bytes_per_second, GRACE).expect("a valid rate"))
}

/// `/collect[?rate=off]`: a task reads the whole body (reporting how that
/// ended on `reports`), then the app answers with its length; with
/// `rate=off` the request turns its minimum body data rate off first.
/// Anything else: hello.
fn app(
    reports: mpsc::UnboundedSender<Result<usize, String>>,
) -> impl Fn(Request<RequestBody>) -> AppFuture + Send + Sync + 'static {
    move |req: Request<RequestBody>| {
        let reports = reports.clone();
        Box::pin(async move {
            if req.uri().path() != "/collect" {
                return Ok(Response::new(h2client::full("Hello, World!")));
            }
            if req.uri().query() == Some("rate=off") {
                req.features()
                    .and_then(|f| f.limits())
                    .expect("a RequestLimits feature")
                    .set_min_request_body_data_rate(None)
                    .expect("changeable before the body is read");
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            let body = req.into_body();
            tokio::spawn(async move {
                let outcome = body
                    .collect()
                    .await
                    .map(|c| c.to_bytes().len())
                    .map_err(|e| format!("{e:?}"));
                let _ = reports.send(outcome.clone());
                let _ = tx.send(outcome);
            });
            let len = rx.await?.map_err(kestrel::BoxError::from)?;
            Ok(Response::new(h2client::full(len.to_string())))
        })
    }
}

async fn server(
    configure: impl FnOnce(&mut kestrel::KestrelServerOptions),
) -> (
    kestrel::RunningServer,
    mpsc::UnboundedReceiver<Result<usize, String>>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    (support::start(configure, app(tx)).await, rx)
}

/// A well-behaved upload on a connection of its own.
async fn upload(addr: std::net::SocketAddr, n: usize) -> (StatusCode, Bytes) {
    let mut send = connect(addr).await;
    let (resp, mut tx) = send
        .send_request(request("POST", "/collect"), false)
        .expect("send");
    tx.send_data(Bytes::from(vec![b'a'; n]), true)
        .expect("data");
    let resp = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .expect("a response within 10 s")
        .expect("a response");
    let status = resp.status();
    let (body, _) = read_body(resp.into_body()).await.expect("a body");
    (status, body)
}

/// Read frames until GOAWAY (ACKing on the way); returns it and when it came.
async fn goaway(w: &mut Wire) -> (Frame, Instant) {
    let f = w
        .until(|f| f.kind == GOAWAY)
        .await
        .expect("a GOAWAY before the connection ends");
    (f, Instant::now())
}

#[tokio::test]
async fn a_slow_upload_is_cut_off_with_goaway_internal_error() {
    let (server, mut reports) = server(|o| o.limits.min_request_body_data_rate = rate(100.0)).await;
    let addr = support::addr(&server);
    let mut w = Wire::connect(addr).await;
    let head = header_block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "localhost"),
        (":path", "/collect"),
        ("content-length", "1000"),
    ]);
    w.send(&frame(HEADERS, END_HEADERS, 1, &head)).await;
    w.send(&frame(DATA, 0, 1, b"a")).await;
    let started = Instant::now();
    // Another client, on its own connection, uploads at full speed meanwhile.
    assert_eq!(
        upload(addr, 1000).await,
        (StatusCode::OK, Bytes::from("1000"))
    );
    assert_eq!(reports.recv().await, Some(Ok(1000)));

    let (f, at) = goaway(&mut w).await;
    assert_eq!(f.goaway().1, INTERNAL_ERROR, "{f:?}");
    let took = at - started;
    assert!(
        took >= GRACE && took < Duration::from_secs(5),
        "cut off after {took:?}"
    );
    // The app's body read failed with a timeout, and the connection closed.
    let outcome = tokio::time::timeout(Duration::from_secs(5), reports.recv())
        .await
        .expect("the app's read ended");
    assert_eq!(outcome, Some(Err("Timeout".to_string())));
    w.drain().await;
    // The server goes on serving.
    assert_eq!(upload(addr, 10).await, (StatusCode::OK, Bytes::from("10")));
    server.stop().await;
}

#[tokio::test]
async fn a_request_may_turn_its_body_rate_off() {
    let (server, mut reports) = server(|o| o.limits.min_request_body_data_rate = rate(100.0)).await;
    let mut send = connect(support::addr(&server)).await;
    let (resp, mut tx) = send
        .send_request(request("POST", "/collect?rate=off"), false)
        .expect("send");
    tx.send_data(Bytes::from_static(b"a"), false).expect("data");
    // Well past the grace period at far below the server's rate.
    tokio::time::sleep(GRACE + Duration::from_secs(1)).await;
    tx.send_data(Bytes::from(vec![b'b'; 999]), true)
        .expect("the stream is still open");
    let resp = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .expect("a response")
        .expect("a response, not a GOAWAY");
    assert_eq!(resp.status(), StatusCode::OK);
    let (body, _) = read_body(resp.into_body()).await.unwrap();
    assert_eq!(&body[..], b"1000");
    assert_eq!(reports.recv().await, Some(Ok(1000)));
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_never_opens_its_window_is_dropped() {
    let (server, _reports) = server(|o| o.limits.min_response_data_rate = rate(1000.0)).await;
    let addr = support::addr(&server);
    let mut w = Wire::over(tokio::net::TcpStream::connect(addr).await.unwrap());
    // A zero stream window, and never a WINDOW_UPDATE.
    let mut hello = PREFACE.to_vec();
    hello.extend(settings(&[(SETTINGS_INITIAL_WINDOW_SIZE, 0)]));
    hello.extend(get_headers(1, "/", true));
    w.send(&hello).await;
    let started = Instant::now();
    let headers = w
        .until(|f| f.kind == HEADERS || f.kind == GOAWAY)
        .await
        .expect("the response headers");
    assert_eq!((headers.kind, headers.stream), (HEADERS, 1));
    // Others are served meanwhile.
    let mut other = connect(addr).await;
    let (resp, body) = get(&mut other, "/").await.expect("a response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(&body[..], b"Hello, World!");

    let mut frames = Vec::new();
    let f = loop {
        let f = w.next().await.expect("a GOAWAY before the connection ends");
        w.ack(&f).await;
        if f.kind == GOAWAY {
            break f;
        }
        frames.push(f);
    };
    let took = started.elapsed();
    assert_eq!(f.goaway().1, INTERNAL_ERROR, "{f:?}");
    assert!(
        took >= GRACE && took < Duration::from_secs(5),
        "dropped after {took:?}"
    );
    assert!(
        !frames
            .iter()
            .any(|f| f.kind == DATA && !f.payload.is_empty()),
        "no data without a window: {frames:?}"
    );
    w.drain().await;
    server.stop().await;
}

#[tokio::test]
async fn a_websocket_stream_has_no_data_rates() {
    let server = support::start(
        |o| {
            o.limits.min_request_body_data_rate = rate(100.0);
            o.limits.min_response_data_rate = rate(100.0);
        },
        kestrel_demo::app,
    )
    .await;
    let mut send = connect(support::addr(&server)).await;
    let (resp, tx, rx) = extended_connect(&mut send, "/ws", "websocket")
        .await
        .expect("an answer");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut ws =
        tokio_tungstenite::WebSocketStream::from_raw_socket(H2Io::new(tx, rx), Role::Client, None)
            .await;
    // Silent for longer than the grace period, far below both rates.
    tokio::time::sleep(GRACE + Duration::from_secs(1)).await;
    ws.send(Message::text("still here")).await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("an echo")
        .expect("a message")
        .expect("a valid message");
    assert_eq!(echoed.into_text().unwrap().as_str(), "still here");
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    server.stop().await;
}
