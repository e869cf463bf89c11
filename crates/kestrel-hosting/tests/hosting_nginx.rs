//! A real nginx reverse-proxying to a Unix-socket endpoint: with forwarded
//! headers trusting the Unix-socket peer, the app sees the client's address
//! and scheme. Skipped (with a note) when `nginx` is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use kestrel::RequestBody;
use kestrel_hosting::middleware::{ForwardedHeaders, ForwardedInfo};
use kestrel_hosting::pipeline::ApplicationBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// Kills the nginx this test started when dropped.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_available() -> bool {
    Command::new("nginx")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn echo(req: Request<RequestBody>) -> Response<Full<Bytes>> {
    let info = req.extensions().get::<ForwardedInfo>().cloned().unwrap();
    let remote = info
        .remote_addr
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "-".into());
    Response::new(Full::new(Bytes::from(format!(
        "client={remote} scheme={} host={}",
        info.scheme,
        info.host.unwrap_or_default()
    ))))
}

/// GET through nginx from the client address `from`.
async fn get_from(from: &str, nginx: SocketAddr) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut s = socket.connect(nginx).await.unwrap();
    s.write_all(b"GET /who HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let reply = support::parse(&out);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.text()
}

#[tokio::test]
async fn nginx_on_a_unix_socket_forwards_the_client_address() {
    if !nginx_available() {
        eprintln!("skipped: nginx is not installed (apt-get install nginx)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("kestrel.sock");
    let mut app = ApplicationBuilder::new();
    app.use_middleware(ForwardedHeaders::new().trust_unix_socket_peers(true));
    app.run(echo);
    let url = format!("http://unix:{}", sock.display());
    let (server, _) = support::start_on(&url, app.build()).await;

    let port = free_port();
    let conf = dir.path().join("nginx.conf");
    let d = dir.path().display();
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
                   proxy_pass http://unix:{sock}:;\n      proxy_set_header Host $host;\n\
                   proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                   proxy_set_header X-Forwarded-Proto $scheme;\n    }}\n  }}\n}}\n",
            sock = sock.display()
        ),
    )
    .unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    let _nginx = Nginx(child);
    let nginx: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(nginx).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The app sees the client (a second loopback address), not the socket.
    assert_eq!(
        get_from("127.0.0.2", nginx).await,
        "client=127.0.0.2 scheme=http host=app.example"
    );
    assert_eq!(
        get_from("127.0.0.1", nginx).await,
        "client=127.0.0.1 scheme=http host=app.example"
    );
    server.stop().await;
}
