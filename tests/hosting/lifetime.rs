//! The demo process under the host's lifetime: SIGTERM drains an in-flight
//! request and exits 0; sd_notify READY=1/STOPPING=1; command-line limits
//! and start-up errors; systemd socket activation.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::demo_process;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use demo_process::{command, spawn};

fn addr_of(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = spawn(command(
        dir.path(),
        &[
            "--urls",
            "http://127.0.0.1:0",
            "--shutdownTimeoutSeconds",
            "10",
        ],
    ));
    let addr = addr_of(&demo.listening_on());
    demo.wait_for("Application started. Press Ctrl+C to shut down.");
    demo.wait_for("Hosting environment: Production");
    demo.wait_for(&format!("Content root path: {}", dir.path().display()));

    // Half a request body in, then SIGTERM, then the rest.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        .unwrap();
    // Let the request reach the app before the signal.
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    demo.sigterm();
    demo.wait_for("Application is shutting down...");
    std::thread::sleep(Duration::from_millis(200));
    s.write_all(b"world").unwrap();
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("hello") && response.contains("world"),
        "{response}"
    );
    let status = demo.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status:?}\n{}", demo.output());
    assert!(t0.elapsed() < Duration::from_secs(10));
    // New connections are refused after the shutdown.
    assert!(TcpStream::connect(addr).is_err());
}

#[cfg(unix)]
#[test]
fn sd_notify_ready_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let rx = UnixDatagram::bind(&path).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut cmd = command(dir.path(), &["--urls", "http://127.0.0.1:0"]);
    cmd.env("NOTIFY_SOCKET", &path);
    let mut demo = spawn(cmd);
    let mut buf = [0u8; 256];
    let n = rx.recv(&mut buf).expect("READY=1 datagram");
    assert_eq!(&buf[..n], b"READY=1");
    // READY comes after the bind: the server answers now.
    let addr = addr_of(&demo.listening_on());
    assert!(TcpStream::connect(addr).is_ok());
    demo.sigterm();
    let n = rx.recv(&mut buf).expect("STOPPING=1 datagram");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(demo.wait_exit(Duration::from_secs(10)).unwrap().success());
}

#[test]
fn command_line_limits_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    // A misspelled limit: exit code 2, the key in the message.
    let out = command(
        dir.path(),
        &[
            "--urls",
            "http://127.0.0.1:0",
            "--Kestrel:Limits:KeepAliveTimout=00:00:05",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Kestrel:Limits:KeepAliveTimout"),
        "{out:?}"
    );
    std::fs::create_dir(dir.path().join("wwwroot")).unwrap();
    std::fs::write(dir.path().join("wwwroot/hello.txt"), "static hello").unwrap();
    // A valid keep-alive timeout from the command line is used: an idle
    // connection is closed after ~1 s (plus the heartbeat), not 130 s.
    let demo = spawn(command(
        dir.path(),
        &[
            "--urls",
            "http://127.0.0.1:0",
            "--Kestrel:Limits:KeepAliveTimeout=00:00:01",
            "--AllowedHosts=example.com",
        ],
    ));
    let addr = addr_of(&demo.listening_on());
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .unwrap();
    let t0 = Instant::now();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    // Static files from <content root>/wwwroot.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("static hello"), "{text}");
    // The host filter from --AllowedHosts.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
}

/// systemd socket activation: python3 binds a listening socket, moves it to
/// fd 3, sets LISTEN_PID to its own pid and execs the demo (same pid); the
/// demo adopts the socket (`BindTarget::Fd`) instead of binding.
#[cfg(unix)]
#[test]
fn socket_activation_listens_on_the_inherited_fd() {
    if !support::have_tool("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let script = format!(
        "import os,socket,sys\n\
         s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1',{port})); s.listen(16)\n\
         os.dup2(s.fileno(),3); os.set_inheritable(3,True)\n\
         os.environ['LISTEN_PID']=str(os.getpid()); os.environ['LISTEN_FDS']='1'\n\
         os.execv(sys.argv[1], sys.argv[1:])\n"
    );
    let demo_cmd = command(dir.path(), &[]);
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(script).arg(demo_cmd.get_program());
    cmd.args(demo_cmd.get_args());
    cmd.env("RUST_LOG", "info");
    let demo = spawn(cmd);
    demo.wait_for("Application started");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(text.contains("Hosted by Kestrel"), "{text}");
}
