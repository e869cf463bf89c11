//! Configuration reload (`reloadOnChange`, SIGHUP): `Kestrel:Endpoints`
//! added and removed by editing `appsettings.json` (in place and by a
//! rename) while unchanged endpoints and their connections are untouched; an
//! invalid new configuration changes nothing and logs an error naming the
//! file, key or address; no request fails during reloads; SIGHUP reloads
//! with file watching switched off (`hostBuilder:reloadConfigOnChange`);
//! `Logging:LogLevel` and `AllowedHosts` apply at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use kestrel_test_support as support;
use kestrel_test_support::demo_process;
use kestrel_test_support::h2client;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kestrel::hosting::WebHostBuilderKestrelExt;
use kestrel_hosting::{RunningHost, WebHost};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// Everything Kestrel logged in this test binary (the reload runs on its own
// task): the binary's one global capture.
use kestrel_test_support::logs::{capture as capture_logs, text as logged};

fn endpoints_json(endpoints: &[(&str, &str)], extra: &str) -> String {
    let eps: Vec<String> = endpoints
        .iter()
        .map(|(name, url)| format!(r#""{name}": {{ "Url": "{url}" }}"#))
        .collect();
    format!(
        r#"{{ {extra} "Kestrel": {{ "Endpoints": {{ {} }} }} }}"#,
        eps.join(", ")
    )
}

fn write_in_place(root: &Path, text: &str) {
    std::fs::write(root.join("appsettings.json"), text).unwrap();
}

fn write_by_rename(root: &Path, text: &str) {
    let tmp = root.join("appsettings.json.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, root.join("appsettings.json")).unwrap();
}

async fn start_host(root: &Path) -> RunningHost {
    // First the binary's log capture: the default builder installs its own
    // console subscriber when the process has none.
    kestrel_test_support::logs::capture();
    WebHost::create_default_builder([
        "test".to_string(),
        "--contentRoot".into(),
        root.display().to_string(),
    ])
    .use_kestrel(|_| {})
    .configure(|app| {
        app.run(kestrel_demo::app);
    })
    .build()
    .expect("host builds")
    .start()
    .await
    .expect("host starts")
}

fn socket(address: &str) -> SocketAddr {
    address.trim_start_matches("http://").parse().unwrap()
}

/// Wait (≤ 10 s) until the host's addresses satisfy `ok`.
async fn wait_addresses(host: &RunningHost, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = host.addresses();
        if ok(&a) {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "addresses stayed {a:?}; log:\n{}",
            logged()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait (≤ 10 s) for a log line containing every one of `parts`.
async fn wait_log(parts: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logged()
        .lines()
        .any(|l| parts.iter().all(|p| l.contains(p)))
    {
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?}:\n{}",
            logged()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One keep-alive `GET /` on `s`: (status, body), or an error text.
async fn get(s: &mut TcpStream, host: &str) -> Result<(u16, String), String> {
    send(
        s,
        format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
    )
    .await
}

/// One request written raw on `s`, and its response (with a Content-Length
/// or none): (status, body), or an error text.
async fn send(s: &mut TcpStream, request: &[u8]) -> Result<(u16, String), String> {
    s.write_all(request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let read = async {
        loop {
            let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err(format!("closed after {:?}", String::from_utf8_lossy(&buf)));
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    return Ok((support::status_of(head), body.to_string()));
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| "timed out".to_string())?
}

#[tokio::test]
async fn endpoints_follow_appsettings_and_invalid_changes_change_nothing() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_in_place(root, &endpoints_json(&[("A", "http://127.0.0.1:0")], ""));
    let host = start_host(root).await;
    let a = host.addresses();
    assert_eq!(a.len(), 1, "{a:?}");
    let a = a[0].clone();
    let mut on_a = TcpStream::connect(socket(&a)).await.unwrap();
    assert_eq!(get(&mut on_a, "localhost").await.unwrap().0, 200);

    // Added in place: bound; A and its connection untouched.
    write_in_place(
        root,
        &endpoints_json(
            &[("A", "http://127.0.0.1:0"), ("B", "http://127.0.0.1:0")],
            "",
        ),
    );
    let both = wait_addresses(&host, |x| x.len() == 2).await;
    assert_eq!(both[0], a, "the unchanged endpoint keeps its port");
    let b = both[1].clone();
    wait_log(&["Now listening on", &b]).await;
    let mut on_b = TcpStream::connect(socket(&b)).await.unwrap();
    assert_eq!(get(&mut on_b, "localhost").await.unwrap().0, 200);
    let (status, body) = get(&mut on_a, "localhost").await.unwrap();
    assert_eq!(
        status, 200,
        "the connection on the unchanged endpoint still serves"
    );
    let mut fresh = TcpStream::connect(socket(&a)).await.unwrap();
    let (_, page) = get(&mut fresh, "localhost").await.unwrap();
    assert!(
        page.contains(&b) && !body.contains(&b),
        "new connections see the new server addresses"
    );

    // Removed by a rename: A stops accepting, its idle connection is closed, B serves on.
    write_by_rename(root, &endpoints_json(&[("B", "http://127.0.0.1:0")], ""));
    wait_addresses(&host, |x| x == [b.clone()]).await;
    assert!(
        TcpStream::connect(socket(&a)).await.is_err(),
        "the removed endpoint refuses connections"
    );
    let closed = get(&mut on_a, "localhost").await;
    assert!(
        closed.is_err(),
        "the removed endpoint's idle connection is closed: {closed:?}"
    );
    assert_eq!(get(&mut on_b, "localhost").await.unwrap().0, 200);

    // Invalid JSON: nothing changes; the error names the file.
    write_in_place(root, "{ \"Kestrel\": { ");
    wait_log(&["ERROR", "nothing changed", "appsettings.json"]).await;
    assert_eq!(host.addresses(), std::slice::from_ref(&b));
    // A port in use: nothing changes (B is not removed either); the error names the address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_url = format!("http://{}", taken.local_addr().unwrap());
    write_in_place(root, &endpoints_json(&[("C", &taken_url)], ""));
    wait_log(&["ERROR", "nothing changed", &taken_url]).await;
    assert_eq!(host.addresses(), std::slice::from_ref(&b));
    assert_eq!(get(&mut on_b, "localhost").await.unwrap().0, 200);
    // A bad key: refused, naming it.
    write_in_place(
        root,
        r#"{ "Kestrel": { "Limits": { "MaxBogusSize": 1 }, "Endpoints": { } } }"#,
    );
    wait_log(&["ERROR", "nothing changed", "Kestrel:Limits:MaxBogusSize"]).await;
    assert_eq!(host.addresses(), std::slice::from_ref(&b));
    assert_eq!(get(&mut on_b, "localhost").await.unwrap().0, 200);
    host.stop().await;
}

/// A host whose code sets one limit (`max_request_line_size`, which then
/// wins over configuration) and whose app reads the request body.
async fn start_host_reading_bodies(root: &Path) -> RunningHost {
    use http_body_util::{BodyExt, Full};
    // First the binary's log capture: the default builder installs its own
    // console subscriber when the process has none.
    kestrel_test_support::logs::capture();
    WebHost::create_default_builder([
        "test".to_string(),
        "--contentRoot".into(),
        root.display().to_string(),
    ])
    .use_kestrel(|o| o.limits.max_request_line_size = 2048)
    .configure(|app| {
        app.run(|req: http::Request<kestrel::RequestBody>| async move {
            let text = match req.into_body().collect().await {
                Ok(b) => format!("len={}", b.to_bytes().len()),
                Err(e) => format!("error={e}"),
            };
            http::Response::new(Full::new(bytes::Bytes::from(text)))
        });
    })
    .build()
    .expect("host builds")
    .start()
    .await
    .expect("host starts")
}

fn limits_json(limits: &str) -> String {
    limits_json_with(limits, "")
}

/// `Kestrel:Limits` = `{limits}`, and the endpoint `Main` plus `more`.
fn limits_json_with(limits: &str, more: &str) -> String {
    format!(
        r#"{{ "Kestrel": {{ "Endpoints": {{ "Main": {{ "Url": "http://127.0.0.1:0" }} {more} }}, "Limits": {{ {limits} }} }} }}"#
    )
}

/// An HTTP/2 `GET /` with `n` header fields besides the pseudo-headers: its status.
async fn h2_status(send: &mut h2::client::SendRequest<bytes::Bytes>, n: usize) -> u16 {
    let mut req = h2client::request("GET", "/");
    for i in 0..n {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
            http::HeaderValue::from_static("v"),
        );
    }
    let (resp, _) = send.send_request(req, true).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .expect("a response within 10 s")
        .unwrap();
    resp.status().as_u16()
}

/// `POST /` with a body of `n` bytes.
fn post(n: usize) -> Vec<u8> {
    let mut r =
        format!("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: {n}\r\n\r\n").into_bytes();
    r.extend(std::iter::repeat_n(b'x', n));
    r
}

/// `GET /` with `n` header fields besides `Host`.
fn get_with_headers(n: usize) -> Vec<u8> {
    let fields: String = (0..n).map(|i| format!("X-H{i}: v\r\n")).collect();
    format!("GET / HTTP/1.1\r\nHost: localhost\r\n{fields}\r\n").into_bytes()
}

/// `request` on a new connection: its status.
async fn status_on_new_connection(addr: SocketAddr, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    send(&mut s, request).await.unwrap().0
}

/// Occurrences of `text` in the log so far.
fn logged_count(text: &str) -> usize {
    logged().lines().filter(|l| l.contains(text)).count()
}

/// Wait (≤ 10 s) until `text` was logged more than `before` times.
async fn wait_logged_more(text: &str, before: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while logged_count(text) <= before {
        assert!(
            Instant::now() < deadline,
            "{text:?} not logged again:\n{}",
            logged()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn limits_follow_appsettings_for_new_connections_only() {
    const APPLIED: &str = "Kestrel:Limits changed";
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_in_place(root, &limits_json(""));
    let host = start_host_reading_bodies(root).await;
    let addr = socket(&host.addresses()[0]);
    // Opened before the reload: keeps the limits it started with.
    let mut old = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        send(&mut old, &post(100)).await.unwrap(),
        (200, "len=100".into())
    );
    assert_eq!(send(&mut old, &get_with_headers(10)).await.unwrap().0, 200);
    let mut old_h2 = h2client::connect(addr).await;
    assert_eq!(h2_status(&mut old_h2, 10).await, 200);
    assert_eq!(status_on_new_connection(addr, &post(100)).await, 200);
    assert_eq!(
        status_on_new_connection(addr, &get_with_headers(10)).await,
        200
    );

    // Lowered in appsettings.json: new connections get 413 and 431.
    let applied = logged_count(APPLIED);
    write_in_place(
        root,
        &limits_json(
            r#""MaxRequestBodySize": 10, "MaxRequestHeaderCount": 5, "MaxRequestLineSize": 65536"#,
        ),
    );
    wait_logged_more(APPLIED, applied).await;
    assert_eq!(status_on_new_connection(addr, &post(100)).await, 413);
    assert_eq!(
        status_on_new_connection(addr, &get_with_headers(10)).await,
        431
    );
    assert_eq!(status_on_new_connection(addr, &post(10)).await, 200);
    assert_eq!(
        status_on_new_connection(addr, &get_with_headers(4)).await,
        200
    );
    let mut new_h2 = h2client::connect(addr).await;
    assert_eq!(h2_status(&mut new_h2, 10).await, 431, "HTTP/2 too");
    // The limit set in code wins over the configuration's new value, as at start-up.
    wait_log(&[
        "WARN",
        "Kestrel:Limits:MaxRequestLineSize changed",
        "set in code",
    ])
    .await;
    let long_line = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(3000)
    );
    assert_eq!(
        status_on_new_connection(addr, long_line.as_bytes()).await,
        414
    );
    // The connection opened before keeps its limits.
    assert_eq!(
        send(&mut old, &post(100)).await.unwrap(),
        (200, "len=100".into())
    );
    assert_eq!(send(&mut old, &get_with_headers(10)).await.unwrap().0, 200);
    assert_eq!(h2_status(&mut old_h2, 10).await, 200);
    drop((old_h2, new_h2));

    // An invalid value changes nothing (not even the valid key beside it)
    // and the error names the key.
    write_in_place(
        root,
        &limits_json(r#""MaxRequestBodySize": 1000000, "MaxRequestHeaderCount": "many""#),
    );
    wait_log(&[
        "ERROR",
        "nothing changed",
        "Kestrel:Limits:MaxRequestHeaderCount",
    ])
    .await;
    assert_eq!(status_on_new_connection(addr, &post(100)).await, 413);
    assert_eq!(
        status_on_new_connection(addr, &get_with_headers(10)).await,
        431
    );
    assert_eq!(send(&mut old, &post(100)).await.unwrap().0, 200);
    // Valid limits beside an endpoint that cannot be bound: nothing changes
    // either (the limits are put back).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_url = format!("http://{}", taken.local_addr().unwrap());
    write_in_place(
        root,
        &limits_json_with(
            r#""MaxRequestBodySize": 1000000"#,
            &format!(r#", "Taken": {{ "Url": "{taken_url}" }}"#),
        ),
    );
    wait_log(&["ERROR", "nothing changed", &taken_url]).await;
    assert_eq!(status_on_new_connection(addr, &post(100)).await, 413);
    assert_eq!(
        status_on_new_connection(addr, &get_with_headers(10)).await,
        431
    );

    // MaxConcurrentConnections: with `old` open, a new connection is refused
    // (closed without a response); `old` is not closed for it.
    let applied = logged_count(APPLIED);
    write_in_place(
        root,
        &limits_json(
            r#""MaxRequestBodySize": 10, "MaxRequestHeaderCount": 5, "MaxConcurrentConnections": 1"#,
        ),
    );
    wait_logged_more(APPLIED, applied).await;
    let mut refused = TcpStream::connect(addr).await.unwrap();
    let r = send(&mut refused, &get_with_headers(0)).await;
    assert!(r.is_err(), "over MaxConcurrentConnections: {r:?}");
    assert_eq!(send(&mut old, &get_with_headers(0)).await.unwrap().0, 200);
    drop(old);
    // Once `old` is gone, there is room again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if let Ok((status, _)) = send(&mut s, &get_with_headers(0)).await {
            assert_eq!(status, 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no room after the connection closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    host.stop().await;
}

#[tokio::test]
async fn no_request_fails_during_reloads() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write_in_place(
        &root,
        &endpoints_json(&[("Main", "http://127.0.0.1:0")], ""),
    );
    let host = start_host(&root).await;
    let main = socket(&host.addresses()[0]);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let connections = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, connections) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            connections.clone(),
        );
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut s = match TcpStream::connect(main).await {
                    Ok(s) => s,
                    Err(e) => {
                        failed.lock().unwrap().push(format!("connect: {e}"));
                        continue;
                    }
                };
                connections.fetch_add(1, Ordering::Relaxed);
                // Keep-alive requests, then a new connection.
                for _ in 0..20 {
                    match get(&mut s, "localhost").await {
                        Ok((200, _)) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        other => failed.lock().unwrap().push(format!("{other:?}")),
                    }
                }
            }
        }));
    }
    for i in 0..10 {
        let text = if i % 2 == 0 {
            endpoints_json(
                &[
                    ("Main", "http://127.0.0.1:0"),
                    ("Extra", "http://127.0.0.1:0"),
                ],
                "",
            )
        } else {
            endpoints_json(&[("Main", "http://127.0.0.1:0")], "")
        };
        if i % 4 < 2 {
            write_in_place(&root, &text);
        } else {
            write_by_rename(&root, &text);
        }
        let want = if i % 2 == 0 { 2 } else { 1 };
        wait_addresses(&host, |x| x.len() == want).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let failed = failed.lock().unwrap().clone();
    let ok = ok.load(Ordering::Relaxed);
    eprintln!(
        "10 reloads: {ok} requests served on {} connections, {} failed",
        connections.load(Ordering::Relaxed),
        failed.len()
    );
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(ok > 100, "only {ok} requests");
    host.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, host: &str) -> Option<u16> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(support::status_of(&out))
}

fn hup(demo: &demo_process::Demo) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &demo.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP failed");
}

fn wait_until(what: &str, demo: &demo_process::Demo, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen; output:\n{}",
            demo.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_reloads_with_file_watching_off_and_levels_and_allowed_hosts_apply() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let a = free_port();
    let info = r#""Logging": { "LogLevel": { "Default": "Information" } },"#;
    let warn = r#""Logging": { "LogLevel": { "Default": "Warning" } },"#;
    let url = |p: u16| format!("http://127.0.0.1:{p}");
    write_in_place(root, &endpoints_json(&[("A", &url(a))], info));
    let mut cmd = demo_process::command(root, &["--hostBuilder:reloadConfigOnChange=false"]);
    cmd.env_remove("RUST_LOG");
    let demo = demo_process::spawn(cmd);
    demo.wait_for(&format!("Now listening on: {}", url(a)));
    assert_eq!(http_get(a, "anything.test"), Some(200));

    // File watching is off: an edit alone does nothing.
    let b = free_port();
    write_in_place(
        root,
        &endpoints_json(&[("A", &url(a)), ("B", &url(b))], warn),
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(http_get(b, "x"), None, "not applied without SIGHUP");
    // SIGHUP applies it; the log level is Warning from then on, so the new
    // endpoint's "Now listening on" (info) is not printed.
    hup(&demo);
    wait_until("B bound", &demo, || http_get(b, "x") == Some(200));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !demo
            .output()
            .contains(&format!("Now listening on: {}", url(b))),
        "{}",
        demo.output()
    );

    // Back to Information, a third endpoint, and AllowedHosts.
    let c = free_port();
    let extra = format!(r#"{info} "AllowedHosts": "example.com","#);
    write_in_place(
        root,
        &endpoints_json(&[("A", &url(a)), ("B", &url(b)), ("C", &url(c))], &extra),
    );
    hup(&demo);
    demo.wait_for(&format!("Now listening on: {}", url(c)));
    wait_until("AllowedHosts applied", &demo, || {
        http_get(a, "anything.test") == Some(400)
    });
    assert_eq!(http_get(a, "example.com"), Some(200));
    assert_eq!(http_get(c, "example.com"), Some(200));
    demo.wait_for("configuration reloaded");
}

#[tokio::test]
async fn a_changed_endpoint_is_rebound_at_its_address_with_its_new_settings() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let with_protocols = |p: &str| {
        format!(
            r#"{{ "Kestrel": {{ "Endpoints": {{ "Web": {{ "Url": "{url}", "Protocols": "{p}" }} }} }} }}"#
        )
    };
    write_in_place(root, &with_protocols("Http1AndHttp2"));
    let host = start_host(root).await;
    assert_eq!(host.addresses(), std::slice::from_ref(&url));
    let addr = socket(&url);
    // HTTP/2 with prior knowledge is served on the cleartext endpoint.
    let mut h2 = h2client::connect(addr).await;
    let (resp, _) = h2client::get(&mut h2, "/").await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut old = TcpStream::connect(addr).await.unwrap();
    assert_eq!(get(&mut old, "localhost").await.unwrap().0, 200);

    write_in_place(root, &with_protocols("Http1"));
    wait_log(&["Stopped listening on", &url]).await;
    wait_log(&["Now listening on", &url]).await;
    assert_eq!(
        host.addresses(),
        std::slice::from_ref(&url),
        "same address, bound again"
    );
    // The old endpoint's idle connection was closed; HTTP/1.1 is served on
    // the new one, HTTP/2 prior knowledge no longer is.
    assert!(get(&mut old, "localhost").await.is_err());
    let mut fresh = TcpStream::connect(addr).await.unwrap();
    assert_eq!(get(&mut fresh, "localhost").await.unwrap().0, 200);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let h2_again = tokio::time::timeout(Duration::from_secs(5), h2::client::handshake(tcp)).await;
    let refused = match h2_again {
        Ok(Ok((send, conn))) => {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            match send.ready().await {
                Ok(mut send) => h2client::get(&mut send, "/").await.is_err(),
                Err(_) => true,
            }
        }
        _ => true,
    };
    assert!(refused, "an HTTP/1-only endpoint does not speak HTTP/2");
    host.stop().await;
}
