//! The bare `WebHostBuilder` with `use_kestrel`: settings in code, endpoints
//! in code winning over `use_urls`, lifetime hooks in order, and
//! `stop_application` ending `run`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kestrel::hosting::WebHostBuilderKestrelExt;
use kestrel_hosting::WebHostBuilder;

#[tokio::test]
async fn code_endpoints_win_over_use_urls_and_hooks_run_in_order() {
    let events = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let builder = WebHostBuilder::new()
        .use_urls(["http://127.0.0.2:0"])
        .use_setting("Kestrel:Limits:MaxRequestHeaderCount", "3")
        .use_kestrel(|options| {
            options.listen((std::net::Ipv4Addr::LOCALHOST, 0), |_| {});
        })
        .configure(|app| {
            app.run(support::hello);
        });
    for (name, hook) in [("started", 0), ("stopping", 1), ("stopped", 2)] {
        let e = events.clone();
        let f = move || e.lock().unwrap().push(name);
        match hook {
            0 => builder.lifetime().on_started(f),
            1 => builder.lifetime().on_stopping(f),
            _ => builder.lifetime().on_stopped(f),
        }
    }
    let host = builder.build().unwrap();
    assert_eq!(host.context().environment, "Production");
    let running = host.start().await.unwrap();
    let addrs = running.addresses();
    assert_eq!(addrs.len(), 1);
    assert!(addrs[0].starts_with("http://127.0.0.1:"), "{addrs:?}");
    assert_eq!(*events.lock().unwrap(), ["started"]);
    let addr: std::net::SocketAddr = addrs[0].trim_start_matches("http://").parse().unwrap();
    let ok = support::raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(support::status_of(&ok), 200, "{ok}");
    // The limit set in code through use_setting applies: 4 headers > 3 → 431.
    let big = support::raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(support::status_of(&big), 431, "{big}");
    running.stop().await;
    assert_eq!(*events.lock().unwrap(), ["started", "stopping", "stopped"]);
}

#[tokio::test]
async fn stop_application_ends_run() {
    let host = WebHostBuilder::new()
        .use_urls(["http://127.0.0.1:0"])
        .use_shutdown_timeout(Duration::from_secs(1))
        .use_kestrel(|_| {})
        .configure(|app| {
            app.run(support::hello);
        })
        .build()
        .unwrap();
    let lifetime = host.lifetime().clone();
    let l2 = lifetime.clone();
    lifetime.on_started(move || l2.stop_application());
    tokio::time::timeout(Duration::from_secs(10), host.run())
        .await
        .expect("run returns after stop_application")
        .unwrap();
}

#[tokio::test]
async fn no_server_is_an_error() {
    let err = WebHostBuilder::new()
        .build()
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no server"), "{err}");
}
