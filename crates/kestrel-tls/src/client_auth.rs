//! Client-certificate verification: chain validation against the trusted
//! roots (webpki), then the app's validation callback, if any, which has the
//! last word. The client's handshake signature is always verified.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::error::TlsError;
use crate::options::{ClientCertificate, Validation};

pub(crate) struct ClientVerifier {
    mandatory: bool,
    webpki: Option<Arc<dyn ClientCertVerifier>>,
    validation: Option<Validation>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for ClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientVerifier")
            .field("mandatory", &self.mandatory)
            .field("roots", &self.webpki.is_some())
            .field("validation", &self.validation.is_some())
            .finish()
    }
}

impl ClientVerifier {
    pub(crate) fn new(
        mandatory: bool,
        roots: &[CertificateDer<'static>],
        validation: Option<Validation>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let webpki = if roots.is_empty() {
            None
        } else {
            let mut store = RootCertStore::empty();
            for root in roots {
                store.add(root.clone()).map_err(|e| {
                    TlsError::ClientCertificates(format!("a trusted client root is invalid: {e}"))
                })?;
            }
            Some(
                WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider.clone())
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| TlsError::ClientCertificates(e.to_string()))?,
            )
        };
        Ok(ClientVerifier {
            mandatory,
            webpki,
            validation,
            provider,
        })
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        match &self.webpki {
            Some(v) => v.root_hint_subjects(),
            None => &[],
        }
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let chain = match &self.webpki {
            Some(v) => v.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        };
        let Some(validate) = &self.validation else {
            return chain;
        };
        let chain_error = match &chain {
            Ok(_) => None,
            Err(e) if self.webpki.is_none() => {
                Some(format!("no trusted client roots are configured ({e})"))
            }
            Err(e) => Some(e.to_string()),
        };
        let cert = ClientCertificate::new(
            end_entity.as_ref(),
            intermediates.iter().map(|c| c.as_ref()).collect(),
            chain_error,
        );
        if validate(&cert) {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
