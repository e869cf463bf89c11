//! The middleware pipeline: ordering, short-circuit, map, map_when, 404.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kestrel_test_support::http1client as support;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kestrel::{Application, RequestBody};
use kestrel_hosting::pipeline::{
    box_response, empty_response, ApplicationBuilder, BoxResponseFuture, Next, PathBase, Pipeline,
};

fn text(s: &'static str) -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from_static(s.as_bytes())))
}

async fn call(p: &Pipeline, path: &str) -> (StatusCode, String, Option<String>) {
    let mut req = Request::new(RequestBody::empty());
    *req.uri_mut() = path.parse().unwrap();
    let resp = p.call(req).await.expect("response");
    let status = resp.status();
    let trail = resp
        .headers()
        .get("x-trail")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), trail)
}

/// A middleware that records its name before and after `next`.
fn recorder(
    log: Arc<Mutex<Vec<String>>>,
    name: &'static str,
) -> impl Fn(Request<RequestBody>, Next) -> BoxResponseFuture + Send + Sync + 'static {
    move |req, next: Next| {
        let log = log.clone();
        Box::pin(async move {
            log.lock().unwrap().push(format!("{name}>"));
            let mut resp = next.run(req).await?;
            log.lock().unwrap().push(format!("<{name}"));
            let trail = resp
                .headers()
                .get("x-trail")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            resp.headers_mut()
                .insert("x-trail", format!("{trail}{name}").parse().unwrap());
            Ok(resp)
        })
    }
}

#[tokio::test]
async fn middleware_runs_in_order_around_the_terminal_handler() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut app = ApplicationBuilder::new();
    app.use_middleware(recorder(log.clone(), "a"))
        .use_middleware(recorder(log.clone(), "b"));
    let inner = log.clone();
    app.run(move |_req: Request<RequestBody>| {
        let inner = inner.clone();
        async move {
            inner.lock().unwrap().push("app".into());
            text("done")
        }
    });
    let p = app.build();
    let (status, body, trail) = call(&p, "/").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
    assert_eq!(trail.as_deref(), Some("ba"));
    assert_eq!(*log.lock().unwrap(), ["a>", "b>", "app", "<b", "<a"]);
}

#[tokio::test]
async fn a_middleware_can_short_circuit() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut app = ApplicationBuilder::new();
    app.use_middleware(recorder(log.clone(), "outer"));
    app.use_middleware(|req: Request<RequestBody>, next: Next| async move {
        if req.uri().path() == "/blocked" {
            return Ok(empty_response(StatusCode::FORBIDDEN));
        }
        next.run(req).await
    });
    app.use_middleware(recorder(log.clone(), "inner"));
    app.run(|_req: Request<RequestBody>| async { text("ok") });
    let p = app.build();
    assert_eq!(call(&p, "/blocked").await.0, StatusCode::FORBIDDEN);
    assert_eq!(*log.lock().unwrap(), ["outer>", "<outer"]);
    assert_eq!(call(&p, "/fine").await.1, "ok");
}

#[tokio::test]
async fn no_terminal_handler_is_404_and_errors_propagate() {
    let p = ApplicationBuilder::new().build();
    assert_eq!(call(&p, "/").await.0, StatusCode::NOT_FOUND);

    let mut app = ApplicationBuilder::new();
    app.run(|_req: Request<RequestBody>| async {
        Err::<Response<Full<Bytes>>, _>(std::io::Error::other("boom"))
    });
    let p = app.build();
    let err = p
        .call(Request::new(RequestBody::empty()))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "boom");
}

#[tokio::test]
async fn map_branches_on_segment_boundaries_and_records_the_path_base() {
    let mut app = ApplicationBuilder::new();
    app.map("/api", |api| {
        api.map("v1", |v1| {
            v1.run(|req: Request<RequestBody>| async move {
                let base = req.extensions().get::<PathBase>().unwrap().0.clone();
                Response::new(Full::new(Bytes::from(format!("v1 base={base}"))))
            });
        });
        api.run(|req: Request<RequestBody>| async move {
            let base = req.extensions().get::<PathBase>().unwrap().0.clone();
            Response::new(Full::new(Bytes::from(format!(
                "api base={base} path={}",
                req.uri().path()
            ))))
        });
    });
    app.map("/empty/", |_branch| {});
    app.run(|_req: Request<RequestBody>| async { text("root") });
    let p = app.build();

    assert_eq!(call(&p, "/api").await.1, "api base=/api path=/api");
    assert_eq!(
        call(&p, "/api/items?x=1").await.1,
        "api base=/api path=/api/items"
    );
    assert_eq!(
        call(&p, "/API/items").await.1,
        "api base=/API path=/API/items"
    );
    assert_eq!(call(&p, "/api/v1/x").await.1, "v1 base=/api/v1");
    assert_eq!(call(&p, "/api/v1").await.1, "v1 base=/api/v1");
    assert_eq!(call(&p, "/api/v10").await.1, "api base=/api path=/api/v10");
    assert_eq!(call(&p, "/apix").await.1, "root");
    assert_eq!(call(&p, "/").await.1, "root");
    // A branch never falls back to the main pipeline: no terminal → 404.
    assert_eq!(call(&p, "/empty/x").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn map_when_branches_on_a_predicate() {
    let mut app = ApplicationBuilder::new();
    app.map_when(
        |req| req.headers().contains_key("x-branch"),
        |b| {
            b.use_middleware(|req: Request<RequestBody>, next: Next| async move {
                let mut resp = next.run(req).await?;
                resp.headers_mut()
                    .insert("x-trail", "branch".parse().unwrap());
                Ok(resp)
            });
            b.run(|_req: Request<RequestBody>| async { text("branch") });
        },
    );
    app.run(|_req: Request<RequestBody>| async { text("main") });
    let p = app.build();
    assert_eq!(call(&p, "/").await.1, "main");
    let mut req = Request::new(RequestBody::empty());
    req.headers_mut().insert("x-branch", "1".parse().unwrap());
    let resp = p.call(req).await.unwrap();
    assert_eq!(resp.headers()["x-trail"], "branch");
}

#[tokio::test]
async fn a_pipeline_can_be_the_terminal_handler_of_another_and_serves_over_kestrel() {
    let mut inner = ApplicationBuilder::new();
    inner.run(|_req: Request<RequestBody>| async { text("inner") });
    let mut outer = ApplicationBuilder::new();
    outer.use_middleware(|req: Request<RequestBody>, next: Next| async move {
        let resp = next.run(req).await?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await?.to_bytes();
        let upper = String::from_utf8_lossy(&bytes).to_uppercase();
        Ok(box_response(Response::from_parts(
            parts,
            Full::new(Bytes::from(upper)),
        )))
    });
    outer.run(inner.build());
    let p = outer.build();

    let (server, addr) = support::start(p.clone()).await;
    let reply = support::get(addr, "/", "localhost", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "INNER");
    server.stop().await;
}

#[tokio::test]
async fn stages_after_the_terminal_handler_never_run() {
    let mut app = ApplicationBuilder::new();
    app.run(|_req: Request<RequestBody>| async { text("first") });
    app.use_middleware(|_req: Request<RequestBody>, _next: Next| async {
        Ok(empty_response(StatusCode::IM_A_TEAPOT))
    });
    app.map("/x", |b| {
        b.run(|_req: Request<RequestBody>| async { text("branch") });
    });
    app.run(|_req: Request<RequestBody>| async { text("second") });
    let p = app.build();
    assert_eq!(call(&p, "/").await.1, "first");
    assert_eq!(call(&p, "/x").await.1, "first");
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Pipeline>();
    send_sync::<Next>();
    send_sync::<PathBase>();
    send_sync::<kestrel_hosting::middleware::HostFiltering>();
    send_sync::<kestrel_hosting::middleware::ForwardedHeaders>();
    send_sync::<kestrel_hosting::middleware::ForwardedInfo>();
    send_sync::<kestrel_hosting::middleware::StaticFiles>();
    send::<ApplicationBuilder>();
}
