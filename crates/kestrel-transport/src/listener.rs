use std::fmt;
use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};

use crate::{Address, BoxIo, TransportKind};

/// How many per-connection accept errors a socket listener (TCP, Unix) skips
/// in one poll before yielding back to the runtime (it asks to be polled again).
#[cfg(any(feature = "tcp", all(unix, feature = "unix")))]
pub(crate) const MAX_SKIPPED_ACCEPT_ERRORS: usize = 64;

/// One accepted connection: the duplex stream plus where it came from.
pub struct Connection {
    /// The byte stream.
    pub io: BoxIo,
    /// The local address (the listener's, or the socket's own for TCP).
    pub local_addr: Address,
    /// The peer's address.
    pub remote_addr: Address,
    /// What transport this came over.
    pub kind: TransportKind,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("local_addr", &self.local_addr)
            .field("remote_addr", &self.remote_addr)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A bound listener that accepts connections (Kestrel's `IConnectionListener`).
///
/// Implementations must be cheap to poll: the server calls [`poll_accept`]
/// in its accept loop. Errors that concern only one incoming connection
/// (e.g. `ECONNABORTED`) should be skipped by the implementation; errors it
/// returns are logged by the server, which backs off briefly and polls again.
/// Dropping the listener unbinds it (and, for Unix sockets, removes the file).
///
/// [`poll_accept`]: Listener::poll_accept
pub trait Listener: Send + 'static {
    /// Poll for the next connection.
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Connection>>;

    /// The address this listener is bound to (with the real port after binding port 0).
    fn local_addr(&self) -> &Address;

    /// The listening socket's descriptor, for listeners backed by one (TCP,
    /// Unix): what a zero-downtime restart hands to the new process. `None`
    /// (the default) for the others.
    #[cfg(unix)]
    fn as_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

impl<L: Listener + ?Sized> Listener for Box<L> {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Connection>> {
        (**self).poll_accept(cx)
    }

    fn local_addr(&self) -> &Address {
        (**self).local_addr()
    }

    #[cfg(unix)]
    fn as_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        (**self).as_fd()
    }
}

/// Convenience methods for every [`Listener`].
pub trait ListenerExt: Listener {
    /// Accept the next connection.
    fn accept(&mut self) -> impl std::future::Future<Output = io::Result<Connection>> + Send + '_
    where
        Self: Sized,
    {
        poll_fn(move |cx| self.poll_accept(cx))
    }
}

impl<L: Listener + ?Sized> ListenerExt for L {}
