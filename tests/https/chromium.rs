//! A real browser: Debian's `chromium`, headless, loads a test page from
//! `https://127.0.0.1:<port>` over HTTP/3 (forced onto QUIC for the origin
//! with `--origin-to-force-quic-on`), over HTTP/2 and over HTTP/1.1 (an
//! endpoint with HTTP/1.1 only). The page's script posts a 1 MiB body to the
//! demo's `/echo` with `fetch` and compares what comes back, runs a
//! WebSocket echo against the demo's `/ws`, reads the protocol of the
//! navigation and of the fetch (`nextHopProtocol`), and posts its results to
//! `/report`. The server records the HTTP version of every request it
//! serves, so both ends say which protocol was used.
//!
//! The certificate is trusted by its SPKI hash
//! (`--ignore-certificate-errors-spki-list`); it has an IP SAN for
//! 127.0.0.1. Every browser run has a fresh `--user-data-dir`, the flags
//! this machine needs (no background networking), and a 60 s bound; the
//! browser's process group is killed when the run ends, however it ends.
//! Skips loudly without `chromium`; fails under `CI=true` (`.ci/run`
//! installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::tls as tls_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Either, Full};
use kestrel::tls::{Certificate, HttpsOptions};
use kestrel::{HttpProtocols, KestrelServer, KestrelServerOptions, RequestBody};
use kestrel_demo::DemoBody;
use tls_support::TestCa;

/// How long one browser run may take, page load to report.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The test page: its script runs the checks and posts the results.
const PAGE: &str = r#"<!DOCTYPE html>
<html><head><title>Kestrel browser test</title></head><body>
<p id="status">running</p>
<script>
(async () => {
  const r = {};
  try {
    const nav = performance.getEntriesByType('navigation')[0];
    r.navigation = nav ? nav.nextHopProtocol : 'none';
    const size = 1024 * 1024;
    const sent = new Uint8Array(size);
    for (let i = 0; i < size; i++) sent[i] = (i * 7 + 3) & 255;
    const resp = await fetch('/echo', {
      method: 'POST',
      body: sent,
      headers: { 'content-type': 'application/octet-stream' },
    });
    r.echo_status = resp.status;
    const back = new Uint8Array(await resp.arrayBuffer());
    r.echo_len = back.length;
    let same = back.length === size;
    for (let i = 0; same && i < size; i++) if (back[i] !== sent[i]) same = false;
    r.echo_equal = same;
    const entry = performance.getEntriesByType('resource').find((e) => e.name.endsWith('/echo'));
    r.echo_protocol = entry ? entry.nextHopProtocol : 'none';
    r.ws = await new Promise((resolve) => {
      const ws = new WebSocket(`wss://${location.host}/ws`);
      const timer = setTimeout(() => resolve('timeout'), 10000);
      ws.onopen = () => ws.send('ping from chromium');
      ws.onmessage = (e) => { clearTimeout(timer); resolve(String(e.data)); ws.close(); };
      ws.onerror = () => { clearTimeout(timer); resolve('error'); };
    });
  } catch (e) {
    r.error = String(e);
  }
  await fetch('/report', { method: 'POST', body: JSON.stringify(r) });
  document.getElementById('status').textContent = 'done';
})();
</script>
</body></html>
"#;

/// What the server saw: every request's path and version, and the reports.
#[derive(Default)]
struct Seen {
    requests: Mutex<Vec<(String, Version)>>,
    report: tokio::sync::Notify,
    reports: Mutex<Vec<serde_json::Value>>,
}

impl Seen {
    fn versions_of(&self, path: &str) -> Vec<Version> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| *v)
            .collect()
    }
}

fn full(status: u16, body: impl Into<Bytes>, content_type: &'static str) -> Response<DemoBody> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .body(Either::Left(Full::new(body.into())))
        .unwrap()
}

/// `/page` and `/report` are the test's; the rest is the demo app (`/echo`,
/// `/ws`, the sample page).
async fn app(seen: Arc<Seen>, req: Request<RequestBody>) -> Response<DemoBody> {
    seen.requests
        .lock()
        .unwrap()
        .push((req.uri().path().to_string(), req.version()));
    match req.uri().path() {
        "/page" => full(200, PAGE, "text/html; charset=utf-8"),
        "/report" => {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| serde_json::json!({ "unparsable": e.to_string() }));
            seen.reports.lock().unwrap().push(value);
            seen.report.notify_one();
            full(204, Bytes::new(), "text/plain")
        }
        "/favicon.ico" => full(404, Bytes::new(), "text/plain"),
        _ => kestrel_demo::app(req).await,
    }
}

/// A server certificate for 127.0.0.1 (and localhost) and the base64
/// SHA-256 of its SubjectPublicKeyInfo, as Chromium's
/// `--ignore-certificate-errors-spki-list` takes it.
fn certificate(ca: &TestCa) -> (Certificate, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = ca.server_pem_for_key(&["127.0.0.1", "localhost"], &key);
    let cert = Certificate::from_pem(pem.as_bytes(), key.serialize_pem().as_bytes()).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &key.public_key_der());
    let spki = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
    (cert, spki)
}

async fn start(
    protocols: HttpProtocols,
    cert: Certificate,
    seen: Arc<Seen>,
) -> kestrel::RunningServer {
    use kestrel::tls::ListenOptionsHttpsExt;
    let mut options = KestrelServerOptions::default();
    options.listen((std::net::Ipv4Addr::LOCALHOST, 0), |l| {
        l.protocols = protocols;
        l.use_https(HttpsOptions::new().with_certificate(cert));
    });
    KestrelServer::new(options)
        .heartbeat_interval(Duration::from_millis(50))
        .start(move |req| app(seen.clone(), req))
        .await
        .expect("server starts")
}

/// A headless Chromium in a process group of its own; dropping it kills the
/// group (the browser and the helper processes it started).
struct Browser {
    child: Child,
    log: PathBuf,
}

impl Browser {
    fn launch(url: &str, spki: &str, profile: &Path, extra: &[String]) -> Browser {
        use std::os::unix::process::CommandExt;
        let log = profile.with_extension("log");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new("chromium");
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--ignore-certificate-errors-spki-list={spki}"))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0);
        Browser {
            child: cmd.spawn().expect("spawn chromium"),
            log,
        }
    }

    /// The end of the browser's log, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group's id is the browser's pid (process_group(0)).
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// One browser at a time: three at once on a small machine only make each
/// of them slower.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Load `/page` in a fresh headless Chromium and return its report.
async fn run_page(
    addr: SocketAddr,
    spki: &str,
    seen: &Seen,
    extra: &[String],
) -> serde_json::Value {
    let _one = ONE_BROWSER.lock().await;
    let profile_root = tempfile::tempdir().unwrap();
    let profile = profile_root.path().join("profile");
    let url = format!("https://127.0.0.1:{}/page", addr.port());
    let browser = Browser::launch(&url, spki, &profile, extra);
    let reported = tokio::time::timeout(RUN_LIMIT, async {
        loop {
            let notified = seen.report.notified();
            if let Some(r) = seen.reports.lock().unwrap().pop() {
                return r;
            }
            notified.await;
        }
    })
    .await;
    match reported {
        Ok(report) => {
            drop(browser);
            report
        }
        Err(_) => panic!(
            "no report from the page within {RUN_LIMIT:?}; requests seen: {:?}\nchromium's log:\n{}",
            seen.requests.lock().unwrap(),
            browser.log_tail()
        ),
    }
}

/// The checks every protocol shares: the 1 MiB echo came back equal, and the
/// WebSocket echo answered.
fn check_page(report: &serde_json::Value, protocol: &str) {
    assert!(report.get("error").is_none(), "{report}");
    assert_eq!(report["navigation"], protocol, "{report}");
    assert_eq!(report["echo_protocol"], protocol, "{report}");
    assert_eq!(report["echo_status"], 200, "{report}");
    assert_eq!(report["echo_len"], 1024 * 1024, "{report}");
    assert_eq!(report["echo_equal"], true, "{report}");
    assert_eq!(report["ws"], "ping from chromium", "{report}");
}

#[tokio::test]
async fn chromium_loads_a_page_over_http3_and_posts_1_mib() {
    if !support::have_tool("chromium") {
        return;
    }
    let ca = TestCa::new();
    let (cert, spki) = certificate(&ca);
    let seen = Arc::new(Seen::default());
    let server = start(HttpProtocols::HTTP1_AND_HTTP2_AND_HTTP3, cert, seen.clone()).await;
    let addr = tls_support::addr(&server);
    assert_eq!(server.http3_addresses(), vec![addr]);
    let force_quic = format!("--origin-to-force-quic-on=127.0.0.1:{}", addr.port());
    let report = run_page(addr, &spki, &seen, &[force_quic]).await;
    eprintln!("chromium reported: {report}");
    check_page(&report, "h3");
    // The server's side: the page, the 1 MiB echo and the report came over
    // HTTP/3.
    for path in ["/page", "/echo", "/report"] {
        let versions = seen.versions_of(path);
        assert!(
            !versions.is_empty() && versions.iter().all(|v| *v == Version::HTTP_3),
            "{path}: {versions:?}"
        );
    }
    // The WebSocket went over TCP (Chromium has no WebSockets over HTTP/3;
    // with no HTTP/2 connection open to the origin, it uses HTTP/1.1).
    let ws = seen.versions_of("/ws");
    assert!(ws.len() == 1 && ws[0] != Version::HTTP_3, "{ws:?}");
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("the server stops");
}

#[tokio::test]
async fn chromium_loads_the_page_over_http2_with_a_websocket_echo() {
    if !support::have_tool("chromium") {
        return;
    }
    let ca = TestCa::new();
    let (cert, spki) = certificate(&ca);
    let seen = Arc::new(Seen::default());
    let server = start(HttpProtocols::HTTP1_AND_HTTP2, cert, seen.clone()).await;
    let addr = tls_support::addr(&server);
    let report = run_page(addr, &spki, &seen, &[]).await;
    eprintln!("chromium reported: {report}");
    check_page(&report, "h2");
    for path in ["/page", "/echo", "/report"] {
        assert!(
            seen.versions_of(path).iter().all(|v| *v == Version::HTTP_2),
            "{path}: {:?}",
            seen.versions_of(path)
        );
    }
    // Chromium opens the WebSocket with an extended CONNECT (RFC 8441) on
    // the HTTP/2 connection.
    assert_eq!(seen.versions_of("/ws"), vec![Version::HTTP_2]);
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("the server stops");
}

#[tokio::test]
async fn chromium_loads_the_page_over_http1_with_a_websocket_echo() {
    if !support::have_tool("chromium") {
        return;
    }
    let ca = TestCa::new();
    let (cert, spki) = certificate(&ca);
    let seen = Arc::new(Seen::default());
    let server = start(HttpProtocols::HTTP1, cert, seen.clone()).await;
    let addr = tls_support::addr(&server);
    let report = run_page(addr, &spki, &seen, &[]).await;
    eprintln!("chromium reported: {report}");
    check_page(&report, "http/1.1");
    for path in ["/page", "/echo", "/report", "/ws"] {
        let versions = seen.versions_of(path);
        assert!(
            !versions.is_empty() && versions.iter().all(|v| *v == Version::HTTP_11),
            "{path}: {versions:?}"
        );
    }
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("the server stops");
}
