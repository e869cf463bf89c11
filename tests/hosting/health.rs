//! Health checks (`kestrel_hosting::middleware::health_checks`) on a real
//! socket: statuses and HTTP codes, timeouts, tags, the JSON report, and
//! readiness flipping to 503 as soon as the graceful shutdown begins, while
//! the server still serves during the shutdown delay; the demo's `/healthz`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::demo_process;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kestrel::hosting::WebHostBuilderKestrelExt;
use kestrel_hosting::middleware::{
    HealthCheckEndpoint, HealthCheckResult, HealthChecks, HealthStatus,
};
use kestrel_hosting::{RunningHost, WebHostBuilder};
use support::{raw, status_of};

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes()
}

fn body(response: &str) -> &str {
    response.split("\r\n\r\n").nth(1).unwrap_or("")
}

fn addr_of(host: &RunningHost) -> SocketAddr {
    host.addresses()[0]
        .trim_start_matches("http://")
        .parse()
        .unwrap()
}

/// A host on 127.0.0.1:0 with a "db" check whose status the test sets
/// (0 healthy, 1 degraded, 2 unhealthy, 3 hangs) and the shutdown check.
async fn start_host(delay: Duration) -> (RunningHost, Arc<AtomicU8>) {
    let state = Arc::new(AtomicU8::new(0));
    let s = state.clone();
    let builder = WebHostBuilder::new()
        .use_urls(["http://127.0.0.1:0"])
        .use_shutdown_delay(delay)
        .use_shutdown_timeout(Duration::from_secs(5));
    let checks = HealthChecks::new()
        .add_check_with(
            "db",
            move || {
                let v = s.load(Ordering::SeqCst);
                async move {
                    match v {
                        0 => HealthCheckResult::healthy(),
                        1 => HealthCheckResult::degraded("replica lag"),
                        2 => HealthCheckResult::unhealthy("connection refused"),
                        _ => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            HealthCheckResult::healthy()
                        }
                    }
                }
            },
            Duration::from_millis(300),
            ["ready", "db"],
        )
        .add_shutdown_check(builder.lifetime(), ["ready"]);
    let host = builder
        .use_kestrel(|_| {})
        .configure(move |app| {
            app.use_middleware(HealthCheckEndpoint::new("/healthz", &checks).json(true));
            app.use_middleware(HealthCheckEndpoint::new("/live", &checks).tags(["live"]));
            app.use_middleware(HealthCheckEndpoint::new("/ready", &checks).tags(["ready"]));
            app.run(support::hello);
        })
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    (host, state)
}

#[tokio::test]
async fn statuses_map_to_200_200_503_with_timeouts_tags_and_json() {
    let (host, state) = start_host(Duration::ZERO).await;
    let addr = addr_of(&host);

    let r = raw(addr, &get("/ready")).await;
    assert_eq!(status_of(&r), 200, "{r}");
    assert_eq!(body(&r), "Healthy");
    assert!(r.contains("content-type: text/plain"), "{r}");
    assert!(r.contains("cache-control: no-store, no-cache"), "{r}");

    state.store(1, Ordering::SeqCst);
    let r = raw(addr, &get("/ready")).await;
    assert_eq!(status_of(&r), 200, "{r}");
    assert_eq!(body(&r), "Degraded");

    state.store(2, Ordering::SeqCst);
    let r = raw(addr, &get("/ready")).await;
    assert_eq!(status_of(&r), 503, "{r}");
    assert_eq!(body(&r), "Unhealthy");
    // Liveness runs no "db" check: still 200.
    let r = raw(addr, &get("/live")).await;
    assert_eq!(status_of(&r), 200, "{r}");
    assert_eq!(body(&r), "Healthy");

    // The JSON report names every check.
    let r = raw(addr, &get("/healthz")).await;
    assert_eq!(status_of(&r), 503, "{r}");
    assert!(r.contains("content-type: application/json"), "{r}");
    let json: serde_json::Value = serde_json::from_str(body(&r)).unwrap();
    assert_eq!(json["status"], "Unhealthy");
    assert_eq!(json["entries"]["db"]["status"], "Unhealthy");
    assert_eq!(json["entries"]["db"]["description"], "connection refused");
    assert_eq!(json["entries"]["shutdown"]["status"], "Healthy");

    // A hanging check answers Unhealthy at its timeout (300 ms), not later.
    state.store(3, Ordering::SeqCst);
    let t = Instant::now();
    let r = raw(addr, &get("/ready")).await;
    assert_eq!(status_of(&r), 503, "{r}");
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // Other paths and methods pass on to the app.
    let r = raw(addr, &get("/")).await;
    assert_eq!(body(&r), "Hello, World!");
    let r = raw(
        addr,
        b"POST /ready HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(body(&r), "Hello, World!");
    assert_eq!(HealthStatus::Degraded.http_status(), 200);
    host.stop().await;
}

#[tokio::test]
async fn readiness_flips_to_503_when_shutdown_begins_and_the_server_serves_through_the_delay() {
    let delay = Duration::from_millis(1500);
    let (host, _) = start_host(delay).await;
    let addr = addr_of(&host);
    assert_eq!(status_of(&raw(addr, &get("/ready")).await), 200);

    let t0 = Instant::now();
    let stopping = tokio::spawn(host.stop());
    // Readiness fails at once (the stopping hooks fire before the delay)...
    let mut flipped = None;
    while t0.elapsed() < delay {
        let r = raw(addr, &get("/ready")).await;
        if status_of(&r) == 503 {
            flipped = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let flipped = flipped.expect("readiness answered 503 during the shutdown delay");
    assert!(flipped < Duration::from_millis(500), "{flipped:?}");
    // ...while new connections are still accepted and served: liveness
    // and the app answer 200 during the delay.
    let r = raw(addr, &get("/live")).await;
    assert_eq!(status_of(&r), 200, "{r}");
    let r = raw(addr, &get("/healthz")).await;
    let json: serde_json::Value = serde_json::from_str(body(&r)).unwrap();
    assert_eq!(json["entries"]["shutdown"]["status"], "Unhealthy");
    assert_eq!(
        json["entries"]["shutdown"]["description"],
        "the application is shutting down"
    );
    assert_eq!(body(&raw(addr, &get("/")).await), "Hello, World!");
    assert!(t0.elapsed() < delay, "the checks ran within the delay");
    // After the delay the server stops accepting.
    stopping.await.unwrap();
    assert!(t0.elapsed() >= delay, "{:?}", t0.elapsed());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn without_a_delay_the_server_stops_accepting_at_once() {
    let (host, _) = start_host(Duration::ZERO).await;
    let addr = addr_of(&host);
    let t0 = Instant::now();
    host.stop().await;
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[test]
fn the_demo_maps_healthz_and_readiness_fails_after_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = demo_process::spawn(demo_process::command(
        dir.path(),
        &["--urls", "http://127.0.0.1:0", "--shutdownDelaySeconds=2"],
    ));
    let addr: SocketAddr = demo
        .listening_on()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    demo.wait_for("Application started.");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(raw(addr, &get("/healthz")));
    assert_eq!(status_of(&r), 200, "{r}");
    assert_eq!(body(&r), "Healthy");
    let r = rt.block_on(raw(addr, &get("/healthz/ready")));
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(body(&r).contains("\"status\":\"Healthy\""), "{r}");

    let t0 = Instant::now();
    demo.sigterm();
    demo.wait_for("Application is shutting down...");
    // Logged once the stopping hooks have run (readiness is failing).
    demo.wait_for("before the server stops accepting");
    for path in ["/healthz", "/healthz/ready"] {
        let r = rt.block_on(raw(addr, &get(path)));
        assert_eq!(status_of(&r), 503, "{path}: {r}");
    }
    let r = rt.block_on(raw(addr, &get("/healthz/live")));
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    let status = demo.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status:?}\n{}", demo.output());
    assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(std::net::TcpStream::connect(addr).is_err());
}
