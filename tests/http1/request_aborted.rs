//! The request-aborted signal (`RequestAborted`) on HTTP/1.1: it fires when
//! the client closes the connection while the app works or while its
//! response body waits, and never for a request that completed; reading
//! ahead to notice the client leaving keeps pipelined requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::h2client;

use std::time::Duration;

use bytes::Bytes;
use h2client::AppFuture;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use kestrel::{RequestBody, RequestFeaturesExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

type Reports = mpsc::UnboundedSender<String>;

/// `/wait`: a task reports `aborted` when the signal fires; the app answers
/// after 10 s, or `aborted` at once when the signal fires.
/// `/stream`: answers at once with a body fed by a task that sends `tick`
/// and then waits for the signal before reporting `aborted` (a long poll
/// or an event stream).
/// `/keep`: answers at once; a task keeps the signal and reports after 1 s
/// whether it fired.
/// `/spawned-read`: a task reads the request body (reporting `read N` or
/// `read failed`) while the app waits for the signal (answering `aborted`)
/// or 10 s.
/// `/slow`: answers `slow` after 200 ms; `/`: `hello`.
fn app(reports: Reports) -> impl Fn(Request<RequestBody>) -> AppFuture + Send + Sync + 'static {
    move |req: Request<RequestBody>| {
        let reports = reports.clone();
        Box::pin(async move {
            let aborted = req
                .features()
                .and_then(|f| f.aborted())
                .expect("a RequestAborted feature on HTTP/1.1 requests")
                .clone();
            let path = req.uri().path().to_string();
            let body = match path.as_str() {
                "/spawned-read" => {
                    let body = req.into_body();
                    let tx = reports.clone();
                    tokio::spawn(async move {
                        let _ = tx.send(match body.collect().await {
                            Ok(b) => format!("read {}", b.to_bytes().len()),
                            Err(_) => "read failed".into(),
                        });
                    });
                    tokio::select! {
                        _ = aborted.aborted() => {
                            let _ = reports.send("aborted".into());
                            h2client::full("aborted")
                        }
                        _ = tokio::time::sleep(Duration::from_secs(10)) => h2client::full("late"),
                    }
                }
                "/wait" => {
                    let watch = aborted.clone();
                    let tx = reports.clone();
                    tokio::spawn(async move {
                        watch.aborted().await;
                        let _ = tx.send("aborted".into());
                    });
                    tokio::select! {
                        _ = aborted.aborted() => h2client::full("aborted"),
                        _ = tokio::time::sleep(Duration::from_secs(10)) => h2client::full("late"),
                    }
                }
                "/stream" => {
                    let (tx, rx) = mpsc::channel(4);
                    tokio::spawn(async move {
                        let _ = tx
                            .send(Ok(Frame::data(Bytes::from_static(b"tick\n"))))
                            .await;
                        aborted.aborted().await;
                        let _ = reports.send("aborted".into());
                        drop(tx);
                    });
                    h2client::ChanBody(rx).boxed()
                }
                "/keep" => {
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        let _ = reports.send(format!("kept aborted={}", aborted.is_aborted()));
                    });
                    h2client::full("kept")
                }
                "/slow" => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    h2client::full("slow")
                }
                _ => h2client::full("hello"),
            };
            Ok(Response::new(body))
        })
    }
}

async fn start() -> (kestrel::RunningServer, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (support::start(|_| {}, app(tx)).await, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>, within: Duration) -> Option<String> {
    tokio::time::timeout(within, rx.recv()).await.ok().flatten()
}

#[tokio::test]
async fn a_client_closing_while_the_app_works_fires_request_aborted() {
    let (server, mut rx) = start().await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    s.write_all(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(next(&mut rx, Duration::from_millis(100)).await, None);
    drop(s);
    assert_eq!(
        next(&mut rx, Duration::from_secs(3)).await.as_deref(),
        Some("aborted"),
        "the signal fires once the client is gone, not after the app's 10 s"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_leaving_a_waiting_response_body_fires_request_aborted() {
    let (server, mut rx) = start().await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    s.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = support::read_until(&mut s, "tick\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    drop(s);
    assert_eq!(
        next(&mut rx, Duration::from_secs(3)).await.as_deref(),
        Some("aborted")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_completed_request_never_fires_and_the_next_gets_its_own_signal() {
    let (server, mut rx) = start().await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    // The first request completes; a task keeps its signal.
    s.write_all(b"GET /keep HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    support::read_until(&mut s, "kept").await;
    // The second is aborted by the client leaving: only its signal fires.
    s.write_all(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    let mut seen = Vec::new();
    while let Some(r) = next(&mut rx, Duration::from_secs(3)).await {
        seen.push(r);
        if seen.len() == 2 {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, ["aborted", "kept aborted=false"]);
    server.stop().await;
}

#[tokio::test]
async fn pipelined_requests_read_while_the_app_works_are_served() {
    let (server, mut rx) = start().await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // While the app sleeps, more requests arrive; they are read ahead and
    // answered in order after it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut all = String::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            all.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .expect("all four answered, then closed");
    let bodies: Vec<&str> = all
        .split("HTTP/1.1 200 OK")
        .skip(1)
        .map(|r| r.rsplit("\r\n\r\n").next().unwrap())
        .collect();
    assert_eq!(bodies, ["slow", "hello", "slow", "hello"], "{all}");
    // Nothing was aborted.
    assert_eq!(next(&mut rx, Duration::from_millis(300)).await, None);
    server.stop().await;
}

#[tokio::test]
async fn a_half_close_after_the_request_fires_request_aborted() {
    // As in Kestrel, the end of the client's input while the request is in
    // progress aborts it; the response is still attempted.
    let (server, mut rx) = start().await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    s.write_all(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(
        next(&mut rx, Duration::from_secs(3)).await.as_deref(),
        Some("aborted")
    );
    let answer = support::read_to_close(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("aborted"), "{answer}");
    server.stop().await;
}

/// Reports until `n` arrived (or 3 s passed), sorted.
async fn reports(rx: &mut mpsc::UnboundedReceiver<String>, n: usize) -> Vec<String> {
    let mut seen = Vec::new();
    while seen.len() < n {
        match next(rx, Duration::from_secs(3)).await {
            Some(r) => seen.push(r),
            None => break,
        }
    }
    seen.sort();
    seen
}

#[tokio::test]
async fn a_client_leaving_after_a_body_read_by_another_task_fires_request_aborted() {
    let (server, mut rx) = start().await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    // The whole body arrives and a task of the app's reads it; the app
    // itself waits. Then the client leaves.
    s.write_all(b"POST /spawned-read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx, Duration::from_secs(3)).await.as_deref(),
        Some("read 5")
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(s);
    assert_eq!(
        next(&mut rx, Duration::from_secs(3)).await.as_deref(),
        Some("aborted"),
        "the driver watches for the client once the body is complete"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_leaving_in_the_middle_of_the_body_fires_request_aborted() {
    let (server, mut rx) = start().await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    s.write_all(b"POST /spawned-read HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    assert_eq!(reports(&mut rx, 2).await, ["aborted", "read failed"]);
    server.stop().await;
}

#[tokio::test]
async fn a_fully_sent_response_is_not_aborted_by_the_client_closing() {
    // `Content-Length: 5` and all 5 bytes sent, but the app's body has not
    // ended yet: the client has its whole response and may close.
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let app = move |req: Request<RequestBody>| {
        let tx = tx.clone();
        Box::pin(async move {
            let aborted = req.features().and_then(|f| f.aborted()).unwrap().clone();
            let (btx, brx) = mpsc::channel(4);
            tokio::spawn(async move {
                let _ = btx
                    .send(Ok(Frame::data(Bytes::from_static(b"hello"))))
                    .await;
                let fired = tokio::time::timeout(Duration::from_secs(1), aborted.aborted())
                    .await
                    .is_ok();
                let _ = tx.send(format!("aborted={fired}"));
                drop(btx);
            });
            let mut resp = Response::new(h2client::ChanBody(brx).boxed());
            resp.headers_mut().insert(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from_static("5"),
            );
            Ok(resp)
        }) as AppFuture
    };
    let server = support::start(|_| {}, app).await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    support::read_until(&mut s, "hello").await;
    drop(s);
    assert_eq!(
        next(&mut rx, Duration::from_secs(3)).await.as_deref(),
        Some("aborted=false")
    );
    server.stop().await;
}
