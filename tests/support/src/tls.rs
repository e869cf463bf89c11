//! HTTPS test helpers: a test CA made with rcgen inside the tests, server and
//! client certificates it signs, a rustls client, an app that reports the
//! TLS handshake it sees, and openssl.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use kestrel::tls::{Certificate, CertificateSummary};
use kestrel::{RequestBody, RequestFeaturesExt, RunningServer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A certificate authority generated for one test, with a temp dir for files.
pub struct TestCa {
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
    /// The CA certificate (PEM).
    pub pem: String,
    /// A temporary directory for the test's files.
    pub dir: tempfile::TempDir,
}

impl Default for TestCa {
    /// [`TestCa::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// A fresh CA ("Kestrel Test CA").
    pub fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Kestrel Test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        let pem = cert.pem();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &pem).unwrap();
        TestCa {
            key,
            cert,
            pem,
            dir,
        }
    }

    /// Path of the CA certificate file.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A path in the temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write `text` to a file in the temp dir and return its path.
    pub fn write(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn sign(&self, params: rcgen::CertificateParams, key: &rcgen::KeyPair) -> String {
        params.signed_by(key, &self.cert, &self.key).unwrap().pem()
    }

    /// A server certificate for `names` (DNS names or IPs) signed by the CA,
    /// with a new P-256 key: (certificate PEM, PKCS#8 key PEM).
    pub fn server_pem(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        (self.server_pem_for_key(names, &key), key.serialize_pem())
    }

    /// A server certificate for `names` and an existing key.
    pub fn server_pem_for_key(&self, names: &[&str], key: &rcgen::KeyPair) -> String {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().copied().unwrap_or("server"),
        );
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, key)
    }

    /// A server certificate for `names`, loaded for the server.
    pub fn server_cert(&self, names: &[&str]) -> Certificate {
        let (cert, key) = self.server_pem(names);
        Certificate::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()
    }

    /// A client certificate with common name `cn`: (certificate PEM, key PEM).
    pub fn client_pem(&self, cn: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        (self.sign(params, &key), key.serialize_pem())
    }
}

/// The socket address of the server's first endpoint (`http://` or `https://`).
pub fn addr(server: &RunningServer) -> SocketAddr {
    let first = server
        .addresses()
        .iter()
        .next()
        .unwrap()
        .as_str()
        .to_string();
    first
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|_| panic!("not an IP endpoint: {first}"))
}

/// An app that answers with what it knows of the connection's TLS handshake:
/// `tls=<version> sni=<name> alpn=<proto> peer=<client CN>|none chain=<n>`.
pub async fn tls_app(req: Request<RequestBody>) -> Response<Full<Bytes>> {
    let tls = req.features().and_then(|f| f.tls()).cloned();
    let body = match tls {
        None => "no tls".to_string(),
        Some(t) => format!(
            "tls={} sni={} alpn={} peer={} chain={}",
            t.protocol_version,
            t.server_name.clone().unwrap_or_else(|| "-".into()),
            t.alpn
                .as_deref()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .unwrap_or_else(|| "-".into()),
            t.peer_certificates
                .first()
                .and_then(|c| CertificateSummary::parse(c))
                .and_then(|s| s.subject_common_name)
                .unwrap_or_else(|| "none".into()),
            t.peer_certificates.len(),
        ),
    };
    Response::new(Full::new(Bytes::from(body)))
}

/// A rustls client configuration trusting `ca_pem`, offering `alpn`, with an
/// optional client certificate (certificate PEM, key PEM).
pub fn client_config(
    ca_pem: &str,
    alpn: &[&str],
    client_cert: Option<(&str, &str)>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// Connect with TLS to `addr`, sending `server_name` by SNI.
pub async fn connect(
    addr: SocketAddr,
    server_name: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .expect("the handshake finishes within 10 s")
}

/// `GET /` over an established TLS stream with `Connection: close`; the whole
/// response as text.
pub async fn get(mut tls: TlsStream<TcpStream>, host: &str) -> String {
    tls.write_all(
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let read = async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the response arrives within 10 s");
    String::from_utf8_lossy(&out).into_owned()
}

/// Connect, `GET /`, and return the response (or the handshake error).
pub async fn https_get(
    addr: SocketAddr,
    server_name: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<String> {
    let tls = connect(addr, server_name, config).await?;
    Ok(get(tls, server_name).await)
}

/// Run a command off the runtime's threads, with `stdin` as its input.
pub async fn run(program: &str, args: &[&str], stdin: &[u8]) -> Output {
    let program = program.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let stdin = stdin.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        if let Some(mut input) = child.stdin.take() {
            use std::io::Write;
            let _ = input.write_all(&stdin);
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// Run openssl synchronously (for making files), asserting success.
pub fn openssl(args: &[&str]) -> Output {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `path` as a `&str`.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Start `app` on an HTTPS endpoint at `127.0.0.1:0` with `https` and `protocols`.
pub async fn serve<A: kestrel::Application>(
    https: kestrel::tls::HttpsOptions,
    protocols: kestrel::HttpProtocols,
    app: A,
) -> RunningServer {
    use kestrel::tls::ListenOptionsHttpsExt;
    let mut options = kestrel::KestrelServerOptions::default();
    options.listen((std::net::Ipv4Addr::LOCALHOST, 0), |l| {
        l.protocols = protocols;
        l.use_https(https);
    });
    kestrel::KestrelServer::new(options)
        .heartbeat_interval(Duration::from_millis(50))
        .start(app)
        .await
        .expect("server starts")
}
