//! The request-aborted signal (`RequestAborted`, Kestrel's `RequestAborted`
//! token) on HTTP/2: it fires when the client resets the stream or the
//! connection is lost, and the app's body read fails cleanly; it does not
//! fire for a request that completed.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::h2client;
use kestrel_test_support::h2wire;

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use h2client::{connect, request, AppFuture};
use h2wire::*;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use kestrel::{RequestBody, RequestFeaturesExt};
use tokio::sync::mpsc;

type Reports = mpsc::UnboundedSender<String>;

/// `/watch`: reports `started` (and whether the request already looked
/// aborted), then in tasks of its own reports `aborted` when the signal
/// fires and how its body read ended (`?read=no`: the body is not read); the
/// app itself answers only after 30 s.
/// `/complete`: answers at once; a task reports `aborted` or `not aborted`
/// after watching the signal for 500 ms.
fn app(reports: Reports) -> impl Fn(Request<RequestBody>) -> AppFuture + Send + Sync + 'static {
    move |req: Request<RequestBody>| {
        let reports = reports.clone();
        Box::pin(async move {
            let aborted = req
                .features()
                .and_then(|f| f.aborted())
                .expect("a RequestAborted feature on HTTP/2 requests")
                .clone();
            if req.uri().path() == "/complete" {
                tokio::spawn(async move {
                    let fired = tokio::time::timeout(Duration::from_millis(500), aborted.aborted())
                        .await
                        .is_ok();
                    let _ = reports.send(if fired { "aborted" } else { "not aborted" }.into());
                });
                return Ok(Response::new(h2client::full("done")));
            }
            let _ = reports.send(format!("started aborted={}", aborted.is_aborted()));
            let watch = reports.clone();
            tokio::spawn(async move {
                aborted.aborted().await;
                let _ = watch.send("aborted".into());
            });
            let no_read = req.uri().query() == Some("read=no");
            let body = req.into_body();
            let read = reports.clone();
            tokio::spawn(async move {
                if no_read {
                    // Keep the body, unread: only the driver can tell.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    drop(body);
                    return;
                }
                let outcome = body.collect().await.map(|c| c.to_bytes());
                let _ = read.send(match outcome {
                    Ok(b) => format!("read {} bytes", b.len()),
                    Err(e) => format!("read failed: {e:?}"),
                });
            });
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Response::new(h2client::full("late")))
        })
    }
}

async fn next(reports: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(5), reports.recv())
        .await
        .expect("a report within 5 s")
        .expect("a report")
}

/// The two reports that follow an abort, in whatever order they come.
async fn after_abort(reports: &mut mpsc::UnboundedReceiver<String>) -> HashSet<String> {
    let mut seen = HashSet::new();
    seen.insert(next(reports).await);
    seen.insert(next(reports).await);
    seen
}

fn expected_after_abort() -> HashSet<String> {
    ["aborted", "read failed: ConnectionAborted"]
        .into_iter()
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn a_client_reset_fires_request_aborted_and_fails_the_body_read() {
    let (tx, mut reports) = mpsc::unbounded_channel();
    let server = support::start(|_| {}, app(tx)).await;
    let mut send = connect(support::addr(&server)).await;
    let (resp, mut body) = send
        .send_request(request("POST", "/watch"), false)
        .expect("send");
    body.send_data(Bytes::from_static(b"part of a body"), false)
        .expect("data");
    assert_eq!(next(&mut reports).await, "started aborted=false");
    body.send_reset(h2::Reason::CANCEL);
    drop(resp);
    assert_eq!(after_abort(&mut reports).await, expected_after_abort());
    // Without a body read to notice, the driver fires the signal itself.
    let (resp, body) = send
        .send_request(request("POST", "/watch?read=no"), false)
        .expect("send");
    assert_eq!(next(&mut reports).await, "started aborted=false");
    drop(body);
    drop(resp);
    assert_eq!(next(&mut reports).await, "aborted");
    // The connection goes on serving.
    let (resp, _) = h2client::get(&mut send, "/complete").await.expect("GET");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(next(&mut reports).await, "not aborted");
    server.stop().await;
}

#[tokio::test]
async fn losing_the_connection_fires_request_aborted() {
    let (tx, mut reports) = mpsc::unbounded_channel();
    let server = support::start(|_| {}, app(tx)).await;
    let mut w = Wire::connect(support::addr(&server)).await;
    let head = header_block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "localhost"),
        (":path", "/watch"),
    ]);
    w.send(&frame(HEADERS, END_HEADERS, 1, &head)).await;
    w.send(&frame(DATA, 0, 1, b"some")).await;
    assert_eq!(next(&mut reports).await, "started aborted=false");
    let unread = header_block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "localhost"),
        (":path", "/watch?read=no"),
    ]);
    w.send(&frame(HEADERS, END_HEADERS, 3, &unread)).await;
    assert_eq!(next(&mut reports).await, "started aborted=false");
    drop(w);
    let mut seen = vec![
        next(&mut reports).await,
        next(&mut reports).await,
        next(&mut reports).await,
    ];
    seen.sort();
    // One `aborted` per stream, and the first stream's failed read.
    assert_eq!(
        seen,
        ["aborted", "aborted", "read failed: ConnectionAborted"]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_completed_request_is_not_aborted_even_when_the_connection_then_closes() {
    let (tx, mut reports) = mpsc::unbounded_channel();
    let server = support::start(|_| {}, app(tx)).await;
    let mut w = Wire::connect(support::addr(&server)).await;
    w.send(&get_headers(1, "/complete", true)).await;
    w.until(|f| f.kind == DATA && f.flags & END_STREAM != 0)
        .await
        .expect("the whole response");
    drop(w);
    assert_eq!(next(&mut reports).await, "not aborted");
    server.stop().await;
}
