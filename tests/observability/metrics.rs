//! Kestrel's metrics, recorded through the `metrics` facade into a test
//! recorder: connection counts, rejections, end reasons, request durations.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::h2client;
use kestrel_test_support::tls as tls_support;

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use support::{raw, read_to_close, read_until, start, status_of};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

type Entry = (MetricKind, String, Vec<(String, String)>, DebugValue);

/// Everything recorded so far. The debugging recorder's snapshots report
/// changes since the previous snapshot (gauges and counters reset,
/// histograms drained), so the test keeps every snapshot and sums them.
struct Recorded {
    snapshotter: Snapshotter,
    all: Vec<Entry>,
}

/// A fresh debugging recorder and the accumulator over its snapshots.
fn recorder() -> (DebuggingRecorder, Recorded) {
    let recorder = DebuggingRecorder::new();
    let rec = Recorded {
        snapshotter: recorder.snapshotter(),
        all: Vec::new(),
    };
    (recorder, rec)
}

impl Recorded {
    fn now(&mut self) -> &[Entry] {
        let fresh = self
            .snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(ck, _, _, v)| {
                let (kind, key) = ck.into_parts();
                let labels = key
                    .labels()
                    .map(|l| (l.key().to_string(), l.value().to_string()))
                    .collect();
                (kind, key.name().to_string(), labels, v)
            });
        self.all.extend(fresh);
        &self.all
    }
}

fn gauge(all: &[Entry], name: &str) -> f64 {
    all.iter()
        .filter(|(_, n, _, _)| n == name)
        .map(|(_, _, _, v)| match v {
            DebugValue::Gauge(g) => g.into_inner(),
            _ => 0.0,
        })
        .sum()
}

fn histogram_with(all: &[Entry], name: &str, label: (&str, &str)) -> usize {
    all.iter()
        .filter(|(_, n, l, _)| n == name && l.iter().any(|(k, v)| k == label.0 && v == label.1))
        .map(|(_, _, _, v)| match v {
            DebugValue::Histogram(h) => h.len(),
            _ => 0,
        })
        .sum()
}

#[tokio::test]
async fn connection_and_request_metrics() {
    let (recorder, mut rec) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);

    let server = start(
        |o| {
            o.limits.max_concurrent_connections = Some(2);
            o.limits.keep_alive_timeout = Duration::from_millis(200);
            o.limits.max_request_body_size = Some(5);
        },
        |req: http::Request<kestrel::RequestBody>| async move {
            use http_body_util::BodyExt;
            let _ = req.into_body().collect().await;
            http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
                b"Hello, World!",
            )))
        },
    )
    .await;
    let addr = support::addr(&server);

    // Two open connections: the gauge rises.
    let mut a = TcpStream::connect(addr).await.unwrap();
    a.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut a, "Hello, World!").await;
    let mut b = TcpStream::connect(addr).await.unwrap();
    b.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut b, "Hello, World!").await;
    assert_eq!(gauge(rec.now(), "kestrel.active_connections"), 2.0);

    // A third is rejected and counted.
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_to_close(&mut c).await, "");
    let all = rec.now();
    let rejected: u64 = all
        .iter()
        .filter(|(_, n, _, _)| n == "kestrel.rejected_connections")
        .map(|(_, _, _, v)| match v {
            DebugValue::Counter(c) => *c,
            _ => 0,
        })
        .sum();
    assert_eq!(rejected, 1);
    // Its duration is recorded with the reason, as Kestrel does.
    assert_eq!(
        histogram_with(
            all,
            "kestrel.connection.duration",
            ("error.type", "max_concurrent_connections_exceeded")
        ),
        1
    );
    let tags: Vec<String> = all
        .iter()
        .find(|(_, n, _, _)| n == "kestrel.rejected_connections")
        .map(|(_, _, l, _)| l.iter().map(|(k, v)| format!("{k}={v}")).collect())
        .unwrap();
    assert!(
        tags.contains(&"server.address=127.0.0.1".to_string()),
        "{tags:?}"
    );
    assert!(tags.contains(&"network.type=ipv4".to_string()), "{tags:?}");
    assert!(
        tags.contains(&"network.transport=tcp".to_string()),
        "{tags:?}"
    );

    // Idle connections end by the keep-alive timeout: error.type says so.
    assert_eq!(read_to_close(&mut a).await, "");
    assert_eq!(read_to_close(&mut b).await, "");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let all = rec.now();
    assert_eq!(
        gauge(all, "kestrel.active_connections"),
        0.0,
        "the gauge falls again"
    );
    assert_eq!(
        histogram_with(
            all,
            "kestrel.connection.duration",
            ("error.type", "keep_alive_timeout")
        ),
        2
    );
    assert!(
        histogram_with(
            all,
            "kestrel.connection.duration",
            ("network.protocol.version", "1.1")
        ) >= 2
    );

    // A body over the limit: 413, and the connection's end reason.
    let reply = raw(
        addr,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789",
    )
    .await;
    assert_eq!(status_of(&reply), 413);
    // A trickled head: request_headers_timeout. (Default 30 s is too long; a
    // malformed line is enough to check another reason.)
    let reply = raw(addr, b"GET / HTTP/9.9\r\nHost: x\r\n\r\n").await;
    assert_eq!(status_of(&reply), 505);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let all = rec.now();
    assert_eq!(
        histogram_with(
            all,
            "kestrel.connection.duration",
            ("error.type", "max_request_body_size_exceeded")
        ),
        1
    );
    assert_eq!(
        histogram_with(
            all,
            "kestrel.connection.duration",
            ("error.type", "invalid_http_version")
        ),
        1
    );

    // Request durations with method and status.
    assert_eq!(
        histogram_with(
            all,
            "http.server.request.duration",
            ("http.response.status_code", "200")
        ),
        2
    );
    assert!(
        histogram_with(
            all,
            "http.server.request.duration",
            ("http.request.method", "GET")
        ) >= 2
    );
    server.stop().await;
}

#[tokio::test]
async fn request_headers_timeout_end_reason() {
    let (recorder, mut rec) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let server = start(
        |o| o.limits.request_headers_timeout = Duration::from_millis(300),
        support::hello,
    )
    .await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost:").await.unwrap();
    let reply = read_to_close(&mut s).await;
    assert_eq!(status_of(&reply), 408);
    // The server drains what the client may still send; closing ends that.
    drop(s);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let all = rec.now();
    assert_eq!(
        histogram_with(
            all,
            "kestrel.connection.duration",
            ("error.type", "request_headers_timeout")
        ),
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn tls_handshake_metrics_and_failed_handshake_end_reason() {
    let (recorder, mut rec) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let ca = tls_support::TestCa::new();
    let https = kestrel::tls::HttpsOptions::new().with_certificate(ca.server_cert(&["localhost"]));
    let server =
        tls_support::serve(https, kestrel::HttpProtocols::HTTP1, tls_support::tls_app).await;
    let addr = tls_support::addr(&server);
    // A good handshake and request.
    let config = tls_support::client_config(&ca.pem, &["http/1.1"], None);
    let reply = tls_support::https_get(addr, "localhost", config)
        .await
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    // A client that speaks plain HTTP fails the handshake.
    let reply = raw(addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let all = rec.now();
    assert_eq!(
        histogram_with(
            all,
            "kestrel.tls_handshake.duration",
            ("tls.protocol.version", "1.3")
        ),
        1
    );
    assert_eq!(
        histogram_with(
            all,
            "kestrel.tls_handshake.duration",
            ("error.type", "tls_handshake_failed")
        ),
        1
    );
    assert_eq!(
        histogram_with(
            all,
            "kestrel.connection.duration",
            ("error.type", "tls_handshake_failed")
        ),
        1
    );
    assert_eq!(gauge(all, "kestrel.active_tls_handshakes"), 0.0);
    server.stop().await;
}

#[tokio::test]
async fn http2_requests_and_connections_are_recorded_as_version_2() {
    let (recorder, mut rec) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let server = start(|_| {}, support::hello).await;
    let mut client = h2client::connect(support::addr(&server)).await;
    for _ in 0..3 {
        let (resp, _) = client
            .send_request(h2client::request("GET", "/"), true)
            .unwrap();
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), 200);
        let _ = h2client::read_body(resp.into_body()).await.unwrap();
    }
    drop(client);
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let all = rec.now();
    assert_eq!(
        histogram_with(
            all,
            "http.server.request.duration",
            ("network.protocol.version", "2")
        ),
        3
    );
    assert_eq!(
        histogram_with(
            all,
            "kestrel.connection.duration",
            ("network.protocol.version", "2")
        ),
        1
    );
}

#[tokio::test]
async fn proxy_protocol_failures_end_as_request_header_problems() {
    use kestrel::proxy_protocol::{ListenOptionsProxyProtocolExt, ProxyProtocolOptions};
    let (recorder, mut rec) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let server = start(
        |o| {
            o.limits.request_headers_timeout = Duration::from_millis(300);
            o.listen(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), |l| {
                l.use_proxy_protocol(ProxyProtocolOptions::new());
            });
        },
        support::hello,
    )
    .await;
    let a = support::addr(&server);
    // No PROXY header, then a header that never completes.
    assert_eq!(raw(a, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await, "");
    let mut s = TcpStream::connect(a).await.unwrap();
    s.write_all(b"PROXY TCP4 ").await.unwrap();
    assert_eq!(read_to_close(&mut s).await, "");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let all = rec.now();
    let reason = |r| histogram_with(all, "kestrel.connection.duration", ("error.type", r));
    assert_eq!(reason("invalid_request_headers"), 1);
    assert_eq!(reason("request_headers_timeout"), 1);
    assert_eq!(reason("tls_handshake_failed"), 0);
    server.stop().await;
}

/// An HTTP/2 connection error (here a PING of the wrong length: GOAWAY
/// FRAME_SIZE_ERROR) ends the connection as `protocol_error`.
#[tokio::test]
async fn http2_connection_errors_end_as_protocol_error() {
    let (recorder, mut rec) = recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let server = start(|_| {}, support::hello).await;
    let mut s = TcpStream::connect(support::addr(&server)).await.unwrap();
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // SETTINGS, empty
    bytes.extend_from_slice(&[0, 0, 7, 6, 0, 0, 0, 0, 0]); // PING, 7 octets (not 8)
    bytes.extend_from_slice(&[0; 7]);
    s.write_all(&bytes).await.unwrap();
    let _ = read_to_close(&mut s).await;
    drop(s);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let all = rec.now();
    assert_eq!(
        histogram_with(
            all,
            "kestrel.connection.duration",
            ("error.type", "protocol_error")
        ),
        1
    );
    server.stop().await;
}
