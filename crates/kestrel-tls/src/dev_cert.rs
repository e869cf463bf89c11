//! The development certificate (what `dotnet dev-certs https` manages for
//! Kestrel): a self-signed certificate for `localhost`, `127.0.0.1` and
//! `::1`, generated on first use and reused afterwards.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::certificate::{pem_encode, Certificate};
use crate::error::TlsError;
use crate::x509::{civil_from_days, unix_days};

/// The environment variable that overrides the development certificate's
/// directory (tests point it at a temporary directory).
pub const DEV_CERT_DIR_ENV: &str = "KESTREL_DEV_CERT_DIR";

/// The file, in the directory, that holds the certificate and its key.
const FILE_NAME: &str = "localhost.pem";

/// How long a generated certificate is valid (like `dotnet dev-certs`: a year).
const VALID_DAYS: i64 = 365;

/// A certificate that expires within this is replaced.
const RENEW_BEFORE: Duration = Duration::from_secs(24 * 3600);

/// The development certificate: self-signed, for `localhost`, `127.0.0.1`
/// and `::1`, valid for a year.
///
/// It lives in one PEM file (certificate, then private key) with owner-only
/// permissions (0600, in a 0700 directory) under
/// `$KESTREL_DEV_CERT_DIR`, or else the user's data directory
/// (`$XDG_DATA_HOME/kestrel-rs/dev-cert/` or `~/.local/share/kestrel-rs/dev-cert/` on Linux).
/// [`load_or_create`](Self::load_or_create) generates it on first use and
/// reuses it afterwards (a new one replaces it when it expires); clients
/// trust it by importing what [`export`](Self::export) writes.
///
/// It is for development only: the private key is not protected by a
/// password and anyone who can read your files can impersonate `localhost`
/// to you.
#[derive(Debug, Clone)]
pub struct DevCertificate {
    certificate: Certificate,
    path: PathBuf,
    created: bool,
}

impl DevCertificate {
    /// The directory in use: `$KESTREL_DEV_CERT_DIR`, or
    /// `<user data dir>/kestrel-rs/dev-cert`.
    pub fn default_dir() -> Result<PathBuf, TlsError> {
        if let Some(dir) = std::env::var_os(DEV_CERT_DIR_ENV).filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir));
        }
        dirs::data_dir()
            .map(|d| d.join("kestrel-rs").join("dev-cert"))
            .ok_or_else(|| {
                TlsError::dev(
                    Path::new("~"),
                    format!("no user data directory (set ${DEV_CERT_DIR_ENV})"),
                )
            })
    }

    /// Load the development certificate from [`default_dir`](Self::default_dir),
    /// creating it if it does not exist yet (or has expired).
    pub fn load_or_create() -> Result<Self, TlsError> {
        Self::load_or_create_in(Self::default_dir()?)
    }

    /// [`load_or_create`](Self::load_or_create) in a given directory.
    pub fn load_or_create_in(dir: impl AsRef<Path>) -> Result<Self, TlsError> {
        // One generator at a time in this process; other processes are kept
        // out by the no-clobber link in `store`.
        static LOCK: Mutex<()> = Mutex::new(());
        let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let dir = dir.as_ref();
        let path = dir.join(FILE_NAME);
        match std::fs::read(&path) {
            Ok(pem) => match Self::parse(&pem, &path) {
                Ok(cert) if still_valid(&cert) => {
                    check_permissions(&path);
                    tracing::debug!(target: "kestrel::tls", path = %path.display(), "using the development certificate");
                    return Ok(DevCertificate {
                        certificate: cert,
                        path,
                        created: false,
                    });
                }
                Ok(_) => {
                    tracing::info!(target: "kestrel::tls", path = %path.display(), "the development certificate has expired (or expires within a day); generating a new one");
                }
                Err(e) => {
                    tracing::warn!(target: "kestrel::tls", path = %path.display(), error = %e, "the development certificate file is unusable; generating a new one");
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(TlsError::dev(&path, e)),
        }
        let replace = path.exists();
        let (cert_pem, key_pem) = generate()?;
        let mut text = cert_pem;
        text.push_str(&key_pem);
        let created = store(dir, &path, text.as_bytes(), replace)?;
        // Read back what is on disk: if another process won the race, use its certificate.
        let pem = std::fs::read(&path).map_err(|e| TlsError::dev(&path, e))?;
        let certificate = Self::parse(&pem, &path)?;
        if created {
            tracing::info!(target: "kestrel::tls", path = %path.display(), "created the HTTPS development certificate for localhost; trust it with `kestrel-demo dev-certs --export <file>` and your client's CA option");
        }
        Ok(DevCertificate {
            certificate,
            path,
            created,
        })
    }

    fn parse(pem: &[u8], path: &Path) -> Result<Certificate, TlsError> {
        Certificate::from_pem(pem, pem).map_err(|e| TlsError::dev(path, e))
    }

    /// The certificate, to serve.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The file holding the certificate and its private key.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this call generated it (rather than reusing the stored one).
    pub fn was_created(&self) -> bool {
        self.created
    }

    /// The certificate as PEM (no private key).
    pub fn certificate_pem(&self) -> String {
        self.certificate.chain_pem()
    }

    /// Write the certificate (not the key) as PEM to `path`, for a client
    /// to trust, e.g. `curl --cacert <path>` (like `dotnet dev-certs https
    /// --export-path`).
    pub fn export(&self, path: impl AsRef<Path>) -> Result<(), TlsError> {
        let path = path.as_ref();
        std::fs::write(path, self.certificate_pem()).map_err(|e| TlsError::dev(path, e))
    }
}

fn still_valid(cert: &Certificate) -> bool {
    match cert.summary() {
        Some(s) => SystemTime::now() + RENEW_BEFORE < s.not_after,
        None => false,
    }
}

/// id-ce-basicConstraints (2.5.29.19).
const BASIC_CONSTRAINTS_OID: &[u64] = &[2, 5, 29, 19];

/// A new key pair and self-signed certificate, as PEM.
fn generate() -> Result<(String, String), TlsError> {
    let err = |e: rcgen::Error| TlsError::dev(Path::new(FILE_NAME), e);
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let mut params = rcgen::CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])
    .map_err(err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.distinguished_name.push(
        rcgen::DnType::OrganizationName,
        "Kestrel for Rust development certificate",
    );
    let today = unix_days(SystemTime::now());
    let ymd = |days: i64| {
        let (y, m, d) = civil_from_days(days);
        rcgen::date_time_ymd(y as i32, m as u8, d as u8)
    };
    params.not_before = ymd(today - 1);
    params.not_after = ymd(today + VALID_DAYS);
    // Basic Constraints, critical, not a CA (as Kestrel's dev certificate),
    // written by hand: rcgen 0.13's `IsCa::ExplicitNoCa` encodes the cA
    // field's DEFAULT FALSE explicitly, which is not DER, and strict X.509
    // parsers (Python's `cryptography`, so aioquic) reject the certificate.
    // DER omits the default: the extension's value is an empty SEQUENCE.
    params.is_ca = rcgen::IsCa::NoCa;
    let mut basic_constraints =
        rcgen::CustomExtension::from_oid_content(BASIC_CONSTRAINTS_OID, vec![0x30, 0x00]);
    basic_constraints.set_criticality(true);
    params.custom_extensions.push(basic_constraints);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((pem_encode("CERTIFICATE", cert.der()), key.serialize_pem()))
}

/// Write `contents` to `path` atomically with owner-only permissions.
/// Without `replace`, an existing file wins (another process created it
/// first) and `false` is returned.
fn store(dir: &Path, path: &Path, contents: &[u8], replace: bool) -> Result<bool, TlsError> {
    create_private_dir(dir)?;
    let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = private_file(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()
    };
    write().map_err(|e| TlsError::dev(&tmp, e))?;
    let result = if replace {
        std::fs::rename(&tmp, path).map(|()| true)
    } else {
        // A hard link never replaces an existing file: the first process wins.
        let r = match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(_) => std::fs::rename(&tmp, path).map(|()| true),
        };
        let _ = std::fs::remove_file(&tmp);
        r
    };
    result.map_err(|e| TlsError::dev(path, e))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| TlsError::dev(dir, e))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(|e| TlsError::dev(dir, e))
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn check_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(target: "kestrel::tls", path = %path.display(), mode = format!("{mode:o}"), "the development certificate's private key is readable by other users; run `chmod 600` on it");
        }
    }
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) {}
