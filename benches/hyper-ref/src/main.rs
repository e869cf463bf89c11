//! `hello-hyper [--pipeline-flush] [--echo] PORT`: the hyper 1.x reference
//! server for `cargo xtask bench`. It answers exactly what `hello-kestrel`
//! answers, byte for byte in size: `/` → `Hello, World!` (text/plain),
//! `/json` → a 4 KiB JSON-ish document, `POST /echo` → the request body.
//! HTTP/1.1 and HTTP/2 (prior knowledge) are both served on the port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use kestrel_demo::bench::json_body;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A TLS acceptor for the PEM certificate chain and key, with ALPN h2 and
/// http/1.1 (Kestrel's default for an Http1AndHttp2 endpoint).
fn tls_acceptor(cert: &str, key: &str) -> Result<TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

type Body = Either<Full<Bytes>, Incoming>;

async fn handle(req: Request<Incoming>, json: Bytes) -> Result<Response<Body>, Infallible> {
    let (ct, body) = match req.uri().path() {
        "/json" => ("application/json", Either::Left(Full::new(json))),
        "/echo" => ("application/octet-stream", Either::Right(req.into_body())),
        _ => (
            "text/plain",
            Either::Left(Full::new(Bytes::from_static(b"Hello, World!"))),
        ),
    };
    let mut r = Response::new(body);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(ct),
    );
    r.headers_mut().insert(
        http::header::SERVER,
        http::HeaderValue::from_static("Kestrel"),
    );
    Ok(r)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pipeline_flush = args.iter().any(|a| a == "--pipeline-flush");
    let port: u16 = args.last().and_then(|p| p.parse().ok()).unwrap_or(8081);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hello-hyper: cannot bind {addr}: {e}");
            std::process::exit(1);
        }
    };
    let tls = args
        .iter()
        .position(|a| a == "--tls")
        .and_then(|i| Some((args.get(i + 1)?, args.get(i + 2)?)))
        .map(|(cert, key)| match tls_acceptor(cert, key) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("hello-hyper: {e}");
                std::process::exit(1);
            }
        });
    let json = json_body();
    eprintln!(
        "hello-hyper listening on {}://{addr} (pipeline_flush={pipeline_flush})",
        if tls.is_some() { "https" } else { "http" }
    );
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let json = json.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().pipeline_flush(pipeline_flush);
            let svc = service_fn(move |req| handle(req, json.clone()));
            match tls {
                None => {
                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                }
                Some(acceptor) => {
                    // Like Kestrel's, the handshake has a 10 s deadline.
                    let accepted =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                            .await;
                    if let Ok(Ok(stream)) = accepted {
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                }
            }
        });
    }
}
