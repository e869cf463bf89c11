//! Shared helpers for the workspace integration tests (the `kestrel-demo`
//! package's `tests/`), one crate as h2's `tests/h2-support` is: start a
//! server on an ephemeral loopback port, talk raw bytes to it, and run real
//! clients (curl, Python). The modules hold the rest: [`h2client`] and
//! [`h2wire`] for HTTP/2, [`http1client`] for parsed HTTP/1.1 replies,
//! [`tls`] for test certificates and TLS clients, [`demo_process`] for the
//! `kestrel-demo` binary as a child process, and [`logs`] for the one global
//! log capture a test binary may have.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod demo_process;
pub mod h2client;
pub mod h2wire;
pub mod http1client;
pub mod logs;
pub mod tls;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use kestrel::{Application, KestrelServer, KestrelServerOptions, RequestBody, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Start `app` on `http://127.0.0.1:0` with options adjusted by `configure`
/// and a fast (50 ms) heartbeat so that configured timeouts elapse quickly.
pub async fn start<A: Application>(
    configure: impl FnOnce(&mut KestrelServerOptions),
    app: A,
) -> RunningServer {
    let mut options = KestrelServerOptions::default();
    configure(&mut options);
    KestrelServer::new(options)
        .urls(["http://127.0.0.1:0"])
        .heartbeat_interval(Duration::from_millis(50))
        .start(app)
        .await
        .expect("server starts")
}

/// The first bound address as a socket address.
pub fn addr(server: &RunningServer) -> SocketAddr {
    let first = server
        .addresses()
        .iter()
        .next()
        .expect("an address")
        .as_str()
        .to_string();
    first
        .trim_start_matches("http://")
        .parse()
        .expect("an IP address")
}

/// A plain hello-world app.
pub async fn hello(_req: Request<RequestBody>) -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from_static(b"Hello, World!")))
}

/// Send `bytes`, then read until the server closes (or 10 s pass).
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    read_to_close(&mut s).await
}

/// Read until EOF (or a reset), failing after 10 s.
pub async fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the server closes the connection within 10 s");
    String::from_utf8_lossy(&out).into_owned()
}

/// Read from `s` until `needle` has been seen, failing after 10 s.
pub async fn read_until(s: &mut TcpStream, needle: &str) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let read = async {
        loop {
            let text = String::from_utf8_lossy(&out);
            if text.contains(needle) {
                return text.into_owned();
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return String::from_utf8_lossy(&out).into_owned(),
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| panic!("did not see {needle:?} within 10 s"))
}

/// Whether a peer tool is installed. When it is not: under CI (`CI=true`)
/// that is a failure; on a developer box the test is skipped, loudly.
pub fn have_tool(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("{tool} is required under CI but is not installed (see .ci/run)");
        }
        eprintln!("\n!!! SKIPPING: `{tool}` is not installed; this interop test did not run !!!\n");
    }
    found
}

/// Run curl with `args` off the async runtime's threads.
pub async fn curl(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "20"])
            .args(&args)
            .output()
            .expect("run curl")
    })
    .await
    .expect("join curl")
}

/// The status line's code of a raw response.
pub fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"))
}

/// Whether `python3` can import every module of `modules`. When it cannot:
/// under CI (`CI=true`) that is a failure; on a developer box the test is
/// skipped, loudly (`.ci/run` shows the `pip install` that makes it run).
pub fn have_python_modules(modules: &[&str]) -> bool {
    let probe = format!("import {}", modules.join(", "));
    let found = Command::new("python3")
        .args(["-c", &probe])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!(
                "python3 with {modules:?} is required under CI but is not installed (see .ci/run)"
            );
        }
        eprintln!(
            "\n!!! SKIPPING: python3 cannot import {modules:?}; this interop test did not run \
             (.ci/run shows the pip install) !!!\n"
        );
    }
    found
}

/// Run the Python peer `tests/python/{script}` with `args` off the runtime's
/// threads and return its `key=value` output lines as a map, failing the test
/// with its output when it exits unsuccessfully or runs past 60 s.
pub async fn python(script: &str, args: &[String]) -> std::collections::BTreeMap<String, String> {
    // The scripts live in `tests/python/`, beside this crate's `tests/support/`.
    let script = format!("{}/../python/{script}", env!("CARGO_MANIFEST_DIR"));
    let args = args.to_vec();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg("60")
            .arg("python3")
            .arg(&script)
            .args(&args)
            .output()
            .expect("run python3")
    })
    .await
    .expect("join python3");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python3 failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
