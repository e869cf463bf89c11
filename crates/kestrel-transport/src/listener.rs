use std::fmt;
use std::future::poll_fn;
use std::io;
use std::sync::Mutex;
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

/// Binds listeners of one transport for one endpoint (Kestrel's
/// `IConnectionListenerFactory.BindAsync`): how a transport the server does
/// not know (vsock, a TLS terminator, io_uring, the in-memory transport)
/// plugs into it. The server calls [`bind`](ListenerFactory::bind) when it
/// starts, and again if a reconfiguration binds the endpoint anew; the
/// connections then get everything a built-in endpoint's get (admission and
/// the connection limit, connection middleware, protocol choice, limits and
/// timeouts, metrics and events, graceful shutdown).
///
/// A closure `Fn() -> io::Result<Box<dyn Listener>>` is a factory; a
/// listener bound beforehand is one through [`ListenerOnce`].
pub trait ListenerFactory: Send + Sync + 'static {
    /// Bind a listener.
    fn bind(&self) -> io::Result<Box<dyn Listener>>;

    /// The endpoint's name in logs and errors before it is bound; once it
    /// is, the server shows the listener's
    /// [`local_addr`](Listener::local_addr) unless that is
    /// [`Address::Unknown`]. Default `"custom"`.
    fn name(&self) -> String {
        "custom".to_string()
    }
}

impl<F> ListenerFactory for F
where
    F: Fn() -> io::Result<Box<dyn Listener>> + Send + Sync + 'static,
{
    fn bind(&self) -> io::Result<Box<dyn Listener>> {
        self()
    }
}

/// A [`ListenerFactory`] that hands out one listener bound beforehand (say
/// a [`MemoryListener`](crate::memory::MemoryListener)); binding it again
/// fails with [`io::ErrorKind::AddrInUse`].
pub struct ListenerOnce {
    listener: Mutex<Option<Box<dyn Listener>>>,
    name: String,
}

impl ListenerOnce {
    /// Hand out `listener` (named after its local address).
    pub fn new(listener: impl Listener) -> ListenerOnce {
        let name = listener.local_addr().to_string();
        ListenerOnce {
            listener: Mutex::new(Some(Box::new(listener))),
            name,
        }
    }
}

impl fmt::Debug for ListenerOnce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerOnce")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ListenerFactory for ListenerOnce {
    fn bind(&self) -> io::Result<Box<dyn Listener>> {
        self.listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("the listener {} was already bound once", self.name),
                )
            })
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}
