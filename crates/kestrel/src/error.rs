use std::io;

use kestrel_core::{OptionsError, UrlError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// An option is out of range.
    #[error(transparent)]
    Options(#[from] OptionsError),
    /// A URL could not be parsed.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// An `https://` URL was given but this build has no TLS (the `tls`
    /// feature is off).
    #[error("cannot bind '{0}': HTTPS endpoints need TLS, which is not built in (enable the `tls` feature of the `kestrel` crate)")]
    TlsNotConfigured(String),
    /// The HTTPS configuration of an endpoint is invalid (certificate file
    /// missing, wrong password, key not matching the certificate, …).
    #[cfg(feature = "tls")]
    #[error("HTTPS configuration: {0}")]
    Tls(#[from] kestrel_tls::TlsError),
    /// Binding an address failed.
    #[error("failed to bind to address {address}: {source}")]
    Bind {
        /// The address, in display form.
        address: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// An endpoint asks for HTTP/3 without HTTPS (QUIC always runs TLS 1.3).
    #[error("endpoint {0} asks for HTTP/3, which needs HTTPS: use an https:// URL or use_https, or leave Http3 out of its protocols")]
    Http3NeedsTls(String),
    /// The QUIC listener for an HTTP/3 endpoint could not be bound.
    #[cfg(feature = "http3")]
    #[error("cannot serve HTTP/3 on {address}: {source}")]
    Quic {
        /// The endpoint.
        address: String,
        /// Why.
        #[source]
        source: kestrel_transport::quic::QuicBindError,
    },
    /// The endpoint kind is not supported by this build.
    #[error("endpoint {0} is not supported by this build")]
    Unsupported(String),
}
