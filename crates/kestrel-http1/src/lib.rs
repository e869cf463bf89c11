//! # kestrel-http1
//!
//! HTTP/1.0 and HTTP/1.1 for Kestrel for Rust, in two layers:
//!
//! * [`codec`]: a sans-IO codec over byte buffers — the request-head parser
//!   (on `httparse`, with Kestrel's limits and RFC 9112's framing rules), the
//!   length and chunked body decoders as explicit state machines, and the
//!   response-head and chunk encoders. No sockets, no clocks: it is tested byte
//!   by byte and fuzzed (`fuzz/`).
//! * [`Http1Connection`]: the connection driver. It owns the socket and its
//!   buffers, runs the application inline for each request (no task per
//!   request), streams request bodies to it on demand (sending `100 Continue`
//!   on the first read), frames responses (Content-Length, chunked, or
//!   close-delimited for HTTP/1.0), batches pipelined responses into one
//!   write, and obeys the connection's deadlines and shutdown signals.
//!
//! This crate depends on `kestrel-core` only: it must not know TLS, HTTP/2,
//! hosting or the facade.
//!
//! ## Serving HTTP/1.1 over your own accept loop
//!
//! A [`ConnectionRuntime`] runs the heartbeat (timeouts, the cached `Date`),
//! admits connections under `max_concurrent_connections` and shuts down
//! gracefully; [`Http1Connection::from_admitted`] drives one admitted
//! connection. Everything here comes from this crate (and tokio for the
//! socket); `examples/http1_embedded.rs` is the same as a program, and
//! `docs/embedding.md` tells the whole path.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use kestrel_http1::{
//!     Address, Connection, ConnectionRuntime, Http1Config, Http1Connection,
//!     KestrelServerOptions, RequestBody, TransportKind,
//! };
//!
//! async fn app(_req: Request<RequestBody>) -> Response<Full<Bytes>> {
//!     Response::new(Full::new(Bytes::from_static(b"Hello, World!")))
//! }
//!
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! let options = KestrelServerOptions::default();
//! let runtime = ConnectionRuntime::new(&options.limits);
//! let config = Arc::new(Http1Config::from_options(&options));
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
//!         // Refused over max_concurrent_connections (closed, logged).
//!         let Ok(admitted) = runtime.admit(conn) else { continue };
//!         let handle = admitted.handle().clone();
//!         let driver = Http1Connection::from_admitted(admitted, config.clone());
//!         let task = tokio::spawn(async move { driver.serve(&app).await });
//!         handle.attach_task(task.abort_handle());
//!     }
//! };
//! tokio::select! {
//!     _ = serving => {}
//!     _ = tokio::signal::ctrl_c() => {}
//! }
//! // `Connection: close` to every connection, wait, abort the rest.
//! runtime.shutdown(Duration::from_secs(30)).await;
//! # Ok(()) }
//! ```

pub mod codec;
mod config;
mod conn;
mod io;

pub use config::Http1Config;
pub use conn::{Http1Close, Http1Connection, Http1Error};

/// What [`Http1Connection::from_admitted`] and [`Http1Config::from_options`]
/// take, and what serving needs, so that a driver's user depends on this
/// crate's paths alone.
pub use kestrel_core::{
    AdmittedConnection, Application, ConnectionRuntime, KestrelServerOptions, RequestBody,
    ServerLimits,
};
/// The transport connection [`ConnectionRuntime::admit`] takes.
pub use kestrel_transport::{Address, BoxIo, Connection, TransportKind};
