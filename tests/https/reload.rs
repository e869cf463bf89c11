//! Certificate reload: certificate files (PEM pairs, PKCS#12; set in code, in
//! `Kestrel:Certificates:Default` and in `Sni` entries) are watched; a file
//! rewritten in place or replaced by a rename is served to the next
//! handshake (seen by `openssl s_client` and a rustls client), established
//! connections keep the certificate they got, a file that fails to load
//! leaves the old one in service and logs an error naming it, and
//! `Kestrel:DisableCertificateFileWatching` turns watching off.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::tls as tls_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kestrel::hosting::WebHostBuilderKestrelExt;
use kestrel::tls::{Certificate, CertificateSummary, HttpsOptions};
use kestrel::HttpProtocols;
use kestrel_hosting::{RunningHost, WebHost};
use support::have_tool;
use tls_support::{client_config, connect, openssl, run, s, serve, tls_app, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

// Everything Kestrel logged in this test binary (the watcher logs from its
// own thread, so a thread-local subscriber would not see it): the binary's
// one global capture.
use kestrel_test_support::logs::{capture as capture_logs, text as logged};

/// The subject line `openssl s_client` prints for the certificate served to
/// `server_name` (none sent when `None`).
async fn served_subject(addr: SocketAddr, server_name: Option<&str>) -> String {
    let target = addr.to_string();
    let mut args = vec!["s_client", "-connect", target.as_str()];
    match server_name {
        Some(name) => args.extend(["-servername", name]),
        None => args.push("-noservername"),
    }
    let out = run("openssl", &args, b"").await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with("subject="))
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!(
                "no certificate: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Poll `openssl s_client` until the served subject contains `cn` (≤ 10 s).
async fn wait_for_subject(addr: SocketAddr, server_name: Option<&str>, cn: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let subject = served_subject(addr, server_name).await;
        if subject.contains(cn) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "openssl s_client still sees {subject:?}, not {cn}; log:\n{}",
            logged()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Give the watcher time to act (it reads files 100 ms after the last event).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(800)).await;
}

fn replace_by_rename(path: &Path, text: impl AsRef<[u8]>) {
    let tmp = path.with_extension("tmp-new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A keep-alive `GET /` on an established connection; the response body.
async fn keep_alive_get(tls: &mut TlsStream<TcpStream>) -> String {
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            let n = tls.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the connection closed");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap();
                if body.len() >= len {
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    return body.to_string();
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap()
}

fn peer_cn(tls: &TlsStream<TcpStream>) -> String {
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    CertificateSummary::parse(der.as_ref())
        .and_then(|s| s.subject_common_name)
        .unwrap()
}

#[tokio::test]
async fn a_pem_pair_in_code_is_reloaded_for_new_handshakes_only() {
    if !have_tool("openssl") {
        return;
    }
    capture_logs();
    let ca = TestCa::new();
    let (c, k) = ca.server_pem(&["first.test", "localhost"]);
    let cert_path = ca.write("server.pem", c);
    let key_path = ca.write("server.key", k);
    let server = serve(
        HttpsOptions::new()
            .with_certificate(Certificate::from_pem_files(&cert_path, &key_path).unwrap()),
        HttpProtocols::HTTP1,
        tls_app,
    )
    .await;
    let addr = tls_support::addr(&server);
    let client = client_config(&ca.pem, &["http/1.1"], None);
    assert!(served_subject(addr, Some("localhost"))
        .await
        .contains("first.test"));
    let mut old = connect(addr, "localhost", client.clone()).await.unwrap();
    assert!(keep_alive_get(&mut old).await.starts_with("tls="));
    assert_eq!(peer_cn(&old), "first.test");

    // Rewritten in place (key first, then the certificate, as `cp` would).
    let key = rcgen::KeyPair::generate().unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::write(
        &cert_path,
        ca.server_pem_for_key(&["second.test", "localhost"], &key),
    )
    .unwrap();
    wait_for_subject(addr, Some("localhost"), "second.test").await;
    // A fresh client (a resumed TLS session keeps the identity it had).
    let fresh = client_config(&ca.pem, &["http/1.1"], None);
    let mut new = connect(addr, "localhost", fresh).await.unwrap();
    assert_eq!(peer_cn(&new), "second.test", "a rustls client sees it too");
    assert!(keep_alive_get(&mut new).await.starts_with("tls="));
    // The connection made before keeps its certificate and keeps serving.
    assert!(keep_alive_get(&mut old).await.starts_with("tls="));
    assert_eq!(peer_cn(&old), "first.test");

    // Replaced by renames (a new inode each), as deploy tools and certbot do.
    let key = rcgen::KeyPair::generate().unwrap();
    replace_by_rename(&key_path, key.serialize_pem());
    replace_by_rename(
        &cert_path,
        ca.server_pem_for_key(&["third.test", "localhost"], &key),
    );
    wait_for_subject(addr, Some("localhost"), "third.test").await;

    // A key that does not match: the old certificate stays, the error names the file.
    let (c, _) = ca.server_pem(&["mismatch.test", "localhost"]);
    std::fs::write(&cert_path, c).unwrap();
    settle().await;
    assert!(served_subject(addr, Some("localhost"))
        .await
        .contains("third.test"));
    let log = logged();
    assert!(
        log.contains("ERROR")
            && log.contains("could not reload the certificate")
            && log.contains(s(&cert_path)),
        "{log}"
    );
    // The next change is tried again.
    std::fs::write(
        &cert_path,
        ca.server_pem_for_key(&["fourth.test", "localhost"], &key),
    )
    .unwrap();
    wait_for_subject(addr, Some("localhost"), "fourth.test").await;
    assert!(logged().contains("was reloaded from"), "{}", logged());
    server.stop().await;
}

fn pfx(ca: &TestCa, name: &str, cn: &str, password: &str) -> PathBuf {
    let (c, k) = ca.server_pem(&[cn, "localhost"]);
    let cp = ca.write(&format!("{name}.crt.pem"), c);
    let kp = ca.write(&format!("{name}.key.pem"), k);
    let out = ca.path(&format!("{name}.pfx"));
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        s(&cp),
        "-inkey",
        s(&kp),
        "-out",
        s(&out),
        "-passout",
        &format!("pass:{password}"),
    ]);
    out
}

async fn start_host(root: &Path, extra: &[&str]) -> RunningHost {
    // First the binary's log capture: the default builder installs its own
    // console subscriber when the process has none.
    kestrel_test_support::logs::capture();
    let mut args = vec![
        "test".to_string(),
        "--contentRoot".into(),
        root.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    WebHost::create_default_builder(args)
        .use_kestrel(|_| {})
        .configure(|app| {
            app.run(tls_app);
        })
        .build()
        .expect("host builds")
        .start()
        .await
        .expect("host starts")
}

const SETTINGS: &str = r#"{
  "Kestrel": {
    "Endpoints": {
      "Secure": {
        "Url": "https://127.0.0.1:0",
        "Sni": { "sni.test": { "Certificate": { "Path": "sni.pem", "KeyPath": "sni.key" } } }
      }
    },
    "Certificates": { "Default": { "Path": "default.pfx", "Password": "secret" } }
  }
}"#;

fn host_addr(host: &RunningHost) -> SocketAddr {
    host.addresses()[0]
        .trim_start_matches("https://")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn configured_default_pfx_and_sni_pem_are_reloaded() {
    if !have_tool("openssl") {
        return;
    }
    capture_logs();
    let ca = TestCa::new();
    let root = ca.dir.path();
    std::fs::write(root.join("appsettings.json"), SETTINGS).unwrap();
    std::fs::copy(
        pfx(&ca, "d1", "default-one.test", "secret"),
        root.join("default.pfx"),
    )
    .unwrap();
    let (c, k) = ca.server_pem(&["sni-one.test", "sni.test"]);
    ca.write("sni.pem", c);
    ca.write("sni.key", k);
    let host = start_host(root, &[]).await;
    let addr = host_addr(&host);
    assert!(served_subject(addr, None)
        .await
        .contains("default-one.test"));
    assert!(served_subject(addr, Some("sni.test"))
        .await
        .contains("sni-one.test"));

    // Certificates:Default replaced by a rename.
    let next = pfx(&ca, "d2", "default-two.test", "secret");
    replace_by_rename(&root.join("default.pfx"), std::fs::read(next).unwrap());
    wait_for_subject(addr, None, "default-two.test").await;
    // The SNI entry's pair rewritten in place; the default is left alone.
    let (c, k) = ca.server_pem(&["sni-two.test", "sni.test"]);
    let key = rcgen::KeyPair::from_pem(&k).unwrap();
    std::fs::write(root.join("sni.key"), key.serialize_pem()).unwrap();
    std::fs::write(
        root.join("sni.pem"),
        ca.server_pem_for_key(&["sni-two.test", "sni.test"], &key),
    )
    .unwrap();
    drop(c);
    wait_for_subject(addr, Some("sni.test"), "sni-two.test").await;
    assert!(served_subject(addr, None)
        .await
        .contains("default-two.test"));

    // A PFX with another password: refused, the old one stays, the error names the file.
    let wrong = pfx(&ca, "d3", "default-three.test", "other");
    replace_by_rename(&root.join("default.pfx"), std::fs::read(wrong).unwrap());
    settle().await;
    assert!(served_subject(addr, None)
        .await
        .contains("default-two.test"));
    let log = logged();
    let pfx_path = root.join("default.pfx");
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains(s(&pfx_path)) && l.contains("password")),
        "{log}"
    );
    let fixed = pfx(&ca, "d4", "default-four.test", "secret");
    replace_by_rename(&root.join("default.pfx"), std::fs::read(fixed).unwrap());
    wait_for_subject(addr, None, "default-four.test").await;
    host.stop().await;
}

#[tokio::test]
async fn watching_can_be_turned_off_in_configuration() {
    if !have_tool("openssl") {
        return;
    }
    capture_logs();
    let ca = TestCa::new();
    let root = ca.dir.path();
    std::fs::write(root.join("appsettings.json"), SETTINGS).unwrap();
    std::fs::copy(
        pfx(&ca, "d1", "kept.test", "secret"),
        root.join("default.pfx"),
    )
    .unwrap();
    let (c, k) = ca.server_pem(&["sni-kept.test", "sni.test"]);
    ca.write("sni.pem", c);
    ca.write("sni.key", k);
    let host = start_host(root, &["--Kestrel:DisableCertificateFileWatching=true"]).await;
    let addr = host_addr(&host);
    assert!(served_subject(addr, None).await.contains("kept.test"));
    let next = pfx(&ca, "d2", "not-seen.test", "secret");
    replace_by_rename(&root.join("default.pfx"), std::fs::read(next).unwrap());
    settle().await;
    settle().await;
    assert!(served_subject(addr, None).await.contains("kept.test"));
    host.stop().await;
}
