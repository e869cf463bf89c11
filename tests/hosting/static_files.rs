//! Static files over real requests: content types, ETag/Last-Modified,
//! conditional requests (304/412), single ranges (206/416), HEAD, default
//! files, no listing, and path traversal attempts (400/404).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kestrel_test_support::http1client as support;

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use kestrel::{RequestBody, RunningServer};
use kestrel_hosting::middleware::StaticFiles;
use kestrel_hosting::pipeline::{ApplicationBuilder, Pipeline};

const SECRET: &str = "TOP-SECRET-CONTENT";

struct Site {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: Vec<u8>,
}

fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.txt"), SECRET).unwrap();
    let root = dir.path().join("wwwroot");
    std::fs::create_dir_all(root.join("css")).unwrap();
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("docs/index.html"), "<h1>docs</h1>").unwrap();
    std::fs::write(root.join("css/site.css"), "body{}").unwrap();
    std::fs::write(root.join("LICENSE"), "no extension").unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("data.bin"), &data).unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.txt")).unwrap();
    Site {
        _dir: dir,
        root,
        data,
    }
}

fn pipeline(files: StaticFiles) -> Pipeline {
    let mut app = ApplicationBuilder::new();
    app.use_middleware(files);
    app.run(|req: Request<RequestBody>| async move {
        let mut r = Response::new(Full::new(Bytes::from(format!(
            "app {} {}",
            req.method(),
            req.uri().path()
        ))));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    });
    app.build()
}

async fn serve(site: &Site) -> (RunningServer, SocketAddr) {
    support::start(pipeline(StaticFiles::new(&site.root))).await
}

#[tokio::test]
async fn files_have_types_validators_and_default_files() {
    let site = site();
    let (server, addr) = serve(&site).await;
    let r = support::get(addr, "/index.html", "h", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "<h1>home</h1>");
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.header("content-length"), Some("13"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.header("etag").unwrap().starts_with('"'));
    assert!(r.header("last-modified").unwrap().ends_with("GMT"));
    let css = support::get(addr, "/css/site.css", "h", &[]).await;
    assert_eq!(css.header("content-type"), Some("text/css"));

    // Default file, with a redirect to add the trailing slash.
    assert_eq!(
        support::get(addr, "/", "h", &[]).await.text(),
        "<h1>home</h1>"
    );
    let r = support::get(addr, "/docs?x=1", "h", &[]).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/docs/?x=1"));
    assert_eq!(
        support::get(addr, "/docs/", "h", &[]).await.text(),
        "<h1>docs</h1>"
    );
    // No directory listing, unknown types, missing files and other methods
    // go on to the app.
    for path in ["/empty/", "/css/", "/LICENSE", "/missing.txt"] {
        let r = support::get(addr, path, "h", &[]).await;
        assert_eq!(r.text(), format!("app GET {path}"), "{path}");
    }
    let r = support::request(addr, "POST", "/index.html", "h", &["Content-Length: 0"]).await;
    assert_eq!(r.text(), "app POST /index.html");

    // A large file is streamed whole.
    let r = support::get(addr, "/data.bin", "h", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.body, site.data);
    server.stop().await;
}

#[tokio::test]
async fn conditional_requests() {
    let site = site();
    let (server, addr) = serve(&site).await;
    let first = support::get(addr, "/index.html", "h", &[]).await;
    let etag = first.header("etag").unwrap().to_string();
    let last_modified = first.header("last-modified").unwrap().to_string();

    let r = support::get(
        addr,
        "/index.html",
        "h",
        &[&format!("If-None-Match: {etag}")],
    )
    .await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = support::get(
        addr,
        "/index.html",
        "h",
        &[&format!("If-None-Match: \"nope\", W/{etag}")],
    )
    .await;
    assert_eq!(r.status, 304, "weak comparison for If-None-Match");
    let r = support::get(addr, "/index.html", "h", &["If-None-Match: \"nope\""]).await;
    assert_eq!(r.status, 200);
    let r = support::get(
        addr,
        "/index.html",
        "h",
        &[&format!("If-Modified-Since: {last_modified}")],
    )
    .await;
    assert_eq!(r.status, 304);
    let r = support::get(
        addr,
        "/index.html",
        "h",
        &["If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT"],
    )
    .await;
    assert_eq!(r.status, 200);
    // If-None-Match wins over If-Modified-Since.
    let r = support::get(
        addr,
        "/index.html",
        "h",
        &[
            "If-None-Match: \"nope\"",
            &format!("If-Modified-Since: {last_modified}"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = support::get(addr, "/index.html", "h", &["If-Match: \"nope\""]).await;
    assert_eq!(r.status, 412);
    let r = support::get(addr, "/index.html", "h", &[&format!("If-Match: {etag}")]).await;
    assert_eq!(r.status, 200);
    let r = support::get(
        addr,
        "/index.html",
        "h",
        &["If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT"],
    )
    .await;
    assert_eq!(r.status, 412);
    server.stop().await;
}

#[tokio::test]
async fn ranges_and_head() {
    let site = site();
    let len = site.data.len();
    let (server, addr) = serve(&site).await;
    let r = support::get(addr, "/data.bin", "h", &["Range: bytes=0-4"]).await;
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-4/{len}").as_str())
    );
    assert_eq!(r.body, site.data[..5]);
    // Across chunk boundaries.
    let r = support::get(addr, "/data.bin", "h", &["Range: bytes=65000-200000"]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, site.data[65000..=200000]);
    let r = support::get(addr, "/data.bin", "h", &["Range: bytes=-3"]).await;
    assert_eq!(r.body, site.data[len - 3..]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {}-{}/{len}", len - 3, len - 1).as_str())
    );
    let r = support::get(addr, "/data.bin", "h", &["Range: bytes=299990-"]).await;
    assert_eq!(r.body, site.data[299_990..]);
    // Unsatisfiable.
    let r = support::get(addr, "/data.bin", "h", &["Range: bytes=300000-"]).await;
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    // Several ranges, or If-Range that does not match: the whole file.
    let r = support::get(addr, "/data.bin", "h", &["Range: bytes=0-1,5-6"]).await;
    assert_eq!((r.status, r.body.len()), (200, len));
    let r = support::get(
        addr,
        "/data.bin",
        "h",
        &["Range: bytes=0-1", "If-Range: \"stale\""],
    )
    .await;
    assert_eq!((r.status, r.body.len()), (200, len));
    let etag = r.header("etag").unwrap().to_string();
    let r = support::get(
        addr,
        "/data.bin",
        "h",
        &["Range: bytes=0-1", &format!("If-Range: {etag}")],
    )
    .await;
    assert_eq!((r.status, r.body.len()), (206, 2));

    // HEAD: the headers of GET, no body.
    let r = support::request(addr, "HEAD", "/data.bin", "h", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
    assert!(r.header("etag").is_some());
    assert!(r.body.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn path_traversal_is_refused() {
    let site = site();
    let (server, addr) = serve(&site).await;
    for path in [
        "/../secret.txt",
        "/css/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/css/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/css%2f..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/%2e%2e%5c%2e%2e%5csecret.txt",
        "/./index.html",
        "/index.html%00.css",
        "/%zz",
        "/link.txt",
    ] {
        let r = support::send(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(
            r.status == 400 || r.status == 404,
            "{path}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains(SECRET), "{path} leaked the secret");
        assert!(!r.text().contains("app GET"), "{path} reached the app");
    }
    server.stop().await;
}

#[tokio::test]
async fn under_a_map_branch_and_a_request_path() {
    let site = site();
    let mut app = ApplicationBuilder::new();
    app.map("/static", |b| {
        b.use_middleware(StaticFiles::new(&site.root));
    });
    app.use_middleware(StaticFiles::new(&site.root).request_path("/assets"));
    let (server, addr) = support::start(app.build()).await;
    let r = support::get(addr, "/static/css/site.css", "h", &[]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "body{}"));
    let r = support::get(addr, "/assets/css/site.css", "h", &[]).await;
    assert_eq!((r.status, r.text().as_str()), (200, "body{}"));
    assert_eq!(
        support::get(addr, "/css/site.css", "h", &[]).await.status,
        404
    );
    server.stop().await;
}

#[tokio::test]
async fn traversal_is_refused_by_the_middleware_itself() {
    use kestrel::Application;
    // Straight into the pipeline, so the HTTP/1 codec's own checks do not help.
    let site = site();
    let p = pipeline(StaticFiles::new(&site.root));
    for path in [
        "/../secret.txt",
        "/css/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
    ] {
        let mut req = Request::new(RequestBody::empty());
        let Ok(uri) = path.parse() else { continue };
        *req.uri_mut() = uri;
        let status = p.call(req).await.unwrap().status();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
    }
}
