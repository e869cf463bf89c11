//! # Kestrel for Rust
//!
//! A production HTTP server in the design of ASP.NET Core's Kestrel. This
//! facade composes the layered crates into [`KestrelServer`]:
//!
//! * `kestrel-transport`: TCP, Unix sockets, in-memory listeners;
//! * `kestrel-core`: options and limits with Kestrel's defaults, endpoints,
//!   connection lifecycle, the [`Application`] trait and request bodies;
//! * `kestrel-http1`: HTTP/1.x;
//! * `kestrel-http2` (feature `http2`): HTTP/2 on the `h2` crate. The server
//!   picks the protocol per connection: ALPN over TLS; on cleartext, the
//!   endpoint's [`HttpProtocols`] and the HTTP/2 preface (an `Http1AndHttp2`
//!   endpoint, the default, serves both on one port).
//!
//! Endpoints come from [`KestrelServerOptions::listen`] calls or from URLs
//! ([`KestrelServer::urls`]), with Kestrel's precedence; with neither the
//! server listens on `http://localhost:5000`.
//!
//! HTTPS (feature `tls`, on by default): [`tls::ListenOptionsHttpsExt::use_https`]
//! on an endpoint, or `https://` URLs served with [`KestrelServer::https_defaults`]
//! or else the development certificate ([`tls::DevCertificate`]).
//!
//! Hosting (feature `hosting`, on by default): [`hosting::WebHostBuilderKestrelExt::use_kestrel`]
//! runs Kestrel under `kestrel-hosting`'s `WebHostBuilder`, configured from
//! `appsettings.json`, the environment and the command line.
//!
//! Cargo features: `hosting` (default) adds `use_kestrel`; `tls` (default) adds HTTPS; `unix` (default) adds Unix domain socket endpoints;
//! `http2` (default) adds HTTP/2; `http3` (off, as in Kestrel) serves HTTP/3
//! over QUIC on HTTPS endpoints whose protocols include `Http3`; `proxy-protocol` (default) adds the PROXY
//! protocol ([`proxy_protocol`]) ahead of TLS.
//! This crate sits at the top: nothing in the workspace depends on it.

mod bind;
mod endpoints;
mod error;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(unix)]
pub mod handover;
/// Kestrel under `kestrel-hosting`'s web host (feature `hosting`, on by
/// default): `use_kestrel` and the configuration binding.
#[cfg(feature = "hosting")]
pub mod hosting;
#[cfg(feature = "http3")]
mod http3_endpoint;
mod live_limits;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod server;

pub use error::StartError;
pub use server::{KestrelServer, RunningServer};

pub use kestrel_core::{
    aborted, events, request_limits, upgrade, FeatureError, OnUpgrade, RequestAborted,
    RequestFeatures, RequestFeaturesExt, RequestLimits, StreamReset, TlsInfo, UpgradeError,
    UpgradeFeature, Upgraded,
};
pub use kestrel_core::{
    app, body, connection, connection_logging, endpoint, features, limits, middleware, options,
    Application, BindTarget, BodyError, BoundAddress, BoxError, ConnectionInfo, CustomTransport,
    Http1Options, Http2Limits, HttpProtocols, IntoAppResult, KestrelServerOptions, ListenOptions,
    MinDataRate, RequestBody, Scheme, ServerAddresses, ServerLimits,
};
pub use kestrel_http1 as http1;
/// HTTP/2 (feature `http2`, on by default): the driver, its settings and the
/// [`kestrel_http2::StreamReset`] request feature.
#[cfg(feature = "http2")]
pub use kestrel_http2 as http2;
/// HTTP/3 (feature `http3`): the driver and its settings.
#[cfg(feature = "http3")]
pub use kestrel_http3 as http3;
/// The PROXY protocol v1/v2 (feature `proxy-protocol`, on by default):
/// `use_proxy_protocol` on an endpoint, the parser, the connection feature
/// with the v2 TLVs.
#[cfg(feature = "proxy-protocol")]
pub use kestrel_proxy_protocol as proxy_protocol;
/// HTTPS (feature `tls`, on by default): certificates, SNI, ALPN, client
/// certificates, `use_https`, the development certificate.
#[cfg(feature = "tls")]
pub use kestrel_tls as tls;
pub use kestrel_transport as transport;
