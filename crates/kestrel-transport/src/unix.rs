//! Unix domain socket transport (Unix only, feature `unix`).
//!
//! [`bind_unix`] follows Kestrel's rules for `ListenUnixSocket`: the path must be
//! absolute; a stale socket file left by a dead server is replaced, but a socket
//! some live process listens on, or any file that is not a socket, is never
//! touched. The listener removes the socket file when dropped, provided the file
//! at the path is still the one it created.
//!
//! Like the TCP transport, creating a listener must happen inside a tokio runtime
//! with I/O enabled.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::task::{Context, Poll};

use socket2::{Domain, SockAddr, Socket, Type};

use crate::{Address, Connection, Listener, SocketGroup, TransportKind};

/// Options for Unix domain socket listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixOptions {
    /// The `listen(2)` backlog. Default `512`. Values above `i32::MAX` are
    /// clamped.
    pub backlog: u32,
    /// Permissions to set on the socket file after binding (e.g. `0o660` to let
    /// a group connect). `None` (the default) keeps what the umask gave.
    pub mode: Option<u32>,
    /// The group to give the socket file after binding (with a mode such as
    /// `0o660`, its members may connect). `None` (the default) keeps the
    /// process's group. A process may only choose a group it is a member of
    /// (root may choose any).
    pub group: Option<SocketGroup>,
}

impl Default for UnixOptions {
    fn default() -> Self {
        UnixOptions {
            backlog: 512,
            mode: None,
            group: None,
        }
    }
}

/// Why [`bind_unix`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnixBindError {
    /// The socket path is relative; Unix socket paths must be absolute.
    #[error("unix socket path {} is not absolute", .0.display())]
    NotAbsolute(PathBuf),
    /// A live process listens on the path, or the path exists and is not a
    /// socket (it is left alone).
    #[error("unix socket path {} is in use", .0.display())]
    AddressInUse(PathBuf),
    /// [`UnixOptions::group`] names a group the system does not know.
    #[error("unix socket {}: no group named '{group}'", path.display())]
    UnknownGroup {
        /// The socket path.
        path: PathBuf,
        /// The group name.
        group: String,
    },
    /// Any other I/O error while checking, removing, binding, chown-ing or chmod-ing.
    #[error("unix socket {}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl From<UnixBindError> for io::Error {
    /// `NotAbsolute` becomes [`io::ErrorKind::InvalidInput`], `AddressInUse`
    /// [`io::ErrorKind::AddrInUse`]; `Io` keeps its source's kind.
    fn from(e: UnixBindError) -> io::Error {
        let kind = match &e {
            UnixBindError::NotAbsolute(_) => io::ErrorKind::InvalidInput,
            UnixBindError::AddressInUse(_) => io::ErrorKind::AddrInUse,
            UnixBindError::UnknownGroup { .. } => io::ErrorKind::NotFound,
            UnixBindError::Io { source, .. } => source.kind(),
        };
        io::Error::new(kind, e)
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> UnixBindError + '_ {
    move |source| UnixBindError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Bind a Unix domain stream socket at `path`.
///
/// * `path` must be absolute ([`UnixBindError::NotAbsolute`]).
/// * If a socket file exists at `path`, it is probed with a connect: if a
///   process accepts, the result is [`UnixBindError::AddressInUse`]; if the
///   connection is refused (no one listens: a stale file from a server that
///   died) the file is removed and the bind proceeds. Note that a live
///   server does see the probe: one connection that closes without data.
/// * If anything else exists at `path` (a regular file, a directory, a
///   symlink), the result is [`UnixBindError::AddressInUse`] and it is not
///   deleted.
/// * The socket is bound with `socket2`; then [`UnixOptions::group`] is
///   applied with `chown` and [`UnixOptions::mode`] with `chmod`, both before
///   it listens (so no client connects under the umask's permissions), and
///   then it listens with [`UnixOptions::backlog`].
///
/// # Panics
///
/// Must be called inside a tokio runtime with I/O enabled.
pub fn bind_unix(path: &Path, opts: &UnixOptions) -> Result<UnixListener, UnixBindError> {
    if !path.is_absolute() {
        return Err(UnixBindError::NotAbsolute(path.to_path_buf()));
    }

    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(UnixBindError::AddressInUse(path.to_path_buf())),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    match std::fs::remove_file(path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err(path)(e)),
                    }
                    tracing::info!(path = %path.display(), "replaced stale unix socket file");
                }
                Err(e) => return Err(io_err(path)(e)),
            }
        }
        Ok(_) => return Err(UnixBindError::AddressInUse(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(path)(e)),
    }

    let addr = SockAddr::unix(path).map_err(io_err(path))?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(io_err(path))?;
    match socket.bind(&addr) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            // Someone bound the path between our check and our bind.
            return Err(UnixBindError::AddressInUse(path.to_path_buf()));
        }
        Err(e) => return Err(io_err(path)(e)),
    }
    // From here on the file is ours: remove it again if setting up fails.
    let meta = std::fs::symlink_metadata(path).map_err(io_err(path))?;
    let cleanup = |e: io::Error| {
        let _ = std::fs::remove_file(path);
        io_err(path)(e)
    };
    if let Some(group) = &opts.group {
        let gid = match resolve_group(group) {
            Ok(gid) => gid,
            Err(e) => {
                let _ = std::fs::remove_file(path);
                return Err(match e {
                    Some(e) => io_err(path)(e),
                    None => UnixBindError::UnknownGroup {
                        path: path.to_path_buf(),
                        group: group.to_string(),
                    },
                });
            }
        };
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(cleanup)?;
    }
    if let Some(mode) = opts.mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(cleanup)?;
    }
    let backlog = i32::try_from(opts.backlog).unwrap_or(i32::MAX);
    socket.listen(backlog).map_err(cleanup)?;
    if opts.mode.is_some() || opts.group.is_some() {
        tracing::debug!(path = %path.display(), mode = ?opts.mode.map(|m| format!("{m:04o}")), group = ?opts.group.as_ref().map(ToString::to_string), "unix socket file permissions set");
    }
    socket.set_nonblocking(true).map_err(cleanup)?;
    let inner = tokio::net::UnixListener::from_std(socket.into()).map_err(cleanup)?;
    Ok(UnixListener {
        inner,
        path: Some(path.to_path_buf()),
        local_addr: Address::Unix(path.to_path_buf()),
        owned_file: Some((meta.dev(), meta.ino())),
    })
}

/// The group id of `group`: `Err(None)` when no group has that name.
fn resolve_group(group: &SocketGroup) -> Result<u32, Option<io::Error>> {
    match group {
        SocketGroup::Id(id) => Ok(*id),
        SocketGroup::Name(name) if name.is_empty() => Err(None),
        SocketGroup::Name(name) => match nix::unistd::Group::from_name(name) {
            Ok(Some(g)) => Ok(g.gid.as_raw()),
            Ok(None) => Err(None),
            Err(errno) => Err(Some(io::Error::from(errno))),
        },
    }
}

/// The address a Unix socket address is shown as: its path; on Linux an
/// abstract name as `@name`; unnamed sockets as an empty path.
fn describe(addr: &std::os::unix::net::SocketAddr) -> PathBuf {
    if let Some(p) = addr.as_pathname() {
        return p.to_path_buf();
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        #[cfg(target_os = "android")]
        use std::os::android::net::SocketAddrExt;
        #[cfg(target_os = "linux")]
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::ffi::OsStrExt;
        if let Some(name) = addr.as_abstract_name() {
            let mut s = std::ffi::OsString::from("@");
            s.push(std::ffi::OsStr::from_bytes(name));
            return PathBuf::from(s);
        }
    }
    PathBuf::new()
}

/// A Unix domain socket listener.
///
/// Connections have [`Address::Unix`] addresses: the listener's path as local
/// address, the peer's path (usually empty: clients rarely bind) as remote
/// address.
///
/// When created by [`bind_unix`], dropping the listener removes the socket file,
/// but only if the file at the path is still the one bound (same device and
/// inode), so a file another server has since put there is never deleted.
/// Listeners made with [`UnixListener::from_std`] (e.g. inherited sockets)
/// never remove the file.
#[derive(Debug)]
pub struct UnixListener {
    inner: tokio::net::UnixListener,
    path: Option<PathBuf>,
    local_addr: Address,
    /// `(dev, ino)` of the socket file this listener created and must remove.
    owned_file: Option<(u64, u64)>,
}

impl UnixListener {
    /// Wrap an already bound and listening std listener (e.g. an inherited
    /// socket). Sets it non-blocking. The socket file is **not** removed on
    /// drop: whoever bound it owns it.
    ///
    /// # Panics
    ///
    /// Must be called inside a tokio runtime with I/O enabled.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let path = addr.as_pathname().map(Path::to_path_buf);
        let inner = tokio::net::UnixListener::from_std(listener)?;
        Ok(UnixListener {
            inner,
            path,
            local_addr: Address::Unix(describe(&addr)),
            owned_file: None,
        })
    }

    /// Take charge of the socket file, as if this listener had bound it: it
    /// is removed when the listener is dropped (if it is still the same
    /// file). For a socket inherited from a previous process of the same
    /// server (a zero-downtime restart), which gave the file up.
    pub fn own_socket_file(&mut self) -> io::Result<()> {
        if let Some(path) = &self.path {
            let meta = std::fs::symlink_metadata(path)?;
            if meta.file_type().is_socket() {
                self.owned_file = Some((meta.dev(), meta.ino()));
            }
        }
        Ok(())
    }

    /// The socket path, if the socket is bound to one (not for abstract or
    /// unnamed sockets).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether dropping this listener removes the socket file.
    pub fn removes_file_on_drop(&self) -> bool {
        self.owned_file.is_some()
    }

    /// The underlying tokio listener.
    pub fn get_ref(&self) -> &tokio::net::UnixListener {
        &self.inner
    }
}

impl Listener for UnixListener {
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Connection>> {
        for _ in 0..crate::listener::MAX_SKIPPED_ACCEPT_ERRORS {
            match self.inner.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok((stream, peer))) => {
                    let remote = match peer.as_pathname() {
                        Some(p) => p.to_path_buf(),
                        None => PathBuf::new(),
                    };
                    return Poll::Ready(Ok(Connection {
                        io: Box::new(stream),
                        local_addr: self.local_addr.clone(),
                        remote_addr: Address::Unix(remote),
                        kind: TransportKind::Unix,
                    }));
                }
                Poll::Ready(Err(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                            | io::ErrorKind::WouldBlock
                    ) =>
                {
                    tracing::debug!(listener = %self.local_addr, error = %e, "skipping failed incoming unix connection");
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn as_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(self.inner.as_fd())
    }

    fn local_addr(&self) -> &Address {
        &self.local_addr
    }
}

/// Set once this process has handed its listening sockets to another one
/// (a zero-downtime restart): the socket files now serve the new process, so
/// no listener of this process removes its file any more.
static KEEP_SOCKET_FILES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on, no [`UnixListener`] of this process removes its socket file
/// when dropped (the sockets were handed to another process, which serves
/// on at the same paths).
pub fn keep_socket_files_on_drop() {
    KEEP_SOCKET_FILES.store(true, std::sync::atomic::Ordering::SeqCst);
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        let (Some((dev, ino)), Some(path)) = (self.owned_file, self.path.as_deref()) else {
            return;
        };
        if KEEP_SOCKET_FILES.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() && meta.dev() == dev && meta.ino() == ino => {
                if let Err(e) = std::fs::remove_file(path) {
                    tracing::debug!(path = %path.display(), error = %e, "could not remove unix socket file");
                }
            }
            Ok(_) => {
                tracing::debug!(path = %path.display(), "unix socket file was replaced; leaving it");
            }
            Err(_) => {}
        }
    }
}
