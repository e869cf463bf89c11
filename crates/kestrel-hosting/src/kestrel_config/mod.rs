//! Binding the `Kestrel` configuration section (fact sheet §4).
//!
//! * [`bind_limits`] reads `Kestrel:Limits` into [`ServerLimits`]: every
//!   server and HTTP/2 limit, by Kestrel's PascalCase names
//!   (case-insensitive). Kestrel itself does not read this section; we do.
//!   A value that does not parse, or a key that is not a limit, is an error
//!   naming the key (Kestrel silently ignores bad values).
//! * [`bind_server_options`] adds the top-level switches
//!   (`AddServerHeader`, `AllowResponseHeaderCompression`,
//!   `AllowAlternateSchemes`, `AllowHostHeaderOverride`).
//! * [`read_kestrel_section`] reads `Endpoints`, `EndpointDefaults` and
//!   `Certificates` into plain data ([`KestrelSection`]); the server (the
//!   `kestrel` facade) turns it into listen endpoints and loads the
//!   certificates, so this crate does not depend on TLS.
//!
//! Time spans are written as .NET writes them — `[d.]hh:mm:ss[.fffffff]`
//! (`00:00:05`, `1.00:00:00`, `00:00:00.5`) — or as plain (possibly
//! fractional) seconds (`5`, `0.5`; .NET would read a bare number as days).
//! An empty value (JSON `null`) clears a nullable limit.
//!
//! The module is split by what it reads: `values` holds the value parsers
//! (time spans, numbers, booleans), `limits` the `Limits` section and the
//! top-level switches, `section` the endpoints and certificates.

mod limits;
mod section;
mod values;

pub use limits::{bind_limits, bind_server_options, CodeLimits, LIMIT_KEYS};
pub use section::{
    read_kestrel_section, CertificateSetting, ClientCertificateModeSetting, EndpointSetting,
    KestrelSection, SslProtocolsSetting, TlsSettings,
};
pub use values::parse_time_span;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kestrel_core::{
    HttpProtocols, KestrelServerOptions, MinDataRate, Scheme, ServerLimits, ServerUrl,
};

use crate::config::Configuration;

/// A `Kestrel` configuration value that cannot be used: the server does not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KestrelConfigError {
    /// A value does not parse or is out of range.
    #[error("invalid configuration value for '{key}' ({value:?}): {reason}")]
    Invalid {
        /// The key, as written in the configuration.
        key: String,
        /// The value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A key that is not one of the known settings (e.g. a misspelled limit).
    #[error("unknown configuration key '{0}'")]
    UnknownKey(String),
    /// An endpoint has no `Url`.
    #[error("the endpoint '{0}' has no Url (Kestrel:Endpoints:{0}:Url is required)")]
    MissingUrl(String),
    /// An HTTPS-only key on an `http://` endpoint.
    #[error("'{key}' is only valid on an https:// endpoint, but endpoint '{endpoint}' is {url}")]
    HttpsOnly {
        /// The endpoint's name.
        endpoint: String,
        /// The HTTPS-only key.
        key: String,
        /// The endpoint's URL.
        url: String,
    },
    /// The limits parsed but are inconsistent (e.g. the request buffer is
    /// smaller than the request line).
    #[error("invalid Kestrel:Limits: {0}")]
    Limits(String),
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> KestrelConfigError {
    KestrelConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests;
