//! The `Server` trait: what the host needs from a server (ASP.NET Core's
//! `IServer`). The `kestrel` facade implements it for `KestrelServer`
//! (`use_kestrel`); this crate never names Kestrel itself.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use kestrel_core::BoxError;

use crate::config::Configuration;
use crate::pipeline::Pipeline;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The URLs the host asks the server to listen on (the `urls` setting), and
/// whether they win over endpoints the server was configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostingUrls {
    /// The `urls` setting split on `;` (empty when not set).
    pub urls: Vec<String>,
    /// The `preferHostingUrls` setting.
    pub prefer_hosting_urls: bool,
}

/// What a server factory sees when the host is built: the final
/// configuration, the environment, the content root and the sockets passed
/// by systemd.
#[derive(Debug, Clone)]
pub struct HostContext {
    /// The application's configuration (files, environment, command line, code).
    pub configuration: Configuration,
    /// The environment name (`Production` unless set).
    pub environment: String,
    /// The content root (relative paths in configuration are resolved against it).
    pub content_root: PathBuf,
    /// File descriptors passed by systemd socket activation (fds 3…), empty
    /// without it. The server listens on them as they are.
    pub listen_fds: Vec<i32>,
}

/// A server the host can run (ASP.NET Core's `IServer`).
pub trait Server: Send + 'static {
    /// Bind and start serving `app`. The future resolves once every endpoint
    /// is bound (an error means the host does not start).
    fn start(
        self: Box<Self>,
        app: Pipeline,
        urls: HostingUrls,
    ) -> BoxFuture<'static, Result<Box<dyn StartedServer>, BoxError>>;
}

/// A server that is serving.
pub trait StartedServer: Send + 'static {
    /// The bound addresses, in display form (`http://127.0.0.1:5000`).
    fn addresses(&self) -> Vec<String>;

    /// Stop gracefully: stop accepting, let in-flight requests finish within
    /// `timeout`, then abort what is left.
    fn stop(self: Box<Self>, timeout: Duration) -> BoxFuture<'static, ()>;

    /// Apply a configuration read again (`reloadOnChange`, SIGHUP): e.g.
    /// bind added endpoints and stop removed ones, draining their
    /// connections within `drain_timeout`. An error means the new
    /// configuration was refused and nothing changed (the host logs it).
    /// The default does nothing.
    fn reload(
        &mut self,
        configuration: Configuration,
        drain_timeout: Duration,
    ) -> BoxFuture<'_, Result<(), BoxError>> {
        let _ = (configuration, drain_timeout);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Copies of the listening sockets, for a zero-downtime restart
    /// (`crate::restart`). The default has none (no restart possible).
    #[cfg(unix)]
    fn listening_sockets(&self) -> std::io::Result<Vec<std::os::fd::OwnedFd>> {
        Ok(Vec::new())
    }

    /// The sockets now serve a new process (a zero-downtime restart): the
    /// server must leave shared resources such as Unix socket files in
    /// place when it stops. The default does nothing.
    fn handed_over(&mut self) {}
}

/// Builds the server once the configuration is known.
pub type ServerFactory =
    Box<dyn FnOnce(&HostContext) -> Result<Box<dyn Server>, BoxError> + Send + 'static>;
