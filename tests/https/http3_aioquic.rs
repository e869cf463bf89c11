//! HTTP/3 with a second, independent client: Python's `aioquic` (its
//! `H3Connection` client, `tests/python/aioquic_peer.py`) on one QUIC
//! connection — GET, a 1 MiB POST echoed, eight concurrent streams, a 404,
//! and the server's SETTINGS as aioquic read them — against a
//! `KestrelServer` in the test, and against the demo binary on
//! `https://localhost:<port>` with its development certificate, over both
//! 127.0.0.1 and ::1. Skips loudly without aioquic; fails under `CI=true`
//! (`.ci/run` installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::tls as tls_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kestrel::tls::HttpsOptions;
use kestrel::{HttpProtocols, KestrelServer, KestrelServerOptions, RequestBody};
use support::{have_python_modules, python};
use tls_support::{s, TestCa};

/// `/`: the version and the target; `/echo`: the body back; else 404.
async fn app(req: Request<RequestBody>) -> Response<Full<Bytes>> {
    let version = format!("{:?}", req.version());
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    match req.uri().path() {
        "/" => Response::builder()
            .header("x-version", &version)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(format!(
                "hello over {version} at {target}"
            ))))
            .unwrap(),
        "/echo" => {
            let content_type = req.headers().get("content-type").cloned();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let mut r = Response::builder().header("x-version", &version);
            if let Some(ct) = content_type {
                r = r.header("content-type", ct);
            }
            r.body(Full::new(body)).unwrap()
        }
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("x-version", &version)
            .body(Full::new(Bytes::from_static(b"not found")))
            .unwrap(),
    }
}

/// Run the aioquic peer against `host:port`, verifying the certificate for
/// `server_name` with `cafile`.
async fn aioquic(
    host: &str,
    port: u16,
    server_name: &str,
    cafile: &str,
) -> BTreeMap<String, String> {
    let out = python(
        "aioquic_peer.py",
        &[
            host.to_string(),
            port.to_string(),
            server_name.to_string(),
            cafile.to_string(),
        ],
    )
    .await;
    assert_eq!(
        out.get("done").map(String::as_str),
        Some("true"),
        "{out:#?}"
    );
    assert_eq!(out["alpn"], "h3", "{out:#?}");
    out
}

/// A JSON string printed by the peer, decoded.
fn body(out: &BTreeMap<String, String>, name: &str) -> String {
    serde_json::from_str(&out[&format!("{name}.body")]).unwrap()
}

/// What every run checks, whichever server: the 1 MiB echo came back intact
/// on its own stream, the eight concurrent requests each got their own
/// answer on one connection (distinct client-initiated bidirectional stream
/// ids), and the server's SETTINGS.
fn check_common(out: &BTreeMap<String, String>) {
    assert_eq!(out["post.header.:status"], "200", "{out:#?}");
    assert_eq!(out["post.len"], (1024 * 1024).to_string());
    assert_eq!(out["post.sha256"], out["post.sent_sha256"]);
    assert_eq!(out["post.header.content-type"], "application/octet-stream");

    let mut streams = std::collections::BTreeSet::new();
    for name in ["get", "post", "missing"]
        .into_iter()
        .map(String::from)
        .chain((0..8).map(|i| format!("multi{i}")))
    {
        assert_eq!(out[&format!("{name}.header.server")], "Kestrel", "{name}");
        assert!(out.contains_key(&format!("{name}.header.date")), "{name}");
        let id: u64 = out[&format!("{name}.stream")].parse().unwrap();
        assert_eq!(id % 4, 0, "a client-initiated bidirectional stream");
        assert!(streams.insert(id), "stream {id} used twice");
    }
    for i in 0..8 {
        let name = format!("multi{i}");
        assert_eq!(out[&format!("{name}.header.:status")], "200");
        assert!(
            body(out, &name).contains(&format!("/?n={i}")),
            "{name}: {}",
            body(out, &name)
        );
    }
    assert_eq!(out["missing.header.:status"], "404");

    // The server's SETTINGS: the field-section limit is
    // `max_request_headers_total_size` (32 KiB), and no dynamic QPACK table.
    assert_eq!(out["settings.MAX_FIELD_SECTION_SIZE"], "32768", "{out:#?}");
    assert_eq!(
        out.get("settings.QPACK_MAX_TABLE_CAPACITY")
            .map(String::as_str)
            .unwrap_or("0"),
        "0"
    );
}

#[tokio::test]
async fn aioquic_http3_client_against_kestrel_server() {
    if !have_python_modules(&["aioquic"]) {
        return;
    }
    use kestrel::tls::ListenOptionsHttpsExt;
    let ca = TestCa::new();
    let mut options = KestrelServerOptions::default();
    options.listen((std::net::Ipv4Addr::LOCALHOST, 0), |l| {
        l.protocols = HttpProtocols::HTTP1_AND_HTTP2_AND_HTTP3;
        l.use_https(HttpsOptions::new().with_certificate(ca.server_cert(&["localhost"])));
    });
    let server = KestrelServer::new(options)
        .heartbeat_interval(Duration::from_millis(50))
        .start(app)
        .await
        .expect("server starts");
    let addr: SocketAddr = tls_support::addr(&server);

    let out = aioquic("127.0.0.1", addr.port(), "localhost", s(&ca.ca_path())).await;
    assert_eq!(out["get.header.:status"], "200", "{out:#?}");
    assert_eq!(out["get.header.x-version"], "HTTP/3.0");
    assert_eq!(out["get.header.content-type"], "text/plain");
    let expected = "hello over HTTP/3.0 at /";
    assert_eq!(body(&out, "get"), expected);
    assert_eq!(out["get.header.content-length"], expected.len().to_string());
    assert_eq!(out["post.header.x-version"], "HTTP/3.0");
    assert_eq!(body(&out, "missing"), "not found");
    check_common(&out);
    // The peer closed its connection; the server's count drops to 0.
    tokio::time::timeout(Duration::from_secs(10), async {
        while server.live_connections() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the peer's close ends the server's connection");
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("the server stops");
}

/// A port free for TCP and UDP on both 127.0.0.1 and ::1 (the demo's
/// `localhost` binds all four).
fn free_localhost_port() -> u16 {
    for _ in 0..50 {
        let probe = std::net::TcpListener::bind("[::1]:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("::1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free port on localhost");
}

/// The README's command, `--Kestrel:Endpoints:H3:Url=https://localhost:<port>
/// --Kestrel:Endpoints:H3:Protocols=Http1AndHttp2AndHttp3`, serves the
/// sample page and `/echo` over HTTP/3 with the development certificate on
/// 127.0.0.1 and on ::1.
#[tokio::test]
async fn aioquic_against_the_demo_on_localhost_with_the_dev_certificate() {
    if !have_python_modules(&["aioquic"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dev_dir = tmp.path().join("dev-cert");
    let exported = tmp.path().join("dev-cert.pem");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kestrel-demo"))
        .env("KESTREL_DEV_CERT_DIR", &dev_dir)
        .args(["dev-certs", "--export", s(&exported)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let port = free_localhost_port();
    let mut cmd = support::demo_process::command(
        tmp.path(),
        &[
            &format!("--Kestrel:Endpoints:H3:Url=https://localhost:{port}"),
            "--Kestrel:Endpoints:H3:Protocols=Http1AndHttp2AndHttp3",
        ],
    );
    cmd.env("KESTREL_DEV_CERT_DIR", &dev_dir)
        .env("NO_COLOR", "1");
    let demo = support::demo_process::spawn(cmd);
    // Both UDP sockets are reported.
    demo.wait_for(&format!("127.0.0.1:{port}"));
    let log = demo.wait_for("HTTP/3");
    assert!(log.contains(&port.to_string()), "{log}");

    for host in ["127.0.0.1", "::1"] {
        let out = aioquic(host, port, "localhost", s(&exported)).await;
        assert_eq!(out["get.header.:status"], "200", "{host}: {out:#?}");
        let page = body(&out, "get");
        assert!(page.contains("Hosted by Kestrel"), "{page}");
        assert!(
            page.contains(&format!("https://localhost:{port}/")),
            "the request URL: {page}"
        );
        assert!(
            out["get.header.content-type"].starts_with("text/html"),
            "{out:#?}"
        );
        check_common(&out);
    }
    drop(demo);
}
