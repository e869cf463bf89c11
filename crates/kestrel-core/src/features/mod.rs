//! Per-request features, in place of Kestrel's `IHttp…Feature` interfaces.
//!
//! Every request the server makes carries one [`RequestFeatures`] in its
//! extensions (one allocation for all of them), with a typed accessor per
//! feature:
//!
//! | Accessor | Type | Mirrors |
//! |---|---|---|
//! | [`connection`](RequestFeatures::connection) | [`ConnectionInfo`] | `IHttpConnectionFeature` (id, local and remote address, transport, endpoint) |
//! | [`tls`](RequestFeatures::tls) | [`TlsInfo`] | `ITlsConnectionFeature` + `ITlsHandshakeFeature` (recorded by the TLS connection middleware) |
//! | [`server_addresses`](RequestFeatures::server_addresses) | [`ServerAddresses`] | `IServerAddressesFeature` |
//! | [`connection_timeout`](RequestFeatures::connection_timeout) | [`ConnectionTimeout`] | `IConnectionTimeoutFeature` |
//! | [`limits`](RequestFeatures::limits) | [`RequestLimits`](crate::RequestLimits) | `IHttpMaxRequestBodySizeFeature`, `IHttpMinRequestBodyDataRateFeature`, `IHttpMinResponseDataRateFeature` |
//! | [`aborted`](RequestFeatures::aborted) | [`RequestAborted`](crate::RequestAborted) | `IHttpRequestLifetimeFeature` (`HttpContext.RequestAborted`) |
//! | [`upgrade`](RequestFeatures::upgrade) | [`UpgradeFeature`](crate::UpgradeFeature) | `IHttpUpgradeFeature`, `IHttpExtendedConnectFeature` |
//! | [`reset`](RequestFeatures::reset) | [`StreamReset`] | `IHttpResetFeature` (HTTP/2 and HTTP/3 only) |
//!
//! ```
//! # use http::{Request, Response};
//! # use kestrel_core::{RequestBody, RequestFeaturesExt};
//! async fn app(req: Request<RequestBody>) -> Response<String> {
//!     let tls = req.features().and_then(|f| f.tls()).is_some();
//!     Response::new(format!("over TLS: {tls}"))
//! }
//! ```

mod connection;
mod request;
mod reset;
mod tls;

pub use connection::{ConnectionInfo, ConnectionTimeout, ServerAddresses, TimeoutFeatureError};
pub use request::{RequestFeatures, RequestFeaturesExt};
pub use reset::{ResetSource, StreamReset};
pub use tls::TlsInfo;
