//! # kestrel-http3
//!
//! HTTP/3 for Kestrel for Rust: a connection driver on the [`h3`] crate,
//! the third protocol on the shared request core (`kestrel-core`), next to
//! HTTP/1.1 and HTTP/2.
//!
//! * **Over the transport abstraction, not over quinn.** [`Http3Connection`]
//!   serves a `kestrel_transport::multiplexed::MultiplexedConnection`;
//!   `quic` (private) adapts h3's `h3::quic` traits onto those boxed streams.
//!   The QUIC listener itself is `kestrel_transport::quic::QuicListener`
//!   (feature `quic`), and any other multiplexed transport serves too.
//! * **The shared request core.** Requests are `http::Request<RequestBody>`
//!   with [`RequestFeatures`](kestrel_core::RequestFeatures) (connection
//!   info, `RequestLimits`, `RequestAborted`, the stream reset feature); the
//!   body is a `BodySource` on `RequestBodyState` (size limit: 413 before
//!   the response; after it, a response body failing on it resets the
//!   stream); responses are framed by
//!   `kestrel_core::framing::plan` (HEAD/204/304 without a body, `Date` and
//!   `Server`, the Content-Length mismatch rules), with trailers both ways;
//!   the request-headers timeout per stream; app panics follow
//!   `kestrel_core::app::poll_app` (500, or a reset with H3_INTERNAL_ERROR
//!   once the response started); log events come from
//!   `kestrel_core::events` and request metrics carry protocol version "3".
//! * **Limits named, never h3's defaults.** `SETTINGS_MAX_FIELD_SECTION_SIZE`
//!   comes from `max_request_headers_total_size` (h3's default is
//!   unlimited); the QPACK dynamic table's capacity is 0; header count and
//!   field size are checked on the decoded head (431). See [`Http3Config`].
//!
//! * **What h3 0.0.8 leaves undone is done here**, between the transport
//!   and h3: the GOAWAY id and the streams refused after it (RFC 9114 §5.2,
//!   `goaway`), and the peer's streams checked before h3 reads them
//!   (`guard`: unidirectional stream types within the request-headers
//!   timeout, the QPACK encoder/decoder streams against a table of capacity
//!   0, frames h3 would buffer whole, streams that end before their head).
//! * **Connection life**: graceful shutdown (GOAWAY, in-flight streams
//!   finish), the keep-alive timeout while no stream is open, minimum request
//!   and response data rates per stream, `100 Continue`.
//!
//! Modules by job: `conn` (the connection's accept loop and shutdown),
//! `stream` (one request stream), `respond` (its response), `body` (the
//! request body and the stream's shared state), `quic` (the `h3::quic`
//! adapter), `guard`, `goaway`, `varint`, `config`. See `docs/http3.md`.
//!
//! This crate depends on `kestrel-core`, `kestrel-transport` (its
//! `multiplexed` feature) and `h3` only: it must not know quinn, TLS,
//! hosting or the facade (the facade binds the QUIC listener and hands each
//! connection here).

mod body;
mod config;
mod conn;
mod goaway;
mod guard;
mod quic;
mod respond;
mod stream;
mod varint;

pub use config::{Http3Config, MAX_REQUEST_HEADER_FIELD_SIZE, QPACK_MAX_TABLE_CAPACITY};
pub use conn::{Http3Close, Http3Connection, Http3Error};

/// The ALPN protocol id of HTTP/3 (RFC 9114 §3.1).
pub const ALPN: &[u8] = b"h3";

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        send_sync::<Http3Config>();
        send_sync::<Http3Error>();
        send::<Http3Connection>();
    }
}
