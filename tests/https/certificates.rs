//! HTTPS certificates from every source Kestrel accepts (PEM with PKCS#8,
//! PKCS#1 and SEC1 keys; PKCS#12 with a password; memory), served to real
//! clients, and the start-up errors for the usual mistakes.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::tls as tls_support;

use kestrel::tls::{Certificate, HttpsOptions, TlsError};
use kestrel::{HttpProtocols, KestrelServer};
use support::have_tool;
use tls_support::{client_config, https_get, openssl, s, serve, tls_app, TestCa};

/// Serve `cert` and GET / with a rustls client trusting the test CA.
async fn served_ok(ca: &TestCa, cert: Certificate) {
    let server = serve(
        HttpsOptions::new().with_certificate(cert),
        HttpProtocols::HTTP1,
        tls_app,
    )
    .await;
    let addr = tls_support::addr(&server);
    let response = https_get(
        addr,
        "localhost",
        client_config(&ca.pem, &["http/1.1"], None),
    )
    .await
    .expect("handshake");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response.contains("tls=TLSv1_3 sni=localhost alpn=http/1.1 peer=none"),
        "{response}"
    );
    server.stop().await;
}

#[tokio::test]
async fn pem_with_a_pkcs8_key_in_files_and_in_memory() {
    let ca = TestCa::new();
    let (cert, key) = ca.server_pem(&["localhost"]);
    assert!(key.contains("BEGIN PRIVATE KEY"));
    let cert_path = ca.write("cert.pem", &cert);
    let key_path = ca.write("key.pem", &key);
    served_ok(
        &ca,
        Certificate::from_pem_files(&cert_path, &key_path).unwrap(),
    )
    .await;
    served_ok(
        &ca,
        Certificate::from_pem(cert.as_bytes(), key.as_bytes()).unwrap(),
    )
    .await;
    // One file holding both.
    let both = ca.write("both.pem", format!("{cert}{key}"));
    served_ok(&ca, Certificate::from_pem_files(&both, &both).unwrap()).await;
}

#[tokio::test]
async fn pem_with_a_pkcs1_rsa_key() {
    if !have_tool("openssl") {
        return;
    }
    let ca = TestCa::new();
    let pkcs8 = ca.path("rsa8.pem");
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        s(&pkcs8),
    ]);
    let key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(&pkcs8).unwrap()).unwrap();
    let cert = ca.write("cert.pem", ca.server_pem_for_key(&["localhost"], &key));
    let pkcs1 = ca.path("rsa1.pem");
    openssl(&["rsa", "-in", s(&pkcs8), "-traditional", "-out", s(&pkcs1)]);
    assert!(std::fs::read_to_string(&pkcs1)
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    served_ok(&ca, Certificate::from_pem_files(&cert, &pkcs1).unwrap()).await;
}

#[tokio::test]
async fn pem_with_a_sec1_ec_key() {
    if !have_tool("openssl") {
        return;
    }
    let ca = TestCa::new();
    let (cert, key) = ca.server_pem(&["localhost"]);
    let cert = ca.write("cert.pem", cert);
    let pkcs8 = ca.write("ec8.pem", key);
    let sec1 = ca.path("ec1.pem");
    openssl(&["ec", "-in", s(&pkcs8), "-out", s(&sec1)]);
    assert!(std::fs::read_to_string(&sec1)
        .unwrap()
        .contains("BEGIN EC PRIVATE KEY"));
    served_ok(&ca, Certificate::from_pem_files(&cert, &sec1).unwrap()).await;
}

#[tokio::test]
async fn pkcs12_with_the_right_and_the_wrong_password() {
    if !have_tool("openssl") {
        return;
    }
    let ca = TestCa::new();
    let (cert, key) = ca.server_pem(&["localhost"]);
    let cert = ca.write("cert.pem", cert);
    let key = ca.write("key.pem", key);
    let pfx = ca.path("testCert.pfx");
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        s(&cert),
        "-inkey",
        s(&key),
        "-certfile",
        s(&ca.ca_path()),
        "-out",
        s(&pfx),
        "-passout",
        "pass:testPassword",
    ]);
    let loaded = Certificate::from_pkcs12_file(&pfx, "testPassword").unwrap();
    assert_eq!(loaded.chain_der().count(), 2, "leaf and CA");
    served_ok(&ca, loaded).await;

    let err = Certificate::from_pkcs12_file(&pfx, "wrongPassword").unwrap_err();
    assert!(matches!(err, TlsError::WrongPassword { .. }), "{err}");
    assert!(
        err.to_string().contains("password") && err.to_string().contains("testCert.pfx"),
        "{err}"
    );

    // The legacy (3DES/RC2) encryption older tools produce also loads.
    let legacy = ca.path("legacy.pfx");
    let out = std::process::Command::new("openssl")
        .args([
            "pkcs12",
            "-export",
            "-legacy",
            "-in",
            s(&cert),
            "-inkey",
            s(&key),
        ])
        .args(["-out", s(&legacy), "-passout", "pass:old"])
        .output()
        .unwrap();
    if out.status.success() {
        served_ok(&ca, Certificate::from_pkcs12_file(&legacy, "old").unwrap()).await;
    } else {
        eprintln!(
            "openssl cannot write legacy PKCS#12 here (no legacy provider); skipped that part"
        );
    }
}

#[tokio::test]
async fn clear_errors_for_missing_files_and_a_foreign_key() {
    let ca = TestCa::new();
    let (cert, key) = ca.server_pem(&["localhost"]);
    let (_, other_key) = ca.server_pem(&["localhost"]);
    let cert_path = ca.write("cert.pem", &cert);
    let key_path = ca.write("key.pem", &key);
    let other = ca.write("other-key.pem", &other_key);

    let err = Certificate::from_pem_files(ca.path("nope.pem"), &key_path).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::FileNotFound {
                what: "certificate",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("nope.pem") && err.to_string().contains("not found"),
        "{err}"
    );
    let err = Certificate::from_pem_files(&cert_path, ca.path("nokey.pem")).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::FileNotFound {
                what: "private key",
                ..
            }
        ),
        "{err}"
    );
    let err = Certificate::from_pkcs12_file(ca.path("nope.pfx"), "x").unwrap_err();
    assert!(matches!(err, TlsError::FileNotFound { .. }), "{err}");

    let err = Certificate::from_pem_files(&cert_path, &other).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");

    // A certificate that has expired still loads (with a warning in the log).
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2001, 1, 1);
    params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let old = params.self_signed(&key_pair).unwrap();
    let c =
        Certificate::from_pem(old.pem().as_bytes(), key_pair.serialize_pem().as_bytes()).unwrap();
    assert!(c
        .summary()
        .unwrap()
        .is_expired_at(std::time::SystemTime::now()));
}

#[tokio::test]
async fn https_urls_use_the_https_defaults_and_report_configuration_errors() {
    let ca = TestCa::new();
    let server = KestrelServer::default()
        .urls(["https://127.0.0.1:0"])
        .https_defaults(HttpsOptions::new().with_certificate(ca.server_cert(&["localhost"])))
        .configure(|o| {
            o.configure_endpoint_defaults(|l| l.protocols = HttpProtocols::HTTP1);
        })
        .start(tls_app)
        .await
        .unwrap();
    let shown = server.addresses().to_string();
    assert!(shown.starts_with("https://127.0.0.1:"), "{shown}");
    let addr = tls_support::addr(&server);
    let response = https_get(
        addr,
        "localhost",
        client_config(&ca.pem, &["http/1.1"], None),
    )
    .await
    .unwrap();
    assert!(response.contains("tls=TLSv1_3 sni=localhost"), "{response}");
    server.stop().await;

    let err = KestrelServer::default()
        .urls(["https://127.0.0.1:0"])
        .https_defaults(
            HttpsOptions::new()
                .with_certificate(ca.server_cert(&["localhost"]))
                .with_client_certificate_mode(
                    kestrel::tls::ClientCertificateMode::RequireCertificate,
                ),
        )
        .start(tls_app)
        .await
        .unwrap_err();
    assert!(matches!(err, kestrel::StartError::Tls(_)), "{err}");
    assert!(err.to_string().contains("trusted client roots"), "{err}");
}

#[tokio::test]
async fn https_endpoints_in_code_report_an_https_address() {
    let ca = TestCa::new();
    let https = kestrel::tls::HttpsOptions::new().with_certificate(ca.server_cert(&["localhost"]));
    let server =
        tls_support::serve(https, kestrel::HttpProtocols::HTTP1, tls_support::tls_app).await;
    let shown: Vec<String> = server.addresses().iter().map(|a| a.to_string()).collect();
    assert_eq!(shown.len(), 1);
    assert!(shown[0].starts_with("https://127.0.0.1:"), "{shown:?}");
    server.stop().await;
}
