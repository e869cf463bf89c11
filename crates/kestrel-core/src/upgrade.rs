//! Opaque upgrades (Kestrel's `IHttpUpgradeFeature`): an HTTP/1.1 request
//! with `Connection: upgrade` and an `Upgrade` header can be turned into a
//! raw duplex stream, on which the app speaks whatever it likes (WebSocket,
//! for one). The server stays protocol-agnostic.
//!
//! ```no_run
//! # use http::{Request, Response, StatusCode};
//! # use kestrel_core::{RequestBody, UpgradeFeature};
//! # async fn app(req: Request<RequestBody>) -> Response<http_body_util::Empty<bytes::Bytes>> {
//! let Some(upgrade) = req.extensions().get::<UpgradeFeature>() else {
//!     return Response::new(Default::default()); // not an upgrade request
//! };
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
//! The app returns a `101 Switching Protocols` response after calling
//! [`UpgradeFeature::upgrade`]; the server writes it, then hands the
//! connection to the [`OnUpgrade`] future. Returning any other status
//! cancels the upgrade. The upgraded connection leaves the normal connection
//! count and joins the upgraded one, and its request has no body-size limit.

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

struct Inner {
    handle: Arc<ConnectionHandle>,
    state: Mutex<State>,
}

/// The upgrade feature, present in the extensions of upgradable requests only.
#[derive(Clone)]
pub struct UpgradeFeature {
    inner: Arc<Inner>,
}

impl fmt::Debug for UpgradeFeature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeFeature").finish_non_exhaustive()
    }
}

impl UpgradeFeature {
    /// A feature for a request on the connection `handle` (used by protocol drivers).
    pub fn new(handle: Arc<ConnectionHandle>) -> Self {
        UpgradeFeature {
            inner: Arc::new(Inner {
                handle,
                state: Mutex::new(State::Available),
            }),
        }
    }

    /// Always true: the feature is only present on upgradable requests
    /// (Kestrel's `IsUpgradableRequest`).
    pub fn is_upgradable_request(&self) -> bool {
        true
    }

    /// Accept the upgrade. Moves the connection into the upgraded count, or
    /// fails with [`UpgradeError::Limit`] over `max_concurrent_upgraded_connections`
    /// (the app can then answer normally). The app must return a `101`
    /// response; the returned future resolves to the raw connection once it was sent.
    pub fn upgrade(&self) -> Result<OnUpgrade, UpgradeError> {
        let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(*state, State::Available) {
            return Err(UpgradeError::AlreadyUpgraded);
        }
        self.inner.handle.try_upgrade()?;
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

    /// Hand the connection to the app (used by protocol drivers after
    /// writing the 101). Returns the connection back if nobody waits for it.
    pub fn complete(&self, upgraded: Upgraded) -> Result<(), Upgraded> {
        let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *state, State::Done) {
            State::Accepted(tx) => tx.send(upgraded),
            _ => Err(upgraded),
        }
    }

    /// The upgrade will not happen: restore the connection counts and fail
    /// the app's [`OnUpgrade`] (used by protocol drivers).
    pub fn cancel(&self) {
        let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        if let State::Accepted(_) = std::mem::replace(&mut *state, State::Done) {
            self.inner.handle.cancel_upgrade();
        }
    }
}

/// Resolves to the upgraded connection once the `101` response was written.
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

/// An upgraded connection: a raw duplex stream. Bytes the server had already
/// read past the request head are returned first. Dropping it closes the
/// connection and releases its place in the upgraded count.
pub struct Upgraded {
    io: BoxIo,
    buffered: Bytes,
    _guard: Option<ConnectionGuard>,
}

impl Upgraded {
    /// Wrap `io`, replaying `buffered` first; `guard` keeps the connection's
    /// place in the connection counts for as long as the stream lives.
    pub fn new(io: BoxIo, buffered: Bytes, guard: Option<ConnectionGuard>) -> Self {
        Upgraded {
            io,
            buffered,
            _guard: guard,
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
        if let Some(guard) = &self._guard {
            if let Poll::Ready(Signal::Aborted) = guard.handle().poll_signal(cx) {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the server aborted the connection",
                ));
            }
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
}
