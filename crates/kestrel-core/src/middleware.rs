//! Connection middleware (Kestrel's `ListenOptions.Use`): a layer that wraps a
//! connection's duplex stream before any HTTP is spoken. TLS and connection
//! logging are connection middleware.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use kestrel_transport::Connection;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Limits the server hands to connection middleware: in `features` before
/// the first middleware of an endpoint runs (and so, afterwards, in
/// [`ConnectionInfo::features`](crate::features::ConnectionInfo::features)).
/// The PROXY protocol middleware bounds its header read by
/// `request_headers_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MiddlewareLimits {
    /// The server's `RequestHeadersTimeout`.
    pub request_headers_timeout: Duration,
}

impl MiddlewareLimits {
    /// Limits with this request-headers timeout.
    pub fn new(request_headers_timeout: Duration) -> Self {
        MiddlewareLimits {
            request_headers_timeout,
        }
    }
}

/// Wraps (or inspects) an accepted connection before HTTP is spoken on it.
///
/// `features` carries typed values to later layers and to every request on
/// the connection (in each request's extensions, through
/// [`ConnectionInfo::features`](crate::features::ConnectionInfo::features)), e.g.
/// the TLS handshake's outcome. An error closes the connection.
pub trait ConnectionMiddleware: Send + Sync + 'static {
    /// Transform the connection.
    fn call<'a>(
        &'a self,
        connection: Connection,
        features: &'a mut http::Extensions,
    ) -> BoxFuture<'a, io::Result<Connection>>;
}

impl<F, Fut> ConnectionMiddleware for F
where
    F: Fn(Connection) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<Connection>> + Send + 'static,
{
    fn call<'a>(
        &'a self,
        connection: Connection,
        _features: &'a mut http::Extensions,
    ) -> BoxFuture<'a, io::Result<Connection>> {
        Box::pin(self(connection))
    }
}
