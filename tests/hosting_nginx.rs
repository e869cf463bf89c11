//! A real nginx (Debian package `nginx`) reverse-proxying to the demo's
//! Unix-socket endpoint, configured from the demo's command line; the app
//! sees the client's address through the forwarded headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "support/demo_process.rs"]
mod demo_process;
mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use demo_process::{command, spawn};
use support::{curl, have_tool};

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn nginx_proxies_to_a_unix_socket_endpoint() {
    if !have_tool("nginx") || !have_tool("curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("app.sock");
    let demo = spawn(command(
        dir.path(),
        &[
            &format!(
                "--Kestrel:Endpoints:Sock:Url=http://unix:{}",
                sock.display()
            ),
            // The default builder then adds the forwarded-headers middleware.
            "--ForwardedHeaders_Enabled=true",
        ],
    ));
    let shown = demo.listening_on();
    assert_eq!(shown, format!("http://unix:{}", sock.display()));

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let user = if std::env::var("USER").as_deref() == Ok("root") || is_root() {
        "user root;\n"
    } else {
        ""
    };
    let conf = format!(
        "{user}daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
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
    drop(nginx);
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
