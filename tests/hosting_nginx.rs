//! A real nginx (Debian package `nginx`) reverse-proxying to the demo's
//! Unix-socket endpoint, as a stock install does: the master runs as root,
//! the workers as the unprivileged `www-data`. The endpoint comes from the
//! demo's `appsettings.json`, with `SocketMode=0660` and
//! `SocketGroup=www-data` so the workers may connect (without them the
//! socket is `srwxr-xr-x root` and every request is a 502). The app sees
//! the client's address through the forwarded headers. This is the recipe
//! of docs/deployment.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "support/demo_process.rs"]
mod demo_process;
mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
            "hosting_nginx: not running as root, so nginx's workers cannot run as www-data; \
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
        let users = child_users(nginx.0.id());
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
