//! `WebHostBuilder` and `WebHost` (ASP.NET Core's `WebHost.CreateDefaultBuilder`,
//! `IWebHostBuilder`, `IWebHost`).
//!
//! ```no_run
//! use kestrel_hosting::{WebHost, WebHostBuilder};
//! # use kestrel_hosting::server::{Server, HostContext};
//! # fn use_some_server(b: WebHostBuilder) -> WebHostBuilder { b }
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let builder = WebHost::create_default_builder(std::env::args());
//! // `kestrel::hosting::WebHostBuilderKestrelExt::use_kestrel` picks the server.
//! let host = use_some_server(builder)
//!     .configure(|app| {
//!         app.run(|_req: http::Request<kestrel_core::RequestBody>| async {
//!             http::Response::new(http_body_util::Full::new(bytes::Bytes::from("hi")))
//!         });
//!     })
//!     .build()?;
//! host.run().await?;
//! # Ok(()) }
//! ```
//!
//! Configuration, later wins per key: `appsettings.json` <
//! `appsettings.{Environment}.json` < environment variables (`ASPNETCORE_`)
//! < command line < settings made in code (`use_urls`, `use_setting`, …).
//! The environment (`environment` setting, default `Production`) and the
//! content root (`contentRoot`, default the current directory) are read
//! from the environment, command line and code first, to find the files.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kestrel_core::BoxError;

use crate::config::{ConfigError, Configuration, ConfigurationBuilder};
use crate::kestrel_config::{parse_time_span, KestrelConfigError};
use crate::lifetime::{ApplicationLifetime, ShutdownSignals};
use crate::pipeline::{ApplicationBuilder, Pipeline};
use crate::reload::{
    allowed_hosts, ReloadTargets, ReloadableHostFiltering, Reloader, SharedServer,
    RELOAD_CONFIG_ON_CHANGE_KEY,
};
use crate::server::{HostContext, HostingUrls, ServerFactory};
use crate::systemd;

// Logging set-up lives in `crate::logging`; these paths stay for users.
pub use crate::logging::{init_logging, log_filter_from_config};

/// The default shutdown timeout (.NET 6+ hosts wait 30 s).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the host could not be built or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// A configuration source is malformed (command line, JSON file).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A `Kestrel` configuration value is invalid.
    #[error(transparent)]
    Kestrel(#[from] KestrelConfigError),
    /// A host setting is invalid.
    #[error("invalid host setting '{key}' ({value:?}): {reason}")]
    Setting {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// No server was chosen (`use_kestrel`, or `use_server`).
    #[error("no server configured: call use_kestrel (kestrel::hosting) or use_server")]
    NoServer,
    /// The server could not be created or started (e.g. a bind failure).
    #[error("the server failed to start: {0}")]
    Server(#[source] BoxError),
    /// Middleware set up from configuration refused its settings.
    #[error("{0}")]
    Middleware(String),
    /// The running server refused a reloaded configuration (e.g. an
    /// address in use, a bad `Kestrel` key); nothing changed.
    #[error("{0}")]
    Reload(#[source] BoxError),
}

type Configure = Box<dyn FnOnce(&HostContext, &mut ApplicationBuilder) + Send + 'static>;

/// Entry point of the default builder.
#[derive(Debug)]
pub struct WebHost {
    context: HostContext,
    server: Option<Box<dyn crate::server::Server>>,
    pipeline: Pipeline,
    urls: HostingUrls,
    shutdown_timeout: Duration,
    shutdown_delay: Duration,
    lifetime: ApplicationLifetime,
    /// How to read the configuration again (default builder only).
    reload: Option<ReloadPlan>,
}

/// What the host needs to reload its configuration.
#[derive(Debug)]
struct ReloadPlan {
    sources: Sources,
    watch_files: bool,
    host_filtering: ReloadableHostFiltering,
}

/// The configuration sources of a builder, kept to read them again.
#[derive(Debug, Clone)]
struct Sources {
    args: Vec<String>,
    defaults: bool,
    env_prefix: Option<String>,
    settings: Vec<(String, String)>,
}

impl Sources {
    fn base_layers(&self, b: ConfigurationBuilder) -> Result<ConfigurationBuilder, HostError> {
        let mut b = b;
        if let Some(prefix) = &self.env_prefix {
            b = b.add_env_vars(prefix);
        }
        b = b.add_command_line(self.args.iter().cloned())?;
        Ok(b.add_pairs(self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
    }

    /// The settings files for `environment` under `content_root`.
    fn files(content_root: &Path, environment: &str) -> [PathBuf; 2] {
        [
            content_root.join("appsettings.json"),
            content_root.join(format!("appsettings.{environment}.json")),
        ]
    }

    fn read(&self) -> Result<HostContext, HostError> {
        // Host settings first: they say which files to read.
        let host = self.base_layers(ConfigurationBuilder::new())?.build();
        let environment = host
            .get("environment")
            .filter(|e| !e.trim().is_empty())
            .unwrap_or("Production")
            .to_string();
        let content_root = match host.get("contentRoot").filter(|p| !p.trim().is_empty()) {
            Some(p) => {
                let p = PathBuf::from(p);
                if p.is_absolute() {
                    p
                } else {
                    std::env::current_dir().unwrap_or_default().join(p)
                }
            }
            None => std::env::current_dir().unwrap_or_default(),
        };
        let mut b = ConfigurationBuilder::new();
        if self.defaults {
            for file in Self::files(&content_root, &environment) {
                b = b.add_json_file(file, true)?;
            }
        }
        let configuration = self.base_layers(b)?.build();
        Ok(HostContext {
            configuration,
            environment,
            content_root,
            listen_fds: systemd::listen_fds(),
        })
    }
}

impl std::fmt::Debug for dyn crate::server::Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Server")
    }
}

/// Builds a [`WebHost`] (ASP.NET Core's `WebHostBuilder`).
pub struct WebHostBuilder {
    args: Vec<String>,
    defaults: bool,
    env_prefix: Option<String>,
    settings: Vec<(String, String)>,
    configure: Vec<Configure>,
    server: Option<ServerFactory>,
    lifetime: ApplicationLifetime,
}

impl std::fmt::Debug for WebHostBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebHostBuilder")
            .field("args", &self.args)
            .field("defaults", &self.defaults)
            .field("settings", &self.settings)
            .field("server", &self.server.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for WebHostBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl WebHost {
    /// The default builder (ASP.NET Core's `CreateDefaultBuilder(args)`):
    /// configuration from `appsettings.json`, `appsettings.{Environment}.json`,
    /// `ASPNETCORE_` environment variables and `args` (pass
    /// `std::env::args()`: the first item, the program name, is skipped); console logging with the
    /// level from `Logging:LogLevel:Default` and `RUST_LOG`; host filtering
    /// when `AllowedHosts` is set.
    pub fn create_default_builder<I, S>(args: I) -> WebHostBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        // Like `std::env::args()`, the first item is the program's name.
        let args: Vec<String> = args.into_iter().skip(1).map(Into::into).collect();
        WebHostBuilder {
            args,
            defaults: true,
            env_prefix: Some("ASPNETCORE_".into()),
            ..WebHostBuilder::new()
        }
    }

    /// The built context: configuration, environment, content root.
    pub fn context(&self) -> &HostContext {
        &self.context
    }

    /// The lifetime hooks.
    pub fn lifetime(&self) -> &ApplicationLifetime {
        &self.lifetime
    }

    /// The graceful shutdown timeout.
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }

    /// The shutdown delay (`shutdownDelaySeconds`; default 0).
    pub fn shutdown_delay(&self) -> Duration {
        self.shutdown_delay
    }

    /// Start the server: bind, log the start-up lines, notify systemd
    /// (`READY=1`), run the started hooks.
    pub async fn start(mut self) -> Result<RunningHost, HostError> {
        let server = self.server.take().ok_or(HostError::NoServer)?;
        // Before anyone can know we are up (READY=1, the log lines): a
        // SIGTERM from then on starts a graceful shutdown.
        let signals = ShutdownSignals::install();
        let started = server
            .start(self.pipeline.clone(), self.urls.clone())
            .await
            .map_err(HostError::Server)?;
        let addresses = Arc::new(Mutex::new(started.addresses()));
        let server: SharedServer = Arc::new(tokio::sync::Mutex::new(Some(started)));
        #[cfg(unix)]
        let restarter = if self.reload.is_some() {
            crate::restart::Restarter::start(server.clone(), self.lifetime.clone())
        } else {
            None
        };
        let reloader = self.reload.take().map(|plan| {
            let files = Sources::files(&self.context.content_root, &self.context.environment);
            let sources = plan.sources;
            Reloader::start(
                files.to_vec(),
                plan.watch_files,
                Box::new(move || sources.read().map(|c| c.configuration)),
                ReloadTargets {
                    server: server.clone(),
                    addresses: addresses.clone(),
                    host_filtering: Some(plan.host_filtering),
                    drain_timeout: self.shutdown_timeout,
                },
            )
        });
        // The SIGHUP and SIGUSR2 handlers are in place before anyone can know
        // we are up (the log lines, READY=1).
        tracing::info!(target: "kestrel::hosting", "Application started. Press Ctrl+C to shut down.");
        tracing::info!(target: "kestrel::hosting", "Hosting environment: {}", self.context.environment);
        tracing::info!(target: "kestrel::hosting", "Content root path: {}", self.context.content_root.display());
        systemd::notify_logged("READY=1");
        #[cfg(unix)]
        if std::env::var_os(crate::restart::HANDOVER_ENV).is_some() {
            // READY=1 went to the old process; the rest goes to systemd.
            systemd::redirect_after_handover_ready();
        }
        self.lifetime.fire_started();
        Ok(RunningHost {
            server,
            addresses,
            reloader,
            #[cfg(unix)]
            restarter,
            signals: Some(signals),
            lifetime: self.lifetime,
            shutdown_timeout: self.shutdown_timeout,
            shutdown_delay: self.shutdown_delay,
        })
    }

    /// Start, wait for SIGINT/SIGTERM or
    /// [`stop_application`](ApplicationLifetime::stop_application), then shut
    /// down gracefully within the shutdown timeout.
    pub async fn run(self) -> Result<(), HostError> {
        let running = self.start().await?;
        running.wait_for_shutdown().await;
        Ok(())
    }
}

/// A started host.
pub struct RunningHost {
    server: SharedServer,
    addresses: Arc<Mutex<Vec<String>>>,
    reloader: Option<Reloader>,
    #[cfg(unix)]
    restarter: Option<crate::restart::Restarter>,
    signals: Option<ShutdownSignals>,
    lifetime: ApplicationLifetime,
    shutdown_timeout: Duration,
    shutdown_delay: Duration,
}

impl std::fmt::Debug for RunningHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningHost")
            .field("addresses", &self.addresses())
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("shutdown_delay", &self.shutdown_delay)
            .finish_non_exhaustive()
    }
}

impl RunningHost {
    /// The bound addresses.
    pub fn addresses(&self) -> Vec<String> {
        self.addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The lifetime hooks.
    pub fn lifetime(&self) -> &ApplicationLifetime {
        &self.lifetime
    }

    /// Wait for SIGINT/SIGTERM or `stop_application`, then [`stop`](Self::stop).
    pub async fn wait_for_shutdown(mut self) {
        let lifetime = self.lifetime.clone();
        let mut signals = self.signals.take().unwrap_or_else(ShutdownSignals::install);
        tokio::select! {
            s = signals.recv() => {
                tracing::info!(target: "kestrel::hosting", signal = s, "{s} received: shutting down");
            }
            _ = lifetime.stop_requested() => {}
        }
        self.stop().await
    }

    /// Shut down gracefully: notify systemd (`STOPPING=1`), run the stopping
    /// hooks (readiness health checks now fail), wait the shutdown delay
    /// (still serving and accepting, so load balancers see the failing
    /// readiness and take the instance out), stop the server within the
    /// shutdown timeout, run the stopped hooks.
    pub async fn stop(mut self) {
        tracing::info!(target: "kestrel::hosting", "Application is shutting down...");
        systemd::notify_logged("STOPPING=1");
        self.lifetime.fire_stopping();
        if let Some(reloader) = self.reloader.take() {
            reloader.stop();
        }
        #[cfg(unix)]
        if let Some(restarter) = self.restarter.take() {
            restarter.stop();
        }
        if !self.shutdown_delay.is_zero() {
            tracing::info!(target: "kestrel::hosting", delay_ms = self.shutdown_delay.as_millis() as u64, "Waiting {:?} (shutdownDelaySeconds) before the server stops accepting.", self.shutdown_delay);
            tokio::time::sleep(self.shutdown_delay).await;
        }
        // Waits for a reload in progress to finish.
        let server = self.server.lock().await.take();
        if let Some(server) = server {
            let timeout = self.shutdown_timeout;
            // The server aborts what is left at `timeout` and waits up to 1 s
            // more for the aborts; never wait longer than that.
            if tokio::time::timeout(timeout + Duration::from_secs(2), server.stop(timeout))
                .await
                .is_err()
            {
                tracing::warn!(target: "kestrel::hosting", "the server did not stop within the shutdown timeout");
            }
        }
        self.lifetime.fire_stopped();
    }
}

impl WebHostBuilder {
    /// A bare builder: no configuration sources but the settings made in
    /// code, no logging set-up, no host filtering.
    pub fn new() -> Self {
        WebHostBuilder {
            args: Vec::new(),
            defaults: false,
            env_prefix: None,
            settings: Vec::new(),
            configure: Vec::new(),
            server: None,
            lifetime: ApplicationLifetime::new(),
        }
    }

    /// Set a host or application setting (`"urls"`, `"environment"`,
    /// `"Kestrel:Limits:MaxRequestBodySize"`, …). Settings made in code win
    /// over every other source.
    pub fn use_setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }

    /// The URLs to listen on (`urls`), `;`-separated.
    pub fn use_urls<I, S>(self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let joined = urls
            .into_iter()
            .map(Into::into)
            .collect::<Vec<String>>()
            .join(";");
        self.use_setting("urls", joined)
    }

    /// Let the URLs win over endpoints configured in code or in
    /// `Kestrel:Endpoints` (`preferHostingUrls`).
    pub fn prefer_hosting_urls(self, prefer: bool) -> Self {
        self.use_setting("preferHostingUrls", prefer.to_string())
    }

    /// The environment name (`environment`; `Development`, `Staging`, `Production`).
    pub fn use_environment(self, environment: impl Into<String>) -> Self {
        self.use_setting("environment", environment)
    }

    /// The content root (`contentRoot`): where `appsettings*.json` and
    /// relative certificate paths are found.
    pub fn use_content_root(self, path: impl AsRef<Path>) -> Self {
        let p = path.as_ref().display().to_string();
        self.use_setting("contentRoot", p)
    }

    /// The graceful shutdown timeout (`shutdownTimeoutSeconds`; default 30 s).
    pub fn use_shutdown_timeout(self, timeout: Duration) -> Self {
        self.use_setting(
            "shutdownTimeoutSeconds",
            format!("{}", timeout.as_secs_f64()),
        )
    }

    /// The delay between the start of a graceful shutdown and the server
    /// stopping accepting (`shutdownDelaySeconds`; default 0, as Kestrel).
    /// During it the server serves as usual, but readiness health checks
    /// already fail, so load balancers (a Kubernetes Service, HAProxy) take
    /// the instance out before connections are refused.
    pub fn use_shutdown_delay(self, delay: Duration) -> Self {
        self.use_setting("shutdownDelaySeconds", format!("{}", delay.as_secs_f64()))
    }

    /// Add to the request pipeline (ASP.NET Core's `Configure(app => …)`).
    /// Several calls add in order.
    pub fn configure(mut self, f: impl FnOnce(&mut ApplicationBuilder) + Send + 'static) -> Self {
        self.configure.push(Box::new(move |_, app| f(app)));
        self
    }

    /// [`configure`](Self::configure) with the built [`HostContext`]
    /// (configuration, environment, content root), e.g. to serve static
    /// files from `<content root>/wwwroot`.
    pub fn configure_with(
        mut self,
        f: impl FnOnce(&HostContext, &mut ApplicationBuilder) + Send + 'static,
    ) -> Self {
        self.configure.push(Box::new(f));
        self
    }

    /// Choose the server: `factory` runs at [`build`](Self::build) with the
    /// final configuration. `kestrel::hosting`'s `use_kestrel` calls this.
    pub fn use_server(
        mut self,
        factory: impl FnOnce(&HostContext) -> Result<Box<dyn crate::server::Server>, BoxError>
            + Send
            + 'static,
    ) -> Self {
        self.server = Some(Box::new(factory));
        self
    }

    /// The lifetime, to register hooks before the host is built.
    pub fn lifetime(&self) -> &ApplicationLifetime {
        &self.lifetime
    }

    fn sources(&self) -> Sources {
        Sources {
            args: self.args.clone(),
            defaults: self.defaults,
            env_prefix: self.env_prefix.clone(),
            settings: self.settings.clone(),
        }
    }

    /// Read every configuration source (without building the pipeline or the server).
    pub fn build_context(&self) -> Result<HostContext, HostError> {
        self.sources().read()
    }

    /// Read the configuration again when `appsettings.json` or
    /// `appsettings.{Environment}.json` change (default `true` for the
    /// default builder; the `hostBuilder:reloadConfigOnChange` setting).
    /// `SIGHUP` reloads either way. See [`crate::reload`].
    pub fn reload_config_on_change(self, reload: bool) -> Self {
        self.use_setting(RELOAD_CONFIG_ON_CHANGE_KEY, reload.to_string())
    }

    /// Read the configuration, set up logging (default builder), build the
    /// pipeline and the server. Configuration errors (a bad limit, an
    /// unknown key under `Kestrel:Limits`, …) surface here.
    pub fn build(self) -> Result<WebHost, HostError> {
        let context = self.build_context()?;
        let config = &context.configuration;
        if self.defaults {
            init_logging(config);
        }
        let shutdown_timeout = match config.get("shutdownTimeoutSeconds") {
            Some(v) if !v.trim().is_empty() => {
                parse_time_span(v).map_err(|reason| HostError::Setting {
                    key: "shutdownTimeoutSeconds".into(),
                    value: v.into(),
                    reason,
                })?
            }
            _ => DEFAULT_SHUTDOWN_TIMEOUT,
        };
        let shutdown_delay = match config.get("shutdownDelaySeconds") {
            Some(v) if !v.trim().is_empty() => {
                parse_time_span(v).map_err(|reason| HostError::Setting {
                    key: "shutdownDelaySeconds".into(),
                    value: v.into(),
                    reason,
                })?
            }
            _ => Duration::ZERO,
        };
        let prefer_hosting_urls = config_flag(config, "preferHostingUrls")?;
        let urls = HostingUrls {
            urls: config
                .get("urls")
                .map(|u| {
                    u.split(';')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            prefer_hosting_urls,
        };
        let mut app = ApplicationBuilder::new();
        if self.defaults && config_flag(config, "ForwardedHeaders_Enabled")? {
            // As ASP.NET Core's ASPNETCORE_FORWARDEDHEADERS_ENABLED: honour
            // X-Forwarded-For and -Proto from any peer (the known proxies and
            // networks are cleared; Unix-socket peers are trusted). Only for
            // servers that nothing but the proxy can reach.
            use crate::middleware::forwarded_headers::{ForwardedHeader, ForwardedHeaders};
            app.use_middleware(
                ForwardedHeaders::new()
                    .headers(ForwardedHeader::FOR | ForwardedHeader::PROTO)
                    .clear_known()
                    .trust_unix_socket_peers(true),
            );
        }
        let mut reload = None;
        if self.defaults {
            // Host filtering reads AllowedHosts again on each reload (an
            // options monitor in ASP.NET Core).
            let filter = ReloadableHostFiltering::new(allowed_hosts(config)?);
            app.use_middleware(filter.clone());
            let watch_files = match config.get(RELOAD_CONFIG_ON_CHANGE_KEY) {
                Some(v) if !v.trim().is_empty() => {
                    config_flag(config, RELOAD_CONFIG_ON_CHANGE_KEY)?
                }
                _ => true,
            };
            reload = Some(ReloadPlan {
                sources: self.sources(),
                watch_files,
                host_filtering: filter,
            });
        }
        for f in self.configure {
            f(&context, &mut app);
        }
        let server = match self.server {
            Some(factory) => Some(factory(&context).map_err(HostError::Server)?),
            None => None,
        };
        Ok(WebHost {
            context,
            server,
            pipeline: app.build(),
            urls,
            shutdown_timeout,
            shutdown_delay,
            lifetime: self.lifetime,
            reload,
        })
    }
}

/// A boolean host setting (`true`/`false`/`1`/`0`; unset or empty = false).
fn config_flag(config: &Configuration, key: &str) -> Result<bool, HostError> {
    match config.get(key) {
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" | "" => Ok(false),
            _ => Err(HostError::Setting {
                key: key.into(),
                value: v.into(),
                reason: "expected true or false".into(),
            }),
        },
        None => Ok(false),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn log_filter() {
        let c = ConfigurationBuilder::new()
            .add_pairs([
                ("Logging:LogLevel:Default", "Warning"),
                ("Logging:LogLevel:kestrel", "Debug"),
                ("Logging:LogLevel:Microsoft.AspNetCore", "Warning"),
            ])
            .build();
        assert_eq!(log_filter_from_config(&c), "warn,kestrel=debug");
        assert_eq!(log_filter_from_config(&Configuration::default()), "info");
    }

    #[test]
    fn settings_in_code_and_defaults() {
        let dir = std::env::temp_dir().join(format!("kestrel-builder-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("appsettings.json"),
            r#"{"urls":"http://file:1","A":"file","B":"file"}"#,
        )
        .unwrap();
        std::fs::write(dir.join("appsettings.Staging.json"), r#"{"A":"staging"}"#).unwrap();
        let ctx = WebHost::create_default_builder(["prog", "--B=cli"])
            .use_content_root(&dir)
            .use_environment("Staging")
            .build_context()
            .unwrap();
        assert_eq!(ctx.environment, "Staging");
        assert_eq!(ctx.configuration.get("A"), Some("staging"));
        assert_eq!(ctx.configuration.get("B"), Some("cli"));
        assert_eq!(ctx.configuration.get("urls"), Some("http://file:1"));
        let host = WebHostBuilder::new()
            .use_shutdown_timeout(Duration::from_millis(1500))
            .build()
            .unwrap();
        assert_eq!(host.shutdown_timeout(), Duration::from_millis(1500));
        let err = WebHostBuilder::new()
            .use_setting("shutdownTimeoutSeconds", "soon")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("shutdownTimeoutSeconds"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
