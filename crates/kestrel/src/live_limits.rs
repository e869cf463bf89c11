//! The limits new connections start with, replaceable while the server runs
//! (a configuration reload of `Kestrel:Limits`, or
//! [`RunningServer::update_limits`](crate::RunningServer::update_limits)).
//!
//! Each connection reads the settings once, when it starts, and keeps them
//! for its whole life: a change never reaches a connection already open,
//! and nothing is read per request.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kestrel_core::connection::ConnectionManager;
use kestrel_core::{KestrelServerOptions, OptionsError, ServerLimits};
use kestrel_http1::Http1Config;
#[cfg(feature = "http2")]
use kestrel_http2::Http2Config;

/// What one connection is served with: the protocol drivers' settings and
/// the limits of protocol selection, all from the same limits.
#[derive(Debug)]
pub(crate) struct ConnectionSettings {
    pub http1: Arc<Http1Config>,
    #[cfg(feature = "http2")]
    pub http2: Arc<Http2Config>,
    #[cfg(feature = "http3")]
    pub http3: Arc<kestrel_http3::Http3Config>,
    pub request_headers_timeout: Duration,
    pub max_request_line_size: usize,
}

impl ConnectionSettings {
    fn from_options(options: &KestrelServerOptions) -> Self {
        ConnectionSettings {
            http1: Arc::new(Http1Config::from_options(options)),
            #[cfg(feature = "http2")]
            http2: Arc::new(Http2Config::from_options(options)),
            #[cfg(feature = "http3")]
            http3: Arc::new(kestrel_http3::Http3Config::from_options(options)),
            request_headers_timeout: options.limits.request_headers_timeout,
            max_request_line_size: options.limits.max_request_line_size,
        }
    }
}

/// The server's limits in force, shared by the accept loops and the
/// running server.
pub(crate) struct LiveLimits {
    /// The server's options (without its endpoints) with the limits in
    /// force: the drivers' settings are derived from them as at start-up.
    options: Mutex<KestrelServerOptions>,
    current: RwLock<Arc<ConnectionSettings>>,
    manager: Arc<ConnectionManager>,
}

impl std::fmt::Debug for LiveLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveLimits")
            .field("limits", &self.limits())
            .finish_non_exhaustive()
    }
}

impl LiveLimits {
    /// The limits of `options`; connection counts are enforced by `manager`.
    pub(crate) fn new(options: &KestrelServerOptions, manager: Arc<ConnectionManager>) -> Self {
        let mut options = options.clone();
        options.listen.clear();
        LiveLimits {
            current: RwLock::new(Arc::new(ConnectionSettings::from_options(&options))),
            options: Mutex::new(options),
            manager,
        }
    }

    /// The settings a connection starting now is served with (read once
    /// per connection).
    pub(crate) fn current(&self) -> Arc<ConnectionSettings> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The limits in force.
    pub(crate) fn limits(&self) -> ServerLimits {
        self.options
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .limits
            .clone()
    }

    /// Validate `limits` and make new connections use them; returns whether
    /// they differ from those in force. Invalid limits change nothing.
    pub(crate) fn set(&self, limits: ServerLimits) -> Result<bool, OptionsError> {
        limits.validate()?;
        let mut options = self.options.lock().unwrap_or_else(|p| p.into_inner());
        if options.limits == limits {
            return Ok(false);
        }
        options.limits = limits;
        let settings = Arc::new(ConnectionSettings::from_options(&options));
        self.manager.set_limits(
            options.limits.max_concurrent_connections,
            options.limits.max_concurrent_upgraded_connections,
        );
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = settings;
        Ok(true)
    }
}
