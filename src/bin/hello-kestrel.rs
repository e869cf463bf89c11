//! `hello-kestrel [--tls CERT.pem KEY.pem] PORT`: the benchmark server.
//! Listens on `127.0.0.1:PORT` (HTTPS with `--tls`, HTTP/1.1 and HTTP/2 by
//! ALPN) with every limit at its default and answers `/` with `Hello, World!`
//! (text/plain), `/json` with a 4 KiB JSON-ish document, and `POST /echo` with
//! the request body — the same bytes as the hyper reference server.
//!
//! Built with the `http3` feature (as `cargo xtask bench` builds it), the
//! `--tls` endpoint is `Http1AndHttp2AndHttp3`: HTTP/3 over QUIC on the same
//! port (UDP). Its `Alt-Svc` header is turned off, so that HTTP/1.1 and
//! HTTP/2 responses stay byte for byte those of the hyper reference.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, SERVER};
use http::{HeaderValue, Request, Response};
use http_body_util::{Either, Full};
use kestrel::tls::{Certificate, HttpsOptions, ListenOptionsHttpsExt};
use kestrel::{KestrelServer, KestrelServerOptions, RequestBody};
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
    let args: Vec<String> = std::env::args().collect();
    let tls = args
        .iter()
        .position(|a| a == "--tls")
        .and_then(|i| Some((args.get(i + 1)?, args.get(i + 2)?)));
    let server = match tls {
        None => KestrelServer::default().urls([format!("http://127.0.0.1:{port}")]),
        Some((cert, key)) => {
            let cert = match Certificate::from_pem_files(cert, key) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("hello-kestrel: {e}");
                    std::process::exit(1);
                }
            };
            let mut options = KestrelServerOptions::default();
            options.listen(SocketAddr::from(([127, 0, 0, 1], port)), |l| {
                #[cfg(feature = "http3")]
                {
                    l.protocols = kestrel::HttpProtocols::HTTP1_AND_HTTP2_AND_HTTP3;
                    l.disable_alt_svc_header = true;
                }
                l.use_https(HttpsOptions::new().with_certificate(cert));
            });
            KestrelServer::new(options)
        }
    };
    let server = match server.start(app).await {
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
