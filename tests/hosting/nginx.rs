//! A real nginx (Debian package `nginx`) reverse-proxying to the demo's
//! Unix-socket endpoint, as a stock install does: the master runs as root,
//! the workers as the unprivileged `www-data`. The endpoint comes from the
//! demo's `appsettings.json`, with `SocketMode=0660` and
//! `SocketGroup=www-data` so the workers may connect (without them the
//! socket is `srwxr-xr-x root` and every request is a 502). The app sees
//! the client's address through the forwarded headers. This is the recipe
//! of docs/deployment.md.
//!
//! And nginx in front of an in-process pipeline on a Unix-socket endpoint:
//! with forwarded headers trusting the Unix-socket peer, the app sees the
//! client's address and scheme.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::demo_process;
use kestrel_test_support::http1client;

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

use demo_process::{command, spawn};
use support::{curl, have_tool};

/// nginx's master process; dropping it stops nginx gracefully (SIGQUIT, so
/// the master takes its workers down), then kills it if it lingers.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The user names of the processes whose parent is `pid` (from /proc).
fn child_users(pid: u32) -> Vec<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name_of = |uid: &str| {
        passwd
            .lines()
            .find(|l| l.split(':').nth(2) == Some(uid))
            .and_then(|l| l.split(':').next())
            .unwrap_or(uid)
            .to_string()
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        };
        if field("PPid:").as_deref() == Some(&pid.to_string()) {
            if let Some(uid) = field("Uid:") {
                out.push(name_of(&uid));
            }
        }
    }
    out
}

#[tokio::test]
async fn nginx_proxies_to_a_unix_socket_endpoint() {
    if !have_tool("nginx") || !have_tool("curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = is_root();
    // The workers (www-data) must reach the socket: let others traverse the
    // temp dir (0711: no listing), as /run/<app> is in the recipe.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let sock = dir.path().join("app.sock");
    // As root, the stock set-up: the socket's group is nginx's www-data.
    // Otherwise nginx cannot switch users; the socket gets our own group.
    let group = if root {
        "www-data".to_string()
    } else {
        eprintln!(
            "hosting::nginx: not running as root, so nginx's workers cannot run as www-data; \
             only the socket's mode and group are checked, not an unprivileged worker's access"
        );
        String::from_utf8_lossy(&Command::new("id").arg("-g").output().unwrap().stdout)
            .trim()
            .to_string()
    };
    std::fs::write(
        dir.path().join("appsettings.json"),
        format!(
            r#"{{
  "Kestrel": {{
    "Endpoints": {{
      "Sock": {{
        "Url": "http://unix:{sock}",
        "SocketMode": "0660",
        "SocketGroup": "{group}"
      }}
    }}
  }}
}}"#,
            sock = sock.display()
        ),
    )
    .unwrap();
    let demo = spawn(command(
        dir.path(),
        // The default builder then adds the forwarded-headers middleware.
        &["--ForwardedHeaders_Enabled=true"],
    ));
    let shown = demo.listening_on();
    assert_eq!(shown, format!("http://unix:{}", sock.display()));
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = std::fs::metadata(&sock).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o660, "SocketMode");
        let gid = if root {
            let out = Command::new("id")
                .args(["-g", "www-data"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        } else {
            group.clone()
        };
        assert_eq!(meta.gid().to_string(), gid, "SocketGroup {group}");
    }

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // A stock install: `user www-data;`, a master (root) and a worker.
    let user = if root { "user www-data;\n" } else { "" };
    let conf = format!(
        "{user}daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n access_log {d}/access.log;\n\
           client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
           upstream app {{ server unix:{sock}; }}\n\
           server {{\n  listen 127.0.0.1:{port};\n  location / {{\n\
             proxy_pass http://app;\n proxy_http_version 1.1;\n\
             proxy_set_header Host $host;\n\
             proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
             proxy_set_header X-Forwarded-Proto $scheme;\n  }}\n }}\n}}\n",
        d = dir.path().display(),
        sock = sock.display(),
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let nginx = Nginx(
        Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx"),
    );
    // Wait for nginx to listen.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    if root {
        // A worker is forked as root and switches to www-data right after:
        // wait for the switch rather than sample the instant after fork.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut users = child_users(nginx.0.id());
        while (users.is_empty() || users.iter().any(|u| u != "www-data"))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
            users = child_users(nginx.0.id());
        }
        assert!(
            !users.is_empty() && users.iter().all(|u| u == "www-data"),
            "nginx's workers run as www-data: {users:?}"
        );
    }
    // From 127.0.0.3, so the address the app sees can only come from
    // nginx's X-Forwarded-For (the app's own peer is a Unix socket).
    let out = curl(&[
        "-i",
        "--interface",
        "127.0.0.3",
        &format!("http://127.0.0.1:{port}/"),
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
    assert!(text.contains("Request URL: http://127.0.0.1/"), "{text}");
    let out = curl(&[
        "--data-binary",
        "through nginx",
        &format!("http://127.0.0.1:{port}/echo"),
    ])
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through nginx");
    let errors = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    assert!(!errors.contains("Permission denied"), "{errors}");
    drop(nginx);
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
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
    let reply = http1client::parse(&out);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.text()
}

#[tokio::test]
async fn nginx_on_a_unix_socket_forwards_the_client_address() {
    if !have_tool("nginx") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("kestrel.sock");
    let mut app = ApplicationBuilder::new();
    app.use_middleware(ForwardedHeaders::new().trust_unix_socket_peers(true));
    app.run(echo);
    let url = format!("http://unix:{}", sock.display());
    let (server, _) = http1client::start_on(&url, app.build()).await;

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
