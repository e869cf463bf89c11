//! TCP transport: listeners bound with `socket2` and driven by tokio, plus
//! listeners built from inherited file descriptors (systemd socket activation,
//! Kestrel's `ListenHandle`).
//!
//! Everything that creates a tokio socket here ([`bind_tcp`],
//! [`TcpListener::from_std`], [`from_owned_fd`]) must be called from inside a
//! tokio runtime (with the I/O driver enabled), because the socket is registered
//! with the runtime's reactor.

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpStream;

use crate::listener::MAX_SKIPPED_ACCEPT_ERRORS;
use crate::{Address, Connection, Listener, TransportKind};

/// Socket options for TCP listeners.
///
/// Build it with struct update syntax:
///
/// ```
/// use kestrel_transport::tcp::TcpOptions;
/// let opts = TcpOptions { backlog: 1024, ..TcpOptions::default() };
/// assert!(opts.no_delay);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpOptions {
    /// Set `TCP_NODELAY` on every accepted connection (disables Nagle's
    /// algorithm). Default `true`, as in Kestrel.
    pub no_delay: bool,
    /// The `listen(2)` backlog. Default `512`, as in Kestrel. Values above
    /// `i32::MAX` are clamped; the OS may clamp further (`somaxconn`).
    pub backlog: u32,
    /// Set `SO_REUSEADDR` before binding, so a restarted server can bind while
    /// old connections sit in `TIME_WAIT`. Default `true`. Ignored on Windows,
    /// where `SO_REUSEADDR` means something else (port hijacking).
    pub reuse_address: bool,
    /// Set `SO_REUSEPORT` before binding (Unix only; ignored elsewhere), letting
    /// several sockets share the port. Default `false`.
    pub reuse_port: bool,
    /// `IPV6_V6ONLY` for IPv6 addresses. `None` (the default): an unspecified
    /// IPv6 address (`[::]`) is bound dual-mode (`IPV6_V6ONLY=false`, so IPv4
    /// clients are accepted too, as Kestrel's `ListenAnyIP` does), and other IPv6
    /// addresses keep the OS default. `Some(v)` sets it explicitly on any IPv6
    /// address. Ignored for IPv4 addresses.
    pub only_v6: Option<bool>,
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            no_delay: true,
            backlog: 512,
            reuse_address: true,
            reuse_port: false,
            only_v6: None,
        }
    }
}

fn backlog(opts: &TcpOptions) -> i32 {
    i32::try_from(opts.backlog).unwrap_or(i32::MAX)
}

/// Bind a TCP listener to `addr` with the given options.
///
/// Creates the socket with `socket2`, applies `SO_REUSEADDR` / `SO_REUSEPORT` /
/// `IPV6_V6ONLY` as [`TcpOptions`] says, binds, calls `listen(backlog)` and hands
/// the socket to tokio. Binding port `0` picks a free port; the listener's
/// [`local_addr`](Listener::local_addr) reports the real one.
///
/// Errors are those of the system calls, e.g. [`io::ErrorKind::AddrInUse`] when
/// the port is taken or [`io::ErrorKind::AddrNotAvailable`] when the address is
/// not local.
///
/// # Panics
///
/// Must be called inside a tokio runtime with I/O enabled (tokio panics
/// otherwise).
pub fn bind_tcp(addr: SocketAddr, opts: &TcpOptions) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;

    #[cfg(not(windows))]
    if opts.reuse_address {
        socket.set_reuse_address(true)?;
    }
    #[cfg(unix)]
    if opts.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if let SocketAddr::V6(v6) = addr {
        match opts.only_v6 {
            Some(only) => socket.set_only_v6(only)?,
            None if v6.ip().is_unspecified() => {
                // Dual-mode is best effort: some systems (OpenBSD) do not
                // support it, and the listener still works for IPv6 there.
                if let Err(e) = socket.set_only_v6(false) {
                    tracing::debug!(%addr, error = %e, "could not make the IPv6 socket dual-mode");
                }
            }
            None => {}
        }
    }

    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog(opts))?;
    TcpListener::from_std(socket.into(), opts)
}

/// Apply the per-connection options of `opts` to an accepted stream (today:
/// `TCP_NODELAY` when [`TcpOptions::no_delay`] is on).
///
/// [`TcpListener`] calls this on every accepted connection; it is public for
/// custom listeners and for tests.
pub fn configure_accepted(stream: &TcpStream, opts: &TcpOptions) -> io::Result<()> {
    if opts.no_delay {
        stream.set_nodelay(true)?;
    }
    Ok(())
}

/// Is this accept error about one incoming connection only (so the listener
/// should skip it and accept the next one)?
fn is_connection_error(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted
            | ConnectionReset
            | Interrupted
            | WouldBlock
            | HostUnreachable
            | NetworkUnreachable
            | NetworkDown
    ) {
        return true;
    }
    // accept(2) on Linux reports network errors already pending on the new
    // socket; the man page says to treat them like EAGAIN and retry.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        const ENONET: i32 = 64;
        const EPROTO: i32 = 71;
        const ENOPROTOOPT: i32 = 92;
        const EOPNOTSUPP: i32 = 95;
        const EHOSTDOWN: i32 = 112;
        if let Some(code) = e.raw_os_error() {
            return matches!(code, ENONET | EPROTO | ENOPROTOOPT | EOPNOTSUPP | EHOSTDOWN);
        }
    }
    false
}

/// A TCP listener: a tokio [`tokio::net::TcpListener`] plus the options applied
/// to accepted connections.
///
/// [`poll_accept`](Listener::poll_accept) skips errors that concern only one
/// incoming connection (`ECONNABORTED`, `ECONNRESET`, `EINTR`, spurious
/// `EWOULDBLOCK`, and on Linux network errors pending on the new socket). Other
/// errors — notably running out of file descriptors (`EMFILE`/`ENFILE`) or
/// memory (`ENOBUFS`/`ENOMEM`) — are returned; the listener stays usable and the
/// caller should back off briefly before polling again (the server's accept loop
/// does).
#[derive(Debug)]
pub struct TcpListener {
    inner: tokio::net::TcpListener,
    addr: SocketAddr,
    local_addr: Address,
    opts: TcpOptions,
}

impl TcpListener {
    /// Wrap an already bound and listening std listener (e.g. an inherited
    /// socket). Sets it non-blocking; does not re-bind and does not change the
    /// listening socket's options ([`TcpOptions::no_delay`] still applies to
    /// accepted connections).
    ///
    /// # Panics
    ///
    /// Must be called inside a tokio runtime with I/O enabled.
    pub fn from_std(listener: std::net::TcpListener, opts: &TcpOptions) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let inner = tokio::net::TcpListener::from_std(listener)?;
        Ok(TcpListener {
            inner,
            addr: local,
            local_addr: Address::Ip(local),
            opts: opts.clone(),
        })
    }

    /// The bound socket address (with the real port after binding port 0).
    pub fn local_socket_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The options this listener applies to accepted connections.
    pub fn options(&self) -> &TcpOptions {
        &self.opts
    }

    /// The underlying tokio listener.
    pub fn get_ref(&self) -> &tokio::net::TcpListener {
        &self.inner
    }

    /// Unwrap into the underlying tokio listener.
    pub fn into_inner(self) -> tokio::net::TcpListener {
        self.inner
    }
}

impl Listener for TcpListener {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Connection>> {
        for _ in 0..MAX_SKIPPED_ACCEPT_ERRORS {
            match self.inner.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok((stream, remote))) => {
                    if let Err(e) = configure_accepted(&stream, &self.opts) {
                        // The peer may already be gone; the connection will
                        // report that itself. Not worth dropping it here.
                        tracing::debug!(%remote, error = %e, "could not configure accepted TCP connection");
                    }
                    let local = match stream.local_addr() {
                        Ok(a) => Address::Ip(a),
                        Err(_) => self.local_addr.clone(),
                    };
                    return Poll::Ready(Ok(Connection {
                        io: Box::new(stream),
                        local_addr: local,
                        remote_addr: Address::Ip(remote),
                        kind: TransportKind::Tcp,
                    }));
                }
                Poll::Ready(Err(e)) if is_connection_error(&e) => {
                    tracing::debug!(listener = %self.local_addr, error = %e, "skipping failed incoming TCP connection");
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
        // Many failed connections in a row: let other tasks run, then retry.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    #[cfg(unix)]
    fn as_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(self.inner.as_fd())
    }

    fn local_addr(&self) -> &Address {
        &self.local_addr
    }
}

/// The first file descriptor systemd passes with socket activation
/// (`SD_LISTEN_FDS_START`).
#[cfg(unix)]
pub const SYSTEMD_LISTEN_FDS_START: std::os::fd::RawFd = 3;

/// How many sockets systemd passed to this process with socket activation
/// (`sd_listen_fds(0)`).
///
/// Returns `Some(n)` when `LISTEN_PID` equals this process's id and `LISTEN_FDS`
/// parses as a count; the descriptors are then
/// [`SYSTEMD_LISTEN_FDS_START`]`..SYSTEMD_LISTEN_FDS_START + n` (3, 4, ...).
/// Returns `None` when the variables are missing, malformed, or meant for
/// another process. The environment is left untouched.
///
/// [`take_systemd_fd`] turns each of those descriptors into an
/// [`OwnedFd`](std::os::fd::OwnedFd) (once), for [`from_owned_fd`].
pub fn systemd_listen_fds_count() -> Option<usize> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.trim().parse().ok()?;
    if pid != std::process::id() {
        return None;
    }
    std::env::var("LISTEN_FDS").ok()?.trim().parse().ok()
}

/// Take ownership of a socket passed by systemd socket activation, for
/// [`from_owned_fd`]. This is the workspace's one audited `unsafe` block.
///
/// Refused (with [`io::ErrorKind::InvalidInput`]) unless all of these hold:
/// * `LISTEN_PID` is this process's id and `fd` is in
///   `3..3 + LISTEN_FDS` ([`systemd_listen_fds_count`]): the descriptor was
///   handed to this process by its parent and is not one that Rust code
///   opened (those get numbers above the inherited range);
/// * `fd` has not been taken before in this process (a process-wide
///   registry), so two `OwnedFd`s never own the same descriptor;
/// * on Linux, `/proc/self/fd/<fd>` names a socket (`socket:[…]`), so the
///   descriptor is open and is a socket (no `fstat`, no libc).
///
/// Do not call it for descriptors that some other code in the process has
/// already adopted by other means (e.g. `OwnedFd::from_raw_fd` elsewhere):
/// the registry only knows about this function's own calls.
#[cfg(unix)]
#[allow(unsafe_code)]
pub fn take_systemd_fd(fd: std::os::fd::RawFd) -> io::Result<std::os::fd::OwnedFd> {
    use std::collections::HashSet;
    use std::os::fd::FromRawFd;
    use std::sync::{Mutex, PoisonError};
    static TAKEN: Mutex<Option<HashSet<std::os::fd::RawFd>>> = Mutex::new(None);

    let refuse = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("fd {fd}: {why}"));
    let count = systemd_listen_fds_count()
        .ok_or_else(|| refuse("no socket activation for this process (LISTEN_PID/LISTEN_FDS)"))?;
    let end = i64::from(SYSTEMD_LISTEN_FDS_START) + count as i64;
    if fd < SYSTEMD_LISTEN_FDS_START || i64::from(fd) >= end {
        return Err(refuse("not one of the descriptors passed by systemd"));
    }
    #[cfg(target_os = "linux")]
    {
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .map_err(|e| refuse(&format!("not an open descriptor ({e})")))?;
        if !link.to_string_lossy().starts_with("socket:") {
            return Err(refuse("not a socket"));
        }
    }
    let mut taken = TAKEN.lock().unwrap_or_else(PoisonError::into_inner);
    if !taken.get_or_insert_with(HashSet::new).insert(fd) {
        return Err(refuse("already taken"));
    }
    // SAFETY: `fd` was passed to this process by socket activation (LISTEN_PID
    // is our pid and fd lies in 3..3+LISTEN_FDS, a range inherited at exec,
    // below any descriptor the process opened itself); it is open and a
    // socket (checked through /proc on Linux); and the registry above
    // guarantees this is the only `OwnedFd` this function ever makes for it,
    // so ownership is unique and the descriptor is closed exactly once.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Make sure an inherited socket is listening: if it is not yet (or on systems
/// where that cannot be queried), call `listen(backlog)`. Calling `listen` on a
/// listening socket only updates its backlog, which is why we avoid it where
/// `SO_ACCEPTCONN` can be read.
#[cfg(unix)]
fn ensure_listening(socket: &Socket, backlog: i32) -> io::Result<()> {
    #[cfg(any(
        target_os = "android",
        target_os = "freebsd",
        target_os = "fuchsia",
        target_os = "linux",
    ))]
    if socket.is_listener()? {
        return Ok(());
    }
    socket.listen(backlog)
}

/// Build a listener from an inherited socket (systemd socket activation,
/// Kestrel's `ListenHandle`): the socket is inspected, never re-bound.
///
/// * an IP stream socket becomes a [`TcpListener`] (with `opts.no_delay`
///   applied to accepted connections);
/// * a Unix domain stream socket becomes a [`UnixListener`](crate::unix::UnixListener)
///   that does **not** remove the socket file when dropped (it did not create
///   it); with the `unix` feature off this is an [`io::ErrorKind::Unsupported`]
///   error.
///
/// If the socket is bound but not yet listening, `listen(opts.backlog)` is
/// called. Any other kind of socket (datagram, other families) is an
/// [`io::ErrorKind::InvalidInput`] error. `opts.reuse_*` and `opts.only_v6` do
/// not apply (the socket is already bound).
///
/// # Panics
///
/// Must be called inside a tokio runtime with I/O enabled.
#[cfg(unix)]
pub fn from_owned_fd(fd: std::os::fd::OwnedFd, opts: &TcpOptions) -> io::Result<Box<dyn Listener>> {
    let socket = Socket::from(fd);
    if socket.r#type()? != Type::STREAM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "inherited socket is not a stream socket",
        ));
    }
    let local = socket.local_addr()?;
    if local.as_socket().is_some() {
        ensure_listening(&socket, backlog(opts))?;
        let listener = TcpListener::from_std(socket.into(), opts)?;
        return Ok(Box::new(listener));
    }
    if local.is_unix() {
        #[cfg(feature = "unix")]
        {
            ensure_listening(&socket, backlog(opts))?;
            let listener = crate::unix::UnixListener::from_std(socket.into())?;
            return Ok(Box::new(listener));
        }
        #[cfg(not(feature = "unix"))]
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "inherited Unix domain socket, but the `unix` feature is off",
        ));
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "inherited socket is neither an IP nor a Unix domain socket",
    ))
}

#[cfg(all(test, unix))]
mod systemd_fd_tests {
    /// Without socket activation for this process (cargo sets no
    /// `LISTEN_PID`), no descriptor can be adopted: not stdin, not fd 3.
    #[test]
    fn take_systemd_fd_refuses_without_activation() {
        if super::systemd_listen_fds_count().is_some() {
            return;
        }
        for fd in [0, 3, 4] {
            let e = super::take_systemd_fd(fd).expect_err("refused");
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
        }
    }
}
