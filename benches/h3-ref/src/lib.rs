//! Shared pieces of the HTTP/3 benchmark tools (`hello-h3`, `h3load`): PEM
//! loading and the rustls configurations, ring provider and TLS 1.3 as
//! Kestrel's QUIC listener uses.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {source}")]
    Pem {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// rustls refused the configuration.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    /// The configuration cannot run QUIC.
    #[error("not usable for QUIC: {0}")]
    Quic(String),
}

fn certs(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsSetupError::Pem {
            path: path.to_string(),
            source,
        })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The QUIC server crypto for the PEM chain and key: TLS 1.3, ALPN `h3`.
pub fn server_crypto(
    cert: &str,
    key: &str,
) -> Result<quinn::crypto::rustls::QuicServerConfig, TlsSetupError> {
    let chain = certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsSetupError::Pem {
        path: key.to_string(),
        source,
    })?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![b"h3".to_vec()];
    tls.max_early_data_size = 0;
    quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TlsSetupError::Quic(e.to_string()))
}

/// The QUIC client crypto trusting the PEM certificate(s) in `ca`: TLS 1.3,
/// ALPN `h3`.
pub fn client_crypto(ca: &str) -> Result<quinn::crypto::rustls::QuicClientConfig, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca)? {
        roots.add(c)?;
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| TlsSetupError::Quic(e.to_string()))
}
