//! Listening sockets inherited from the previous process of this server (a
//! zero-downtime restart, `kill -USR2`; see `kestrel_hosting::restart`).
//!
//! The old process passes its listening sockets as systemd passes them
//! (`LISTEN_FDS` = n, `LISTEN_PID` = the new process's pid, descriptors
//! 3 … 3+n−1) and adds [`HANDOVER_ENV`]. Unlike systemd's sockets, these are
//! not extra endpoints: when the new process binds an endpoint whose address
//! one of them has (same IP and port, or same Unix socket path), it adopts
//! that socket instead of binding a new one. The accept queue is the same
//! socket's, so no connection waiting in it is lost. Sockets no endpoint
//! claims are closed once the server has started.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Mutex;

use kestrel_transport::tcp::TcpOptions;
use kestrel_transport::Listener;

/// Set (to the old process's pid) in a process started by a zero-downtime
/// restart: its `LISTEN_FDS` sockets are the old process's listeners.
pub const HANDOVER_ENV: &str = "KESTREL_HANDOVER_FROM";

#[derive(Default)]
struct Pool {
    tcp: HashMap<SocketAddr, OwnedFd>,
    unix: HashMap<PathBuf, OwnedFd>,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// Whether this process was started by a zero-downtime restart (and its
/// `LISTEN_FDS` are meant for it).
pub fn is_handover() -> bool {
    std::env::var_os(HANDOVER_ENV).is_some()
        && kestrel_transport::tcp::systemd_listen_fds_count().is_some()
}

fn with_pool<T>(f: impl FnOnce(&mut Pool) -> T) -> T {
    let mut guard = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let pool = guard.get_or_insert_with(|| {
        let mut pool = Pool::default();
        if !is_handover() {
            return pool;
        }
        let n = kestrel_transport::tcp::systemd_listen_fds_count().unwrap_or(0);
        let start = kestrel_transport::tcp::SYSTEMD_LISTEN_FDS_START;
        for fd in start..start.saturating_add(i32::try_from(n).unwrap_or(0)) {
            let owned = match kestrel_transport::tcp::take_systemd_fd(fd) {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(target: "kestrel", fd, error = %e, "an inherited socket could not be adopted");
                    continue;
                }
            };
            let socket = socket2::SockRef::from(&owned);
            match socket.local_addr() {
                Ok(a) => {
                    if let Some(ip) = a.as_socket() {
                        pool.tcp.insert(ip, owned);
                    } else if let Some(path) = a.as_pathname() {
                        pool.unix.insert(path.to_path_buf(), owned);
                    } else {
                        tracing::warn!(target: "kestrel", fd, "an inherited socket has no address; closing it");
                    }
                }
                Err(e) => {
                    tracing::warn!(target: "kestrel", fd, error = %e, "an inherited socket has no address; closing it")
                }
            }
        }
        tracing::info!(target: "kestrel", tcp = pool.tcp.len(), unix = pool.unix.len(), "adopting the listening sockets of the previous process");
        pool
    });
    f(pool)
}

/// The inherited TCP listener bound to `addr`, if any (port 0 never matches).
pub(crate) fn take_tcp(
    addr: SocketAddr,
    tcp: &TcpOptions,
) -> Option<std::io::Result<Box<dyn Listener>>> {
    if addr.port() == 0 {
        return None;
    }
    let fd = with_pool(|p| p.tcp.remove(&addr))?;
    tracing::debug!(target: "kestrel", %addr, "adopting an inherited listening socket");
    Some(kestrel_transport::tcp::from_owned_fd(fd, tcp))
}

/// The inherited Unix socket listener at `path`, if any; it removes the
/// socket file when it is dropped, as a listener that bound it would.
#[cfg(feature = "unix")]
pub(crate) fn take_unix(path: &std::path::Path) -> Option<std::io::Result<Box<dyn Listener>>> {
    let fd = with_pool(|p| p.unix.remove(path))?;
    tracing::debug!(target: "kestrel", path = %path.display(), "adopting an inherited Unix socket");
    let adopt = || -> std::io::Result<Box<dyn Listener>> {
        let std_listener = std::os::unix::net::UnixListener::from(fd);
        let mut l = kestrel_transport::unix::UnixListener::from_std(std_listener)?;
        l.own_socket_file()?;
        Ok(Box::new(l))
    };
    Some(adopt())
}

/// Close the inherited sockets no endpoint claimed (an endpoint removed
/// from the configuration between the two processes).
pub fn close_unclaimed() {
    with_pool(|p| {
        for a in p.tcp.keys() {
            tracing::info!(target: "kestrel", address = %a, "closing an inherited socket no endpoint uses any more");
        }
        for a in p.unix.keys() {
            tracing::info!(target: "kestrel", path = %a.display(), "closing an inherited socket no endpoint uses any more");
        }
        p.tcp.clear();
        p.unix.clear();
    });
}
