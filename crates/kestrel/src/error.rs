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
    /// An `https://` URL was given but TLS is not available yet.
    #[error("cannot bind '{0}': HTTPS endpoints need TLS, which is not configured (TLS support is not built into this version)")]
    TlsNotConfigured(String),
    /// Binding an address failed.
    #[error("failed to bind to address {address}: {source}")]
    Bind {
        /// The address, in display form.
        address: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The endpoint kind is not supported by this build.
    #[error("endpoint {0} is not supported by this build")]
    Unsupported(String),
}
