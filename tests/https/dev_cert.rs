//! The development certificate end to end, through the demo binary:
//! `kestrel-demo dev-certs --export <path>` creates and exports it, and
//! `kestrel-demo --urls https://127.0.0.1:0` serves it to `curl --cacert`
//! and to a rustls client that trusts the exported file.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::tls as tls_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{curl, have_tool};
use tls_support::{client_config, https_get, s};

const DEMO: &str = env!("CARGO_BIN_EXE_kestrel-demo");

fn demo(dev_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(DEMO);
    cmd.env("KESTREL_DEV_CERT_DIR", dev_dir)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env_remove("ASPNETCORE_URLS");
    cmd
}

/// Kills the demo server when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn dev_certs_export_then_serve_https_with_the_dev_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dev_dir = tmp.path().join("dev-cert");
    let exported = tmp.path().join("exported.pem");

    let out = demo(&dev_dir)
        .args(["dev-certs", "--export", s(&exported)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Created the development certificate"),
        "{text}"
    );
    let cert_pem = std::fs::read_to_string(&exported).unwrap();
    assert!(
        cert_pem.starts_with("-----BEGIN CERTIFICATE-----"),
        "{cert_pem}"
    );
    assert!(!cert_pem.contains("PRIVATE KEY"), "the export has no key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(&dev_dir.join("localhost.pem")),
            0o600,
            "the key file is private"
        );
        assert_eq!(mode(&dev_dir), 0o700);
    }

    // Reused the second time.
    let out = demo(&dev_dir)
        .args(["dev-certs", "--export", s(&exported)])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Found the development certificate"));
    assert_eq!(std::fs::read_to_string(&exported).unwrap(), cert_pem);

    // Serve https:// with no certificate configured: the dev certificate.
    let mut child = demo(&dev_dir)
        .args(["--urls", "https://127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let port = tokio::task::spawn_blocking(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.split("Now listening on: https://127.0.0.1:").nth(1) {
                let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                return digits.parse::<u16>().unwrap();
            }
        }
        panic!("the demo never reported its https address");
    });
    let port = tokio::time::timeout(Duration::from_secs(30), port)
        .await
        .unwrap()
        .unwrap();

    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let response = https_get(
        addr,
        "localhost",
        client_config(&cert_pem, &["http/1.1"], None),
    )
    .await
    .expect("a rustls client trusting the exported certificate connects");
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("Hosted by Kestrel"), "{response}");

    if have_tool("curl") {
        // curl's default over TLS offers h2 first: the demo answers over
        // HTTP/2; --http1.1 gets HTTP/1.1.
        for (flag, url, status) in [
            (
                "--http2",
                format!("https://127.0.0.1:{port}/"),
                "HTTP/2 200",
            ),
            (
                "--http1.1",
                format!("https://localhost:{port}/"),
                "HTTP/1.1 200",
            ),
        ] {
            let resolve = format!("localhost:{port}:127.0.0.1");
            let out = curl(&[
                "-i",
                flag,
                "--cacert",
                s(&exported),
                "--resolve",
                &resolve,
                &url,
            ])
            .await;
            let body = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{url}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(body.starts_with(status), "{body}");
            assert!(body.contains("Hosted by Kestrel"), "{body}");
            assert!(
                body.contains(&format!("https://127.0.0.1:{port}")),
                "the addresses show https: {body}"
            );
        }
        // Without trusting it, curl refuses the self-signed certificate.
        let out = curl(&[&format!("https://127.0.0.1:{port}/")]).await;
        assert!(!out.status.success());
    }
}
