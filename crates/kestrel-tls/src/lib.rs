//! # kestrel-tls: HTTPS for Kestrel for Rust
//!
//! TLS as connection middleware, the way Kestrel's `UseHttps` adds its
//! `HttpsConnectionMiddleware`: the endpoint's transport stream goes in, a
//! decrypted stream comes out, and the handshake's outcome is recorded as a
//! [`TlsInfo`] in the connection's features
//! (the server reads its ALPN protocol to choose HTTP/1.1 or HTTP/2; the app
//! finds it through `ConnectionInfo::features()`).
//!
//! * [`Certificate`]: PEM chain + key (PKCS#8, PKCS#1 RSA, SEC1 EC), PKCS#12
//!   (`.pfx`) with a password, or DER in memory; the key is checked against
//!   the certificate at load time, and an expired certificate logs a warning.
//!   Certificates loaded from files are watched (the directory, so that a
//!   rename over the file is seen) and reloaded when they change: new
//!   handshakes use the new one, a file that fails to load leaves the old one
//!   in service and logs an error naming it
//!   ([`HttpsOptions::with_certificate_file_watching`] turns this off).
//! * [`HttpsOptions`] (Kestrel's `HttpsConnectionAdapterOptions`): the default
//!   certificate, an SNI map (exact names and `*.example.com` wildcards), a
//!   certificate selector callback, client certificates
//!   ([`ClientCertificateMode`], trusted roots, a validation callback), the
//!   handshake timeout (10 s), the lowest TLS version (TLS 1.2; TLS 1.0/1.1
//!   are never offered).
//! * [`HttpsConnectionMiddleware`] and [`ListenOptionsHttpsExt::use_https`]:
//!   ALPN (`h2`, `http/1.1`) from the endpoint's protocols.
//! * [`DevCertificate`]: the self-signed `localhost` development certificate.
//!
//! ```no_run
//! use kestrel_core::KestrelServerOptions;
//! use kestrel_tls::{Certificate, HttpsOptions, ListenOptionsHttpsExt};
//!
//! # fn demo() -> Result<(), kestrel_tls::TlsError> {
//! let cert = Certificate::from_pkcs12_file("testCert.pfx", "testPassword")?;
//! let mut options = KestrelServerOptions::default();
//! options.listen_any_ip(5001, |l| {
//!     l.use_https(HttpsOptions::new().with_certificate(cert));
//! });
//! # Ok(()) }
//! ```
//!
//! Layering: this crate depends on `kestrel-core` and `kestrel-transport`
//! only. It must not depend on the HTTP/1 or HTTP/2 crates, hosting or the
//! `kestrel` facade; rustls types stay behind this crate's own types (rustls
//! is pinned to 0.23 with the *ring* provider). See `docs/https.md`.

#![forbid(unsafe_code)]

mod certificate;
mod client_auth;
mod dev_cert;
mod error;
mod middleware;
mod options;
mod sni;
mod watch;
mod x509;

pub use certificate::{Certificate, ReloadOutcome};
pub use dev_cert::{DevCertificate, DEV_CERT_DIR_ENV};
pub use error::TlsError;
pub use middleware::{EndpointTls, HttpsConnectionMiddleware, ListenOptionsHttpsExt};
pub use options::{ClientCertificate, ClientCertificateMode, HttpsOptions, TlsVersion};
pub use x509::CertificateSummary;

/// Re-exported for convenience: the handshake record this crate produces.
pub use kestrel_core::features::TlsInfo;
