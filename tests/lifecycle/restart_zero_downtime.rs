//! Zero-downtime restart (`kill -USR2`): the demo binary hands its TCP and
//! Unix socket listeners to a new process of itself, which takes over, while
//! clients keep opening connections and sending keep-alive HTTP/1.1 and
//! HTTP/2 requests; three restarts in a row lose no request and refuse no
//! connection. A new process that fails to start leaves the old one serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support::demo_process;
use kestrel_test_support::h2client;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

#[derive(Default)]
struct Figures {
    ok_h1_tcp: AtomicU64,
    ok_h1_unix: AtomicU64,
    ok_h2: AtomicU64,
    connections: AtomicU64,
    /// Requests not processed by the server and safely retried on a new
    /// connection: an idle keep-alive connection closed by the draining
    /// process before any response byte (RFC 9112 §9.3.1), or an HTTP/2
    /// stream above the GOAWAY's last stream id (RFC 9113 §8.7).
    retried_h1: AtomicU64,
    retried_h2: AtomicU64,
    refused: Mutex<Vec<String>>,
    failed: Mutex<Vec<String>>,
}

enum Outcome {
    Ok {
        close: bool,
    },
    /// Nothing came back on a reused connection: the server closed it idle.
    NotProcessed,
    Failed(String),
}

async fn h1_request<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, reused: bool) -> Outcome {
    if let Err(e) = s
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
    {
        return if reused {
            Outcome::NotProcessed
        } else {
            Outcome::Failed(format!("write: {e}"))
        };
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let read = async {
        loop {
            let n = match s.read(&mut chunk).await {
                Ok(n) => n,
                Err(_) if buf.is_empty() && reused => return Outcome::NotProcessed,
                Err(e) => return Outcome::Failed(format!("read: {e}")),
            };
            if n == 0 {
                return if buf.is_empty() && reused {
                    Outcome::NotProcessed
                } else {
                    Outcome::Failed(format!("closed after {:?}", String::from_utf8_lossy(&buf)))
                };
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let lower = head.to_ascii_lowercase();
                let len: usize = lower
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    if !head.starts_with("HTTP/1.1 200") {
                        return Outcome::Failed(head.to_string());
                    }
                    return Outcome::Ok {
                        close: lower.contains("connection: close"),
                    };
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| Outcome::Failed("timed out".into()))
}

async fn h1_client(target: Target, figures: Arc<Figures>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let mut stream: Box<dyn Io> = match &target {
            Target::Tcp(a) => match TcpStream::connect(a).await {
                Ok(s) => Box::new(s),
                Err(e) => {
                    figures.refused.lock().unwrap().push(format!("{a}: {e}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            Target::Unix(p) => match UnixStream::connect(p).await {
                Ok(s) => Box::new(s),
                Err(e) => {
                    figures
                        .refused
                        .lock()
                        .unwrap()
                        .push(format!("{}: {e}", p.display()));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        figures.connections.fetch_add(1, Ordering::Relaxed);
        for i in 0..20 {
            match h1_request(&mut stream, i > 0).await {
                Outcome::Ok { close } => {
                    match target {
                        Target::Tcp(_) => figures.ok_h1_tcp.fetch_add(1, Ordering::Relaxed),
                        Target::Unix(_) => figures.ok_h1_unix.fetch_add(1, Ordering::Relaxed),
                    };
                    if close {
                        break;
                    }
                }
                Outcome::NotProcessed => {
                    figures.retried_h1.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Outcome::Failed(e) => {
                    figures.failed.lock().unwrap().push(e);
                    break;
                }
            }
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[derive(Clone)]
enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

async fn h2_client(addr: SocketAddr, figures: Arc<Figures>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let tcp = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => {
                figures
                    .refused
                    .lock()
                    .unwrap()
                    .push(format!("h2 {addr}: {e}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (send, conn) = match h2::client::handshake(tcp).await {
            Ok(x) => x,
            Err(e) => {
                figures
                    .failed
                    .lock()
                    .unwrap()
                    .push(format!("h2 handshake: {e}"));
                continue;
            }
        };
        tokio::spawn(async move {
            let _ = conn.await;
        });
        figures.connections.fetch_add(1, Ordering::Relaxed);
        let mut send = match send.ready().await {
            Ok(s) => s,
            Err(e) => {
                // GOAWAY before the first request: nothing was processed.
                figures.retried_h2.fetch_add(1, Ordering::Relaxed);
                let _ = e;
                continue;
            }
        };
        for _ in 0..50 {
            let sent = send.send_request(h2client::request("GET", "/"), true);
            let resp = match sent {
                Ok((resp, _)) => resp,
                Err(_) => {
                    // Refused locally: the connection is going away; never sent.
                    figures.retried_h2.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            };
            let result = async {
                let resp = resp.await?;
                let status = resp.status();
                h2client::read_body(resp.into_body()).await?;
                Ok::<_, h2::Error>(status)
            };
            match tokio::time::timeout(Duration::from_secs(10), result).await {
                Ok(Ok(status)) if status == 200 => {
                    figures.ok_h2.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Ok(status)) => figures
                    .failed
                    .lock()
                    .unwrap()
                    .push(format!("h2 status {status}")),
                Ok(Err(e)) if e.is_go_away() || e.reason() == Some(h2::Reason::REFUSED_STREAM) => {
                    figures.retried_h2.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(Err(e)) => {
                    figures.failed.lock().unwrap().push(format!("h2: {e}"));
                    break;
                }
                Err(_) => {
                    figures.failed.lock().unwrap().push("h2: timed out".into());
                    break;
                }
            }
            send = match send.ready().await {
                Ok(s) => s,
                Err(_) => break,
            };
        }
    }
}

/// Kills the process whose pid it holds when dropped (a failed test must not
/// leave a server behind: the restarted processes are not our children).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !exited(self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid} failed");
}

/// Whether `pid` has exited (gone, or a zombie nobody reaped yet).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Err(_) => true,
        Ok(s) => s
            .lines()
            .any(|l| l.starts_with("State:") && (l.contains("Z") || l.contains("X"))),
    }
}

fn wait_exited(pid: u32, demo: &demo_process::Demo) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !exited(pid) {
        assert!(
            Instant::now() < deadline,
            "process {pid} did not exit; output:\n{}",
            demo.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn new_pid(line: &str) -> u32 {
    line.split("the new process ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_demo(root: &Path, port: u16, sock: &Path, notify: Option<&Path>) -> demo_process::Demo {
    let urls = format!("http://127.0.0.1:{port};http://unix:{}", sock.display());
    let mut cmd = demo_process::command(
        root,
        &[
            "--urls",
            &urls,
            "--shutdownTimeoutSeconds",
            "10",
            "--hostBuilder:reloadConfigOnChange=false",
        ],
    );
    if let Some(n) = notify {
        cmd.env("NOTIFY_SOCKET", n);
    }
    let demo = demo_process::spawn(cmd);
    demo.wait_for("Application started");
    demo
}

/// A stand-in for systemd's notification socket: every datagram received.
fn notify_listener(path: &Path) -> Arc<Mutex<Vec<String>>> {
    let socket = std::os::unix::net::UnixDatagram::bind(path).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            out.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    seen
}

/// How many restarts in a row.
const ROUNDS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_under_load_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sock = dir.path().join("k.sock");
    let notify_path = dir.path().join("systemd-notify.sock");
    let notified = notify_listener(&notify_path);
    let mut demo = start_demo(dir.path(), port, &sock, Some(&notify_path));
    let tcp: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let figures = Arc::new(Figures::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..2 {
        clients.push(tokio::spawn(h1_client(
            Target::Tcp(tcp),
            figures.clone(),
            stop.clone(),
        )));
        clients.push(tokio::spawn(h2_client(tcp, figures.clone(), stop.clone())));
    }
    clients.push(tokio::spawn(h1_client(
        Target::Unix(sock.clone()),
        figures.clone(),
        stop.clone(),
    )));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut pid = demo.child.id();
    let first = pid;
    let mut pids = vec![pid];
    let mut guards = Vec::new();
    for round in 0..ROUNDS {
        signal(pid, "-USR2");
        let line =
            tokio::task::block_in_place(|| demo.wait_for("is ready and serves every endpoint"));
        let next = new_pid(&line);
        assert_ne!(next, pid);
        guards.push(KillOnDrop(next));
        if round == 0 {
            let status = tokio::task::block_in_place(|| demo.wait_exit(Duration::from_secs(30)));
            assert!(
                status.is_some_and(|s| s.success()),
                "{status:?}\n{}",
                demo.output()
            );
        } else {
            tokio::task::block_in_place(|| wait_exited(pid, &demo));
        }
        assert!(sock.exists(), "the Unix socket file survives the hand-over");
        pid = next;
        pids.push(pid);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let ok_tcp = figures.ok_h1_tcp.load(Ordering::Relaxed);
    let ok_unix = figures.ok_h1_unix.load(Ordering::Relaxed);
    let ok_h2 = figures.ok_h2.load(Ordering::Relaxed);
    let refused = figures.refused.lock().unwrap().clone();
    let failed = figures.failed.lock().unwrap().clone();
    eprintln!(
        "{ROUNDS} restarts ({first} -> … -> {pid}): {} requests served (HTTP/1.1 TCP {ok_tcp}, HTTP/1.1 Unix {ok_unix}, HTTP/2 {ok_h2}) on {} connections; {} failed, {} refused connections; retried because the server had not processed them: {} HTTP/1.1 (idle keep-alive connection closed by the draining process), {} HTTP/2 (GOAWAY)",
        ok_tcp + ok_unix + ok_h2,
        figures.connections.load(Ordering::Relaxed),
        failed.len(),
        refused.len(),
        figures.retried_h1.load(Ordering::Relaxed),
        figures.retried_h2.load(Ordering::Relaxed),
    );
    // The last process serves, then shuts down and removes the socket file.
    signal(pid, "-TERM");
    tokio::task::block_in_place(|| wait_exited(pid, &demo));
    assert!(
        failed.is_empty(),
        "failed requests: {failed:?}\n{}",
        demo.output()
    );
    assert!(refused.is_empty(), "refused connections: {refused:?}");
    assert!(ok_tcp > 0 && ok_unix > 0 && ok_h2 > 0);
    assert!(!sock.exists(), "the last process removes the socket file");
    // systemd (NotifyAccess=all) hears READY=1 once, then each new MAINPID
    // (sent by the process being replaced), then the last one's STOPPING=1.
    let mut want = vec!["READY=1".to_string()];
    want.extend(pids[1..].iter().map(|p| format!("MAINPID={p}")));
    want.push("STOPPING=1".into());
    let deadline = Instant::now() + Duration::from_secs(5);
    while notified.lock().unwrap().len() < want.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(*notified.lock().unwrap(), want);
}

#[test]
fn a_new_process_that_fails_to_start_leaves_the_old_one_serving() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sock = dir.path().join("k.sock");
    let mut demo = start_demo(dir.path(), port, &sock, None);
    // The new process will read this and refuse to start (exit status 2).
    std::fs::write(dir.path().join("appsettings.json"), "{ not json").unwrap();
    signal(demo.child.id(), "-USR2");
    let line = demo.wait_for("zero-downtime restart failed");
    assert!(line.contains("exited before it was ready"), "{line}");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("still listening");
    use std::io::{Read, Write};
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(sock.exists());
    assert!(
        demo.child.try_wait().unwrap().is_none(),
        "the old process serves on"
    );
    demo.sigterm();
    assert!(demo.wait_exit(Duration::from_secs(20)).is_some());
    assert!(!sock.exists());
}

/// Accepts any server certificate (the demo's development certificate).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One HTTP/3 GET of `/` on a new QUIC connection: the status, or why not.
async fn h3_get(port: u16) -> Result<u16, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
    ));
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let attempt = async {
        let conn = endpoint
            .connect_with(config, ([127, 0, 0, 1], port).into(), "localhost")
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        let uri = format!("https://localhost:{port}/");
        let mut stream = send
            .send_request(http::Request::get(uri).body(()).unwrap())
            .await
            .map_err(|e| e.to_string())?;
        stream.finish().await.map_err(|e| e.to_string())?;
        let head = stream.recv_response().await.map_err(|e| e.to_string())?;
        Ok(head.status().as_u16())
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_http3_endpoint_http3_moves_to_the_new_process_once_the_old_one_lets_go() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let mut cmd = demo_process::command(
        dir.path(),
        &[
            "--Kestrel:Endpoints:H3:Url",
            &url,
            "--Kestrel:Endpoints:H3:Protocols",
            "Http1AndHttp2AndHttp3",
            "--shutdownTimeoutSeconds",
            "10",
            "--hostBuilder:reloadConfigOnChange=false",
        ],
    );
    cmd.env("KESTREL_DEV_CERT_DIR", dir.path().join("dev-cert"));
    let mut demo = demo_process::spawn(cmd);
    tokio::task::block_in_place(|| demo.wait_for("Application started"));
    assert_eq!(h3_get(port).await, Ok(200), "{}", demo.output());
    let old = demo.child.id();
    signal(old, "-USR2");
    // The new process takes the TCP listener over at once; the UDP port is
    // the old process's until it has drained (a UDP socket cannot be
    // shared), then the new process binds it.
    let line = tokio::task::block_in_place(|| demo.wait_for("is ready and serves every endpoint"));
    let new = new_pid(&line);
    let _guard = KillOnDrop(new);
    let status = tokio::task::block_in_place(|| demo.wait_exit(Duration::from_secs(30)));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        demo.output()
    );
    tokio::task::block_in_place(|| demo.wait_for("released by the previous process"));
    assert_eq!(h3_get(port).await, Ok(200), "{}", demo.output());
    signal(new, "-TERM");
    tokio::task::block_in_place(|| wait_exited(new, &demo));
}
