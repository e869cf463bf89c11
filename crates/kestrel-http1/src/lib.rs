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
