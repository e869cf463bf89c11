//! # kestrel-http2
//!
//! HTTP/2 for Kestrel for Rust: a connection driver on the [`h2`] crate that
//! adds what a Kestrel-grade server needs and `h2` leaves to its user.
//!
//! * **Limits, never `h2`'s defaults**: every [`Http2Limits`] knob (streams per
//!   connection, HPACK table, frame size, header list, both receive windows,
//!   keep-alive ping) is set on `h2::server::Builder` from the options, and so
//!   are `h2`'s reset-stream caps against rapid reset (CVE-2023-44487), its
//!   send buffer and its small-DATA-frame budget ([`Http2Config`]).
//! * **Timeouts `h2` does not have**: keep-alive timeout while no stream is
//!   active (closed with GOAWAY), a deadline on the connection preface, the
//!   keep-alive PING with its timeout, minimum request body and response
//!   data rates per stream (GOAWAY INTERNAL_ERROR below them, as Kestrel),
//!   and graceful shutdown (GOAWAY 2^31−1, then GOAWAY with the last stream
//!   id once in-flight streams are done).
//! * **Kestrel's request rules**: header count and size (431), pseudo-header
//!   length (`max_request_line_size`, RST_STREAM PROTOCOL_ERROR), request body
//!   size (413, or RST_STREAM once the response started), `100 Continue`
//!   when the app first reads the body, connection-specific response headers
//!   removed (event 41), `Date` and `Server` added.
//! * **Extended CONNECT (RFC 8441)**: SETTINGS_ENABLE_CONNECT_PROTOCOL is
//!   sent, and a CONNECT with `:protocol` (WebSockets over HTTP/2) reaches
//!   the app with the same `UpgradeFeature` as an HTTP/1.1 upgrade; the
//!   accepted stream becomes the app's duplex stream.
//! * **Streams run concurrently inside the connection task** (no task per
//!   stream, no head-of-line blocking between streams); the application is
//!   borrowed, as with HTTP/1.
//!
//! Requests are `http::Request<RequestBody>` whose
//! [`RequestFeatures`](kestrel_core::RequestFeatures) carry the connection's
//! info and a [`StreamReset`] handle (Kestrel's `IHttpResetFeature`); responses are
//! any `http_body::Body<Data = Bytes>`, with trailers.
//!
//! See `docs/http2.md` for the settings sent, how each limit maps onto `h2`,
//! what `h2` does not let us enforce, and the attacks handled.
//!
//! This crate depends on `kestrel-core`, `kestrel-transport` and `h2` only: it
//! must not know TLS, hosting or the facade. Who serves it picks the
//! protocol ([`kestrel_core::selection`]: ALPN, or the cleartext preface)
//! and hands the connection here.
//!
//! ## Serving HTTP/1.1 and h2c over your own accept loop
//!
//! With `kestrel-http1` beside this crate: a [`ConnectionRuntime`] admits
//! each connection, [`AdmittedConnection::select_protocol`] sniffs for the
//! HTTP/2 preface (the bytes it reads stay in the connection for the
//! driver), and the chosen driver serves it. `examples/h2c_embedded.rs` is
//! the same as a program; `docs/embedding.md` tells the whole path.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use kestrel_http1::{Http1Config, Http1Connection};
//! use kestrel_http2::{
//!     Address, Connection, ConnectionRuntime, Http2Config, Http2Connection, HttpProtocols,
//!     KestrelServerOptions, RequestBody, SelectedProtocol, SelectionLimits, TransportKind,
//! };
//!
//! async fn app(req: Request<RequestBody>) -> Response<Full<Bytes>> {
//!     Response::new(Full::new(Bytes::from(format!("{:?}\n", req.version()))))
//! }
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let options = KestrelServerOptions::default();
//! let runtime = ConnectionRuntime::new(&options.limits);
//! let http1 = Arc::new(Http1Config::from_options(&options));
//! let http2 = Arc::new(Http2Config::from_options(&options));
//! let limits = SelectionLimits::from_limits(&options.limits);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:5000").await?;
//! let serving = async {
//!     loop {
//!         let Ok((stream, peer)) = listener.accept().await else { continue };
//!         let conn = Connection {
//!             io: Box::new(stream),
//!             local_addr: Address::Unknown,
//!             remote_addr: Address::Ip(peer),
//!             kind: TransportKind::Tcp,
//!         };
//!         let Ok(mut admitted) = runtime.admit(conn) else { continue };
//!         let handle = admitted.handle().clone();
//!         let (http1, http2) = (http1.clone(), http2.clone());
//!         let task = tokio::spawn(async move {
//!             match admitted.select_protocol(HttpProtocols::HTTP1_AND_HTTP2, limits).await {
//!                 SelectedProtocol::Http1 => {
//!                     let _ = Http1Connection::from_admitted(admitted, http1).serve(&app).await;
//!                 }
//!                 SelectedProtocol::Http2 => {
//!                     let _ = Http2Connection::from_admitted(admitted, http2).serve(&app).await;
//!                 }
//!                 _ => {} // answered and closed, timed out, or the client left
//!             }
//!         });
//!         handle.attach_task(task.abort_handle());
//!     }
//! };
//! tokio::select! {
//!     _ = serving => {}
//!     _ = tokio::signal::ctrl_c() => {}
//! }
//! // GOAWAY / `Connection: close` to every connection, wait, abort the rest.
//! runtime.shutdown(Duration::from_secs(30)).await;
//! # Ok(()) }
//! ```

mod body;
mod config;
mod conn;
#[doc(hidden)]
pub mod fuzzing;
mod io;
mod stream;
mod tunnel;

pub use config::Http2Config;
pub use conn::{Http2Connection, Http2Error};
pub use kestrel_core::{Http2Limits, StreamReset};

/// What [`Http2Connection::from_admitted`] and [`Http2Config::from_options`]
/// take, what serving needs, and protocol selection (HTTP/1 or h2c), so that
/// a driver's user depends on this crate's paths alone.
pub use kestrel_core::selection::{SelectedProtocol, SelectionLimits};
pub use kestrel_core::{
    AdmittedConnection, Application, ConnectionRuntime, HttpProtocols, KestrelServerOptions,
    RequestBody, ServerLimits,
};
/// The transport connection [`ConnectionRuntime::admit`] takes.
pub use kestrel_transport::{Address, BoxIo, Connection, TransportKind};

/// The client connection preface every HTTP/2 connection starts with
/// (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        send_sync::<Http2Config>();
        send_sync::<StreamReset>();
        send_sync::<Http2Error>();
        send::<Http2Connection>();
    }

    #[test]
    fn the_preface_is_rfc_9113s() {
        assert_eq!(PREFACE.len(), 24);
        assert!(PREFACE.starts_with(b"PRI * HTTP/2.0\r\n"));
    }
}
