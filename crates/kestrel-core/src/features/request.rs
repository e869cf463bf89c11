//! [`RequestFeatures`]: every per-request feature in one extension value.

use std::fmt;

use crate::aborted::RequestAborted;
use crate::features::{ConnectionInfo, ConnectionTimeout, ServerAddresses, StreamReset, TlsInfo};
use crate::request_limits::RequestLimits;
use crate::upgrade::UpgradeFeature;

/// The features of one request (Kestrel's `HttpContext.Features`): one value
/// in the request's extensions, holding every feature the server provides.
///
/// `http::Extensions` allocates a map, its table and a box for each value
/// inserted; carrying the features together costs one box per request for
/// all of them, where one value per feature cost one each. Each feature is a
/// handle onto state the driver keeps per connection or stream, so building
/// the collection allocates nothing else.
///
/// Reach it with [`RequestFeaturesExt::features`] on a request (or its
/// parts, or its extensions), or as an axum `Extension<RequestFeatures>`:
///
/// ```
/// # use http::{Request, Response};
/// # use kestrel_core::{RequestBody, RequestFeaturesExt};
/// async fn app(req: Request<RequestBody>) -> Response<String> {
///     let Some(features) = req.features() else {
///         return Response::new("not served by Kestrel".into());
///     };
///     if let Some(limits) = features.limits() {
///         let _ = limits.set_max_request_body_size(Some(1024));
///     }
///     let client = features.connection().map(|c| c.remote_addr().to_string());
///     Response::new(format!("hello {}", client.unwrap_or_default()))
/// }
/// ```
#[derive(Clone, Default)]
pub struct RequestFeatures {
    connection: Option<ConnectionInfo>,
    limits: Option<RequestLimits>,
    aborted: Option<RequestAborted>,
    upgrade: Option<UpgradeFeature>,
    reset: Option<StreamReset>,
}

impl RequestFeatures {
    /// An empty collection (a driver fills it with the `with_*` methods).
    pub fn new() -> Self {
        Self::default()
    }

    /// With the connection's info.
    pub fn with_connection(mut self, info: Option<ConnectionInfo>) -> Self {
        self.connection = info;
        self
    }

    /// With the request's limits.
    pub fn with_limits(mut self, limits: RequestLimits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// With the request's abort signal.
    pub fn with_aborted(mut self, aborted: RequestAborted) -> Self {
        self.aborted = Some(aborted);
        self
    }

    /// With the upgrade handle (upgradable requests only).
    pub fn with_upgrade(mut self, upgrade: Option<UpgradeFeature>) -> Self {
        self.upgrade = upgrade;
        self
    }

    /// With the stream-reset handle (stream protocols only).
    pub fn with_reset(mut self, reset: StreamReset) -> Self {
        self.reset = Some(reset);
        self
    }

    /// The connection the request arrived on (Kestrel's `IHttpConnectionFeature`).
    pub fn connection(&self) -> Option<&ConnectionInfo> {
        self.connection.as_ref()
    }

    /// Replace the connection info for this request, e.g. with the client's
    /// address taken from forwarded headers.
    pub fn set_connection(&mut self, info: ConnectionInfo) {
        self.connection = Some(info);
    }

    /// The TLS handshake, on an HTTPS connection (Kestrel's
    /// `ITlsConnectionFeature` and `ITlsHandshakeFeature`).
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.connection.as_ref()?.features().get::<TlsInfo>()
    }

    /// The addresses the server listens on (Kestrel's `IServerAddressesFeature`).
    pub fn server_addresses(&self) -> Option<&ServerAddresses> {
        self.connection
            .as_ref()
            .map(ConnectionInfo::server_addresses)
    }

    /// The connection timeout the app can set (Kestrel's `IConnectionTimeoutFeature`).
    pub fn connection_timeout(&self) -> Option<&ConnectionTimeout> {
        self.connection.as_ref()?.timeout()
    }

    /// The request's body-size and data-rate limits (Kestrel's
    /// `IHttpMaxRequestBodySizeFeature`, `IHttpMinRequestBodyDataRateFeature`
    /// and `IHttpMinResponseDataRateFeature`).
    pub fn limits(&self) -> Option<&RequestLimits> {
        self.limits.as_ref()
    }

    /// Whether the client went away (Kestrel's `IHttpRequestLifetimeFeature`,
    /// `HttpContext.RequestAborted`).
    pub fn aborted(&self) -> Option<&RequestAborted> {
        self.aborted.as_ref()
    }

    /// The upgrade handle of an upgradable request: HTTP/1.1 `Upgrade` or
    /// HTTP/2 extended CONNECT (Kestrel's `IHttpUpgradeFeature` and
    /// `IHttpExtendedConnectFeature`).
    pub fn upgrade(&self) -> Option<&UpgradeFeature> {
        self.upgrade.as_ref()
    }

    /// The stream-reset handle, on stream protocols (Kestrel's `IHttpResetFeature`).
    pub fn reset(&self) -> Option<&StreamReset> {
        self.reset.as_ref()
    }
}

impl fmt::Debug for RequestFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestFeatures")
            .field("connection", &self.connection)
            .field("limits", &self.limits)
            .field("aborted", &self.aborted)
            .field("upgrade", &self.upgrade)
            .field("reset", &self.reset)
            .finish()
    }
}

/// The [`RequestFeatures`] of a request, its parts or its extensions.
pub trait RequestFeaturesExt {
    /// The request's features; `None` for a request the server did not make.
    fn features(&self) -> Option<&RequestFeatures>;
    /// The same, to change (e.g. [`RequestFeatures::set_connection`]).
    fn features_mut(&mut self) -> Option<&mut RequestFeatures>;
}

impl RequestFeaturesExt for http::Extensions {
    fn features(&self) -> Option<&RequestFeatures> {
        self.get::<RequestFeatures>()
    }
    fn features_mut(&mut self) -> Option<&mut RequestFeatures> {
        self.get_mut::<RequestFeatures>()
    }
}

impl<B> RequestFeaturesExt for http::Request<B> {
    fn features(&self) -> Option<&RequestFeatures> {
        self.extensions().features()
    }
    fn features_mut(&mut self) -> Option<&mut RequestFeatures> {
        self.extensions_mut().features_mut()
    }
}

impl RequestFeaturesExt for http::request::Parts {
    fn features(&self) -> Option<&RequestFeatures> {
        self.extensions.features()
    }
    fn features_mut(&mut self) -> Option<&mut RequestFeatures> {
        self.extensions.features_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_small_value() {
        // Boxed once per request by `http::Extensions`: keep it small.
        assert!(std::mem::size_of::<RequestFeatures>() <= 64);
    }

    #[test]
    fn found_on_requests_parts_and_extensions() {
        let mut req = http::Request::new(());
        assert!(req.features().is_none());
        req.extensions_mut().insert(RequestFeatures::new());
        assert!(req.features().is_some());
        assert!(req.features().and_then(|f| f.tls()).is_none());
        let (mut parts, ()) = req.into_parts();
        assert!(parts.features_mut().is_some());
        assert!(parts.extensions.features().is_some());
    }
}
