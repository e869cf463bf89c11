//! Configuration reload (ASP.NET Core's `reloadOnChange`): when
//! `appsettings.json` or `appsettings.{Environment}.json` changes on disk
//! (rewritten in place or replaced by a rename), or on `SIGHUP` (the Unix
//! convention; beyond ASP.NET Core), every configuration source is read
//! again and applied:
//!
//! * `Logging:LogLevel` at once (a reloadable `tracing-subscriber` filter;
//!   `RUST_LOG`, when set, still wins);
//! * `AllowedHosts` from the next request (host filtering reads it through
//!   a [`ReloadableHostFiltering`], as ASP.NET Core's options monitor);
//! * the server's part (`Kestrel:Endpoints`, and `Kestrel:Limits` for new
//!   connections, for Kestrel) through
//!   [`StartedServer::reload`].
//!
//! A new configuration that cannot be used (invalid JSON, a bad key or
//! value, an address in use) changes nothing: the host keeps serving with
//! the old one and logs an error naming the file, key or address.
//!
//! File watching is on for [`WebHost::create_default_builder`](crate::WebHost::create_default_builder)
//! unless `hostBuilder:reloadConfigOnChange` is `false` (or
//! [`WebHostBuilder::reload_config_on_change(false)`](crate::WebHostBuilder::reload_config_on_change));
//! `SIGHUP` reloads either way.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use http::Request;
use kestrel_core::RequestBody;
use notify::event::{AccessKind, AccessMode};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::builder::{log_filter_from_config, HostError};
use crate::config::Configuration;
use crate::middleware::host_filtering::HostFiltering;
use crate::pipeline::{BoxResponseFuture, Middleware, Next};
use crate::server::StartedServer;

/// The setting that turns file watching off (ASP.NET Core's key).
pub const RELOAD_CONFIG_ON_CHANGE_KEY: &str = "hostBuilder:reloadConfigOnChange";

/// How long the files must stay quiet before they are read again.
const QUIET: Duration = Duration::from_millis(100);

/// Host filtering whose `AllowedHosts` can be replaced while serving; no
/// filtering while it has none. Cheap to clone (clones share the setting).
#[derive(Clone, Default)]
pub struct ReloadableHostFiltering {
    current: Arc<RwLock<Option<HostFiltering>>>,
}

impl std::fmt::Debug for ReloadableHostFiltering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableHostFiltering")
            .field("current", &*self.read())
            .finish()
    }
}

impl ReloadableHostFiltering {
    /// Start with `filter` (`None`: every host allowed).
    pub fn new(filter: Option<HostFiltering>) -> Self {
        ReloadableHostFiltering {
            current: Arc::new(RwLock::new(filter)),
        }
    }

    /// Replace the filter; the next request uses it.
    pub fn set(&self, filter: Option<HostFiltering>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = filter;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<HostFiltering>> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Middleware for ReloadableHostFiltering {
    fn call(&self, req: Request<RequestBody>, next: Next) -> BoxResponseFuture {
        let filter = self.read().clone();
        match filter {
            Some(f) => f.call(req, next),
            None => next.run(req),
        }
    }
}

/// `AllowedHosts` as a filter (`None` when unset or empty).
pub(crate) fn allowed_hosts(config: &Configuration) -> Result<Option<HostFiltering>, HostError> {
    match config.get("AllowedHosts").filter(|h| !h.trim().is_empty()) {
        Some(hosts) => HostFiltering::new(hosts)
            .map(Some)
            .map_err(|e| HostError::Middleware(format!("AllowedHosts: {e}"))),
        None => Ok(None),
    }
}

type FilterHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// The reload handle of the console logging filter, when
/// [`init_logging`](crate::builder::init_logging) installed it.
static LOG_FILTER: OnceLock<FilterHandle> = OnceLock::new();

pub(crate) fn set_log_filter_handle(handle: FilterHandle) {
    let _ = LOG_FILTER.set(handle);
}

/// Apply `Logging:LogLevel` of `config` to the console logging at once
/// (unless `RUST_LOG` is set, or logging was not set up by the host).
/// Returns the filter that was in force, to restore it.
fn apply_log_levels(config: &Configuration) -> Option<String> {
    if std::env::var("RUST_LOG").is_ok_and(|v| !v.trim().is_empty()) {
        return None;
    }
    let handle = LOG_FILTER.get()?;
    let previous = handle.with_current(|f| f.to_string()).ok();
    set_log_filter(handle, &log_filter_from_config(config));
    previous
}

fn set_log_filter(handle: &FilterHandle, directives: &str) {
    match tracing_subscriber::EnvFilter::try_new(directives) {
        Ok(filter) => {
            if let Err(e) = handle.reload(filter) {
                tracing::warn!(target: "kestrel::hosting", error = %e, "could not change the log levels");
            }
        }
        Err(e) => {
            tracing::warn!(target: "kestrel::hosting", error = %e, directives, "invalid log filter")
        }
    }
}

/// Why a reload was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    File,
    Hangup,
}

/// What reading the configuration again needs from the host.
pub(crate) type ReadConfiguration =
    Box<dyn Fn() -> Result<Configuration, HostError> + Send + Sync + 'static>;

/// The running reload machinery of a host: the file watcher, the SIGHUP
/// listener and the task that applies new configurations.
pub(crate) struct Reloader {
    _watcher: Option<notify::RecommendedWatcher>,
    hangup: Option<tokio::task::JoinHandle<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("watching", &self._watcher.is_some())
            .finish_non_exhaustive()
    }
}

/// The server, shared by the host and the reload task.
pub(crate) type SharedServer = Arc<tokio::sync::Mutex<Option<Box<dyn StartedServer>>>>;

/// What a reload applies.
pub(crate) struct ReloadTargets {
    pub server: SharedServer,
    pub addresses: Arc<Mutex<Vec<String>>>,
    pub host_filtering: Option<ReloadableHostFiltering>,
    pub drain_timeout: Duration,
}

impl Reloader {
    /// Watch `files` (when `watch_files`) and SIGHUP; apply what `read` returns.
    pub(crate) fn start(
        files: Vec<PathBuf>,
        watch_files: bool,
        read: ReadConfiguration,
        targets: ReloadTargets,
    ) -> Reloader {
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = if watch_files {
            watch(&files, tx.clone())
        } else {
            None
        };
        let hangup = hangup_listener(tx);
        let task = tokio::spawn(reload_loop(rx, read, targets));
        Reloader {
            _watcher: watcher,
            hangup,
            task,
        }
    }

    /// Stop watching and listening; an ongoing reload finishes first
    /// (the caller takes the server's lock after this).
    pub(crate) fn stop(self) {
        if let Some(h) = self.hangup {
            h.abort();
        }
        drop(self._watcher);
        self.task.abort();
    }
}

fn watch(
    files: &[PathBuf],
    tx: mpsc::UnboundedSender<Trigger>,
) -> Option<notify::RecommendedWatcher> {
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name())
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .collect();
    let dirs: Vec<PathBuf> = {
        let mut d: Vec<PathBuf> = files
            .iter()
            .map(|f| {
                f.parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| ".".into())
            })
            .collect();
        d.dedup();
        d
    };
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else {
            return;
        };
        if let notify::EventKind::Access(kind) = event.kind {
            if kind != AccessKind::Close(AccessMode::Write) {
                return;
            }
        }
        let ours = event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| names.contains(&n.to_string_lossy().to_ascii_lowercase()))
        });
        if ours {
            let _ = tx.send(Trigger::File);
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(target: "kestrel::hosting", error = %e, "cannot watch the configuration files; send SIGHUP to reload");
            return None;
        }
    };
    for dir in &dirs {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(target: "kestrel::hosting", dir = %dir.display(), error = %e, "cannot watch the configuration files; send SIGHUP to reload");
        }
    }
    Some(watcher)
}

#[cfg(unix)]
fn hangup_listener(tx: mpsc::UnboundedSender<Trigger>) -> Option<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(mut s) => Some(tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(Trigger::Hangup).is_err() {
                    break;
                }
            }
        })),
        Err(e) => {
            tracing::warn!(target: "kestrel::hosting", error = %e, "cannot listen for SIGHUP");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_listener(_tx: mpsc::UnboundedSender<Trigger>) -> Option<tokio::task::JoinHandle<()>> {
    None
}

async fn reload_loop(
    mut rx: mpsc::UnboundedReceiver<Trigger>,
    read: ReadConfiguration,
    targets: ReloadTargets,
) {
    while let Some(first) = rx.recv().await {
        let mut why = first;
        // Let a file written in several steps settle.
        loop {
            match tokio::time::timeout(QUIET, rx.recv()).await {
                Ok(Some(t)) => {
                    if t == Trigger::Hangup {
                        why = t;
                    }
                }
                Ok(None) => return,
                Err(_) => break,
            }
        }
        let why = match why {
            Trigger::File => "a configuration file changed",
            Trigger::Hangup => "SIGHUP received",
        };
        tracing::info!(target: "kestrel::hosting", "{why}: reloading the configuration");
        match apply(&read, &targets).await {
            Ok(()) => {
                tracing::info!(target: "kestrel::hosting", event_name = "ConfigurationReloaded", "configuration reloaded")
            }
            Err(e) => {
                tracing::error!(target: "kestrel::hosting", event_name = "ConfigurationReloadFailed", error = %e, "the new configuration was refused, nothing changed: {e}")
            }
        }
    }
}

async fn apply(read: &ReadConfiguration, targets: &ReloadTargets) -> Result<(), HostError> {
    let config = read()?;
    let hosts = allowed_hosts(&config)?;
    let previous_levels = apply_log_levels(&config);
    let mut server = targets.server.lock().await;
    if let Some(s) = server.as_mut() {
        if let Err(e) = s.reload(config.clone(), targets.drain_timeout).await {
            if let (Some(prev), Some(handle)) = (previous_levels, LOG_FILTER.get()) {
                set_log_filter(handle, &prev);
            }
            return Err(HostError::Reload(e));
        }
        *targets.addresses.lock().unwrap_or_else(|p| p.into_inner()) = s.addresses();
    }
    drop(server);
    if let Some(f) = &targets.host_filtering {
        f.set(hosts);
    }
    Ok(())
}
