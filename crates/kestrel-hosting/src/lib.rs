//! # kestrel-hosting
//!
//! Hosting for Kestrel for Rust, after ASP.NET Core's generic host. So far it
//! holds [`config`]: layered configuration from environment variables
//! (`ASPNETCORE_` prefix, `__` for nesting) and the command line
//! (`--urls …`, `--Kestrel:Limits:MaxRequestBodySize=…`), read with
//! case-insensitive `:`-separated keys. The `WebHostBuilder`, JSON settings
//! files and the middleware pipeline come with the Hosting issue.
//!
//! This crate knows a server only through traits: it must not depend on the
//! `kestrel` facade or on any protocol crate.

pub mod config;
pub mod middleware;
pub mod pipeline;
#[cfg(feature = "tower")]
pub mod tower;

pub use config::{ConfigError, Configuration, ConfigurationBuilder};
