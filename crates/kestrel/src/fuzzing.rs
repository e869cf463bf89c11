//! Entry points for the fuzz targets under `fuzz/` (not part of the API:
//! hidden from the docs, and free to change with the fuzz targets).

use bytes::BytesMut;
use kestrel_core::connection::{ConnectionHandle, ConnectionId};
use kestrel_core::heartbeat::Clock;
use kestrel_core::selection::{select, SelectedProtocol, SelectionLimits};
use kestrel_core::HttpProtocols;
use kestrel_transport::BoxIo;

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

/// Run protocol selection ([`kestrel_core::selection::select`], what the
/// server runs) on a cleartext connection over `io` on an endpoint speaking
/// `protocols`, with the default limits. `io` is handed back so that what
/// was not read can be read. No heartbeat runs: the request-headers
/// deadline never fires here.
pub async fn sniff(mut io: BoxIo, protocols: HttpProtocols) -> (Sniffed, BoxIo) {
    let handle = ConnectionHandle::detached(ConnectionId(0));
    let clock = Clock::new(HEARTBEAT);
    let mut buf = BytesMut::new();
    let chosen = select(
        &mut io,
        &mut buf,
        protocols,
        None,
        &handle,
        &clock,
        SelectionLimits::default(),
    )
    .await;
    let sniffed = match chosen {
        SelectedProtocol::Http1 => Sniffed::Http1(buf),
        SelectedProtocol::Http2 => Sniffed::Http2(buf),
        _ => Sniffed::Close,
    };
    (sniffed, io)
}

const HEARTBEAT: std::time::Duration = kestrel_core::limits::HEARTBEAT_INTERVAL;
