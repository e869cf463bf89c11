//! tower interop: an axum `Router` served by `KestrelServer` through
//! `ServiceApp`, and as a pipeline's terminal handler behind Kestrel
//! middleware and tower layers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kestrel_test_support::http1client as support;

use std::time::Duration;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use kestrel_hosting::middleware::HostFiltering;
use kestrel_hosting::pipeline::ApplicationBuilder;
use kestrel_hosting::tower::ServiceApp;

fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "hello from axum" }))
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move { format!("user {id}") }),
        )
        .route(
            "/echo",
            post(|body: String| async move { format!("echo: {body}") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
}

#[tokio::test]
async fn an_axum_router_is_a_kestrel_application() {
    let (server, addr) = support::start(ServiceApp::new(router())).await;
    let r = support::get(addr, "/", "localhost", &[]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "hello from axum"));
    let r = support::get(addr, "/users/42", "localhost", &[]).await;
    assert_eq!(r.text(), "user 42");
    let r = support::send(
        addr,
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "echo: hello"));
    let r = support::get(addr, "/nope", "localhost", &[]).await;
    assert_eq!(r.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn a_router_behind_middleware_and_tower_layers() {
    let mut app = ApplicationBuilder::new();
    app.use_middleware(HostFiltering::new("localhost").unwrap());
    app.use_layer(tower::util::MapResponseLayer::new(
        |mut r: http::Response<kestrel_hosting::pipeline::Body>| {
            r.headers_mut()
                .insert("x-layer", http::HeaderValue::from_static("map-response"));
            r
        },
    ));
    app.use_layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(
        200,
    )));
    app.use_layer(tower::limit::ConcurrencyLimitLayer::new(8));
    app.run_service(router());
    let (server, addr) = support::start(app.build()).await;

    let r = support::get(addr, "/users/7", "localhost:1234", &[]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "user 7"));
    assert_eq!(r.header("x-layer"), Some("map-response"));
    // Host filtering runs first.
    assert_eq!(support::get(addr, "/", "evil.com", &[]).await.status, 400);
    // The timeout layer's error becomes a 500.
    assert_eq!(
        support::get(addr, "/slow", "localhost", &[]).await.status,
        500
    );
    server.stop().await;
}
