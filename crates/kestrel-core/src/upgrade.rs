//! Upgrades (Kestrel's `IHttpUpgradeFeature` and `IHttpExtendedConnectFeature`):
//! a request that asks to switch protocols can be turned into a raw duplex
//! stream, on which the app speaks whatever it likes (WebSocket, for one).
//! The server stays protocol-agnostic.
//!
//! * **HTTP/1.1**: a request with `Connection: upgrade` and an `Upgrade`
//!   header (and no body). The stream is the connection itself.
//! * **HTTP/2**: an extended CONNECT (RFC 8441): `:method CONNECT` with a
//!   `:protocol` pseudo-header. The stream is that one HTTP/2 stream (its
//!   DATA frames, under flow control); the connection goes on serving others.
//!
//! One app serves both. It finds an [`UpgradeFeature`] in the request's
//! features ([`RequestFeatures::upgrade`](crate::RequestFeatures::upgrade)), reads [`UpgradeFeature::protocol`] (the `Upgrade` header, or
//! `:protocol`), calls [`UpgradeFeature::upgrade`] and returns
//! `101 Switching Protocols`:
//!
//! ```no_run
//! # use http::{Request, Response, StatusCode};
//! # use kestrel_core::{RequestBody, RequestFeaturesExt};
//! # async fn app(req: Request<RequestBody>) -> Response<http_body_util::Empty<bytes::Bytes>> {
//! let Some(upgrade) = req.features().and_then(|f| f.upgrade()) else {
//!     return Response::new(Default::default()); // not an upgrade request
//! };
//! if upgrade.protocol() != Some("example") {
//!     let mut r = Response::new(Default::default());
//!     *r.status_mut() = StatusCode::BAD_REQUEST; // refused: an ordinary response
//!     return r;
//! }
//! match upgrade.upgrade() {
//!     Ok(on_upgrade) => {
//!         tokio::spawn(async move {
//!             if let Ok(mut io) = on_upgrade.await {
//!                 // read and write `io` (it implements AsyncRead + AsyncWrite)
//!             }
//!         });
//!         let mut r = Response::new(Default::default());
//!         *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
//!         r.headers_mut().insert("upgrade", "example".parse().unwrap());
//!         r
//!     }
//!     // e.g. max_concurrent_upgraded_connections reached: answer normally.
//!     Err(_) => { let mut r = Response::new(Default::default()); *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE; r }
//! }
//! # }
//! ```
//!
//! **Accepting.** After [`UpgradeFeature::upgrade`] the app returns `101`,
//! whatever the protocol: the server sends the status that protocol needs
//! (Kestrel's model, where `AcceptAsync` picks it). On HTTP/1.1 that is the
//! `101` itself; then the connection is handed to the [`OnUpgrade`] future.
//! On HTTP/2 a `101` becomes `200` (RFC 8441 §5; a `2xx` the app chose is
//! kept), `Upgrade`, `Connection` and `Content-Length` are dropped, the
//! response body is ignored, and the HEADERS frame goes out without
//! END_STREAM; [`Upgraded`] then reads the stream's DATA frames and writes
//! DATA frames, and its shutdown (or drop) ends the stream with END_STREAM.
//! Returning any other status cancels the upgrade and is sent as an ordinary
//! response (a refusal).
//!
//! **Limits.** Both count toward `max_concurrent_upgraded_connections`:
//! an HTTP/1.1 connection leaves the normal connection count and joins the
//! upgraded one; an HTTP/2 stream joins the upgraded count while its
//! connection stays in the normal one (Kestrel does not count HTTP/2
//! WebSockets; we do, so the cap holds whichever protocol the client picks).
//! Over the limit, [`UpgradeFeature::upgrade`] fails and the app answers
//! normally. The upgraded stream has no body-size limit and no minimum data
//! rate.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use kestrel_transport::BoxIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use crate::connection::{ConnectionGuard, ConnectionHandle, ConnectionLimitError, Signal};

/// Why an upgrade was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// `upgrade()` was already called for this request.
    #[error("the request was already upgraded")]
    AlreadyUpgraded,
    /// `max_concurrent_upgraded_connections` is reached.
    #[error(transparent)]
    Limit(#[from] ConnectionLimitError),
    /// The upgrade did not happen (the app answered with another status, or
    /// the connection closed first).
    #[error("the upgrade was canceled")]
    Canceled,
}

enum State {
    Available,
    Accepted(oneshot::Sender<Upgraded>),
    Done,
}

/// What an upgrade moves into the upgraded count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An HTTP/1.1 upgrade: the whole connection.
    Connection,
    /// An HTTP/2 extended CONNECT: one stream.
    Stream,
}

struct Inner {
    handle: Arc<ConnectionHandle>,
    kind: Kind,
    protocol: Option<Box<str>>,
    state: Mutex<State>,
}

/// The upgrade feature, present in the extensions of upgradable requests
/// only: HTTP/1.1 upgrade requests and HTTP/2 extended CONNECT requests.
#[derive(Clone)]
pub struct UpgradeFeature {
    inner: Arc<Inner>,
}

impl fmt::Debug for UpgradeFeature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeFeature")
            .field("protocol", &self.inner.protocol)
            .field("extended_connect", &(self.inner.kind == Kind::Stream))
            .finish_non_exhaustive()
    }
}

impl UpgradeFeature {
    /// A feature for an HTTP/1.1 upgrade request on the connection `handle`
    /// (used by protocol drivers). [`protocol`](Self::protocol) is `None`;
    /// see [`for_request`](Self::for_request).
    pub fn new(handle: Arc<ConnectionHandle>) -> Self {
        Self::with(handle, Kind::Connection, None)
    }

    /// A feature for an HTTP/1.1 upgrade request with these `headers`:
    /// [`protocol`](Self::protocol) is the `Upgrade` header (used by protocol drivers).
    pub fn for_request(handle: Arc<ConnectionHandle>, headers: &http::HeaderMap) -> Self {
        let protocol = headers
            .get(http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().into());
        Self::with(handle, Kind::Connection, protocol)
    }

    /// A feature for an HTTP/2 extended CONNECT (RFC 8441) whose
    /// `:protocol` is `protocol`, on the connection `handle` (used by
    /// protocol drivers). Accepting it counts one stream, not the connection.
    pub fn extended_connect(handle: Arc<ConnectionHandle>, protocol: &str) -> Self {
        Self::with(handle, Kind::Stream, Some(protocol.into()))
    }

    fn with(handle: Arc<ConnectionHandle>, kind: Kind, protocol: Option<Box<str>>) -> Self {
        UpgradeFeature {
            inner: Arc::new(Inner {
                handle,
                kind,
                protocol,
                state: Mutex::new(State::Available),
            }),
        }
    }

    /// Always true: the feature is only present on upgradable requests
    /// (Kestrel's `IsUpgradableRequest`).
    pub fn is_upgradable_request(&self) -> bool {
        true
    }

    /// Whether this is an HTTP/2 extended CONNECT (Kestrel's
    /// `IHttpExtendedConnectFeature.IsExtendedConnect`) rather than an
    /// HTTP/1.1 upgrade. An HTTP/2 WebSocket handshake has no
    /// `Sec-WebSocket-Key` (RFC 8441 §5), so the app needs to know.
    pub fn is_extended_connect(&self) -> bool {
        self.inner.kind == Kind::Stream
    }

    /// The protocol asked for: the HTTP/1.1 `Upgrade` header (as sent, e.g.
    /// `websocket`) or the HTTP/2 `:protocol` pseudo-header (Kestrel's
    /// `IHttpExtendedConnectFeature.Protocol`). `None` if the driver did not
    /// record it.
    pub fn protocol(&self) -> Option<&str> {
        self.inner.protocol.as_deref()
    }

    /// Accept the upgrade. Counts the connection (HTTP/1.1) or the stream
    /// (HTTP/2) as upgraded, or fails with [`UpgradeError::Limit`] over
    /// `max_concurrent_upgraded_connections` (the app can then answer
    /// normally). The app must return a `101` response (on HTTP/2 it is
    /// sent as `200`); the returned future resolves to the raw stream once
    /// the response was sent.
    pub fn upgrade(&self) -> Result<OnUpgrade, UpgradeError> {
        let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(*state, State::Available) {
            return Err(UpgradeError::AlreadyUpgraded);
        }
        match self.inner.kind {
            Kind::Connection => self.inner.handle.try_upgrade()?,
            Kind::Stream => self.inner.handle.try_add_upgraded_stream()?,
        }
        let (tx, rx) = oneshot::channel();
        *state = State::Accepted(tx);
        Ok(OnUpgrade { rx })
    }

    /// Whether the app accepted the upgrade (used by protocol drivers).
    pub fn is_accepted(&self) -> bool {
        matches!(
            *self.inner.state.lock().unwrap_or_else(|p| p.into_inner()),
            State::Accepted(_)
        )
    }

    /// Hand the stream to the app (used by protocol drivers after sending
    /// the response). Returns the stream back if nobody waits for it. For an
    /// HTTP/2 stream, the [`Upgraded`] holds the stream's place in the
    /// upgraded count from now on.
    pub fn complete(&self, mut upgraded: Upgraded) -> Result<(), Upgraded> {
        let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *state, State::Done) {
            State::Accepted(tx) => {
                if self.inner.kind == Kind::Stream {
                    upgraded.slot = Some(StreamSlot(self.inner.handle.clone()));
                }
                tx.send(upgraded)
            }
            _ => Err(upgraded),
        }
    }

    /// The upgrade will not happen: restore the connection counts and fail
    /// the app's [`OnUpgrade`] (used by protocol drivers).
    pub fn cancel(&self) {
        let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        if let State::Accepted(_) = std::mem::replace(&mut *state, State::Done) {
            match self.inner.kind {
                Kind::Connection => self.inner.handle.cancel_upgrade(),
                Kind::Stream => self.inner.handle.remove_upgraded_stream(),
            }
        }
    }
}

/// Resolves to the upgraded stream once the response was sent.
#[derive(Debug)]
pub struct OnUpgrade {
    rx: oneshot::Receiver<Upgraded>,
}

impl Future for OnUpgrade {
    type Output = Result<Upgraded, UpgradeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.map_err(|_| UpgradeError::Canceled))
    }
}

/// An upgraded HTTP/2 stream's place in the upgraded count.
#[derive(Debug)]
struct StreamSlot(Arc<ConnectionHandle>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.remove_upgraded_stream();
    }
}

/// An upgraded connection (HTTP/1.1) or stream (HTTP/2): a raw duplex
/// stream. Bytes the server had already read past the request head are
/// returned first. Dropping it closes the connection (or ends the HTTP/2
/// stream) and releases its place in the upgraded count.
pub struct Upgraded {
    io: BoxIo,
    buffered: Bytes,
    _guard: Option<ConnectionGuard>,
    slot: Option<StreamSlot>,
}

impl Upgraded {
    /// Wrap `io`, replaying `buffered` first; `guard` keeps the connection's
    /// place in the connection counts for as long as the stream lives.
    pub fn new(io: BoxIo, buffered: Bytes, guard: Option<ConnectionGuard>) -> Self {
        Upgraded {
            io,
            buffered,
            _guard: guard,
            slot: None,
        }
    }
}

impl fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgraded")
            .field("buffered", &self.buffered.len())
            .finish_non_exhaustive()
    }
}

impl Upgraded {
    /// Fails once the server aborted the connection (the shutdown timeout
    /// passed): the app's reads and writes end instead of outliving the server.
    fn check_aborted(&self, cx: &mut Context<'_>) -> io::Result<()> {
        let aborted = match (&self._guard, &self.slot) {
            (Some(guard), _) => {
                matches!(guard.handle().poll_signal(cx), Poll::Ready(Signal::Aborted))
            }
            // An HTTP/2 connection's driver still owns the handle's single
            // waker: look without registering (its abort ends the stream anyway).
            (None, Some(slot)) => slot.0.is_aborted(),
            (None, None) => false,
        };
        if aborted {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server aborted the connection",
            ));
        }
        Ok(())
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check_aborted(cx)?;
        if !self.buffered.is_empty() {
            let n = self.buffered.len().min(buf.remaining());
            buf.put_slice(&self.buffered[..n]);
            self.buffered.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check_aborted(cx)?;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::{ConnectionId, ConnectionManager};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn upgrade_hands_over_the_stream_with_buffered_bytes() {
        let m = ConnectionManager::new(None, Some(1));
        let guard = m.try_admit(m.next_id()).unwrap();
        let feature = UpgradeFeature::new(guard.handle().clone());
        let on_upgrade = feature.upgrade().unwrap();
        assert_eq!(
            feature.upgrade().unwrap_err(),
            UpgradeError::AlreadyUpgraded
        );
        assert_eq!((m.active_connections(), m.upgraded_connections()), (0, 1));
        let (client, server) = tokio::io::duplex(1024);
        feature
            .complete(Upgraded::new(
                Box::new(server),
                Bytes::from_static(b"early"),
                Some(guard),
            ))
            .unwrap();
        let mut io = on_upgrade.await.unwrap();
        let mut client = client;
        client.write_all(b" late").await.unwrap();
        let mut got = [0u8; 10];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"early late");
        drop(io);
        assert_eq!((m.active_connections(), m.upgraded_connections()), (0, 0));
    }

    #[tokio::test]
    async fn over_the_limit_or_canceled() {
        let m = ConnectionManager::new(None, Some(1));
        let a = m.try_admit(m.next_id()).unwrap();
        let b = m.try_admit(m.next_id()).unwrap();
        let fa = UpgradeFeature::new(a.handle().clone());
        let fb = UpgradeFeature::new(b.handle().clone());
        let on_a = fa.upgrade().unwrap();
        assert!(matches!(fb.upgrade(), Err(UpgradeError::Limit(_))));
        fa.cancel();
        assert_eq!(on_a.await.unwrap_err(), UpgradeError::Canceled);
        assert_eq!((m.active_connections(), m.upgraded_connections()), (2, 0));
        let _on_b = fb.upgrade().expect("the place was freed");
        let _ = ConnectionId(0);
    }

    #[tokio::test]
    async fn extended_connect_counts_streams_not_the_connection() {
        let m = ConnectionManager::new(None, Some(2));
        let guard = m.try_admit(m.next_id()).unwrap();
        let h = guard.handle().clone();
        let a = UpgradeFeature::extended_connect(h.clone(), "websocket");
        let b = UpgradeFeature::extended_connect(h.clone(), "websocket");
        let c = UpgradeFeature::extended_connect(h.clone(), "websocket");
        assert!(a.is_extended_connect());
        assert_eq!(a.protocol(), Some("websocket"));
        let on_a = a.upgrade().unwrap();
        let _on_b = b.upgrade().unwrap();
        assert!(matches!(c.upgrade(), Err(UpgradeError::Limit(_))));
        assert_eq!((m.active_connections(), m.upgraded_connections()), (1, 2));
        b.cancel();
        assert_eq!(m.upgraded_connections(), 1);
        let (_client, server) = tokio::io::duplex(64);
        a.complete(Upgraded::new(Box::new(server), Bytes::new(), None))
            .unwrap();
        let io = on_a.await.unwrap();
        assert_eq!(m.upgraded_connections(), 1, "the stream holds its place");
        drop(io);
        assert_eq!((m.active_connections(), m.upgraded_connections()), (1, 0));
        drop(guard);
    }

    #[test]
    fn http1_protocol_comes_from_the_upgrade_header() {
        let h = ConnectionHandle::detached(ConnectionId(1));
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::UPGRADE, "websocket".parse().unwrap());
        let f = UpgradeFeature::for_request(h.clone(), &headers);
        assert_eq!(f.protocol(), Some("websocket"));
        assert!(!f.is_extended_connect());
        assert_eq!(UpgradeFeature::new(h).protocol(), None);
    }
}
