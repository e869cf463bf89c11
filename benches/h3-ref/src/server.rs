//! `hello-h3 --tls CERT.pem KEY.pem PORT`: the bare HTTP/3 reference server
//! for `cargo xtask bench` — `h3` + `h3-quinn` on a quinn endpoint with
//! quinn's default transport settings (GSO on where the kernel has it), a
//! task per connection and per request, nothing else. It answers every
//! request as `hello-hyper` answers `/`: `Hello, World!` with
//! `content-type: text/plain`, `server: Kestrel`, `content-length: 13` and
//! `date` (hyper adds the last two itself; h3 does not).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, DATE, SERVER};
use http::{HeaderValue, Response};

const HELLO: &[u8] = b"Hello, World!";

thread_local! {
    /// The `Date` value, formatted once a second (as hyper caches it).
    static DATE_CACHE: RefCell<(u64, HeaderValue)> = const { RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
}

fn date() -> HeaderValue {
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    DATE_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            let v = HeaderValue::from_str(&httpdate::fmt_http_date(now))
                .unwrap_or(HeaderValue::from_static(""));
            *c = (secs, v);
        }
        c.1.clone()
    })
}

type Resolver = h3::server::RequestResolver<h3_quinn::Connection, Bytes>;

async fn serve_request(resolver: Resolver) {
    let Ok((_req, mut stream)) = resolver.resolve_request().await else {
        return;
    };
    let mut resp = Response::new(());
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert(SERVER, HeaderValue::from_static("Kestrel"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(HELLO.len()));
    h.insert(DATE, date());
    if stream.send_response(resp).await.is_err() {
        return;
    }
    if stream.send_data(Bytes::from_static(HELLO)).await.is_err() {
        return;
    }
    let _ = stream.finish().await;
}

async fn serve_connection(incoming: quinn::Incoming) {
    let Ok(conn) = incoming.await else {
        return;
    };
    let Ok(mut h3) = h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(conn)).await
    else {
        return;
    };
    while let Ok(Some(resolver)) = h3.accept().await {
        tokio::spawn(serve_request(resolver));
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = args.last().and_then(|p| p.parse().ok()).unwrap_or(8443);
    let Some((cert, key)) = args
        .iter()
        .position(|a| a == "--tls")
        .and_then(|i| Some((args.get(i + 1)?, args.get(i + 2)?)))
    else {
        eprintln!("usage: hello-h3 --tls CERT.pem KEY.pem PORT");
        std::process::exit(2);
    };
    let crypto = match h3_ref::server_crypto(cert, key) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hello-h3: {e}");
            std::process::exit(1);
        }
    };
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let endpoint = match quinn::Endpoint::server(config, addr) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("hello-h3: cannot bind {addr}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("hello-h3 listening on https://{addr} (HTTP/3 over QUIC, UDP)");
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(serve_connection(incoming));
    }
}
