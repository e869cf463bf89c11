//! `HttpsOptions` (Kestrel's `HttpsConnectionAdapterOptions`) and how they
//! become one rustls server configuration.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kestrel_core::HttpProtocols;
use rustls_pki_types::CertificateDer;

use crate::certificate::{certs_from_pem, provider, Certificate};
use crate::client_auth::ClientVerifier;
use crate::dev_cert::DevCertificate;
use crate::error::TlsError;
use crate::sni::CertificateResolver;

/// Whether and how the server asks for a client certificate (Kestrel's
/// `ClientCertificateMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientCertificateMode {
    /// Do not ask for a client certificate (the default).
    #[default]
    NoCertificate,
    /// Ask for one; a client without one is still accepted, a client with an
    /// invalid one is refused.
    AllowCertificate,
    /// Ask for one and refuse the handshake without a valid one.
    RequireCertificate,
    /// Kestrel's "ask later, when the app wants it" (TLS renegotiation or
    /// TLS 1.3 post-handshake authentication). **Not supported**: rustls
    /// implements neither, and renegotiation is unsafe with HTTP/2. Choosing
    /// it is a start-up error ([`TlsError::Unsupported`]); use
    /// `AllowCertificate` on a dedicated endpoint instead.
    DelayCertificate,
}

/// The lowest TLS version an endpoint accepts. TLS 1.0 and 1.1 are never
/// offered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2 and TLS 1.3 (the default).
    #[default]
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

/// A client certificate as presented to
/// [`HttpsOptions::with_client_certificate_validation`] (the arguments of
/// Kestrel's `ClientCertificateValidation`).
#[derive(Debug)]
pub struct ClientCertificate<'a> {
    end_entity: &'a [u8],
    intermediates: Vec<&'a [u8]>,
    chain_error: Option<String>,
}

impl<'a> ClientCertificate<'a> {
    pub(crate) fn new(
        end_entity: &'a [u8],
        intermediates: Vec<&'a [u8]>,
        chain_error: Option<String>,
    ) -> Self {
        ClientCertificate {
            end_entity,
            intermediates,
            chain_error,
        }
    }

    /// The client's certificate (DER).
    pub fn end_entity(&self) -> &'a [u8] {
        self.end_entity
    }

    /// The intermediates the client sent (DER), in the order it sent them.
    pub fn intermediates(&self) -> &[&'a [u8]] {
        &self.intermediates
    }

    /// `None` when the chain verified against the trusted client roots
    /// (issuer, signatures, validity dates, client-auth usage); otherwise why
    /// it did not (Kestrel's `SslPolicyErrors`). With no trusted roots
    /// configured this is always `Some`.
    pub fn chain_error(&self) -> Option<&str> {
        self.chain_error.as_deref()
    }

    /// Subject, issuer and validity of the client's certificate.
    pub fn summary(&self) -> Option<crate::CertificateSummary> {
        crate::CertificateSummary::parse(self.end_entity)
    }
}

pub(crate) type Selector = Arc<dyn Fn(Option<&str>) -> Option<Certificate> + Send + Sync>;
pub(crate) type Validation = Arc<dyn Fn(&ClientCertificate<'_>) -> bool + Send + Sync>;

/// The settings of one HTTPS endpoint (Kestrel's
/// `HttpsConnectionAdapterOptions`). Cheap to clone.
///
/// ```no_run
/// use kestrel_tls::{Certificate, ClientCertificateMode, HttpsOptions};
///
/// # fn demo() -> Result<(), kestrel_tls::TlsError> {
/// let https = HttpsOptions::new()
///     .with_certificate(Certificate::from_pem_files("cert.pem", "key.pem")?)
///     .with_sni_certificate("*.example.com", Certificate::from_pkcs12_file("wild.pfx", "secret")?)
///     .with_client_certificate_mode(ClientCertificateMode::AllowCertificate)
///     .with_trusted_client_roots_pem_file("clients-ca.pem")?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HttpsOptions {
    /// The certificate served when neither the selector nor the SNI map
    /// picks one (Kestrel's `ServerCertificate`).
    pub server_certificate: Option<Certificate>,
    /// Whether to ask for a client certificate. Default `NoCertificate`.
    pub client_certificate_mode: ClientCertificateMode,
    /// How long a client has to complete the handshake (Kestrel's
    /// `HandshakeTimeout`). Default 10 s.
    pub handshake_timeout: Duration,
    /// The lowest accepted TLS version. Default TLS 1.2.
    pub min_protocol_version: TlsVersion,
    /// Watch the files of file-backed certificates (the default certificate
    /// and SNI entries loaded with `Certificate::from_pem_files` or
    /// `from_pkcs12_file`) and reload them when they change: new handshakes
    /// use the new certificate, established connections keep theirs.
    /// Default `true`; Kestrel's `DisableCertificateFileWatching` switch
    /// (configuration key `Kestrel:DisableCertificateFileWatching`) sets it
    /// to `false`.
    pub watch_certificate_files: bool,
    selector: Option<Selector>,
    sni: Vec<(String, Certificate)>,
    client_roots: Vec<CertificateDer<'static>>,
    client_validation: Option<Validation>,
}

impl Default for HttpsOptions {
    fn default() -> Self {
        HttpsOptions {
            server_certificate: None,
            client_certificate_mode: ClientCertificateMode::NoCertificate,
            handshake_timeout: Duration::from_secs(10),
            min_protocol_version: TlsVersion::Tls12,
            watch_certificate_files: true,
            selector: None,
            sni: Vec::new(),
            client_roots: Vec::new(),
            client_validation: None,
        }
    }
}

impl fmt::Debug for HttpsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpsOptions")
            .field("server_certificate", &self.server_certificate)
            .field("client_certificate_mode", &self.client_certificate_mode)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("min_protocol_version", &self.min_protocol_version)
            .field("watch_certificate_files", &self.watch_certificate_files)
            .field("selector", &self.selector.is_some())
            .field(
                "sni",
                &self.sni.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(),
            )
            .field("client_roots", &self.client_roots.len())
            .field("client_validation", &self.client_validation.is_some())
            .finish()
    }
}

impl HttpsOptions {
    /// Options with Kestrel's defaults and no certificate yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serve `certificate` by default (Kestrel's `ServerCertificate`).
    pub fn with_certificate(mut self, certificate: Certificate) -> Self {
        self.server_certificate = Some(certificate);
        self
    }

    /// Serve the development certificate (see [`DevCertificate`]), creating
    /// it on first use.
    pub fn with_development_certificate(self) -> Result<Self, TlsError> {
        Ok(self.with_certificate(DevCertificate::load_or_create()?.certificate().clone()))
    }

    /// Choose the certificate from the client's SNI host name (`None` when
    /// the client sent none). The selector wins over the SNI map and the
    /// default certificate; when it returns `None` those are tried next, and
    /// when nothing matches the handshake fails (Kestrel's
    /// `ServerCertificateSelector`). It runs for every handshake: keep it fast.
    pub fn with_certificate_selector(
        mut self,
        selector: impl Fn(Option<&str>) -> Option<Certificate> + Send + Sync + 'static,
    ) -> Self {
        self.selector = Some(Arc::new(selector));
        self
    }

    /// Serve `certificate` to clients asking for `host` by SNI: an exact
    /// name (`www.example.com`) or a wildcard (`*.example.com`, any name
    /// ending in `.example.com`; the longest matching wildcard wins). Names
    /// are compared case-insensitively. Kestrel's `Sni` configuration section.
    pub fn with_sni_certificate(
        mut self,
        host: impl Into<String>,
        certificate: Certificate,
    ) -> Self {
        self.sni
            .push((host.into().to_ascii_lowercase(), certificate));
        self
    }

    /// Whether any way of finding a server certificate is configured.
    pub fn has_server_certificate(&self) -> bool {
        self.server_certificate.is_some() || self.selector.is_some() || !self.sni.is_empty()
    }

    /// Ask for client certificates (Kestrel's `ClientCertificateMode`).
    pub fn with_client_certificate_mode(mut self, mode: ClientCertificateMode) -> Self {
        self.client_certificate_mode = mode;
        self
    }

    /// Trust client certificates issued by this CA certificate (DER).
    pub fn with_trusted_client_root_der(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.client_roots.push(CertificateDer::from(der.into()));
        self
    }

    /// Trust client certificates issued by the CA certificates of a PEM text.
    pub fn with_trusted_client_roots_pem(mut self, pem: &[u8]) -> Result<Self, TlsError> {
        self.client_roots.extend(certs_from_pem(pem, "<memory>")?);
        Ok(self)
    }

    /// Trust client certificates issued by the CA certificates of a PEM file.
    pub fn with_trusted_client_roots_pem_file(
        mut self,
        path: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| TlsError::io("client CA", path, e))?;
        self.client_roots
            .extend(certs_from_pem(&pem, &path.display().to_string())?);
        Ok(self)
    }

    /// Decide about each client certificate yourself (Kestrel's
    /// `ClientCertificateValidation`): return `true` to accept. The callback
    /// sees whether the chain verified against the trusted roots
    /// ([`ClientCertificate::chain_error`]) and overrides that outcome. The
    /// client's proof that it holds the certificate's key is always checked.
    pub fn with_client_certificate_validation(
        mut self,
        validate: impl Fn(&ClientCertificate<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.client_validation = Some(Arc::new(validate));
        self
    }

    /// The handshake timeout (default 10 s).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The lowest accepted TLS version (default TLS 1.2).
    pub fn with_min_protocol_version(mut self, version: TlsVersion) -> Self {
        self.min_protocol_version = version;
        self
    }

    /// Watch certificate files and reload them on change (default `true`;
    /// see [`watch_certificate_files`](Self::watch_certificate_files)).
    pub fn with_certificate_file_watching(mut self, watch: bool) -> Self {
        self.watch_certificate_files = watch;
        self
    }

    /// The default certificate and the SNI map's certificates.
    pub(crate) fn certificates(&self) -> Vec<Certificate> {
        self.server_certificate
            .iter()
            .cloned()
            .chain(self.sni.iter().map(|(_, c)| c.clone()))
            .collect()
    }

    /// The rustls configuration, with ALPN from `protocols`.
    pub(crate) fn server_config(
        &self,
        protocols: HttpProtocols,
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        if !self.has_server_certificate() {
            return Err(TlsError::NoServerCertificate);
        }
        let provider = provider();
        let versions: &[&'static rustls::SupportedProtocolVersion] = match self.min_protocol_version
        {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match self.client_certificate_mode {
            ClientCertificateMode::NoCertificate => builder.with_no_client_auth(),
            ClientCertificateMode::DelayCertificate => {
                return Err(TlsError::Unsupported(
                    "ClientCertificateMode::DelayCertificate (renegotiation / post-handshake authentication) is not supported; use AllowCertificate".into(),
                ))
            }
            mode => {
                if self.client_roots.is_empty() && self.client_validation.is_none() {
                    return Err(TlsError::ClientCertificates(format!(
                        "{mode:?} needs trusted client roots or a client certificate validation callback"
                    )));
                }
                builder.with_client_cert_verifier(Arc::new(ClientVerifier::new(
                    mode == ClientCertificateMode::RequireCertificate,
                    &self.client_roots,
                    self.client_validation.clone(),
                    provider,
                )?))
            }
        };
        let resolver = CertificateResolver::new(
            self.selector.clone(),
            &self.sni,
            self.server_certificate.clone(),
        )?;
        let mut config = builder.with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = alpn_protocols(protocols);
        config.ignore_client_order = true;
        Ok(Arc::new(config))
    }
}

/// ALPN names for an endpoint's protocols, most preferred first (Kestrel
/// prefers HTTP/2).
pub(crate) fn alpn_protocols(protocols: HttpProtocols) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if protocols.contains(HttpProtocols::HTTP2) {
        out.push(b"h2".to_vec());
    }
    if protocols.contains(HttpProtocols::HTTP1) {
        out.push(b"http/1.1".to_vec());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_follows_the_endpoint_protocols() {
        assert_eq!(
            alpn_protocols(HttpProtocols::HTTP1_AND_HTTP2),
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(
            alpn_protocols(HttpProtocols::HTTP1),
            vec![b"http/1.1".to_vec()]
        );
        assert_eq!(alpn_protocols(HttpProtocols::HTTP2), vec![b"h2".to_vec()]);
        assert!(alpn_protocols(HttpProtocols::HTTP3).is_empty());
    }

    #[test]
    fn configuration_errors() {
        let err = HttpsOptions::new()
            .server_config(HttpProtocols::HTTP1)
            .unwrap_err();
        assert!(matches!(err, TlsError::NoServerCertificate), "{err}");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert = Certificate::from_der(vec![cert.der().to_vec()], key.serialize_der()).unwrap();
        let base = HttpsOptions::new().with_certificate(cert);
        assert!(base.server_config(HttpProtocols::HTTP1).is_ok());
        let err = base
            .clone()
            .with_client_certificate_mode(ClientCertificateMode::RequireCertificate)
            .server_config(HttpProtocols::HTTP1)
            .unwrap_err();
        assert!(matches!(err, TlsError::ClientCertificates(_)), "{err}");
        let err = base
            .clone()
            .with_client_certificate_mode(ClientCertificateMode::DelayCertificate)
            .server_config(HttpProtocols::HTTP1)
            .unwrap_err();
        assert!(matches!(err, TlsError::Unsupported(_)), "{err}");
        assert!(base
            .with_client_certificate_mode(ClientCertificateMode::AllowCertificate)
            .with_client_certificate_validation(|_| true)
            .server_config(HttpProtocols::HTTP1)
            .is_ok());
    }
}
