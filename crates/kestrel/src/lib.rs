//! # Kestrel for Rust
//!
//! A production HTTP server in the design of ASP.NET Core's Kestrel. This
//! facade composes the layered crates into [`KestrelServer`]:
//!
//! * `kestrel-transport`: TCP, Unix sockets, in-memory listeners;
//! * `kestrel-core`: options and limits with Kestrel's defaults, endpoints,
//!   connection lifecycle, the [`Application`] trait and request bodies;
//! * `kestrel-http1`: HTTP/1.x.
//!
//! Endpoints come from [`KestrelServerOptions::listen`] calls or from URLs
//! ([`KestrelServer::urls`]), with Kestrel's precedence; with neither the
//! server listens on `http://localhost:5000`.
//!
//! Cargo features: `unix` (default) adds Unix domain socket endpoints.
//! This crate sits at the top: nothing in the workspace depends on it.

mod bind;
mod error;
mod server;

pub use error::StartError;
pub use server::{KestrelServer, RunningServer};

pub use kestrel_core::{
    app, body, connection, endpoint, features, limits, middleware, options, Application,
    BindTarget, BodyError, BoundAddress, BoxError, ConnectionInfo, Http1Options, Http2Limits,
    HttpProtocols, IntoAppResult, KestrelServerOptions, ListenOptions, MinDataRate, RequestBody,
    Scheme, ServerAddresses, ServerLimits,
};
pub use kestrel_http1 as http1;
pub use kestrel_transport as transport;
pub use kestrel_core::{
    request_limits, upgrade, FeatureError, OnUpgrade, RequestLimits, TlsInfo, UpgradeError,
    UpgradeFeature, Upgraded,
};
