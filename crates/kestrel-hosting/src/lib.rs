//! # kestrel-hosting
//!
//! Hosting for Kestrel for Rust, after ASP.NET Core's web host:
//!
//! * [`builder`]: [`WebHost::create_default_builder`] and [`WebHostBuilder`]
//!   (`use_urls`, `use_environment`, `use_content_root`, `use_setting`,
//!   `configure(|app| …)`, `build`, `run`);
//! * [`config`]: layered configuration — `appsettings.json`,
//!   `appsettings.{Environment}.json`, environment variables (`ASPNETCORE_`
//!   prefix, `__` for nesting), the command line (`--urls …`,
//!   `--Kestrel:Limits:MaxRequestBodySize=…`) — read with case-insensitive
//!   `:`-separated keys;
//! * [`kestrel_config`]: binding the `Kestrel` section (limits, endpoints,
//!   certificates) with errors that name the key; [`endpoint_settings`]:
//!   an endpoint's socket permissions and PROXY protocol settings;
//! * [`pipeline`] and [`middleware`]: the request pipeline and built-in
//!   middleware (host filtering, forwarded headers, static files);
//! * [`lifetime`] and [`systemd`]: signals, graceful shutdown, hooks,
//!   socket activation and `sd_notify`;
//! * [`logging`]: `Logging:LogLevel` as a `tracing` filter, and the
//!   console subscriber;
//! * [`reload`]: configuration reload on file change or SIGHUP
//!   (`Logging:LogLevel`, `AllowedHosts`, and the server's endpoints);
//! * `restart` (Unix): zero-downtime restart on SIGUSR2, handing the
//!   listening sockets to a new process of the server;
//! * [`server`]: the [`Server`] trait the host runs.
//!
//! This crate knows a server only through the [`Server`] trait: it does not
//! depend on the `kestrel` facade or on any protocol crate. The facade
//! implements the trait (`kestrel::hosting::WebHostBuilderKestrelExt::use_kestrel`).
//! See `docs/configuration.md` for every key.

pub mod builder;
pub mod config;
pub mod endpoint_settings;
pub mod kestrel_config;
pub mod lifetime;
pub mod logging;
pub mod middleware;
pub mod pipeline;
pub mod reload;
#[cfg(unix)]
pub mod restart;
pub mod server;
pub mod systemd;
#[cfg(feature = "tower")]
pub mod tower;

pub use builder::{HostError, RunningHost, WebHost, WebHostBuilder};
pub use config::{ConfigError, Configuration, ConfigurationBuilder};
pub use kestrel_config::KestrelConfigError;
pub use lifetime::ApplicationLifetime;
pub use server::{HostContext, HostingUrls, Server, StartedServer};
