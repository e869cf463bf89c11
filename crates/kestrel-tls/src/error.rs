//! Start-up errors of the HTTPS configuration.

use std::io;
use std::path::{Path, PathBuf};

/// Why an HTTPS certificate or endpoint could not be configured. These are
/// start-up errors: each message names the file (or `<memory>`) at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file does not exist.
    #[error("the {what} file '{}' was not found", path.display())]
    FileNotFound {
        /// What the file was for ("certificate", "private key", "PKCS#12", …).
        what: &'static str,
        /// The path as given.
        path: PathBuf,
    },
    /// A certificate or key file exists but could not be read.
    #[error("could not read the {what} file '{}': {source}", path.display())]
    Read {
        /// What the file was for.
        what: &'static str,
        /// The path as given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A PEM source holds no `CERTIFICATE` block.
    #[error("no certificate found in {source_name} (expected a PEM 'CERTIFICATE' block)")]
    NoCertificate {
        /// The file (or `<memory>`).
        source_name: String,
    },
    /// A PEM source holds no private key, or only an encrypted one.
    #[error("no usable private key found in {source_name}: {reason}")]
    NoPrivateKey {
        /// The file (or `<memory>`).
        source_name: String,
        /// What was found instead.
        reason: String,
    },
    /// PEM text that could not be decoded.
    #[error("invalid PEM in {source_name}: {reason}")]
    InvalidPem {
        /// The file (or `<memory>`).
        source_name: String,
        /// The decoder's message.
        reason: String,
    },
    /// A PKCS#12 (`.pfx`) file could not be opened with the given password.
    #[error("the password for the PKCS#12 file {source_name} is wrong (or the file is corrupt)")]
    WrongPassword {
        /// The file (or `<memory>`).
        source_name: String,
    },
    /// A PKCS#12 (`.pfx`) file could not be used.
    #[error("invalid PKCS#12 file {source_name}: {reason}")]
    Pkcs12 {
        /// The file (or `<memory>`).
        source_name: String,
        /// Why.
        reason: String,
    },
    /// The private key's type or encoding is not supported.
    #[error("unsupported private key in {source_name}: {reason}")]
    UnsupportedKey {
        /// The file (or `<memory>`).
        source_name: String,
        /// Why.
        reason: String,
    },
    /// The private key does not belong to the certificate.
    #[error("the private key does not match the certificate in {source_name}")]
    KeyMismatch {
        /// The file (or `<memory>`).
        source_name: String,
    },
    /// An HTTPS endpoint has no way to find a certificate.
    #[error("HTTPS is configured without a server certificate: set a certificate, an SNI map or a certificate selector")]
    NoServerCertificate,
    /// The client-certificate settings are inconsistent.
    #[error("invalid client certificate settings: {0}")]
    ClientCertificates(String),
    /// A setting that this implementation does not support.
    #[error("unsupported HTTPS setting: {0}")]
    Unsupported(String),
    /// The development certificate could not be created, read or exported.
    #[error("development certificate ({}): {reason}", path.display())]
    DevCertificate {
        /// The file or directory involved.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The TLS library refused the configuration.
    #[error("TLS configuration error: {0}")]
    Config(String),
}

impl TlsError {
    /// Map an I/O error reading `path` to [`FileNotFound`](Self::FileNotFound)
    /// or [`Read`](Self::Read).
    pub(crate) fn io(what: &'static str, path: &Path, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            TlsError::FileNotFound {
                what,
                path: path.to_path_buf(),
            }
        } else {
            TlsError::Read {
                what,
                path: path.to_path_buf(),
                source,
            }
        }
    }

    pub(crate) fn dev(path: &Path, reason: impl std::fmt::Display) -> Self {
        TlsError::DevCertificate {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}
