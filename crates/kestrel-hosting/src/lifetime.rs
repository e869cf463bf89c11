//! The application's lifetime (ASP.NET Core's `IHostApplicationLifetime`):
//! started / stopping / stopped hooks, a programmatic stop, and the signals
//! (SIGINT, SIGTERM) that start a graceful shutdown.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

type Hook = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct Hooks {
    fired: bool,
    pending: Vec<Hook>,
}

impl Hooks {
    fn add(&mut self, hook: Hook) -> Option<Hook> {
        if self.fired {
            Some(hook)
        } else {
            self.pending.push(hook);
            None
        }
    }

    fn fire(&mut self) -> Vec<Hook> {
        self.fired = true;
        std::mem::take(&mut self.pending)
    }
}

struct Inner {
    started: Mutex<Hooks>,
    stopping: Mutex<Hooks>,
    stopped: Mutex<Hooks>,
    stop_requested: watch::Sender<bool>,
}

/// Hooks into the host's lifetime. Clone it freely: every clone is the same
/// lifetime. A hook registered after its event already happened runs at once.
#[derive(Clone)]
pub struct ApplicationLifetime {
    inner: Arc<Inner>,
}

impl Default for ApplicationLifetime {
    fn default() -> Self {
        ApplicationLifetime {
            inner: Arc::new(Inner {
                started: Mutex::default(),
                stopping: Mutex::default(),
                stopped: Mutex::default(),
                stop_requested: watch::channel(false).0,
            }),
        }
    }
}

impl fmt::Debug for ApplicationLifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationLifetime")
            .field("stop_requested", &*self.inner.stop_requested.borrow())
            .finish_non_exhaustive()
    }
}

fn add(hooks: &Mutex<Hooks>, hook: Hook) {
    let run_now = hooks
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .add(hook);
    if let Some(h) = run_now {
        h();
    }
}

fn fire(hooks: &Mutex<Hooks>) {
    let list = hooks.lock().unwrap_or_else(PoisonError::into_inner).fire();
    for h in list {
        h();
    }
}

impl ApplicationLifetime {
    /// A new lifetime (the host makes one; tests may too).
    pub fn new() -> Self {
        Self::default()
    }

    /// Run `f` once the server listens (`ApplicationStarted`).
    pub fn on_started(&self, f: impl FnOnce() + Send + 'static) {
        add(&self.inner.started, Box::new(f));
    }

    /// Run `f` when a graceful shutdown starts, before the server stops
    /// accepting (`ApplicationStopping`).
    pub fn on_stopping(&self, f: impl FnOnce() + Send + 'static) {
        add(&self.inner.stopping, Box::new(f));
    }

    /// Run `f` once the server has stopped (`ApplicationStopped`).
    pub fn on_stopped(&self, f: impl FnOnce() + Send + 'static) {
        add(&self.inner.stopped, Box::new(f));
    }

    /// Whether the graceful shutdown has begun (the stopping hooks fired):
    /// from then on readiness checks report `Unhealthy`
    /// ([`HealthChecks::add_shutdown_check`](crate::middleware::HealthChecks::add_shutdown_check)).
    pub fn is_stopping(&self) -> bool {
        self.inner
            .stopping
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fired
    }

    /// Ask the host to shut down gracefully (`StopApplication`).
    pub fn stop_application(&self) {
        self.inner.stop_requested.send_replace(true);
    }

    /// Resolves once [`stop_application`](Self::stop_application) was called.
    pub async fn stop_requested(&self) {
        let mut rx = self.inner.stop_requested.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }

    pub(crate) fn fire_started(&self) {
        fire(&self.inner.started);
    }

    pub(crate) fn fire_stopping(&self) {
        fire(&self.inner.stopping);
    }

    pub(crate) fn fire_stopped(&self) {
        fire(&self.inner.stopped);
    }
}

/// SIGINT (Ctrl+C) and SIGTERM handlers, installed when this is created (so
/// a signal that arrives before [`recv`](Self::recv) is awaited is not lost
/// and does not kill the process).
#[derive(Debug)]
pub struct ShutdownSignals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    /// Install the handlers. Must be called inside a tokio runtime. A handler
    /// that cannot be installed is logged, and that signal never reported.
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mk = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(target: "kestrel::hosting", "cannot listen for {name}: {e}");
                    None
                }
            };
            ShutdownSignals {
                int: mk(SignalKind::interrupt(), "SIGINT"),
                term: mk(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        ShutdownSignals {}
    }

    /// Resolves at the first SIGINT or SIGTERM, with the signal's name.
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        if s.recv().await.is_none() {
                            std::future::pending::<()>().await
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.int) => "SIGINT",
                _ = next(&mut self.term) => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "SIGINT",
                Err(_) => std::future::pending().await,
            }
        }
    }
}

/// Resolves at the first SIGINT (Ctrl+C) or SIGTERM, with the signal's name.
/// The handlers are installed when this is first polled; prefer
/// [`ShutdownSignals::install`] early to not miss a signal.
pub async fn shutdown_signal() -> &'static str {
    ShutdownSignals::install().recv().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn hooks_fire_once_and_late_hooks_run_at_once() {
        let l = ApplicationLifetime::new();
        let n = Arc::new(AtomicUsize::new(0));
        let c = n.clone();
        l.on_started(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 0);
        l.fire_started();
        assert_eq!(n.load(Ordering::SeqCst), 1);
        let c = n.clone();
        l.on_started(move || {
            c.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 11);
        let l2 = l.clone();
        let waiter = tokio::spawn(async move { l2.stop_requested().await });
        l.stop_application();
        waiter.await.ok();
    }
}
