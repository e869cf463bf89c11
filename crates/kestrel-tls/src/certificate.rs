//! Server certificates: a chain plus its private key, loaded from PEM files,
//! a PKCS#12 (`.pfx`) file, or memory, and checked at load time.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::TlsError;
use crate::x509::CertificateSummary;

/// The crypto provider every configuration of this crate uses (*ring*).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

const MEMORY: &str = "<memory>";

/// A server (or client) certificate chain with its private key, ready to be
/// served (Kestrel's `X509Certificate2` with a private key). Cheap to clone.
///
/// Loading checks that the key belongs to the leaf certificate
/// ([`TlsError::KeyMismatch`] otherwise) and logs a warning when the leaf is
/// expired or not yet valid.
///
/// A certificate loaded from files ([`from_pem_files`](Self::from_pem_files),
/// [`from_pkcs12_file`](Self::from_pkcs12_file)) remembers them: it can be
/// [`reload`](Self::reload)ed in place, and every clone sees the new chain
/// and key (the HTTPS middleware watches the files and does this; see
/// `crate::watch`). Handshakes already done keep the key they used.
#[derive(Clone)]
pub struct Certificate {
    key: Arc<RwLock<Arc<CertifiedKey>>>,
    source: Arc<str>,
    origin: Option<Arc<FileOrigin>>,
}

/// The files a certificate was loaded from, and what they held then.
struct FileOrigin {
    kind: FileKind,
    /// The bytes of each file at the last successful (or attempted) load, so
    /// that an event on a neighbouring file does not reload, and a change
    /// that failed to load is not retried until the files change again.
    seen: Mutex<FileBytes>,
}

/// The bytes of each file of a certificate (`None`: unreadable).
type FileBytes = Vec<Option<Vec<u8>>>;

enum FileKind {
    Pem { cert: PathBuf, key: PathBuf },
    Pkcs12 { path: PathBuf, password: String },
}

impl FileKind {
    fn paths(&self) -> Vec<&Path> {
        match self {
            FileKind::Pem { cert, key } if cert == key => vec![cert],
            FileKind::Pem { cert, key } => vec![cert, key],
            FileKind::Pkcs12 { path, .. } => vec![path],
        }
    }
}

/// What [`Certificate::reload`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadOutcome {
    /// The files hold what was loaded last: nothing to do.
    Unchanged,
    /// The files changed and the new certificate is in service.
    Reloaded,
    /// The certificate was not loaded from files.
    NotFileBacked,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let summary = self.summary();
        f.debug_struct("Certificate")
            .field("source", &&*self.source)
            .field(
                "subject",
                &summary.as_ref().and_then(|s| s.subject_common_name.clone()),
            )
            .field("chain_len", &self.certified_key().cert.len())
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// A PEM certificate chain (leaf first) and a PEM private key: PKCS#8
    /// (`PRIVATE KEY`), PKCS#1 RSA (`RSA PRIVATE KEY`) or SEC1 EC
    /// (`EC PRIVATE KEY`). Encrypted keys are refused.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        Self::from_pem_named(cert_pem, key_pem, MEMORY, MEMORY)
    }

    /// [`from_pem`](Self::from_pem) from files (the same file may hold both).
    pub fn from_pem_files(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let kind = FileKind::Pem {
            cert: cert_path.as_ref().to_path_buf(),
            key: key_path.as_ref().to_path_buf(),
        };
        let (cert, seen) = load_files(&kind)?;
        Ok(cert.with_origin(kind, seen))
    }

    fn with_origin(mut self, kind: FileKind, seen: FileBytes) -> Self {
        self.origin = Some(Arc::new(FileOrigin {
            kind,
            seen: Mutex::new(seen),
        }));
        self
    }

    fn from_pem_named(
        cert_pem: &[u8],
        key_pem: &[u8],
        cert_name: &str,
        key_name: &str,
    ) -> Result<Self, TlsError> {
        let chain = certs_from_pem(cert_pem, cert_name)?;
        let key = key_from_pem(key_pem, key_name)?;
        Self::build(chain, key, cert_name)
    }

    /// A PKCS#12 (`.pfx`) archive with its password: the first private key
    /// and the certificate chain that goes with it.
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<Self, TlsError> {
        Self::from_pkcs12_named(der, password, MEMORY)
    }

    /// [`from_pkcs12`](Self::from_pkcs12) from a file, as Kestrel's
    /// `UseHttps("cert.pfx", "password")`.
    pub fn from_pkcs12_file(path: impl AsRef<Path>, password: &str) -> Result<Self, TlsError> {
        let kind = FileKind::Pkcs12 {
            path: path.as_ref().to_path_buf(),
            password: password.to_string(),
        };
        let (cert, seen) = load_files(&kind)?;
        Ok(cert.with_origin(kind, seen))
    }

    fn from_pkcs12_named(der: &[u8], password: &str, name: &str) -> Result<Self, TlsError> {
        use p12_keystore::error::Error as P12Error;
        let store = p12_keystore::KeyStore::from_pkcs12(
            der,
            password,
            p12_keystore::Pkcs12ImportPolicy::Strict,
        )
        .map_err(|e| match e {
            P12Error::MacError(_) | P12Error::UnpadError => TlsError::WrongPassword {
                source_name: name.to_string(),
            },
            other => TlsError::Pkcs12 {
                source_name: name.to_string(),
                reason: other.to_string(),
            },
        })?;
        let Some((_, chain)) = store.private_key_chain() else {
            return Err(TlsError::Pkcs12 {
                source_name: name.to_string(),
                reason: "it holds no private key with a matching certificate".into(),
            });
        };
        let certs: Vec<CertificateDer<'static>> = chain
            .certs()
            .iter()
            .map(|c| CertificateDer::from(c.as_der().to_vec()))
            .collect();
        let key = PrivateKeyDer::try_from(chain.key().as_der().to_vec()).map_err(|e| {
            TlsError::UnsupportedKey {
                source_name: name.to_string(),
                reason: e.to_string(),
            }
        })?;
        Self::build(certs, key, name)
    }

    /// A DER certificate chain (leaf first) and a DER private key (PKCS#8,
    /// PKCS#1 or SEC1), e.g. freshly generated in memory.
    pub fn from_der(chain: Vec<Vec<u8>>, key: Vec<u8>) -> Result<Self, TlsError> {
        let chain: Vec<CertificateDer<'static>> =
            chain.into_iter().map(CertificateDer::from).collect();
        let key = PrivateKeyDer::try_from(key).map_err(|e| TlsError::UnsupportedKey {
            source_name: MEMORY.into(),
            reason: e.to_string(),
        })?;
        Self::build(chain, key, MEMORY)
    }

    fn build(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        name: &str,
    ) -> Result<Self, TlsError> {
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                source_name: name.to_string(),
            });
        }
        let signing_key = provider().key_provider.load_private_key(key).map_err(|e| {
            TlsError::UnsupportedKey {
                source_name: name.to_string(),
                reason: e.to_string(),
            }
        })?;
        let certified = CertifiedKey::new(chain, signing_key);
        match certified.keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
                tracing::debug!(target: "kestrel::tls", source = name, "could not check that the private key matches the certificate");
            }
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(TlsError::KeyMismatch {
                    source_name: name.to_string(),
                })
            }
            Err(e) => {
                return Err(TlsError::Config(format!(
                    "the certificate in {name} could not be parsed: {e}"
                )))
            }
        }
        let cert = Certificate {
            key: Arc::new(RwLock::new(Arc::new(certified))),
            source: name.into(),
            origin: None,
        };
        cert.warn_if_not_valid_now();
        Ok(cert)
    }

    fn warn_if_not_valid_now(&self) {
        let Some(s) = self.summary() else {
            return;
        };
        let now = SystemTime::now();
        let subject = s.subject_common_name.as_deref().unwrap_or("(no CN)");
        if s.is_expired_at(now) {
            tracing::warn!(target: "kestrel::tls", source = %self.source, subject, "the certificate '{subject}' from {} has expired: clients will refuse it", self.source);
        } else if now < s.not_before {
            tracing::warn!(target: "kestrel::tls", source = %self.source, subject, "the certificate '{subject}' from {} is not valid yet: clients will refuse it", self.source);
        }
    }

    /// The certificate chain, DER-encoded, leaf first (as served now).
    pub fn chain_der(&self) -> impl Iterator<Item = Vec<u8>> {
        let key = self.certified_key();
        let chain: Vec<Vec<u8>> = key.cert.iter().map(|c| c.as_ref().to_vec()).collect();
        chain.into_iter()
    }

    /// The chain as PEM text (what a client needs to trust a self-signed certificate).
    pub fn chain_pem(&self) -> String {
        let mut out = String::new();
        for der in self.chain_der() {
            out.push_str(&pem_encode("CERTIFICATE", &der));
        }
        out
    }

    /// Subject, issuer and validity of the leaf certificate.
    pub fn summary(&self) -> Option<CertificateSummary> {
        self.certified_key()
            .cert
            .first()
            .and_then(|c| CertificateSummary::parse(c.as_ref()))
    }

    /// The files this certificate was loaded from (empty when it was made
    /// in memory): what a watcher has to watch.
    pub fn file_paths(&self) -> Vec<PathBuf> {
        self.origin
            .as_ref()
            .map(|o| o.kind.paths().into_iter().map(Path::to_path_buf).collect())
            .unwrap_or_default()
    }

    /// Load the certificate again from its files if they changed since the
    /// last load. On success every clone serves the new chain and key from
    /// the next handshake on; connections already established keep theirs.
    /// On failure (a half-written file, a wrong password, a key that does
    /// not match) the certificate in service stays, and the error names the
    /// file; the same bytes are not tried again, the next change is.
    pub fn reload(&self) -> Result<ReloadOutcome, TlsError> {
        let Some(origin) = &self.origin else {
            return Ok(ReloadOutcome::NotFileBacked);
        };
        let mut seen = origin.seen.lock().unwrap_or_else(|p| p.into_inner());
        let now: FileBytes = origin
            .kind
            .paths()
            .iter()
            .map(|p| std::fs::read(p).ok())
            .collect();
        if now == *seen {
            return Ok(ReloadOutcome::Unchanged);
        }
        *seen = now;
        let (fresh, read) = load_files(&origin.kind)?;
        // The files may have changed again between the two reads: remember
        // what was actually loaded.
        *seen = read;
        let new_key = fresh.certified_key();
        *self.key.write().unwrap_or_else(|p| p.into_inner()) = new_key;
        Ok(ReloadOutcome::Reloaded)
    }

    /// Where the certificate was loaded from (a path or `<memory>`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The chain and key in service now.
    pub(crate) fn certified_key(&self) -> Arc<CertifiedKey> {
        self.key.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Load a certificate from its files; also returns the bytes read.
fn load_files(kind: &FileKind) -> Result<(Certificate, FileBytes), TlsError> {
    match kind {
        FileKind::Pem { cert, key } => {
            let cert_pem = std::fs::read(cert).map_err(|e| TlsError::io("certificate", cert, e))?;
            let key_pem = std::fs::read(key).map_err(|e| TlsError::io("private key", key, e))?;
            let loaded = Certificate::from_pem_named(
                &cert_pem,
                &key_pem,
                &cert.display().to_string(),
                &key.display().to_string(),
            )?;
            let seen = if cert == key {
                vec![Some(cert_pem)]
            } else {
                vec![Some(cert_pem), Some(key_pem)]
            };
            Ok((loaded, seen))
        }
        FileKind::Pkcs12 { path, password } => {
            let der = std::fs::read(path).map_err(|e| TlsError::io("PKCS#12", path, e))?;
            let loaded =
                Certificate::from_pkcs12_named(&der, password, &path.display().to_string())?;
            Ok((loaded, vec![Some(der)]))
        }
    }
}

/// Every `CERTIFICATE` block of a PEM text.
pub(crate) fn certs_from_pem(
    pem_text: &[u8],
    name: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::InvalidPem {
            source_name: name.to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            source_name: name.to_string(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM text (PKCS#8, PKCS#1 or SEC1).
fn key_from_pem(pem_text: &[u8], name: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let mut found = Vec::new();
    for section in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(pem_text) {
        let (kind, der) = section.map_err(|e| TlsError::InvalidPem {
            source_name: name.to_string(),
            reason: e.to_string(),
        })?;
        let key = match kind {
            SectionKind::PrivateKey => PrivateKeyDer::Pkcs8(der.into()),
            SectionKind::RsaPrivateKey => PrivateKeyDer::Pkcs1(der.into()),
            SectionKind::EcPrivateKey => PrivateKeyDer::Sec1(der.into()),
            other => {
                found.push(format!("{other:?}"));
                continue;
            }
        };
        return Ok(key);
    }
    let encrypted = pem_text
        .windows(b"ENCRYPTED PRIVATE KEY".len())
        .any(|w| w == b"ENCRYPTED PRIVATE KEY")
        || pem_text
            .windows(b"Proc-Type: 4,ENCRYPTED".len())
            .any(|w| w == b"Proc-Type: 4,ENCRYPTED");
    let reason = if encrypted {
        "the key is encrypted; decrypt it first (e.g. `openssl pkey -in key.pem -out plain.pem`)"
            .to_string()
    } else if found.is_empty() {
        "expected a 'PRIVATE KEY', 'RSA PRIVATE KEY' or 'EC PRIVATE KEY' block".to_string()
    } else {
        format!("found only {}", found.join(", "))
    };
    Err(TlsError::NoPrivateKey {
        source_name: name.to_string(),
        reason,
    })
}

/// PEM-encode one DER object.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                b64.push(ALPHABET[((v >> (18 - 6 * i)) & 0x3F) as usize]);
            } else {
                b64.push(b'=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips() {
        for len in [0usize, 1, 2, 3, 4, 47, 48, 49, 100] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let text = pem_encode("CERTIFICATE", &der);
            let back = CertificateDer::from_pem_slice(text.as_bytes());
            if len == 0 {
                continue;
            }
            assert_eq!(back.unwrap().as_ref(), &der[..], "len {len}");
        }
    }

    #[test]
    fn loads_rcgen_pem_and_refuses_a_foreign_key() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let c =
            Certificate::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
        assert_eq!(c.chain_der().count(), 1);
        assert_eq!(c.source(), "<memory>");
        assert_eq!(
            CertificateDer::from_pem_slice(c.chain_pem().as_bytes())
                .unwrap()
                .as_ref(),
            cert.der().as_ref()
        );
        let other = rcgen::KeyPair::generate().unwrap();
        let err = Certificate::from_pem(cert.pem().as_bytes(), other.serialize_pem().as_bytes())
            .unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        let err = Certificate::from_pem(b"", key.serialize_pem().as_bytes()).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        let err = Certificate::from_pem(cert.pem().as_bytes(), cert.pem().as_bytes()).unwrap_err();
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = Certificate::from_pem(cert.pem().as_bytes(), encrypted.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("encrypted"), "{err}");
    }
}
