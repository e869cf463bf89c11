//! A real HAProxy (Debian package `haproxy`) in front of the server with
//! `send-proxy` (v1) and `send-proxy-v2` (with the unique-id and CRC32C
//! TLVs, and health checks, which HAProxy sends as v2 LOCAL): the app sees
//! the client's address, not HAProxy's. Then the demo, configured with
//! `Kestrel:Endpoints:<Name>:ProxyProtocol=Required` and `TrustedProxies`,
//! behind HAProxy (its page shows the client's address), and fed raw bad
//! input directly: each is closed and logged. This is the HAProxy recipe
//! of docs/deployment.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::demo_process;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use kestrel::proxy_protocol::{
    IpNet, ListenOptionsProxyProtocolExt, ProxyCommand, ProxyProtocolFeature, ProxyProtocolOptions,
};
use kestrel::{KestrelServer, KestrelServerOptions, RequestBody, RequestFeaturesExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use support::{curl, have_tool, read_to_close};

/// HAProxy in the foreground (`-db`); killed when dropped.
struct Haproxy {
    child: Child,
    /// Holds the configuration file.
    _dir: tempfile::TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start HAProxy with `body` after the global and default sections; wait
/// until `port` accepts.
fn haproxy(body: &str, port: u16) -> Haproxy {
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "global\n    maxconn 256\n\
         defaults\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\
         {body}"
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, &conf).unwrap();
    let check = Command::new("haproxy")
        .args(["-c", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c: {}\n{conf}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start haproxy");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "haproxy did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Haproxy { child, _dir: dir }
}

fn tcp_frontend(name: &str, port: u16, server: SocketAddr, send: &str) -> String {
    format!(
        "frontend {name}\n    mode tcp\n    bind 127.0.0.1:{port}\n    default_backend {name}_be\n\
         backend {name}_be\n    mode tcp\n    server app {server} {send}\n"
    )
}

#[tokio::test]
async fn haproxy_send_proxy_v1_and_v2_give_the_app_the_clients_address() {
    if !have_tool("haproxy") || !have_tool("curl") {
        return;
    }
    // The app: where the connection comes from, and the LOCAL hits of
    // HAProxy's health checks.
    let locals = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = locals.clone();
    let app = move |req: Request<RequestBody>| {
        let seen = seen.clone();
        async move {
            let info = req.features().and_then(|f| f.connection()).unwrap();
            let pp = info.features().get::<ProxyProtocolFeature>().unwrap();
            if pp.header.command == ProxyCommand::Local {
                seen.lock().unwrap().push(format!(
                    "{} {} remote={}",
                    req.method(),
                    req.uri().path(),
                    info.remote_addr()
                ));
            }
            let body = format!(
                "remote={} local={} version={:?} unique_id={:?} crc32c={}",
                info.remote_addr(),
                info.local_addr(),
                pp.header.version,
                pp.tlvs().unique_id().map(String::from_utf8_lossy),
                pp.tlvs().has_crc32c(),
            );
            Response::new(Full::new(Bytes::from(body)))
        }
    };
    let mut o = KestrelServerOptions::default();
    o.listen(SocketAddr::from(([127, 0, 0, 1], 0)), |l| {
        l.use_proxy_protocol(
            ProxyProtocolOptions::new().trust(IpNet::from(std::net::IpAddr::from([127, 0, 0, 1]))),
        );
    });
    let server = KestrelServer::new(o).start(app).await.unwrap();
    let app_addr = support::addr(&server);

    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let mut body = tcp_frontend("v1", p1, app_addr, "send-proxy");
    body += &tcp_frontend("v2", p2, app_addr, "send-proxy-v2");
    body += &format!(
        "frontend v2http\n    mode http\n    bind 127.0.0.1:{p3}\n    unique-id-format kestrel-%rt\n    default_backend v2http_be\n\
         backend v2http_be\n    mode http\n    option httpchk GET /healthz/ready\n\
         server app {app_addr} send-proxy-v2 proxy-v2-options unique-id,crc32c check inter 200ms\n"
    );
    let _haproxy = haproxy(&body, p3);

    // From 127.0.0.3, so the address can only come from the PROXY header.
    for (port, version) in [(p1, "V1"), (p2, "V2"), (p3, "V2")] {
        let out = curl(&[
            "-i",
            "--interface",
            "127.0.0.3",
            &format!("http://127.0.0.1:{port}/"),
        ])
        .await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("HTTP/1.1 200"), "port {port}: {text}");
        assert!(text.contains("remote=127.0.0.3:"), "port {port}: {text}");
        assert!(
            text.contains(&format!("local=127.0.0.1:{port} version={version}")),
            "port {port}: {text}"
        );
        if port == p3 {
            assert!(text.contains("unique_id=Some(\"kestrel-"), "{text}");
            assert!(text.contains("crc32c=true"), "{text}");
        }
    }
    // HAProxy's health checks arrive as v2 LOCAL and are served with
    // HAProxy's own address.
    let deadline = Instant::now() + Duration::from_secs(10);
    while locals.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no LOCAL health check arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = locals.lock().unwrap()[0].clone();
    assert!(
        first.starts_with("GET /healthz/ready remote=127.0.0.1:"),
        "{first}"
    );
    server.stop().await;
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

/// Connect to `to` from `from` (a loopback address), send `bytes`, and
/// read until the server closes.
async fn send_from(from: &str, to: SocketAddr, bytes: &[u8]) -> String {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut s = sock.connect(to).await.unwrap();
    s.write_all(bytes).await.unwrap();
    read_to_close(&mut s).await
}

#[tokio::test]
async fn the_demo_behind_haproxy_from_configuration_and_bad_input_is_closed_and_logged() {
    if !have_tool("haproxy") || !have_tool("curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = demo_process::command(
        dir.path(),
        &[
            &format!("--Kestrel:Endpoints:Proxied:Url=http://127.0.0.1:{port}"),
            "--Kestrel:Endpoints:Proxied:ProxyProtocol=Required",
            "--Kestrel:Endpoints:Proxied:TrustedProxies=127.0.0.1",
            "--Kestrel:Limits:RequestHeadersTimeout=00:00:01",
        ],
    );
    cmd.env("RUST_LOG", "info,kestrel::connections=debug");
    let demo = demo_process::spawn(cmd);
    let app = addr_of(&demo.listening_on());
    assert_eq!(app.port(), port);

    let front = free_port();
    let _haproxy = haproxy(&tcp_frontend("web", front, app, "send-proxy-v2"), front);
    let out = curl(&[
        "-i",
        "--interface",
        "127.0.0.3",
        &format!("http://127.0.0.1:{front}/"),
    ])
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{text}\n{}",
        demo.output()
    );
    assert!(text.contains("Hosted by Kestrel"), "{text}");
    assert!(text.contains("Client address: 127.0.0.3"), "{text}");
    demo.wait_for("PROXY header: client 127.0.0.3:");

    // Raw input straight to the endpoint (from 127.0.0.1, a trusted proxy).
    let get = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_eq!(send_from("127.0.0.1", app, get).await, "");
    demo.wait_for("the connection does not start with a PROXY protocol header");
    let mut v2_bad_version = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2_bad_version.extend_from_slice(&[0x31, 0x11, 0, 12]);
    v2_bad_version.extend_from_slice(&[0; 12]);
    assert_eq!(send_from("127.0.0.1", app, &v2_bad_version).await, "");
    demo.wait_for("unsupported PROXY v2 version 3");
    let mut v2_bad_command = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2_bad_command.extend_from_slice(&[0x22, 0x11, 0, 12]);
    assert_eq!(send_from("127.0.0.1", app, &v2_bad_command).await, "");
    demo.wait_for("unknown PROXY v2 command 2");
    let mut oversized = b"PROXY TCP4 ".to_vec();
    oversized.resize(300, b'7');
    assert_eq!(send_from("127.0.0.1", app, &oversized).await, "");
    demo.wait_for("the PROXY v1 header is longer than 107 bytes");
    // Not a trusted proxy.
    let line = b"PROXY TCP4 198.51.100.1 127.0.0.1 1000 80\r\n";
    assert_eq!(
        send_from("127.0.0.2", app, &[&line[..], &get[..]].concat()).await,
        ""
    );
    demo.wait_for("the peer 127.0.0.2:");
    demo.wait_for("is not a trusted proxy");
    // A header trickled past the 1 s request-headers timeout.
    let mut s = TcpStream::connect(app).await.unwrap();
    let t = Instant::now();
    for b in b"PROXY TCP4 198.51.100.1 127.0.0.1 1000 80\r\n" {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if t.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    demo.wait_for("no complete PROXY header within 1s");
    let elapsed = t.elapsed();
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    // HAProxy still gets through.
    let out = curl(&[
        "--interface",
        "127.0.0.3",
        &format!("http://127.0.0.1:{front}/"),
    ])
    .await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Client address: 127.0.0.3"),
        "{}",
        demo.output()
    );
}
