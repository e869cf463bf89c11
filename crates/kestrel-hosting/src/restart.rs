//! Zero-downtime restart on `SIGUSR2` (nginx's convention for its binary
//! upgrade; beyond ASP.NET Core): the running process starts its own
//! executable again — the file at its path now, so a new build deployed
//! there — with the same arguments and environment, and hands it every
//! listening socket. Once the new process reports ready, this one stops
//! accepting and drains its connections within the shutdown timeout, then
//! exits. If the new process fails to start, this one keeps serving and
//! logs why.
//!
//! How the hand-over works:
//!
//! 1. The server gives copies of its listening sockets (TCP and Unix:
//!    [`StartedServer::listening_sockets`](crate::server::StartedServer::listening_sockets)).
//! 2. The new process gets them as systemd passes sockets: descriptors
//!    3 … 3+n−1 (mapped by the `command-fds` crate), `LISTEN_FDS` = n and
//!    `LISTEN_PID` = its own pid (set by `/bin/sh`, whose `$$` is the pid the
//!    program keeps across `exec`), plus `KESTREL_HANDOVER_FROM` = this pid.
//!    With that variable the new process does not treat them as extra
//!    endpoints: each endpoint it binds adopts the socket that has its
//!    address (so the accept queue is the same socket's: nothing waiting in
//!    it is lost, which `SO_REUSEPORT` alone cannot promise).
//! 3. `NOTIFY_SOCKET` points the new process at a datagram socket of this
//!    one; the host sends `READY=1` there once it listens, as it does to
//!    systemd.
//! 4. On `READY=1` this process keeps the Unix socket files (they serve the
//!    new process now), tells systemd `MAINPID=<new pid>` when it runs under
//!    systemd (`NotifyAccess=all`), and shuts down gracefully. The new
//!    process sends its later notifications (`STOPPING=1`, the next
//!    restart's `MAINPID=`) to systemd's socket, passed in
//!    `KESTREL_UPSTREAM_NOTIFY_SOCKET`. If the new process exits first, or
//!    is not ready within [`READY_TIMEOUT`], it is killed (on timeout) and
//!    this process serves on.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};

use crate::lifetime::ApplicationLifetime;
use crate::reload::SharedServer;

/// Set (to the old process's pid) in the environment of the new process.
/// The `kestrel` facade's `handover` module reads it.
pub const HANDOVER_ENV: &str = "KESTREL_HANDOVER_FROM";

/// How long the new process has to report ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a restart did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestartError {
    /// The server is stopping (or stopped).
    #[error("the server is stopping")]
    Stopped,
    /// The process was started by systemd socket activation: its sockets
    /// belong to systemd, which keeps them open across `systemctl restart`.
    #[error("the sockets come from systemd socket activation: restart with `systemctl restart` (systemd keeps the sockets open, so nothing is refused)")]
    SocketActivated,
    /// The server has no listening socket to hand over.
    #[error("the server has no listening socket to hand over")]
    NoSockets,
    /// An I/O error while preparing or starting the new process.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The new process exited before it was ready.
    #[error("the new process {pid} exited before it was ready ({status})")]
    Exited {
        /// Its pid.
        pid: u32,
        /// How it exited.
        status: ExitStatus,
    },
    /// The new process was not ready in time (it was killed).
    #[error("the new process {pid} was not ready within {timeout:?}; it was killed")]
    NotReady {
        /// Its pid.
        pid: u32,
        /// The limit.
        timeout: Duration,
    },
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> RestartError {
    move |source| RestartError::Io { what, source }
}

/// Listens for SIGUSR2 and performs restarts.
#[derive(Debug)]
pub(crate) struct Restarter {
    task: tokio::task::JoinHandle<()>,
}

impl Restarter {
    /// Listen for SIGUSR2 (`None` if that is not possible, logged).
    pub(crate) fn start(server: SharedServer, lifetime: ApplicationLifetime) -> Option<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut signals = match signal(SignalKind::user_defined2()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(target: "kestrel::hosting", error = %e, "cannot listen for SIGUSR2: zero-downtime restart is off");
                return None;
            }
        };
        let task = tokio::spawn(async move {
            while signals.recv().await.is_some() {
                tracing::info!(target: "kestrel::hosting", "SIGUSR2 received: starting a new process to take over (zero-downtime restart)");
                match restart(&server, READY_TIMEOUT).await {
                    Ok(pid) => {
                        tracing::info!(target: "kestrel::hosting", event_name = "RestartHandedOver", new_pid = pid, "the new process {pid} is ready and serves every endpoint: this process stops accepting and drains");
                        if let Err(e) = crate::systemd::notify(&format!("MAINPID={pid}")) {
                            tracing::warn!(target: "kestrel::hosting", error = %e, "could not tell systemd the new MAINPID");
                        }
                        // systemd follows the new process now: no STOPPING=1 from this one.
                        crate::systemd::fall_silent();
                        lifetime.stop_application();
                        return;
                    }
                    Err(e) => {
                        tracing::error!(target: "kestrel::hosting", event_name = "RestartFailed", error = %e, "zero-downtime restart failed, this process keeps serving: {e}");
                    }
                }
            }
        });
        Some(Restarter { task })
    }

    /// Stop listening (a restart in progress is abandoned).
    pub(crate) fn stop(self) {
        self.task.abort();
    }
}

/// The executable to start: the file at this process's path (a new build
/// renamed over it shows as "… (deleted)" in /proc; the path is what counts).
fn executable() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let text = exe.to_string_lossy();
    Ok(match text.strip_suffix(" (deleted)") {
        Some(p) => PathBuf::from(p),
        None => exe,
    })
}

/// Start the new process with the server's sockets and wait until it is
/// ready; returns its pid. On success the server has been told to keep its
/// Unix socket files.
async fn restart(server: &SharedServer, timeout: Duration) -> Result<u32, RestartError> {
    if !crate::systemd::listen_fds().is_empty() && std::env::var_os(HANDOVER_ENV).is_none() {
        return Err(RestartError::SocketActivated);
    }
    let sockets: Vec<OwnedFd> = {
        let guard = server.lock().await;
        let Some(s) = guard.as_ref() else {
            return Err(RestartError::Stopped);
        };
        s.listening_sockets()
            .map_err(io("copying the listening sockets"))?
    };
    if sockets.is_empty() {
        return Err(RestartError::NoSockets);
    }
    let exe = executable().map_err(io("finding this program's executable"))?;
    let me = std::process::id();
    let notify_path = std::env::temp_dir().join(format!(
        "kestrel-restart-{me}-{}.sock",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let notify = tokio::net::UnixDatagram::bind(&notify_path)
        .map_err(io("creating the readiness socket"))?;
    let cleanup = RemoveOnDrop(notify_path.clone());
    let n = sockets.len();
    let mappings: Vec<FdMapping> = sockets
        .into_iter()
        .zip(3..)
        .map(|(parent_fd, child_fd)| FdMapping {
            parent_fd,
            child_fd,
        })
        .collect();
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@""#)
        .arg(&exe)
        .args(std::env::args_os().skip(1))
        .env("LISTEN_FDS", n.to_string())
        .env_remove("LISTEN_FDNAMES")
        .env(HANDOVER_ENV, me.to_string())
        .env("NOTIFY_SOCKET", &notify_path);
    match crate::systemd::notify_socket() {
        Some(upstream) => cmd.env(crate::systemd::UPSTREAM_NOTIFY_SOCKET_ENV, upstream),
        None => cmd.env_remove(crate::systemd::UPSTREAM_NOTIFY_SOCKET_ENV),
    };
    cmd.fd_mappings(mappings).map_err(|e| RestartError::Io {
        what: "mapping the listening sockets",
        source: std::io::Error::other(e),
    })?;
    let mut child = cmd.spawn().map_err(io("starting the new process"))?;
    drop(cmd);
    let pid = child.id();
    tracing::info!(target: "kestrel::hosting", new_pid = pid, sockets = n, exe = %exe.display(), "started the new process {pid} with {n} listening socket(s); waiting until it is ready");
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            r = notify.recv(&mut buf) => {
                let len = r.map_err(io("reading the readiness socket"))?;
                let text = String::from_utf8_lossy(&buf[..len]);
                if text.lines().any(|l| l.trim() == "READY=1") {
                    drop(cleanup);
                    if let Some(s) = server.lock().await.as_mut() {
                        s.handed_over();
                    }
                    return Ok(pid);
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                if let Some(status) = child.try_wait().map_err(io("waiting for the new process"))? {
                    return Err(RestartError::Exited { pid, status });
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(RestartError::NotReady { pid, timeout });
                }
            }
        }
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
