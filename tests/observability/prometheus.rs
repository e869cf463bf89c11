//! The Prometheus endpoint: a real scrape over HTTP shows Kestrel's
//! instruments. (A process has one global recorder: this is the only test of the
//! observability binary that installs one.)
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;

use kestrel::prometheus::PrometheusEndpoint;
use support::{raw, start, status_of};

#[tokio::test]
async fn scrape_shows_kestrels_instruments() {
    let prometheus = PrometheusEndpoint::start("http://127.0.0.1:0")
        .await
        .unwrap();
    let scrape_addr: std::net::SocketAddr = prometheus
        .addresses()
        .iter()
        .next()
        .unwrap()
        .as_str()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let server = start(
        |o| o.limits.max_concurrent_connections = Some(10),
        support::hello,
    )
    .await;
    for _ in 0..3 {
        let reply = raw(
            support::addr(&server),
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(status_of(&reply), 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let scrape = raw(
        scrape_addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&scrape), 200, "{scrape}");
    assert!(scrape.contains("text/plain; version=0.0.4"), "{scrape}");
    for name in [
        "kestrel_active_connections",
        "kestrel_connection_duration",
        "http_server_request_duration",
    ] {
        assert!(
            scrape.contains(name),
            "{name} missing from the scrape:\n{scrape}"
        );
    }
    assert!(
        scrape.contains("http_response_status_code=\"200\""),
        "{scrape}"
    );
    // The endpoint serves only /metrics, on its own listener.
    let other = raw(
        scrape_addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&other), 404);
    server.stop().await;
    prometheus.stop().await;
}
