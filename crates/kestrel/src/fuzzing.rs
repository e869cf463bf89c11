//! Entry points for the fuzz targets under `fuzz/` (not part of the API:
//! hidden from the docs, and free to change with the fuzz targets).

use std::time::Duration;

use bytes::BytesMut;
use kestrel_core::connection::{ConnectionHandle, ConnectionId};
use kestrel_core::heartbeat::Clock;
use kestrel_core::HttpProtocols;
use kestrel_transport::BoxIo;

use crate::protocol::{choose, Chosen};

/// What protocol selection decided on a cleartext connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sniffed {
    /// HTTP/1.x, with the bytes read so far (handed to the HTTP/1 driver).
    Http1(BytesMut),
    /// HTTP/2, with the bytes read so far (replayed to the HTTP/2 driver).
    Http2(BytesMut),
    /// The connection is closed.
    Close,
}

/// Run protocol selection on a cleartext connection over `io` on an
/// endpoint speaking `protocols`, with the default request-line limit.
/// `io` is handed back so that what was not read can be read.
pub async fn sniff(mut io: BoxIo, protocols: HttpProtocols) -> (Sniffed, BoxIo) {
    let handle = ConnectionHandle::detached(ConnectionId(0));
    let clock = Clock::new(Duration::from_secs(1));
    let chosen = choose(
        &mut io,
        protocols,
        None,
        &handle,
        &clock,
        Duration::from_secs(30),
        8192,
    )
    .await;
    let sniffed = match chosen {
        Chosen::Http1(buf) => Sniffed::Http1(buf),
        Chosen::Http2(buf) => Sniffed::Http2(buf),
        Chosen::Close => Sniffed::Close,
    };
    (sniffed, io)
}
