//! systemd integration: socket activation and `sd_notify`.
//!
//! * [`listen_fds`]: the descriptors systemd passed (`LISTEN_PID` equal to
//!   our pid, `LISTEN_FDS` = n → fds 3 … 3+n−1), as Kestrel's
//!   `UseSystemd` reads them. The server listens on them as they are; they
//!   are never re-bound.
//! * [`notify()`]: `READY=1` once the server listens and `STOPPING=1` when a
//!   graceful shutdown starts, sent as one datagram to the Unix socket named
//!   by `NOTIFY_SOCKET` (a path, or an abstract name written `@name`), with
//!   plain std. Without `NOTIFY_SOCKET` nothing is sent.

use std::io;

/// The file descriptors passed by systemd socket activation, or an empty
/// list when `LISTEN_PID`/`LISTEN_FDS` are missing, malformed or meant for
/// another process.
pub fn listen_fds() -> Vec<i32> {
    listen_fds_from(
        std::env::var("LISTEN_PID").ok().as_deref(),
        std::env::var("LISTEN_FDS").ok().as_deref(),
        std::process::id(),
    )
}

fn listen_fds_from(pid: Option<&str>, fds: Option<&str>, me: u32) -> Vec<i32> {
    let Some(pid) = pid.and_then(|p| p.trim().parse::<u32>().ok()) else {
        return Vec::new();
    };
    if pid != me {
        return Vec::new();
    }
    let Some(n) = fds.and_then(|n| n.trim().parse::<i32>().ok()) else {
        return Vec::new();
    };
    if n <= 0 || n > i32::MAX - 3 {
        return Vec::new();
    }
    (3..3 + n).collect()
}

/// Where notifications go once a process started by a zero-downtime restart
/// has told its predecessor it is ready: the service manager's socket the
/// predecessor was given (or none). Set once.
static AFTER_READY: std::sync::OnceLock<Option<std::ffi::OsString>> = std::sync::OnceLock::new();

/// The variable that carries the service manager's notification socket to a
/// process started by a zero-downtime restart (its `NOTIFY_SOCKET` is the
/// old process's, for `READY=1`).
pub const UPSTREAM_NOTIFY_SOCKET_ENV: &str = "KESTREL_UPSTREAM_NOTIFY_SOCKET";

/// Set when this process handed its sockets to a new one: the service
/// manager now follows the new process (`MAINPID=`), so this one must not
/// say `STOPPING=1` on its way out.
static SILENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Send no more notifications from this process (see [`SILENT`]).
pub(crate) fn fall_silent() {
    SILENT.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The notification socket in use: `NOTIFY_SOCKET`, or after a hand-over's
/// `READY=1` the service manager's; none once this process handed over.
pub fn notify_socket() -> Option<std::ffi::OsString> {
    if SILENT.load(std::sync::atomic::Ordering::SeqCst) {
        return None;
    }
    match AFTER_READY.get() {
        Some(target) => target.clone(),
        None => std::env::var_os("NOTIFY_SOCKET"),
    }
}

/// After `READY=1` went to the old process of a zero-downtime restart, send
/// later notifications (`STOPPING=1`, the next restart's `MAINPID=`) to the
/// service manager's socket instead.
pub(crate) fn redirect_after_handover_ready() {
    let upstream = std::env::var_os(UPSTREAM_NOTIFY_SOCKET_ENV).filter(|s| !s.is_empty());
    let _ = AFTER_READY.set(upstream);
}

/// Send `state` (e.g. `"READY=1"`) to `NOTIFY_SOCKET`. Returns `Ok(false)`
/// when the variable is not set.
pub fn notify(state: &str) -> io::Result<bool> {
    match notify_socket() {
        Some(path) => notify_to(&path.to_string_lossy(), state).map(|()| true),
        None => Ok(false),
    }
}

/// Send `state` to the notification socket `target` (a path, or `@name`
/// for an abstract socket on Linux).
#[cfg(unix)]
pub fn notify_to(target: &str, state: &str) -> io::Result<()> {
    use std::os::unix::net::UnixDatagram;
    let socket = UnixDatagram::unbound()?;
    if let Some(name) = target.strip_prefix('@') {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
            return Ok(());
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = name;
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "abstract notification sockets exist only on Linux",
            ));
        }
    }
    socket.send_to(state.as_bytes(), target)?;
    Ok(())
}

/// Without Unix sockets there is no systemd to notify.
#[cfg(not(unix))]
pub fn notify_to(_target: &str, _state: &str) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "sd_notify needs Unix domain sockets",
    ))
}

/// [`notify`], logging a failure at warning level instead of returning it.
pub(crate) fn notify_logged(state: &str) {
    match notify(state) {
        Ok(true) => tracing::debug!(target: "kestrel_hosting::systemd", state, "sd_notify sent"),
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(target: "kestrel_hosting::systemd", state, error = %e, "sd_notify failed")
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn listen_fds_rules() {
        assert_eq!(listen_fds_from(Some("42"), Some("2"), 42), vec![3, 4]);
        assert!(listen_fds_from(Some("41"), Some("2"), 42).is_empty());
        assert!(listen_fds_from(None, Some("2"), 42).is_empty());
        assert!(listen_fds_from(Some("42"), Some("x"), 42).is_empty());
        assert!(listen_fds_from(Some("42"), Some("0"), 42).is_empty());
        assert!(listen_fds_from(Some("42"), Some("-1"), 42).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn notify_path_and_abstract() {
        use std::os::unix::net::UnixDatagram;
        let dir = std::env::temp_dir().join(format!("kestrel-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_file(&path);
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("kestrel-notify-test-{}", std::process::id());
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            let rx = UnixDatagram::bind_addr(&addr).unwrap();
            notify_to(&format!("@{name}"), "STOPPING=1").unwrap();
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"STOPPING=1");
        }
    }
}
