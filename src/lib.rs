//! The demo application behind `cargo run --release`: the sample page of
//! the Kestrel docs, plus an echo endpoint. The binary (`src/main.rs`) hosts
//! it; the workspace integration tests under `tests/` drive it with real clients.
//!
//! * `GET`/`HEAD /`: "Hosted by Kestrel", the listening addresses and the request URL;
//! * `POST /echo`: echoes the request body as it streams in;
//! * `/ws`: a WebSocket echo, on top of the server's upgrade feature
//!   ([`websocket`]): `GET` + `Upgrade: websocket` on HTTP/1.1, extended
//!   CONNECT (RFC 8441) on HTTP/2;
//! * `OPTIONS *`: 204 with the server's methods in `Allow`; `CONNECT` (a
//!   tunnel): 405;
//! * other methods on those paths: 405 with `Allow`; other paths: 404.
//!
//! [`bench`](mod@bench) holds the payloads of the benchmark servers.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HOST};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use kestrel::{RequestBody, RequestFeaturesExt};

/// The demo's response body: a full buffer or the streamed request body.
pub type DemoBody = Either<Full<Bytes>, RequestBody>;

fn text(status: StatusCode, body: &'static str) -> Response<DemoBody> {
    let mut r = Response::new(Either::Left(Full::new(Bytes::from_static(body.as_bytes()))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The request URL as ASP.NET Core's `GetDisplayUrl` shows it.
fn display_url(req: &Request<RequestBody>) -> String {
    if req.uri().scheme().is_some() {
        return req.uri().to_string();
    }
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    format!("http://{host}{path}")
}

fn method_not_allowed(allow: &'static str) -> Response<DemoBody> {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n");
    r.headers_mut()
        .insert(ALLOW, http::HeaderValue::from_static(allow));
    r
}

/// The client's address: the forwarded one when the forwarded-headers
/// middleware applied one (behind nginx), else the connection's peer.
fn client_address(req: &Request<RequestBody>) -> String {
    use kestrel_hosting::middleware::ForwardedInfo;
    if let Some(addr) = req
        .extensions()
        .get::<ForwardedInfo>()
        .and_then(|f| f.remote_addr)
    {
        return addr.ip().to_string();
    }
    req.features()
        .and_then(|f| f.connection())
        .map(|c| match c.remote_addr().ip() {
            Some(a) => a.ip().to_string(),
            None => "(none: Unix socket)".to_string(),
        })
        .unwrap_or_default()
}

/// The methods the demo serves somewhere (the `Allow` of `OPTIONS *`).
const SERVER_METHODS: &str = "GET, HEAD, POST, OPTIONS";

/// The demo application.
pub async fn app(req: Request<RequestBody>) -> Response<DemoBody> {
    // `OPTIONS *` asks about the server as a whole (RFC 9110 §9.3.7).
    if req.method() == Method::OPTIONS && req.uri() == "*" {
        let mut r = Response::new(Either::Left(Full::new(Bytes::new())));
        *r.status_mut() = StatusCode::NO_CONTENT;
        r.headers_mut()
            .insert(ALLOW, http::HeaderValue::from_static(SERVER_METHODS));
        return r;
    }
    // CONNECT asks for a tunnel, which the demo is not (only `/ws`'s extended
    // CONNECT is served): 405 with an empty `Allow`, "no method" for an
    // authority target (RFC 9110 §10.2.1).
    if req.method() == Method::CONNECT && req.uri().path() != "/ws" {
        return method_not_allowed("");
    }
    match req.uri().path() {
        "/" => match *req.method() {
            Method::GET | Method::HEAD => {
                let addresses = req
                    .features()
                    .and_then(|f| f.connection())
                    .map(|c| c.server_addresses().to_string())
                    .unwrap_or_default();
                let page = format!(
                    "<!DOCTYPE html>\n<html><head><title>Kestrel for Rust</title></head><body>\n\
                     <p>Hosted by Kestrel</p>\n\
                     <p>Listening on the following addresses: {}</p>\n\
                     <p>Request URL: {}</p>\n\
                     <p>Client address: {}</p>\n</body></html>\n",
                    escape_html(&addresses),
                    escape_html(&display_url(&req)),
                    escape_html(&client_address(&req))
                );
                let mut r = Response::new(Either::Left(Full::new(Bytes::from(page))));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    http::HeaderValue::from_static("text/html; charset=utf-8"),
                );
                r
            }
            _ => method_not_allowed("GET, HEAD"),
        },
        "/ws" => websocket::echo(req).await,
        "/echo" => match *req.method() {
            Method::POST => {
                let content_type = req.headers().get(CONTENT_TYPE).cloned();
                let mut r = Response::new(Either::Right(req.into_body()));
                if let Some(ct) = content_type {
                    r.headers_mut().insert(CONTENT_TYPE, ct);
                }
                r
            }
            _ => method_not_allowed("POST"),
        },
        _ => text(StatusCode::NOT_FOUND, "404 Not Found\n"),
    }
}

pub mod bench {
    //! Payloads shared by the benchmark servers (`hello-kestrel` and the hyper
    //! reference), so that both send byte-identical bodies.

    use bytes::Bytes;

    /// The plaintext body.
    pub const HELLO: &[u8] = b"Hello, World!";

    /// The 4 KiB JSON-ish body of `/json`.
    pub fn json_body() -> Bytes {
        let mut s = String::from("{\"items\":[");
        let mut i = 0;
        while s.len() < 4096 - 64 {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!("{{\"id\":{i},\"name\":\"item-{i}\",\"ok\":true}}"));
            i += 1;
        }
        s.push_str("]}");
        while s.len() < 4096 {
            s.push(' ');
        }
        Bytes::from(s)
    }
}

pub mod websocket {
    //! A WebSocket echo on top of the server's upgrade feature (Kestrel's
    //! `IHttpUpgradeFeature` / `IHttpExtendedConnectFeature`): the server knows
    //! nothing of WebSocket; this handler checks the handshake, accepts the
    //! upgrade, answers `101`, and runs the protocol with tokio-tungstenite on
    //! the raw stream. The same code serves both handshakes:
    //!
    //! * HTTP/1.1 (RFC 6455): `GET` with `Upgrade: websocket` and a
    //!   `Sec-WebSocket-Key`, answered with `101` and `Sec-WebSocket-Accept`;
    //! * HTTP/2 (RFC 8441): an extended CONNECT with `:protocol websocket`
    //!   and no key; the server sends the `101` as `200`.

    use bytes::Bytes;
    use futures_util::{SinkExt, StreamExt};
    use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
    use http::{HeaderValue, Request, Response, StatusCode};
    use http_body_util::{Either, Full};
    use kestrel::{RequestBody, RequestFeaturesExt};
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::WebSocketStream;

    use super::DemoBody;

    fn plain(status: StatusCode, text: &'static str) -> Response<DemoBody> {
        let mut r = Response::new(Either::Left(Full::new(Bytes::from_static(text.as_bytes()))));
        *r.status_mut() = status;
        r
    }

    /// Answer a WebSocket handshake (HTTP/1.1 upgrade or HTTP/2 extended
    /// CONNECT) and echo every text and binary message.
    pub async fn echo(req: Request<RequestBody>) -> Response<DemoBody> {
        let Some(upgrade) = req.features().and_then(|f| f.upgrade()) else {
            return plain(
                StatusCode::BAD_REQUEST,
                "a WebSocket handshake is expected here\n",
            );
        };
        let is_websocket = upgrade
            .protocol()
            .is_some_and(|p| p.eq_ignore_ascii_case("websocket"));
        // Only the HTTP/1.1 handshake carries a key (RFC 8441 §5 drops it).
        let accept = req
            .headers()
            .get(SEC_WEBSOCKET_KEY)
            .map(|key| derive_accept_key(key.as_bytes()));
        if !is_websocket || (accept.is_none() && !upgrade.is_extended_connect()) {
            return plain(
                StatusCode::BAD_REQUEST,
                "a WebSocket handshake is expected here\n",
            );
        }
        let on_upgrade = match upgrade.upgrade() {
            Ok(u) => u,
            // For instance max_concurrent_upgraded_connections is reached.
            Err(e) => {
                tracing::debug!("WebSocket upgrade refused: {e}");
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many upgraded connections\n",
                );
            }
        };
        tokio::spawn(async move {
            let Ok(io) = on_upgrade.await else { return };
            let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
            // After a close frame, the next poll sends tungstenite's reply
            // and ends the stream: a clean closing handshake.
            while let Some(Ok(msg)) = ws.next().await {
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    break;
                }
            }
        });
        let mut r = plain(StatusCode::SWITCHING_PROTOCOLS, "");
        r.headers_mut()
            .insert(UPGRADE, HeaderValue::from_static("websocket"));
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(v) = accept.and_then(|a| HeaderValue::from_str(&a).ok()) {
            r.headers_mut().insert(SEC_WEBSOCKET_ACCEPT, v);
        }
        r
    }
}
