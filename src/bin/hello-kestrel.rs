//! `hello-kestrel PORT`: the benchmark server. Listens on `127.0.0.1:PORT`
//! with every limit at its default and answers `/` with `Hello, World!`
//! (text/plain), `/json` with a 4 KiB JSON-ish document, and `POST /echo` with
//! the request body — the same bytes as the hyper reference server.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, SERVER};
use http::{HeaderValue, Request, Response};
use http_body_util::{Either, Full};
use kestrel::{KestrelServer, RequestBody};
use kestrel_demo::bench::{json_body, HELLO};

#[tokio::main]
async fn main() {
    let port: u16 = match std::env::args().next_back().and_then(|p| p.parse().ok()) {
        Some(p) => p,
        None => {
            eprintln!("usage: hello-kestrel PORT");
            std::process::exit(2);
        }
    };
    // With the `metrics` feature, record Kestrel's metrics into a Prometheus
    // recorder, to measure what metrics cost (`cargo xtask bench --metrics`).
    #[cfg(feature = "metrics")]
    let _prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("install the Prometheus recorder");
    let json = json_body();
    let app = move |req: Request<RequestBody>| {
        let json = json.clone();
        async move {
            let (ct, body) = match req.uri().path() {
                "/json" => ("application/json", Either::Left(Full::new(json))),
                "/echo" => ("application/octet-stream", Either::Right(req.into_body())),
                _ => (
                    "text/plain",
                    Either::Left(Full::new(Bytes::from_static(HELLO))),
                ),
            };
            let mut r = Response::new(body);
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            // Kestrel adds `Server: Kestrel` itself; it is set here only so
            // that the app is the same as the hyper reference's.
            r.headers_mut()
                .insert(SERVER, HeaderValue::from_static("Kestrel"));
            r
        }
    };
    let server = match KestrelServer::default()
        .urls([format!("http://127.0.0.1:{port}")])
        .start(app)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hello-kestrel: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("hello-kestrel listening on {}", server.addresses());
    server
        .stop_on(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
}
